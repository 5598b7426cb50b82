/**
 * Argument checks of the public entry points (src/api.ts, src/engine.ts, src/app, src/eval/inference.ts,
 * Tensor creation). A wrong type or value throws ArgumentError, a wrong shape ShapeError; every
 * message names the function, the argument, what was expected and what was got, e.g.
 * "prepareSlice: slice.image must be a Float32Array, got Float64Array(4096)". The checks run on the
 * host before any GPU work, so a bad call never reaches a kernel (where it would surface as a
 * WebGPU validation error or a TypeError from deep inside).
 */
import { fmt, ShapeError } from './shape.js';

/** A public function was called with an argument of the wrong type or value. */
export class ArgumentError extends Error {
  override name = 'ArgumentError';
}

const GPU_USAGE_BITS: [number, string][] = [
  [0x0001, 'MAP_READ'],
  [0x0002, 'MAP_WRITE'],
  [0x0004, 'COPY_SRC'],
  [0x0008, 'COPY_DST'],
  [0x0010, 'INDEX'],
  [0x0020, 'VERTEX'],
  [0x0040, 'UNIFORM'],
  [0x0080, 'STORAGE'],
  [0x0100, 'INDIRECT'],
  [0x0200, 'QUERY_RESOLVE'],
];

/** GPUBufferUsage flags as names ("STORAGE|COPY_DST"). */
/** "a Tensor", "an Int32Array". */
export function withArticle(word: string): string {
  return `${/^[AEIOUaeiou]/.test(word) ? 'an' : 'a'} ${word}`;
}

export function usageNames(usage: number): string {
  const names = GPU_USAGE_BITS.filter(([b]) => usage & b).map(([, n]) => n);
  return names.length ? names.join('|') : 'none';
}

function isGpuBufferLike(v: object): v is GPUBuffer {
  const b = v as Partial<GPUBuffer>;
  return typeof b.size === 'number' && typeof b.usage === 'number' && typeof b.mapState === 'string';
}

/** A short description of any value for messages: "Float64Array(12)", "string 'abc'", "Tensor i32[1, 4]". */
export function describeValue(v: unknown): string {
  if (v === null) return 'null';
  if (v === undefined) return 'undefined';
  switch (typeof v) {
    case 'number':
      return `number ${v}`;
    case 'string':
      return `string ${JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}...` : v)}`;
    case 'boolean':
      return `boolean ${v}`;
    case 'bigint':
      return `bigint ${v}n`;
    case 'function':
      return `function ${v.name || '(anonymous)'}`;
    case 'symbol':
      return 'a symbol';
  }
  const o = v as object;
  if (ArrayBuffer.isView(o)) {
    const n = (o as { length?: number }).length;
    return n === undefined ? `${o.constructor.name}(${o.byteLength} bytes)` : `${o.constructor.name}(${n})`;
  }
  if (o instanceof ArrayBuffer) return `ArrayBuffer(${o.byteLength} bytes)`;
  if (Array.isArray(o)) {
    const show = o.length <= 6 && o.every((e) => typeof e === 'number' || typeof e === 'string');
    return show ? `array ${JSON.stringify(o)}` : `an array of ${o.length} elements`;
  }
  const ctor = (o as { constructor?: { name?: string } }).constructor?.name;
  const t = o as { shape?: unknown; dtype?: unknown };
  if (ctor === 'Tensor' && Array.isArray(t.shape) && typeof t.dtype === 'string')
    return `Tensor ${t.dtype}${fmt(t.shape as number[])}`;
  if (isGpuBufferLike(o)) return `GPUBuffer (${o.size} bytes, usage ${usageNames(o.usage)})`;
  if (o instanceof Map) return `Map(${o.size})`;
  if (ctor && ctor !== 'Object') return withArticle(ctor);
  const keys = Object.keys(o);
  return `an object {${keys.slice(0, 5).join(', ')}${keys.length > 5 ? ', ...' : ''}}`;
}

/** Throws ArgumentError "`fn`: `arg` must be `expected`, got <value>". */
export function badArg(fn: string, arg: string, expected: string, got: unknown): never {
  throw new ArgumentError(`${fn}: ${arg} must be ${expected}, got ${describeValue(got)}`);
}

export function isPlainObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v) && !ArrayBuffer.isView(v);
}

/** `v` is an object (an options bag); undefined is allowed when `optional`. */
export function checkObject(fn: string, arg: string, v: unknown, optional = false): void {
  if (v === undefined && optional) return;
  if (!isPlainObject(v)) badArg(fn, arg, optional ? 'an object (or omitted)' : 'an object', v);
}

export function checkInt(fn: string, arg: string, v: unknown, min: number): asserts v is number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min)
    badArg(fn, arg, min === 1 ? 'a positive integer' : `an integer >= ${min}`, v);
}

export function checkString(fn: string, arg: string, v: unknown, nonEmpty = true): asserts v is string {
  if (typeof v !== 'string' || (nonEmpty && v === ''))
    badArg(fn, arg, nonEmpty ? 'a non-empty string' : 'a string', v);
}

/** A finite number (>= min when given). */
export function checkFiniteNumber(fn: string, arg: string, v: unknown, min?: number): asserts v is number {
  if (typeof v !== 'number' || !Number.isFinite(v) || (min !== undefined && v < min))
    badArg(fn, arg, min === undefined ? 'a finite number' : `a finite number >= ${min}`, v);
}

const HINT: Record<string, string> = {
  Float32Array: 'convert with Float32Array.from(...)',
  Int32Array: 'convert with Int32Array.from(...)',
};

/** `v` is exactly a Float32Array / Int32Array (other typed arrays and plain arrays are refused with a hint). */
export function checkTyped<T extends Float32Array | Int32Array>(
  fn: string,
  arg: string,
  v: unknown,
  ctor: (new (n: number) => T) & { name: string },
): asserts v is T {
  if (v instanceof ctor) return;
  const hint = ArrayBuffer.isView(v) || Array.isArray(v) ? ` (${HINT[ctor.name]})` : '';
  throw new ArgumentError(`${fn}: ${arg} must be ${withArticle(ctor.name)}, got ${describeValue(v)}${hint}`);
}

/** A shape: an array of non-negative integers. */
export function checkShapeArg(fn: string, arg: string, v: unknown): asserts v is readonly number[] {
  if (!Array.isArray(v) || v.some((d) => typeof d !== 'number' || !Number.isInteger(d) || d < 0))
    badArg(fn, arg, 'an array of integers >= 0', v);
}

export function checkDType(fn: string, arg: string, v: unknown): asserts v is 'f32' | 'i32' {
  if (v !== 'f32' && v !== 'i32') badArg(fn, arg, "'f32' or 'i32'", v);
}

/** Index of the first NaN / Inf in `a`, or -1. */
export function firstNonFinite(a: ArrayLike<number>): number {
  for (let i = 0; i < a.length; i++) if (!Number.isFinite(a[i]!)) return i;
  return -1;
}

/** Throws ArgumentError naming the first NaN / Inf of `a` (with `where(i)` locating it). */
export function checkAllFinite(
  fn: string,
  arg: string,
  a: ArrayLike<number>,
  where: (i: number) => string = (i) => `index ${i}`,
): void {
  const i = firstNonFinite(a);
  if (i >= 0)
    throw new ArgumentError(
      `${fn}: ${arg} must be finite, got ${a[i]} at ${where(i)} (of ${a.length} values)`,
    );
}

/** `data` holds exactly `n` values for `what` (ShapeError otherwise). */
export function checkLength(fn: string, arg: string, data: ArrayLike<number>, n: number, what: string): void {
  if (data.length !== n)
    throw new ShapeError(`${fn}: ${arg} has ${data.length} values, expected ${what} = ${n}`);
}
