/** Shape helpers. Errors thrown here name the op and the shapes involved. */
export type Shape = readonly number[];

export class ShapeError extends Error {
  override name = 'ShapeError';
}

export function numel(shape: Shape): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

export function fmt(shape: Shape): string {
  return `[${shape.join(', ')}]`;
}

export function sameShape(a: Shape, b: Shape): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

export function checkShape(op: string, what: string, got: Shape, want: Shape): void {
  if (!sameShape(got, want))
    throw new ShapeError(`${op}: ${what} has shape ${fmt(got)}, expected ${fmt(want)}`);
}

export function checkRank(op: string, what: string, got: Shape, rank: number): void {
  if (got.length !== rank)
    throw new ShapeError(`${op}: ${what} must have rank ${rank}, got shape ${fmt(got)}`);
}

export function assertValidShape(shape: Shape, what = 'tensor'): void {
  for (const d of shape)
    if (!Number.isInteger(d) || d < 0) throw new ShapeError(`${what}: invalid shape ${fmt(shape)}`);
}

export function ceilDiv(a: number, b: number): number {
  return Math.floor((a + b - 1) / b);
}

export function stridesOf(shape: Shape): number[] {
  const s = new Array<number>(shape.length);
  let acc = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    s[i] = acc;
    acc *= shape[i]!;
  }
  return s;
}
