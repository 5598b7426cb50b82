/**
 * Engine: the embeddable entry point. It wraps one GPUDevice — the app's own (never destroyed or
 * reconfigured by the engine) or one it obtains from navigator.gpu — and creates tensors on it.
 */
import { Gpu, type AdapterProfile, type GpuStats } from './gpu/device.js';
import { createBrowserDevice } from './platform/browser.js';
import type { Shape } from './util/shape.js';
import { Tensor } from './tensor/tensor.js';
import type { DType } from './tensor/host.js';

export interface EngineOptions {
  /** The app's GPUDevice. When absent, one is requested from navigator.gpu (and owned by the engine). */
  device?: GPUDevice;
  adapterInfo?: GPUAdapterInfo;
  /** Overrides of the detected adapter profile (e.g. `{ subgroups: false }`). */
  profile?: Partial<AdapterProfile>;
}

export class Engine {
  constructor(readonly gpu: Gpu) {}

  tensor(data: Float32Array | Int32Array | readonly number[], shape: Shape): Tensor {
    return Tensor.fromData(this.gpu, data, shape);
  }

  zeros(shape: Shape, dtype: DType = 'f32'): Tensor {
    return Tensor.zeros(this.gpu, shape, dtype);
  }

  empty(shape: Shape, dtype: DType = 'f32'): Tensor {
    return Tensor.empty(this.gpu, shape, dtype);
  }

  /** Wraps an app-owned GPUBuffer (STORAGE usage) as a tensor without copying. */
  fromBuffer(buffer: GPUBuffer, shape: Shape, dtype: DType = 'f32'): Tensor {
    return Tensor.fromBuffer(this.gpu, buffer, shape, dtype);
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

export async function createEngine(opts: EngineOptions = {}): Promise<Engine> {
  if (opts.device) {
    return new Engine(new Gpu({ device: opts.device, adapterInfo: opts.adapterInfo, owned: false, profile: opts.profile }));
  }
  const { device, info } = await createBrowserDevice();
  return new Engine(new Gpu({ device, adapterInfo: info, owned: true, profile: opts.profile }));
}
