/** Reductions: sum over axes, sum to a broadcast-compatible shape (the backward of broadcasting). */
import { record } from '../autograd/tape.js';
import { runAffineInplace } from '../kernels/elementwise.js';
import { runSumMid } from '../kernels/reduce.js';
import { Tensor } from '../tensor/tensor.js';
import { fmt, numel, ShapeError, type Shape } from '../util/shape.js';
import { expandTo } from './elementwise.js';

/**
 * Sums `x` over `axes` (all when omitted), times `scale`. keepDims keeps reduced axes as size 1.
 */
export function sum(
  x: Tensor,
  axes?: readonly number[],
  opts: { keepDims?: boolean; scale?: number } = {},
): Tensor {
  const rank = x.shape.length;
  const ax = new Set((axes ?? x.shape.map((_, i) => i)).map((a) => (a < 0 ? a + rank : a)));
  for (const a of ax)
    if (a < 0 || a >= rank) throw new ShapeError(`sum: axis out of range for shape ${fmt(x.shape)}`);
  const keptShape = x.shape.map((d, i) => (ax.has(i) ? 1 : d));
  const outShape = opts.keepDims ? keptShape : x.shape.filter((_, i) => !ax.has(i));
  const out = reshapeOwned(reduceAxes(x, ax, opts.scale ?? 1), outShape);
  return record('sum', out, [x], [], (g) => {
    const v = g.view(keptShape);
    const r = expandTo(v, x.shape);
    v.dispose();
    if (opts.scale !== undefined && opts.scale !== 1) runAffineInplace(r, opts.scale);
    return [r];
  });
}

export function mean(x: Tensor, axes?: readonly number[], opts: { keepDims?: boolean } = {}): Tensor {
  const rank = x.shape.length;
  const ax = (axes ?? x.shape.map((_, i) => i)).map((a) => (a < 0 ? a + rank : a));
  const count = ax.reduce((n, a) => n * (x.shape[a] ?? 1), 1);
  return sum(x, ax, { ...opts, scale: 1 / Math.max(count, 1) });
}

/** Sums `x` down to `shape` (numpy broadcasting in reverse). No autograd: used inside rules. */
export function sumTo(x: Tensor, shape: Shape): Tensor {
  if (x.shape.length < shape.length)
    throw new ShapeError(`sumTo: cannot sum ${fmt(x.shape)} to ${fmt(shape)}`);
  const lead = x.shape.length - shape.length;
  const ax = new Set<number>();
  x.shape.forEach((d, i) => {
    const t = i < lead ? 1 : shape[i - lead]!;
    if (t === d) return;
    if (t !== 1) throw new ShapeError(`sumTo: cannot sum ${fmt(x.shape)} to ${fmt(shape)}`);
    ax.add(i);
  });
  for (let i = 0; i < lead; i++) ax.add(i);
  if (ax.size === 0) return x.view(shape);
  return reshapeOwned(reduceAxes(x, ax, 1), shape);
}

/** A view of `t` with another shape; the handle `t` is disposed. */
function reshapeOwned(t: Tensor, shape: Shape): Tensor {
  const v = t.view(shape);
  t.dispose();
  return v;
}

/** Kernel-level reduction over a set of axes: one (A, R, I) pass per run of adjacent axes. */
function reduceAxes(x: Tensor, axes: Set<number>, scale: number): Tensor {
  let shape = [...x.shape];
  let cur = x;
  let owned = false;
  let applied = false;
  // Reduce runs from the innermost outwards so earlier indices stay valid.
  for (let i = shape.length - 1; i >= 0;) {
    if (!axes.has(i) || shape[i] === 1) {
      i--;
      continue;
    }
    let j = i;
    while (j - 1 >= 0 && axes.has(j - 1)) j--;
    const A = numel(shape.slice(0, j));
    const R = numel(shape.slice(j, i + 1));
    const I = numel(shape.slice(i + 1));
    const next = Tensor.empty(x.gpu, [A * I]);
    runSumMid(cur, next, A, R, I, applied ? 1 : scale);
    applied = true;
    if (owned) cur.dispose();
    cur = next;
    owned = true;
    shape = [...shape.slice(0, j), ...new Array<number>(i + 1 - j).fill(1), ...shape.slice(i + 1)];
    i = j - 1;
  }
  const outShape = x.shape.map((d, k) => (axes.has(k) ? 1 : d));
  if (!applied) {
    // Nothing to sum (all reduced axes have size 1): copy, scaled.
    const out = Tensor.empty(x.gpu, outShape);
    runSumMid(x, out, numel(outShape), 1, 1, scale);
    return out;
  }
  return reshapeOwned(cur, outShape);
}
