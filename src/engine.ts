/**
 * Engine: the embeddable entry point. It wraps one GPUDevice — the app's own (never destroyed or
 * reconfigured by the engine) or one it obtains from navigator.gpu — and creates tensors on it.
 */
import { Gpu, type AdapterProfile, type GpuStats } from './gpu/device.js';
import { GpuError } from './gpu/errors.js';
import { createBrowserDevice } from './platform/browser.js';
import { ArgumentError, badArg, checkDType, checkObject, checkShapeArg, describeValue } from './util/args.js';
import type { Shape } from './util/shape.js';
import { checkBufferArg, Tensor, tensorData } from './tensor/tensor.js';
import type { DType } from './tensor/host.js';

export interface EngineOptions {
  /** The app's GPUDevice. When absent, one is requested from navigator.gpu (and owned by the engine). */
  device?: GPUDevice;
  adapterInfo?: GPUAdapterInfo;
  /** Overrides of the detected adapter profile (e.g. `{ subgroups: false }`). */
  profile?: Partial<AdapterProfile>;
}

export class Engine {
  constructor(readonly gpu: Gpu) {
    if (!(gpu instanceof Gpu))
      badArg('new Engine', 'gpu', 'a Gpu (use createEngine({ device }) to make an engine)', gpu);
  }

  /** A tensor holding `data` (f32 from a Float32Array or an array of numbers, i32 from an Int32Array). */
  tensor(data: Float32Array | Int32Array | readonly number[], shape: Shape): Tensor {
    return Tensor.fromData(this.gpu, tensorData('Engine.tensor', data, shape), shape);
  }

  zeros(shape: Shape, dtype: DType = 'f32'): Tensor {
    checkShapeArg('Engine.zeros', 'shape', shape);
    checkDType('Engine.zeros', 'dtype', dtype);
    return Tensor.zeros(this.gpu, shape, dtype);
  }

  empty(shape: Shape, dtype: DType = 'f32'): Tensor {
    checkShapeArg('Engine.empty', 'shape', shape);
    checkDType('Engine.empty', 'dtype', dtype);
    return Tensor.empty(this.gpu, shape, dtype);
  }

  /**
   * Wraps an app-owned GPUBuffer (STORAGE usage, unmapped, at least numel(shape) * 4 bytes, made
   * on this engine's device) as a tensor without copying.
   */
  fromBuffer(buffer: GPUBuffer, shape: Shape, dtype: DType = 'f32'): Tensor {
    checkBufferArg('Engine.fromBuffer', buffer, shape, dtype);
    return Tensor.fromBuffer(this.gpu, buffer, shape, dtype);
  }

  /**
   * Submits the work recorded so far to the device queue without waiting. Call it before the
   * app's own command buffers read (or write) engine tensors' buffers, so they see the results:
   * the engine records into its own encoder and submits lazily.
   */
  flush(): void {
    this.gpu.flush();
  }

  /** Waits for all recorded work and throws any error the device reported. */
  sync(): Promise<void> {
    return this.gpu.sync();
  }

  stats(): GpuStats {
    return this.gpu.stats();
  }

  /** Frees every GPU object the engine made; destroys the device only if the engine created it. */
  dispose(): void {
    this.gpu.destroy();
  }
}

/**
 * The device limits the kernels need (the WebGPU defaults, which every core-WebGPU adapter meets;
 * compatibility-mode devices and devices created with lowered limits may not).
 */
export const REQUIRED_LIMITS = {
  maxComputeInvocationsPerWorkgroup: 256,
  maxComputeWorkgroupSizeX: 256,
  maxComputeWorkgroupStorageSize: 16384,
  maxStorageBuffersPerShaderStage: 8,
} as const;

/** The device's limits are below what the kernels need; `problems` names each one. */
export class AdapterLimitsError extends GpuError {
  constructor(readonly problems: string[]) {
    super(`the WebGPU device's limits are too small for sam-lst-webgpu: ${problems.join('; ')}`);
  }
}

/** One line per limit of `limits` below REQUIRED_LIMITS (empty when the device is usable). */
export function limitProblems(limits: GPUSupportedLimits): string[] {
  const out: string[] = [];
  for (const [k, need] of Object.entries(REQUIRED_LIMITS)) {
    const have = (limits as unknown as Record<string, number>)[k] ?? 0;
    if (have < need) out.push(`${k} is ${have}, needs at least ${need}`);
  }
  return out;
}

/**
 * An engine on the app's `device` (never destroyed or reconfigured by the engine: `dispose()` frees
 * only the engine's own buffers), or on a device it requests from navigator.gpu (which it owns and
 * destroys on `dispose()`). Throws GpuError when the browser has no WebGPU or no adapter, and
 * AdapterLimitsError when the device's limits are below REQUIRED_LIMITS.
 */
export async function createEngine(opts: EngineOptions = {}): Promise<Engine> {
  checkObject('createEngine', 'options', opts, true);
  if (opts.profile !== undefined) checkObject('createEngine', 'options.profile', opts.profile);
  if (opts.device !== undefined && opts.device !== null) {
    const d = opts.device as Partial<GPUDevice> & { requestDevice?: unknown };
    const device = (what: string) =>
      new ArgumentError(`createEngine: options.device must be a GPUDevice, got ${what}`);
    if (typeof d !== 'object' || d.limits === null || typeof d.limits !== 'object')
      throw device(describeValue(opts.device));
    if (typeof d.requestDevice === 'function')
      throw device('a GPUAdapter (pass await adapter.requestDevice())');
    const problems = limitProblems(opts.device.limits);
    if (problems.length) throw new AdapterLimitsError(problems);
    if (typeof d.createBuffer !== 'function') throw device(describeValue(opts.device));
    return new Engine(
      new Gpu({ device: opts.device, adapterInfo: opts.adapterInfo, owned: false, profile: opts.profile }),
    );
  }
  const { device, info } = await createBrowserDevice();
  const problems = limitProblems(device.limits);
  if (problems.length) {
    device.destroy();
    throw new AdapterLimitsError(problems);
  }
  return new Engine(new Gpu({ device, adapterInfo: info, owned: true, profile: opts.profile }));
}
