/**
 * TS face of kernels/maxpool.wgsl: MaxPool2d forward (saving i32 argmax indices) and the gather
 * backward. Planes (N*C) are split into chunks when a tensor exceeds the storage-binding limit.
 */
import type { Gpu } from '../gpu/device.js';
import { defineKernel } from '../gpu/kernel.js';
import type { UniformLayout } from '../gpu/uniforms.js';
import type { Tensor } from '../tensor/tensor.js';
import { bindSlice } from './split.js';
import { planeChunks, planeGrid, workgroupShape } from './resize.js';
import { maxpool as source } from './wgsl.gen.js';

const layout: UniformLayout = [
  ['P', 'u32'],
  ['H', 'u32'],
  ['W', 'u32'],
  ['Ho', 'u32'],
  ['Wo', 'u32'],
  ['KH', 'u32'],
  ['KW', 'u32'],
  ['SH', 'u32'],
  ['SW', 'u32'],
  ['PH', 'u32'],
  ['PW', 'u32'],
  ['x_base', 'u32'],
  ['y_base', 'u32'],
];

const common = { file: 'maxpool', source, uniforms: layout, overrides: { WX: 8, WY: 8 } } as const;

export const maxPoolFwdKernel = defineKernel({
  ...common,
  entry: 'fwd',
  storage: [
    ['x', 'read'],
    ['y', 'read_write'],
    ['idx', 'read_write'],
  ],
});
export const maxPoolBwdKernel = defineKernel({
  ...common,
  entry: 'bwd',
  storage: [
    ['dy', 'read'],
    ['idx_in', 'read'],
    ['dx', 'read_write'],
  ],
});

export const maxPoolFwdK3s2Kernel = defineKernel({
  ...common,
  entry: 'fwd_k3s2',
  storage: [
    ['x4', 'read'],
    ['y4', 'read_write'],
    ['idx4', 'read_write'],
  ],
});
export const maxPoolBwdK3s2Kernel = defineKernel({
  ...common,
  entry: 'bwd_k3s2',
  storage: [
    ['dy4', 'read'],
    ['idx4_in', 'read'],
    ['dx4', 'read_write'],
  ],
});

/** MaxPool2d geometry over P = N*C planes of H x W. */
export interface PoolGeom {
  P: number;
  H: number;
  W: number;
  KH: number;
  KW: number;
  SH: number;
  SW: number;
  PH: number;
  PW: number;
}

export function poolOutSize(g: PoolGeom): [number, number] {
  return [Math.floor((g.H + 2 * g.PH - g.KH) / g.SH) + 1, Math.floor((g.W + 2 * g.PW - g.KW) / g.SW) + 1];
}

/** True when the vec4 entries for the ResNet stem (3x3, stride 2, padding 1, W % 8 == 0) apply. */
export function poolUsesK3s2(g: PoolGeom): boolean {
  return g.KH === 3 && g.KW === 3 && g.SH === 2 && g.SW === 2 && g.PH === 1 && g.PW === 1 && g.W % 8 === 0;
}

function uniforms(g: PoolGeom, P: number, xBase: number, yBase: number) {
  const [Ho, Wo] = poolOutSize(g);
  const { H, W, KH, KW, SH, SW, PH, PW } = g;
  return { P, H, W, Ho, Wo, KH, KW, SH, SW, PH, PW, x_base: xBase, y_base: yBase };
}

function chunks(gpu: Gpu, g: PoolGeom): { s: number; n: number; xi: number; yi: number }[] {
  const [Ho, Wo] = poolOutSize(g);
  const xi = g.H * g.W;
  const yi = Ho * Wo;
  return planeChunks(gpu, g.P, [xi, yi], 'maxPool2d').map(([s, n]) => ({ s, n, xi, yi }));
}

/** y = maxpool(x); idx (i32, same shape as y) = argmax y*W + x within each plane. */
export function runMaxPool2d(x: Tensor, y: Tensor, idx: Tensor, g: PoolGeom): void {
  const gpu = x.gpu;
  const [Ho, Wo] = poolOutSize(g);
  const ov = workgroupShape(gpu);
  for (const { s, n, xi, yi } of chunks(gpu, g)) {
    const xs = bindSlice(gpu, x, s * xi, n * xi);
    const ys = bindSlice(gpu, y, s * yi, n * yi);
    const is = bindSlice(gpu, idx, s * yi, n * yi);
    const u = uniforms(g, n, xs.base, ys.base);
    const b = [xs.binding, ys.binding, is.binding];
    if (poolUsesK3s2(g)) gpu.dispatch(maxPoolFwdK3s2Kernel, b, u, planeGrid(Wo / 4, Ho, n, ov), ov);
    else gpu.dispatch(maxPoolFwdKernel, b, u, planeGrid(Wo, Ho, n, ov), ov);
  }
}

/** dx[argmax] = sum of the dy routed to it (gather per input element, deterministic). */
export function runMaxPool2dBackward(dy: Tensor, idx: Tensor, dx: Tensor, g: PoolGeom): void {
  const gpu = dy.gpu;
  const ov = workgroupShape(gpu);
  for (const { s, n, xi, yi } of chunks(gpu, g)) {
    const ds = bindSlice(gpu, dy, s * yi, n * yi);
    const is = bindSlice(gpu, idx, s * yi, n * yi);
    const xs = bindSlice(gpu, dx, s * xi, n * xi);
    const u = uniforms(g, n, xs.base, ds.base);
    const b = [ds.binding, is.binding, xs.binding];
    if (poolUsesK3s2(g)) gpu.dispatch(maxPoolBwdK3s2Kernel, b, u, planeGrid(g.W / 8, g.H, n, ov), ov);
    else gpu.dispatch(maxPoolBwdKernel, b, u, planeGrid(g.W, g.H, n, ov), ov);
  }
}
