/**
 * The mask decoder's output-upscaling conv-transposes (k2 s2) forward / dx / dW vs tfjs
 * (conv2dTranspose; dx as conv2d; dW via Conv2DBackpropFilter), batch 24 (--quick: 2).
 */
import {
  runConvTranspose2d,
  runConvTranspose2dDw,
  runConvTranspose2dDx,
  type ConvTGeom,
} from '../src/kernels/conv_transpose2d.js';
import { Tensor } from '../src/tensor/tensor.js';
import { oursSync, tfSync, type BenchCase, type Tf } from './harness.js';
import type { BenchOpts } from './run.js';
import type { Tensor4D } from '@tensorflow/tfjs-core';

export function cases(o: BenchOpts): BenchCase[] {
  const B = o.quick ? 2 : 24;
  const out: BenchCase[] = [];
  for (const [Cin, H, Cout] of [
    [256, 32, 64],
    [64, 64, 32],
  ] as const) {
    const g: ConvTGeom = { N: B, Cin, H, W: H, Cout, KH: 2, KW: 2, S: 2 };
    const flops = 2 * B * Cin * H * H * Cout * 4;
    for (const pass of ['fwd', 'dx', 'dw'] as const) {
      out.push({
        kernel: `conv_transpose2d ${pass}`,
        shape: `(${B},${Cin},${H},${H})->(${B},${Cout},${2 * H},${2 * H})`,
        flops,
        ours(gpu) {
          const x = Tensor.zeros(gpu, [B, Cin, H, H]);
          const w = Tensor.zeros(gpu, [Cin, Cout, 2, 2]);
          const b = Tensor.zeros(gpu, [Cout]);
          const y = Tensor.zeros(gpu, [B, Cout, 2 * H, 2 * H]);
          const dx = Tensor.empty(gpu, x.shape);
          const dw = Tensor.empty(gpu, w.shape);
          const run =
            pass === 'fwd'
              ? () => runConvTranspose2d(x, w, b, y, g)
              : pass === 'dx'
                ? () => runConvTranspose2dDx(y, w, dx, g)
                : () => runConvTranspose2dDw(x, y, dw, g);
          return {
            run,
            sync: oursSync(gpu),
            dispose: () => [x, w, b, y, dx, dw].forEach((t) => t.dispose()),
          };
        },
        tfjs(tf: Tf, device: GPUDevice) {
          const x = tf.zeros([B, H, H, Cin]) as Tensor4D;
          const w = tf.zeros([2, 2, Cout, Cin]) as Tensor4D;
          const dy = tf.zeros([B, 2 * H, 2 * H, Cout]) as Tensor4D;
          let r: { dispose(): void } | null = null;
          const run = () => {
            r?.dispose();
            if (pass === 'fwd') r = tf.conv2dTranspose(x, w, [B, 2 * H, 2 * H, Cout], 2, 'valid');
            else if (pass === 'dx') r = tf.conv2d(dy, w, 2, 'valid');
            else
              r = tf
                .engine()
                .runKernel(
                  'Conv2DBackpropFilter',
                  { x: dy, dy: x },
                  { strides: 2, pad: 'valid', dataFormat: 'NHWC', filterShape: [2, 2, Cout, Cin] },
                ) as never;
          };
          return {
            run,
            sync: tfSync(tf, device),
            dispose: () => {
              [x, w, dy].forEach((t) => t.dispose());
              r?.dispose();
            },
          };
        },
      });
    }
  }
  return out;
}
