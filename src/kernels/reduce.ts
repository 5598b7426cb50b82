/** TS face of kernels/reduce.wgsl: out(A, I) = scale * sum_r x(A, R, I). */
import { defineKernel } from '../gpu/kernel.js';
import type { Tensor } from '../tensor/tensor.js';
import { ceilDiv } from '../util/shape.js';
import { grid1d } from './grid.js';
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
  ],
  overrides: { WG, CHUNK: 64 },
} as const;
export const sumMidKernel = defineKernel({ ...common, entry: 'sum_mid' });
export const sumWideKernel = defineKernel({ ...common, entry: 'sum_wide' });

/** out[a, i] = scale * sum_r x[a, r, i]; `out` must hold A*I elements. */
export function runSumMid(x: Tensor, out: Tensor, A: number, R: number, I: number, scale = 1): void {
  if (x.size !== A * R * I || out.size !== A * I)
    throw new Error(
      `reduce: x ${x.describe()} / out ${out.describe()} do not match (A=${A}, R=${R}, I=${I})`,
    );
  const gpu = x.gpu;
  const u = { A, R, I, scale };
  const outputs = A * I;
  // Few outputs with a long reduction: one workgroup per output keeps all lanes busy.
  if (outputs < 2048 && R >= 512) {
    gpu.dispatch(sumWideKernel, [x.binding(), out.binding()], u, grid1d(gpu, outputs));
  } else {
    gpu.dispatch(sumMidKernel, [x.binding(), out.binding()], u, grid1d(gpu, ceilDiv(outputs, WG)));
  }
}
