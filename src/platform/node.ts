/**
 * Node: a GPUDevice from Dawn (npm package `webgpu`). Only the CLI, tests and benchmarks import
 * this file. The Dawn GPU object is kept referenced for the life of the device (Dawn aborts if it
 * is collected while buffers are mapped) and released by `close()` so the process can exit.
 */
import { acquireDevice, type AcquireOptions } from '../gpu/acquire.js';

export interface NodeDevice {
  device: GPUDevice;
  info: GPUAdapterInfo;
  close(): void;
}

let dawn: { gpu: GPU; users: number } | null = null;

export async function createNodeDevice(
  opts: AcquireOptions & { backend?: string } = {},
): Promise<NodeDevice> {
  process.env.XDG_RUNTIME_DIR ??= '/tmp';
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
    dawn = { gpu: mod.create([]), users: 0 };
  }
  const holder = dawn;
  const { device, info } = await acquireDevice(holder.gpu, opts);
  holder.users++;
  let closed = false;
  return {
    device,
    info,
    close() {
      if (closed) return;
      closed = true;
      device.destroy();
      if (--holder.users === 0 && dawn === holder) dawn = null;
    },
  };
}
