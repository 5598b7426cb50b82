/**
 * Splitting work so no storage binding exceeds the adapter's maxStorageBufferBindingSize
 * (128 MiB on lavapipe). Kernels that may see large tensors process the batch (outermost) axis in
 * chunks: each chunk binds a sub-range of every large tensor. Binding offsets must be multiples of
 * minStorageBufferOffsetAlignment, so a chunk's range starts at the aligned offset at or below its
 * first element and the kernel receives the remainder as an element base (`*_base` uniform).
 *
 * Tests force splitting on small tensors with `testGpu({ profile: { maxStorageBindingBytes: 4096 } })`.
 */
import type { Binding, Gpu } from '../gpu/device.js';
import { GpuOutOfMemoryError } from '../gpu/errors.js';
import type { Tensor } from '../tensor/tensor.js';

export interface Slice {
  binding: Binding;
  /** Element index, within the binding, of the slice's first element. */
  base: number;
}

/** Binds elements [start, start+count) of `t`, aligned as the adapter requires. */
export function bindSlice(gpu: Gpu, t: Tensor, start: number, count: number): Slice {
  const align = gpu.profile.minStorageOffsetAlignment;
  const byteStart = start * 4;
  const offset = Math.floor(byteStart / align) * align;
  const base = (byteStart - offset) / 4;
  const size = Math.max(4, (base + count) * 4);
  return { binding: { buffer: t.buffer, offset, size }, base };
}

/**
 * Splits `batch` items into chunks so that, for every tensor, `itemElems[i] * count` elements plus
 * the alignment slack fit into one binding. Returns [start, count] pairs covering [0, batch).
 * Throws when even one item is too large (the message names the limit).
 */
export function batchChunks(
  gpu: Gpu,
  batch: number,
  itemElems: readonly number[],
  what: string,
): [number, number][] {
  const limit = gpu.profile.maxStorageBindingBytes;
  const slack = gpu.profile.minStorageOffsetAlignment;
  const maxItem = Math.max(...itemElems, 1) * 4;
  if (maxItem + slack > limit) throw bindingLimitError(gpu, maxItem + slack, `${what}: one batch item`);
  const per = Math.max(1, Math.floor((limit - slack) / maxItem));
  const chunks: [number, number][] = [];
  for (let s = 0; s < batch; s += per) chunks.push([s, Math.min(per, batch - s)]);
  return chunks;
}

/**
 * Splits a flat range of `n` elements into [start, count] chunks whose bindings fit the adapter's
 * maxStorageBufferBindingSize. Chunk starts are multiples of the storage offset alignment (and of
 * `granule`), so every chunk binds at an exact offset and its first element has index 0.
 */
export function flatChunks(gpu: Gpu, n: number, granule = 1, what = 'kernel'): [number, number][] {
  const alignElems = Math.max(1, gpu.profile.minStorageOffsetAlignment / 4);
  const step = lcm(alignElems, granule);
  const maxElems = Math.floor(gpu.profile.maxStorageBindingBytes / 4 / step) * step;
  if (maxElems < step) throw bindingLimitError(gpu, step * 4, `${what}: one chunk of ${step} elements`);
  const chunks: [number, number][] = [];
  for (let s = 0; s < n; s += maxElems) chunks.push([s, Math.min(maxElems, n - s)]);
  return chunks;
}

/**
 * The error for work that cannot be split any further to fit maxStorageBufferBindingSize: an
 * out-of-memory error naming the request, the limit and the flags that shrink it.
 */
export function bindingLimitError(
  gpu: Gpu,
  bytes: number,
  what: string,
  detail?: string,
): GpuOutOfMemoryError {
  return new GpuOutOfMemoryError(bytes, gpu.profile.maxStorageBindingBytes, what, {
    limitName: 'maxStorageBufferBindingSize',
    ...(detail ? { detail } : {}),
  });
}

function lcm(a: number, b: number): number {
  let x = a;
  let y = b;
  while (y) [x, y] = [y, x % y];
  return (a / x) * b;
}

/** Binding of elements [start, start+count) of `t`; `start` must be aligned (see flatChunks). */
export function flatBinding(t: Tensor, start: number, count: number): Binding {
  return { buffer: t.buffer, offset: start * 4, size: Math.max(4, count * 4) };
}
