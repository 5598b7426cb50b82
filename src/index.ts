/** Public API (browser-safe: no Node-only imports on this path). */
export { createEngine, Engine, type EngineOptions } from './engine.js';
export { Tensor } from './tensor/tensor.js';
export { tidy } from './tensor/scope.js';
export type { HostTensor, DType } from './tensor/host.js';
export { backward, noGrad, param } from './autograd/tape.js';
export * as ops from './ops/index.js';
export { Gpu, type AdapterProfile, type GpuStats } from './gpu/device.js';
export * from './gpu/errors.js';
