/**
 * TS face of kernels/elementwise.wgsl: pointwise unary/binary ops and their gradients, in-place
 * axpby, fill, and the rank-6 strided gather used for permute / pad / crop / broadcast.
 */
import type { Binding, Gpu } from '../gpu/device.js';
import { defineKernel } from '../gpu/kernel.js';
import type { UniformLayout } from '../gpu/uniforms.js';
import type { Tensor } from '../tensor/tensor.js';
import { ceilDiv } from '../util/shape.js';
import { grid1d } from './grid.js';
import { elementwise as source } from './wgsl.gen.js';

const DIMS = ['d0', 'd1', 'd2', 'd3', 'd4', 'd5'] as const;
const layout: UniformLayout = [
  ['n', 'u32'],
  ['alpha', 'f32'],
  ['beta', 'f32'],
  ['rank_pad', 'u32'],
  ...DIMS.map((d) => [d, 'u32'] as const),
  ...[0, 1, 2, 3, 4, 5].map((i) => [`as${i}`, 'i32'] as const),
  ...[0, 1, 2, 3, 4, 5].map((i) => [`bs${i}`, 'i32'] as const),
  ...[0, 1, 2, 3, 4, 5].map((i) => [`ast${i}`, 'i32'] as const),
  ...[0, 1, 2, 3, 4, 5].map((i) => [`ae${i}`, 'u32'] as const),
  ['a_off', 'u32'],
  ['b_off', 'u32'],
];

const WG = 256;
const common = { file: 'elementwise', source, uniforms: layout, overrides: { WG, OP: 0 } } as const;
export const unaryKernel = defineKernel({
  ...common,
  entry: 'unary',
  storage: [
    ['x', 'read'],
    ['out1', 'read_write'],
  ],
});
export const unaryGradKernel = defineKernel({
  ...common,
  entry: 'unary_grad',
  storage: [
    ['x', 'read'],
    ['y', 'read'],
    ['out', 'read_write'],
  ],
});
export const binaryKernel = defineKernel({
  ...common,
  entry: 'binary',
  storage: [
    ['x', 'read'],
    ['y', 'read'],
    ['out', 'read_write'],
  ],
});
export const axpbyKernel = defineKernel({
  ...common,
  entry: 'axpby',
  storage: [
    ['acc', 'read_write'],
    ['src', 'read'],
  ],
});
export const affineInplaceKernel = defineKernel({
  ...common,
  entry: 'affine_inplace',
  storage: [['dst', 'read_write']],
});
export const fillKernel = defineKernel({ ...common, entry: 'fill', storage: [['dst', 'read_write']] });
export const gatherKernel = defineKernel({
  ...common,
  entry: 'gather',
  storage: [
    ['x', 'read'],
    ['out1', 'read_write'],
  ],
});

export const unary4Kernel = defineKernel({
  ...common,
  entry: 'unary4',
  storage: [
    ['x4', 'read'],
    ['out14', 'read_write'],
  ],
});
export const unaryGrad4Kernel = defineKernel({
  ...common,
  entry: 'unary_grad4',
  storage: [
    ['x4', 'read'],
    ['y4', 'read'],
    ['out4', 'read_write'],
  ],
});
export const binary4Kernel = defineKernel({
  ...common,
  entry: 'binary4',
  storage: [
    ['x4', 'read'],
    ['y4', 'read'],
    ['out4', 'read_write'],
  ],
});
export const axpby4Kernel = defineKernel({
  ...common,
  entry: 'axpby4',
  storage: [
    ['acc4', 'read_write'],
    ['src4', 'read'],
  ],
});
export const affineInplace4Kernel = defineKernel({
  ...common,
  entry: 'affine_inplace4',
  storage: [['dst4', 'read_write']],
});
export const fill4Kernel = defineKernel({ ...common, entry: 'fill4', storage: [['dst4', 'read_write']] });

/**
 * Bindings for the vec4 entries: each covers ceil(n/4) vec4s of its tensor, or null when some
 * buffer is too small for that (app-owned buffers of exact size), in which case the scalar entry runs.
 */
function vec4Bindings(n: number, ...ts: Tensor[]): Binding[] | null {
  const bytes = Math.ceil(n / 4) * 16;
  if (ts.some((t) => t.buffer.size < bytes)) return null;
  return ts.map((t) => ({ buffer: t.buffer, offset: 0, size: bytes }));
}

function launch4(gpu: Gpu, n: number) {
  return grid1d(gpu, ceilDiv(Math.ceil(n / 4), WG));
}

export const UNARY = { relu: 0, gelu: 1, sigmoid: 2, affine: 3, exp: 4, square: 5, sqrt: 6, abs: 7 } as const;
export type UnaryOp = keyof typeof UNARY;
export const UNARY_GRAD = { relu: 0, gelu: 1, sigmoid: 2 } as const;
export type UnaryGradOp = keyof typeof UNARY_GRAD;
export const BINARY = { add: 0, sub: 1, mul: 2, div: 3 } as const;
export type BinaryOp = keyof typeof BINARY;

function zeroGeometry(): Record<string, number> {
  const u: Record<string, number> = { rank_pad: 0, a_off: 0, b_off: 0, alpha: 0, beta: 0 };
  for (let i = 0; i < 6; i++) {
    u[`d${i}`] = 1;
    u[`as${i}`] = 0;
    u[`bs${i}`] = 0;
    u[`ast${i}`] = 0;
    u[`ae${i}`] = 1;
  }
  return u;
}

function launch1d(gpu: Gpu, n: number) {
  return grid1d(gpu, ceilDiv(n, WG));
}

export function runUnary(op: UnaryOp, x: Tensor, out: Tensor, alpha = 1, beta = 0): void {
  const gpu = x.gpu;
  const u = { ...zeroGeometry(), n: out.size, alpha, beta };
  const b4 = vec4Bindings(out.size, x, out);
  if (b4) gpu.dispatch(unary4Kernel, b4, u, launch4(gpu, out.size), { OP: UNARY[op] });
  else gpu.dispatch(unaryKernel, [x.binding(), out.binding()], u, launch1d(gpu, out.size), { OP: UNARY[op] });
}

export function runUnaryGrad(op: UnaryGradOp, x: Tensor, dy: Tensor, dx: Tensor): void {
  const gpu = x.gpu;
  const u = { ...zeroGeometry(), n: dx.size };
  const b4 = vec4Bindings(dx.size, x, dy, dx);
  if (b4) gpu.dispatch(unaryGrad4Kernel, b4, u, launch4(gpu, dx.size), { OP: UNARY_GRAD[op] });
  else
    gpu.dispatch(unaryGradKernel, [x.binding(), dy.binding(), dx.binding()], u, launch1d(gpu, dx.size), {
      OP: UNARY_GRAD[op],
    });
}

/** Broadcast geometry: output dims and per-dim strides of a and b (0 = broadcast), rank ≤ 6. */
export interface Broadcast {
  dims: number[];
  aStrides: number[];
  bStrides: number[];
}

function padTo6(v: readonly number[], fillValue: number): number[] {
  if (v.length > 6) throw new Error(`elementwise: rank ${v.length} > 6 after dimension merging`);
  return [...new Array<number>(6 - v.length).fill(fillValue), ...v];
}

export function runBinary(op: BinaryOp, a: Tensor, b: Tensor, out: Tensor, g: Broadcast): void {
  const gpu = a.gpu;
  // Same shape, both operands contiguous: the vec4 entry.
  if (g.dims.length === 1 && g.aStrides[0] === 1 && g.bStrides[0] === 1) {
    const b4 = vec4Bindings(out.size, a, b, out);
    if (b4) {
      gpu.dispatch(binary4Kernel, b4, { ...zeroGeometry(), n: out.size }, launch4(gpu, out.size), {
        OP: BINARY[op],
      });
      return;
    }
  }
  const d = padTo6(g.dims, 1);
  const as = padTo6(g.aStrides, 0);
  const bs = padTo6(g.bStrides, 0);
  const u = zeroGeometry();
  u.n = out.size;
  for (let i = 0; i < 6; i++) {
    u[`d${i}`] = d[i]!;
    u[`as${i}`] = as[i]!;
    u[`bs${i}`] = bs[i]!;
  }
  gpu.dispatch(binaryKernel, [a.binding(), b.binding(), out.binding()], u, launch1d(gpu, out.size), {
    OP: BINARY[op],
  });
}

/** acc = alpha*acc + beta*src, in place (acc and src must not share a buffer). */
export function runAxpby(acc: Tensor, src: Tensor, alpha: number, beta: number): void {
  if (acc.buffer === src.buffer) throw new Error('axpby: acc and src share a buffer; use runAffineInplace');
  const gpu = acc.gpu;
  const u = { ...zeroGeometry(), n: acc.size, alpha, beta };
  const b4 = vec4Bindings(acc.size, acc, src);
  if (b4) gpu.dispatch(axpby4Kernel, b4, u, launch4(gpu, acc.size));
  else gpu.dispatch(axpbyKernel, [acc.binding(), src.binding()], u, launch1d(gpu, acc.size));
}

/** t = alpha*t + beta, in place. */
export function runAffineInplace(t: Tensor, alpha: number, beta = 0): void {
  const gpu = t.gpu;
  const u = { ...zeroGeometry(), n: t.size, alpha, beta };
  const b4 = vec4Bindings(t.size, t);
  if (b4) gpu.dispatch(affineInplace4Kernel, b4, u, launch4(gpu, t.size));
  else gpu.dispatch(affineInplaceKernel, [t.binding()], u, launch1d(gpu, t.size));
}

export function runFill(out: Tensor, value: number): void {
  const gpu = out.gpu;
  const u = { ...zeroGeometry(), n: out.size, alpha: value };
  const b4 = vec4Bindings(out.size, out);
  if (b4) gpu.dispatch(fill4Kernel, b4, u, launch4(gpu, out.size));
  else gpu.dispatch(fillKernel, [out.binding()], u, launch1d(gpu, out.size));
}

/** Strided view read: see the `gather` entry. All arrays have the output's rank (≤ 6). */
export interface GatherGeometry {
  dims: number[];
  strides: number[];
  starts: number[];
  extents: number[];
  offset?: number;
}

export function runGather(x: Tensor, out: Tensor, g: GatherGeometry): void {
  const gpu = x.gpu;
  const d = padTo6(g.dims, 1);
  const s = padTo6(g.strides, 0);
  const st = padTo6(g.starts, 0);
  const e = padTo6(g.extents, 1);
  const u = zeroGeometry();
  u.n = out.size;
  u.a_off = g.offset ?? 0;
  for (let i = 0; i < 6; i++) {
    u[`d${i}`] = d[i]!;
    u[`as${i}`] = s[i]!;
    u[`ast${i}`] = st[i]!;
    u[`ae${i}`] = e[i]!;
  }
  gpu.dispatch(gatherKernel, [x.binding(), out.binding()], u, launch1d(gpu, out.size));
}
