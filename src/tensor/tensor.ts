/**
 * Tensor: a shape, a dtype and a reference-counted GPU storage. It has no math methods (ops live
 * in src/ops). Memory is released deterministically: `dispose()` drops this handle's reference,
 * and the storage's buffer returns to the pool when the last handle (including handles saved by
 * the autograd tape) is gone. Tensors are contiguous, row-major.
 */
import type { Binding, Gpu } from '../gpu/device.js';
import { ArgumentError, badArg, checkDType, checkShapeArg, describeValue, usageNames } from '../util/args.js';
import { assertValidShape, fmt, numel, ShapeError, type Shape } from '../util/shape.js';
import type { DType, HostTensor } from './host.js';
import { track, untrack } from './scope.js';

export class Storage {
  private refs = 1;
  constructor(
    readonly gpu: Gpu,
    readonly buffer: GPUBuffer,
    readonly bytes: number,
    /** An app-owned buffer: never returned to the pool or destroyed. */
    readonly external = false,
  ) {}
  retain(): void {
    this.refs++;
  }
  release(): void {
    if (--this.refs === 0 && !this.external) this.gpu.free(this.buffer);
  }
  get refCount(): number {
    return this.refs;
  }
}

/** Set by the autograd layer on tensors produced by a recorded op. */
export interface GradFn {
  readonly op: string;
}

let nextId = 1;

/** Called once when a tensor handle is disposed; the tape uses it to free unreachable graph parts. */
let disposeHook: ((t: Tensor) => void) | null = null;
export function setDisposeHook(fn: (t: Tensor) => void): void {
  disposeHook = fn;
}

export class Tensor {
  readonly id = nextId++;
  readonly shape: readonly number[];
  readonly size: number;
  requiresGrad = false;
  grad: Tensor | null = null;
  gradFn: GradFn | null = null;
  name: string | undefined;
  private store: Storage | null;
  private pins = 0;
  private disposeRequested = false;
  private handleDisposed = false;
  /** Number of unreleased autograd nodes that take this tensor as an input (set by the tape). */
  consumers = 0;

  constructor(
    storage: Storage,
    shape: Shape,
    readonly dtype: DType = 'f32',
  ) {
    assertValidShape(shape);
    this.shape = Object.freeze([...shape]);
    this.size = numel(shape);
    if (this.size * 4 > storage.bytes)
      throw new Error(`tensor of shape ${fmt(shape)} does not fit its ${storage.bytes}-byte storage`);
    this.store = storage;
    track(this);
  }

  // ------------------------------------------------------------ creation

  /** Uninitialised tensor (contents are whatever the pooled buffer held). */
  static empty(gpu: Gpu, shape: Shape, dtype: DType = 'f32'): Tensor {
    assertValidShape(shape);
    const bytes = numel(shape) * 4;
    return new Tensor(new Storage(gpu, gpu.alloc(bytes, `tensor ${fmt(shape)}`), bytes), shape, dtype);
  }

  static zeros(gpu: Gpu, shape: Shape, dtype: DType = 'f32'): Tensor {
    const t = Tensor.empty(gpu, shape, dtype);
    if (t.size) gpu.clear(t.buffer, 0, Math.ceil((t.size * 4) / 4) * 4);
    return t;
  }

  static fromData(gpu: Gpu, data: Float32Array | Int32Array | readonly number[], shape: Shape): Tensor {
    const arr = tensorData('Tensor.fromData', data, shape);
    const t = Tensor.empty(gpu, shape, arr instanceof Int32Array ? 'i32' : 'f32');
    if (t.size) gpu.upload(t.buffer, 0, arr);
    return t;
  }

  static fromHost(gpu: Gpu, h: HostTensor): Tensor {
    return Tensor.fromData(gpu, h.data, h.shape);
  }

  /**
   * Wraps an app-owned GPUBuffer (STORAGE usage, unmapped, at least numel(shape) * 4 bytes)
   * without copying; the engine never frees it.
   */
  static fromBuffer(gpu: Gpu, buffer: GPUBuffer, shape: Shape, dtype: DType = 'f32'): Tensor {
    checkBufferArg('Tensor.fromBuffer', buffer, shape, dtype);
    return new Tensor(new Storage(gpu, buffer, buffer.size, true), shape, dtype);
  }

  // ------------------------------------------------------------ access

  get gpu(): Gpu {
    return this.storage.gpu;
  }

  get storage(): Storage {
    if (!this.store) throw new Error(`tensor ${this.describe()} was used after dispose()`);
    return this.store;
  }

  get buffer(): GPUBuffer {
    return this.storage.buffer;
  }

  get bytes(): number {
    return this.size * 4;
  }

  get disposed(): boolean {
    return this.store === null;
  }

  /** The binding covering exactly this tensor's elements. */
  binding(): Binding {
    return { buffer: this.buffer, offset: 0, size: Math.max(4, this.bytes) };
  }

  describe(): string {
    return `${this.name ?? `#${this.id}`}${fmt(this.shape)}`;
  }

  /** A new handle on the same storage with another shape of equal size (no copy). */
  view(shape: Shape): Tensor {
    if (numel(shape) !== this.size) throw new Error(`view: cannot view ${this.describe()} as ${fmt(shape)}`);
    this.storage.retain();
    return new Tensor(this.storage, shape, this.dtype);
  }

  /** Exempts this tensor from the enclosing tidy() scopes. */
  keep(): this {
    untrack(this);
    return this;
  }

  /**
   * Releases this handle's storage. A tensor pinned by the autograd tape (saved for a backward
   * rule) stays readable until the tape unpins it; the release happens then.
   */
  dispose(): void {
    if (!this.store) return;
    const first = !this.handleDisposed;
    this.handleDisposed = true;
    if (this.pins > 0) this.disposeRequested = true;
    else {
      this.store.release();
      this.store = null;
    }
    if (first) disposeHook?.(this);
  }

  /** True once dispose() was called on this handle (its storage may still be pinned by the tape). */
  get handleReleased(): boolean {
    return this.handleDisposed;
  }

  /** Keeps the storage alive past dispose() until unpin(); used by the tape for saved tensors. */
  pin(): void {
    if (!this.store) throw new Error(`cannot save ${this.describe()} for backward: it was disposed`);
    this.pins++;
  }

  unpin(): void {
    if (this.pins <= 0) throw new Error(`unpin of ${this.describe()} without pin`);
    if (--this.pins === 0 && this.disposeRequested) {
      this.disposeRequested = false;
      this.dispose();
    }
  }

  async read(): Promise<Float32Array | Int32Array> {
    const buf = await this.gpu.read(this.buffer, 0, this.bytes);
    return this.dtype === 'i32' ? new Int32Array(buf) : new Float32Array(buf);
  }

  async readFloat(): Promise<Float32Array> {
    if (this.dtype !== 'f32') throw new Error(`readFloat: ${this.describe()} is ${this.dtype}`);
    return new Float32Array(await this.gpu.read(this.buffer, 0, this.bytes));
  }

  async toHost(): Promise<HostTensor> {
    return { shape: [...this.shape], dtype: this.dtype, data: await this.read() };
  }
}

// ------------------------------------------------------------ argument checks (public entry points)

/**
 * The values of a tensor made from host data, checked for `fn`: a Float32Array, an Int32Array or
 * an array of numbers (stored as f32) that fills `shape` exactly.
 */
export function tensorData(fn: string, data: unknown, shape: unknown): Float32Array | Int32Array {
  checkShapeArg(fn, 'shape', shape);
  let arr: Float32Array | Int32Array;
  if (data instanceof Float32Array || data instanceof Int32Array) arr = data;
  else if (Array.isArray(data)) {
    const bad = data.findIndex((v) => typeof v !== 'number');
    if (bad >= 0)
      throw new ArgumentError(
        `${fn}: data must hold numbers only, got ${describeValue(data[bad])} at index ${bad}`,
      );
    arr = Float32Array.from(data as number[]);
  } else
    throw new ArgumentError(
      `${fn}: data must be a Float32Array, an Int32Array or an array of numbers, got ${describeValue(data)}` +
        (ArrayBuffer.isView(data) ? ' (convert with Float32Array.from(...) or Int32Array.from(...))' : ''),
    );
  if (arr.length !== numel(shape))
    throw new ShapeError(
      `${fn}: ${arr.length} values do not fill shape ${fmt(shape)} (${numel(shape)} values)`,
    );
  return arr;
}

/** An app-owned GPUBuffer usable as a tensor of `shape` / `dtype`, checked for `fn`. */
export function checkBufferArg(fn: string, buffer: unknown, shape: unknown, dtype: unknown): void {
  checkShapeArg(fn, 'shape', shape);
  checkDType(fn, 'dtype', dtype);
  const b = buffer as Partial<GPUBuffer> | null;
  if (
    b === null ||
    typeof b !== 'object' ||
    typeof b.size !== 'number' ||
    typeof b.usage !== 'number' ||
    typeof b.mapState !== 'string'
  )
    badArg(fn, 'buffer', 'a GPUBuffer', buffer);
  if (!(b.usage & GPUBufferUsage.STORAGE))
    throw new ArgumentError(
      `${fn}: buffer must have STORAGE usage, got usage ${usageNames(b.usage)} (create it with ` +
        'GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST)',
    );
  if (b.mapState !== 'unmapped')
    throw new ArgumentError(`${fn}: buffer must be unmapped, got mapState '${b.mapState}' (unmap it first)`);
  const need = numel(shape) * 4;
  if (b.size < need)
    throw new ShapeError(
      `${fn}: buffer of ${b.size} bytes is too small for ${dtype}${fmt(shape)} (${need} bytes)`,
    );
}
