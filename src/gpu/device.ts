/**
 * Gpu: the one object that talks to a GPUDevice. Everything above it (kernels, ops, models)
 * records work through `dispatch`, moves data with `upload`/`read`/`copy`, and never sees the
 * device itself.
 *
 * Work is recorded into one command encoder and compute pass and submitted in batches: on
 * readback, on `flush()`, or every `maxDispatchesPerSubmit` dispatches. Validation and
 * out-of-memory errors arrive asynchronously in WebGPU; they are collected with error scopes and
 * thrown at the next sync point (`read`, `sync`) naming the kernels in the failing batch. A lost
 * device makes every later call throw DeviceLostError with the reason.
 *
 * Fault injection (tests only): `injectFault` makes a later dispatch, submit or readback behave as
 * if the device had been lost, or a later buffer allocation fail as the driver's out-of-memory
 * would; unused, it costs one null check per operation.
 */
import { BufferPool, type PoolStats, type PoolUsage } from './pool.js';
import { DeviceLostError, GpuError, GpuOutOfMemoryError, GpuValidationError } from './errors.js';
import type { KernelSpec } from './kernel.js';
import { PipelineCache } from './pipelines.js';
import { KernelProfiler, type KernelTime } from './profiler.js';
import { packUniforms, uniformByteSize } from './uniforms.js';

export interface AdapterProfile {
  /** 'cpu' for software adapters (lavapipe, SwiftShader, WARP), else 'gpu'. Tilings key on this. */
  kind: 'cpu' | 'gpu';
  description: string;
  /** The `subgroups` feature is enabled on the device. */
  subgroups: boolean;
  /** Smallest and largest subgroup size the adapter may use (0 when unknown). Kernels designed
   * around 8-lane subgroups (broadcast within 8 lanes) need subgroupMinSize >= 8. */
  subgroupMinSize: number;
  subgroupMaxSize: number;
  maxInvocationsPerWorkgroup: number;
  maxWorkgroupSizeX: number;
  maxWorkgroupStorageBytes: number;
  maxStorageBindingBytes: number;
  maxBufferBytes: number;
  minStorageOffsetAlignment: number;
  maxWorkgroupsPerDimension: number;
}

export interface GpuOptions {
  device: GPUDevice;
  /** Adapter info, for choosing tilings; taken from device.adapterInfo when absent. */
  adapterInfo?: GPUAdapterInfo | undefined;
  /** True when the engine created the device and may destroy it. A caller's device is never destroyed. */
  owned?: boolean;
  /** Overrides of the detected profile, e.g. `{ subgroups: false }` to run the plain kernel variants. */
  profile?: Partial<AdapterProfile>;
  maxDispatchesPerSubmit?: number;
  /** Log every dispatch to console.debug (debug knob; also SAMLST_LOG_DISPATCH=1 in Node). */
  logDispatches?: boolean;
}

export interface Binding {
  buffer: GPUBuffer;
  offset?: number;
  size?: number;
}

/**
 * A fault for `Gpu.injectFault` (test seam). The `after + 1`-th operation of kind `on` from the
 * call on fails; the fault then disarms.
 *  - 'device-lost' on 'dispatch' | 'submit' | 'read': the Gpu turns lost as when the device's
 *    `lost` promise resolves (reason 'injected'): the recorded batch is dropped, the failing
 *    dispatch / readback throws DeviceLostError (a submit fails silently, as a real one does, and the
 *    next call throws), and so does every later call.
 *  - 'out-of-memory' on 'alloc': the pool's next new buffer is reported refused by the device, as an
 *    out-of-memory error scope reports it: GpuOutOfMemoryError ('device memory') at the next sync.
 */
export type InjectedFault =
  | { kind: 'device-lost'; on: 'dispatch' | 'submit' | 'read'; after?: number }
  | { kind: 'out-of-memory'; on: 'alloc'; after?: number };

export interface GpuStats {
  pool: PoolStats;
  pipelinesCreated: number;
  pipelines: number;
  dispatches: number;
  submits: number;
  /** Uniform buffers held: the content-keyed cache plus the reused buffers of volatileUniforms kernels. */
  uniformBuffers: number;
}

const SOFTWARE = /llvmpipe|lavapipe|swiftshader|software|warp|microsoft basic render/i;

export function detectProfile(device: GPUDevice, info: GPUAdapterInfo | undefined): AdapterProfile {
  const l = device.limits;
  const description = info
    ? [info.vendor, info.architecture, info.description].filter(Boolean).join(' ')
    : '';
  const sg = info as (GPUAdapterInfo & { subgroupMinSize?: number; subgroupMaxSize?: number }) | undefined;
  return {
    kind: SOFTWARE.test(description) ? 'cpu' : 'gpu',
    description,
    subgroups: device.features.has('subgroups'),
    subgroupMinSize: sg?.subgroupMinSize ?? 0,
    subgroupMaxSize: sg?.subgroupMaxSize ?? 0,
    maxInvocationsPerWorkgroup: l.maxComputeInvocationsPerWorkgroup,
    maxWorkgroupSizeX: l.maxComputeWorkgroupSizeX,
    maxWorkgroupStorageBytes: l.maxComputeWorkgroupStorageSize,
    maxStorageBindingBytes: l.maxStorageBufferBindingSize,
    maxBufferBytes: l.maxBufferSize,
    minStorageOffsetAlignment: l.minStorageBufferOffsetAlignment,
    maxWorkgroupsPerDimension: l.maxComputeWorkgroupsPerDimension,
  };
}

/** A profiling key: the kernel's name, with its override constants when it has any. */
function profileKey(name: string, overrides: Readonly<Record<string, number>>): string {
  const o = Object.entries(overrides);
  return o.length ? `${name}{${o.map(([k, v]) => `${k}=${v}`).join(',')}}` : name;
}

export type { KernelTime };

export class Gpu {
  readonly device: GPUDevice;
  readonly profile: AdapterProfile;
  readonly pool: BufferPool;
  readonly pipelines: PipelineCache;
  readonly owned: boolean;

  private encoder: GPUCommandEncoder | null = null;
  private pass: GPUComputePassEncoder | null = null;
  private batchKernels = new Set<string>();
  private batchBuffers = new Set<GPUBuffer>();
  private batchDispatches = 0;
  private readonly maxDispatchesPerSubmit: number;
  private readonly logDispatches: boolean;
  private readonly uniformCache = new Map<string, GPUBuffer>();
  private readonly uniformCap = 4096;
  private destroyAfterSubmit: GPUBuffer[] = [];
  /** Uniform buffers of volatileUniforms kernels: free by size, and those the open batch uses. */
  private readonly volatileFree = new Map<number, GPUBuffer[]>();
  private volatileInBatch: GPUBuffer[] = [];
  private volatileCount = 0;
  private readonly pendingChecks: Promise<void>[] = [];
  private readonly asyncErrors: GpuError[] = [];
  private lostInfo: { reason: string; message: string } | null = null;
  private destroyed = false;
  private counters = { dispatches: 0, submits: 0 };
  private fault: { kind: InjectedFault['kind']; on: InjectedFault['on']; left: number } | null = null;
  private profiler: KernelProfiler | null = null;

  constructor(opts: GpuOptions) {
    this.device = opts.device;
    this.owned = opts.owned ?? false;
    const info =
      opts.adapterInfo ?? (opts.device as GPUDevice & { adapterInfo?: GPUAdapterInfo }).adapterInfo;
    this.profile = { ...detectProfile(opts.device, info), ...opts.profile };
    if (opts.profile?.subgroups && !opts.device.features.has('subgroups'))
      throw new GpuError(
        'profile asks for subgroups but the device was created without the subgroups feature',
      );
    this.maxDispatchesPerSubmit = opts.maxDispatchesPerSubmit ?? 256;
    this.logDispatches =
      opts.logDispatches ??
      (globalThis as { process?: { env?: Record<string, string | undefined> } }).process?.env
        ?.SAMLST_LOG_DISPATCH === '1';
    this.pipelines = new PipelineCache(this.device);
    this.pool = new BufferPool(
      { createBuffer: (d, what) => this.createBufferChecked(d, what) },
      this.profile.maxBufferBytes,
    );
    void this.device.lost.then((info) => {
      this.lostInfo = { reason: String(info.reason), message: info.message };
    });
    if (typeof this.device.addEventListener === 'function')
      this.device.addEventListener('uncapturederror', this.onUncaptured);
  }

  private readonly onUncaptured = (ev: Event): void => {
    const e = (ev as GPUUncapturedErrorEvent).error;
    this.asyncErrors.push(new GpuValidationError(`uncaptured WebGPU error: ${e.message}`));
  };

  /** Records the outcome of an error scope; a scope that rejects (device or instance gone) is reported too. */
  private watchScope(p: Promise<GPUError | null>, make: (e: GPUError) => GpuError): void {
    this.pendingChecks.push(
      p.then(
        (e) => {
          if (e) this.asyncErrors.push(make(e));
        },
        (err: unknown) => {
          if (!this.destroyed && !this.lostInfo)
            this.asyncErrors.push(new GpuError(`WebGPU error scope failed: ${(err as Error).message}`));
        },
      ),
    );
  }

  // ---------------------------------------------------------------- memory

  /** A pooled storage buffer of at least `bytes`. `what` names the tensor in out-of-memory errors. */
  alloc(bytes: number, what?: string, usage: PoolUsage = 'storage'): GPUBuffer {
    this.assertAlive();
    return this.pool.acquire(bytes, usage, what);
  }

  free(buffer: GPUBuffer): void {
    if (this.destroyed) return;
    this.pool.release(buffer);
  }

  /** Writes host data into a buffer, after any recorded work that still uses that buffer. */
  upload(buffer: GPUBuffer, offset: number, data: ArrayBufferView): void {
    this.assertAlive();
    if (this.batchBuffers.has(buffer)) this.flush();
    let view = data;
    // queue.writeBuffer rejects views over a SharedArrayBuffer: copy those.
    if (typeof SharedArrayBuffer !== 'undefined' && data.buffer instanceof SharedArrayBuffer) {
      view = new Uint8Array(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
    }
    if (view.byteLength % 4 !== 0) {
      const padded = new Uint8Array(Math.ceil(view.byteLength / 4) * 4);
      padded.set(new Uint8Array(view.buffer, view.byteOffset, view.byteLength));
      view = padded;
    }
    this.device.queue.writeBuffer(buffer, offset, view.buffer, view.byteOffset, view.byteLength);
  }

  /** Records a buffer-to-buffer copy in order with the dispatches. */
  copy(src: GPUBuffer, srcOffset: number, dst: GPUBuffer, dstOffset: number, bytes: number): void {
    this.assertAlive();
    const enc = this.commandEncoder();
    enc.copyBufferToBuffer(src, srcOffset, dst, dstOffset, bytes);
    this.batchBuffers.add(src).add(dst);
  }

  /** Records a zero fill of a buffer range, in order with the dispatches. */
  clear(buffer: GPUBuffer, offset = 0, bytes?: number): void {
    this.assertAlive();
    this.commandEncoder().clearBuffer(buffer, offset, bytes);
    this.batchBuffers.add(buffer);
  }

  /** Reads `bytes` from `buffer` at `offset` after all recorded work. */
  async read(buffer: GPUBuffer, offset: number, bytes: number): Promise<ArrayBuffer> {
    this.assertAlive();
    if (this.fault !== null && this.faultDue('read')) this.injectLoss('readback');
    const size = Math.ceil(bytes / 4) * 4;
    if (size === 0) return new ArrayBuffer(0);
    const staging = this.pool.acquire(size, 'readback', 'a readback');
    this.copy(buffer, offset, staging, 0, size);
    this.flush();
    try {
      await staging.mapAsync(GPUMapMode.READ, 0, size);
    } catch (e) {
      this.assertAlive();
      await this.checkErrors();
      throw new GpuError(`readback failed: ${(e as Error).message}`);
    }
    const out = staging.getMappedRange(0, size).slice(0, bytes);
    staging.unmap();
    this.pool.release(staging);
    await this.checkErrors();
    return out;
  }

  // ---------------------------------------------------------------- dispatch

  /**
   * Records one dispatch of `spec`. `bindings` are the storage buffers in binding order; the
   * uniform buffer is derived from `uniforms` (content-cached); `workgroups` is the grid.
   */
  dispatch(
    spec: KernelSpec,
    bindings: readonly Binding[],
    uniforms: Readonly<Record<string, number>>,
    workgroups: readonly [number, number?, number?],
    overrides: Readonly<Record<string, number>> = {},
  ): void {
    this.assertAlive();
    if (this.fault !== null && this.faultDue('dispatch')) this.injectLoss(`dispatch of '${spec.name}'`);
    if (bindings.length !== spec.storage.length)
      throw new GpuError(
        `kernel '${spec.name}': expected ${spec.storage.length} storage bindings (${spec.storage.map((s) => s[0]).join(', ')}), got ${bindings.length}`,
      );
    const [x, y = 1, z = 1] = workgroups;
    const maxWg = this.profile.maxWorkgroupsPerDimension;
    if (x > maxWg || y > maxWg || z > maxWg)
      throw new GpuError(
        `kernel '${spec.name}': grid [${x}, ${y}, ${z}] exceeds ${maxWg} workgroups per dimension`,
      );
    if (x === 0 || y === 0 || z === 0) return;
    const { pipeline, layout } = this.pipelines.get(spec, overrides);
    const entries: GPUBindGroupEntry[] = bindings.map((b, i) => {
      const size = b.size ?? b.buffer.size - (b.offset ?? 0);
      if (size > this.profile.maxStorageBindingBytes) {
        const name = spec.storage[i]?.[0];
        throw new GpuOutOfMemoryError(
          size,
          this.profile.maxStorageBindingBytes,
          `kernel '${spec.name}': binding '${name}'`,
          {
            limitName: 'maxStorageBufferBindingSize',
            detail: `binding '${name}' is ${size} bytes, over ${this.profile.maxStorageBindingBytes}: the kernel's wrapper did not split it`,
          },
        );
      }
      this.batchBuffers.add(b.buffer);
      return { binding: i, resource: { buffer: b.buffer, offset: b.offset ?? 0, size } };
    });
    if (spec.uniformStruct) {
      entries.push({
        binding: spec.storage.length,
        resource: { buffer: this.uniformBuffer(spec, uniforms) },
      });
    } else if (Object.keys(uniforms).length) {
      throw new GpuError(`kernel '${spec.name}' takes no uniforms`);
    }
    const bindGroup = this.device.createBindGroup({ layout, entries, label: spec.name });
    const pass = this.computePass(this.profiler ? profileKey(spec.name, overrides) : null);
    pass.setPipeline(pipeline);
    pass.setBindGroup(0, bindGroup);
    pass.dispatchWorkgroups(x, y, z);
    if (this.logDispatches) console.debug(`[dispatch] ${spec.name} grid=[${x},${y},${z}]`, uniforms);
    this.batchKernels.add(spec.name);
    this.counters.dispatches++;
    if (++this.batchDispatches >= this.maxDispatchesPerSubmit) this.flush();
  }

  private uniformBuffer(spec: KernelSpec, values: Readonly<Record<string, number>>): GPUBuffer {
    const data = packUniforms(spec.name, spec.uniforms, values);
    if (spec.volatileUniforms) return this.volatileUniformBuffer(spec, data);
    const key = `${uniformByteSize(spec.uniforms)}:${data.join(',')}`;
    let buf = this.uniformCache.get(key);
    if (buf) {
      this.uniformCache.delete(key);
      this.uniformCache.set(key, buf);
      return buf;
    }
    buf = this.device.createBuffer({
      size: data.byteLength,
      usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
      mappedAtCreation: true,
      label: `uniform:${spec.name}`,
    });
    new Uint32Array(buf.getMappedRange()).set(data);
    buf.unmap();
    this.uniformCache.set(key, buf);
    if (this.uniformCache.size > this.uniformCap) {
      const oldest = this.uniformCache.keys().next().value as string;
      this.destroyAfterSubmit.push(this.uniformCache.get(oldest)!);
      this.uniformCache.delete(oldest);
    }
    return buf;
  }

  /**
   * A uniform buffer for values that change every call. A buffer is reused only after the batch
   * that used it is submitted: queue.writeBuffer is ordered after that submit, while the open
   * batch's commands run only when it is submitted, so a write must not touch a buffer it uses.
   */
  private volatileUniformBuffer(spec: KernelSpec, data: Uint32Array): GPUBuffer {
    let buf = this.volatileFree.get(data.byteLength)?.pop();
    if (!buf) {
      buf = this.device.createBuffer({
        size: data.byteLength,
        usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
        label: `uniform:volatile:${spec.name}`,
      });
      this.volatileCount++;
    }
    this.device.queue.writeBuffer(buf, 0, data.buffer, data.byteOffset, data.byteLength);
    this.volatileInBatch.push(buf);
    return buf;
  }

  private commandEncoder(): GPUCommandEncoder {
    if (this.pass) {
      this.pass.end();
      this.pass = null;
    }
    if (!this.encoder) this.encoder = this.device.createCommandEncoder({ label: 'samlst' });
    return this.encoder;
  }

  /** The open compute pass; while profiling, a new timestamped pass for each dispatch (`kernel`). */
  private computePass(kernel: string | null): GPUComputePassEncoder {
    if (kernel !== null && this.profiler) {
      const enc = this.commandEncoder(); // ends the open pass
      this.pass = enc.beginComputePass(this.profiler.passDescriptor(kernel));
      return this.pass;
    }
    if (!this.pass) this.pass = this.commandEncoder().beginComputePass();
    return this.pass;
  }

  /**
   * Starts timing every dispatch on the device (timestamp queries; needs the `timestamp-query`
   * feature, which the engine requests when the adapter offers it). Work recorded before is
   * submitted first. See stopProfiling.
   */
  startProfiling(): void {
    this.assertAlive();
    if (!this.device.features.has('timestamp-query'))
      throw new GpuError(
        'kernel profiling needs the timestamp-query feature, which this device was created without',
      );
    if (this.profiler) throw new GpuError('kernel profiling is already on');
    this.flush();
    this.profiler = new KernelProfiler(this.device, this.maxDispatchesPerSubmit);
  }

  /** Submits pending work, stops profiling and returns device time per kernel, longest first. */
  async stopProfiling(): Promise<KernelTime[]> {
    const p = this.profiler;
    if (!p) throw new GpuError('kernel profiling is not on (call startProfiling first)');
    try {
      await this.sync();
    } finally {
      this.profiler = null;
    }
    try {
      return await p.results();
    } finally {
      p.dispose();
    }
  }

  /** Submits everything recorded so far. */
  flush(): void {
    if (!this.encoder || this.destroyed || this.lostInfo) return;
    if (this.fault !== null && this.faultDue('submit')) {
      this.markInjectedLoss('submit');
      return;
    }
    if (this.pass) {
      this.pass.end();
      this.pass = null;
    }
    const kernels = [...this.batchKernels].join(', ') || 'copies only';
    const dev = this.device;
    dev.pushErrorScope('out-of-memory');
    dev.pushErrorScope('validation');
    this.profiler?.beforeSubmit(this.encoder);
    dev.queue.submit([this.encoder.finish()]);
    this.profiler?.afterSubmit();
    const validation = dev.popErrorScope();
    const oom = dev.popErrorScope();
    this.watchScope(
      validation,
      (e) => new GpuValidationError(`WebGPU validation error in [${kernels}]: ${e.message}`),
    );
    this.watchScope(
      oom,
      (e) =>
        new GpuOutOfMemoryError(0, this.profile.maxBufferBytes, `the work of [${kernels}]`, {
          limitName: 'device memory',
          heldBytes: this.pool.stats().liveBytes + this.pool.stats().freeBytes,
          detail: e.message,
        }),
    );
    this.encoder = null;
    this.batchKernels.clear();
    this.batchBuffers.clear();
    this.batchDispatches = 0;
    this.counters.submits++;
    for (const b of this.destroyAfterSubmit) b.destroy();
    this.destroyAfterSubmit = [];
    for (const b of this.volatileInBatch) {
      let list = this.volatileFree.get(b.size);
      if (!list) this.volatileFree.set(b.size, (list = []));
      list.push(b);
    }
    this.volatileInBatch = [];
  }

  /** Submits, waits for the device to finish, and throws any error it reported. */
  async sync(): Promise<void> {
    this.assertAlive();
    this.flush();
    await this.device.queue.onSubmittedWorkDone();
    await this.checkErrors();
  }

  /**
   * Throws the first asynchronous error (compile, validation, out-of-memory, lost) seen so far.
   * A compile error wins over the validation errors it causes; all pending errors are cleared.
   */
  async checkErrors(): Promise<void> {
    await Promise.all(this.pendingChecks.splice(0));
    let compileError: unknown = null;
    try {
      await this.pipelines.check();
    } catch (e) {
      compileError = e;
    }
    this.assertAlive();
    const first = this.asyncErrors[0];
    this.asyncErrors.length = 0;
    if (compileError) throw compileError;
    if (first) throw first;
  }

  /** Releases the pool's free buffers (after submitting pending work). */
  trim(): void {
    this.flush();
    this.pool.trim();
  }

  stats(): GpuStats {
    return {
      pool: this.pool.stats(),
      pipelinesCreated: this.pipelines.created,
      pipelines: this.pipelines.size,
      dispatches: this.counters.dispatches,
      submits: this.counters.submits,
      uniformBuffers: this.uniformCache.size + this.volatileCount,
    };
  }

  get lost(): boolean {
    return this.lostInfo !== null;
  }

  /** Frees every GPU object this layer made; destroys the device only if it owns it. */
  destroy(): void {
    if (this.destroyed) return;
    if (!this.lostInfo) this.flush();
    this.destroyed = true;
    if (typeof this.device.removeEventListener === 'function')
      this.device.removeEventListener('uncapturederror', this.onUncaptured);
    this.pool.destroyAll();
    for (const b of this.uniformCache.values()) b.destroy();
    this.uniformCache.clear();
    for (const b of [...this.volatileInBatch, ...[...this.volatileFree.values()].flat()]) b.destroy();
    this.volatileInBatch = [];
    this.volatileFree.clear();
    this.profiler?.dispose();
    this.profiler = null;
    if (this.owned) this.device.destroy();
  }

  assertAlive(): void {
    if (this.lostInfo) throw new DeviceLostError(this.lostInfo.reason, this.lostInfo.message);
    if (this.destroyed) throw new GpuError('this engine has been disposed');
  }

  private createBufferChecked(desc: GPUBufferDescriptor, what: string): GPUBuffer {
    const dev = this.device;
    const st = this.pool.stats();
    const held = st.liveBytes + st.freeBytes;
    const refused = (detail: string) =>
      new GpuOutOfMemoryError(desc.size, this.profile.maxBufferBytes, what, {
        limitName: 'device memory',
        heldBytes: held,
        detail,
      });
    dev.pushErrorScope('out-of-memory');
    const buf = dev.createBuffer(desc);
    this.watchScope(dev.popErrorScope(), (e) => refused(e.message));
    if (this.fault !== null && this.faultDue('alloc'))
      this.asyncErrors.push(refused('injected by Gpu.injectFault'));
    return buf;
  }

  // ---------------------------------------------------------------- fault injection (tests)

  /**
   * Test seam: arms one fault (see InjectedFault); a later call replaces an armed one, `null`
   * disarms. For tests of what the layers above do on device loss and out-of-memory.
   */
  injectFault(fault: InjectedFault | null): void {
    if (fault) {
      const on: string = fault.on;
      const valid =
        fault.kind === 'out-of-memory'
          ? on === 'alloc'
          : on === 'dispatch' || on === 'submit' || on === 'read';
      if (!valid)
        throw new GpuError(
          `injectFault: ${String(fault.kind)} cannot be injected on '${on}' ` +
            '(device-lost: dispatch, submit or read; out-of-memory: alloc)',
        );
    }
    this.fault = fault ? { kind: fault.kind, on: fault.on, left: fault.after ?? 0 } : null;
  }

  private faultDue(on: InjectedFault['on']): boolean {
    const f = this.fault!;
    if (f.on !== on) return false;
    if (f.left-- > 0) return false;
    this.fault = null;
    return true;
  }

  /** The device turns lost, as when its `lost` promise resolves; the recorded batch is dropped. */
  private markInjectedLoss(at: string): void {
    this.lostInfo = {
      reason: 'injected',
      message: `device loss injected by Gpu.injectFault at a ${at} (test seam)`,
    };
    this.pass = null;
    this.encoder = null;
    this.batchKernels.clear();
    this.batchBuffers.clear();
    this.batchDispatches = 0;
  }

  private injectLoss(at: string): never {
    this.markInjectedLoss(at);
    throw new DeviceLostError(this.lostInfo!.reason, this.lostInfo!.message);
  }
}
