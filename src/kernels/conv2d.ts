/**
 * TS face of kernels/conv2d.wgsl (plain variant + helpers), kernels/conv2d_sg.wgsl (subgroup
 * variant) and kernels/conv2d_pw_sg.wgsl (subgroup variant's strided 1x1 forward): NCHW conv2d
 * forward, input gradient and weight/bias gradients as implicit GEMMs.
 *
 * Variants (chosen per adapter by `conv2dVariant`):
 * - 'sg': profile.kind 'cpu' with the subgroups feature and subgroups of at least 8 lanes
 *   (lavapipe): an 8-lane workgroup = one subgroup, rows shared by subgroupBroadcast, no barriers.
 *   Forward / input gradient: `rows_sg` on NCHW (the plain `rows` kernel for <= 8 destination
 *   channels per group, see rowsPlan); the forward of a 1x1 conv with column stride 2 over vec4-
 *   friendly sizes (ResNet downsample) takes `pw_s2_sg` instead (pwS2Applies); weight gradient:
 *   `dw_cl` on channel-last copies (`to_cl`).
 * - 'plain': no optional feature; register tiles of 8 rows x vec4 per invocation, 8x8 invocations
 *   per workgroup on 'gpu' adapters and 8x1 on 'cpu' adapters; `rows` and `dw` on NCHW.
 * The input gradient runs the forward kernel over dy with the transposed packed weight, one
 * dispatch per stride phase (so strided convs do no wasted multiply-adds).
 *
 * Batch splitting: x / y / dy / dx are bound per batch chunk (batchChunks/bindSlice) so no binding
 * exceeds maxStorageBufferBindingSize; the weight-gradient partials accumulate across chunks in
 * place (accumulate = 1 after the first chunk) and are summed once at the end.
 */
import type { Gpu } from '../gpu/device.js';
import { defineKernel } from '../gpu/kernel.js';
import type { UniformLayout } from '../gpu/uniforms.js';
import { Tensor } from '../tensor/tensor.js';
import { ceilDiv } from '../util/shape.js';
import { grid1d, wgslConst } from './grid.js';
import { batchChunks, bindingLimitError, bindSlice } from './split.js';
import { runGather } from './elementwise.js';
import { runGemm } from './gemm.js';
import { conv2d as plainSource, conv2dPwSg as pwSgSource, conv2dSg as sgSource } from './wgsl.gen.js';

/** Full geometry of one conv2d (all sizes per axis). */
export interface Conv2dGeometry {
  N: number;
  Cin: number;
  H: number;
  W: number;
  Cout: number;
  kh: number;
  kw: number;
  sy: number;
  sx: number;
  py: number;
  px: number;
  dy: number;
  dx: number;
  groups: number;
  Ho: number;
  Wo: number;
}

export type Conv2dVariant = 'sg' | 'plain';

const rowsLayout: UniformLayout = [
  ['rows', 'u32'],
  ['QHW', 'u32'],
  ['Qw', 'u32'],
  ['Cs', 'u32'],
  ['Hs', 'u32'],
  ['Ws', 'u32'],
  ['CsG', 'u32'],
  ['CdG', 'u32'],
  ['CdG4', 'u32'],
  ['Cd', 'u32'],
  ['Hd', 'u32'],
  ['Wd', 'u32'],
  ['sdy', 'u32'],
  ['ody', 'u32'],
  ['sdx', 'u32'],
  ['odx', 'u32'],
  ['taps', 'u32'],
  ['kw', 'u32'],
  ['ky0', 'u32'],
  ['kys', 'u32'],
  ['nty', 'u32'],
  ['ay', 'u32'],
  ['by0', 'i32'],
  ['dby', 'i32'],
  ['kx0', 'u32'],
  ['kxs', 'u32'],
  ['ntx', 'u32'],
  ['ax', 'u32'],
  ['bx0', 'i32'],
  ['dbx', 'i32'],
  ['s_base', 'u32'],
  ['d_base', 'u32'],
  ['has_bias', 'u32'],
  ['ncb', 'u32'],
];

const dwLayout: UniformLayout = [
  ['rowsN', 'u32'],
  ['rps', 'u32'],
  ['Ho', 'u32'],
  ['Wo', 'u32'],
  ['Cin', 'u32'],
  ['H', 'u32'],
  ['W', 'u32'],
  ['CinG', 'u32'],
  ['Cout', 'u32'],
  ['CoutG', 'u32'],
  ['khkw', 'u32'],
  ['kw', 'u32'],
  ['sy', 'u32'],
  ['sx', 'u32'],
  ['py', 'i32'],
  ['px', 'i32'],
  ['dly', 'u32'],
  ['dlx', 'u32'],
  ['Kg', 'u32'],
  ['Kg4', 'u32'],
  ['G', 'u32'],
  ['S', 'u32'],
  ['x_base', 'u32'],
  ['dy_base', 'u32'],
  ['accumulate', 'u32'],
  ['CinG4', 'u32'],
  ['CoutG4', 'u32'],
];

const rowsStorage = [
  ['src', 'read'],
  ['wt', 'read'],
  ['bias', 'read'],
  ['dst', 'read_write'],
] as const;
const dwStorage = [
  ['x', 'read'],
  ['dy', 'read'],
  ['part', 'read_write'],
] as const;

/** Plain-variant workgroup shapes (invocations along columns x rows). */
const PLAIN_CPU = { WGC: 8, WGS: 8 } as const;
const PLAIN_GPU = { WGC: 8, WGS: 64 } as const;
/** Lanes of the subgroup variant's workgroup (const LANES in conv2d_sg.wgsl). */
const SG_LANES = 8;
const WG1 = 256;
/** Workgroup size of `pack_pw`. */
const PW_PACK_WG = 64;

export const rowsKernel = defineKernel({
  file: 'conv2d',
  source: plainSource,
  entry: 'rows',
  storage: rowsStorage,
  uniforms: rowsLayout,
  uniformStruct: 'RowsParams',
  overrides: { ...PLAIN_CPU },
});
export const dwKernel = defineKernel({
  file: 'conv2d',
  source: plainSource,
  entry: 'dw',
  storage: dwStorage,
  uniforms: dwLayout,
  uniformStruct: 'DwParams',
  overrides: { ...PLAIN_CPU },
});
export const packWeightKernel = defineKernel({
  file: 'conv2d',
  source: plainSource,
  entry: 'pack_weight',
  storage: [
    ['w', 'read'],
    ['wp4', 'read_write'],
  ],
  uniforms: [
    ['total', 'u32'],
    ['taps', 'u32'],
    ['CsG', 'u32'],
    ['CdG', 'u32'],
    ['CdG4', 'u32'],
    ['CinG', 'u32'],
    ['CoutG', 'u32'],
    ['transpose', 'u32'],
  ],
  uniformStruct: 'PackParams',
  overrides: { WG: WG1 },
});
export const sumPartsKernel = defineKernel({
  file: 'conv2d',
  source: plainSource,
  entry: 'sum_parts',
  storage: [
    ['parts', 'read'],
    ['out', 'read_write'],
  ],
  uniforms: [
    ['total', 'u32'],
    ['Kg', 'u32'],
    ['ld', 'u32'],
    ['rowsPerSplit', 'u32'],
    ['S', 'u32'],
    ['taps', 'u32'],
    ['cip', 'u32'],
  ],
  uniformStruct: 'SumParams',
  overrides: { WG: WG1 },
});
export const sumParts4Kernel = defineKernel({
  ...sumPartsKernel,
  entry: 'sum_parts4',
  storage: [
    ['parts4', 'read'],
    ['out', 'read_write'],
  ],
});
export const biasPartialKernel = defineKernel({
  file: 'conv2d',
  source: plainSource,
  entry: 'bias_partial',
  storage: [
    ['g_in', 'read'],
    ['bpart', 'read_write'],
  ],
  uniforms: [
    ['C', 'u32'],
    ['P', 'u32'],
    ['nb', 'u32'],
    ['S', 'u32'],
    ['ps', 'u32'],
    ['base', 'u32'],
    ['accumulate', 'u32'],
  ],
  uniformStruct: 'BiasParams',
  overrides: { WG: WG1 },
});
export const toClKernel = defineKernel({
  file: 'conv2d',
  source: plainSource,
  entry: 'to_cl',
  storage: [
    ['nchw', 'read'],
    ['cl', 'read_write'],
  ],
  uniforms: [
    ['total', 'u32'],
    ['C', 'u32'],
    ['CG', 'u32'],
    ['CG4', 'u32'],
    ['G', 'u32'],
    ['HW', 'u32'],
    ['base', 'u32'],
  ],
  uniformStruct: 'ClParams',
  overrides: { WG: WG1 },
});
const dwClSpec = {
  file: 'conv2d_sg',
  source: sgSource,
  storage: [
    ['x4', 'read'],
    ['dy4', 'read'],
    ['part', 'read_write'],
  ],
  uniforms: dwLayout,
  uniformStruct: 'DwParams',
} as const;
export const dwClKernel = defineKernel({ ...dwClSpec, entry: 'dw_cl' });
export const dwCl2Kernel = defineKernel({ ...dwClSpec, entry: 'dw_cl2' });
const rowsSgSpec = {
  file: 'conv2d_sg',
  source: sgSource,
  storage: rowsStorage,
  uniforms: rowsLayout,
  uniformStruct: 'RowsParams',
} as const;
export const rowsSgKernel = defineKernel({ ...rowsSgSpec, entry: 'rows_sg' });
export const rowsSg2Kernel = defineKernel({ ...rowsSgSpec, entry: 'rows_sg2' });
export const pwS2SgKernel = defineKernel({
  file: 'conv2d_pw_sg',
  source: pwSgSource,
  entry: 'pw_s2_sg',
  storage: [
    ['x4', 'read'],
    ['wt', 'read'],
    ['bias', 'read'],
    ['y4', 'read_write'],
  ],
  uniforms: [
    ['quads', 'u32'],
    ['qp', 'u32'],
    ['Wo', 'u32'],
    ['Cin', 'u32'],
    ['Cout', 'u32'],
    ['Cout4', 'u32'],
    ['ncb', 'u32'],
    ['plane4', 'u32'],
    ['srow4', 'u32'],
    ['x_base', 'u32'],
    ['y_base', 'u32'],
    ['has_bias', 'u32'],
  ],
});
export const packPwKernel = defineKernel({
  file: 'conv2d_pw_sg',
  source: pwSgSource,
  entry: 'pack_pw',
  storage: [
    ['w', 'read'],
    ['wp4', 'read_write'],
  ],
  uniforms: [
    ['total', 'u32'],
    ['Cin', 'u32'],
    ['Cout', 'u32'],
    ['Cout4', 'u32'],
  ],
  uniformStruct: 'PackParams',
  overrides: { WG: PW_PACK_WG },
});

// Register-tile sizes are WGSL `const`s (function-scope arrays need constant sizes), read from the
// kernel sources (wgslConst) so they are written down once.
/** Rows per invocation of the plain kernels. */
const RP = wgslConst(plainSource, 'RP');
/** Rows per workgroup of the subgroup kernels (LANES x R; dw_cl: 8 lanes x vec4). */
const SG_TM = wgslConst(sgSource, 'TM');
/** Output channels per workgroup of `pw_s2_sg`. */
const PW_TC = wgslConst(pwSgSource, 'TC');

function tileRows(variant: Conv2dVariant, shape: { WGC: number; WGS: number }): number {
  return variant === 'sg' ? SG_TM : (shape.WGS / shape.WGC) * RP;
}

/** The variant used on this adapter. */
export function conv2dVariant(gpu: Gpu): Conv2dVariant {
  const p = gpu.profile;
  return p.kind === 'cpu' && p.subgroups && p.subgroupMinSize >= SG_LANES ? 'sg' : 'plain';
}

function plainShape(gpu: Gpu): { WGC: number; WGS: number } {
  return gpu.profile.kind === 'gpu' ? PLAIN_GPU : PLAIN_CPU;
}

/** Output size of a conv along one axis. */
export function convOutSize(n: number, k: number, s: number, p: number, d: number): number {
  return Math.floor((n + 2 * p - d * (k - 1) - 1) / s) + 1;
}

// ------------------------------------------------------------------ weight packing

/**
 * Wp[g][ky*kw+kx][cs][cd padded to 4]: forward (transpose false) cs = ci, cd = co; input
 * gradient (transpose true) cs = co, cd = ci. Returns a new tensor (caller disposes).
 */
function packWeight(w: Tensor, g: Conv2dGeometry, transpose: boolean): { wp: Tensor; CdG4: number } {
  const G = g.groups;
  const CinG = g.Cin / G;
  const CoutG = g.Cout / G;
  const taps = g.kh * g.kw;
  const CsG = transpose ? CoutG : CinG;
  const CdG = transpose ? CinG : CoutG;
  const CdG4 = ceilDiv(CdG, 4);
  const total = G * taps * CsG * CdG4 * 4;
  const wp = Tensor.empty(w.gpu, [total]);
  w.gpu.dispatch(
    packWeightKernel,
    [w.binding(), wp.binding()],
    { total, taps, CsG, CdG, CdG4, CinG, CoutG, transpose: transpose ? 1 : 0 },
    grid1d(w.gpu, ceilDiv(G * taps * CsG, WG1)), // one invocation per packed row
  );
  return { wp, CdG4 };
}

/**
 * Channel-last copy of items [n0, n0+nb) of the NCHW tensor t (C channels in G groups, HW pixels)
 * into `out`: out[n][p][g][c4] = vec4 of channels (zero past C/G).
 */
function toChannelLast(
  t: Tensor,
  n0: number,
  nb: number,
  C: number,
  G: number,
  HW: number,
  out: Tensor,
): void {
  const gpu = t.gpu;
  const CG = C / G;
  const CG4 = ceilDiv(CG, 4);
  const sl = bindSlice(gpu, t, n0 * C * HW, nb * C * HW);
  const total = nb * HW * G; // invocations: one per (n, p, g)
  gpu.dispatch(
    toClKernel,
    [sl.binding, { buffer: out.buffer, offset: 0, size: total * CG4 * 16 }],
    { total, C, CG, CG4, G, HW, base: sl.base },
    grid1d(gpu, ceilDiv(total, WG1)),
  );
}

// ------------------------------------------------------------------ rows kernel (fwd / dx)

interface RowsJob {
  src: Tensor;
  dst: Tensor;
  w: Tensor;
  geom: Conv2dGeometry;
  transpose: boolean;
  bias: Tensor | null;
  N: number;
  Cs: number;
  Hs: number;
  Ws: number;
  Cd: number;
  Hd: number;
  Wd: number;
  G: number;
  kh: number;
  kw: number;
  /** One entry per dispatch (stride phase); forward has one. */
  phases: Record<string, number>[];
}

/**
 * Kernel for the forward / input-gradient GEMM with CdG destination channels per group. A
 * workgroup covers up to 8 vec4 columns (32 channels); with fewer destination channels (conv1's and
 * the patch embedding's input gradient, depthwise convs) the columns shrink to the next power of
 * two of ceil(CdG/4) and the freed invocations take more rows. In the 'sg' variant, destinations of
 * at most 8 channels per group run the plain kernel that way (8 invocations over rows), since 6 or
 * 7 of the 8 lanes of `rows_sg` would idle, and over 32 channels `rows_sg2` takes 64 channels per
 * workgroup (two vec4 columns per lane: half the source loads per fma; ~1.1x `rows_sg` on the
 * ResNet18 3x3 convs at batch 8).
 */
export function rowsPlan(
  gpu: Gpu,
  CdG: number,
): { kernel: 'rows_sg' | 'rows_sg2' | 'rows'; shape: { WGC: number; WGS: number } } {
  const CdG4 = ceilDiv(CdG, 4);
  const narrow = Math.min(8, 2 ** Math.ceil(Math.log2(CdG4)));
  if (conv2dVariant(gpu) === 'plain') {
    const { WGS } = plainShape(gpu);
    return { kernel: 'rows', shape: { WGC: narrow, WGS } };
  }
  if (CdG4 <= 2) return { kernel: 'rows', shape: { WGC: narrow, WGS: SG_LANES } };
  if (CdG4 > SG_LANES) return { kernel: 'rows_sg2', shape: { WGC: 2 * SG_LANES, WGS: SG_LANES } };
  return { kernel: 'rows_sg', shape: { WGC: SG_LANES, WGS: SG_LANES } };
}

function runRows(job: RowsJob): void {
  const gpu = job.src.gpu;
  const CsG = job.Cs / job.G;
  const CdG = job.Cd / job.G;
  const { wp, CdG4 } = packWeight(job.w, job.geom, job.transpose);
  const plan = rowsPlan(gpu, CdG);
  const sgKernel = plan.kernel !== 'rows';
  const TM = sgKernel ? SG_TM : (plan.shape.WGS / plan.shape.WGC) * RP;
  const ncb = ceilDiv(CdG4, plan.shape.WGC);
  const itemS = job.Cs * job.Hs * job.Ws;
  const itemD = job.Cd * job.Hd * job.Wd;
  const chunks = batchChunks(gpu, job.N, [itemS, itemD], 'conv2d');
  for (const [n0, nb] of chunks) {
    const d = bindSlice(gpu, job.dst, n0 * itemD, nb * itemD);
    const s = bindSlice(gpu, job.src, n0 * itemS, nb * itemS);
    for (const ph of job.phases) {
      const Qh = ph.Qh!;
      const Qw = ph.Qw!;
      const rows = nb * Qh * Qw;
      if (rows === 0) continue;
      const u: Record<string, number> = {
        rows,
        QHW: Qh * Qw,
        Qw,
        Cs: job.Cs,
        Hs: job.Hs,
        Ws: job.Ws,
        CsG,
        CdG,
        CdG4,
        Cd: job.Cd,
        Hd: job.Hd,
        Wd: job.Wd,
        taps: job.kh * job.kw,
        kw: job.kw,
        s_base: s.base,
        d_base: d.base,
        has_bias: job.bias ? 1 : 0,
        ncb,
      };
      for (const k of PHASE_KEYS) u[k] = ph[k]!;
      const [gx, gy] = grid1d(gpu, ceilDiv(rows, TM));
      const bindings = [s.binding, wp.binding(), (job.bias ?? wp).binding(), d.binding];
      const grid = [gx, gy, job.G * ncb] as const;
      if (sgKernel)
        gpu.dispatch(plan.kernel === 'rows_sg2' ? rowsSg2Kernel : rowsSgKernel, bindings, u, grid);
      else gpu.dispatch(rowsKernel, bindings, u, grid, plan.shape);
    }
  }
  wp.dispose();
}

const PHASE_KEYS = [
  'sdy',
  'ody',
  'sdx',
  'odx',
  'ky0',
  'kys',
  'nty',
  'ay',
  'by0',
  'dby',
  'kx0',
  'kxs',
  'ntx',
  'ax',
  'bx0',
  'dbx',
] as const;

/**
 * A 1x1, stride-1, unpadded, ungrouped conv is a batched GEMM per image: y[n] (Cout, HW) =
 * W (Cout, Cin) . x[n] (Cin, HW). The GEMM kernels are tuned for exactly that (the SAM neck's
 * 768->256 projection runs several times faster there than through the implicit-GEMM conv).
 */
export function isPointwise(g: Conv2dGeometry): boolean {
  return g.kh === 1 && g.kw === 1 && g.sy === 1 && g.sx === 1 && g.py === 0 && g.px === 0 && g.groups === 1;
}

/**
 * A strided 1x1 conv (ResNet downsample) whose input tiles exactly into strides: subsampling x
 * (one gather) turns it into the pointwise GEMM, and its input gradient is that GEMM followed by
 * a zero-inserting gather. Used when every operand fits one binding.
 */
function stridedPointwise(g: Conv2dGeometry, ...ts: Tensor[]): boolean {
  const fits = ts.every((t) => t.bytes <= t.gpu.profile.maxStorageBindingBytes);
  return (
    fits &&
    g.kh === 1 &&
    g.kw === 1 &&
    g.py === 0 &&
    g.px === 0 &&
    g.groups === 1 &&
    (g.sy > 1 || g.sx > 1) &&
    g.H === g.Ho * g.sy &&
    g.W === g.Wo * g.sx
  );
}

/**
 * The gather + GEMM route for a strided 1x1 conv's forward and input gradient, on GPU-kind adapters
 * only: on lavapipe the row kernels, which read the strided input in place, measured 1.2-1.5x
 * faster forward and 1.7-3x faster for the input gradient at the ResNet18 downsample shapes
 * (batch 2-24), while the weight gradient is 1.5-2.4x faster through the GEMM (it always takes it).
 */
function stridedPointwiseViaGemm(g: Conv2dGeometry, ...ts: Tensor[]): boolean {
  return ts[0]!.gpu.profile.kind === 'gpu' && stridedPointwise(g, ...ts);
}

/** x (N, C, H, W) -> x[:, :, ::sy, ::sx] as a new (N, C, Ho, Wo) tensor. */
function subsample(x: Tensor, g: Conv2dGeometry, C: number): Tensor {
  const out = Tensor.empty(x.gpu, [g.N, C, g.Ho, g.Wo]);
  const dims = [g.N, C, g.Ho, g.Wo];
  runGather(x, out, {
    dims,
    strides: [C * g.H * g.W, g.H * g.W, g.sy * g.W, g.sx],
    starts: [0, 0, 0, 0],
    extents: dims,
  });
  return out;
}

/** t (N, C, Ho, Wo) -> out (N, C, H, W) with t at (y*sy, x*sx) and zeros elsewhere (H = Ho*sy). */
function zeroInsert(t: Tensor, out: Tensor, g: Conv2dGeometry, C: number): void {
  // View out as (N, C, Ho, sy, Wo, sx): only index 0 of each stride axis reads t.
  runGather(t, out, {
    dims: [g.N, C, g.Ho, g.sy, g.Wo, g.sx],
    strides: [C * g.Ho * g.Wo, g.Ho * g.Wo, g.Wo, 0, 1, 0],
    starts: [0, 0, 0, 0, 0, 0],
    extents: [g.N, C, g.Ho, 1, g.Wo, 1],
  });
}

/**
 * Whether the forward of this conv takes `pw_s2_sg` (kernels/conv2d_pw_sg.wgsl): the 'sg' variant,
 * a 1x1 unpadded, undilated, ungrouped conv with column stride 2 (any row stride; the ResNet
 * downsample has 2) over an input width that is a multiple of 4 (each output pixel pair reads one
 * aligned vec4 of x) and an output plane of a multiple of 4 pixels (each pixel quad is one aligned
 * vec4 of y). At the ResNet18 downsample shapes it ran 1.2-1.9x faster than `rows_sg` on lavapipe
 * (which gathers the strided pixels with scalar loads and stores scalars), ~1.6x at
 * x[2,64,128,128] (5.3x tfjs-webgpu there, against 3.3x). Bias is added in the kernel.
 */
export function pwS2Applies(gpu: Gpu, g: Conv2dGeometry): boolean {
  return (
    conv2dVariant(gpu) === 'sg' &&
    g.kh === 1 &&
    g.kw === 1 &&
    g.py === 0 &&
    g.px === 0 &&
    g.dy === 1 &&
    g.dx === 1 &&
    g.groups === 1 &&
    g.sx === 2 &&
    g.W % 4 === 0 &&
    (g.Ho * g.Wo) % 4 === 0
  );
}

/** The `pw_s2_sg` forward (see pwS2Applies), batch-chunked so no binding exceeds the limit. */
function runPwS2(x: Tensor, w: Tensor, bias: Tensor | null, y: Tensor, g: Conv2dGeometry): void {
  const gpu = x.gpu;
  const Cout4 = ceilDiv(g.Cout, 4);
  const wp = Tensor.empty(gpu, [g.Cin * Cout4 * 4]);
  const total = g.Cin * Cout4;
  gpu.dispatch(
    packPwKernel,
    [w.binding(), wp.binding()],
    { total, Cin: g.Cin, Cout: g.Cout, Cout4 },
    grid1d(gpu, ceilDiv(total, PW_PACK_WG)),
  );
  const qp = (g.Ho * g.Wo) / 4;
  const ncb = ceilDiv(g.Cout, PW_TC);
  const itemX = g.Cin * g.H * g.W;
  const itemY = g.Cout * g.Ho * g.Wo;
  for (const [n0, nb] of batchChunks(gpu, g.N, [itemX, itemY], 'conv2d')) {
    const xs = bindSlice(gpu, x, n0 * itemX, nb * itemX);
    const ys = bindSlice(gpu, y, n0 * itemY, nb * itemY);
    // Item sizes are multiples of 4 floats and binding offsets multiples of the storage offset
    // alignment (>= 32 bytes), so the element bases are multiples of 4 (vec4 indices).
    if (xs.base % 4 || ys.base % 4) throw new Error('conv2d: pw_s2_sg needs vec4-aligned batch chunks');
    const quads = nb * qp;
    const u = {
      quads,
      qp,
      Wo: g.Wo,
      Cin: g.Cin,
      Cout: g.Cout,
      Cout4,
      ncb,
      plane4: (g.H * g.W) / 4,
      srow4: (g.sy * g.W) / 4,
      x_base: xs.base,
      y_base: ys.base,
      has_bias: bias ? 1 : 0,
    };
    const bindings = [xs.binding, wp.binding(), (bias ?? wp).binding(), ys.binding];
    gpu.dispatch(pwS2SgKernel, bindings, u, grid1d(gpu, ceilDiv(quads, SG_LANES) * ncb));
  }
  wp.dispose();
}

/** y = conv2d(x, w) + bias. x (N, Cin, H, W), w (Cout, Cin/groups, kh, kw), y (N, Cout, Ho, Wo). */
export function runConv2dForward(
  x: Tensor,
  w: Tensor,
  bias: Tensor | null,
  y: Tensor,
  g: Conv2dGeometry,
): void {
  if (isPointwise(g) && !bias) {
    const HW = g.H * g.W;
    // Batch over images; A = W broadcast (batch stride 0), B = x[n] (Cin, HW).
    runGemm({ a: w, b: x, c: y, M: g.Cout, N: HW, K: g.Cin, batch: g.N, aBatchStride: 0 });
    return;
  }
  if (!bias && stridedPointwiseViaGemm(g, x, y)) {
    const xs = subsample(x, g, g.Cin);
    runGemm({ a: w, b: xs, c: y, M: g.Cout, N: g.Ho * g.Wo, K: g.Cin, batch: g.N, aBatchStride: 0 });
    xs.dispose();
    return;
  }
  if (pwS2Applies(x.gpu, g)) {
    runPwS2(x, w, bias, y, g);
    return;
  }
  runRows({
    src: x,
    dst: y,
    w,
    geom: g,
    transpose: false,
    bias,
    N: g.N,
    Cs: g.Cin,
    Hs: g.H,
    Ws: g.W,
    Cd: g.Cout,
    Hd: g.Ho,
    Wd: g.Wo,
    G: g.groups,
    kh: g.kh,
    kw: g.kw,
    phases: [
      {
        Qh: g.Ho,
        Qw: g.Wo,
        sdy: 1,
        ody: 0,
        sdx: 1,
        odx: 0,
        ky0: 0,
        kys: 1,
        nty: g.kh,
        ay: g.sy,
        by0: -g.py,
        dby: g.dy,
        kx0: 0,
        kxs: 1,
        ntx: g.kw,
        ax: g.sx,
        bx0: -g.px,
        dbx: g.dx,
      },
    ],
  });
}

function gcd(a: number, b: number): number {
  while (b) [a, b] = [b, a % b];
  return a;
}

/**
 * Input-gradient taps of one stride phase along one axis: destination positions r + s*q (q <
 * count) receive kernel positions k0 + t*kstep (t < n), read at source q + b0 + t*db.
 */
function phaseAxis(
  r: number,
  size: number,
  k: number,
  s: number,
  p: number,
  d: number,
): { count: number; k0: number; kstep: number; n: number; b0: number; db: number } {
  const count = r < size ? Math.floor((size - 1 - r) / s) + 1 : 0;
  let k0 = -1;
  for (let kk = 0; kk < k; kk++)
    if ((((r + p - kk * d) % s) + s) % s === 0) {
      k0 = kk;
      break;
    }
  if (k0 < 0 || count === 0) return { count, k0: 0, kstep: 1, n: 0, b0: 0, db: 0 };
  const kstep = s / gcd(s, d);
  const n = Math.floor((k - 1 - k0) / kstep) + 1;
  // oy = (iy + p - ky*d)/s with iy = r + s*q: oy = q + (r + p - ky*d)/s.
  const b0 = (r + p - k0 * d) / s;
  const db = -(kstep * d) / s;
  return { count, k0, kstep, n, b0, db };
}

/** dx = conv2d input gradient of dy (N, Cout, Ho, Wo) through w; dx (N, Cin, H, W). */
export function runConv2dInputGrad(dy: Tensor, w: Tensor, dx: Tensor, g: Conv2dGeometry): void {
  if (isPointwise(g)) {
    // dx[n] (Cin, HW) = W^T (Cin, Cout) . dy[n] (Cout, HW)
    runGemm({
      a: w,
      b: dy,
      c: dx,
      M: g.Cin,
      N: g.H * g.W,
      K: g.Cout,
      batch: g.N,
      aBatchStride: 0,
      transA: true,
    });
    return;
  }
  if (stridedPointwiseViaGemm(g, dx, dy)) {
    const t = Tensor.empty(dx.gpu, [g.N, g.Cin, g.Ho, g.Wo]);
    const HoWo = g.Ho * g.Wo;
    runGemm({ a: w, b: dy, c: t, M: g.Cin, N: HoWo, K: g.Cout, batch: g.N, aBatchStride: 0, transA: true });
    zeroInsert(t, dx, g, g.Cin);
    t.dispose();
    return;
  }
  const phases: Record<string, number>[] = [];
  let zeroPhases = false;
  for (let ry = 0; ry < g.sy; ry++) {
    const ay = phaseAxis(ry, g.H, g.kh, g.sy, g.py, g.dy);
    for (let rx = 0; rx < g.sx; rx++) {
      const ax = phaseAxis(rx, g.W, g.kw, g.sx, g.px, g.dx);
      if (ay.count === 0 || ax.count === 0) continue;
      if (ay.n === 0 || ax.n === 0) {
        zeroPhases = true; // no tap reaches these positions (stride > kernel): zero-filled below
        continue;
      }
      phases.push({
        Qh: ay.count,
        Qw: ax.count,
        sdy: g.sy,
        ody: ry,
        sdx: g.sx,
        odx: rx,
        ky0: ay.k0,
        kys: ay.kstep,
        nty: ay.n,
        ay: 1,
        by0: ay.b0,
        dby: ay.db,
        kx0: ax.k0,
        kxs: ax.kstep,
        ntx: ax.n,
        ax: 1,
        bx0: ax.b0,
        dbx: ax.db,
      });
    }
  }
  // Positions no kernel tap reaches get zeros from one fill, recorded before the phases that
  // write the others (cheaper than dispatching tap-less phases that store zeros one by one).
  if (zeroPhases) dx.gpu.clear(dx.buffer, 0, dx.bytes);
  runRows({
    src: dy,
    dst: dx,
    w,
    geom: g,
    transpose: true,
    bias: null,
    N: g.N,
    Cs: g.Cout,
    Hs: g.Ho,
    Ws: g.Wo,
    Cd: g.Cin,
    Hd: g.H,
    Wd: g.W,
    G: g.groups,
    kh: g.kh,
    kw: g.kw,
    phases,
  });
}

// ------------------------------------------------------------------ weight / bias gradients

/** Number of reduction splits: enough workgroups to fill the adapter, bounded by the binding limit. */
function chooseSplits(gpu: Gpu, tiles: number, rows: number, slotBytes: number, what: string): number {
  const limit = gpu.profile.maxStorageBindingBytes;
  if (slotBytes > limit) throw bindingLimitError(gpu, slotBytes, `${what}: the weight-gradient partial`);
  const target = gpu.profile.kind === 'gpu' ? 2048 : 96;
  let S = Math.max(1, Math.ceil(target / Math.max(tiles, 1)));
  S = Math.min(S, Math.max(1, rows), Math.floor(limit / slotBytes), 64);
  return Math.max(1, S);
}

/** dw (Cout, Cin/groups, kh, kw) = weight gradient of conv2d(x, w) for upstream dy. */
export function runConv2dWeightGrad(x: Tensor, dy: Tensor, dw: Tensor, g: Conv2dGeometry): void {
  if (isPointwise(g)) {
    // dW (Cout, Cin) = sum_n dy[n] (Cout, HW) . x[n]^T (HW, Cin): one output, N summed products.
    const HW = g.H * g.W;
    runGemm({ a: dy, b: x, c: dw, M: g.Cout, N: g.Cin, K: HW, kb: g.N, transB: true });
    return;
  }
  if (stridedPointwise(g, x, dy)) {
    const xs = subsample(x, g, g.Cin);
    runGemm({ a: dy, b: xs, c: dw, M: g.Cout, N: g.Cin, K: g.Ho * g.Wo, kb: g.N, transB: true });
    xs.dispose();
    return;
  }
  const gpu = x.gpu;
  const variant = conv2dVariant(gpu);
  const shape = plainShape(gpu);
  const cl = variant === 'sg';
  const G = g.groups;
  const CinG = g.Cin / G;
  const CoutG = g.Cout / G;
  const CinG4 = ceilDiv(CinG, 4);
  const CoutG4 = ceilDiv(CoutG, 4);
  const khkw = g.kh * g.kw;
  const Kg = CinG * khkw;
  const Kg4 = ceilDiv(Kg, 4);
  const TM = tileRows(variant, shape);
  // Columns: vec4s of k = (ci, ky, kx) (NCHW kernels) or of 4 channels at one tap (dw_cl).
  const cols4 = cl ? khkw * CinG4 : Kg4;
  // More than 8 column vec4s: dw_cl2 (16 per workgroup, each broadcast dy vec4 feeds two columns;
  // 1.1-1.5x dw_cl on ResNet18's convs at 224, batch 8).
  const wideCl = cl && cols4 > SG_LANES;
  const colsPerBlock = variant === 'sg' ? (wideCl ? 2 * SG_LANES : SG_LANES) : shape.WGC;
  const gx = ceilDiv(cols4, colsPerBlock);
  const gy = ceilDiv(CoutG, TM);
  const slotElems = G * CoutG * cols4 * 4;
  const itemX = g.Cin * g.H * g.W;
  const itemY = g.Cout * g.Ho * g.Wo;
  const itemXc = g.H * g.W * G * CinG4 * 4;
  const itemYc = g.Ho * g.Wo * G * CoutG4 * 4;
  const chunks = batchChunks(
    gpu,
    g.N,
    cl ? [itemX, itemY, itemXc, itemYc] : [itemX, itemY],
    'conv2d weight gradient',
  );
  const maxNb = Math.max(...chunks.map(([, nb]) => nb));
  const S = Math.min(
    chooseSplits(gpu, gx * gy * G, maxNb * g.Ho, slotElems * 4, 'conv2d'),
    Math.floor(65535 / G),
  );
  const part = Tensor.empty(gpu, [S * slotElems]);
  const xc = cl ? Tensor.empty(gpu, [maxNb * itemXc]) : null;
  const dc = cl ? Tensor.empty(gpu, [maxNb * itemYc]) : null;
  chunks.forEach(([n0, nb], ci) => {
    const rowsN = nb * g.Ho;
    const u = {
      rowsN,
      rps: ceilDiv(rowsN, S),
      Ho: g.Ho,
      Wo: g.Wo,
      Cin: g.Cin,
      H: g.H,
      W: g.W,
      CinG,
      Cout: g.Cout,
      CoutG,
      khkw,
      kw: g.kw,
      sy: g.sy,
      sx: g.sx,
      py: g.py,
      px: g.px,
      dly: g.dy,
      dlx: g.dx,
      Kg,
      Kg4,
      G,
      S,
      x_base: 0,
      dy_base: 0,
      accumulate: ci === 0 ? 0 : 1,
      CinG4,
      CoutG4,
    };
    const grid = [gx, gy, G * S] as const;
    if (xc && dc) {
      toChannelLast(x, n0, nb, g.Cin, G, g.H * g.W, xc);
      toChannelLast(dy, n0, nb, g.Cout, G, g.Ho * g.Wo, dc);
      const bindings = [
        { buffer: xc.buffer, offset: 0, size: nb * itemXc * 4 },
        { buffer: dc.buffer, offset: 0, size: nb * itemYc * 4 },
        part.binding(),
      ];
      gpu.dispatch(wideCl ? dwCl2Kernel : dwClKernel, bindings, u, grid);
      return;
    }
    const xs = bindSlice(gpu, x, n0 * itemX, nb * itemX);
    const ds = bindSlice(gpu, dy, n0 * itemY, nb * itemY);
    u.x_base = xs.base;
    u.dy_base = ds.base;
    gpu.dispatch(dwKernel, [xs.binding, ds.binding, part.binding()], u, grid, shape);
  });
  const total = G * CoutG * Kg;
  if (cl)
    // Channel-last partials: four input channels per invocation from vec4 loads.
    gpu.dispatch(
      sumParts4Kernel,
      [part.binding(), dw.binding()],
      { total, Kg, ld: cols4 * 4, rowsPerSplit: G * CoutG, S, taps: khkw, cip: CinG4 * 4 },
      grid1d(gpu, ceilDiv(G * CoutG * khkw * CinG4, WG1)),
    );
  else
    gpu.dispatch(
      sumPartsKernel,
      [part.binding(), dw.binding()],
      { total, Kg, ld: Kg4 * 4, rowsPerSplit: G * CoutG, S, taps: 1, cip: 1 },
      grid1d(gpu, ceilDiv(total, WG1)),
    );
  part.dispose();
  xc?.dispose();
  dc?.dispose();
}

/** db (Cout) = sum of dy (N, Cout, Ho, Wo) over batch and pixels. */
export function runConv2dBiasGrad(dy: Tensor, db: Tensor, g: Conv2dGeometry): void {
  const gpu = dy.gpu;
  const C = g.Cout;
  const P = g.Ho * g.Wo;
  const item = C * P;
  const chunks = batchChunks(gpu, g.N, [item], 'conv2d bias gradient');
  const limit = gpu.profile.maxStorageBindingBytes;
  let S = Math.max(1, Math.min(Math.ceil(P / 2048), Math.floor(limit / (4 * C)), 1024));
  S = Math.max(1, S);
  const ps = ceilDiv(P, S);
  const part = Tensor.empty(gpu, [S * C]);
  chunks.forEach(([n0, nb], ci) => {
    const sl = bindSlice(gpu, dy, n0 * item, nb * item);
    gpu.dispatch(
      biasPartialKernel,
      [sl.binding, part.binding()],
      { C, P, nb, S, ps, base: sl.base, accumulate: ci === 0 ? 0 : 1 },
      grid1d(gpu, ceilDiv(C * S, WG1)),
    );
  });
  gpu.dispatch(
    sumPartsKernel,
    [part.binding(), db.binding()],
    { total: C, Kg: 1, ld: 1, rowsPerSplit: C, S, taps: 1, cip: 1 },
    grid1d(gpu, ceilDiv(C, WG1)),
  );
  part.dispose();
}
