/**
 * Normalisation ops with their backward rules: layerNorm (over the last dim), layerNorm2d (SAM's
 * LayerNorm2d: over C of NCHW at each pixel) and batchNorm2d (train mode with in-place running-stat
 * update, or eval mode with the running statistics). PyTorch semantics: biased variance for the
 * normalisation; the running variance is updated with the unbiased one.
 */
import { record } from '../autograd/tape.js';
import type { Gpu } from '../gpu/device.js';
import {
  runBatchNormBackward,
  runBatchNormEvalForward,
  runBatchNormTrainForward,
  type BnGeometry,
} from '../kernels/batchnorm.js';
import {
  runLayerNorm2dBackwardDwDb,
  runLayerNorm2dBackwardDx,
  runLayerNorm2dForward,
  runLayerNormBackwardDwDb,
  runLayerNormBackwardDx,
  runLayerNormForward,
} from '../kernels/layernorm.js';
import { Tensor } from '../tensor/tensor.js';
import { fmt, ShapeError, type Shape } from '../util/shape.js';

function checkF32(op: string, named: Record<string, Tensor>): void {
  for (const [k, t] of Object.entries(named))
    if (t.dtype !== 'f32') throw new ShapeError(`${op}: ${k} must be f32, got ${t.dtype} ${fmt(t.shape)}`);
}

function checkVector(op: string, what: string, t: Tensor, n: number, x: Shape): void {
  if (t.shape.length !== 1 || t.shape[0] !== n)
    throw new ShapeError(`${op}: ${what} has shape ${fmt(t.shape)}, expected [${n}] for input ${fmt(x)}`);
}

function checkEps(op: string, eps: number): void {
  if (!Number.isFinite(eps) || eps < 0)
    throw new ShapeError(`${op}: eps must be a finite number >= 0, got ${eps}`);
}

/** `t` when wanted, else disposes it and gives null. */
function keepIf(t: Tensor, wanted: boolean | undefined): Tensor | null {
  if (wanted) return t;
  t.dispose();
  return null;
}

const scratch = (gpu: Gpu) => (elems: number) => Tensor.empty(gpu, [elems]);

/** nn.LayerNorm over the last dimension with affine weight and bias of shape [D]. */
export function layerNorm(x: Tensor, weight: Tensor, bias: Tensor, eps = 1e-5): Tensor {
  const op = 'layerNorm';
  checkF32(op, { x, weight, bias });
  if (x.shape.length < 1) throw new ShapeError(`${op}: input must have rank >= 1, got ${fmt(x.shape)}`);
  const D = x.shape[x.shape.length - 1]!;
  checkVector(op, 'weight', weight, D, x.shape);
  checkVector(op, 'bias', bias, D, x.shape);
  checkEps(op, eps);
  const rows = D === 0 ? 0 : x.size / D;
  const gpu = x.gpu;
  const y = Tensor.empty(gpu, x.shape);
  const mean = Tensor.empty(gpu, [rows]);
  const rstd = Tensor.empty(gpu, [rows]);
  if (x.size > 0) runLayerNormForward(x, weight, bias, y, mean, rstd, rows, D, eps);
  record(op, y, [x, weight, bias], [x, weight, mean, rstd], (g, needs) => {
    let dx: Tensor | null = null;
    let dw: Tensor | null = null;
    let db: Tensor | null = null;
    if (needs[0]) {
      dx = Tensor.empty(gpu, x.shape);
      if (x.size > 0) runLayerNormBackwardDx(x, g, weight, mean, rstd, dx, rows, D);
    }
    if (needs[1] || needs[2]) {
      // Zero-filled only when there is nothing to sum (the kernels overwrite every element).
      const make = x.size > 0 ? Tensor.empty : Tensor.zeros;
      dw = make(gpu, [D]);
      db = make(gpu, [D]);
      if (x.size > 0) runLayerNormBackwardDwDb(x, g, mean, rstd, dw, db, rows, D, scratch(gpu));
      dw = keepIf(dw, needs[1]);
      db = keepIf(db, needs[2]);
    }
    return [dx, dw, db];
  });
  mean.dispose();
  rstd.dispose();
  return y;
}

function nchw(op: string, x: Tensor): BnGeometry {
  if (x.shape.length !== 4) throw new ShapeError(`${op}: input must be NCHW (rank 4), got ${fmt(x.shape)}`);
  const [N, C, H, W] = x.shape as [number, number, number, number];
  return { N, C, HW: H * W };
}

/** SAM's LayerNorm2d: normalises over C at each pixel of NCHW x, per-channel weight and bias. */
export function layerNorm2d(x: Tensor, weight: Tensor, bias: Tensor, eps = 1e-6): Tensor {
  const op = 'layerNorm2d';
  checkF32(op, { x, weight, bias });
  const { N, C, HW } = nchw(op, x);
  checkVector(op, 'weight', weight, C, x.shape);
  checkVector(op, 'bias', bias, C, x.shape);
  checkEps(op, eps);
  const gpu = x.gpu;
  const y = Tensor.empty(gpu, x.shape);
  const mean = Tensor.empty(gpu, [N * HW]);
  const rstd = Tensor.empty(gpu, [N * HW]);
  const empty = x.size === 0;
  if (!empty) runLayerNorm2dForward(x, weight, bias, y, mean, rstd, N, C, HW, eps);
  record(op, y, [x, weight, bias], [x, weight, mean, rstd], (g, needs) => {
    let dx: Tensor | null = null;
    let dw: Tensor | null = null;
    let db: Tensor | null = null;
    if (needs[0]) {
      dx = Tensor.empty(gpu, x.shape);
      if (!empty) runLayerNorm2dBackwardDx(x, g, weight, mean, rstd, dx, N, C, HW);
    }
    if (needs[1] || needs[2]) {
      const make = empty ? Tensor.zeros : Tensor.empty;
      dw = make(gpu, [C]);
      db = make(gpu, [C]);
      if (!empty) runLayerNorm2dBackwardDwDb(x, g, mean, rstd, dw, db, N, C, HW, scratch(gpu));
      dw = keepIf(dw, needs[1]);
      db = keepIf(db, needs[2]);
    }
    return [dx, dw, db];
  });
  mean.dispose();
  rstd.dispose();
  return y;
}

export interface BatchNormOptions {
  /** Batch statistics (and running-stat update) when true; running statistics when false. */
  training: boolean;
  momentum?: number;
  eps?: number;
}

/**
 * nn.BatchNorm2d. In training mode the batch statistics normalise x and, when given, runningMean
 * and runningVar are updated IN PLACE: r = (1 - momentum) r + momentum * batch stat, with the
 * unbiased batch variance. In eval mode the running statistics normalise x (they are required).
 * Gradients flow to x, weight and bias; never to the running statistics.
 */
export function batchNorm2d(
  x: Tensor,
  weight: Tensor,
  bias: Tensor,
  runningMean: Tensor | null,
  runningVar: Tensor | null,
  opts: BatchNormOptions,
): Tensor {
  const op = 'batchNorm2d';
  const eps = opts.eps ?? 1e-5;
  const momentum = opts.momentum ?? 0.1;
  checkF32(op, { x, weight, bias });
  const g = nchw(op, x);
  checkVector(op, 'weight', weight, g.C, x.shape);
  checkVector(op, 'bias', bias, g.C, x.shape);
  if (runningMean) {
    checkF32(op, { runningMean });
    checkVector(op, 'runningMean', runningMean, g.C, x.shape);
  }
  if (runningVar) {
    checkF32(op, { runningVar });
    checkVector(op, 'runningVar', runningVar, g.C, x.shape);
  }
  if ((runningMean === null) !== (runningVar === null))
    throw new ShapeError(`${op}: give both runningMean and runningVar or neither (input ${fmt(x.shape)})`);
  checkEps(op, eps);
  if (!Number.isFinite(momentum)) throw new ShapeError(`${op}: momentum must be finite, got ${momentum}`);
  const gpu = x.gpu;
  const training = opts.training;
  const perChannel = g.N * g.HW;
  if (training && perChannel <= 1)
    throw new ShapeError(
      `${op}: expected more than 1 value per channel when training, got input ${fmt(x.shape)}`,
    );
  if (!training && (!runningMean || !runningVar))
    throw new ShapeError(`${op}: eval mode needs runningMean and runningVar (input ${fmt(x.shape)})`);
  const y = Tensor.empty(gpu, x.shape);
  const stats = Tensor.empty(gpu, [2 * g.C]);
  if (training)
    runBatchNormTrainForward(
      g,
      { x, w: weight, b: bias, runningMean, runningVar, y, stats, eps, momentum },
      scratch(gpu),
    );
  else
    runBatchNormEvalForward(
      g,
      { x, w: weight, b: bias, runningMean: runningMean!, runningVar: runningVar!, y, stats, eps },
      scratch(gpu),
    );
  record(op, y, [x, weight, bias], [x, weight, stats], (grad, needs) => {
    const dx = needs[0] ? Tensor.empty(gpu, x.shape) : null;
    const dw = needs[1] ? Tensor.empty(gpu, [g.C]) : null;
    const db = needs[2] ? Tensor.empty(gpu, [g.C]) : null;
    runBatchNormBackward(g, { x, dy: grad, w: weight, stats, train: training, dx, dw, db }, scratch(gpu));
    return [dx, dw, db];
  });
  stats.dispose();
  return y;
}
