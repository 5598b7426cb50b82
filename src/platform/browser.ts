/** Browser: a GPUDevice from navigator.gpu. */
import { acquireDevice, type AcquireOptions } from '../gpu/acquire.js';
import { GpuError } from '../gpu/errors.js';

export async function createBrowserDevice(
  opts: AcquireOptions = {},
): Promise<{ device: GPUDevice; info: GPUAdapterInfo }> {
  const gpu = (globalThis as { navigator?: Navigator }).navigator?.gpu;
  if (!gpu) throw new GpuError('this browser has no WebGPU (navigator.gpu is undefined)');
  const { device, info } = await acquireDevice(gpu, opts);
  return { device, info };
}
