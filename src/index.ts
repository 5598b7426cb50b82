/**
 * Public API (browser-safe: no Node-only imports on this path; test/unit/layers.test.ts checks).
 *
 *   engine     createEngine({ device? }), Engine (tensors, fromBuffer, flush, sync, dispose)
 *   tensors    Tensor, tidy, backward / noGrad / param, ops
 *   model      readCheckpoint, createSamLst, SamLST, SamLstConfig, prepareSlice, segment,
 *              argmaxClasses, SamLstTrainer
 *   data       phantomSlice (synthetic sample slices), SYNAPSE_ORGANS, ORGAN_COLORS
 *   errors     GpuError and its subclasses, CheckpointError, ConfigError, ShapeError
 * Node: a Dawn device from 'sam-lst-webgpu/node' (createNodeDevice), passed to createEngine.
 */
export {
  createEngine,
  Engine,
  AdapterLimitsError,
  limitProblems,
  REQUIRED_LIMITS,
  type EngineOptions,
} from './engine.js';
export { Tensor } from './tensor/tensor.js';
export { tidy } from './tensor/scope.js';
export type { HostTensor, DType } from './tensor/host.js';
export { backward, noGrad, param } from './autograd/tape.js';
export * as ops from './ops/index.js';
export { Gpu, type AdapterProfile, type GpuStats, type KernelTime } from './gpu/device.js';
export * from './gpu/errors.js';
export { ShapeError, type Shape } from './util/shape.js';
export { ArgumentError } from './util/args.js';
export { LabelRangeError } from './ops/loss.js';
export {
  readCheckpoint,
  samLstConfig,
  configForCheckpoint,
  createSamLst,
  prepareSlice,
  segment,
  argmaxClasses,
  ORGAN_COLORS,
  SamLstTrainer,
  CheckpointError,
  TrainStepError,
  type StateDict,
  type Checkpoint,
  type ConfigSpec,
  type CreateSamLstOptions,
  type GreySlice,
  type ModelInput,
  type TrainerOptions,
} from './api.js';
export { SamLST, type SamLstOutput, type SamLstOptions } from './nn/sam_lst.js';
export { SamLstConfig, ConfigError, type SamLstConfigFields } from './nn/config.js';
export { AdamW, SAM_LST_ADAMW, type AdamWOptions } from './optim/adamw.js';
export { SYNAPSE_ORGANS, NUM_CLASSES } from './data/labels.js';
/** Sample data: a synthetic abdominal CT slice with the 8 Synapse organs (deterministic in the seed). */
export { phantomSlice, PHANTOM_MID_T } from './data/phantom.js';
export type { Slice } from './data/types.js';
