/**
 * Attention vs tfjs (matMul, softmax, matMul composed; tfjs has no fused attention) at the SAM
 * shapes: ViT-B windowed attention at 512 input (9 windows x 12 heads, 196 tokens incl. padding,
 * d 64, decomposed rel-pos), global attention (12 heads, 1024 tokens, rel-pos) and the decoder's
 * cross-attentions at batch 24 (--quick: 2; 8 heads, d 16). Ours computes the rel-pos terms from
 * the tables; tfjs gets the (BH, L, L) bias precomputed and only adds it (in its favour).
 */
import { noGrad } from '../src/autograd/tape.js';
import { attentionCore } from '../src/ops/attention.js';
import { Tensor } from '../src/tensor/tensor.js';
import { oursSync, tfSync, type BenchCase, type Tf } from './harness.js';
import type { BenchOpts } from './run.js';
import type { Tensor3D } from '@tensorflow/tfjs-core';

interface AttnShape {
  name: string;
  BH: number;
  Lq: number;
  Lk: number;
  d: number;
  grid?: number;
}

export function cases(o: BenchOpts): BenchCase[] {
  const B = o.quick ? 2 : 24;
  const shapes: AttnShape[] = [
    { name: 'vit window 14x14 @512', BH: 9 * 12, Lq: 196, Lk: 196, d: 64, grid: 14 },
    { name: 'vit global 32x32 @512', BH: 12, Lq: 1024, Lk: 1024, d: 64, grid: 32 },
    { name: `decoder token->image B=${B}`, BH: B * 8, Lq: 10, Lk: 1024, d: 16 },
    { name: `decoder image->token B=${B}`, BH: B * 8, Lq: 1024, Lk: 10, d: 16 },
  ];
  return shapes.map((s) => ({
    kernel: 'attention',
    shape: `${s.name} (${s.BH}x${s.Lq}x${s.Lk}, d${s.d})`,
    flops: 4 * s.BH * s.Lq * s.Lk * s.d,
    ours(gpu) {
      const q = Tensor.zeros(gpu, [s.BH, s.Lq, s.d]);
      const k = Tensor.zeros(gpu, [s.BH, s.Lk, s.d]);
      const v = Tensor.zeros(gpu, [s.BH, s.Lk, s.d]);
      const rel = s.grid
        ? {
            relH: Tensor.zeros(gpu, [2 * s.grid - 1, s.d]),
            relW: Tensor.zeros(gpu, [2 * s.grid - 1, s.d]),
            gridH: s.grid,
            gridW: s.grid,
          }
        : undefined;
      let out: Tensor | null = null;
      return {
        run: () => {
          out?.dispose();
          out = noGrad(() => attentionCore(q, k, v, { scale: 1 / Math.sqrt(s.d), relPos: rel }));
        },
        sync: oursSync(gpu),
        dispose: () => {
          [q, k, v].forEach((t) => t.dispose());
          rel?.relH.dispose();
          rel?.relW.dispose();
          out?.dispose();
        },
      };
    },
    tfjs(tf: Tf, device: GPUDevice) {
      const q = tf.zeros([s.BH, s.Lq, s.d]) as Tensor3D;
      const k = tf.zeros([s.BH, s.Lk, s.d]) as Tensor3D;
      const v = tf.zeros([s.BH, s.Lk, s.d]) as Tensor3D;
      const bias = s.grid ? (tf.zeros([s.BH, s.Lq, s.Lk]) as Tensor3D) : null;
      let out: { dispose(): void } | null = null;
      return {
        run: () => {
          out?.dispose();
          out = tf.tidy(() => {
            let logits = tf.mul(tf.matMul(q, k, false, true), 1 / Math.sqrt(s.d));
            if (bias) logits = tf.add(logits, bias);
            return tf.matMul(tf.softmax(logits), v);
          });
        },
        sync: tfSync(tf, device),
        dispose: () => {
          [q, k, v].forEach((t) => t.dispose());
          bias?.dispose();
          out?.dispose();
        },
      };
    },
  }));
}
