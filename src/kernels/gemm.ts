/**
 * TS face of kernels/gemm.wgsl and kernels/gemm_sg.wgsl: batched, optionally transposed f32 GEMM
 * with a fused epilogue, C[z] = act(alpha * sum_{t<kb} op(A[z,t]) . op(B[z,t]) + bias + beta*C[z]).
 *
 * Variant per adapter (`gemmVariant`):
 * - 'sg'    CPU adapter with subgroups of at least 8 lanes (lavapipe): one subgroup per workgroup,
 *           TMx4 register tile per lane (TM = 24, 32 or 40 rows, picked per problem by
 *           `sgTileRows`), A rows shared by subgroupBroadcast (gemm_sg.wgsl).
 * - 'plain' no optional feature: 8x4 register tile per invocation, no shared memory.
 * - 'tiled' real GPUs: 64x64 shared-memory tiles, 256 invocations.
 * Each variant has a VEC override (whole-vec4 loads) used when every operand is 4-aligned, and a
 * scalar-gather path for any other shape.
 *
 * Bindings over the adapter's maxStorageBufferBindingSize are split: output batches, then rows,
 * columns and the reduction (k, and the summed items t) are cut into chunks whose bindings fit;
 * reduction chunks accumulate into C (beta = 1), bias is added by the first and the activation
 * applied by the last.
 */
import type { Gpu } from '../gpu/device.js';
import { defineKernel } from '../gpu/kernel.js';
import type { UniformLayout } from '../gpu/uniforms.js';
import type { Tensor } from '../tensor/tensor.js';
import { ceilDiv } from '../util/shape.js';
import { bindingLimitError, bindSlice, type Slice } from './split.js';
import { gemm as source, gemmSg as sourceSg } from './wgsl.gen.js';

const layout: UniformLayout = [
  ['M', 'u32'],
  ['N', 'u32'],
  ['K', 'u32'],
  ['kb', 'u32'],
  ['a_off', 'u32'],
  ['b_off', 'u32'],
  ['c_off', 'u32'],
  ['bias_off', 'u32'],
  ['a_bs', 'u32'],
  ['b_bs', 'u32'],
  ['c_bs', 'u32'],
  ['a_ts', 'u32'],
  ['b_ts', 'u32'],
  ['lda', 'u32'],
  ['ldb', 'u32'],
  ['ldc', 'u32'],
  ['alpha', 'f32'],
  ['beta', 'f32'],
  ['has_bias', 'u32'],
  ['act', 'u32'],
];

const storage = [
  ['a', 'read'],
  ['b', 'read'],
  ['bias', 'read'],
  ['c', 'read_write'],
] as const;
const overrides = { TRANS_A: 0, TRANS_B: 0, VEC: 1 };
/** The 'sg' kernels also take their tile height (see sgTileRows). */
const sgOverrides = { ...overrides, TM: 24 };

export const gemmPlainKernel = defineKernel({
  file: 'gemm',
  source,
  entry: 'gemm_plain',
  storage,
  uniforms: layout,
  overrides,
});
export const gemmTiledKernel = defineKernel({
  file: 'gemm',
  source,
  entry: 'gemm_tiled',
  storage,
  uniforms: layout,
  overrides,
});
export const gemmSgKernel = defineKernel({
  file: 'gemm_sg',
  source: sourceSg,
  entry: 'gemm_sg',
  storage,
  uniforms: layout,
  overrides: sgOverrides,
});

/** gemm_sg storing one vec4 per row and lane (C 4-aligned; dispatchChunk picks it). */
export const gemmSgC4Kernel = defineKernel({
  file: 'gemm_sg',
  source: sourceSg,
  entry: 'gemm_sg_c4',
  storage: [storage[0], storage[1], storage[2], ['c4', 'read_write']],
  uniforms: layout,
  overrides: sgOverrides,
});

export type GemmVariant = 'sg' | 'plain' | 'tiled';

/**
 * Output tile (rows, columns) of one workgroup, per variant (fixed in the WGSL). The 'sg' rows are
 * the smallest of SG_TILE_ROWS; a dispatch may use a taller one (sgTileRows).
 */
export const GEMM_TILES: Record<GemmVariant, readonly [number, number]> = {
  sg: [24, 32],
  plain: [64, 32],
  tiled: [64, 64],
};

/** Tile heights the 'sg' kernel supports (its TM override). */
export const SG_TILE_ROWS = [24, 32, 40] as const;
export type SgTileRows = (typeof SG_TILE_ROWS)[number];

/**
 * The 'sg' tile height for a problem of M rows: the one that computes the fewest rows, padding
 * included; ties go to the taller tile (fewer workgroups). On shapes all three heights divide,
 * their time per row measured equal within noise on lavapipe (paired in-process runs), so the
 * padding decides: M = 196 (ViT-B at 224) runs as 5 tiles of 40 = 200 rows instead of 9 of 24 =
 * 216.
 */
export function sgTileRows(M: number): SgTileRows {
  let best: SgTileRows = 24;
  let bestRows = Infinity;
  for (const tm of SG_TILE_ROWS) {
    const rows = Math.ceil(M / tm) * tm;
    if (rows <= bestRows) {
      best = tm;
      bestRows = rows;
    }
  }
  return best;
}
const KERNELS = { sg: gemmSgKernel, plain: gemmPlainKernel, tiled: gemmTiledKernel } as const;

export const GEMM_ACT = { none: 0, relu: 1, gelu: 2 } as const;
export type GemmAct = keyof typeof GEMM_ACT;

/** Lanes the subgroup kernel broadcasts across (one workgroup = one subgroup of 8 invocations). */
const SG_LANES = 8;

/**
 * The variant this adapter runs: 'tiled' on real GPUs; on CPU adapters 'sg' when subgroups are on
 * and at least 8 lanes wide (a workgroup of 8 then lies in one subgroup), else 'plain'.
 */
export function gemmVariant(gpu: Gpu): GemmVariant {
  const p = gpu.profile;
  if (p.kind === 'gpu') return 'tiled';
  return p.subgroups && p.subgroupMinSize >= SG_LANES ? 'sg' : 'plain';
}

/**
 * One GEMM problem over contiguous or strided operands. Element (m, k) of op(A[z, t]) is
 * A[aOffset + z*aBatchStride + t*aSumStride + m*lda + k] (transA: k*lda + m); B likewise with
 * (k, n) (transB: n*ldb + k); C[z](m, n) = C[cOffset + z*cBatchStride + m*ldc + n].
 */
export interface GemmArgs {
  a: Tensor;
  b: Tensor;
  c: Tensor;
  /** Per-column bias of length >= biasOffset + N. */
  bias?: Tensor | null;
  M: number;
  N: number;
  K: number;
  /** Output batches (default 1). */
  batch?: number;
  /** Products summed into each output batch (default 1). */
  kb?: number;
  transA?: boolean;
  transB?: boolean;
  /** Element strides per output batch; default contiguous (M*K, K*N, M*N) times kb; 0 broadcasts. */
  aBatchStride?: number;
  bBatchStride?: number;
  cBatchStride?: number;
  /** Element strides per summed product t; default M*K and K*N. */
  aSumStride?: number;
  bSumStride?: number;
  lda?: number;
  ldb?: number;
  ldc?: number;
  aOffset?: number;
  bOffset?: number;
  cOffset?: number;
  biasOffset?: number;
  alpha?: number;
  /** 0 overwrites C, 1 accumulates into it. */
  beta?: number;
  act?: GemmAct;
  /** Forces a variant (tests and benchmarks); default gemmVariant(gpu). */
  variant?: GemmVariant;
  /** Forces the 'sg' tile height (tests and benchmarks); default sgTileRows(M) per chunk. */
  tileRows?: SgTileRows;
}

interface Problem {
  M: number;
  N: number;
  K: number;
  batch: number;
  kb: number;
  transA: boolean;
  transB: boolean;
  lda: number;
  ldb: number;
  ldc: number;
  aBs: number;
  bBs: number;
  cBs: number;
  aTs: number;
  bTs: number;
  aOff: number;
  bOff: number;
  cOff: number;
}

/** A sub-problem: ranges of output batches, summed items, rows, columns and depth. */
interface Chunk {
  z: [number, number];
  t: [number, number];
  m: [number, number];
  n: [number, number];
  k: [number, number];
}

/** Elements spanned by A, B and C for the chunk sizes (bc, tc, mc, nc, kc), from first to last. */
function spans(
  p: Problem,
  bc: number,
  tc: number,
  mc: number,
  nc: number,
  kc: number,
): [number, number, number] {
  const itemA = p.transA ? (kc - 1) * p.lda + mc : (mc - 1) * p.lda + kc;
  const itemB = p.transB ? (nc - 1) * p.ldb + kc : (kc - 1) * p.ldb + nc;
  const itemC = (mc - 1) * p.ldc + nc;
  return [
    (bc - 1) * p.aBs + (tc - 1) * p.aTs + itemA,
    (bc - 1) * p.bBs + (tc - 1) * p.bTs + itemB,
    (bc - 1) * p.cBs + itemC,
  ];
}

/** About half of v, a multiple of the granule g (chunk starts keep vec4 loads aligned). */
function halve(v: number, g: number): number {
  return Math.max(g, Math.ceil(v / 2 / g) * g);
}

/**
 * Chunk sizes so every binding fits the adapter's limit and every grid dimension fits. Greedy:
 * for the largest offending operand, cut the output batches (unless it is broadcast), then the
 * summed items, then its outer and inner dimensions.
 */
function planChunks(
  gpu: Gpu,
  p: Problem,
  tile: readonly [number, number],
): [number, number, number, number, number] {
  const limit =
    Math.floor((gpu.profile.maxStorageBindingBytes - gpu.profile.minStorageOffsetAlignment) / 4) - 4;
  const maxWg = gpu.profile.maxWorkgroupsPerDimension;
  let bc = Math.min(p.batch, maxWg);
  let tc = p.kb;
  let mc = Math.min(p.M, Math.floor((maxWg * tile[0]) / 4) * 4);
  let nc = Math.min(p.N, Math.floor((maxWg * tile[1]) / 4) * 4);
  let kc = p.K;
  // When whole-vec4 loads apply, chunk starts along a vec4 axis stay multiples of 4: m when A is
  // transposed, n when B is not, k when either is loaded along k. Other starts scale a row stride.
  const v = vecOk(p);
  const gm = v && p.transA ? 4 : 1;
  const gn = v && !p.transB ? 4 : 1;
  const gk = v && (!p.transA || p.transB) ? 4 : 1;
  for (let guard = 0; guard < 400; guard++) {
    const s = spans(p, bc, tc, mc, nc, kc);
    const worst = s.indexOf(Math.max(...s));
    if (s[worst]! <= limit) return [bc, tc, mc, nc, kc];
    if (bc > 1 && [p.aBs, p.bBs, p.cBs][worst] !== 0) {
      bc = Math.ceil(bc / 2);
      continue;
    }
    // Candidate cuts for the worst operand, most effective first.
    const cuts: ('t' | 'm' | 'n' | 'k')[] =
      worst === 0
        ? ['t', p.transA ? 'k' : 'm', p.transA ? 'm' : 'k']
        : worst === 1
          ? ['t', p.transB ? 'n' : 'k', p.transB ? 'k' : 'n']
          : ['m', 'n'];
    let cut = false;
    for (const d of cuts) {
      if (d === 't' && tc > 1) {
        tc = Math.ceil(tc / 2);
        cut = true;
      } else if (d === 'm' && mc > gm) {
        mc = halve(mc, gm);
        cut = true;
      } else if (d === 'n' && nc > gn) {
        nc = halve(nc, gn);
        cut = true;
      } else if (d === 'k' && kc > gk) {
        kc = halve(kc, gk);
        cut = true;
      }
      if (cut) break;
    }
    if (!cut) break;
  }
  throw bindingLimitError(
    gpu,
    Math.max(p.M, p.N, p.K) * 4 * 4,
    `gemm M=${p.M} N=${p.N} K=${p.K}`,
    'it cannot be split so each binding fits',
  );
}

function ranges(total: number, step: number): [number, number][] {
  const r: [number, number][] = [];
  for (let s = 0; s < total; s += step) r.push([s, Math.min(step, total - s)]);
  return r;
}

/** Whether whole-vec4 loads are valid for this chunked problem (see the WGSL header). */
function vecOk(p: Problem): boolean {
  const all = [p.K, p.lda, p.ldb, p.aBs, p.bBs, p.aTs, p.bTs, p.aOff, p.bOff];
  if (all.some((v) => v % 4 !== 0)) return false;
  if (p.transA && p.M % 4 !== 0) return false;
  if (!p.transB && p.N % 4 !== 0) return false;
  return true;
}

/** `s` widened to whole vec4s, or null when that would run past the end of t's buffer. */
function widenToVec4(t: Tensor, s: Slice): Slice | null {
  const offset = s.binding.offset ?? 0;
  const size = Math.ceil((s.binding.size ?? 4) / 16) * 16;
  return offset + size <= t.buffer.size
    ? { binding: { buffer: t.buffer, offset, size }, base: s.base }
    : null;
}

/** A binding of elements [start, start+count) of `t`, its size rounded up to whole vec4s. */
function bindVec(gpu: Gpu, t: Tensor, start: number, count: number): Slice {
  const s = widenToVec4(t, bindSlice(gpu, t, start, count));
  if (!s)
    throw new Error(
      `gemm: ${t.describe()} lives in a ${t.buffer.size}-byte buffer that cannot be bound as whole vec4s`,
    );
  return s;
}

/** Records the GEMM described by `g` (see GemmArgs). Shapes are the caller's to check. */
export function runGemm(g: GemmArgs): void {
  const gpu = g.c.gpu;
  const variant = g.variant ?? gemmVariant(gpu);
  if (variant === 'sg' && !gpu.profile.subgroups)
    throw new Error("gemm: the 'sg' variant needs the subgroups feature");
  const { M, N, K } = g;
  const batch = g.batch ?? 1;
  const kb = g.kb ?? 1;
  if (!(kb >= 1)) throw new Error(`gemm: kb must be at least 1, got ${kb}`);
  if (M === 0 || N === 0 || batch === 0) return;
  if (g.c.buffer === g.a.buffer || g.c.buffer === g.b.buffer || (g.bias && g.c.buffer === g.bias.buffer))
    throw new Error('gemm: the output C shares a buffer with an input');
  const transA = g.transA ?? false;
  const transB = g.transB ?? false;
  if (g.tileRows !== undefined && !(SG_TILE_ROWS as readonly number[]).includes(g.tileRows))
    throw new Error(`gemm: tileRows must be one of ${SG_TILE_ROWS.join(', ')}, got ${g.tileRows}`);
  const aTs = g.aSumStride ?? M * K;
  const bTs = g.bSumStride ?? K * N;
  const p: Problem = {
    M,
    N,
    K,
    batch,
    kb,
    transA,
    transB,
    lda: g.lda ?? (transA ? M : K),
    ldb: g.ldb ?? (transB ? K : N),
    ldc: g.ldc ?? N,
    aTs,
    bTs,
    aBs: g.aBatchStride ?? aTs * kb,
    bBs: g.bBatchStride ?? bTs * kb,
    cBs: g.cBatchStride ?? M * N,
    aOff: g.aOffset ?? 0,
    bOff: g.bOffset ?? 0,
    cOff: g.cOffset ?? 0,
  };
  const [sa, sb, sc] = spans(p, batch, kb, M, N, Math.max(K, 1));
  const outside = (what: string, t: Tensor, off: number, span: number) => {
    if (off + span > t.size && (K > 0 || what === 'C'))
      throw new Error(`gemm: ${what} ${t.describe()} is too small for M=${M} N=${N} K=${K} batch=${batch}`);
  };
  outside('A', g.a, p.aOff, sa);
  outside('B', g.b, p.bOff, sb);
  outside('C', g.c, p.cOff, sc);
  if (g.bias && (g.biasOffset ?? 0) + N > g.bias.size)
    throw new Error(`gemm: bias ${g.bias.describe()} is shorter than N=${N}`);
  const tile = GEMM_TILES[variant];
  const [bc, tc, mc, nc, kc] = planChunks(gpu, p, tile);
  const zs = ranges(batch, bc);
  const ts = ranges(kb, tc);
  const ms = ranges(M, mc);
  const ns = ranges(N, nc);
  const ks = K === 0 ? ([[0, 0]] as [number, number][]) : ranges(K, kc);
  const reductions = ts.length * ks.length;
  const alpha = g.alpha ?? 1;
  const beta0 = g.beta ?? 0;
  const act = GEMM_ACT[g.act ?? 'none'];
  const kernel = KERNELS[variant];
  const bias = g.bias ?? null;
  const biasOff = g.biasOffset ?? 0;

  for (const z of zs)
    for (const m of ms)
      for (const n of ns) {
        let r = 0;
        for (const t of ts)
          for (const k of ks) {
            const ch: Chunk = { z, t, m, n, k };
            dispatchChunk(gpu, kernel, g, p, ch, {
              alpha,
              beta: r === 0 ? beta0 : 1,
              bias: r === 0 ? bias : null,
              biasOff,
              act: r === reductions - 1 ? act : 0,
              variant,
              tileRows: g.tileRows,
            });
            r++;
          }
      }
}

function dispatchChunk(
  gpu: Gpu,
  kernel: (typeof KERNELS)[GemmVariant],
  g: GemmArgs,
  p: Problem,
  ch: Chunk,
  e: {
    alpha: number;
    beta: number;
    bias: Tensor | null;
    biasOff: number;
    act: number;
    variant: GemmVariant;
    tileRows: SgTileRows | undefined;
  },
): void {
  const [z0, zc] = ch.z;
  const [t0, tc] = ch.t;
  const [m0, mc] = ch.m;
  const [n0, nc] = ch.n;
  const [k0, kc] = ch.k;
  const aStart = p.aOff + z0 * p.aBs + t0 * p.aTs + (p.transA ? k0 * p.lda + m0 : m0 * p.lda + k0);
  const bStart = p.bOff + z0 * p.bBs + t0 * p.bTs + (p.transB ? n0 * p.ldb + k0 : k0 * p.ldb + n0);
  const cStart = p.cOff + z0 * p.cBs + m0 * p.ldc + n0;
  const [sa, sb, sc] = spans(p, zc, tc, mc, nc, Math.max(kc, 1));
  const A = bindVec(gpu, g.a, aStart, sa);
  const B = bindVec(gpu, g.b, bStart, sb);
  const C0 = bindSlice(gpu, g.c, cStart, sc);
  // 'sg' stores one vec4 per row and lane when every row of C starts 4-aligned, the columns come
  // in whole vec4s and the binding can be widened to whole vec4s inside the buffer.
  const aligned = C0.base % 4 === 0 && p.ldc % 4 === 0 && nc % 4 === 0 && (zc === 1 || p.cBs % 4 === 0);
  const C4 = e.variant === 'sg' && aligned ? widenToVec4(g.c, C0) : null;
  const C = C4 ?? C0;
  const sub: Problem = {
    ...p,
    M: mc,
    N: nc,
    K: kc,
    aOff: A.base,
    bOff: B.base,
  };
  const vec = vecOk(sub);
  let biasBinding = A.binding;
  let biasBase = 0;
  if (e.bias) {
    const s = bindSlice(gpu, e.bias, e.biasOff + n0, nc);
    biasBinding = s.binding;
    biasBase = s.base;
  }
  const u = {
    M: mc,
    N: nc,
    K: kc,
    kb: tc,
    a_off: A.base,
    b_off: B.base,
    c_off: C.base,
    bias_off: biasBase,
    a_bs: p.aBs,
    b_bs: p.bBs,
    c_bs: p.cBs,
    a_ts: p.aTs,
    b_ts: p.bTs,
    lda: p.lda,
    ldb: p.ldb,
    ldc: p.ldc,
    alpha: e.alpha,
    beta: e.beta,
    has_bias: e.bias ? 1 : 0,
    act: e.act,
  };
  const sg = e.variant === 'sg';
  const tm = sg ? (e.tileRows ?? sgTileRows(mc)) : GEMM_TILES[e.variant][0];
  const consts = {
    TRANS_A: p.transA ? 1 : 0,
    TRANS_B: p.transB ? 1 : 0,
    VEC: vec ? 1 : 0,
    ...(sg ? { TM: tm } : {}),
  };
  gpu.dispatch(
    C4 ? gemmSgC4Kernel : kernel,
    [A.binding, B.binding, biasBinding, C.binding],
    u,
    [ceilDiv(nc, GEMM_TILES[e.variant][1]), ceilDiv(mc, tm), zc],
    consts,
  );
}
