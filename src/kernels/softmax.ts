/** TS face of kernels/softmax.wgsl: row softmax over the last axis and its backward. */
import type { Gpu } from '../gpu/device.js';
import { defineKernel } from '../gpu/kernel.js';
import type { Tensor } from '../tensor/tensor.js';
import { ceilDiv } from '../util/shape.js';
import { grid1d } from './grid.js';
import { batchChunks, bindSlice } from './split.js';
import { softmax as source } from './wgsl.gen.js';

const uniforms = [
  ['rows', 'u32'],
  ['cols', 'u32'],
  ['a_base', 'u32'],
  ['b_base', 'u32'],
  ['c_base', 'u32'],
] as const;
const fwdStorage = [
  ['x', 'read'],
  ['y', 'read_write'],
] as const;
const bwdStorage = [
  ['yb', 'read'],
  ['dy', 'read'],
  ['dx', 'read_write'],
] as const;

const ROWS_WG = 64;
const WIDE_WG = 256;
export const softmaxRowsKernel = defineKernel({
  file: 'softmax',
  source,
  entry: 'softmax_rows',
  storage: fwdStorage,
  uniforms,
  overrides: { WG: ROWS_WG },
});
export const softmaxWideKernel = defineKernel({
  file: 'softmax',
  source,
  entry: 'softmax_wide',
  storage: fwdStorage,
  uniforms,
  overrides: { WG: WIDE_WG },
});
export const softmaxBwdRowsKernel = defineKernel({
  file: 'softmax',
  source,
  entry: 'softmax_bwd_rows',
  storage: bwdStorage,
  uniforms,
  overrides: { WG: ROWS_WG },
});
export const softmaxBwdWideKernel = defineKernel({
  file: 'softmax',
  source,
  entry: 'softmax_bwd_wide',
  storage: bwdStorage,
  uniforms,
  overrides: { WG: WIDE_WG },
});

export type SoftmaxLayout = 'rows' | 'wide';

/**
 * 'wide' (a workgroup per row) for few long rows, or any row of 128+ on real GPUs; else 'rows'
 * (an invocation per row, no barriers: what CPU adapters want).
 */
export function softmaxLayout(gpu: Gpu, rows: number, cols: number): SoftmaxLayout {
  if (gpu.profile.kind === 'gpu') return cols >= 128 ? 'wide' : 'rows';
  return cols >= 1024 && rows < 256 ? 'wide' : 'rows';
}

function dispatchRows(
  gpu: Gpu,
  fwd: boolean,
  layout: SoftmaxLayout,
  tensors: readonly Tensor[],
  rows: number,
  cols: number,
): void {
  const kernel = fwd
    ? layout === 'wide'
      ? softmaxWideKernel
      : softmaxRowsKernel
    : layout === 'wide'
      ? softmaxBwdWideKernel
      : softmaxBwdRowsKernel;
  const wg = layout === 'wide' ? WIDE_WG : ROWS_WG;
  for (const [start, count] of batchChunks(
    gpu,
    rows,
    tensors.map(() => cols),
    `softmax over rows of ${cols}`,
  )) {
    const sl = tensors.map((t) => bindSlice(gpu, t, start * cols, count * cols));
    const u = {
      rows: count,
      cols,
      a_base: sl[0]!.base,
      b_base: sl[1]!.base,
      c_base: sl[2]?.base ?? 0,
    };
    const groups = layout === 'wide' ? count : ceilDiv(count, wg);
    gpu.dispatch(
      kernel,
      sl.map((s) => s.binding),
      u,
      grid1d(gpu, groups),
    );
  }
}

/** y = softmax(x) over rows of `cols` (x, y hold rows*cols elements). */
export function runSoftmax(x: Tensor, y: Tensor, rows: number, cols: number, layout?: SoftmaxLayout): void {
  if (x.size !== rows * cols || y.size !== rows * cols)
    throw new Error(`softmax: x ${x.describe()} / y ${y.describe()} do not hold ${rows}x${cols}`);
  if (rows === 0 || cols === 0) return;
  const gpu = x.gpu;
  dispatchRows(gpu, true, layout ?? softmaxLayout(gpu, rows, cols), [x, y], rows, cols);
}

/** dx = y * (dy - sum(dy * y)) per row. */
export function runSoftmaxBackward(
  y: Tensor,
  dy: Tensor,
  dx: Tensor,
  rows: number,
  cols: number,
  layout?: SoftmaxLayout,
): void {
  const n = rows * cols;
  if (y.size !== n || dy.size !== n || dx.size !== n)
    throw new Error(
      `softmax backward: y ${y.describe()} / dy ${dy.describe()} / dx ${dx.describe()} do not hold ${rows}x${cols}`,
    );
  if (n === 0) return;
  const gpu = y.gpu;
  dispatchRows(gpu, false, layout ?? softmaxLayout(gpu, rows, cols), [y, dy, dx], rows, cols);
}
