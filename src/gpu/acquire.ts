/**
 * Opens a device on an adapter with the limits and features the kernels can use: the adapter's
 * own maxima for buffer/binding sizes, workgroup storage and invocations, and `subgroups` /
 * `timestamp-query` when offered. Used by the platform layer (Node or browser).
 */
import { GpuError } from './errors.js';

export interface AcquireOptions {
  powerPreference?: GPUPowerPreference;
  /** Ask for the `subgroups` feature when the adapter has it (default true). */
  subgroups?: boolean;
}

const WANTED_LIMITS = [
  'maxStorageBufferBindingSize',
  'maxBufferSize',
  'maxComputeWorkgroupStorageSize',
  'maxComputeInvocationsPerWorkgroup',
  'maxComputeWorkgroupSizeX',
  'maxComputeWorkgroupSizeY',
  'maxComputeWorkgroupSizeZ',
  'maxComputeWorkgroupsPerDimension',
  'maxStorageBuffersPerShaderStage',
] as const;

export async function acquireDevice(
  gpu: GPU,
  opts: AcquireOptions = {},
): Promise<{ device: GPUDevice; adapter: GPUAdapter; info: GPUAdapterInfo }> {
  const adapter = await gpu.requestAdapter({ powerPreference: opts.powerPreference ?? 'high-performance' });
  if (!adapter)
    throw new GpuError('no WebGPU adapter found (on Linux without a GPU run scripts/setup-vulkan.sh)');
  const requiredLimits: Record<string, number> = {};
  for (const k of WANTED_LIMITS) requiredLimits[k] = adapter.limits[k];
  const requiredFeatures: GPUFeatureName[] = [];
  if ((opts.subgroups ?? true) && adapter.features.has('subgroups')) requiredFeatures.push('subgroups');
  if (adapter.features.has('timestamp-query')) requiredFeatures.push('timestamp-query');
  const device = await adapter.requestDevice({ requiredLimits, requiredFeatures, label: 'sam-lst-webgpu' });
  return { device, adapter, info: adapter.info };
}
