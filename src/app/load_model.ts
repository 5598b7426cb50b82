/**
 * A SAM-LST model for evaluation / prediction from a checkpoint file, with its configuration
 * determined from the file (or flags) — never guessed silently.
 *
 * Checkpoint files (told apart by content, not by extension):
 *  - PyTorch `.pth` (zip or legacy pickle) holding a SAM-LST state_dict (the trainer's
 *    DataParallel 'module.' prefixes and the 'sam_encoder.' alias are handled by io/remap.ts;
 *    wrappers such as {'state_dict': ...} are unwrapped);
 *  - the engine's training checkpoint (src/train/checkpoint.ts, `__metadata__.format`
 *    'sam-lst-webgpu/train-checkpoint'): it stores the trainable tensors and the run's TrainConfig;
 *    the frozen weights are rebuilt exactly as the run built them (src/train/variant.ts buildModel:
 *    seed, --sam-checkpoint / --resnet-checkpoint, which must still be readable) and must hash to
 *    the checkpoint's `frozenHash`; the run's variant (lst, cnn-decoder, sam-decoder) is used;
 *  - the engine's state_dict export (format 'sam-lst-webgpu/state-dict', `config` = the TrainConfig)
 *    and any safetensors with `sam.*` / `CNN_encoder.*` tensors (other tensors, e.g. optimizer
 *    state, are ignored and reported); the config may sit in the `__metadata__` under `config`
 *    (JSON: a TrainConfig, or a model config in the oracle's `to_dict()` form / camelCase field
 *    names) or in a sidecar JSON file (`<file>.json` or `<file without .safetensors>.json`) with a
 *    `config` object.
 *
 * The configuration, in order: `config` option ('tiny', 'vitb', a SamLstConfig or a JSON file
 * path — a file with a `config` object such as test/fixtures/tiny_case.json, or the config object
 * itself); the config stored with the checkpoint (a different `config` option is an error); else a
 * preset (ViT-B or tiny) whose encoder width, depth, patch, prompt width and ResNet width match the
 * checkpoint's tensor shapes, with the input size and class count read from the shapes. The model
 * is then loaded strictly (every key, every shape), so any remaining mismatch is an error that
 * lists the keys.
 *
 * `imgSize` runs the model at another network size: `pos_embed` and the global-attention blocks'
 * relative-position tables are resized like SAM-LST's load_from (io/adapt.ts). Meant for quick
 * tests and previews; accuracy at a size the model was not trained at is not the paper's.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { Gpu } from '../gpu/device.js';
import { adaptSamStateDict } from '../io/adapt.js';
import { readPth } from '../io/pth.js';
import { detectCheckpointKind, remapCheckpoint } from '../io/remap.js';
import { decodeEntry, parseSafetensors } from '../io/safetensors.js';
import { SamLstConfig } from '../nn/config.js';
import { SamLST, type SamLstOutput } from '../nn/sam_lst.js';
import type { HostTensor } from '../tensor/host.js';
import type { Tensor } from '../tensor/tensor.js';
import {
  CHECKPOINT_FORMAT,
  checkpointModelKeys,
  frozenHash,
  readCheckpoint,
  STATE_DICT_FORMAT,
} from '../train/checkpoint.js';
import { VARIANTS, type TrainConfig, type Variant } from '../train/config.js';
import { buildModel, forwardVariant, usesEncoder } from '../train/variant.js';
import { modelPredictor, type SlicePredictor } from '../eval/inference.js';
import {
  ArgumentError,
  badArg,
  checkObject,
  checkString,
  describeValue,
  isPlainObject,
} from '../util/args.js';

export class CheckpointError extends Error {
  override name = 'CheckpointError';
}

export type CheckpointFormat = 'pth' | 'safetensors' | 'train-checkpoint';

export interface ModelCheckpoint {
  path: string;
  format: CheckpointFormat;
  /** Model tensors under engine names (sam.* / CNN_encoder.*). */
  tensors: Map<string, HostTensor>;
  /** The configuration stored with the checkpoint, if any. */
  config: SamLstConfig | null;
  /** Where `config` came from ('metadata', 'sidecar <path>'), or null. */
  configSource: string | null;
  /** The forward pass the model was trained with (engine checkpoints; 'lst' otherwise). */
  variant: Variant;
  /**
   * Training checkpoints only: the run's configuration and the hash of its frozen weights (the
   * tensors then hold only the trainable parameters and buffers).
   */
  train: { config: TrainConfig; frozenHash: string; step: number } | null;
  /** safetensors metadata (empty for .pth). */
  metadata: Record<string, string>;
  /** Things the caller should know (ignored tensors, unwrapping). */
  notes: string[];
}

export type ConfigArg = string | SamLstConfig;

export interface LoadModelOptions {
  /** 'tiny', 'vitb', a JSON file path, or a SamLstConfig (see the file comment). */
  config?: ConfigArg | null;
  /** Network size to run at (default: the checkpoint's). */
  imgSize?: number | null;
}

export interface LoadedModel {
  model: SamLST;
  config: SamLstConfig;
  variant: Variant;
  /** The model as a SlicePredictor with the checkpoint's variant forward (what eval / predict run). */
  predictor: SlicePredictor;
  checkpoint: Omit<ModelCheckpoint, 'tensors'>;
  /** How the config was chosen, e.g. "stored in the checkpoint metadata" or "preset vitb (inferred)". */
  configHow: string;
  notes: string[];
}

const MODEL_KEY = /^(module\.)*(sam|CNN_encoder|sam_encoder)\./;

// ------------------------------------------------------------------ argument checks

function checkGpu(fn: string, gpu: unknown): asserts gpu is Gpu {
  if (gpu instanceof Gpu) return;
  const hint =
    isPlainObject(gpu) && (gpu as { gpu?: unknown }).gpu instanceof Gpu
      ? ' (that is an Engine: pass engine.gpu)'
      : '';
  throw new ArgumentError(`${fn}: gpu must be a Gpu, got ${describeValue(gpu)}${hint}`);
}

function checkConfigArg(fn: string, arg: string, v: unknown): void {
  if (v === undefined || v === null || v instanceof SamLstConfig || (typeof v === 'string' && v !== ''))
    return;
  badArg(fn, arg, "'tiny', 'vitb', a JSON file path or a SamLstConfig", v);
}

function checkLoadOptions(fn: string, opts: unknown): asserts opts is LoadModelOptions {
  checkObject(fn, 'options', opts, true);
  const o = (opts ?? {}) as LoadModelOptions;
  checkConfigArg(fn, 'options.config', o.config);
  const S = o.imgSize;
  // (a multiple of the patch size: checked with the model's patch size in loadModelFromCheckpoint)
  if (S !== undefined && S !== null && !(typeof S === 'number' && Number.isInteger(S) && S >= 1))
    badArg(fn, 'options.imgSize', 'a positive integer (a multiple of the patch size), or null', S);
}

function checkModelCheckpoint(fn: string, ck: unknown): asserts ck is ModelCheckpoint {
  const c = ck as Partial<ModelCheckpoint> | null;
  if (!isPlainObject(c) || !(c.tensors instanceof Map) || typeof c.path !== 'string')
    badArg(fn, 'checkpoint', 'a readModelCheckpoint() result {path, tensors, config, ...}', ck);
}

function isSafetensors(b: Uint8Array): boolean {
  if (b.byteLength < 10) return false;
  const n = new DataView(b.buffer, b.byteOffset, 8).getBigUint64(0, true);
  return n > 1n && n <= BigInt(b.byteLength - 8) && b[8] === 0x7b; // '{'
}

function isPth(b: Uint8Array): boolean {
  // zip ('PK\x03\x04') or a pickle protocol 2+ opcode (legacy torch.save)
  return (b[0] === 0x50 && b[1] === 0x4b) || b[0] === 0x80;
}

function readFile(path: string, what: string): Uint8Array {
  if (!existsSync(path)) throw new CheckpointError(`${what} ${path}: file not found`);
  if (statSync(path).isDirectory()) throw new CheckpointError(`${what} ${path}: is a folder, not a file`);
  try {
    return new Uint8Array(readFileSync(path));
  } catch (e) {
    throw new CheckpointError(`${what} ${path}: cannot read (${(e as Error).message})`);
  }
}

function configFromObject(obj: unknown, source: string): SamLstConfig {
  if (typeof obj === 'string') {
    try {
      obj = JSON.parse(obj);
    } catch (e) {
      throw new CheckpointError(`${source}: config is not valid JSON (${(e as Error).message})`);
    }
  }
  if (obj === null || typeof obj !== 'object' || Array.isArray(obj))
    throw new CheckpointError(`${source}: config must be a JSON object`);
  return parseConfigObject(obj as Record<string, unknown>, source).config;
}

/** A model config, a {config: ...} wrapper, or a TrainConfig ({model, variant, ...}). */
function parseConfigObject(
  o: Record<string, unknown>,
  source: string,
): { config: SamLstConfig; variant: Variant | null } {
  let inner: unknown = o;
  let variant: Variant | null = null;
  if (o.config !== undefined && typeof o.config === 'object' && o.config !== null) inner = o.config;
  const io = inner as Record<string, unknown>;
  if (
    io.model !== undefined &&
    typeof io.model === 'object' &&
    io.model !== null &&
    ('variant' in io || 'preset' in io)
  ) {
    // a TrainConfig (src/train/config.ts): the model config is its `model`
    if (io.variant !== undefined) {
      if (!VARIANTS.includes(io.variant as Variant))
        throw new CheckpointError(
          `${source}: unknown variant ${JSON.stringify(io.variant)} (known: ${VARIANTS.join(', ')})`,
        );
      variant = io.variant as Variant;
    }
    inner = io.model;
  }
  try {
    return { config: SamLstConfig.fromJson(inner as Record<string, unknown>), variant };
  } catch (e) {
    throw new CheckpointError(`${source}: ${(e as Error).message}`);
  }
}

/** Reads a checkpoint file (.pth or safetensors) into engine-named model tensors (see file comment). */
export function readModelCheckpoint(path: string): ModelCheckpoint {
  checkString('readModelCheckpoint', 'path', path);
  const bytes = readFile(path, 'checkpoint');
  if (bytes.byteLength === 0) throw new CheckpointError(`checkpoint ${path}: file is empty`);
  const notes: string[] = [];
  if (isSafetensors(bytes)) {
    let fmt: string | undefined;
    try {
      fmt = parseSafetensors(bytes, path).metadata.format;
    } catch {
      fmt = undefined; // reported below
    }
    if (fmt === CHECKPOINT_FORMAT) return readTrainCheckpoint(path);
  }
  let raw: Map<string, HostTensor>;
  let format: CheckpointFormat;
  let metadata: Record<string, string> = {};
  if (isSafetensors(bytes)) {
    format = 'safetensors';
    let st;
    try {
      st = parseSafetensors(bytes, path);
    } catch (e) {
      throw new CheckpointError(`checkpoint ${path}: ${(e as Error).message}`);
    }
    metadata = st.metadata;
    raw = new Map();
    const ignored: string[] = [];
    for (const [k, e] of st.tensors) {
      if (!MODEL_KEY.test(k)) {
        ignored.push(k);
        continue;
      }
      const data = decodeEntry(e, `${path}: ${k}`);
      raw.set(k, { shape: [...e.shape], dtype: data instanceof Int32Array ? 'i32' : 'f32', data });
    }
    if (ignored.length)
      notes.push(
        `ignored ${ignored.length} non-model tensors (${ignored.slice(0, 3).join(', ')}${ignored.length > 3 ? ', ...' : ''})`,
      );
  } else if (isPth(bytes)) {
    format = 'pth';
    try {
      raw = readPth(bytes, path, { unwrap: true });
    } catch (e) {
      throw new CheckpointError(`checkpoint ${path}: ${(e as Error).message}`);
    }
  } else {
    throw new CheckpointError(
      `checkpoint ${path}: not a PyTorch .pth (zip or pickle) nor a safetensors file (first bytes ${[
        ...bytes.subarray(0, 4),
      ]
        .map((b) => b.toString(16).padStart(2, '0'))
        .join(' ')})`,
    );
  }
  if (raw.size === 0 && format === 'safetensors') {
    // nothing under sam.* / CNN_encoder.*: say what the file is, if it is a known kind
    const all = [...parseSafetensors(bytes, path).tensors.keys()];
    raw = new Map(all.map((k) => [k, { shape: [], dtype: 'f32', data: new Float32Array(0) }]));
  }
  if (raw.size === 0) throw new CheckpointError(`checkpoint ${path}: holds no model tensors`);
  let kind;
  try {
    kind = detectCheckpointKind(raw.keys());
  } catch (e) {
    throw new CheckpointError(`checkpoint ${path}: ${(e as Error).message}`);
  }
  if (kind === 'sam-official')
    throw new CheckpointError(
      `checkpoint ${path} is an official SAM checkpoint (image_encoder.* / mask_decoder.* keys), not a ` +
        'trained SAM-LST model; train one first (npm run train) or pass a SAM-LST checkpoint',
    );
  if (kind === 'resnet18')
    throw new CheckpointError(
      `checkpoint ${path} is a torchvision ResNet18 checkpoint, not a trained SAM-LST model`,
    );
  const remapped = remapCheckpoint(raw, 'sam-lst', path);
  if (remapped.skipped.length)
    notes.push(
      `skipped ${remapped.skipped.length} 'sam_encoder.*' alias tensors (same as sam.image_encoder)`,
    );

  // stored config: safetensors metadata, then a sidecar JSON
  let config: SamLstConfig | null = null;
  let configSource: string | null = null;
  let variant: Variant = 'lst';
  const metaCfg = metadata.config ?? metadata.model_config;
  if (metaCfg !== undefined) {
    let obj: unknown;
    try {
      obj = JSON.parse(metaCfg);
    } catch (e) {
      throw new CheckpointError(
        `checkpoint ${path} metadata: config is not valid JSON (${(e as Error).message})`,
      );
    }
    if (obj === null || typeof obj !== 'object' || Array.isArray(obj))
      throw new CheckpointError(`checkpoint ${path} metadata: config must be a JSON object`);
    const r = parseConfigObject(obj as Record<string, unknown>, `checkpoint ${path} metadata`);
    config = r.config;
    variant = r.variant ?? 'lst';
    configSource =
      metadata.format === STATE_DICT_FORMAT ? 'the state_dict export metadata' : 'the checkpoint metadata';
  } else if (format === 'safetensors') {
    const cands = [`${path}.json`, path.replace(/\.safetensors$/, '.json')].filter((p) => p !== path);
    for (const p of cands) {
      if (!existsSync(p)) continue;
      let obj: unknown;
      try {
        obj = JSON.parse(readFileSync(p, 'utf8'));
      } catch (e) {
        throw new CheckpointError(`checkpoint sidecar ${p}: not valid JSON (${(e as Error).message})`);
      }
      if (obj && typeof obj === 'object' && 'config' in obj) {
        config = configFromObject((obj as { config: unknown }).config, `checkpoint sidecar ${p}`);
        configSource = `sidecar ${p}`;
        break;
      }
    }
  }
  return { path, format, tensors: remapped.map, config, configSource, variant, train: null, metadata, notes };
}

/** A training checkpoint via src/train/checkpoint.ts (checksum verified). */
function readTrainCheckpoint(path: string): ModelCheckpoint {
  let ck;
  try {
    ck = readCheckpoint(path);
  } catch (e) {
    throw new CheckpointError(`checkpoint ${(e as Error).message}`);
  }
  const tc = ck.meta.config;
  const r = parseConfigObject(
    tc as unknown as Record<string, unknown>,
    `checkpoint ${path} (training config)`,
  );
  const notes = [
    `training checkpoint at step ${ck.meta.state.step} (epoch ${ck.meta.state.epoch}); variant ${r.variant ?? 'lst'}`,
  ];
  return {
    path,
    format: 'train-checkpoint',
    tensors: ck.model,
    config: r.config,
    configSource: 'the training checkpoint',
    variant: r.variant ?? 'lst',
    train: { config: tc, frozenHash: ck.meta.frozenHash, step: ck.meta.state.step },
    metadata: {},
    notes,
  };
}

/** Shapes that identify the architecture, read from the checkpoint. */
interface ShapeSignature {
  grid: number;
  encDim: number;
  patchSize: number;
  encDepth: number;
  promptDim: number;
  cnnWidth: number;
  numClasses: number;
}

function signature(ck: Pick<ModelCheckpoint, 'tensors' | 'path'>): ShapeSignature {
  const get = (k: string): number[] => {
    const t = ck.tensors.get(k);
    if (!t) throw new CheckpointError(`checkpoint ${ck.path}: no '${k}' tensor`);
    return t.shape;
  };
  const pe = get('sam.image_encoder.pos_embed');
  if (pe.length !== 4 || pe[1] !== pe[2])
    throw new CheckpointError(
      `checkpoint ${ck.path}: sam.image_encoder.pos_embed has shape [${pe.join(', ')}], expected (1, G, G, C)`,
    );
  let depth = 0;
  while (ck.tensors.has(`sam.image_encoder.blocks.${depth}.norm1.weight`)) depth++;
  return {
    grid: pe[1]!,
    encDim: pe[3]!,
    patchSize: get('sam.image_encoder.patch_embed.proj.weight')[2]!,
    encDepth: depth,
    promptDim: get('sam.image_encoder.neck.0.weight')[0]!,
    cnnWidth: get('CNN_encoder.conv1.weight')[0]!,
    numClasses: get('sam.mask_decoder.mask_tokens.weight')[0]! - 1,
  };
}

const PRESETS: Record<string, () => SamLstConfig> = {
  vitb: () => SamLstConfig.vitB(),
  tiny: () => SamLstConfig.tiny(),
};

function presetName(arg: string): string | null {
  const k = arg.toLowerCase().replace(/[-_]/g, '');
  return k in PRESETS ? k : null;
}

/** A preset with the checkpoint's input size and class count. */
function presetFor(name: string, sig: ShapeSignature): SamLstConfig {
  const p = PRESETS[name]!();
  return p.with({ imgSize: sig.grid * p.patchSize, numClasses: sig.numClasses });
}

function matchesPreset(p: SamLstConfig, s: ShapeSignature): boolean {
  return (
    p.encDim === s.encDim &&
    p.patchSize === s.patchSize &&
    p.encDepth === s.encDepth &&
    p.promptDim === s.promptDim &&
    p.cnnWidth === s.cnnWidth
  );
}

function configDiff(a: SamLstConfig, b: SamLstConfig): string[] {
  const ja = a.toJson();
  const jb = b.toJson();
  return Object.keys(ja)
    .filter((k) => JSON.stringify(ja[k]) !== JSON.stringify(jb[k]))
    .map((k) => `${k} ${JSON.stringify(ja[k])} vs ${JSON.stringify(jb[k])}`);
}

/** The model configuration for a checkpoint (see the file comment) and how it was chosen. */
export function resolveModelConfig(
  ck: Pick<ModelCheckpoint, 'tensors' | 'path' | 'config' | 'configSource'>,
  arg?: ConfigArg | null,
  withShapes = true,
): { config: SamLstConfig; how: string } {
  checkModelCheckpoint('resolveModelConfig', ck);
  checkConfigArg('resolveModelConfig', 'config', arg);
  const sig: ShapeSignature | null = withShapes ? signature(ck) : null;
  let given: SamLstConfig | null = null;
  let how = '';
  if (arg instanceof SamLstConfig) {
    given = arg;
    how = 'given';
  } else if (typeof arg === 'string' && arg !== '') {
    const preset = presetName(arg);
    if (preset) {
      given = sig ? presetFor(preset, sig) : PRESETS[preset]!();
      how = `preset ${preset} (--config ${arg})`;
    } else {
      const bytes = readFile(arg, '--config');
      let obj: unknown;
      try {
        obj = JSON.parse(new TextDecoder().decode(bytes));
      } catch (e) {
        throw new CheckpointError(
          `--config ${arg}: not valid JSON and not a preset (tiny, vitb): ${(e as Error).message}`,
        );
      }
      given = configFromObject(obj, `--config ${arg}`);
      how = `--config ${arg}`;
    }
  }
  if (given && ck.config) {
    const diff = configDiff(given, ck.config);
    if (diff.length)
      throw new CheckpointError(
        `config mismatch: ${how} differs from the config stored in ${ck.configSource ?? 'the checkpoint'} ` +
          `(${diff.join('; ')}); drop --config to use the stored one`,
      );
  }
  if (given) return { config: given, how };
  if (ck.config) return { config: ck.config, how: `stored in ${ck.configSource ?? 'the checkpoint'}` };
  if (!sig) throw new CheckpointError(`checkpoint ${ck.path}: no model configuration`);
  for (const name of Object.keys(PRESETS)) {
    const p = presetFor(name, sig);
    if (matchesPreset(p, sig)) return { config: p, how: `preset ${name} (inferred from the tensor shapes)` };
  }
  throw new CheckpointError(
    `checkpoint ${ck.path}: cannot determine the model configuration: no config is stored with it and ` +
      `its shapes (encoder width ${sig.encDim}, depth ${sig.encDepth}, patch ${sig.patchSize}, prompt width ` +
      `${sig.promptDim}, ResNet width ${sig.cnnWidth}, grid ${sig.grid}, ${sig.numClasses} classes) match no ` +
      'preset (vitb, tiny); pass --config <file.json> with the model config',
  );
}

/**
 * Tensors adapted to another network size: pos_embed and the global blocks' rel-pos tables
 * resized (io/adapt.ts); everything else unchanged.
 */
export function adaptToImgSize(
  tensors: ReadonlyMap<string, HostTensor>,
  cfg: SamLstConfig,
  source: string,
): { tensors: Map<string, HostTensor>; resized: string[] } {
  if (!(tensors instanceof Map)) badArg('adaptToImgSize', 'tensors', 'a Map of host tensors', tensors);
  if (!(cfg instanceof SamLstConfig)) badArg('adaptToImgSize', 'cfg', 'a SamLstConfig', cfg);
  checkString('adaptToImgSize', 'source', source);
  let adapted;
  try {
    adapted = adaptSamStateDict(
      tensors,
      { imgSize: cfg.imgSize, patchSize: cfg.patchSize, globalAttnIndexes: cfg.globalAttnIndexes },
      { prefix: 'sam.', source },
    );
  } catch (e) {
    throw new CheckpointError((e as Error).message);
  }
  const out = new Map(tensors);
  for (const k of adapted.resized) out.set(k, adapted.map.get(k)!);
  return { tensors: out, resized: adapted.resized };
}

/** The forward pass of a variant (model.forward for lst). */
export function variantForward(v: Variant): ((m: SamLST, x: Tensor) => SamLstOutput) | undefined {
  if (!VARIANTS.includes(v)) badArg('variantForward', 'variant', VARIANTS.map((x) => `'${x}'`).join(', '), v);
  if (v === 'lst') return undefined;
  return (m, x) => forwardVariant(m, v, x, usesEncoder(v) ? m.encode(x) : null);
}

function loaded(
  model: SamLST,
  config: SamLstConfig,
  ck: ModelCheckpoint,
  how: string,
  notes: string[],
): LoadedModel {
  model.eval();
  const { tensors: _t, ...meta } = ck;
  return {
    model,
    config,
    variant: ck.variant,
    predictor: modelPredictor(model, variantForward(ck.variant)),
    checkpoint: meta,
    configHow: how,
    notes,
  };
}

/** Training checkpoint: rebuild the run's model, check the frozen weights, load the trained tensors. */
async function loadTrainCheckpoint(
  gpu: Gpu,
  ck: ModelCheckpoint,
  opts: LoadModelOptions,
): Promise<LoadedModel> {
  const run = ck.train!;
  const cfg = ck.config!;
  if (opts.config != null) {
    const { config: given, how } = resolveModelConfig(
      { ...ck, config: null, configSource: null },
      opts.config,
      false,
    );
    const diff = configDiff(given, cfg);
    if (diff.length)
      throw new CheckpointError(
        `config mismatch: ${how} differs from the config stored in training checkpoint ${ck.path} (${diff.join('; ')}); drop --config`,
      );
  }
  if (opts.imgSize != null && opts.imgSize !== cfg.imgSize)
    throw new CheckpointError(
      `--img-size ${opts.imgSize}: training checkpoint ${ck.path} rebuilds its frozen weights at the run's size ` +
        `${cfg.imgSize}; export its state_dict (npm run train -- --resume ${ck.path} --export-state-dict F) to run at another size`,
    );
  let built;
  try {
    built = buildModel(gpu, run.config);
  } catch (e) {
    throw new CheckpointError(
      `training checkpoint ${ck.path}: cannot rebuild the run's frozen weights: ${(e as Error).message}`,
    );
  }
  const model = built.model;
  try {
    const fh = await frozenHash(model);
    if (fh !== run.frozenHash)
      throw new CheckpointError(
        `training checkpoint ${ck.path}: the rebuilt frozen weights differ from the run's (hash ${fh.slice(0, 12)} != ` +
          `${run.frozenHash.slice(0, 12)}): is the run's --sam-checkpoint (${run.config.samCheckpoint ?? 'none'}) the same file?`,
      );
    const want = checkpointModelKeys(model);
    const missing = want.filter((k) => !ck.tensors.has(k));
    const extra = [...ck.tensors.keys()].filter((k) => !want.includes(k));
    if (missing.length || extra.length)
      throw new CheckpointError(
        `training checkpoint ${ck.path} does not match the rebuilt model` +
          (missing.length ? `; missing ${missing.slice(0, 5).join(', ')}` : '') +
          (extra.length ? `; unexpected ${extra.slice(0, 5).join(', ')}` : ''),
      );
    const report = model.loadStateDict(ck.tensors, { strict: false, source: ck.path });
    if (report.wrongShape.length)
      throw new CheckpointError(
        `training checkpoint ${ck.path}: wrong shapes: ${report.wrongShape.map((w) => w.key).join(', ')}`,
      );
  } catch (e) {
    model.dispose();
    throw e;
  }
  return loaded(model, cfg, ck, 'stored in the training checkpoint', [...ck.notes, ...built.notes]);
}

/** A SamLST model built for the checkpoint's configuration with its weights (strict). */
export async function loadModelFromCheckpoint(
  gpu: Gpu,
  ck: ModelCheckpoint,
  opts: LoadModelOptions = {},
): Promise<LoadedModel> {
  checkGpu('loadModelFromCheckpoint', gpu);
  checkModelCheckpoint('loadModelFromCheckpoint', ck);
  checkLoadOptions('loadModelFromCheckpoint', opts);
  if (ck.train) return loadTrainCheckpoint(gpu, ck, opts);
  const { config: base, how } = resolveModelConfig(ck, opts.config);
  const notes = [...ck.notes];
  let cfg = base;
  let tensors: ReadonlyMap<string, HostTensor> = ck.tensors;
  const sig = signature(ck);
  if (!matchesPreset(base, sig) || base.numClasses !== sig.numClasses) {
    const have = `encoder width ${sig.encDim}, depth ${sig.encDepth}, patch ${sig.patchSize}, prompt width ${sig.promptDim}, ResNet width ${sig.cnnWidth}, ${sig.numClasses} classes`;
    const want = `encoder width ${base.encDim}, depth ${base.encDepth}, patch ${base.patchSize}, prompt width ${base.promptDim}, ResNet width ${base.cnnWidth}, ${base.numClasses} classes`;
    throw new CheckpointError(
      `config mismatch: ${how} describes a model with ${want}, but checkpoint ${ck.path} has ${have}`,
    );
  }
  if (sig.grid * base.patchSize !== base.imgSize)
    throw new CheckpointError(
      `config mismatch: ${how} has img_size ${base.imgSize} but checkpoint ${ck.path} was saved at ` +
        `${sig.grid * base.patchSize} (pos_embed grid ${sig.grid}); use --img-size to run at another size`,
    );
  if (opts.imgSize != null && opts.imgSize !== base.imgSize) {
    const S = opts.imgSize;
    if (!Number.isInteger(S) || S < base.patchSize || S % base.patchSize !== 0)
      throw new CheckpointError(
        `--img-size ${S}: must be a positive multiple of the patch size ${base.patchSize}`,
      );
    cfg = base.with({ imgSize: S });
    const r = adaptToImgSize(ck.tensors, cfg, ck.path);
    tensors = r.tensors;
    notes.push(
      `running at network size ${S} instead of ${base.imgSize}: resized ${r.resized.length} position tensors`,
    );
  }
  const model = new SamLST(gpu, cfg, { init: 'none' });
  try {
    model.loadCheckpoint(tensors, ck.path);
  } catch (e) {
    model.dispose();
    throw new CheckpointError(
      `checkpoint ${ck.path} does not match the model config (${how}): ${(e as Error).message}`,
    );
  }
  return loaded(model, cfg, ck, how, notes);
}

/** readModelCheckpoint + loadModelFromCheckpoint. */
export async function loadModel(gpu: Gpu, path: string, opts: LoadModelOptions = {}): Promise<LoadedModel> {
  checkGpu('loadModel', gpu);
  checkString('loadModel', 'path', path);
  checkLoadOptions('loadModel', opts);
  return loadModelFromCheckpoint(gpu, readModelCheckpoint(path), opts);
}
