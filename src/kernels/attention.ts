/**
 * TS face of kernels/attention.wgsl and kernels/attention_sg.wgsl: fused attention forward
 * (online softmax, saves logsumexp), its backward from the logsumexp, and the decomposed rel-pos
 * helpers. Variants per adapter:
 * - 'sg'    CPU adapter with subgroups of exactly 8 lanes (lavapipe): a query (key) row per lane,
 *           streamed rows shared by subgroupBroadcast (attention_sg.wgsl).
 * - 'plain' CPU adapter otherwise: same structure, every invocation loads the streamed rows.
 * - 'tiled' real GPUs: forward stages K/V tiles in workgroup memory, 64 rows per workgroup;
 *           backward runs the plain kernels with 64 rows per workgroup.
 *
 * Sizes that can exceed a storage binding: every per-(batch*head) tensor (q, k, v, out, lse,
 * stats, rel, their gradients) is split along the BH axis with batchChunks()/bindSlice(); the rel
 * tables and their gradients are small (2n-1 rows) and bound whole. In SAM-LST none of them comes
 * near 128 MiB (largest: decoder k/v at batch 24, 12.6 MB; the encoder runs at batch 1), but the
 * split is exercised by the tests with a tiny binding limit.
 */
import type { Binding, Gpu } from '../gpu/device.js';
import { defineKernel } from '../gpu/kernel.js';
import { Tensor } from '../tensor/tensor.js';
import { ceilDiv } from '../util/shape.js';
import { grid1d } from './grid.js';
import { runGemm } from './gemm.js';
import { batchChunks, bindSlice } from './split.js';
import { attention as source, attentionSg as sourceSg } from './wgsl.gen.js';

export type AttentionVariant = 'sg' | 'plain' | 'tiled';

const fusedUniforms = [
  ['Lq', 'u32'],
  ['Lk', 'u32'],
  ['d4', 'u32'],
  ['scale', 'f32'],
  ['gh', 'u32'],
  ['gw', 'u32'],
  ['q_base', 'u32'],
  ['k_base', 'u32'],
  ['v_base', 'u32'],
  ['g_base', 'u32'],
  ['a_base', 'u32'],
  ['b_base', 'u32'],
  ['r_base', 'u32'],
  ['s_base', 'u32'],
] as const;
const relUniforms = [
  ['rows', 'u32'],
  ['L', 'u32'],
  ['d4', 'u32'],
  ['gh', 'u32'],
  ['gw', 'u32'],
  ['nbh', 'u32'],
  ['q_base', 'u32'],
  ['r_base', 'u32'],
  ['accum', 'u32'],
] as const;
const fwdStorage = [
  ['q', 'read'],
  ['k', 'read'],
  ['v', 'read'],
  ['rel', 'read'],
  ['o', 'read_write'],
  ['lse', 'read_write'],
] as const;
const bwdStorage = [
  ['q', 'read'],
  ['k', 'read'],
  ['v', 'read'],
  ['rel', 'read'],
  ['dout', 'read'],
  ['stats', 'read'],
  ['ga', 'read_write'],
  ['gb', 'read_write'],
] as const;

/** Rows per workgroup of the plain kernels on CPU adapters / GPUs, and of the 1-D helpers. */
const PLAIN_WG = 8;
const GPU_WG = 64;
const LINEAR_WG = 64;

const plain = { file: 'attention', source, uniforms: fusedUniforms } as const;
const sg = { file: 'attention_sg', source: sourceSg, uniforms: fusedUniforms } as const;
const rel = { file: 'attention', source, uniforms: relUniforms, uniformStruct: 'RelParams' } as const;

export const attnFwdKernel = defineKernel({
  ...plain,
  entry: 'attn_fwd',
  storage: fwdStorage,
  overrides: { WG: PLAIN_WG },
});
export const attnFwdTiledKernel = defineKernel({
  ...plain,
  entry: 'attn_fwd_tiled',
  storage: fwdStorage,
  overrides: { WG: GPU_WG },
});
export const attnFwdSgKernel = defineKernel({
  ...sg,
  entry: 'attn_fwd_sg',
  storage: fwdStorage,
});
export const attnDeltaKernel = defineKernel({
  ...plain,
  entry: 'attn_delta',
  storage: [
    ['fo', 'read'],
    ['fdo', 'read'],
    ['flse', 'read'],
    ['fstats', 'read_write'],
  ],
  overrides: { WG: LINEAR_WG },
});
export const attnBwdQKernel = defineKernel({
  ...plain,
  entry: 'attn_bwd_q',
  storage: bwdStorage,
  overrides: { WG: PLAIN_WG },
});
export const attnBwdKvKernel = defineKernel({
  ...plain,
  entry: 'attn_bwd_kv',
  storage: bwdStorage,
  overrides: { WG: PLAIN_WG },
});
export const attnBwdQSgKernel = defineKernel({
  ...sg,
  entry: 'attn_bwd_q_sg',
  storage: bwdStorage,
});
export const attnBwdKvSgKernel = defineKernel({
  ...sg,
  entry: 'attn_bwd_kv_sg',
  storage: bwdStorage,
});
export const relposPickKernel = defineKernel({
  ...rel,
  entry: 'relpos_pick',
  storage: [
    ['prod', 'read'],
    ['rel_pick', 'read_write'],
  ],
  overrides: { WG: LINEAR_WG },
});
export const relposBwdDqKernel = defineKernel({
  ...rel,
  entry: 'relpos_bwd_dq',
  storage: [
    ['drel_in', 'read'],
    ['tab_h', 'read'],
    ['tab_w', 'read'],
    ['dq_io', 'read_write'],
  ],
  overrides: { WG: LINEAR_WG },
});
export const relposBwdTableKernel = defineKernel({
  ...rel,
  entry: 'relpos_bwd_table',
  storage: [
    ['drel_in', 'read'],
    ['qt', 'read'],
    ['dtab_h', 'read_write'],
    ['dtab_w', 'read_write'],
  ],
  overrides: { WG: LINEAR_WG },
});

/** Largest head dim the kernels' private row arrays hold (16 vec4). */
export const MAX_HEAD_DIM = 64;

/**
 * 'tiled' on real GPUs; on CPU adapters 'sg' when subgroups are on and at least 8 lanes wide (the
 * kernels broadcast from lanes 0..7 of a workgroup of 8), else 'plain'.
 */
export function attentionVariant(gpu: Gpu): AttentionVariant {
  const p = gpu.profile;
  if (p.kind === 'gpu') return 'tiled';
  return p.subgroups && p.subgroupMinSize >= 8 ? 'sg' : 'plain';
}

/** A tensor operand starting `offset` elements into its buffer (packed q/k/v share one tensor). */
export interface Operand {
  t: Tensor;
  offset?: number;
}

/**
 * Problem geometry. q is (BH, Lq, d), k and v (BH, Lk, d), all row-major from their offsets.
 * gh, gw: rel-pos grid (gh*gw = Lq = Lk); gh = 0 disables rel-pos.
 */
export interface AttentionShape {
  BH: number;
  Lq: number;
  Lk: number;
  d: number;
  scale: number;
  gh: number;
  gw: number;
}

/** Floats per row of the rel / drel tensors: [relw padded to ceil8(gw) | relh padded to ceil4(gh)]. */
export function relRowStride(gh: number, gw: number): number {
  if (gh === 0) return 0;
  return Math.ceil(gw / 8) * 8 + Math.ceil(gh / 4) * 4;
}

function checkHeadDim(d: number): void {
  if (d % 4 !== 0 || d <= 0 || d > MAX_HEAD_DIM)
    throw new Error(
      `attention kernels: head dim ${d} must be a positive multiple of 4 up to ${MAX_HEAD_DIM}`,
    );
}

function checkShape(s: AttentionShape): void {
  const { BH, Lq, Lk, gh, gw } = s;
  if (BH <= 0 || Lq <= 0 || Lk <= 0) throw new Error(`attention kernels: empty problem ${JSON.stringify(s)}`);
  if (gh > 0 && (gh * gw !== Lq || Lq !== Lk))
    throw new Error(`attention kernels: rel-pos grid ${gh}x${gw} does not match Lq=${Lq}, Lk=${Lk}`);
}

/** BH chunks whose bindings fit the adapter, at most 65535 per dispatch (grid y). */
function bhChunks(gpu: Gpu, BH: number, perBh: readonly number[], what: string): [number, number][] {
  const out: [number, number][] = [];
  for (const [s, n] of batchChunks(gpu, BH, perBh, what)) {
    for (let o = 0; o < n; o += 65535) out.push([s + o, Math.min(65535, n - o)]);
  }
  return out;
}

function slice(gpu: Gpu, op: Operand, start: number, count: number): { binding: Binding; base: number } {
  return bindSlice(gpu, op.t, (op.offset ?? 0) + start, count);
}

/** Two small scratch buffers for unused rel bindings (one read, one written: they must differ). */
function dummies(gpu: Gpu): [Tensor, Tensor] {
  return [Tensor.zeros(gpu, [4]), Tensor.zeros(gpu, [4])];
}

export interface ForwardArgs {
  q: Operand;
  k: Operand;
  v: Operand;
  /** (BH, Lq, relRowStride) from runRelposForward; required when gh > 0. */
  rel?: Tensor | null;
  out: Tensor;
  lse: Tensor;
}

/** out = softmax(scale*q.k^T + rel bias) v, lse = logsumexp of each logit row. */
export function runAttentionForward(
  s: AttentionShape,
  a: ForwardArgs,
  variant: AttentionVariant = attentionVariant(a.out.gpu),
): void {
  checkShape(s);
  const gpu = a.out.gpu;
  const { BH, Lq, Lk, d } = s;
  checkHeadDim(d);
  const rs = relRowStride(s.gh, s.gw);
  if (rs && !a.rel) throw new Error('attention forward: rel-pos grid given without a rel tensor');
  const [dummy, dummyW] = dummies(gpu);
  dummyW.dispose();
  const kernel =
    variant === 'sg' ? attnFwdSgKernel : variant === 'tiled' ? attnFwdTiledKernel : attnFwdKernel;
  const wg = variant === 'tiled' ? GPU_WG : PLAIN_WG;
  const overrides: Record<string, number> = variant === 'sg' ? {} : { WG: wg };
  // Query rows per workgroup: the subgroup kernel gives each of its 8 lanes two rows.
  const rowsPerGroup = variant === 'sg' ? 2 * PLAIN_WG : wg;
  for (const [st, n] of bhChunks(gpu, BH, [Lq * d, Lk * d, Lk * d, Lq * rs, Lq * d, Lq], 'attention')) {
    const q = slice(gpu, a.q, st * Lq * d, n * Lq * d);
    const k = slice(gpu, a.k, st * Lk * d, n * Lk * d);
    const v = slice(gpu, a.v, st * Lk * d, n * Lk * d);
    const r = rs ? bindSlice(gpu, a.rel!, st * Lq * rs, n * Lq * rs) : { binding: dummy.binding(), base: 0 };
    const o = bindSlice(gpu, a.out, st * Lq * d, n * Lq * d);
    const l = bindSlice(gpu, a.lse, st * Lq, n * Lq);
    const u = {
      Lq,
      Lk,
      d4: d / 4,
      scale: s.scale,
      gh: s.gh,
      gw: s.gw,
      q_base: q.base / 4,
      k_base: k.base / 4,
      v_base: v.base / 4,
      g_base: 0,
      a_base: o.base / 4,
      b_base: 0,
      r_base: r.base / 4,
      s_base: l.base,
    };
    gpu.dispatch(
      kernel,
      [q.binding, k.binding, v.binding, r.binding, o.binding, l.binding],
      u,
      [ceilDiv(Lq, rowsPerGroup), n, 1],
      overrides,
    );
  }
  dummy.dispose();
}

export interface BackwardArgs {
  q: Operand;
  k: Operand;
  v: Operand;
  rel?: Tensor | null;
  out: Tensor;
  lse: Tensor;
  dout: Tensor;
  /** Outputs (any may be null when not needed; drel is required for rel-pos if dq or the tables need it). */
  dq: Tensor | null;
  dk: Tensor | null;
  dv: Tensor | null;
  drel?: Tensor | null;
}

/**
 * dq (without the rel-pos term; see runRelposBackwardDq), dk, dv and drel of sum(out * dout).
 * dq and drel come from one query-parallel pass, dk and dv from one key-parallel pass.
 */
export function runAttentionBackward(
  s: AttentionShape,
  a: BackwardArgs,
  variant: AttentionVariant = attentionVariant(a.out.gpu),
): void {
  checkShape(s);
  const gpu = a.out.gpu;
  const { BH, Lq, Lk, d } = s;
  checkHeadDim(d);
  const rs = relRowStride(s.gh, s.gw);
  const wantQ = !!a.dq || (rs > 0 && !!a.drel);
  const wantKv = !!a.dk || !!a.dv;
  if (!wantQ && !wantKv) return;
  const [dummyR, dummyW] = dummies(gpu);
  const stats = Tensor.empty(gpu, [BH * Lq * 2]);
  // stats = (lse, dout . out) per query row.
  for (const [st, n] of bhChunks(gpu, BH, [Lq * d, Lq * d, Lq, 2 * Lq], 'attention backward')) {
    const o = bindSlice(gpu, a.out, st * Lq * d, n * Lq * d);
    const g = bindSlice(gpu, a.dout, st * Lq * d, n * Lq * d);
    const l = bindSlice(gpu, a.lse, st * Lq, n * Lq);
    const t = bindSlice(gpu, stats, st * Lq * 2, n * Lq * 2);
    const u = {
      ...zeroFused(),
      Lq: n * Lq,
      d4: d / 4,
      a_base: o.base / 4,
      g_base: g.base / 4,
      s_base: l.base,
      b_base: t.base / 2,
    };
    gpu.dispatch(
      attnDeltaKernel,
      [o.binding, g.binding, l.binding, t.binding],
      u,
      grid1d(gpu, ceilDiv(n * Lq, LINEAR_WG)),
    );
  }
  const isSg = variant === 'sg';
  const wg = variant === 'tiled' ? GPU_WG : PLAIN_WG;
  const overrides: Record<string, number> = isSg ? {} : { WG: wg };
  const scratch: Tensor[] = [];
  const need = (t: Tensor | null | undefined, elems: number): Tensor => {
    if (t) return t;
    const x = Tensor.empty(gpu, [elems]);
    scratch.push(x);
    return x;
  };
  const perBh = [
    Lq * d,
    Lk * d,
    Lk * d,
    Lq * rs,
    Lq * d,
    2 * Lq,
    Math.max(Lq, Lk) * d,
    Math.max(Lq * rs, Lk * d),
  ];
  for (const [st, n] of bhChunks(gpu, BH, perBh, 'attention backward')) {
    const q = slice(gpu, a.q, st * Lq * d, n * Lq * d);
    const k = slice(gpu, a.k, st * Lk * d, n * Lk * d);
    const v = slice(gpu, a.v, st * Lk * d, n * Lk * d);
    const r = rs ? bindSlice(gpu, a.rel!, st * Lq * rs, n * Lq * rs) : { binding: dummyR.binding(), base: 0 };
    const g = bindSlice(gpu, a.dout, st * Lq * d, n * Lq * d);
    const t = bindSlice(gpu, stats, st * Lq * 2, n * Lq * 2);
    const base = {
      Lq,
      Lk,
      d4: d / 4,
      scale: s.scale,
      gh: s.gh,
      gw: s.gw,
      q_base: q.base / 4,
      k_base: k.base / 4,
      v_base: v.base / 4,
      g_base: g.base / 4,
      r_base: r.base / 4,
      s_base: t.base / 2,
    };
    if (wantQ) {
      const dq = bindSlice(gpu, need(a.dq, BH * Lq * d), st * Lq * d, n * Lq * d);
      const dr = rs
        ? bindSlice(gpu, need(a.drel, BH * Lq * rs), st * Lq * rs, n * Lq * rs)
        : { binding: dummyW.binding(), base: 0 };
      gpu.dispatch(
        isSg ? attnBwdQSgKernel : attnBwdQKernel,
        [q.binding, k.binding, v.binding, r.binding, g.binding, t.binding, dq.binding, dr.binding],
        { ...base, a_base: dq.base / 4, b_base: dr.base / 4 },
        [ceilDiv(Lq, wg), n, 1],
        overrides,
      );
    }
    if (wantKv) {
      const dk = bindSlice(gpu, need(a.dk, BH * Lk * d), st * Lk * d, n * Lk * d);
      const dv = bindSlice(gpu, need(a.dv, BH * Lk * d), st * Lk * d, n * Lk * d);
      gpu.dispatch(
        isSg ? attnBwdKvSgKernel : attnBwdKvKernel,
        [q.binding, k.binding, v.binding, r.binding, g.binding, t.binding, dk.binding, dv.binding],
        { ...base, a_base: dk.base / 4, b_base: dv.base / 4 },
        [ceilDiv(Lk, wg), n, 1],
        overrides,
      );
    }
  }
  for (const x of scratch) x.dispose();
  stats.dispose();
  dummyR.dispose();
  dummyW.dispose();
}

function zeroFused(): Record<string, number> {
  const u: Record<string, number> = {};
  for (const [n] of fusedUniforms) u[n] = 0;
  return u;
}

/** Geometry of the rel-pos helpers: q (BH, L, d) with L = gh*gw; tables (2gh-1, d), (2gw-1, d). */
export interface RelGeometry {
  BH: number;
  gh: number;
  gw: number;
  d: number;
}

function relBase(g: RelGeometry): Record<string, number> {
  return { rows: 0, L: g.gh * g.gw, d4: g.d / 4, gh: g.gh, gw: g.gw, nbh: 0, q_base: 0, r_base: 0, accum: 0 };
}

/**
 * rel (BH, L, relRowStride) = [q.Rw^T gathered per kx | q.Rh^T gathered per ky] with unscaled q:
 * the products of every query with every table row come from two GEMMs (q.Rw^T, q.Rh^T into one
 * (rows, 2gw-1 + 2gh-1) scratch), then relpos_pick gathers each row's relative offsets.
 */
export function runRelposForward(g: RelGeometry, q: Operand, tabH: Tensor, tabW: Tensor, rel: Tensor): void {
  const gpu = rel.gpu;
  checkHeadDim(g.d);
  const L = g.gh * g.gw;
  const rs = relRowStride(g.gh, g.gw);
  const nW = 2 * g.gw - 1;
  const nH = 2 * g.gh - 1;
  const ld = nW + nH;
  const chunks = bhChunks(gpu, g.BH, [L * g.d, L * rs, L * ld], 'attention rel-pos');
  const prod = Tensor.empty(gpu, [chunks[0]![1] * L * ld]);
  for (const [st, n] of chunks) {
    const rows = n * L;
    const aOffset = (q.offset ?? 0) + st * L * g.d;
    const gemm = { a: q.t, aOffset, c: prod, M: rows, K: g.d, transB: true, ldc: ld } as const;
    runGemm({ ...gemm, b: tabW, N: nW });
    runGemm({ ...gemm, b: tabH, N: nH, cOffset: nW });
    const r = bindSlice(gpu, rel, st * L * rs, rows * rs);
    gpu.dispatch(
      relposPickKernel,
      [prod.binding(), r.binding],
      { ...relBase(g), rows, r_base: r.base / 4 },
      grid1d(gpu, ceilDiv((rows * rs) / 4, LINEAR_WG)),
    );
  }
  prod.dispose();
}

/** dq += drel . R (the rel-pos part of the query gradient), in place. */
export function runRelposBackwardDq(
  g: RelGeometry,
  drel: Tensor,
  tabH: Tensor,
  tabW: Tensor,
  dq: Tensor,
): void {
  const gpu = dq.gpu;
  const L = g.gh * g.gw;
  const rs = relRowStride(g.gh, g.gw);
  for (const [st, n] of bhChunks(gpu, g.BH, [L * g.d, L * rs], 'attention rel-pos backward')) {
    const dr = bindSlice(gpu, drel, st * L * rs, n * L * rs);
    const dqs = bindSlice(gpu, dq, st * L * g.d, n * L * g.d);
    const u = { ...relBase(g), rows: n * L, q_base: dqs.base / 4, r_base: dr.base / 4 };
    gpu.dispatch(
      relposBwdDqKernel,
      [dr.binding, tabH.binding(), tabW.binding(), dqs.binding],
      u,
      grid1d(gpu, ceilDiv((n * L * g.d) / 4, LINEAR_WG)),
    );
  }
}

/** dRh, dRw (overwritten) = sums of drel x q over all (bh, query) pairs at each relative offset. */
export function runRelposBackwardTable(
  g: RelGeometry,
  drel: Tensor,
  q: Operand,
  dTabH: Tensor,
  dTabW: Tensor,
): void {
  const gpu = dTabH.gpu;
  const L = g.gh * g.gw;
  const rs = relRowStride(g.gh, g.gw);
  const threads = (2 * g.gh - 1 + 2 * g.gw - 1) * (g.d / 4);
  let first = true;
  for (const [st, n] of bhChunks(gpu, g.BH, [L * g.d, L * rs], 'attention rel-pos backward')) {
    const dr = bindSlice(gpu, drel, st * L * rs, n * L * rs);
    const qs = slice(gpu, q, st * L * g.d, n * L * g.d);
    const u = {
      ...relBase(g),
      nbh: n,
      q_base: qs.base / 4,
      r_base: dr.base / 4,
      accum: first ? 0 : 1,
    };
    gpu.dispatch(
      relposBwdTableKernel,
      [dr.binding, qs.binding, dTabH.binding(), dTabW.binding()],
      u,
      grid1d(gpu, ceilDiv(threads, LINEAR_WG)),
    );
    first = false;
  }
}
