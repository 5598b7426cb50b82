/**
 * TS face of kernels/layernorm.wgsl: LayerNorm over the last dim and LayerNorm2d (over C of NCHW),
 * forward (y, mean, rstd) and backward (dx; dw/db as per-block partials finished by reduce.wgsl).
 *
 * Variants: on CPU adapters (lavapipe, SwiftShader) LayerNorm runs one invocation per row with no
 * barriers (vec4 loads when D % 4 == 0); on real GPUs one workgroup per row with a shared-memory
 * tree. LayerNorm2d runs one invocation per pixel (per 4 pixels when H*W % 4 == 0) on both.
 * Tensors over the adapter's binding limit are processed in chunks of rows / samples.
 */
import type { Gpu } from '../gpu/device.js';
import { defineKernel } from '../gpu/kernel.js';
import { GpuOutOfMemoryError } from '../gpu/errors.js';
import type { Tensor } from '../tensor/tensor.js';
import { ceilDiv } from '../util/shape.js';
import { grid1d } from './grid.js';
import { runSumMid } from './reduce.js';
import { batchChunks, bindingLimitError, bindSlice, type Slice } from './split.js';
import { layernorm as source } from './wgsl.gen.js';

/** Invocations per workgroup of the per-row / per-pixel entries. */
const WG = 64;
/** Workgroup size of the workgroup-per-row variant (power of two). */
const WG_ROW = 128;
/** Rows per dw/db partial block (at least). */
const ROWS_PER_BLOCK = 64;
/** Target vec4s (or scalars) per lane in the LayerNorm2d dw/db partials. */
const PER_LANE = 64;

const common = {
  file: 'layernorm',
  source,
  uniforms: [
    ['rows', 'u32'],
    ['D', 'u32'],
    ['HW', 'u32'],
    ['eps', 'f32'],
    ['x_base', 'u32'],
    ['g_base', 'u32'],
    ['o_base', 'u32'],
    ['s_base', 'u32'],
    ['lanes', 'u32'],
    ['per', 'u32'],
    ['p_off', 'u32'],
    ['nblk', 'u32'],
  ],
  overrides: { WG },
} as const;

type Access = 'read' | 'read_write';
const io = (...b: [string, Access][]) => b;

const fwd = io(
  ['x', 'read'],
  ['w', 'read'],
  ['b', 'read'],
  ['y', 'read_write'],
  ['mean', 'read_write'],
  ['rstd', 'read_write'],
);
const bwd = io(
  ['x', 'read'],
  ['dy', 'read'],
  ['w_b', 'read'],
  ['mean_b', 'read'],
  ['rstd_b', 'read'],
  ['dx', 'read_write'],
);
const part = io(
  ['x', 'read'],
  ['dy', 'read'],
  ['mean_p', 'read'],
  ['rstd_p', 'read'],
  ['pw', 'read_write'],
  ['pb', 'read_write'],
);

export const lnFwdRow4Kernel = defineKernel({
  ...common,
  entry: 'ln_fwd_row4',
  storage: io(
    ['x4', 'read'],
    ['w4', 'read'],
    ['b4', 'read'],
    ['y4', 'read_write'],
    ['mean', 'read_write'],
    ['rstd', 'read_write'],
  ),
});
export const lnFwdRowKernel = defineKernel({ ...common, entry: 'ln_fwd_row', storage: fwd });
export const lnFwdWgKernel = defineKernel({ ...common, entry: 'ln_fwd_wg', storage: fwd });
export const lnBwdRow4Kernel = defineKernel({
  ...common,
  entry: 'ln_bwd_row4',
  storage: io(
    ['x4', 'read'],
    ['dy4', 'read'],
    ['w4_b', 'read'],
    ['mean_b', 'read'],
    ['rstd_b', 'read'],
    ['dx4', 'read_write'],
  ),
});
export const lnBwdRowKernel = defineKernel({ ...common, entry: 'ln_bwd_row', storage: bwd });
export const lnBwdWgKernel = defineKernel({ ...common, entry: 'ln_bwd_wg', storage: bwd });
export const lnDwDb4Kernel = defineKernel({
  ...common,
  entry: 'ln_dwdb4',
  storage: io(
    ['x4', 'read'],
    ['dy4', 'read'],
    ['mean_p', 'read'],
    ['rstd_p', 'read'],
    ['pw4', 'read_write'],
    ['pb4', 'read_write'],
  ),
});
export const lnDwDbKernel = defineKernel({ ...common, entry: 'ln_dwdb', storage: part });

export const ln2dFwd4Kernel = defineKernel({
  ...common,
  entry: 'ln2d_fwd4',
  storage: io(
    ['x4', 'read'],
    ['w4', 'read'],
    ['b4', 'read'],
    ['y4', 'read_write'],
    ['mean4', 'read_write'],
    ['rstd4', 'read_write'],
  ),
});
export const ln2dFwdKernel = defineKernel({ ...common, entry: 'ln2d_fwd', storage: fwd });
export const ln2dBwd4Kernel = defineKernel({
  ...common,
  entry: 'ln2d_bwd4',
  storage: io(
    ['x4', 'read'],
    ['dy4', 'read'],
    ['w4_b', 'read'],
    ['mean4_b', 'read'],
    ['rstd4_b', 'read'],
    ['dx4', 'read_write'],
  ),
});
export const ln2dBwdKernel = defineKernel({ ...common, entry: 'ln2d_bwd', storage: bwd });
export const ln2dDwDb4Kernel = defineKernel({
  ...common,
  entry: 'ln2d_dwdb4',
  storage: io(
    ['x4', 'read'],
    ['dy4', 'read'],
    ['mean4_p', 'read'],
    ['rstd4_p', 'read'],
    ['pw', 'read_write'],
    ['pb', 'read_write'],
  ),
});
export const ln2dDwDbKernel = defineKernel({ ...common, entry: 'ln2d_dwdb', storage: part });

const ZERO = {
  rows: 0,
  D: 0,
  HW: 1,
  eps: 0,
  x_base: 0,
  g_base: 0,
  o_base: 0,
  s_base: 0,
  lanes: 1,
  per: 1,
  p_off: 0,
  nblk: 0,
};

/**
 * Chunks of `items` (rows or samples) so every big tensor's slice fits one binding: for each chunk,
 * the slices of `big` (itemElems elements per item) and `small` (smallElems per item).
 */
function* chunked(
  gpu: Gpu,
  what: string,
  items: number,
  itemElems: number,
  big: readonly Tensor[],
  smallElems: number,
  small: readonly Tensor[],
): Generator<{ start: number; count: number; big: Slice[]; small: Slice[] }> {
  for (const [start, count] of batchChunks(gpu, items, [itemElems, smallElems], what)) {
    yield {
      start,
      count,
      big: big.map((t) => bindSlice(gpu, t, start * itemElems, count * itemElems)),
      small: small.map((t) => bindSlice(gpu, t, start * smallElems, count * smallElems)),
    };
  }
}

const aligned4 = (slices: readonly Slice[]) => slices.every((s) => s.base % 4 === 0);

function checkSize(what: string, t: Tensor, elems: number): void {
  if (t.size !== elems) throw new Error(`${what}: ${t.describe()} should hold ${elems} elements`);
}

// ------------------------------------------------------------------ LayerNorm over the last dim

/** y = LN(x) over rows of length D; writes mean and rstd (rows elements each). */
export function runLayerNormForward(
  x: Tensor,
  w: Tensor,
  b: Tensor,
  y: Tensor,
  mean: Tensor,
  rstd: Tensor,
  rows: number,
  D: number,
  eps: number,
): void {
  const what = 'layerNorm';
  for (const [t, n] of [
    [x, rows * D],
    [y, rows * D],
    [w, D],
    [b, D],
    [mean, rows],
    [rstd, rows],
  ] as const)
    checkSize(what, t, n);
  const gpu = x.gpu;
  const perRow = gpu.profile.kind === 'gpu';
  for (const ch of chunked(gpu, what, rows, D, [x, y], 1, [mean, rstd])) {
    const [xs, ys] = ch.big as [Slice, Slice];
    const [ms, rs] = ch.small as [Slice, Slice];
    const vec = D % 4 === 0 && aligned4(ch.big);
    const spec = perRow ? lnFwdWgKernel : vec ? lnFwdRow4Kernel : lnFwdRowKernel;
    const u = { ...ZERO, rows: ch.count, D, eps, x_base: xs.base, g_base: ys.base, s_base: ms.base };
    gpu.dispatch(
      spec,
      [xs.binding, w.binding(), b.binding(), ys.binding, ms.binding, rs.binding],
      u,
      perRow ? grid1d(gpu, ch.count) : grid1d(gpu, ceilDiv(ch.count, WG)),
      { WG: perRow ? WG_ROW : WG },
    );
  }
}

/** dx of LayerNorm from x, dy and the saved mean/rstd. */
export function runLayerNormBackwardDx(
  x: Tensor,
  dy: Tensor,
  w: Tensor,
  mean: Tensor,
  rstd: Tensor,
  dx: Tensor,
  rows: number,
  D: number,
): void {
  const what = 'layerNorm backward';
  for (const [t, n] of [
    [x, rows * D],
    [dy, rows * D],
    [dx, rows * D],
    [w, D],
    [mean, rows],
    [rstd, rows],
  ] as const)
    checkSize(what, t, n);
  const gpu = x.gpu;
  const perRow = gpu.profile.kind === 'gpu';
  for (const ch of chunked(gpu, what, rows, D, [x, dy, dx], 1, [mean, rstd])) {
    const [xs, gs, os] = ch.big as [Slice, Slice, Slice];
    const [ms, rs] = ch.small as [Slice, Slice];
    const vec = D % 4 === 0 && aligned4(ch.big);
    const spec = perRow ? lnBwdWgKernel : vec ? lnBwdRow4Kernel : lnBwdRowKernel;
    const u = {
      ...ZERO,
      rows: ch.count,
      D,
      x_base: xs.base,
      g_base: gs.base,
      o_base: os.base,
      s_base: ms.base,
    };
    gpu.dispatch(
      spec,
      [xs.binding, gs.binding, w.binding(), ms.binding, rs.binding, os.binding],
      u,
      perRow ? grid1d(gpu, ch.count) : grid1d(gpu, ceilDiv(ch.count, WG)),
      { WG: perRow ? WG_ROW : WG },
    );
  }
}

/** dw = sum over rows of dy * xhat, db = sum over rows of dy (deterministic: blocks, then a tree-free sum). */
export function runLayerNormBackwardDwDb(
  x: Tensor,
  dy: Tensor,
  mean: Tensor,
  rstd: Tensor,
  dw: Tensor,
  db: Tensor,
  rows: number,
  D: number,
  newTensor: (elems: number) => Tensor,
): void {
  const what = 'layerNorm backward';
  for (const [t, n] of [
    [x, rows * D],
    [dy, rows * D],
    [dw, D],
    [db, D],
    [mean, rows],
    [rstd, rows],
  ] as const)
    checkSize(what, t, n);
  const gpu = x.gpu;
  const chunks = [...chunked(gpu, what, rows, D, [x, dy], 1, [mean, rstd])];
  // Rows per block: enough that the partials (blocks x D) fit one binding.
  const limit = gpu.profile.maxStorageBindingBytes;
  let per = ROWS_PER_BLOCK;
  const blocks = (p: number) => chunks.reduce((s, c) => s + ceilDiv(c.count, p), 0);
  while (blocks(per) * D * 4 > limit && per < rows) per *= 2;
  const total = blocks(per);
  if (total * D * 4 > limit)
    throw bindingLimitError(gpu, total * D * 4, `${what}: dw/db partials of ${total}x${D}`);
  const pw = newTensor(total * D);
  const pb = newTensor(total * D);
  let pOff = 0;
  for (const ch of chunks) {
    const [xs, gs] = ch.big as [Slice, Slice];
    const [ms, rs] = ch.small as [Slice, Slice];
    const nblk = ceilDiv(ch.count, per);
    const vec = D % 4 === 0 && aligned4(ch.big);
    const u = {
      ...ZERO,
      rows: ch.count,
      D,
      x_base: xs.base,
      g_base: gs.base,
      s_base: ms.base,
      per,
      p_off: pOff,
      nblk,
    };
    gpu.dispatch(
      vec ? lnDwDb4Kernel : lnDwDbKernel,
      [xs.binding, gs.binding, ms.binding, rs.binding, pw.binding(), pb.binding()],
      u,
      grid1d(gpu, ceilDiv(nblk * (vec ? D / 4 : D), WG)),
    );
    pOff += nblk;
  }
  runSumMid(pw, dw, 1, total, D);
  runSumMid(pb, db, 1, total, D);
  pw.dispose();
  pb.dispose();
}

// ------------------------------------------------------------------ LayerNorm2d (NCHW, over C)

/** y = LN2d(x) for x (N, C, HW); mean/rstd hold N*HW elements. */
export function runLayerNorm2dForward(
  x: Tensor,
  w: Tensor,
  b: Tensor,
  y: Tensor,
  mean: Tensor,
  rstd: Tensor,
  N: number,
  C: number,
  HW: number,
  eps: number,
): void {
  const what = 'layerNorm2d';
  for (const [t, n] of [
    [x, N * C * HW],
    [y, N * C * HW],
    [w, C],
    [b, C],
    [mean, N * HW],
    [rstd, N * HW],
  ] as const)
    checkSize(what, t, n);
  const gpu = x.gpu;
  for (const ch of chunked(gpu, what, N, C * HW, [x, y], HW, [mean, rstd])) {
    const [xs, ys] = ch.big as [Slice, Slice];
    const [ms, rs] = ch.small as [Slice, Slice];
    const vec = HW % 4 === 0 && C % 4 === 0 && aligned4([...ch.big, ...ch.small]);
    const u = { ...ZERO, rows: ch.count, D: C, HW, eps, x_base: xs.base, g_base: ys.base, s_base: ms.base };
    gpu.dispatch(
      vec ? ln2dFwd4Kernel : ln2dFwdKernel,
      [xs.binding, w.binding(), b.binding(), ys.binding, ms.binding, rs.binding],
      u,
      grid1d(gpu, ceilDiv((ch.count * HW) / (vec ? 4 : 1), WG)),
    );
  }
}

export function runLayerNorm2dBackwardDx(
  x: Tensor,
  dy: Tensor,
  w: Tensor,
  mean: Tensor,
  rstd: Tensor,
  dx: Tensor,
  N: number,
  C: number,
  HW: number,
): void {
  const what = 'layerNorm2d backward';
  for (const [t, n] of [
    [x, N * C * HW],
    [dy, N * C * HW],
    [dx, N * C * HW],
    [w, C],
    [mean, N * HW],
    [rstd, N * HW],
  ] as const)
    checkSize(what, t, n);
  const gpu = x.gpu;
  for (const ch of chunked(gpu, what, N, C * HW, [x, dy, dx], HW, [mean, rstd])) {
    const [xs, gs, os] = ch.big as [Slice, Slice, Slice];
    const [ms, rs] = ch.small as [Slice, Slice];
    const vec = HW % 4 === 0 && C % 4 === 0 && aligned4([...ch.big, ...ch.small]);
    const u = {
      ...ZERO,
      rows: ch.count,
      D: C,
      HW,
      x_base: xs.base,
      g_base: gs.base,
      o_base: os.base,
      s_base: ms.base,
    };
    gpu.dispatch(
      vec ? ln2dBwd4Kernel : ln2dBwdKernel,
      [xs.binding, gs.binding, w.binding(), ms.binding, rs.binding, os.binding],
      u,
      grid1d(gpu, ceilDiv((ch.count * HW) / (vec ? 4 : 1), WG)),
    );
  }
}

/** Lanes per (n, c) plane for per-channel partial sums: ~PER_LANE items each, partials within `maxBytes`. */
export function planeLanes(
  items: number,
  N: number,
  C: number,
  bytesPerPartial: number,
  maxBytes: number,
): number {
  let L = Math.max(1, Math.min(256, ceilDiv(items, PER_LANE), items));
  while (L > 1 && N * L * C * bytesPerPartial > maxBytes) L = Math.max(1, Math.floor(L / 2));
  if (N * L * C * bytesPerPartial > maxBytes)
    throw new GpuOutOfMemoryError(N * C * bytesPerPartial, maxBytes, `per-channel partials of ${N}x${C}`, {
      limitName: 'maxStorageBufferBindingSize',
    });
  return L;
}

export function runLayerNorm2dBackwardDwDb(
  x: Tensor,
  dy: Tensor,
  mean: Tensor,
  rstd: Tensor,
  dw: Tensor,
  db: Tensor,
  N: number,
  C: number,
  HW: number,
  newTensor: (elems: number) => Tensor,
): void {
  const what = 'layerNorm2d backward';
  for (const [t, n] of [
    [x, N * C * HW],
    [dy, N * C * HW],
    [dw, C],
    [db, C],
    [mean, N * HW],
    [rstd, N * HW],
  ] as const)
    checkSize(what, t, n);
  const gpu = x.gpu;
  const chunks = [...chunked(gpu, what, N, C * HW, [x, dy], HW, [mean, rstd])];
  const vec = HW % 4 === 0 && chunks.every((c) => aligned4([...c.big, ...c.small]));
  const items = vec ? HW / 4 : HW;
  const L = planeLanes(items, N, C, 4, gpu.profile.maxStorageBindingBytes);
  const T = N * L;
  const pw = newTensor(T * C);
  const pb = newTensor(T * C);
  for (const ch of chunks) {
    const [xs, gs] = ch.big as [Slice, Slice];
    const [ms, rs] = ch.small as [Slice, Slice];
    const u = {
      ...ZERO,
      rows: ch.count,
      D: C,
      HW,
      x_base: xs.base,
      g_base: gs.base,
      s_base: ms.base,
      lanes: L,
      p_off: ch.start * L,
    };
    gpu.dispatch(
      vec ? ln2dDwDb4Kernel : ln2dDwDbKernel,
      [xs.binding, gs.binding, ms.binding, rs.binding, pw.binding(), pb.binding()],
      u,
      grid1d(gpu, ceilDiv(ch.count * C * L, WG)),
    );
  }
  runSumMid(pw, dw, 1, T, C);
  runSumMid(pb, db, 1, T, C);
  pw.dispose();
  pb.dispose();
}
