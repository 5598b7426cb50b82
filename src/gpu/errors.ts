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

/** The device was lost (driver reset, destroy(), out of memory in the driver...). */
export class DeviceLostError extends GpuError {
  constructor(
    readonly reason: string,
    readonly detail: string,
  ) {
    super(`WebGPU device lost (reason: ${reason})${detail ? `: ${detail}` : ''}`);
  }
}

/** An allocation larger than the adapter allows, or one the device refused. */
export class GpuOutOfMemoryError extends GpuError {
  constructor(
    readonly requestedBytes: number,
    readonly limitBytes: number,
    what: string,
  ) {
    super(
      `out of GPU memory: ${what} needs ${fmtBytes(requestedBytes)} but the limit is ${fmtBytes(limitBytes)}` +
        ' (reduce --batch-size or --img-size)',
    );
  }
}

export function fmtBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 ** 2) return `${(n / 1024).toFixed(1)} KiB`;
  if (n < 1024 ** 3) return `${(n / 1024 ** 2).toFixed(1)} MiB`;
  return `${(n / 1024 ** 3).toFixed(2)} GiB`;
}
