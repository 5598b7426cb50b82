/**
 * conv2d forward / input-grad / weight-grad vs tfjs-backend-webgpu (NHWC, its own backprop
 * kernels) at the ResNet18 side-network shapes (batch 24 at 512 input; --quick: batch 2) and the
 * SAM encoder's patch embed and neck (batch 1). tfjs is skipped where one of its tensors would
 * exceed the adapter's binding limit (it cannot split bindings).
 */
import type { Tensor4D } from '@tensorflow/tfjs-core';
import type { Gpu } from '../src/gpu/device.js';
import { runConv2dForward, runConv2dInputGrad, runConv2dWeightGrad } from '../src/kernels/conv2d.js';
import { conv2dGeometry } from '../src/ops/conv.js';
import { Tensor } from '../src/tensor/tensor.js';
import { oursSync, tfSync, type BenchCase, type Tf } from './harness.js';
import type { BenchOpts } from './run.js';

interface ConvShape {
  name: string;
  x: [number, number, number, number];
  w: [number, number, number, number];
  s: number;
  p: number;
  passes: ('fwd' | 'dx' | 'dw')[];
}

function fits(gpu: Gpu | null, ...shapes: number[][]): boolean {
  const limit = gpu?.profile.maxStorageBindingBytes ?? 128 * 2 ** 20;
  return shapes.every((s) => s.reduce((a, b) => a * b, 1) * 4 <= limit);
}

export function cases(o: BenchOpts): BenchCase[] {
  const B = o.quick ? 2 : 24;
  const S = 512;
  const shapes: ConvShape[] = [
    { name: 'resnet conv1 7x7/2', x: [B, 3, S, S], w: [64, 3, 7, 7], s: 2, p: 3, passes: ['fwd', 'dw'] },
    {
      name: 'layer1 3x3',
      x: [B, 64, S / 4, S / 4],
      w: [64, 64, 3, 3],
      s: 1,
      p: 1,
      passes: ['fwd', 'dx', 'dw'],
    },
    {
      name: 'layer2 3x3/2',
      x: [B, 64, S / 4, S / 4],
      w: [128, 64, 3, 3],
      s: 2,
      p: 1,
      passes: ['fwd', 'dx', 'dw'],
    },
    {
      name: 'layer2 down 1x1/2',
      x: [B, 64, S / 4, S / 4],
      w: [128, 64, 1, 1],
      s: 2,
      p: 0,
      passes: ['fwd', 'dx', 'dw'],
    },
    {
      name: 'layer3 3x3',
      x: [B, 256, S / 16, S / 16],
      w: [256, 256, 3, 3],
      s: 1,
      p: 1,
      passes: ['fwd', 'dx', 'dw'],
    },
    { name: 'sam patch 16x16/16', x: [1, 3, S, S], w: [768, 3, 16, 16], s: 16, p: 0, passes: ['fwd'] },
    { name: 'sam neck 1x1', x: [1, 768, S / 16, S / 16], w: [256, 768, 1, 1], s: 1, p: 0, passes: ['fwd'] },
    { name: 'sam neck 3x3', x: [1, 256, S / 16, S / 16], w: [256, 256, 3, 3], s: 1, p: 1, passes: ['fwd'] },
  ];
  const out: BenchCase[] = [];
  for (const sh of shapes) {
    const g = conv2dGeometry(sh.x, sh.w, null, { stride: sh.s, padding: sh.p });
    const yShape = [g.N, g.Cout, g.Ho, g.Wo];
    const flops = 2 * g.N * g.Cout * g.Ho * g.Wo * g.Cin * g.kh * g.kw;
    for (const pass of sh.passes) {
      out.push({
        kernel: `conv2d ${pass}`,
        shape: `${sh.name} x[${sh.x.join(',')}]`,
        flops,
        ours(gpu) {
          const x = Tensor.zeros(gpu, sh.x);
          const w = Tensor.zeros(gpu, sh.w);
          const y = Tensor.zeros(gpu, yShape);
          const dx = Tensor.empty(gpu, sh.x);
          const dw = Tensor.empty(gpu, sh.w);
          const run =
            pass === 'fwd'
              ? () => runConv2dForward(x, w, null, y, g)
              : pass === 'dx'
                ? () => runConv2dInputGrad(y, w, dx, g)
                : () => runConv2dWeightGrad(x, y, dw, g);
          return { run, sync: oursSync(gpu), dispose: () => [x, w, y, dx, dw].forEach((t) => t.dispose()) };
        },
        ...(fits(null, sh.x, yShape)
          ? { tfjs: (tf: Tf, device: GPUDevice) => tfConv(tf, device, sh, yShape, pass) }
          : {}),
      });
    }
  }
  return out;
}

function tfConv(tf: Tf, device: GPUDevice, sh: ConvShape, yShape: number[], pass: 'fwd' | 'dx' | 'dw') {
  const [N, C, H, W] = sh.x;
  const [Co, , kh, kw] = sh.w;
  const pad =
    sh.p === 0
      ? 'valid'
      : ([
          [0, 0],
          [sh.p, sh.p],
          [sh.p, sh.p],
          [0, 0],
        ] as [[number, number], [number, number], [number, number], [number, number]]);
  const x = tf.zeros([N, H, W, C]) as Tensor4D;
  const w = tf.zeros([kh, kw, C, Co]) as Tensor4D;
  const dy = tf.zeros([yShape[0]!, yShape[2]!, yShape[3]!, Co]) as Tensor4D;
  let out: { dispose(): void } | null = null;
  const attrs = { strides: sh.s, pad, dataFormat: 'NHWC' as const };
  const run = () => {
    out?.dispose();
    if (pass === 'fwd') out = tf.conv2d(x, w, sh.s, pad);
    else if (pass === 'dx')
      out = tf
        .engine()
        .runKernel('Conv2DBackpropInput', { dy, filter: w }, { ...attrs, inputShape: [N, H, W, C] }) as never;
    else
      out = tf
        .engine()
        .runKernel('Conv2DBackpropFilter', { x, dy }, { ...attrs, filterShape: [kh, kw, C, Co] }) as never;
  };
  return {
    run,
    sync: tfSync(tf, device),
    dispose: () => {
      [x, w, dy].forEach((t) => t.dispose());
      out?.dispose();
    },
  };
}
