/** Registers @tensorflow/tfjs-backend-webgpu on a given GPUDevice (the one our engine uses). */
import type { Tf } from './harness.js';

export async function setupTfjs(device: GPUDevice, info: GPUAdapterInfo): Promise<Tf> {
  const g = globalThis as { navigator?: unknown };
  // tfjs-backend-webgpu checks navigator.gpu at import time in some paths.
  if (!g.navigator) g.navigator = { gpu: {}, userAgent: 'node' };
  const tf = await import('@tensorflow/tfjs-core');
  const { WebGPUBackend } = await import('@tensorflow/tfjs-backend-webgpu');
  // Kernels are registered under the backend name 'webgpu': replace its factory with one that
  // uses our device instead of requesting a new one.
  if (tf.findBackendFactory('webgpu')) tf.removeBackend('webgpu');
  tf.registerBackend('webgpu', () => new WebGPUBackend(device, info), 3);
  await tf.setBackend('webgpu');
  await tf.ready();
  return tf;
}
