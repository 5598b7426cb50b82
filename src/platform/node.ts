/**
 * Node: a GPUDevice from Dawn (npm package `webgpu`). Only the CLI, tests and benchmarks import
 * this file.
 */
import { acquireDevice, type AcquireOptions } from '../gpu/acquire.js';
import { installDawnPolling, type DawnPolling } from './dawn_polling.js';

export { dawnPolling, dawnPollingStats, installDawnPolling, type DawnPolling } from './dawn_polling.js';

export interface NodeDevice {
  device: GPUDevice;
  info: GPUAdapterInfo;
  close(): void;
}

// One Dawn instance per process, kept referenced: Dawn aborts if it is garbage-collected while
// work is in flight. releaseDawn() drops it so a CLI process can exit on its own.
let dawn: { gpu: GPU } | null = null;

export function releaseDawn(): void {
  dawn = null;
}

/**
 * A device from Dawn. `polling` sets how the binding waits for the GPU (see dawn_polling.ts):
 * 'polite' (default) sleeps between polls after a short spin, so a CPU adapter keeps every core.
 */
export async function createNodeDevice(
  opts: AcquireOptions & { backend?: string; polling?: DawnPolling } = {},
): Promise<NodeDevice> {
  process.env.XDG_RUNTIME_DIR ??= '/tmp';
  installDawnPolling(opts.polling ?? 'polite');
  if (opts.backend && opts.backend !== 'dawn')
    throw new Error(`unknown Node backend '${opts.backend}' (use 'dawn')`);
  if (!dawn) {
    let mod: { create(opts: string[]): GPU; globals: object };
    try {
      mod = await import('webgpu');
    } catch (e) {
      throw new Error(`the 'webgpu' package (Dawn for Node) is not installed: ${(e as Error).message}`);
    }
    Object.assign(globalThis, mod.globals);
    dawn = { gpu: mod.create([]) };
  }
  const { device, info } = await acquireDevice(dawn.gpu, opts);
  let closed = false;
  return {
    device,
    info,
    close() {
      if (closed) return;
      closed = true;
      device.destroy();
    },
  };
}
