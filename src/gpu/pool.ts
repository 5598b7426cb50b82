/**
 * Size-class buffer pool.
 *
 * Buffers are bucketed by (size class, usage). A released buffer goes back to its bucket at once:
 * later GPU work is ordered after earlier work on the one queue, so a kernel may reuse it in the
 * same command stream. Host-side writes and destroys are what could race with recorded work; the
 * device layer flushes pending commands that use a buffer before writing to it, and `trim()`
 * destroys only after the owner has submitted everything that used the buffers (it is called via
 * Gpu.trim, which flushes first).
 *
 * Size classes: 256 B minimum, powers of two up to 1 MiB, then 8 classes per octave (at most
 * 12.5% rounding waste). Counters are exposed through `stats()` for tests and logs.
 */
import { GpuOutOfMemoryError } from './errors.js';

export type PoolUsage = 'storage' | 'readback';

export interface PoolStats {
  /** Buffers handed out and not yet released. */
  liveBuffers: number;
  /** Bytes (size-class bytes) of live buffers. */
  liveBytes: number;
  /** Buffers waiting in the free lists. */
  freeBuffers: number;
  freeBytes: number;
  /** High-water mark of liveBytes since creation or resetPeak(). */
  peakLiveBytes: number;
  /** createBuffer calls made by the pool, and acquisitions served from the free lists. */
  created: number;
  reused: number;
}

const MiB = 1 << 20;

export function sizeClass(bytes: number): number {
  if (bytes <= 256) return 256;
  if (bytes <= MiB) return 2 ** Math.ceil(Math.log2(bytes));
  const octave = 2 ** Math.floor(Math.log2(bytes));
  const step = octave / 8;
  return Math.ceil(bytes / step) * step;
}

export interface BufferAllocator {
  /** `what` names the request (e.g. `tensor [3, 64, 32, 32]`) for out-of-memory messages. */
  createBuffer(desc: GPUBufferDescriptor, what: string): GPUBuffer;
}

export class BufferPool {
  private readonly free = new Map<string, GPUBuffer[]>();
  private readonly live = new Map<GPUBuffer, number>();
  private counters = { created: 0, reused: 0, peakLiveBytes: 0, liveBytes: 0, freeBytes: 0, freeBuffers: 0 };

  constructor(
    private readonly alloc: BufferAllocator,
    private readonly maxBufferSize: number,
  ) {}

  acquire(bytes: number, usage: PoolUsage = 'storage', what = 'a tensor'): GPUBuffer {
    if (!(bytes >= 0) || !Number.isFinite(bytes))
      throw new Error(`pool: invalid byte size ${bytes} for ${what}`);
    if (bytes > this.maxBufferSize) throw new GpuOutOfMemoryError(bytes, this.maxBufferSize, what);
    const size = sizeClass(Math.max(bytes, 4));
    const alloc = size <= this.maxBufferSize ? size : Math.ceil(bytes / 4) * 4;
    const key = `${usage}:${alloc}`;
    const list = this.free.get(key);
    let buf = list?.pop();
    if (buf) {
      this.counters.reused++;
      this.counters.freeBytes -= alloc;
      this.counters.freeBuffers--;
    } else {
      buf = this.alloc.createBuffer(
        {
          size: alloc,
          usage:
            usage === 'storage'
              ? GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST
              : GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
          label: `pool:${key}`,
        },
        what,
      );
      this.counters.created++;
    }
    this.live.set(buf, alloc);
    this.counters.liveBytes += alloc;
    this.counters.peakLiveBytes = Math.max(this.counters.peakLiveBytes, this.counters.liveBytes);
    return buf;
  }

  release(buf: GPUBuffer): void {
    const size = this.live.get(buf);
    if (size === undefined) throw new Error(`pool: release of a buffer the pool does not own (${buf.label})`);
    this.live.delete(buf);
    this.counters.liveBytes -= size;
    const usage = buf.usage & GPUBufferUsage.MAP_READ ? 'readback' : 'storage';
    const key = `${usage}:${size}`;
    let list = this.free.get(key);
    if (!list) this.free.set(key, (list = []));
    list.push(buf);
    this.counters.freeBytes += size;
    this.counters.freeBuffers++;
  }

  /** Destroys every buffer in the free lists. Callers must have submitted all work using them. */
  trim(): void {
    for (const list of this.free.values()) for (const b of list) b.destroy();
    this.free.clear();
    this.counters.freeBytes = 0;
    this.counters.freeBuffers = 0;
  }

  /** Destroys everything, live or free (device teardown). */
  destroyAll(): void {
    this.trim();
    for (const b of this.live.keys()) b.destroy();
    this.live.clear();
    this.counters.liveBytes = 0;
  }

  resetPeak(): void {
    this.counters.peakLiveBytes = this.counters.liveBytes;
  }

  stats(): PoolStats {
    const c = this.counters;
    return {
      liveBuffers: this.live.size,
      liveBytes: c.liveBytes,
      freeBuffers: c.freeBuffers,
      freeBytes: c.freeBytes,
      peakLiveBytes: c.peakLiveBytes,
      created: c.created,
      reused: c.reused,
    };
  }
}
