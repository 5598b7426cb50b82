/**
 * TS face of kernels/resize.wgsl: bilinear resize (align_corners=False, no antialias) forward and
 * its gather backward. Planes (N*C) are split into chunks when a tensor exceeds the binding limit.
 */
import type { Gpu } from '../gpu/device.js';
import { defineKernel } from '../gpu/kernel.js';
import type { UniformLayout } from '../gpu/uniforms.js';
import type { Tensor } from '../tensor/tensor.js';
import { ceilDiv } from '../util/shape.js';
import { batchChunks, bindSlice } from './split.js';
import { resize as source } from './wgsl.gen.js';

const layout: UniformLayout = [
  ['P', 'u32'],
  ['H', 'u32'],
  ['W', 'u32'],
  ['Ho', 'u32'],
  ['Wo', 'u32'],
  ['scale_h', 'f32'],
  ['scale_w', 'f32'],
  ['x_base', 'u32'],
  ['y_base', 'u32'],
];

const common = { file: 'resize', source, uniforms: layout, overrides: { WX: 8, WY: 8 } } as const;

export const resizeFwdKernel = defineKernel({
  ...common,
  entry: 'fwd',
  storage: [
    ['x', 'read'],
    ['y', 'read_write'],
  ],
});
export const resizeBwdKernel = defineKernel({
  ...common,
  entry: 'bwd',
  storage: [
    ['dy', 'read'],
    ['dx', 'read_write'],
  ],
});

/** Workgroup shape of the per-plane 3-D grids (maxpool and resize): 8x8 on CPUs, 32x4 on GPUs. */
export function workgroupShape(gpu: Gpu): { WX: number; WY: number } {
  return gpu.profile.kind === 'cpu' ? { WX: 8, WY: 8 } : { WX: 32, WY: 4 };
}

/** Grid covering cols x rows of `planes` planes, one invocation per element. */
export function planeGrid(
  cols: number,
  rows: number,
  planes: number,
  ov: { WX: number; WY: number },
): [number, number, number] {
  return [ceilDiv(cols, ov.WX), ceilDiv(rows, ov.WY), planes];
}

/**
 * [start, count] plane ranges: each fits the storage-binding limit (batchChunks) and the grid's
 * z dimension (maxWorkgroupsPerDimension planes).
 */
export function planeChunks(
  gpu: Gpu,
  planes: number,
  items: readonly number[],
  what: string,
): [number, number][] {
  const maxZ = gpu.profile.maxWorkgroupsPerDimension;
  return batchChunks(gpu, planes, items, what).flatMap(([s, n]) => {
    const out: [number, number][] = [];
    for (let k = 0; k < n; k += maxZ) out.push([s + k, Math.min(maxZ, n - k)]);
    return out;
  });
}

/** P planes of H x W resized to Ho x Wo. */
export interface ResizeGeom {
  P: number;
  H: number;
  W: number;
  Ho: number;
  Wo: number;
}

function* chunks(gpu: Gpu, g: ResizeGeom, xt: Tensor, yt: Tensor) {
  const xi = g.H * g.W;
  const yi = g.Ho * g.Wo;
  for (const [s, n] of planeChunks(gpu, g.P, [xi, yi], 'interpolateBilinear')) {
    const xs = bindSlice(gpu, xt, s * xi, n * xi);
    const ys = bindSlice(gpu, yt, s * yi, n * yi);
    // PyTorch computes the scale in f32 as in/out.
    const u = {
      P: n,
      H: g.H,
      W: g.W,
      Ho: g.Ho,
      Wo: g.Wo,
      scale_h: Math.fround(g.H / g.Ho),
      scale_w: Math.fround(g.W / g.Wo),
      x_base: xs.base,
      y_base: ys.base,
    };
    yield { n, xs, ys, u };
  }
}

export function runResizeBilinear(x: Tensor, y: Tensor, g: ResizeGeom): void {
  const gpu = x.gpu;
  const ov = workgroupShape(gpu);
  for (const { n, xs, ys, u } of chunks(gpu, g, x, y))
    gpu.dispatch(resizeFwdKernel, [xs.binding, ys.binding], u, planeGrid(ceilDiv(g.Wo, 4), g.Ho, n, ov), ov);
}

export function runResizeBilinearBackward(dy: Tensor, dx: Tensor, g: ResizeGeom): void {
  const gpu = dy.gpu;
  const ov = workgroupShape(gpu);
  for (const { n, xs, ys, u } of chunks(gpu, g, dx, dy))
    gpu.dispatch(resizeBwdKernel, [ys.binding, xs.binding], u, planeGrid(ceilDiv(g.W, 4), g.H, n, ov), ov);
}
