/**
 * The model-level public API (browser-safe: no Node-only imports): checkpoints from bytes,
 * building SAM-LST, preparing a slice, inference and training steps. Everything here works on
 * the tensors of an `Engine`, so an app that passed its own GPUDevice to `createEngine` gets
 * results in GPUBuffers on that device (`tensor.buffer`) and can use them without a readback.
 */
import { argmaxChannels } from './eval/inference.js';
import { backward, noGrad } from './autograd/tape.js';
import { Engine } from './engine.js';
import { readPth } from './io/pth.js';
import { remapCheckpoint } from './io/remap.js';
import { decodeEntry, parseSafetensors } from './io/safetensors.js';
import { applyAugmentation } from './data/augment.js';
import { zoom2d } from './data/resample.js';
import { ConfigError, SamLstConfig, type SamLstConfigFields } from './nn/config.js';
import { SamLST, type SamLstOutput } from './nn/sam_lst.js';
import { ceDiceLoss, LabelRangeError } from './ops/loss.js';
import { AdamW, SAM_LST_ADAMW, type AdamWOptions } from './optim/adamw.js';
import type { HostTensor } from './tensor/host.js';
import { tidy } from './tensor/scope.js';
import { Tensor } from './tensor/tensor.js';
import { samLstTrainStep } from './train/parity.js';
import {
  ArgumentError,
  badArg,
  checkAllFinite,
  checkInt,
  checkObject,
  checkString,
  checkTyped,
  describeValue,
  isPlainObject,
} from './util/args.js';
import { fmt, ShapeError } from './util/shape.js';

/** A checkpoint's bytes could not be read as a PyTorch `.pth` or a safetensors file. */
export class CheckpointError extends Error {
  override name = 'CheckpointError';
}

/** A state_dict: tensor name -> host tensor. */
export type StateDict = ReadonlyMap<string, HostTensor>;

/** A checkpoint read from bytes (`readCheckpoint`). */
export interface Checkpoint {
  /** The name used in messages (e.g. the file name). */
  name: string;
  format: 'pth' | 'safetensors';
  /** The model tensors under their names in the file ('module.' prefixes are handled at load). */
  tensors: Map<string, HostTensor>;
  /** The model configuration stored with the checkpoint (safetensors metadata), or null. */
  config: SamLstConfig | null;
  /** safetensors `__metadata__` (empty for .pth). */
  metadata: Record<string, string>;
  /** Things the caller may want to show (ignored non-model tensors). */
  notes: string[];
}

function bytesOf(fn: string, data: unknown): Uint8Array {
  if (data instanceof Uint8Array) return data;
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  throw new ArgumentError(
    `${fn}: data must be the file's bytes as a Uint8Array or an ArrayBuffer, got ${describeValue(data)}` +
      (ArrayBuffer.isView(data) ? ' (wrap it: new Uint8Array(v.buffer, v.byteOffset, v.byteLength))' : ''),
  );
}

// ------------------------------------------------------------------ argument checks

function checkEngine(fn: string, engine: unknown): asserts engine is Engine {
  if (!(engine instanceof Engine)) badArg(fn, 'engine', 'an Engine (from createEngine)', engine);
}

function checkModel(fn: string, model: unknown): asserts model is SamLST {
  if (!(model instanceof SamLST)) badArg(fn, 'model', 'a SamLST model (from createSamLst)', model);
}

/** A live tensor on the model's device. */
function checkTensorArg(fn: string, arg: string, t: unknown, model: SamLST): asserts t is Tensor {
  if (!(t instanceof Tensor)) badArg(fn, arg, 'a Tensor', t);
  if (t.disposed) throw new ArgumentError(`${fn}: ${arg} ${t.describe()} was used after dispose()`);
  if (t.gpu !== model.gpu)
    throw new ArgumentError(
      `${fn}: ${arg} ${t.describe()} lives on another engine's device than the model; create it with the model's engine`,
    );
}

/** The model input: f32 (B, inChans, S, S), B >= 1, on the model's device. Returns B. */
function checkModelImage(fn: string, arg: string, image: unknown, model: SamLST): number {
  checkTensorArg(fn, arg, image, model);
  const { inChans: C, imgSize: S } = model.cfg;
  const want = `f32 (B, ${C}, ${S}, ${S})`;
  const got = `${image.dtype}${fmt(image.shape)}`;
  if (image.dtype !== 'f32') throw new ArgumentError(`${fn}: ${arg} must be ${want}, got ${got} (dtype)`);
  if (image.shape.length !== 4)
    throw new ShapeError(`${fn}: ${arg} must be ${want}, got ${got} (rank ${image.shape.length})`);
  const [B, c, h, w] = image.shape as [number, number, number, number];
  if (B < 1) throw new ShapeError(`${fn}: ${arg} must be ${want} with B >= 1, got ${got}`);
  if (c !== C)
    throw new ShapeError(`${fn}: ${arg} must be ${want}, got ${got} (${c} channels instead of ${C})`);
  if (h !== S || w !== S)
    throw new ShapeError(
      `${fn}: ${arg} must be ${want}, got ${got} (${h}x${w}; the model's input size is ${S}: resize with prepareSlice)`,
    );
  return B;
}

/** The loss target: i32 (B, S/4, S/4) on the model's device. */
function checkLowResLabels(fn: string, arg: string, labels: unknown, B: number, model: SamLST): void {
  checkTensorArg(fn, arg, labels, model);
  const L = model.cfg.imgSize / 4;
  const want = `i32 (${B}, ${L}, ${L}) (B = the image batch, S/4 = ${L})`;
  const got = `${labels.dtype}${fmt(labels.shape)}`;
  if (labels.dtype !== 'i32')
    throw new ArgumentError(
      `${fn}: ${arg} must be ${want}, got ${got} (make class ids with an Int32Array: engine.tensor(Int32Array.from(ids), shape))`,
    );
  const sh = labels.shape;
  if (sh.length !== 3 || sh[0] !== B || sh[1] !== L || sh[2] !== L)
    throw new ShapeError(`${fn}: ${arg} must be ${want}, got ${got}`);
}

function checkLr(fn: string, lr: unknown): void {
  if (lr !== undefined && !(typeof lr === 'number' && Number.isFinite(lr) && lr >= 0))
    badArg(fn, 'lr', 'a finite number >= 0 (or omitted: the optimizer default)', lr);
}

/** Model tensor names of a SAM-LST state_dict (optionally DataParallel-prefixed). */
const MODEL_KEY = /^(module\.)?(sam|sam_encoder|CNN_encoder)\./;

/**
 * A stored configuration: SamLstConfig JSON (the oracle's `to_dict()` form), `{config: {...}}`,
 * or this project's training config (`{..., model: {...}}`, what `npm run train` stores).
 */
function storedConfig(json: string, where: string): SamLstConfig {
  let obj: unknown;
  try {
    obj = JSON.parse(json);
  } catch (e) {
    throw new CheckpointError(`${where}: config is not valid JSON (${(e as Error).message})`);
  }
  if (obj === null || typeof obj !== 'object' || Array.isArray(obj))
    throw new CheckpointError(`${where}: config must be a JSON object`);
  const o = obj as Record<string, unknown>;
  const inner =
    [o.model, o.config].find((v) => v !== null && typeof v === 'object' && !Array.isArray(v)) ?? o;
  try {
    return SamLstConfig.fromJson(inner as Record<string, unknown>);
  } catch (e) {
    throw new CheckpointError(`${where}: ${(e as Error).message}`);
  }
}

/**
 * Reads a SAM-LST checkpoint from its bytes, told apart by content: a PyTorch `.pth` (zip or
 * legacy pickle; a state_dict at the top level or under a wrapper key such as 'state_dict') or a
 * `.safetensors` file (non-model tensors, e.g. optimizer state, are ignored and noted; a model
 * config stored under `config` / `model_config` in the metadata is returned). `name` is used in
 * error messages (e.g. the file name the user picked).
 */
export function readCheckpoint(data: Uint8Array | ArrayBuffer, name = 'checkpoint'): Checkpoint {
  const bytes = bytesOf('readCheckpoint', data);
  checkString('readCheckpoint', 'name', name);
  if (bytes.byteLength < 8)
    throw new CheckpointError(`${name}: ${bytes.byteLength} bytes is not a checkpoint`);
  const zip = bytes[0] === 0x50 && bytes[1] === 0x4b && bytes[2] === 0x03 && bytes[3] === 0x04;
  const pickle = bytes[0] === 0x80 && bytes[1]! >= 2 && bytes[1]! <= 5;
  const fail = (e: unknown): never => {
    throw e instanceof CheckpointError ? e : new CheckpointError(`${name}: ${(e as Error).message}`);
  };
  if (zip || pickle) {
    let tensors: Map<string, HostTensor> = new Map();
    try {
      tensors = readPth(bytes, name, { unwrap: true });
    } catch (e) {
      fail(e);
    }
    return { name, format: 'pth', tensors, config: null, metadata: {}, notes: [] };
  }
  // safetensors: u64 little-endian header length, then a JSON object.
  const headerLen = new DataView(bytes.buffer, bytes.byteOffset, 8).getUint32(0, true);
  if (bytes[8] === 0x7b && headerLen > 1 && headerLen + 8 <= bytes.byteLength) {
    const tensors = new Map<string, HostTensor>();
    const ignored: string[] = [];
    let metadata: Record<string, string> = {};
    try {
      const st = parseSafetensors(bytes, name);
      metadata = st.metadata;
      for (const [k, e] of st.tensors) {
        if (!MODEL_KEY.test(k)) {
          ignored.push(k);
          continue;
        }
        const d = decodeEntry(e, `${name}: ${k}`);
        tensors.set(k, { shape: [...e.shape], dtype: d instanceof Int32Array ? 'i32' : 'f32', data: d });
      }
    } catch (e) {
      fail(e);
    }
    const notes = ignored.length
      ? [
          `ignored ${ignored.length} non-model tensors (${ignored.slice(0, 3).join(', ')}${ignored.length > 3 ? ', ...' : ''})`,
        ]
      : [];
    const cfgJson = metadata.config ?? metadata.model_config;
    const config = cfgJson === undefined ? null : storedConfig(cfgJson, `${name} metadata`);
    return { name, format: 'safetensors', tensors, config, metadata, notes };
  }
  throw new CheckpointError(
    `${name}: neither a PyTorch checkpoint (zip or pickle) nor a safetensors file (first bytes ` +
      `${[...bytes.subarray(0, 4)].map((b) => b.toString(16).padStart(2, '0')).join(' ')})`,
  );
}

/** A configuration: a SamLstConfig, a preset name, or fields over the ViT-B defaults. */
export type ConfigSpec = SamLstConfig | 'tiny' | 'vitB' | Partial<SamLstConfigFields>;

export function samLstConfig(spec: ConfigSpec = 'vitB'): SamLstConfig {
  if (spec instanceof SamLstConfig) return spec;
  if (spec === 'tiny') return SamLstConfig.tiny();
  if (spec === 'vitB') return SamLstConfig.vitB();
  if (typeof spec === 'string')
    throw new ConfigError(`samLstConfig: unknown configuration preset '${String(spec)}' (known: tiny, vitB)`);
  if (!isPlainObject(spec))
    throw new ConfigError(
      `samLstConfig: spec must be a SamLstConfig, 'tiny', 'vitB' or an object of config fields, got ${describeValue(spec)}`,
    );
  return new SamLstConfig(spec);
}

function isCheckpoint(c: Checkpoint | StateDict): c is Checkpoint {
  return !(c instanceof Map) && 'tensors' in c && 'format' in c;
}

/** A `readCheckpoint` result or a state_dict Map. */
function checkCheckpointArg(fn: string, arg: string, c: unknown): asserts c is Checkpoint | StateDict {
  if (c instanceof Map) return;
  if (isPlainObject(c) && c.tensors instanceof Map && typeof c.format === 'string') return;
  badArg(fn, arg, 'a readCheckpoint() result or a state_dict Map', c);
}

/**
 * The configuration of a SAM-LST checkpoint: the one stored with it, else the preset (ViT-B or
 * tiny) whose encoder width, depth, patch size, prompt width and ResNet width match its tensor
 * shapes, at the checkpoint's input size and class count. Throws naming the shapes otherwise.
 */
export function configForCheckpoint(ck: Checkpoint | StateDict, name = 'checkpoint'): SamLstConfig {
  checkCheckpointArg('configForCheckpoint', 'checkpoint', ck);
  checkString('configForCheckpoint', 'name', name);
  if (isCheckpoint(ck)) {
    if (ck.config) return ck.config;
    name = ck.name;
  }
  const { map } = remapCheckpoint(isCheckpoint(ck) ? ck.tensors : ck, 'sam-lst', name);
  const shape = (k: string): number[] => {
    const t = map.get(k);
    if (!t) throw new CheckpointError(`${name}: not a SAM-LST checkpoint (no '${k}' tensor)`);
    return t.shape;
  };
  const pe = shape('sam.image_encoder.pos_embed');
  let depth = 0;
  while (map.has(`sam.image_encoder.blocks.${depth}.norm1.weight`)) depth++;
  const sig = {
    grid: pe[1]!,
    encDim: pe[3]!,
    patchSize: shape('sam.image_encoder.patch_embed.proj.weight')[2]!,
    encDepth: depth,
    promptDim: shape('sam.image_encoder.neck.0.weight')[0]!,
    cnnWidth: shape('CNN_encoder.conv1.weight')[0]!,
    numClasses: shape('sam.mask_decoder.mask_tokens.weight')[0]! - 1,
  };
  for (const preset of [SamLstConfig.vitB(), SamLstConfig.tiny()]) {
    const p = preset;
    if (
      p.encDim === sig.encDim &&
      p.patchSize === sig.patchSize &&
      p.encDepth === sig.encDepth &&
      p.promptDim === sig.promptDim &&
      p.cnnWidth === sig.cnnWidth
    )
      return p.with({ imgSize: sig.grid * p.patchSize, numClasses: sig.numClasses });
  }
  throw new CheckpointError(
    `${name}: no configuration is stored with it and its shapes (encoder width ${sig.encDim}, depth ` +
      `${sig.encDepth}, patch ${sig.patchSize}, prompt width ${sig.promptDim}, ResNet width ${sig.cnnWidth}, ` +
      `grid ${sig.grid}, ${sig.numClasses} classes) match no preset (vitB, tiny); pass the configuration`,
  );
}

export interface CreateSamLstOptions {
  /** Default: the checkpoint's (`configForCheckpoint`) when one is given, else 'vitB'. */
  config?: ConfigSpec;
  /** SAM-LST weights: the bytes of a .pth / .safetensors file, a `readCheckpoint` result, or a
   * state_dict. Loaded strictly (every parameter and buffer, every shape). */
  checkpoint?: Uint8Array | ArrayBuffer | Checkpoint | StateDict;
  /** Name of the checkpoint in error messages. */
  checkpointName?: string;
  /** Seed of the random initialisation used when there is no checkpoint (default 0). */
  seed?: number;
}

/**
 * Builds SAM-LST on the engine's device: from a checkpoint or with PyTorch's default random
 * initialisation. The model starts in training mode with SAM-LST's trainable set (gate, output
 * upscaling, side CNN); `segment` switches to eval mode itself.
 */
export function createSamLst(engine: Engine, opts: CreateSamLstOptions = {}): SamLST {
  const fn = 'createSamLst';
  checkEngine(fn, engine);
  checkObject(fn, 'options', opts, true);
  if (opts.seed !== undefined) checkInt(fn, 'options.seed', opts.seed, 0);
  if (opts.checkpointName !== undefined) checkString(fn, 'options.checkpointName', opts.checkpointName);
  const c = opts.checkpoint;
  if (c !== undefined && !(c instanceof Uint8Array || c instanceof ArrayBuffer))
    checkCheckpointArg(fn, 'options.checkpoint', c);
  const ck: Checkpoint | StateDict | null =
    c === undefined
      ? null
      : c instanceof Uint8Array || c instanceof ArrayBuffer
        ? readCheckpoint(c, opts.checkpointName)
        : c;
  const name = ck && isCheckpoint(ck) ? ck.name : (opts.checkpointName ?? 'checkpoint');
  const cfg =
    opts.config !== undefined
      ? samLstConfig(opts.config)
      : ck
        ? configForCheckpoint(ck, name)
        : SamLstConfig.vitB();
  if (!ck) return new SamLST(engine.gpu, cfg, { seed: opts.seed ?? 0 });
  return SamLST.fromCheckpoint(engine.gpu, cfg, isCheckpoint(ck) ? ck.tensors : ck, name);
}

/** A grey slice (values in [0, 1], row-major h x w) and optionally its Synapse labels 0..8. */
export interface GreySlice {
  h: number;
  w: number;
  image: Float32Array;
  label?: Int32Array | null;
}

export interface ModelInput {
  /** (1, inChans, S, S): the slice resized to the model's input (cubic, like SAM-LST) and replicated. */
  image: Tensor;
  /** (1, S/4, S/4) i32 loss target when the slice has labels (nearest resize), else null. */
  lowResLabels: Tensor | null;
  /** The S x S labels on the host (for display / metrics), or null. */
  label: Int32Array | null;
  /** The S x S image on the host (one channel). */
  hostImage: Float32Array;
}

/**
 * SAM-LST's preprocessing of one slice for `model`: zoom to S x S (image cubic spline, labels
 * nearest; skipped when already S x S), the low-res label at S/4, the image replicated to the
 * model's input channels. The caller disposes the returned tensors.
 */
export function prepareSlice(engine: Engine, model: SamLST | SamLstConfig, slice: GreySlice): ModelInput {
  const fn = 'prepareSlice';
  checkEngine(fn, engine);
  if (!(model instanceof SamLST || model instanceof SamLstConfig))
    badArg(fn, 'model', 'a SamLST model or a SamLstConfig', model);
  const cfg = model instanceof SamLstConfig ? model : model.cfg;
  if (!isPlainObject(slice)) badArg(fn, 'slice', 'an object {h, w, image, label?}', slice);
  const { h, w } = slice;
  checkInt(fn, 'slice.h', h, 1);
  checkInt(fn, 'slice.w', w, 1);
  const S = cfg.imgSize;
  checkTyped(fn, 'slice.image', slice.image, Float32Array);
  if (slice.image.length !== h * w)
    throw new ShapeError(
      `${fn}: image has ${slice.image.length} values, expected ${h}x${w} (slice.image must hold h x w = ${h * w} values)`,
    );
  checkAllFinite(fn, 'slice.image', slice.image, (i) => `row ${Math.floor(i / w)}, column ${i % w}`);
  let img: Float32Array;
  let label: Int32Array | null = null;
  let low: Int32Array | null = null;
  if (slice.label !== undefined && slice.label !== null) {
    checkTyped(fn, 'slice.label', slice.label, Int32Array);
    if (slice.label.length !== h * w)
      throw new ShapeError(
        `${fn}: label has ${slice.label.length} values, expected ${h}x${w} (slice.label must hold h x w = ${h * w} values)`,
      );
    const K = cfg.numClasses;
    const lab = slice.label;
    for (let i = 0; i < lab.length; i++)
      if (lab[i]! < 0 || lab[i]! > K)
        throw new LabelRangeError(
          `${fn}: slice.label must hold class ids 0..${K} (background 0 + the model's ${K} classes), ` +
            `got ${lab[i]} at row ${Math.floor(i / w)}, column ${i % w}`,
        );
    const a = applyAugmentation(slice.image, slice.label, h, w, { kind: 'none' }, S);
    img = a.image;
    label = a.label;
    low = a.lowResLabel;
  } else {
    img = h === S && w === S ? Float32Array.from(slice.image) : zoom2d(slice.image, h, w, S, S, 3);
  }
  const C = cfg.inChans;
  const chw = new Float32Array(C * S * S);
  for (let c = 0; c < C; c++) chw.set(img, c * S * S);
  const image = engine.tensor(chw, [1, C, S, S]);
  const lowResLabels = low ? engine.tensor(low, [1, S / 4, S / 4]) : null;
  return { image, lowResLabels, label, hostImage: img };
}

/**
 * Inference: eval mode (BatchNorm running statistics), no gradient. Returns the output tensors
 * (masks (B, numClasses + 1, S, S) logits, low-res logits, IoU predictions); the caller disposes
 * them. The work is recorded, not waited for: call `engine.flush()` before the app's own GPU
 * commands read `masks.buffer`, or `await masks.read()` for host values.
 */
export function segment(model: SamLST, image: Tensor): SamLstOutput {
  checkModel('segment', model);
  checkModelImage('segment', 'image', image, model);
  const wasTraining = model.training;
  model.eval();
  try {
    return noGrad(() => model.forward(image));
  } finally {
    if (wasTraining) model.train();
  }
}

/**
 * Display colours (sRGB, 0..255) of the Synapse classes, index = label id (0 background, 1
 * spleen, 2 right kidney, 3 left kidney, 4 gallbladder, 5 liver, 6 stomach, 7 aorta, 8 pancreas).
 */
export const ORGAN_COLORS: readonly (readonly [number, number, number])[] = [
  [0, 0, 0],
  [230, 25, 75],
  [60, 180, 75],
  [255, 225, 25],
  [0, 130, 200],
  [245, 130, 48],
  [145, 30, 180],
  [70, 240, 240],
  [240, 50, 230],
];

/** Per-pixel class ids (B, H, W) of mask logits (B, C, H, W): argmax over C, first maximum wins. */
export function argmaxClasses(logits: Float32Array, shape: readonly number[]): Int32Array {
  const fn = 'argmaxClasses';
  checkTyped(fn, 'logits', logits, Float32Array);
  if (
    !Array.isArray(shape) ||
    shape.length !== 4 ||
    shape.some((d) => typeof d !== 'number' || !Number.isInteger(d) || d < 1)
  )
    badArg(fn, 'shape', 'the logits shape (B, C, H, W) of 4 positive integers', shape);
  const [B, C, H, W] = shape as [number, number, number, number];
  if (logits.length !== B * C * H * W)
    throw new ShapeError(
      `${fn}: logits has ${logits.length} values, expected ${fmt(shape)} = ${B * C * H * W}`,
    );
  return argmaxChannels(logits, B, C, H * W);
}

/** A training step refused its update: the loss was NaN or Inf. */
export class TrainStepError extends Error {
  override name = 'TrainStepError';
  constructor(
    message: string,
    readonly step: number,
  ) {
    super(message);
  }
}

/** AdamW options (lr, betas, eps, weightDecay) over SAM-LST's defaults. */
export type TrainerOptions = AdamWOptions;

/**
 * SAM-LST training on one model: AdamW over the trainable parameters (SAM-LST's defaults:
 * betas 0.9/0.999, weight decay 0.1, unless overridden) and one step = train-mode forward,
 * 0.2 CE + 0.8 Dice on the low-res logits, backward, AdamW update.
 */
export class SamLstTrainer {
  readonly optimizer: AdamW;
  private steps = 0;

  constructor(
    readonly model: SamLST,
    opts: TrainerOptions = {},
  ) {
    checkModel('new SamLstTrainer', model);
    checkObject('new SamLstTrainer', 'options', opts, true);
    this.optimizer = new AdamW(
      model.trainableParameters().map(([name, tensor]) => ({ name, tensor })),
      { ...SAM_LST_ADAMW, ...opts },
    );
  }

  /** Steps taken so far. */
  get step(): number {
    return this.steps;
  }

  private checkStep(fn: string, image: unknown, lowResLabels: unknown, lr: unknown): void {
    const B = checkModelImage(fn, 'image', image, this.model);
    checkLowResLabels(fn, 'lowResLabels', lowResLabels, B, this.model);
    checkLr(fn, lr);
  }

  /**
   * One training step on a batch: `image` f32 (B, inChans, S, S), `lowResLabels` i32
   * (B, S/4, S/4) with class ids 0..numClasses. Returns the loss before the update (a [1] tensor
   * the caller disposes; nothing is read back). Because nothing is read back, label ids outside
   * 0..numClasses are not caught here: they make the loss and the update NaN. `trainStep` checks
   * them (and the loss) before it applies the update.
   */
  stepTensor(image: Tensor, lowResLabels: Tensor, lr?: number): Tensor {
    this.checkStep('SamLstTrainer.stepTensor', image, lowResLabels, lr);
    this.model.train();
    const loss = samLstTrainStep(
      this.model,
      this.optimizer,
      image,
      lowResLabels,
      lr === undefined ? {} : { lr },
    );
    this.steps++;
    return loss;
  }

  /**
   * The training step of `stepTensor`, with the loss and the label check read back before the
   * update: label ids outside 0..numClasses throw LabelRangeError and a NaN/Inf loss throws
   * TrainStepError, both naming the step and leaving the parameters and the optimizer state as
   * they were (BatchNorm running statistics have seen the batch). Returns the loss.
   */
  async trainStep(image: Tensor, lowResLabels: Tensor, lr?: number): Promise<number> {
    const fn = 'SamLstTrainer.trainStep';
    this.checkStep(fn, image, lowResLabels, lr);
    const { model, optimizer } = this;
    model.train();
    const r = tidy(() => {
      const out = model.forward(image);
      const l = ceDiceLoss(out.lowResLogits, lowResLabels, {
        lambda: 0.8,
        classes: model.cfg.numMaskTokens,
      });
      optimizer.zeroGrad();
      backward(l.total);
      return { total: l.total, bad: l.invalidLabels };
    });
    let loss: number;
    let bad: number;
    try {
      loss = (await r.total.readFloat())[0]!;
      bad = (await r.bad.readFloat())[0]!;
    } finally {
      r.total.dispose();
      r.bad.dispose();
    }
    const step = this.steps + 1;
    const K = model.cfg.numClasses;
    if (bad > 0) {
      optimizer.zeroGrad();
      throw new LabelRangeError(
        `${fn}: lowResLabels must hold class ids 0..${K} (background 0 + the model's ${K} classes), ` +
          `got ${bad} value(s) outside that range; the update of step ${step} was not applied`,
      );
    }
    if (!Number.isFinite(loss)) {
      optimizer.zeroGrad();
      throw new TrainStepError(
        `${fn}: the loss is ${loss} at step ${step}; the update was not applied (the weights are those after step ${step - 1})`,
        step,
      );
    }
    optimizer.step(lr);
    this.steps++;
    return loss;
  }

  /** Frees the optimizer state (the model is the caller's). */
  dispose(): void {
    this.optimizer.dispose();
  }
}
