/**
 * GEMM (nn.Linear forward: y = x . W^T + b) vs tfjs fused matMul on the ViT-B and decoder shapes:
 * qkv at 224 input (196 tokens, one window) and at 512 (9 windows of 14x14 = 1764 tokens), MLP
 * lin1/lin2 and proj at 512 (1024 tokens), a decoder cross-attention projection over B*1024
 * image tokens (B = 24; --quick: 2).
 */
import type { Tensor2D, Tensor1D } from '@tensorflow/tfjs-core';
import { runGemm } from '../src/kernels/gemm.js';
import { Tensor } from '../src/tensor/tensor.js';
import { oursSync, tfSync, type BenchCase, type Tf } from './harness.js';
import type { BenchOpts } from './run.js';

export function cases(o: BenchOpts): BenchCase[] {
  const B = o.quick ? 2 : 24;
  const shapes: [string, number, number, number][] = [
    ['vit qkv @224', 196, 768, 2304],
    ['vit qkv @512 (windows)', 1764, 768, 2304],
    ['vit mlp lin1 @512', 1024, 768, 3072],
    ['vit mlp lin2 @512', 1024, 3072, 768],
    ['vit proj @512', 1024, 768, 768],
    [`decoder k_proj B=${B}`, B * 1024, 256, 128],
  ];
  return shapes.map(([name, M, K, N]) => ({
    kernel: 'gemm',
    shape: `${name} ${M}x${K}->${N}`,
    flops: 2 * M * N * K,
    ours(gpu) {
      const x = Tensor.zeros(gpu, [M, K]);
      const w = Tensor.zeros(gpu, [N, K]);
      const b = Tensor.zeros(gpu, [N]);
      const y = Tensor.empty(gpu, [M, N]);
      return {
        run: () => runGemm({ a: x, b: w, c: y, bias: b, M, N, K, transB: true }),
        sync: oursSync(gpu),
        dispose: () => [x, w, b, y].forEach((t) => t.dispose()),
      };
    },
    tfjs(tf: Tf, device: GPUDevice) {
      const x = tf.zeros([M, K]) as Tensor2D;
      const w = tf.zeros([N, K]) as Tensor2D;
      const b = tf.zeros([N]) as Tensor1D;
      let y: { dispose(): void } | null = null;
      return {
        run: () => {
          y?.dispose();
          y = tf.fused.matMul({ a: x, b: w, transposeB: true, bias: b });
        },
        sync: tfSync(tf, device),
        dispose: () => {
          [x, w, b].forEach((t) => t.dispose());
          y?.dispose();
        },
      };
    },
  }));
}
