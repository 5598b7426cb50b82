/**
 * TS face of kernels/loss.wgsl: CE + Dice statistics per workgroup, a one-workgroup final
 * reduction that forms total / CE / Dice and the Dice-gradient coefficients on the GPU, and the
 * analytic gradient with respect to the logits. Batches whose logits exceed the binding limit are
 * split into whole-image chunks (batchChunks / bindSlice).
 */
import type { Gpu } from '../gpu/device.js';
import { defineKernel } from '../gpu/kernel.js';
import type { Tensor } from '../tensor/tensor.js';
import { ceilDiv } from '../util/shape.js';
import { grid1d } from './grid.js';
import { batchChunks, bindSlice } from './split.js';
import { loss as source } from './wgsl.gen.js';

/** Largest class count the kernels support (MAXC in loss.wgsl). */
export const LOSS_MAX_CLASSES = 16;
const WG = 64;
const PPT = 16;

const common = {
  file: 'loss',
  source,
  uniforms: [
    ['hw', 'u32'],
    ['pixels', 'u32'],
    ['x_base', 'u32'],
    ['l_base', 'u32'],
    ['d_base', 'u32'],
    ['part_base', 'u32'],
    ['n_parts', 'u32'],
    ['inv_count', 'f32'],
    ['lambda', 'f32'],
    ['smoothing', 'f32'],
  ],
  overrides: { WG, PPT, CLASSES: 9 },
} as const;

export const lossStatsKernel = defineKernel({
  ...common,
  entry: 'loss_stats',
  storage: [
    ['x', 'read'],
    ['labels', 'read'],
    ['partials', 'read_write'],
  ],
});
export const lossFinalKernel = defineKernel({
  ...common,
  entry: 'loss_final',
  storage: [
    ['parts_in', 'read'],
    ['total', 'read_write'],
    ['ce', 'read_write'],
    ['dice', 'read_write'],
    ['coef', 'read_write'],
    ['nbad', 'read_write'],
  ],
});
export const lossGradKernel = defineKernel({
  ...common,
  entry: 'loss_grad',
  storage: [
    ['x', 'read'],
    ['labels', 'read'],
    ['coef_in', 'read'],
    ['gup', 'read'],
    ['dx', 'read_write'],
  ],
});

export interface LossGeometry {
  batch: number;
  classes: number;
  hw: number;
  lambda: number;
  smooth: number;
}

function uniforms(g: LossGeometry) {
  return {
    hw: g.hw,
    pixels: 0,
    x_base: 0,
    l_base: 0,
    d_base: 0,
    part_base: 0,
    n_parts: 0,
    inv_count: 1 / Math.max(1, g.batch * g.hw),
    lambda: g.lambda,
    smoothing: g.smooth,
  };
}

function chunks(gpu: Gpu, g: LossGeometry, what: string): [number, number][] {
  return batchChunks(gpu, g.batch, [g.classes * g.hw, g.hw], what);
}

/** Row length of one partial-sum record. */
export function lossRow(classes: number): number {
  return 2 + 3 * classes;
}

/** Number of partial rows `runLossStats` writes. */
export function lossPartialRows(gpu: Gpu, g: LossGeometry): number {
  return chunks(gpu, g, 'ceDiceLoss').reduce((n, [, c]) => n + ceilDiv(c * g.hw, WG * PPT), 0);
}

/** Per-workgroup CE/Dice sums into `partials` (lossPartialRows * lossRow elements). */
export function runLossStats(x: Tensor, labels: Tensor, partials: Tensor, g: LossGeometry): void {
  const gpu = x.gpu;
  const u = uniforms(g);
  let row = 0;
  for (const [s, c] of chunks(gpu, g, 'ceDiceLoss')) {
    const xs = bindSlice(gpu, x, s * g.classes * g.hw, c * g.classes * g.hw);
    const ls = bindSlice(gpu, labels, s * g.hw, c * g.hw);
    const pixels = c * g.hw;
    const blocks = ceilDiv(pixels, WG * PPT);
    gpu.dispatch(
      lossStatsKernel,
      [xs.binding, ls.binding, partials.binding()],
      { ...u, pixels, x_base: xs.base, l_base: ls.base, part_base: row },
      grid1d(gpu, blocks),
      { CLASSES: g.classes },
    );
    row += blocks;
  }
  if (row * lossRow(g.classes) !== partials.size)
    throw new Error(`ceDiceLoss: wrote ${row} partial rows into ${partials.describe()}`);
}

/** Final reduction: total, ce, dice (1 element each), coef (2*classes), nbad (1). */
export function runLossFinal(
  partials: Tensor,
  out: { total: Tensor; ce: Tensor; dice: Tensor; coef: Tensor; nbad: Tensor },
  g: LossGeometry,
): void {
  const gpu = partials.gpu;
  gpu.dispatch(
    lossFinalKernel,
    [
      partials.binding(),
      out.total.binding(),
      out.ce.binding(),
      out.dice.binding(),
      out.coef.binding(),
      out.nbad.binding(),
    ],
    { ...uniforms(g), n_parts: partials.size / lossRow(g.classes) },
    [1, 1, 1],
    { CLASSES: g.classes },
  );
}

/** dx = d(total)/d(logits) * gup[0], from the coefficients of runLossFinal. */
export function runLossGrad(
  x: Tensor,
  labels: Tensor,
  coef: Tensor,
  gup: Tensor,
  dx: Tensor,
  g: LossGeometry,
): void {
  const gpu = x.gpu;
  const u = uniforms(g);
  for (const [s, c] of chunks(gpu, g, 'ceDiceLoss backward')) {
    const xs = bindSlice(gpu, x, s * g.classes * g.hw, c * g.classes * g.hw);
    const ls = bindSlice(gpu, labels, s * g.hw, c * g.hw);
    const ds = bindSlice(gpu, dx, s * g.classes * g.hw, c * g.classes * g.hw);
    const pixels = c * g.hw;
    gpu.dispatch(
      lossGradKernel,
      [xs.binding, ls.binding, coef.binding(), { buffer: gup.buffer, offset: 0, size: 4 }, ds.binding],
      { ...u, pixels, x_base: xs.base, l_base: ls.base, d_base: ds.base },
      grid1d(gpu, ceilDiv(pixels, WG * PPT)),
      { CLASSES: g.classes },
    );
  }
}
