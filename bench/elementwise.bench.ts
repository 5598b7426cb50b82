/** Pointwise and reduction kernels vs tfjs on SAM-LST activation sizes (memory bound). */
import type { BenchOpts } from './run.js';
import { oursSync, tfSync, type BenchCase } from './harness.js';
import { runUnary } from '../src/kernels/elementwise.js';
import { runSumMid } from '../src/kernels/reduce.js';
import { Tensor } from '../src/tensor/tensor.js';

export function cases(o: BenchOpts): BenchCase[] {
  const B = o.quick ? 2 : 24;
  const geluShape = [1024, 3072]; // ViT-B MLP hidden at 512 input, one image
  const n = geluShape[0]! * geluShape[1]!;
  const reluShape = [B, 64, 128, 128]; // ResNet layer1 activation
  const rn = reluShape.reduce((a, b) => a * b, 1);
  return [
    {
      kernel: 'gelu',
      shape: `${geluShape.join('x')}`,
      flops: n,
      bytes: 8 * n,
      ours(gpu) {
        const x = Tensor.zeros(gpu, geluShape);
        const y = Tensor.empty(gpu, geluShape);
        return {
          run: () => runUnary('gelu', x, y),
          sync: oursSync(gpu),
          dispose: () => [x, y].forEach((t) => t.dispose()),
        };
      },
      tfjs(tf, device) {
        const x = tf.zeros(geluShape);
        let y: ReturnType<typeof tf.zeros> | null = null;
        return {
          run: () => {
            y?.dispose();
            // tfjs has no exact-erf GELU kernel; compose it as the frameworks using tfjs do.
            y = tf.tidy(() => tf.mul(tf.mul(x, 0.5), tf.add(1, tf.erf(tf.mul(x, Math.SQRT1_2)))));
          },
          sync: tfSync(tf, device),
          dispose: () => {
            x.dispose();
            y?.dispose();
          },
        };
      },
    },
    {
      kernel: 'relu',
      shape: reluShape.join('x'),
      flops: rn,
      bytes: 8 * rn,
      ours(gpu) {
        const x = Tensor.zeros(gpu, reluShape);
        const y = Tensor.empty(gpu, reluShape);
        return {
          run: () => runUnary('relu', x, y),
          sync: oursSync(gpu),
          dispose: () => [x, y].forEach((t) => t.dispose()),
        };
      },
      tfjs(tf, device) {
        const x = tf.zeros(reluShape);
        let y: ReturnType<typeof tf.zeros> | null = null;
        return {
          run: () => {
            y?.dispose();
            y = tf.relu(x);
          },
          sync: tfSync(tf, device),
          dispose: () => {
            x.dispose();
            y?.dispose();
          },
        };
      },
    },
    {
      kernel: 'reduce',
      shape: `sum (${B}x64, 16384) -> ${B}x64`,
      flops: rn,
      bytes: 4 * rn,
      ours(gpu) {
        const x = Tensor.zeros(gpu, reluShape);
        const y = Tensor.empty(gpu, [B * 64]);
        return {
          run: () => runSumMid(x, y, B * 64, 128 * 128, 1),
          sync: oursSync(gpu),
          dispose: () => [x, y].forEach((t) => t.dispose()),
        };
      },
      tfjs(tf, device) {
        const x = tf.zeros([B * 64, 128 * 128]);
        let y: ReturnType<typeof tf.zeros> | null = null;
        return {
          run: () => {
            y?.dispose();
            y = tf.sum(x, 1);
          },
          sync: tfSync(tf, device),
          dispose: () => {
            x.dispose();
            y?.dispose();
          },
        };
      },
    },
  ];
}
