/**
 * TS face of kernels/conv_transpose2d.wgsl: ConvTranspose2d (padding 0) forward, dx, dW and db.
 * The k=2, s=2 case of the SAM decoder (even input width, H*W a multiple of 4) takes the
 * register-tiled `*_k2s2` entries; every other kernel/stride takes the scalar `*_direct` entries.
 * Activations are split over the batch axis when they exceed the adapter's storage-binding limit.
 */
import type { Binding, Gpu } from '../gpu/device.js';
import { defineKernel } from '../gpu/kernel.js';
import type { UniformLayout } from '../gpu/uniforms.js';
import type { Tensor } from '../tensor/tensor.js';
import { ceilDiv } from '../util/shape.js';
import { grid1d } from './grid.js';
import { batchChunks, bindSlice } from './split.js';
import { convTranspose2d as source, convTranspose2dSg as sgSource } from './wgsl.gen.js';

const layout: UniformLayout = [
  ['N', 'u32'],
  ['Cin', 'u32'],
  ['H', 'u32'],
  ['W', 'u32'],
  ['Cout', 'u32'],
  ['Ho', 'u32'],
  ['Wo', 'u32'],
  ['KH', 'u32'],
  ['KW', 'u32'],
  ['S', 'u32'],
  ['x_base', 'u32'],
  ['y_base', 'u32'],
  ['has_bias', 'u32'],
  ['accumulate', 'u32'],
];

const common = { file: 'conv_transpose2d', source, uniforms: layout } as const;
const RD = 'read' as const;
const RW = 'read_write' as const;

export const convTFwdK2s2Kernel = defineKernel({
  ...common,
  entry: 'fwd_k2s2',
  storage: [
    ['x4', RD],
    ['w4', RD],
    ['bias', RD],
    ['y4', RW],
  ],
  overrides: { WG: 8, TO: 8 },
});
export const convTFwdDirectKernel = defineKernel({
  ...common,
  entry: 'fwd_direct',
  storage: [
    ['xs', RD],
    ['ws', RD],
    ['bias', RD],
    ['ys', RW],
  ],
  overrides: { WG: 64 },
});
export const convTDxK2s2Kernel = defineKernel({
  ...common,
  entry: 'dx_k2s2',
  storage: [
    ['dy4', RD],
    ['w4', RD],
    ['dx4', RW],
  ],
  overrides: { WG: 8, TI: 8 },
});
export const convTDxDirectKernel = defineKernel({
  ...common,
  entry: 'dx_direct',
  storage: [
    ['dys', RD],
    ['ws', RD],
    ['dxs', RW],
  ],
  overrides: { WG: 64 },
});
export const convTDwK2s2Kernel = defineKernel({
  ...common,
  entry: 'dw_k2s2',
  storage: [
    ['x4', RD],
    ['dyw4', RD],
    ['dw4', RW],
  ],
  overrides: { WG: 8, TI: 4, TO: 2 },
});
export const convTDwDirectKernel = defineKernel({
  ...common,
  entry: 'dw_direct',
  storage: [
    ['xs', RD],
    ['dyws', RD],
    ['dws', RW],
  ],
  overrides: { WG: 64 },
});
export const convTBiasGradKernel = defineKernel({
  ...common,
  entry: 'bias_grad',
  storage: [
    ['dys', RD],
    ['db', RW],
  ],
  overrides: { WG: 64 },
});

// Subgroup variants (CPU adapters with 8-lane subgroups): kernels/conv_transpose2d_sg.wgsl.
const sg = { file: 'conv_transpose2d_sg', source: sgSource, uniforms: layout } as const;
export const convTFwdK2s2SgKernel = defineKernel({
  ...sg,
  entry: 'fwd_k2s2_sg',
  storage: [
    ['x4', RD],
    ['w4', RD],
    ['bias', RD],
    ['y4', RW],
  ],
});
export const convTDxK2s2SgKernel = defineKernel({
  ...sg,
  entry: 'dx_k2s2_sg',
  storage: [
    ['dy4', RD],
    ['w4', RD],
    ['dx4', RW],
  ],
});
export const convTDwK2s2SgKernel = defineKernel({
  ...sg,
  entry: 'dw_k2s2_sg',
  storage: [
    ['x4', RD],
    ['dyw4', RD],
    ['dw4', RW],
  ],
});
/** Channel tiles of the subgroup entries (fixed in the WGSL). */
const SG = { lanes: 8, to: 8, ti: 32, dwTi: 32, dwTo: 8, dwQuadsPerPass: 4096 } as const;

/** Geometry of one ConvTranspose2d (padding 0): x (N, Cin, H, W), w (Cin, Cout, KH, KW), stride S. */
export interface ConvTGeom {
  N: number;
  Cin: number;
  H: number;
  W: number;
  Cout: number;
  KH: number;
  KW: number;
  S: number;
}

export function convTOutSize(g: ConvTGeom): [number, number] {
  return [(g.H - 1) * g.S + g.KH, (g.W - 1) * g.S + g.KW];
}

/**
 * True when the register-tiled k=2, s=2 entries apply: they read x as vec4 pixel quads of the flat
 * H*W plane (H*W % 4 == 0, so every plane and batch chunk starts vec4-aligned) and write each pixel
 * pair's 2x4 output block as one vec4 per output row (W even).
 */
export function convTUsesK2s2(g: ConvTGeom): boolean {
  return g.KH === 2 && g.KW === 2 && g.S === 2 && g.W % 2 === 0 && (g.H * g.W) % 4 === 0;
}

/**
 * Variant and tile sizes per adapter: the subgroup entries on CPU adapters with subgroups; else
 * the plain register tiles, 8 lanes (one lavapipe SIMD group) on CPUs and 64 on GPUs.
 */
function tiles(gpu: Gpu): { sg: boolean; wg: number; direct: number; to: number; ti: number } {
  if (gpu.profile.kind === 'cpu')
    return { sg: gpu.profile.subgroups && gpu.profile.subgroupMinSize >= 8, wg: 8, direct: 64, to: 8, ti: 8 };
  return { sg: false, wg: 64, direct: 64, to: 4, ti: 4 };
}

function uniforms(g: ConvTGeom, n: number, xBase: number, yBase: number, extra: Record<string, number> = {}) {
  const [Ho, Wo] = convTOutSize(g);
  return {
    N: n,
    Cin: g.Cin,
    H: g.H,
    W: g.W,
    Cout: g.Cout,
    Ho,
    Wo,
    KH: g.KH,
    KW: g.KW,
    S: g.S,
    x_base: xBase,
    y_base: yBase,
    has_bias: 0,
    accumulate: 0,
    ...extra,
  };
}

interface Chunk {
  n: number;
  x: Binding;
  xBase: number;
  y: Binding;
  yBase: number;
  first: boolean;
}

/** Batch chunks binding the (x-like, y-like) activations; both fit the binding limit. */
function chunks(gpu: Gpu, g: ConvTGeom, xt: Tensor, yt: Tensor): Chunk[] {
  const [Ho, Wo] = convTOutSize(g);
  const xi = g.Cin * g.H * g.W;
  const yi = g.Cout * Ho * Wo;
  return batchChunks(gpu, g.N, [xi, yi], 'convTranspose2d').map(([s, n], k) => {
    const xs = bindSlice(gpu, xt, s * xi, n * xi);
    const ys = bindSlice(gpu, yt, s * yi, n * yi);
    return { n, x: xs.binding, xBase: xs.base, y: ys.binding, yBase: ys.base, first: k === 0 };
  });
}

/** y = convTranspose2d(x, w) + bias. `bias` null: no bias. */
export function runConvTranspose2d(x: Tensor, w: Tensor, bias: Tensor | null, y: Tensor, g: ConvTGeom): void {
  const gpu = x.gpu;
  const t = tiles(gpu);
  const fast = convTUsesK2s2(g);
  for (const c of chunks(gpu, g, x, y)) {
    const u = uniforms(g, c.n, c.xBase, c.yBase, { has_bias: bias ? 1 : 0 });
    const b = bias ? bias.binding() : w.binding();
    if (fast && t.sg) {
      const grid = grid1d(gpu, ceilDiv((c.n * g.H * g.W) / 4, SG.lanes));
      const z = ceilDiv(g.Cout, SG.to);
      gpu.dispatch(convTFwdK2s2SgKernel, [c.x, w.binding(), b, c.y], u, [grid[0], grid[1], z]);
    } else if (fast) {
      const grid = grid1d(gpu, ceilDiv((c.n * g.H * g.W) / 4, t.wg));
      gpu.dispatch(
        convTFwdK2s2Kernel,
        [c.x, w.binding(), b, c.y],
        u,
        [grid[0], grid[1], ceilDiv(g.Cout, t.to)],
        {
          WG: t.wg,
          TO: t.to,
        },
      );
    } else {
      const [Ho, Wo] = convTOutSize(g);
      const grid = grid1d(gpu, ceilDiv(c.n * g.Cout * Ho * Wo, t.direct));
      gpu.dispatch(convTFwdDirectKernel, [c.x, w.binding(), b, c.y], u, grid, { WG: t.direct });
    }
  }
}

/** dx = gradient of sum(y * dy) with respect to x. */
export function runConvTranspose2dDx(dy: Tensor, w: Tensor, dx: Tensor, g: ConvTGeom): void {
  const gpu = dy.gpu;
  const t = tiles(gpu);
  const fast = convTUsesK2s2(g);
  for (const c of chunks(gpu, g, dx, dy)) {
    const u = uniforms(g, c.n, c.xBase, c.yBase);
    if (fast && t.sg) {
      const grid = grid1d(gpu, ceilDiv((c.n * g.H * g.W) / 4, SG.lanes));
      const z = ceilDiv(g.Cin, SG.ti);
      gpu.dispatch(convTDxK2s2SgKernel, [c.y, w.binding(), c.x], u, [grid[0], grid[1], z]);
    } else if (fast) {
      const grid = grid1d(gpu, ceilDiv((c.n * g.H * g.W) / 4, t.wg));
      gpu.dispatch(convTDxK2s2Kernel, [c.y, w.binding(), c.x], u, [grid[0], grid[1], ceilDiv(g.Cin, t.ti)], {
        WG: t.wg,
        TI: t.ti,
      });
    } else {
      const grid = grid1d(gpu, ceilDiv(c.n * g.Cin * g.H * g.W, t.direct));
      gpu.dispatch(convTDxDirectKernel, [c.y, w.binding(), c.x], u, grid, { WG: t.direct });
    }
  }
}

/** dw = gradient of sum(y * dy) with respect to w (summed over the batch, chunk by chunk). */
export function runConvTranspose2dDw(x: Tensor, dy: Tensor, dw: Tensor, g: ConvTGeom): void {
  const gpu = x.gpu;
  const t = tiles(gpu);
  const fast = convTUsesK2s2(g);
  if (g.N === 0) {
    gpu.clear(dw.buffer, 0, dw.bytes);
    return;
  }
  for (const c of chunks(gpu, g, x, dy)) {
    const u = uniforms(g, c.n, c.xBase, c.yBase, { accumulate: c.first ? 0 : 1 });
    if (fast && t.sg) {
      // Blocked summation over the batch: each pass sums at most dwQuadsPerPass pixel quads per
      // accumulator and adds its block into dw (the kernel keeps one accumulator per output).
      const n = ceilDiv(g.Cin, SG.dwTi) * ceilDiv(g.Cout, SG.dwTo);
      const per = Math.max(1, Math.floor(SG.dwQuadsPerPass / ((g.H * g.W) / 4)));
      const [Ho, Wo] = convTOutSize(g);
      for (let s = 0; s < c.n; s += per) {
        const us = {
          ...u,
          N: Math.min(per, c.n - s),
          x_base: c.xBase + s * g.Cin * g.H * g.W,
          y_base: c.yBase + s * g.Cout * Ho * Wo,
          accumulate: c.first && s === 0 ? 0 : 1,
        };
        gpu.dispatch(convTDwK2s2SgKernel, [c.x, c.y, dw.binding()], us, grid1d(gpu, n));
      }
    } else if (fast) {
      const TI = 4;
      const TO = 2;
      const n = ceilDiv(g.Cin, TI) * ceilDiv(g.Cout, TO);
      gpu.dispatch(convTDwK2s2Kernel, [c.x, c.y, dw.binding()], u, grid1d(gpu, ceilDiv(n, t.wg)), {
        WG: t.wg,
        TI,
        TO,
      });
    } else {
      const grid = grid1d(gpu, ceilDiv(g.Cin * g.Cout * g.KH * g.KW, t.direct));
      gpu.dispatch(convTDwDirectKernel, [c.x, c.y, dw.binding()], u, grid, { WG: t.direct });
    }
  }
}

/** db[o] = sum of dy over batch and pixels of channel o. */
export function runConvTranspose2dDb(dy: Tensor, db: Tensor, g: ConvTGeom): void {
  const gpu = dy.gpu;
  const t = tiles(gpu);
  if (g.N === 0) {
    gpu.clear(db.buffer, 0, db.bytes);
    return;
  }
  const [Ho, Wo] = convTOutSize(g);
  const yi = g.Cout * Ho * Wo;
  for (const [k, [s, n]] of batchChunks(gpu, g.N, [yi], 'convTranspose2d').entries()) {
    const ys = bindSlice(gpu, dy, s * yi, n * yi);
    const u = uniforms(g, n, 0, ys.base, { accumulate: k === 0 ? 0 : 1 });
    gpu.dispatch(convTBiasGradKernel, [ys.binding, db.binding()], u, grid1d(gpu, ceilDiv(g.Cout, t.direct)), {
      WG: t.direct,
    });
  }
}
