/**
 * Per-kernel device time from timestamp queries (the `timestamp-query` feature). While a Gpu
 * profiles, every dispatch runs in its own compute pass whose start and end are timestamped; at
 * each submit the batch's queries are resolved and read back asynchronously, and the durations
 * are summed per kernel (name plus its override constants). Profiling adds a pass per dispatch and
 * a readback per submit: use it to find where time goes, not while timing.
 */

/** Device time spent in one kernel (name and override constants) while profiling. */
export interface KernelTime {
  kernel: string;
  calls: number;
  /** Sum of the kernel's pass durations, in milliseconds. */
  ms: number;
}

/** A resolve buffer and its mappable copy, sized for one full batch; reused once read. */
interface Readback {
  resolve: GPUBuffer;
  read: GPUBuffer;
}

export class KernelProfiler {
  /** One query set for the profiler's life: a batch's resolve runs before the next batch writes. */
  private readonly querySet: GPUQuerySet;
  private names: string[] = [];
  private pendingBatch: { names: string[]; rb: Readback } | null = null;
  private readonly free: Readback[] = [];
  private readonly all: Readback[] = [];
  private readonly totals = new Map<string, { calls: number; ns: number }>();
  private readonly pending: Promise<void>[] = [];
  private failure: Error | null = null;

  constructor(
    private readonly device: GPUDevice,
    /** Most dispatches in one submit (the Gpu's maxDispatchesPerSubmit). */
    private readonly maxDispatches: number,
  ) {
    this.querySet = device.createQuerySet({ type: 'timestamp', count: 2 * maxDispatches });
  }

  /** Pass descriptor whose start and end timestamps belong to a dispatch of `kernel`. */
  passDescriptor(kernel: string): GPUComputePassDescriptor {
    const i = this.names.length;
    this.names.push(kernel);
    return {
      label: kernel,
      timestampWrites: {
        querySet: this.querySet,
        beginningOfPassWriteIndex: 2 * i,
        endOfPassWriteIndex: 2 * i + 1,
      },
    };
  }

  private readback(): Readback {
    const reuse = this.free.pop();
    if (reuse) return reuse;
    const bytes = this.maxDispatches * 16;
    const rb = {
      resolve: this.device.createBuffer({
        size: bytes,
        usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC,
      }),
      read: this.device.createBuffer({
        size: bytes,
        usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
      }),
    };
    this.all.push(rb);
    return rb;
  }

  /** Records the resolve and copy of this batch's timestamps; call before the encoder finishes. */
  beforeSubmit(encoder: GPUCommandEncoder): void {
    if (this.names.length === 0) return;
    const rb = this.readback();
    encoder.resolveQuerySet(this.querySet, 0, 2 * this.names.length, rb.resolve, 0);
    encoder.copyBufferToBuffer(rb.resolve, 0, rb.read, 0, this.names.length * 16);
    this.pendingBatch = { names: this.names, rb };
    this.names = [];
  }

  /** Starts the readback of the batch just submitted. */
  afterSubmit(): void {
    const b = this.pendingBatch;
    this.pendingBatch = null;
    if (!b) return;
    const { names, rb } = b;
    this.pending.push(
      rb.read.mapAsync(GPUMapMode.READ, 0, names.length * 16).then(
        () => {
          const t = new BigUint64Array(rb.read.getMappedRange(0, names.length * 16).slice(0));
          rb.read.unmap();
          this.free.push(rb);
          names.forEach((name, i) => {
            const start = t[2 * i]!;
            const end = t[2 * i + 1]!;
            const e = this.totals.get(name) ?? { calls: 0, ns: 0 };
            e.calls++;
            e.ns += end > start ? Number(end - start) : 0;
            this.totals.set(name, e);
          });
        },
        (err: unknown) => {
          this.failure ??= new Error(`reading kernel timestamps failed: ${(err as Error).message}`);
        },
      ),
    );
  }

  /** Waits for every readback; per-kernel totals, longest first. */
  async results(): Promise<KernelTime[]> {
    await Promise.all(this.pending.splice(0));
    if (this.failure) throw this.failure;
    return [...this.totals]
      .map(([kernel, e]) => ({ kernel, calls: e.calls, ms: e.ns / 1e6 }))
      .sort((a, b) => b.ms - a.ms);
  }

  /** Frees the query set and readback buffers (after results(), or when the device is gone). */
  dispose(): void {
    this.querySet.destroy();
    for (const rb of this.all) {
      rb.resolve.destroy();
      rb.read.destroy();
    }
    this.all.length = 0;
    this.free.length = 0;
  }
}
