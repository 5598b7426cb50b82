/** Layout ops: reshape (a view), permute, pad and slice (materialised by the gather kernel). */
import { record } from '../autograd/tape.js';
import { runAxpby, runGather } from '../kernels/elementwise.js';
import { Tensor } from '../tensor/tensor.js';
import { fmt, numel, ShapeError, stridesOf, type Shape } from '../util/shape.js';

export function reshape(x: Tensor, shape: Shape): Tensor {
  const s = [...shape];
  const neg = s.indexOf(-1);
  if (neg >= 0) {
    const rest = numel(s.filter((_, i) => i !== neg));
    s[neg] = rest === 0 ? 0 : x.size / rest;
  }
  if (numel(s) !== x.size || !s.every((d) => Number.isInteger(d) && d >= 0))
    throw new ShapeError(`reshape: cannot reshape ${fmt(x.shape)} to ${fmt(shape)}`);
  const out = x.view(s);
  return record('reshape', out, [x], [], (g) => [g.view(x.shape)]);
}

export function permute(x: Tensor, perm: readonly number[]): Tensor {
  const r = x.shape.length;
  if (perm.length !== r || new Set(perm).size !== r || perm.some((p) => p < 0 || p >= r))
    throw new ShapeError(
      `permute: ${JSON.stringify(perm)} is not a permutation of the dims of ${fmt(x.shape)}`,
    );
  if (r > 6) throw new ShapeError(`permute: rank ${r} > 6 is not supported (shape ${fmt(x.shape)})`);
  const st = stridesOf(x.shape);
  const shape = perm.map((p) => x.shape[p]!);
  const out = Tensor.empty(x.gpu, shape, x.dtype);
  runGather(x, out, {
    dims: shape,
    strides: perm.map((p) => st[p]!),
    starts: shape.map(() => 0),
    extents: shape,
  });
  const inv = new Array<number>(r);
  perm.forEach((p, i) => (inv[p] = i));
  return record('permute', out, [x], [], (g) => [permuteRaw(g, inv)]);
}

function permuteRaw(x: Tensor, perm: readonly number[]): Tensor {
  const st = stridesOf(x.shape);
  const shape = perm.map((p) => x.shape[p]!);
  const out = Tensor.empty(x.gpu, shape, x.dtype);
  runGather(x, out, {
    dims: shape,
    strides: perm.map((p) => st[p]!),
    starts: shape.map(() => 0),
    extents: shape,
  });
  return out;
}

/** Zero-pads each dim by [before, after] (pads.length == rank). */
export function pad(x: Tensor, pads: readonly (readonly [number, number])[]): Tensor {
  if (pads.length !== x.shape.length || pads.some(([a, b]) => a < 0 || b < 0))
    throw new ShapeError(`pad: pads ${JSON.stringify(pads)} do not fit shape ${fmt(x.shape)}`);
  const out = padRaw(x, pads);
  return record('pad', out, [x], [], (g) => [
    sliceRaw(
      g,
      pads.map(([a]) => a),
      x.shape,
    ),
  ]);
}

/** The block of `sizes` starting at `starts` (sizes.length == starts.length == rank). */
export function slice(x: Tensor, starts: readonly number[], sizes: readonly number[]): Tensor {
  if (
    starts.length !== x.shape.length ||
    sizes.length !== x.shape.length ||
    starts.some((s, i) => s < 0 || s + sizes[i]! > x.shape[i]!)
  )
    throw new ShapeError(`slice: start ${fmt(starts)} size ${fmt(sizes)} out of bounds for ${fmt(x.shape)}`);
  const out = sliceRaw(x, starts, sizes);
  return record('slice', out, [x], [], (g) => [
    padRaw(
      g,
      x.shape.map((d, i) => [starts[i]!, d - starts[i]! - sizes[i]!] as const),
    ),
  ]);
}

function padRaw(x: Tensor, pads: readonly (readonly [number, number])[]): Tensor {
  checkRank6('pad', x.shape);
  const shape = x.shape.map((d, i) => d + pads[i]![0] + pads[i]![1]);
  const out = Tensor.empty(x.gpu, shape, x.dtype);
  runGather(x, out, {
    dims: shape,
    strides: stridesOf(x.shape),
    starts: pads.map(([a]) => -a),
    extents: [...x.shape],
  });
  return out;
}

function sliceRaw(x: Tensor, starts: readonly number[], sizes: readonly number[]): Tensor {
  checkRank6('slice', x.shape);
  const out = Tensor.empty(x.gpu, sizes, x.dtype);
  runGather(x, out, {
    dims: [...sizes],
    strides: stridesOf(x.shape),
    starts: [...starts],
    extents: [...x.shape],
  });
  return out;
}

function checkRank6(op: string, s: Shape): void {
  if (s.length > 6) throw new ShapeError(`${op}: rank ${s.length} > 6 is not supported (shape ${fmt(s)})`);
}

/** Concatenates tensors along `axis`. */
export function concat(xs: readonly Tensor[], axis: number): Tensor {
  const first = xs[0];
  if (!first) throw new ShapeError('concat: no tensors');
  const r = first.shape.length;
  const ax = axis < 0 ? axis + r : axis;
  for (const t of xs)
    if (t.shape.length !== r || t.shape.some((d, i) => i !== ax && d !== first.shape[i]))
      throw new ShapeError(`concat: ${fmt(t.shape)} does not match ${fmt(first.shape)} outside axis ${ax}`);
  const total = xs.reduce((n, t) => n + t.shape[ax]!, 0);
  const shape = first.shape.map((d, i) => (i === ax ? total : d));
  const out = Tensor.zeros(first.gpu, shape, first.dtype);
  // Each part is padded into place and accumulated (parts are disjoint, so a sum is a copy).
  let off = 0;
  const parts: [number, number][] = [];
  for (const t of xs) {
    const padded = padRaw(
      t,
      shape.map((d, i) => (i === ax ? ([off, total - off - t.shape[ax]!] as const) : ([0, 0] as const))),
    );
    runAxpby(out, padded, 1, 1);
    padded.dispose();
    parts.push([off, t.shape[ax]!]);
    off += t.shape[ax]!;
  }
  return record('concat', out, xs, [], (g) =>
    parts.map(([o, n]) =>
      sliceRaw(
        g,
        shape.map((_, i) => (i === ax ? o : 0)),
        shape.map((d, i) => (i === ax ? n : d)),
      ),
    ),
  );
}
