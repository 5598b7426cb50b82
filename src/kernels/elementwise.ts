/**
 * TS face of kernels/elementwise.wgsl: pointwise unary/binary ops and their gradients, in-place
 * axpby, fill, and the rank-6 strided gather used for permute / pad / crop / broadcast.
 */
import type { Binding, Gpu } from '../gpu/device.js';
import { defineKernel, type KernelSpec } from '../gpu/kernel.js';
import type { UniformLayout } from '../gpu/uniforms.js';
import type { Tensor } from '../tensor/tensor.js';
import { ceilDiv } from '../util/shape.js';
import { grid1d, wgslConst } from './grid.js';
import { flatChunks } from './split.js';
import { elementwise as source } from './wgsl.gen.js';

const DIMS = ['d0', 'd1', 'd2', 'd3', 'd4', 'd5'] as const;
const layout: UniformLayout = [
  ['n', 'u32'],
  ['alpha', 'f32'],
  ['beta', 'f32'],
  ['i_off', 'u32'],
  ...DIMS.map((d) => [d, 'u32'] as const),
  ...[0, 1, 2, 3, 4, 5].map((i) => [`as${i}`, 'i32'] as const),
  ...[0, 1, 2, 3, 4, 5].map((i) => [`bs${i}`, 'i32'] as const),
  ...[0, 1, 2, 3, 4, 5].map((i) => [`ast${i}`, 'i32'] as const),
  ...[0, 1, 2, 3, 4, 5].map((i) => [`ae${i}`, 'u32'] as const),
  ['a_off', 'u32'],
  ['b_off', 'u32'],
  ['x_lo', 'u32'],
  ['x_len', 'u32'],
  ['b_lo', 'u32'],
  ['b_len', 'u32'],
  ['write_pad', 'u32'],
  ['nd', 'u32'],
];

const WG = 256;
/** Consecutive outputs per invocation of the binary and gather entries. */
const RUN = wgslConst(source, 'RUN');
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
// binary and binary_bc4 are picked per call from the broadcast geometry: made together.
const binaryPair: KernelSpec[] = [];
export const binaryKernel = defineKernel({
  ...common,
  entry: 'binary',
  storage: [
    ['x', 'read'],
    ['y', 'read'],
    ['out', 'read_write'],
  ],
  companions: binaryPair,
});
export const binaryBc4Kernel = defineKernel({
  ...common,
  entry: 'binary_bc4',
  storage: [
    ['x4', 'read'],
    ['y4', 'read'],
    ['out4', 'read_write'],
  ],
  companions: binaryPair,
});
binaryPair.push(binaryKernel, binaryBc4Kernel);
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
// gather and gather4 are picked per call from the read geometry, which can follow the data (the
// encoder's batch is a step's cache misses): their pipelines are made together.
const gatherPair: KernelSpec[] = [];
export const gatherKernel = defineKernel({
  ...common,
  entry: 'gather',
  storage: [
    ['x', 'read'],
    ['out1', 'read_write'],
  ],
  companions: gatherPair,
});
export const gather4Kernel = defineKernel({
  ...common,
  entry: 'gather4',
  storage: [
    ['x4', 'read'],
    ['out14', 'read_write'],
  ],
  companions: gatherPair,
});
gatherPair.push(gatherKernel, gather4Kernel);

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

function launch4(gpu: Gpu, n: number) {
  return grid1d(gpu, ceilDiv(Math.ceil(n / 4), WG * RUN));
}

/**
 * Runs a flat kernel over `n` elements of same-sized tensors `ts`, in chunks whose bindings fit
 * the adapter's maxStorageBufferBindingSize (a batch-24 ResNet activation is 400 MB). Each chunk
 * uses the vec4 entry when every buffer has room for the chunk's vec4-padded range (pool
 * buffers do; app-owned buffers of exact size may not), else the scalar entry (`scalarRun`
 * elements per invocation).
 */
function runFlat(
  kernels: { scalar: KernelSpec; vec4: KernelSpec },
  ts: readonly Tensor[],
  n: number,
  u: Record<string, number>,
  overrides: Record<string, number> = {},
  scalarRun = 1,
): void {
  const gpu = ts[0]!.gpu;
  for (const [s, c] of flatChunks(gpu, n, 4, kernels.scalar.name)) {
    const bytes4 = Math.ceil(c / 4) * 16;
    const v4 =
      bytes4 <= gpu.profile.maxStorageBindingBytes && ts.every((t) => t.buffer.size >= s * 4 + bytes4);
    const bindings: Binding[] = ts.map((t) => ({
      buffer: t.buffer,
      offset: s * 4,
      size: v4 ? bytes4 : Math.max(4, c * 4),
    }));
    if (v4) gpu.dispatch(kernels.vec4, bindings, { ...u, n: c }, launch4(gpu, c), overrides);
    else
      gpu.dispatch(kernels.scalar, bindings, { ...u, n: c }, launch1d(gpu, ceilDiv(c, scalarRun)), overrides);
  }
}

export const UNARY = { relu: 0, gelu: 1, sigmoid: 2, affine: 3, exp: 4, square: 5, sqrt: 6, abs: 7 } as const;
export type UnaryOp = keyof typeof UNARY;
export const UNARY_GRAD = { relu: 0, gelu: 1, sigmoid: 2 } as const;
export type UnaryGradOp = keyof typeof UNARY_GRAD;
export const BINARY = { add: 0, sub: 1, mul: 2, div: 3 } as const;
export type BinaryOp = keyof typeof BINARY;

function zeroGeometry(): Record<string, number> {
  const u: Record<string, number> = {
    i_off: 0,
    a_off: 0,
    b_off: 0,
    alpha: 0,
    beta: 0,
    // Whole tensors bound: windows cover every index.
    x_lo: 0,
    x_len: 0xffffffff,
    b_lo: 0,
    b_len: 0xffffffff,
    write_pad: 1,
    nd: 6,
  };
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
  runFlat(
    { scalar: unaryKernel, vec4: unary4Kernel },
    [x, out],
    out.size,
    { ...zeroGeometry(), alpha, beta },
    {
      OP: UNARY[op],
    },
  );
}

export function runUnaryGrad(op: UnaryGradOp, x: Tensor, dy: Tensor, dx: Tensor): void {
  runFlat({ scalar: unaryGradKernel, vec4: unaryGrad4Kernel }, [x, dy, dx], dx.size, zeroGeometry(), {
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
  // Same shape, both operands contiguous: the flat (vec4) path, split like every flat kernel.
  if (g.dims.length === 1 && g.aStrides[0] === 1 && g.bStrides[0] === 1) {
    // The scalar `binary` entry reads through the broadcast strides, which these flat bindings
    // (offset per chunk) make the identity: one dim (nd = 1), index i is its coordinate.
    const u = { ...zeroGeometry(), as5: 1, bs5: 1, nd: 1 };
    runFlat({ scalar: binaryKernel, vec4: binary4Kernel }, [a, b, out], out.size, u, { OP: BINARY[op] }, RUN);
    return;
  }
  const d = padTo6(g.dims, 1);
  const as = padTo6(g.aStrides, 0);
  const bs = padTo6(g.bStrides, 0);
  const u = zeroGeometry();
  u.nd = Math.max(1, g.dims.length);
  for (let i = 0; i < 6; i++) {
    u[`d${i}`] = d[i]!;
    u[`as${i}`] = as[i]!;
    u[`bs${i}`] = bs[i]!;
  }
  if (binaryBc4Fits(a, b, out, g)) {
    const launch = grid1d(out.gpu, ceilDiv(ceilDiv(out.size, 4 * RUN), WG));
    out.gpu.dispatch(
      binaryBc4Kernel,
      [vec4Binding(a), vec4Binding(b), out.binding()],
      { ...u, n: out.size },
      launch,
      {
        OP: BINARY[op],
      },
    );
    return;
  }
  const zeros = [0, 0, 0, 0, 0, 0];
  runWindowed(
    binaryKernel,
    out,
    u,
    { OP: BINARY[op] },
    [
      { t: a, geo: { dims: d, strides: as, starts: zeros, extents: d, offset: 0 }, lo: 'x_lo', len: 'x_len' },
      { t: b, geo: { dims: d, strides: bs, starts: zeros, extents: d, offset: 0 }, lo: 'b_lo', len: 'b_len' },
    ],
    RUN,
  );
}

/** A whole tensor bound as vec4s: its elements padded to a whole last vec4 (pool buffers have room). */
function vec4Binding(t: Tensor): { buffer: GPUBuffer; offset: number; size: number } {
  return { buffer: t.buffer, offset: 0, size: Math.ceil(t.size / 4) * 16 };
}

/**
 * Whether the vec4 broadcast entry applies: both operands read the innermost dim contiguously in
 * whole aligned vec4s (stride 1, its size and every other stride multiples of 4), and all three
 * tensors fit one binding, the operands' vec4-padded ranges included.
 */
function binaryBc4Fits(a: Tensor, b: Tensor, out: Tensor, g: Broadcast): boolean {
  const k = g.dims.length - 1;
  const m4 = (v: number) => v % 4 === 0;
  const fits = (t: Tensor) => {
    const bytes4 = vec4Binding(t).size;
    return t.size > 0 && bytes4 <= t.buffer.size && bytes4 <= t.gpu.profile.maxStorageBindingBytes;
  };
  return (
    g.aStrides[k] === 1 &&
    g.bStrides[k] === 1 &&
    m4(g.dims[k]!) &&
    g.aStrides.every((s, i) => i === k || m4(s)) &&
    g.bStrides.every((s, i) => i === k || m4(s)) &&
    fits(a) &&
    fits(b) &&
    out.size * 4 <= out.gpu.profile.maxStorageBindingBytes
  );
}

/** acc = alpha*acc + beta*src, in place (acc and src must not share a buffer). */
export function runAxpby(acc: Tensor, src: Tensor, alpha: number, beta: number): void {
  if (acc.buffer === src.buffer) throw new Error('axpby: acc and src share a buffer; use runAffineInplace');
  runFlat({ scalar: axpbyKernel, vec4: axpby4Kernel }, [acc, src], acc.size, {
    ...zeroGeometry(),
    alpha,
    beta,
  });
}

/** t = alpha*t + beta, in place. */
export function runAffineInplace(t: Tensor, alpha: number, beta = 0): void {
  runFlat({ scalar: affineInplaceKernel, vec4: affineInplace4Kernel }, [t], t.size, {
    ...zeroGeometry(),
    alpha,
    beta,
  });
}

export function runFill(out: Tensor, value: number): void {
  runFlat({ scalar: fillKernel, vec4: fill4Kernel }, [out], out.size, { ...zeroGeometry(), alpha: value });
}

/** Strided view read: see the `gather` entry. All arrays have the output's rank (≤ 6). */
export interface GatherGeometry {
  dims: number[];
  strides: number[];
  starts: number[];
  extents: number[];
  offset?: number;
}

/**
 * The same strided read over fewer dims (so the kernel divides less): a size-1 dim read at 0
 * inside its extent is dropped, and a dim merges with the next (inner) one when that one is read
 * whole (start 0, extent = size) and the outer stride is the inner stride times the inner size.
 * Merged: size d_o*d_i, stride s_i, start st_o*d_i, extent e_o*d_i.
 */
export function mergeGatherDims(g: GatherGeometry): GatherGeometry {
  const dims: number[] = [];
  const strides: number[] = [];
  const starts: number[] = [];
  const extents: number[] = [];
  g.dims.forEach((d, k) => {
    const s = g.strides[k]!;
    const st = g.starts[k]!;
    const e = g.extents[k]!;
    if (d === 1 && st === 0 && e >= 1) return;
    const j = dims.length - 1;
    if (j >= 0 && st === 0 && e === d && strides[j] === s * d) {
      dims[j]! *= d;
      strides[j] = s;
      starts[j]! *= d;
      extents[j]! *= d;
      return;
    }
    dims.push(d);
    strides.push(s);
    starts.push(st);
    extents.push(e);
  });
  if (dims.length === 0) return { dims: [1], strides: [0], starts: [0], extents: [1], offset: g.offset };
  return { dims, strides, starts, extents, offset: g.offset };
}

export function runGather(x: Tensor, out: Tensor, geometry: GatherGeometry): void {
  const g = mergeGatherDims(geometry);
  const d = padTo6(g.dims, 1);
  const s = padTo6(g.strides, 0);
  const st = padTo6(g.starts, 0);
  const e = padTo6(g.extents, 1);
  const u = zeroGeometry();
  u.a_off = g.offset ?? 0;
  u.nd = g.dims.length;
  for (let i = 0; i < 6; i++) {
    u[`d${i}`] = d[i]!;
    u[`as${i}`] = s[i]!;
    u[`ast${i}`] = st[i]!;
    u[`ae${i}`] = e[i]!;
  }
  const geo = { dims: d, strides: s, starts: st, extents: e, offset: g.offset ?? 0 };
  const gpu = out.gpu;
  if (gather4Fits(x, out, g)) {
    const x4 = vec4Binding(x);
    const launch = grid1d(gpu, ceilDiv(ceilDiv(out.size, 4 * RUN), WG));
    gpu.dispatch(gather4Kernel, [x4, out.binding()], { ...u, n: out.size }, launch);
    return;
  }
  runWindowed(gatherKernel, out, u, {}, [{ t: x, geo, lo: 'x_lo', len: 'x_len' }], RUN);
}

/**
 * Whether the vec4 gather entry applies: the innermost dim is read contiguously in whole aligned
 * vec4s (stride 1; size, start, extent, offset and every other stride multiples of 4) and both
 * tensors fit one binding, the input's vec4-padded range included (an empty input has none; an empty
 * output dispatches nothing).
 */
function gather4Fits(x: Tensor, out: Tensor, g: GatherGeometry): boolean {
  const k = g.dims.length - 1;
  const m4 = (v: number) => v % 4 === 0;
  const bytes4 = vec4Binding(x).size;
  return (
    x.size > 0 &&
    g.strides[k] === 1 &&
    m4(g.dims[k]!) &&
    m4(g.starts[k]!) &&
    m4(g.extents[k]!) &&
    m4(g.offset ?? 0) &&
    g.strides.every((s, i) => i === k || m4(s)) &&
    bytes4 <= x.buffer.size &&
    Math.max(bytes4, out.size * 4) <= x.gpu.profile.maxStorageBindingBytes
  );
}

/** A strided read of one operand: out coordinate c reads offset + sum_d (c_d + starts_d) * strides_d. */
interface ReadGeometry {
  dims: readonly number[];
  strides: readonly number[];
  starts: readonly number[];
  extents: readonly number[];
  offset: number;
}

/**
 * [lo, hi] element range that outputs [s, e] (inclusive, row-major over `dims`) can read, or null
 * when all of them fall outside the extents (padding). Conservative: dims inside the first one
 * where s and e differ are taken whole.
 */
export function readRange(g: ReadGeometry, s: number, e: number): [number, number] | null {
  const unravel = (i: number) => {
    const c = new Array<number>(6).fill(0);
    for (let k = 5; k >= 0; k--) {
      c[k] = i % g.dims[k]!;
      i = Math.floor(i / g.dims[k]!);
    }
    return c;
  };
  const cs = unravel(s);
  const ce = unravel(e);
  let lo = g.offset;
  let hi = g.offset;
  let differ = false;
  for (let k = 0; k < 6; k++) {
    let c0 = cs[k]!;
    let c1 = ce[k]!;
    if (differ) {
      c0 = 0;
      c1 = g.dims[k]! - 1;
    } else if (c0 !== c1) differ = true;
    // Source coordinates, clipped to the operand's extent (reads outside it are padding).
    const t0 = Math.max(c0 + g.starts[k]!, 0);
    const t1 = Math.min(c1 + g.starts[k]!, g.extents[k]! - 1);
    if (t0 > t1) return null;
    const a = t0 * g.strides[k]!;
    const b = t1 * g.strides[k]!;
    lo += Math.min(a, b);
    hi += Math.max(a, b);
  }
  return [lo, hi];
}

interface WindowedOperand {
  t: Tensor;
  geo: ReadGeometry;
  lo: 'x_lo' | 'b_lo';
  len: 'x_len' | 'b_len';
}

/**
 * Runs a binary / gather entry with every binding within the adapter's limit: the output in flat
 * chunks, each operand bound as aligned windows over the range the chunk reads. Every combination
 * of windows is dispatched; the kernel writes an output only from the windows holding its sources
 * (and padding zeros only in the first combination), so each output element is written once.
 * Tensors that fit are bound whole: one dispatch.
 */
function runWindowed(
  kernel: KernelSpec,
  out: Tensor,
  u: Record<string, number>,
  overrides: Record<string, number>,
  operands: readonly WindowedOperand[],
  perInvocation = 1,
): void {
  const gpu = out.gpu;
  const launch = (count: number) => launch1d(gpu, Math.ceil(count / perInvocation));
  const n = out.size;
  const limit = gpu.profile.maxStorageBindingBytes;
  if (out.size * 4 <= limit && operands.every((o) => o.t.size * 4 <= limit)) {
    const bindings = [...operands.map((o) => o.t.binding()), out.binding()];
    gpu.dispatch(kernel, bindings, { ...u, n }, launch(n), overrides);
    return;
  }
  const alignElems = Math.max(1, gpu.profile.minStorageOffsetAlignment / 4);
  const winElems = Math.floor(limit / 4 / alignElems) * alignElems;
  for (const [s, c] of flatChunks(gpu, n, 1, kernel.name)) {
    // Per operand: the windows [start, len] covering what outputs [s, s+c) read.
    const perOperand = operands.map((o) => {
      const r = readRange(o.geo, s, s + c - 1);
      if (!r) return [[0, Math.min(o.t.size, winElems)] as [number, number]];
      const lo = Math.max(0, Math.min(r[0], o.t.size - 1));
      const hi = Math.max(0, Math.min(r[1], o.t.size - 1));
      const wins: [number, number][] = [];
      for (let w = Math.floor(lo / alignElems) * alignElems; w <= hi; w += winElems)
        wins.push([w, Math.min(winElems, o.t.size - w)]);
      return wins;
    });
    let first = true;
    const combos = perOperand.reduce<[number, number][][]>(
      (acc, wins) => acc.flatMap((prefix) => wins.map((w) => [...prefix, w])),
      [[]],
    );
    for (const combo of combos) {
      const uc: Record<string, number> = { ...u, n: c, i_off: s, write_pad: first ? 1 : 0 };
      const bindings: Binding[] = operands.map((o, k) => {
        const [w, len] = combo[k]!;
        uc[o.lo] = w;
        uc[o.len] = len;
        return { buffer: o.t.buffer, offset: w * 4, size: Math.max(4, len * 4) };
      });
      bindings.push({ buffer: out.buffer, offset: s * 4, size: Math.max(4, c * 4) });
      gpu.dispatch(kernel, bindings, uc, launch(c), overrides);
      first = false;
    }
  }
}
