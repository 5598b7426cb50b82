/**
 * Attention vs tfjs (matMul, softmax, matMul composed; tfjs has no fused attention) at the SAM
 * shapes: ViT-B windowed attention at 512 input (9 windows x 12 heads, 196 tokens incl. padding,
 * d 64, decomposed rel-pos), global attention (12 heads, 1024 tokens, rel-pos) and the decoder's
 * cross-attentions at batch 24 (--quick: 2; 8 heads, d 16). Both sides do the same work: the
 * decomposed rel-pos terms are computed from the tables (tfjs: gather the (2n-1, d) tables into
 * (n, n, d), batched matMul with q as SAM's PyTorch code does with einsum, broadcast-add).
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
      const n = s.grid ?? 0;
      const tabH = n ? tf.zeros([2 * n - 1, s.d]) : null;
      const tabW = n ? tf.zeros([2 * n - 1, s.d]) : null;
      // Index (qy, ky) -> qy - ky + n - 1 into the tables.
      const idx = n
        ? tf.tensor1d(
            Int32Array.from({ length: n * n }, (_, i) => Math.floor(i / n) - (i % n) + n - 1),
            'int32',
          )
        : null;
      let out: { dispose(): void } | null = null;
      return {
        run: () => {
          out?.dispose();
          out = tf.tidy(() => {
            let logits = tf.mul(tf.matMul(q, k, false, true), 1 / Math.sqrt(s.d));
            if (n && tabH && tabW && idx) {
              const Rh = tf.reshape(tf.gather(tabH, idx), [n, n, s.d]); // (qy, ky, d)
              const Rw = tf.reshape(tf.gather(tabW, idx), [n, n, s.d]); // (qx, kx, d)
              const q4 = tf.reshape(q, [s.BH, n, n, s.d]); // (b, qy, qx, d)
              // rel_h[b, qy, qx, ky] = sum_d q[b, qy, qx, d] * Rh[qy, ky, d]
              const qh = tf.reshape(tf.transpose(q4, [1, 0, 2, 3]), [n, s.BH * n, s.d]);
              const relH = tf.transpose(
                tf.reshape(tf.matMul(qh, Rh, false, true), [n, s.BH, n, n]),
                [1, 0, 2, 3],
              );
              // rel_w[b, qy, qx, kx] = sum_d q[b, qy, qx, d] * Rw[qx, kx, d]
              const qw = tf.reshape(tf.transpose(q4, [2, 0, 1, 3]), [n, s.BH * n, s.d]);
              const relW = tf.transpose(
                tf.reshape(tf.matMul(qw, Rw, false, true), [n, s.BH, n, n]),
                [1, 2, 0, 3],
              );
              const bias = tf.add(tf.reshape(relH, [s.BH, n, n, n, 1]), tf.reshape(relW, [s.BH, n, n, 1, n]));
              logits = tf.add(logits, tf.reshape(bias, [s.BH, s.Lq, s.Lk]));
            }
            return tf.matMul(tf.softmax(logits), v);
          });
        },
        sync: tfSync(tf, device),
        dispose: () => {
          [q, k, v].forEach((t) => t.dispose());
          [tabH, tabW, idx].forEach((t) => t?.dispose());
          out?.dispose();
        },
      };
    },
  }));
}
