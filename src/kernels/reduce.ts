/**
 * TS face of kernels/reduce.wgsl: out(A, I) = scale * sum_r x(A, R, I).
 *
 * Tensors over the adapter's maxStorageBufferBindingSize are reduced in pieces: a range of the
 * A axis per dispatch (batchChunks/bindSlice), or, when one (R, I) slab alone is over the limit,
 * a range of R per dispatch whose sums accumulate into `out`.
 */
import type { Binding, Gpu } from '../gpu/device.js';
import { defineKernel, type KernelSpec } from '../gpu/kernel.js';
import type { Tensor } from '../tensor/tensor.js';
import { ceilDiv } from '../util/shape.js';
import { grid1d } from './grid.js';
import { batchChunks, bindingLimitError, bindSlice } from './split.js';
import { reduce as source } from './wgsl.gen.js';

const WG = 256;
const common = {
  file: 'reduce',
  source,
  storage: [
    ['x', 'read'],
    ['out', 'read_write'],
  ],
  uniforms: [
    ['A', 'u32'],
    ['R', 'u32'],
    ['I', 'u32'],
    ['scale', 'f32'],
    ['x_base', 'u32'],
    ['out_base', 'u32'],
    ['accumulate', 'u32'],
  ],
  overrides: { WG, CHUNK: 64 },
} as const;
export const sumMidKernel = defineKernel({ ...common, entry: 'sum_mid' });
// The wide entries are picked per call from R and the alignment of the bound rows, which can follow
// the data (a last, shorter batch): their pipelines are made together.
const widePair: KernelSpec[] = [];
export const sumWideKernel = defineKernel({ ...common, entry: 'sum_wide', companions: widePair });
export const sumWide4Kernel = defineKernel({
  ...common,
  entry: 'sum_wide4',
  storage: [
    ['x4', 'read'],
    ['out', 'read_write'],
  ],
  companions: widePair,
});
widePair.push(sumWideKernel, sumWide4Kernel);

/**
 * Workgroup size of the wide entries: one SIMD group on CPU drivers, where each of the
 * log2(WG) barriers switches between the workgroup's SIMD groups (WG 8 ran a 128 x 16384 sum 4-5x
 * faster than WG 256 on lavapipe); 256 on GPUs.
 */
function wideOverrides(gpu: Gpu): Record<string, number> {
  return gpu.profile.kind === 'cpu' ? { WG: 8 } : {};
}

/** Whether a piece's rows are contiguous, vec4-aligned and bound in whole vec4s (sum_wide4). */
function wideVec4(p: Piece, I: number): boolean {
  const bytes = p.x.size ?? p.x.buffer.size - (p.x.offset ?? 0);
  return I === 1 && p.R % 4 === 0 && p.x_base % 4 === 0 && bytes % 16 === 0;
}

interface Piece {
  x: Binding;
  out: Binding;
  A: number;
  R: number;
  x_base: number;
  out_base: number;
  accumulate: number;
}

/** out[a, i] = scale * sum_r x[a, r, i]; `out` must hold A*I elements. */
export function runSumMid(x: Tensor, out: Tensor, A: number, R: number, I: number, scale = 1): void {
  if (x.size !== A * R * I || out.size !== A * I)
    throw new Error(
      `reduce: x ${x.describe()} / out ${out.describe()} do not match (A=${A}, R=${R}, I=${I})`,
    );
  const gpu = x.gpu;
  for (const p of pieces(gpu, x, out, A, R, I)) {
    const u = { A: p.A, R: p.R, I, scale, x_base: p.x_base, out_base: p.out_base, accumulate: p.accumulate };
    const outputs = p.A * I;
    // Few outputs with a long reduction: one workgroup per output keeps all lanes busy.
    if (outputs < 2048 && p.R >= 512) {
      const k = wideVec4(p, I) ? sumWide4Kernel : sumWideKernel;
      gpu.dispatch(k, [p.x, p.out], u, grid1d(gpu, outputs), wideOverrides(gpu));
    } else {
      gpu.dispatch(sumMidKernel, [p.x, p.out], u, grid1d(gpu, ceilDiv(outputs, WG)));
    }
  }
}

/** The dispatches that cover the reduction with every binding within the adapter's limit. */
function pieces(gpu: Gpu, x: Tensor, out: Tensor, A: number, R: number, I: number): Piece[] {
  const limit = gpu.profile.maxStorageBindingBytes;
  if (x.size * 4 <= limit && out.size * 4 <= limit)
    return [{ x: x.binding(), out: out.binding(), A, R, x_base: 0, out_base: 0, accumulate: 0 }];
  const slack = gpu.profile.minStorageOffsetAlignment;
  const list: Piece[] = [];
  if (R * I * 4 + slack <= limit) {
    for (const [s, n] of batchChunks(gpu, A, [R * I, I], 'reduce')) {
      const xs = bindSlice(gpu, x, s * R * I, n * R * I);
      const os = bindSlice(gpu, out, s * I, n * I);
      list.push({
        x: xs.binding,
        out: os.binding,
        A: n,
        R,
        x_base: xs.base,
        out_base: os.base,
        accumulate: 0,
      });
    }
    return list;
  }
  // One (R, I) slab is over the limit: split R, accumulating into out[a, :].
  const rows = Math.floor((limit - slack) / (I * 4));
  if (rows < 1) throw bindingLimitError(gpu, I * 4 + slack, `reduce: one row of ${I} elements`);
  for (let a = 0; a < A; a++) {
    const os = bindSlice(gpu, out, a * I, I);
    for (let r0 = 0; r0 < R; r0 += rows) {
      const n = Math.min(rows, R - r0);
      const xs = bindSlice(gpu, x, (a * R + r0) * I, n * I);
      list.push({
        x: xs.binding,
        out: os.binding,
        A: 1,
        R: n,
        x_base: xs.base,
        out_base: os.base,
        accumulate: r0 > 0 ? 1 : 0,
      });
    }
  }
  return list;
}
