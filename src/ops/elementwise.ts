/**
 * Pointwise ops with numpy broadcasting: add, sub, mul, div, and unary relu, gelu, sigmoid,
 * affine (a*x+b), exp, square, sqrt; each with its backward rule.
 */
import { record } from '../autograd/tape.js';
import {
  runAffineInplace,
  runAxpby,
  runBinary,
  runFill,
  runGather,
  runUnary,
  runUnaryGrad,
  type BinaryOp,
  type Broadcast,
} from '../kernels/elementwise.js';
import { Tensor } from '../tensor/tensor.js';
import { fmt, ShapeError, stridesOf, type Shape } from '../util/shape.js';
import { sumTo } from './reduce.js';

export function broadcastShapes(op: string, a: Shape, b: Shape): number[] {
  const r = Math.max(a.length, b.length);
  const out: number[] = [];
  for (let i = 0; i < r; i++) {
    const da = a[a.length - r + i] ?? 1;
    const db = b[b.length - r + i] ?? 1;
    if (da !== db && da !== 1 && db !== 1)
      throw new ShapeError(`${op}: shapes ${fmt(a)} and ${fmt(b)} do not broadcast`);
    out.push(da === 1 ? db : da);
  }
  return out;
}

/** Per-output-dim strides of `s` broadcast to `out` (0 on broadcast dims). */
function bstrides(s: Shape, out: Shape): number[] {
  const st = stridesOf(s);
  return out.map((d, i) => {
    const k = s.length - out.length + i;
    return k < 0 || s[k] === 1 ? 0 : st[k]!;
  });
}

/** Merges adjacent dims where both operands stay linear, so rank-6 kernels take any rank. */
export function broadcastGeometry(a: Shape, b: Shape, out: Shape): Broadcast {
  const as = bstrides(a, out);
  const bs = bstrides(b, out);
  const dims: number[] = [];
  const sa: number[] = [];
  const sb: number[] = [];
  out.forEach((d, i) => {
    if (d === 1) return;
    const k = dims.length - 1;
    if (k >= 0 && sa[k] === as[i]! * d && sb[k] === bs[i]! * d) {
      dims[k]! *= d;
      sa[k] = as[i]!;
      sb[k] = bs[i]!;
    } else {
      dims.push(d);
      sa.push(as[i]!);
      sb.push(bs[i]!);
    }
  });
  if (dims.length > 6) throw new ShapeError(`broadcast of ${fmt(a)} and ${fmt(b)} needs more than 6 dims`);
  return { dims, aStrides: sa, bStrides: sb };
}

function binary(op: BinaryOp, a: Tensor, b: Tensor): Tensor {
  if (a.dtype !== 'f32' || b.dtype !== 'f32')
    throw new ShapeError(`${op}: expects f32 tensors, got ${a.dtype}/${b.dtype}`);
  const shape = broadcastShapes(op, a.shape, b.shape);
  const out = Tensor.empty(a.gpu, shape);
  runBinary(op, a, b, out, broadcastGeometry(a.shape, b.shape, shape));
  return out;
}

export function add(a: Tensor, b: Tensor): Tensor {
  const out = binary('add', a, b);
  return record('add', out, [a, b], [], (g, n) => [
    n[0] ? sumTo(g, a.shape) : null,
    n[1] ? sumTo(g, b.shape) : null,
  ]);
}

export function sub(a: Tensor, b: Tensor): Tensor {
  const out = binary('sub', a, b);
  return record('sub', out, [a, b], [], (g, n) => [
    n[0] ? sumTo(g, a.shape) : null,
    n[1] ? negated(sumTo(g, b.shape)) : null,
  ]);
}

export function mul(a: Tensor, b: Tensor): Tensor {
  const out = binary('mul', a, b);
  return record('mul', out, [a, b], [a, b], (g, n) => {
    const ga = n[0] ? reduceProduct(g, b, a.shape) : null;
    const gb = n[1] ? reduceProduct(g, a, b.shape) : null;
    return [ga, gb];
  });
}

export function div(a: Tensor, b: Tensor): Tensor {
  const out = binary('div', a, b);
  return record('div', out, [a, b], [a, b], (g, n) => {
    const ga = n[0] ? reduceQuotient(g, b, a.shape) : null;
    let gb: Tensor | null = null;
    if (n[1]) {
      // d/db (a/b) = -a/b^2
      const ab = binary('div', a, b);
      const abb = binary('div', ab, b);
      ab.dispose();
      const t = binary('mul', g, abb);
      abb.dispose();
      gb = negated(sumTo(t, b.shape));
      t.dispose();
    }
    return [ga, gb];
  });
}

function reduceProduct(g: Tensor, other: Tensor, shape: Shape): Tensor {
  const t = binary('mul', g, other);
  const r = sumTo(t, shape);
  t.dispose();
  return r;
}

function reduceQuotient(g: Tensor, other: Tensor, shape: Shape): Tensor {
  const t = binary('div', g, other);
  const r = sumTo(t, shape);
  t.dispose();
  return r;
}

/** -t as a new tensor; the handle t is disposed (it may be a view of a gradient). */
function negated(t: Tensor): Tensor {
  const out = unaryOut(t, 'affine', -1, 0);
  t.dispose();
  return out;
}

/** In place: t *= s. Returns t. Only for tensors the caller owns exclusively. */
function scaled(t: Tensor, s: number): Tensor {
  runAffineInplace(t, s);
  return t;
}

function unaryOut(x: Tensor, op: Parameters<typeof runUnary>[0], alpha = 1, beta = 0): Tensor {
  const out = Tensor.empty(x.gpu, x.shape);
  runUnary(op, x, out, alpha, beta);
  return out;
}

export function relu(x: Tensor): Tensor {
  const out = unaryOut(x, 'relu');
  return record('relu', out, [x], [x], (g) => {
    const dx = Tensor.empty(x.gpu, x.shape);
    runUnaryGrad('relu', x, g, dx);
    return [dx];
  });
}

/** GELU with the exact erf form. */
export function gelu(x: Tensor): Tensor {
  const out = unaryOut(x, 'gelu');
  return record('gelu', out, [x], [x], (g) => {
    const dx = Tensor.empty(x.gpu, x.shape);
    runUnaryGrad('gelu', x, g, dx);
    return [dx];
  });
}

export function sigmoid(x: Tensor): Tensor {
  const out = unaryOut(x, 'sigmoid');
  return record('sigmoid', out, [x], [out], (g) => {
    const dx = Tensor.empty(x.gpu, x.shape);
    runUnaryGrad('sigmoid', out, g, dx);
    return [dx];
  });
}

/** a*x + b for scalars a, b. */
export function affine(x: Tensor, a: number, b = 0): Tensor {
  const out = unaryOut(x, 'affine', a, b);
  return record('affine', out, [x], [], (g) => [unaryOut(g, 'affine', a, 0)]);
}

export function scale(x: Tensor, a: number): Tensor {
  return affine(x, a, 0);
}

export function exp(x: Tensor): Tensor {
  const out = unaryOut(x, 'exp');
  return record('exp', out, [x], [out], (g) => [binary('mul', g, out)]);
}

export function square(x: Tensor): Tensor {
  const out = unaryOut(x, 'square');
  return record('square', out, [x], [x], (g) => {
    const t = binary('mul', g, x);
    return [scaled(t, 2)];
  });
}

export function fill(t: Tensor, value: number): Tensor {
  runFill(t, value);
  return t;
}

export function full(like: Tensor, shape: Shape, value: number): Tensor {
  const t = Tensor.empty(like.gpu, shape);
  runFill(t, value);
  return t;
}

/** In place: dst += src (same shape). Used for gradient accumulation. */
export function addInPlace(dst: Tensor, src: Tensor): void {
  if (dst.size !== src.size) throw new ShapeError(`addInPlace: ${dst.describe()} vs ${src.describe()}`);
  runAxpby(dst, src, 1, 1);
}

/** Broadcasts `x` to `shape` (materialised). */
export function expandTo(x: Tensor, shape: Shape): Tensor {
  broadcastShapes('expand', x.shape, shape);
  const out = Tensor.empty(x.gpu, shape);
  const st = bstrides(x.shape, shape);
  runGather(x, out, { dims: [...shape], strides: st, starts: shape.map(() => 0), extents: [...shape] });
  return out;
}
