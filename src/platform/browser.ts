/** Browser: a GPUDevice from navigator.gpu. */
import { acquireDevice, type AcquireOptions } from '../gpu/acquire.js';
import { GpuError } from '../gpu/errors.js';

export async function createBrowserDevice(
  opts: AcquireOptions = {},
): Promise<{ device: GPUDevice; info: GPUAdapterInfo }> {
  const gpu = (globalThis as { navigator?: Navigator }).navigator?.gpu;
  if (!gpu)
    throw new GpuError(
      'this browser has no WebGPU (navigator.gpu is undefined; WebGPU needs a secure context: https or localhost)',
    );
  try {
    const { device, info } = await acquireDevice(gpu, opts);
    return { device, info };
  } catch (e) {
    // acquireDevice's message suggests a Linux driver install, which is Node advice.
    if (e instanceof GpuError && /no WebGPU adapter/.test(e.message))
      throw new GpuError(
        'WebGPU is present but the browser gave no adapter (GPU blocklisted or WebGPU disabled in its settings)',
      );
    throw e;
  }
}
