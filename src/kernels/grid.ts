/** Dispatch-geometry helpers shared by the kernel wrappers. */
import type { Gpu } from '../gpu/device.js';

/**
 * A 1-D grid of `count` workgroups folded into (x, y) so no dimension exceeds the adapter's limit.
 * Kernels recover the linear workgroup index as wid.y * num_workgroups.x + wid.x and bounds-check.
 */
export function grid1d(gpu: Gpu, count: number): [number, number, number] {
  const max = gpu.profile.maxWorkgroupsPerDimension;
  if (count <= max) return [Math.max(count, 0), 1, 1];
  const y = Math.ceil(count / max);
  if (y > max) throw new Error(`grid of ${count} workgroups is too large for this adapter`);
  return [Math.ceil(count / y), y, 1];
}

/**
 * The value of `const NAME: u32 = <n>u;` in a WGSL source: sizes a kernel fixes at compile time
 * (register tiles, elements per invocation) are written down once, in the WGSL.
 */
export function wgslConst(src: string, name: string): number {
  const m = new RegExp(`const ${name}: u32 = (\\d+)u;`).exec(src);
  if (!m) throw new Error(`const ${name} not found in the kernel source`);
  return Number(m[1]);
}
