/** Errors raised by the device layer. Each names what failed and, where known, the kernel. */

export class GpuError extends Error {
  constructor(message: string) {
    super(message);
    this.name = new.target.name;
  }
}

/** WGSL failed to compile or a pipeline failed validation. */
export class KernelCompileError extends GpuError {
  constructor(
    readonly kernel: string,
    readonly compilerMessage: string,
  ) {
    super(`kernel '${kernel}' failed to compile: ${compilerMessage}`);
  }
}

/** A validation error reported by the device while running recorded work. */
export class GpuValidationError extends GpuError {}

/**
 * The device was lost (driver reset, destroy(), out of memory in the driver...). `reason` is the
 * GPUDeviceLostReason ('destroyed', 'unknown') or 'injected' for the test seam Gpu.injectFault.
 */
export class DeviceLostError extends GpuError {
  constructor(
    readonly reason: string,
    readonly detail: string,
  ) {
    super(`WebGPU device lost (reason: ${reason})${detail ? `: ${detail}` : ''}`);
  }
}

/** What to change so that a run fits: the CLI flags that scale the largest tensors. */
export const MEMORY_HINT = 'reduce --batch-size or --img-size';

/**
 * An allocation the device cannot make: either a request over one of the adapter's limits
 * (`limitName` maxBufferSize or maxStorageBufferBindingSize; refused before anything is sent to the
 * device), or one the device itself refused although it was within the limits (`limitName`
 * 'device memory': the GPU's memory is exhausted; reported by an out-of-memory error scope at the
 * next sync point). The message names the request (`what`, e.g. `tensor [24, 64, 128, 128]`), its
 * size, the limit and the flags that reduce it.
 */
export class GpuOutOfMemoryError extends GpuError {
  readonly limitName: OutOfMemoryLimit;
  /** Bytes the engine's pool held when the device refused (device-memory case). */
  readonly heldBytes: number | null;

  constructor(
    readonly requestedBytes: number,
    readonly limitBytes: number,
    readonly what: string,
    opts: { limitName?: OutOfMemoryLimit; heldBytes?: number; detail?: string } = {},
  ) {
    const limitName = opts.limitName ?? 'maxBufferSize';
    const d = opts.detail ?? '';
    super(
      limitName === 'device memory'
        ? (requestedBytes > 0
            ? `out of GPU memory: the device could not allocate ${fmtBytes(requestedBytes)} for ${what}, within ` +
              `the adapter's per-buffer limit of ${fmtBytes(limitBytes)}: its memory is exhausted`
            : `out of GPU memory: the device ran out of memory running ${what}`) +
            (opts.heldBytes !== undefined ? ` (the engine held ${fmtBytes(opts.heldBytes)})` : '') +
            `${d ? ` (${d})` : ''}; ${MEMORY_HINT}`
        : `out of GPU memory: ${what} needs ${fmtBytes(requestedBytes)} but the limit is ` +
            `${fmtBytes(limitBytes)} (the adapter's ${limitName})${d ? `: ${d}` : ''}; ${MEMORY_HINT}`,
    );
    this.limitName = limitName;
    this.heldBytes = opts.heldBytes ?? null;
  }
}

export type OutOfMemoryLimit = 'maxBufferSize' | 'maxStorageBufferBindingSize' | 'device memory';

export function fmtBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 ** 2) return `${(n / 1024).toFixed(1)} KiB`;
  if (n < 1024 ** 3) return `${(n / 1024 ** 2).toFixed(1)} MiB`;
  return `${(n / 1024 ** 3).toFixed(2)} GiB`;
}
