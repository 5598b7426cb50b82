/**
 * Tensor scopes: `tidy(fn)` disposes every tensor created inside `fn` except those it returns
 * (and those marked with `keep`). Scopes are synchronous, like the recording of GPU work; a
 * tensor returned from an inner scope moves to the outer one.
 */
export interface Scoped {
  dispose(): void;
  readonly disposed: boolean;
}

const stack: Set<Scoped>[] = [];

export function track(t: Scoped): void {
  stack[stack.length - 1]?.add(t);
}

/** Removes `t` from every open scope, so no scope will dispose it. */
export function untrack(t: Scoped): void {
  for (const s of stack) s.delete(t);
}

export function scopeDepth(): number {
  return stack.length;
}

function collect(v: unknown, out: Set<Scoped>, seen = new Set<unknown>()): void {
  if (v === null || typeof v !== 'object' || seen.has(v)) return;
  seen.add(v);
  if (isScoped(v)) {
    out.add(v);
    return;
  }
  if (Array.isArray(v)) for (const x of v) collect(x, out, seen);
  else if (v instanceof Map) for (const x of v.values()) collect(x, out, seen);
  else if (Object.getPrototypeOf(v) === Object.prototype)
    for (const x of Object.values(v)) collect(x, out, seen);
}

function isScoped(v: object): v is Scoped {
  return typeof (v as Scoped).dispose === 'function' && 'disposed' in v;
}

export function tidy<T>(fn: () => T): T {
  if (fn.constructor.name === 'AsyncFunction') throw new Error('tidy() takes a synchronous function');
  const scope = new Set<Scoped>();
  stack.push(scope);
  let result: T;
  try {
    result = fn();
  } catch (e) {
    stack.pop();
    for (const t of scope) t.dispose();
    throw e;
  }
  stack.pop();
  const keep = new Set<Scoped>();
  collect(result, keep);
  for (const t of scope) {
    if (keep.has(t)) track(t);
    else t.dispose();
  }
  return result;
}
