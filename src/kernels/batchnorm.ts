/**
 * TS face of kernels/batchnorm.wgsl: BatchNorm2d over NCHW (per-channel statistics over N, H, W).
 *
 * Train forward: per-lane two-pass partials (bn_stats) -> exact merge per channel, running-stat
 * update in place and the apply coefficients (bn_stats_final) -> y (bn_apply). Eval forward:
 * coefficients from the running statistics (bn_eval_coef) -> y. Backward: per-lane sums of dy and
 * dy*(x-mean) (bn_grad) -> dw, db and the dx coefficients (bn_grad_final) -> dx (bn_apply).
 * `stats` (2*C: mean then rstd) is what the forward saves for backward.
 *
 * The same kernels serve CPU and GPU adapters: lanes of a plane interleave over elements, which is
 * coalesced on GPUs and costs nothing on lavapipe, and there are no barriers. vec4 entries run when
 * H*W % 4 == 0. Tensors over the binding limit are processed in chunks of samples.
 */
import type { Gpu } from '../gpu/device.js';
import { defineKernel } from '../gpu/kernel.js';
import type { Tensor } from '../tensor/tensor.js';
import { ceilDiv } from '../util/shape.js';
import { grid1d } from './grid.js';
import { planeLanes } from './layernorm.js';
import { batchChunks, bindSlice, type Slice } from './split.js';
import { batchnorm as source } from './wgsl.gen.js';

const WG = 64;

const common = {
  file: 'batchnorm',
  source,
  uniforms: [
    ['N', 'u32'],
    ['C', 'u32'],
    ['HW', 'u32'],
    ['lanes', 'u32'],
    ['x_base', 'u32'],
    ['u_base', 'u32'],
    ['o_base', 'u32'],
    ['p_off', 'u32'],
    ['T', 'u32'],
    ['count', 'f32'],
    ['eps', 'f32'],
    ['momentum', 'f32'],
    ['flags', 'u32'],
  ],
  overrides: { WG },
} as const;

export const bnStats4Kernel = defineKernel({
  ...common,
  entry: 'bn_stats4',
  storage: [
    ['x4', 'read'],
    ['part', 'read_write'],
  ],
});
export const bnStatsKernel = defineKernel({
  ...common,
  entry: 'bn_stats',
  storage: [
    ['x', 'read'],
    ['part', 'read_write'],
  ],
});
export const bnStatsFinalKernel = defineKernel({
  ...common,
  entry: 'bn_stats_final',
  overrides: { WG, BLK: 64 },
  storage: [
    ['part_in', 'read'],
    ['w', 'read'],
    ['b', 'read'],
    ['stats_out', 'read_write'],
    ['coef_out', 'read_write'],
    ['rm', 'read_write'],
    ['rv', 'read_write'],
  ],
});
export const bnEvalCoefKernel = defineKernel({
  ...common,
  entry: 'bn_eval_coef',
  storage: [
    ['rm_in', 'read'],
    ['rv_in', 'read'],
    ['w_e', 'read'],
    ['b_e', 'read'],
    ['stats_e', 'read_write'],
    ['coef_e', 'read_write'],
  ],
});
export const bnApply4Kernel = defineKernel({
  ...common,
  entry: 'bn_apply4',
  overrides: { WG, HAS_U: 1 },
  storage: [
    ['u4', 'read'],
    ['v4', 'read'],
    ['coef', 'read'],
    ['out4', 'read_write'],
  ],
});
export const bnApplyKernel = defineKernel({
  ...common,
  entry: 'bn_apply',
  overrides: { WG, HAS_U: 1 },
  storage: [
    ['u', 'read'],
    ['v', 'read'],
    ['coef', 'read'],
    ['out', 'read_write'],
  ],
});
export const bnGrad4Kernel = defineKernel({
  ...common,
  entry: 'bn_grad4',
  storage: [
    ['x4', 'read'],
    ['dy4', 'read'],
    ['stats', 'read'],
    ['part2', 'read_write'],
  ],
});
export const bnGradKernel = defineKernel({
  ...common,
  entry: 'bn_grad',
  storage: [
    ['x', 'read'],
    ['dy', 'read'],
    ['stats', 'read'],
    ['part2', 'read_write'],
  ],
});
export const bnGradFinalKernel = defineKernel({
  ...common,
  entry: 'bn_grad_final',
  overrides: { WG, BLK: 64 },
  storage: [
    ['part2_in', 'read'],
    ['w', 'read'],
    ['stats_g', 'read'],
    ['dw', 'read_write'],
    ['db', 'read_write'],
    ['coef_g', 'read_write'],
  ],
});

const ZERO = {
  N: 0,
  C: 0,
  HW: 1,
  lanes: 1,
  x_base: 0,
  u_base: 0,
  o_base: 0,
  p_off: 0,
  T: 0,
  count: 0,
  eps: 0,
  momentum: 0,
  flags: 0,
};

/** Geometry of one BatchNorm2d call: x is (N, C, HW). */
export interface BnGeometry {
  N: number;
  C: number;
  HW: number;
}

/** Scratch allocation (elements) supplied by the ops layer, so kernels never create tensors. */
export type NewTensor = (elems: number) => Tensor;

interface Chunk {
  start: number;
  count: number;
  slices: Slice[];
}

function chunks(gpu: Gpu, g: BnGeometry, what: string, ts: readonly Tensor[]): Chunk[] {
  const item = g.C * g.HW;
  return batchChunks(gpu, g.N, [item], what).map(([start, count]) => ({
    start,
    count,
    slices: ts.map((t) => bindSlice(gpu, t, start * item, count * item)),
  }));
}

const vec4ok = (g: BnGeometry, cs: readonly Chunk[]) =>
  g.HW % 4 === 0 && cs.every((c) => c.slices.every((s) => s.base % 4 === 0));

function checkSizes(
  what: string,
  g: BnGeometry,
  big: readonly Tensor[],
  perChannel: readonly Tensor[],
): void {
  const n = g.N * g.C * g.HW;
  for (const t of big)
    if (t.size !== n) throw new Error(`${what}: ${t.describe()} should hold ${n} elements`);
  for (const t of perChannel)
    if (t.size !== g.C) throw new Error(`${what}: ${t.describe()} should hold ${g.C} elements`);
}

/** out = P*u + Q*(v - R) + S with coef[c] = (P, Q, R, S); u is skipped when `u` is null. */
function runApply(g: BnGeometry, u: Tensor | null, v: Tensor, coef: Tensor, out: Tensor, what: string): void {
  const gpu = v.gpu;
  const cs = chunks(gpu, g, what, [u ?? v, v, out]);
  const vec = vec4ok(g, cs);
  const items = vec ? g.HW / 4 : g.HW;
  const L = applyLanes(gpu, items);
  for (const ch of cs) {
    const [us, vs, os] = ch.slices as [Slice, Slice, Slice];
    gpu.dispatch(
      vec ? bnApply4Kernel : bnApplyKernel,
      [us.binding, vs.binding, coef.binding(), os.binding],
      { ...ZERO, N: ch.count, C: g.C, HW: g.HW, lanes: L, x_base: vs.base, u_base: us.base, o_base: os.base },
      grid1d(gpu, ceilDiv(ch.count * g.C * L, WG)),
      { WG, HAS_U: u ? 1 : 0 },
    );
  }
}

/**
 * Lanes per plane for bn_apply: on CPU adapters few lanes with long loops (per-invocation overhead
 * dominates there); on GPUs many lanes, for parallelism and coalescing.
 */
function applyLanes(gpu: Gpu, items: number): number {
  const per = gpu.profile.kind === 'cpu' ? 256 : 16;
  return Math.max(1, Math.min(256, ceilDiv(items, per), items));
}

export interface BnTrainForward {
  x: Tensor;
  w: Tensor;
  b: Tensor;
  /** Updated in place when given. */
  runningMean: Tensor | null;
  runningVar: Tensor | null;
  y: Tensor;
  /** 2*C: batch mean, then 1/sqrt(biased var + eps). */
  stats: Tensor;
  eps: number;
  momentum: number;
}

/** Train-mode forward: batch statistics, running-stat update, y. */
export function runBatchNormTrainForward(g: BnGeometry, a: BnTrainForward, newTensor: NewTensor): void {
  const what = 'batchNorm2d';
  checkSizes(
    what,
    g,
    [a.x, a.y],
    [a.w, a.b, ...(a.runningMean ? [a.runningMean] : []), ...(a.runningVar ? [a.runningVar] : [])],
  );
  if (a.stats.size !== 2 * g.C) throw new Error(`${what}: stats should hold ${2 * g.C} elements`);
  const gpu = a.x.gpu;
  const cs = chunks(gpu, g, what, [a.x]);
  const vec = vec4ok(g, cs);
  const L = planeLanes(vec ? g.HW / 4 : g.HW, g.N, g.C, 16, gpu.profile.maxStorageBindingBytes);
  const T = g.N * L;
  const part = newTensor(T * g.C * 4);
  for (const ch of cs) {
    const [xs] = ch.slices as [Slice];
    gpu.dispatch(
      vec ? bnStats4Kernel : bnStatsKernel,
      [xs.binding, part.binding()],
      { ...ZERO, N: ch.count, C: g.C, HW: g.HW, lanes: L, x_base: xs.base, p_off: ch.start * L },
      grid1d(gpu, ceilDiv(ch.count * g.C * L, WG)),
    );
  }
  const coef = newTensor(4 * g.C);
  const update = a.runningMean !== null && a.runningVar !== null;
  const rm = a.runningMean ?? newTensor(g.C);
  const rv = a.runningVar ?? newTensor(g.C);
  gpu.dispatch(
    bnStatsFinalKernel,
    [
      part.binding(),
      a.w.binding(),
      a.b.binding(),
      a.stats.binding(),
      coef.binding(),
      rm.binding(),
      rv.binding(),
    ],
    {
      ...ZERO,
      C: g.C,
      T,
      count: g.N * g.HW,
      eps: a.eps,
      momentum: a.momentum,
      flags: update ? 1 : 0,
    },
    grid1d(gpu, ceilDiv(g.C, WG)),
  );
  part.dispose();
  if (!a.runningMean) rm.dispose();
  if (!a.runningVar) rv.dispose();
  runApply(g, null, a.x, coef, a.y, what);
  coef.dispose();
}

export interface BnEvalForward {
  x: Tensor;
  w: Tensor;
  b: Tensor;
  runningMean: Tensor;
  runningVar: Tensor;
  y: Tensor;
  /** 2*C: running mean, then 1/sqrt(running var + eps). */
  stats: Tensor;
  eps: number;
}

/** Eval-mode forward: y = w (x - rm) / sqrt(rv + eps) + b (folded into per-channel coefficients). */
export function runBatchNormEvalForward(g: BnGeometry, a: BnEvalForward, newTensor: NewTensor): void {
  const what = 'batchNorm2d';
  checkSizes(what, g, [a.x, a.y], [a.w, a.b, a.runningMean, a.runningVar]);
  if (a.stats.size !== 2 * g.C) throw new Error(`${what}: stats should hold ${2 * g.C} elements`);
  const gpu = a.x.gpu;
  const coef = newTensor(4 * g.C);
  gpu.dispatch(
    bnEvalCoefKernel,
    [
      a.runningMean.binding(),
      a.runningVar.binding(),
      a.w.binding(),
      a.b.binding(),
      a.stats.binding(),
      coef.binding(),
    ],
    { ...ZERO, C: g.C, eps: a.eps },
    grid1d(gpu, ceilDiv(g.C, WG)),
  );
  runApply(g, null, a.x, coef, a.y, what);
  coef.dispose();
}

export interface BnBackward {
  x: Tensor;
  dy: Tensor;
  w: Tensor;
  /** The forward's stats (mean, rstd). */
  stats: Tensor;
  train: boolean;
  /** Outputs; null where not wanted. */
  dx: Tensor | null;
  dw: Tensor | null;
  db: Tensor | null;
}

/** Backward of either mode: dw, db (when asked) and dx (when asked). */
export function runBatchNormBackward(g: BnGeometry, a: BnBackward, newTensor: NewTensor): void {
  const what = 'batchNorm2d backward';
  checkSizes(
    what,
    g,
    [a.x, a.dy, ...(a.dx ? [a.dx] : [])],
    [a.w, ...(a.dw ? [a.dw] : []), ...(a.db ? [a.db] : [])],
  );
  const gpu = a.x.gpu;
  // Eval mode needs no sums for dx alone.
  const sums = a.train || a.dw !== null || a.db !== null;
  let part2: Tensor;
  let T = 0;
  if (sums) {
    const cs = chunks(gpu, g, what, [a.x, a.dy]);
    const vec = vec4ok(g, cs);
    const L = planeLanes(vec ? g.HW / 4 : g.HW, g.N, g.C, 8, gpu.profile.maxStorageBindingBytes);
    T = g.N * L;
    part2 = newTensor(T * g.C * 2);
    for (const ch of cs) {
      const [xs, gs] = ch.slices as [Slice, Slice];
      gpu.dispatch(
        vec ? bnGrad4Kernel : bnGradKernel,
        [xs.binding, gs.binding, a.stats.binding(), part2.binding()],
        {
          ...ZERO,
          N: ch.count,
          C: g.C,
          HW: g.HW,
          lanes: L,
          x_base: xs.base,
          u_base: gs.base,
          p_off: ch.start * L,
        },
        grid1d(gpu, ceilDiv(ch.count * g.C * L, WG)),
      );
    }
  } else {
    part2 = newTensor(2);
  }
  const dw = a.dw ?? newTensor(g.C);
  const db = a.db ?? newTensor(g.C);
  const coef = newTensor(4 * g.C);
  gpu.dispatch(
    bnGradFinalKernel,
    [part2.binding(), a.w.binding(), a.stats.binding(), dw.binding(), db.binding(), coef.binding()],
    { ...ZERO, C: g.C, T, count: g.N * g.HW, flags: a.train ? 1 : 0 },
    grid1d(gpu, ceilDiv(g.C, WG)),
  );
  part2.dispose();
  if (!a.dw) dw.dispose();
  if (!a.db) db.dispose();
  if (a.dx) {
    if (a.train) runApply(g, a.dy, a.x, coef, a.dx, what);
    else runApply(g, null, a.dy, coef, a.dx, what);
  }
  coef.dispose();
}
