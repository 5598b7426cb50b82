/**
 * Matrix products: `matmul` (rank 2 or batched, optional transposes, one operand may broadcast over
 * the other's batch) and `linear` (PyTorch nn.Linear, with an optional fused activation). Both run
 * on the GEMM kernels (src/kernels/gemm.ts); the backward rules are GEMMs with transposes, summing
 * over the batch inside the kernel where an operand was broadcast.
 */
import { isGradEnabled, record } from '../autograd/tape.js';
import { runUnary, runUnaryGrad } from '../kernels/elementwise.js';
import { runGemm, type GemmAct } from '../kernels/gemm.js';
import { Tensor } from '../tensor/tensor.js';
import { fmt, numel, sameShape, ShapeError, type Shape } from '../util/shape.js';
import { sumTo } from './reduce.js';

export interface MatmulOptions {
  /** Use the transpose of a's last two dims. */
  transA?: boolean;
  /** Use the transpose of b's last two dims. */
  transB?: boolean;
}

/** A stored operand of a GEMM: its tensor, whether it is transposed, and its per-item stride. */
interface Operand {
  t: Tensor;
  trans: boolean;
  /** Elements between batch items; 0 when the operand is shared by every item. */
  stride: number;
}

/**
 * out (batch or 1, M, N) = sum over items of op(x) . op(y). When `sum` is set the `batch` items are
 * summed into one output (the gradient of a broadcast operand); otherwise there are `batch` outputs.
 */
function gemmInto(
  out: Tensor,
  x: Operand,
  y: Operand,
  M: number,
  N: number,
  K: number,
  batch: number,
  sum: boolean,
): void {
  runGemm({
    a: x.t,
    b: y.t,
    c: out,
    M,
    N,
    K,
    transA: x.trans,
    transB: y.trans,
    ...(sum
      ? { batch: 1, kb: batch, aSumStride: x.stride, bSumStride: y.stride }
      : { batch, kb: 1, aBatchStride: x.stride, bBatchStride: y.stride, aSumStride: 0, bSumStride: 0 }),
  });
}

/**
 * torch.matmul for operands of rank >= 2: op(a) (..., M, K) . op(b) (..., K, N) -> (..., M, N).
 * The leading (batch) dims must be equal, or one operand must be rank 2 (shared by every item).
 */
export function matmul(a: Tensor, b: Tensor, opts: MatmulOptions = {}): Tensor {
  const transA = opts.transA ?? false;
  const transB = opts.transB ?? false;
  const bad = (why: string) =>
    new ShapeError(
      `matmul: ${why}: a ${fmt(a.shape)}${transA ? ' (transposed)' : ''}, b ${fmt(b.shape)}${transB ? ' (transposed)' : ''}`,
    );
  if (a.dtype !== 'f32' || b.dtype !== 'f32') throw bad('expects f32 tensors');
  if (a.shape.length < 2 || b.shape.length < 2) throw bad('operands must have rank >= 2');
  const [ra, ca] = a.shape.slice(-2) as [number, number];
  const [rb, cb] = b.shape.slice(-2) as [number, number];
  const M = transA ? ca : ra;
  const K = transA ? ra : ca;
  const Kb = transB ? cb : rb;
  const N = transB ? rb : cb;
  if (K !== Kb) throw bad(`inner dimensions ${K} and ${Kb} differ`);
  const leadA = a.shape.slice(0, -2);
  const leadB = b.shape.slice(0, -2);
  const aShared = leadA.length === 0 && leadB.length > 0;
  const bShared = leadB.length === 0 && leadA.length > 0;
  if (!aShared && !bShared && !sameShape(leadA, leadB)) throw bad('batch dimensions differ');
  const lead = leadA.length >= leadB.length ? leadA : leadB;
  const batch = numel(lead);
  const out = Tensor.empty(a.gpu, [...lead, M, N]);
  const A: Operand = { t: a, trans: transA, stride: aShared ? 0 : M * K };
  const B: Operand = { t: b, trans: transB, stride: bShared ? 0 : K * N };
  gemmInto(out, A, B, M, N, K, batch, false);
  // da reads b and db reads a: keep each only when the other side needs a gradient.
  const save = [...(a.requiresGrad ? [b] : []), ...(b.requiresGrad ? [a] : [])];
  return record('matmul', out, [a, b], save, (g, needs) => {
    const G = (trans: boolean): Operand => ({ t: g, trans, stride: M * N });
    let da: Tensor | null = null;
    let db: Tensor | null = null;
    if (needs[0]) {
      da = Tensor.empty(g.gpu, a.shape);
      // op(A)' = dC . op(B)^T; stored A^T' = op(B) . dC^T.
      if (!transA) gemmInto(da, G(false), { ...B, trans: !transB }, M, K, N, batch, aShared);
      else gemmInto(da, B, G(true), K, M, N, batch, aShared);
    }
    if (needs[1]) {
      db = Tensor.empty(g.gpu, b.shape);
      // op(B)' = op(A)^T . dC; stored B^T' = dC^T . op(A).
      if (!transB) gemmInto(db, { ...A, trans: !transA }, G(false), K, N, M, batch, bShared);
      else gemmInto(db, G(true), A, N, K, M, batch, bShared);
    }
    return [da, db];
  });
}

export interface LinearOptions {
  /** Activation fused into the GEMM epilogue (its backward is handled too). */
  act?: GemmAct;
}

/**
 * PyTorch nn.Linear: x (..., in), weight (out, in), bias (out) -> act(x . weight^T + bias), (..., out).
 * Backward: dx = dz . W, dW = dz^T . x over all leading rows, db = column sums of dz, where
 * dz = dy * act'(z). With GELU and gradients on, the pre-activation z is kept for the backward (the
 * activation then runs as a separate pass); ReLU's derivative is read from the output.
 */
export function linear(x: Tensor, weight: Tensor, bias?: Tensor | null, opts: LinearOptions = {}): Tensor {
  const act = opts.act ?? 'none';
  const shapes = () =>
    `input ${fmt(x.shape)}, weight ${fmt(weight.shape)}${bias ? `, bias ${fmt(bias.shape)}` : ''}`;
  if (x.dtype !== 'f32' || weight.dtype !== 'f32' || (bias && bias.dtype !== 'f32'))
    throw new ShapeError(`linear: expects f32 tensors (${shapes()})`);
  if (weight.shape.length !== 2) throw new ShapeError(`linear: weight must have rank 2 (${shapes()})`);
  if (x.shape.length < 1) throw new ShapeError(`linear: input must have rank >= 1 (${shapes()})`);
  const [outF, inF] = weight.shape as [number, number];
  if (x.shape[x.shape.length - 1] !== inF)
    throw new ShapeError(
      `linear: input features ${x.shape[x.shape.length - 1]} != weight in ${inF} (${shapes()})`,
    );
  if (bias && !sameShape(bias.shape, [outF]))
    throw new ShapeError(`linear: bias must have shape ${fmt([outF])} (${shapes()})`);
  const lead = x.shape.slice(0, -1);
  const rows = numel(lead);
  const outShape: Shape = [...lead, outF];
  const inputs = bias ? [x, weight, bias] : [x, weight];
  const tracked = isGradEnabled() && inputs.some((t) => t.requiresGrad);

  const gemm = (c: Tensor, fused: GemmAct) =>
    runGemm({ a: x, b: weight, c, bias: bias ?? null, M: rows, N: outF, K: inF, transB: true, act: fused });

  const y = Tensor.empty(x.gpu, outShape);
  let z: Tensor | null = null; // pre-activation, kept for GELU's backward
  if (act === 'gelu' && tracked) {
    z = Tensor.empty(x.gpu, outShape);
    gemm(z, 'none');
    runUnary('gelu', z, y);
  } else {
    gemm(y, act);
  }
  // dx reads the weight, dW reads x; the activation's derivative reads y (ReLU) or z (GELU).
  const saved = [
    ...(x.requiresGrad ? [weight] : []),
    ...(weight.requiresGrad ? [x] : []),
    ...(act === 'relu' ? [y] : []),
    ...(z ? [z] : []),
  ];
  const out = record('linear', y, inputs, saved, (g, needs) => {
    // dz = dy * act'(z).
    let dz = g;
    if (act !== 'none') {
      dz = Tensor.empty(g.gpu, g.shape);
      runUnaryGrad(act, act === 'relu' ? y : z!, g, dz);
    }
    let dx: Tensor | null = null;
    let dw: Tensor | null = null;
    let db: Tensor | null = null;
    if (needs[0]) {
      dx = Tensor.empty(g.gpu, x.shape);
      runGemm({ a: dz, b: weight, c: dx, M: rows, N: inF, K: outF });
    }
    if (needs[1]) {
      dw = Tensor.empty(g.gpu, weight.shape);
      runGemm({ a: dz, b: x, c: dw, M: outF, N: inF, K: rows, transA: true });
    }
    if (bias && needs[2]) {
      const flat = dz.view([rows, outF]);
      db = sumTo(flat, [outF]);
      flat.dispose();
    }
    if (dz !== g) dz.dispose();
    return bias ? [dx, dw, db] : [dx, dw];
  });
  z?.dispose();
  return out;
}
