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

interface Batch {
  querySet: GPUQuerySet;
  names: string[];
  resolve: GPUBuffer | null;
  read: GPUBuffer | null;
}

export class KernelProfiler {
  private batch: Batch | null = null;
  private readonly totals = new Map<string, { calls: number; ns: number }>();
  private readonly pending: Promise<void>[] = [];
  private failure: Error | null = null;

  constructor(
    private readonly device: GPUDevice,
    /** Most dispatches in one submit (the Gpu's maxDispatchesPerSubmit). */
    private readonly maxDispatches: number,
  ) {}

  /** Pass descriptor whose start and end timestamps belong to a dispatch of `kernel`. */
  passDescriptor(kernel: string): GPUComputePassDescriptor {
    if (!this.batch)
      this.batch = {
        querySet: this.device.createQuerySet({ type: 'timestamp', count: 2 * this.maxDispatches }),
        names: [],
        resolve: null,
        read: null,
      };
    const i = this.batch.names.length;
    this.batch.names.push(kernel);
    return {
      label: kernel,
      timestampWrites: {
        querySet: this.batch.querySet,
        beginningOfPassWriteIndex: 2 * i,
        endOfPassWriteIndex: 2 * i + 1,
      },
    };
  }

  /** Records the resolve and copy of this batch's timestamps; call before the encoder finishes. */
  beforeSubmit(encoder: GPUCommandEncoder): void {
    const b = this.batch;
    if (!b || b.names.length === 0) return;
    const bytes = b.names.length * 16;
    b.resolve = this.device.createBuffer({
      size: bytes,
      usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC,
    });
    b.read = this.device.createBuffer({
      size: bytes,
      usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
    });
    encoder.resolveQuerySet(b.querySet, 0, 2 * b.names.length, b.resolve, 0);
    encoder.copyBufferToBuffer(b.resolve, 0, b.read, 0, bytes);
  }

  /** Starts the readback of the batch just submitted. */
  afterSubmit(): void {
    const b = this.batch;
    this.batch = null;
    if (!b) return;
    if (!b.read || !b.resolve) {
      b.querySet.destroy();
      return;
    }
    const read = b.read;
    this.pending.push(
      read.mapAsync(GPUMapMode.READ).then(
        () => {
          const t = new BigUint64Array(read.getMappedRange().slice(0));
          read.unmap();
          b.names.forEach((name, i) => {
            const start = t[2 * i]!;
            const end = t[2 * i + 1]!;
            const ns = end > start ? Number(end - start) : 0;
            const e = this.totals.get(name) ?? { calls: 0, ns: 0 };
            e.calls++;
            e.ns += ns;
            this.totals.set(name, e);
          });
          this.release(b);
        },
        (err: unknown) => {
          this.failure ??= new Error(`reading kernel timestamps failed: ${(err as Error).message}`);
          this.release(b);
        },
      ),
    );
  }

  private release(b: Batch): void {
    b.querySet.destroy();
    b.resolve?.destroy();
    b.read?.destroy();
  }

  /** Waits for every readback; per-kernel totals, longest first. */
  async results(): Promise<KernelTime[]> {
    await Promise.all(this.pending.splice(0));
    if (this.failure) throw this.failure;
    return [...this.totals]
      .map(([kernel, e]) => ({ kernel, calls: e.calls, ms: e.ns / 1e6 }))
      .sort((a, b) => b.ms - a.ms);
  }

  /** Frees a batch that was recorded but never submitted (device lost or Gpu destroyed). */
  dispose(): void {
    if (this.batch) this.release(this.batch);
    this.batch = null;
  }
}
