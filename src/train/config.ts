/**
 * Training configuration: the fields of one run, the two presets, and the command-line parser
 * behind `npm run train` (src/cli/train.ts only calls `parseTrainArgs` and `train`).
 *
 * Presets
 *  - 'default': sized so that `npm run train -- --backend=dawn` (built-in phantom data) ends in
 *    about 5 minutes on a 2-core CPU with lavapipe: input 128, a reduced ViT (dim 192, depth 4,
 *    3 heads, window 4, global blocks 1 and 3), ResNet18 at width 32 (layer3 = 128 channels = the
 *    decoder width; the mask features are then 128/8 = 16-dim), decoder MLP 256, batch 8, 5 epochs of
 *    the 432 phantom slices (270 steps), warm-up 20 steps, base lr 3e-3; everything else as the paper
 *    (AdamW betas .9/.999 wd 0.1, poly 0.9, λ 0.8, the paper's augmentation). The lr is 3x the
 *    paper's because the run is 270 steps instead of 18,600: measured on the phantom (4 of its test
 *    volumes), lr 1e-3 reaches a mean DSC of 0.24 after 216 steps and 0.29 after 324, lr 3e-3 0.53
 *    after 270. Width 16 (8-dim mask features against the 9 frozen random hypernetwork vectors)
 *    learned far slower (0.07 after 216 steps at lr 3e-3). SAM weights are random unless
 *    --sam-checkpoint is given.
 *  - 'paper' (spec §11): ViT-B/16 at 512, ResNet18 width 64, batch 24, 200 epochs, lr 1e-3,
 *    warm-up 250, AdamW wd 0.1, λ 0.8, seed 1234.
 * Flags given after the preset override its fields.
 */
import { resolve } from 'node:path';
import { LABEL_MAPS } from '../data/labels.js';
import { SamLstConfig, type SamLstConfigFields } from '../nn/config.js';
import { SAM_LST_ADAMW } from '../optim/adamw.js';
import type { CacheDType } from './embed_cache.js';

export type Variant = 'lst' | 'cnn-decoder' | 'sam-decoder';
export type PresetName = 'default' | 'paper';
export type AugmentMode = 'paper' | 'none';

export const VARIANTS: readonly Variant[] = ['lst', 'cnn-decoder', 'sam-decoder'];

/** Sizes of the built-in phantom dataset (src/data/phantom.ts); train and test seeds are disjoint. */
export interface PhantomSpec {
  trainCases: number;
  slicesPerCase: number;
  /** training slice side (the paper's training slices are 224) */
  size: number;
  testCases: number;
  /** test volume in-plane side and depth */
  testSize: number;
  depth: number;
}

/** Everything that defines a run (stored in every checkpoint; JSON-serialisable). */
export interface TrainConfig {
  preset: PresetName;
  /** 'phantom' (built-in) or a dataset folder (Synapse / NIfTI pairs / PNG demo). */
  data: string;
  /** Label map for NIfTI folders (synapse | totalsegmentator | btcv); null: labels are Synapse ids. */
  labelMap: string | null;
  phantom: PhantomSpec;
  /** SamLstConfig in the oracle's to_dict() form. */
  model: Record<string, unknown>;
  variant: Variant;
  batchSize: number;
  epochs: number;
  /** Stop after this many optimizer steps in total (null: run all epochs). Does not change the lr schedule. */
  maxSteps: number | null;
  lr: number;
  /** Linear warm-up iterations (0: no warm-up, the trainer's poly-only branch). */
  warmupPeriod: number;
  weightDecay: number;
  betas: [number, number];
  eps: number;
  /** λ: loss = (1 − λ) CE + λ Dice. */
  diceWeight: number;
  seed: number;
  augment: AugmentMode;
  samCheckpoint: string | null;
  resnetCheckpoint: string | null;
  /** Run folder. */
  out: string;
  /** Disk level of the encoder-embedding cache (null: memory only). */
  cacheDir: string | null;
  cacheDtype: CacheDType;
  cacheMemMb: number;
  /** Validate every N epochs (0: only before and after training). */
  valEvery: number;
  /** Use at most this many test volumes for validation (0: all). */
  valCases: number;
  /** Evaluate the untrained model before training. */
  evalBefore: boolean;
  /** Slices per validation volume rendered as PNG overlays at the end (0: none). */
  overlays: number;
}

export class TrainConfigError extends Error {
  override name = 'TrainConfigError';
}

const DEFAULT_MODEL: Partial<SamLstConfigFields> = {
  imgSize: 128,
  encDim: 192,
  encDepth: 4,
  encHeads: 3,
  windowSize: 4,
  globalAttnIndexes: [1, 3],
  promptDim: 128,
  cnnWidth: 32,
  decHeads: 8,
  decMlpDim: 256,
  iouHeadHidden: 128,
  maskInChans: 16,
  numClasses: 8,
};

const PHANTOM: PhantomSpec = {
  trainCases: 18,
  slicesPerCase: 24,
  size: 224,
  testCases: 4,
  testSize: 224,
  depth: 24,
};

function base(): Omit<TrainConfig, 'preset' | 'model' | 'batchSize' | 'epochs' | 'warmupPeriod' | 'seed'> {
  return {
    data: 'phantom',
    labelMap: null,
    phantom: { ...PHANTOM },
    variant: 'lst',
    maxSteps: null,
    // spec §11: AdamW (SAM_LST_ADAMW: betas .9/.999, eps 1e-8, wd 0.1), base lr 1e-3
    lr: SAM_LST_ADAMW.lr,
    weightDecay: SAM_LST_ADAMW.weightDecay,
    betas: [SAM_LST_ADAMW.betas[0], SAM_LST_ADAMW.betas[1]],
    eps: SAM_LST_ADAMW.eps,
    diceWeight: 0.8,
    augment: 'paper',
    samCheckpoint: null,
    resnetCheckpoint: null,
    out: defaultOutDir(),
    cacheDir: null,
    cacheDtype: 'f32',
    cacheMemMb: 512,
    valEvery: 1,
    valCases: 0,
    evalBefore: true,
    overlays: 1,
  };
}

export function defaultOutDir(now = new Date()): string {
  const p = (n: number) => String(n).padStart(2, '0');
  const stamp = `${now.getFullYear()}${p(now.getMonth() + 1)}${p(now.getDate())}-${p(now.getHours())}${p(now.getMinutes())}${p(now.getSeconds())}`;
  return resolve('runs', stamp);
}

/** The preset's full configuration. */
export function presetConfig(name: PresetName): TrainConfig {
  if (name === 'paper')
    return {
      ...base(),
      preset: 'paper',
      model: SamLstConfig.vitB(512, 8).toJson(),
      batchSize: 24,
      epochs: 200,
      warmupPeriod: 250,
      seed: 1234,
      // The paper trains on the 2211 Synapse slices; a validation pass of 12 512x512 volumes
      // costs far more than an epoch on a CPU adapter, so the preset validates every 10 epochs.
      valEvery: 10,
      // On the built-in phantom: Synapse-sized (18 training cases x 123 slices of 224 ~ the 2211
      // training slices; 12 test volumes of 512x512)
      phantom: { trainCases: 18, slicesPerCase: 123, size: 224, testCases: 12, testSize: 512, depth: 48 },
      cacheDtype: 'f16',
      cacheMemMb: 4096,
    };
  if (name === 'default')
    return {
      ...base(),
      preset: 'default',
      model: new SamLstConfig(DEFAULT_MODEL).toJson(),
      batchSize: 8,
      epochs: 5,
      warmupPeriod: 20,
      lr: 3e-3,
      seed: 1234,
    };
  throw new TrainConfigError(`unknown preset '${String(name)}' (known: default, paper)`);
}

/** The model configuration of a run. */
export function modelConfig(c: TrainConfig): SamLstConfig {
  return SamLstConfig.fromJson(c.model);
}

/** Checks every field; throws TrainConfigError naming the field (and flag) and the value. */
export function validateConfig(c: TrainConfig): void {
  const fail = (flag: string, m: string): never => {
    throw new TrainConfigError(`${flag}: ${m}`);
  };
  const posInt = (flag: string, v: number) => {
    if (!Number.isInteger(v) || v < 1) fail(flag, `must be a positive integer, got ${v}`);
  };
  posInt('--batch-size', c.batchSize);
  posInt('--epochs', c.epochs);
  if (c.maxSteps !== null) posInt('--max-steps', c.maxSteps);
  if (!(Number.isFinite(c.lr) && c.lr > 0)) fail('--lr', `must be a finite number > 0, got ${c.lr}`);
  if (!Number.isInteger(c.warmupPeriod) || c.warmupPeriod < 0)
    fail('--warmup', `must be an integer >= 0, got ${c.warmupPeriod}`);
  if (!(Number.isFinite(c.weightDecay) && c.weightDecay >= 0))
    fail('--weight-decay', `must be a finite number >= 0, got ${c.weightDecay}`);
  if (!(c.diceWeight >= 0 && c.diceWeight <= 1))
    fail('--dice-weight', `must be in [0, 1], got ${c.diceWeight}`);
  if (!Number.isInteger(c.seed) || c.seed < 0 || c.seed > 0xffffffff)
    fail('--seed', `must be an integer in 0..4294967295, got ${c.seed}`);
  if (!VARIANTS.includes(c.variant)) fail('--variant', `unknown '${c.variant}' (use ${VARIANTS.join(', ')})`);
  if (c.augment !== 'paper' && c.augment !== 'none')
    fail('--augment', `unknown '${String(c.augment)}' (use paper or none)`);
  if (c.cacheDtype !== 'f32' && c.cacheDtype !== 'f16')
    fail('--cache-dtype', `unknown '${String(c.cacheDtype)}' (use f32 or f16)`);
  if (!(Number.isFinite(c.cacheMemMb) && c.cacheMemMb >= 0))
    fail('--cache-mem', `must be a number of MiB >= 0, got ${c.cacheMemMb}`);
  if (!Number.isInteger(c.valEvery) || c.valEvery < 0)
    fail('--val-every', `must be an integer >= 0, got ${c.valEvery}`);
  if (!Number.isInteger(c.valCases) || c.valCases < 0)
    fail('--val-cases', `must be an integer >= 0, got ${c.valCases}`);
  if (!Number.isInteger(c.overlays) || c.overlays < 0)
    fail('--overlays', `must be an integer >= 0, got ${c.overlays}`);
  if (c.labelMap !== null && !(c.labelMap in LABEL_MAPS))
    fail('--label-map', `unknown '${c.labelMap}' (known: ${Object.keys(LABEL_MAPS).join(', ')})`);
  let m: SamLstConfig;
  try {
    m = modelConfig(c);
  } catch (e) {
    return fail(c.model.img_size !== undefined ? '--img-size' : 'model', (e as Error).message);
  }
  if (m.patchSize !== 16)
    fail('model', `patch size ${m.patchSize}: SAM-LST fuses with the ResNet's stride-16 features (use 16)`);
  if (m.imgSize % 16 !== 0) fail('--img-size', `must be a multiple of 16, got ${m.imgSize}`);
}

// ------------------------------------------------------------------------------ arguments

export interface ParsedArgs {
  action: 'train' | 'help' | 'export';
  config: TrainConfig;
  /** Flags the user gave (by long name without dashes), for --resume conflict checks. */
  given: Set<string>;
  backend: string;
  resume: string | null;
  /** --export-state-dict OUT: write the PyTorch-style state_dict of --resume's checkpoint and exit. */
  exportStateDict: string | null;
  quiet: boolean;
}

interface FlagSpec {
  value: 'none' | 'string' | 'int' | 'number' | 'bool';
  help: string;
  apply?: (c: TrainConfig, v: string | number | boolean) => void;
}

const num = (v: string | number | boolean) => v as number;
const str = (v: string | number | boolean) => v as string;

function setModel(c: TrainConfig, fields: Partial<SamLstConfigFields>): void {
  c.model = new SamLstConfig({ ...SamLstConfig.fromJson(c.model), ...fields }).toJson();
}

export const FLAGS: Readonly<Record<string, FlagSpec>> = {
  backend: { value: 'string', help: 'WebGPU backend: dawn (Node, default)' },
  preset: { value: 'string', help: 'default | paper (ViT-B, 512, batch 24, 200 epochs, warm-up 250)' },
  data: {
    value: 'string',
    help: 'dataset folder (Synapse train_npz/test_vol_h5, NIfTI pairs, PNG images/+masks/) or phantom[:seed] (default)',
    apply: (c, v) => (c.data = str(v)),
  },
  'label-map': {
    value: 'string',
    help: 'label ids of NIfTI data: synapse | totalsegmentator | btcv',
    apply: (c, v) => (c.labelMap = str(v)),
  },
  'sam-checkpoint': {
    value: 'string',
    help: 'official SAM checkpoint (sam_vit_b_01ec64.pth), adapted to the input size',
    apply: (c, v) => (c.samCheckpoint = resolve(str(v))),
  },
  'resnet-checkpoint': {
    value: 'string',
    help: 'torchvision resnet18 checkpoint (resnet18-f37072fd.pth)',
    apply: (c, v) => (c.resnetCheckpoint = resolve(str(v))),
  },
  'img-size': {
    value: 'int',
    help: 'network input side S (multiple of 16)',
    apply: (c, v) => {
      if (!Number.isInteger(v) || num(v) < 16 || num(v) % 16 !== 0)
        throw new TrainConfigError(`--img-size: must be a positive multiple of 16, got ${String(v)}`);
      setModel(c, { imgSize: num(v) });
    },
  },
  'batch-size': { value: 'int', help: 'images per step', apply: (c, v) => (c.batchSize = num(v)) },
  epochs: {
    value: 'int',
    help: 'epochs (sets the lr schedule length)',
    apply: (c, v) => (c.epochs = num(v)),
  },
  'max-steps': {
    value: 'int',
    help: 'stop after this many steps in total (the schedule still spans --epochs)',
    apply: (c, v) => (c.maxSteps = num(v)),
  },
  lr: { value: 'number', help: 'base learning rate', apply: (c, v) => (c.lr = num(v)) },
  warmup: {
    value: 'int',
    help: 'warm-up iterations (0: none)',
    apply: (c, v) => (c.warmupPeriod = num(v)),
  },
  'weight-decay': { value: 'number', help: 'AdamW weight decay', apply: (c, v) => (c.weightDecay = num(v)) },
  'dice-weight': {
    value: 'number',
    help: 'λ in (1-λ)·CE + λ·Dice',
    apply: (c, v) => (c.diceWeight = num(v)),
  },
  seed: {
    value: 'int',
    help: 'seed of the initialisation, data order and augmentation',
    apply: (c, v) => (c.seed = num(v)),
  },
  variant: {
    value: 'string',
    help: 'lst (learnable gate) | cnn-decoder (side network only) | sam-decoder (frozen SAM embedding only)',
    apply: (c, v) => (c.variant = str(v) as Variant),
  },
  augment: {
    value: 'string',
    help: "paper (RandomGenerator's 49 variants with its probabilities) | none",
    apply: (c, v) => (c.augment = str(v) as AugmentMode),
  },
  out: {
    value: 'string',
    help: 'run folder (default runs/<date-time>)',
    apply: (c, v) => (c.out = resolve(str(v))),
  },
  resume: { value: 'string', help: 'continue the run of a checkpoint file or run folder' },
  'cache-dir': {
    value: 'string',
    help: 'disk cache of frozen-encoder embeddings (default: memory only)',
    apply: (c, v) => (c.cacheDir = resolve(str(v))),
  },
  'cache-dtype': {
    value: 'string',
    help: 'embedding cache precision: f32 | f16',
    apply: (c, v) => (c.cacheDtype = str(v) as CacheDType),
  },
  'cache-mem': {
    value: 'number',
    help: 'memory cap of the embedding cache, MiB',
    apply: (c, v) => (c.cacheMemMb = num(v)),
  },
  'val-every': {
    value: 'int',
    help: 'validate every N epochs (0: only before and after)',
    apply: (c, v) => (c.valEvery = num(v)),
  },
  'val-cases': {
    value: 'int',
    help: 'validate on at most N test volumes (0: all)',
    apply: (c, v) => (c.valCases = num(v)),
  },
  'no-eval-before': {
    value: 'none',
    help: 'skip the evaluation of the untrained model',
    apply: (c) => (c.evalBefore = false),
  },
  overlays: {
    value: 'int',
    help: 'slices per validation volume rendered as PNG overlays (ground truth | prediction), 0: none',
    apply: (c, v) => (c.overlays = num(v)),
  },
  'export-state-dict': {
    value: 'string',
    help: "with --resume: write the checkpoint's PyTorch-style state_dict (safetensors) and exit",
  },
  quiet: { value: 'none', help: 'no progress bar or per-step lines' },
  help: { value: 'none', help: 'this text' },
};

/** Flags that may differ from the checkpoint's configuration on --resume. */
export const RESUME_OVERRIDABLE = new Set([
  'backend',
  'resume',
  'max-steps',
  'out',
  'cache-dir',
  'cache-dtype',
  'cache-mem',
  'val-every',
  'val-cases',
  'no-eval-before',
  'overlays',
  'export-state-dict',
  'quiet',
  'data',
  'help',
]);

export function usage(): string {
  const lines = [
    'usage: npm run train -- --backend=dawn [options]',
    '',
    'Trains SAM-LST (frozen SAM encoder + ResNet18 side network + learnable gate) and writes a run',
    'folder: checkpoint.safetensors, state_dict.safetensors, metrics.jsonl, plots, overlays, report.md.',
    '',
    'options (--flag value or --flag=value):',
  ];
  const w = Math.max(...Object.keys(FLAGS).map((k) => k.length)) + 4;
  for (const [k, f] of Object.entries(FLAGS)) {
    const arg = f.value === 'none' ? '' : f.value === 'string' ? ' S' : ' N';
    lines.push(`  ${`--${k}${arg}`.padEnd(w + 2)} ${f.help}`);
  }
  lines.push(
    '',
    'presets:',
    '  default  input 128, ViT dim 192 x 4 blocks, ResNet18 width 32, batch 8, 5 epochs of the built-in',
    '           phantom (270 steps), lr 3e-3, warm-up 20: about 5 minutes on 2 CPU cores (lavapipe)',
    '  paper    ViT-B/16 at 512, ResNet18, batch 24, 200 epochs, lr 1e-3, warm-up 250, AdamW wd 0.1,',
    '           λ 0.8, seed 1234 (SAM-LST as published; give --sam-checkpoint, --resnet-checkpoint, --data)',
    'SAM weights are random unless --sam-checkpoint is given.',
  );
  return lines.join('\n');
}

function parseValue(flag: string, spec: FlagSpec, raw: string): string | number | boolean {
  switch (spec.value) {
    case 'string':
      if (raw === '') throw new TrainConfigError(`--${flag}: needs a value`);
      return raw;
    case 'int': {
      const v = Number(raw);
      if (raw.trim() === '' || !Number.isInteger(v))
        throw new TrainConfigError(`--${flag}: expected an integer, got '${raw}'`);
      return v;
    }
    case 'number': {
      const v = Number(raw);
      if (raw.trim() === '' || !Number.isFinite(v))
        throw new TrainConfigError(`--${flag}: expected a finite number, got '${raw}'`);
      return v;
    }
    default:
      return true;
  }
}

/**
 * Parses `npm run train` arguments into a configuration. Unknown flags, missing or malformed
 * values and invalid combinations throw TrainConfigError naming the flag and the value.
 */
export function parseTrainArgs(argv: readonly string[]): ParsedArgs {
  const pairs: [string, string | null][] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (!a.startsWith('--'))
      throw new TrainConfigError(`unexpected argument '${a}' (flags start with --; see --help)`);
    const eq = a.indexOf('=');
    const name = eq >= 0 ? a.slice(2, eq) : a.slice(2);
    const spec = FLAGS[name];
    if (!spec) {
      const near = Object.keys(FLAGS).filter((k) => k.startsWith(name.slice(0, 3)));
      throw new TrainConfigError(
        `unknown flag '--${name}'${near.length ? ` (did you mean ${near.map((k) => `--${k}`).join(', ')}?)` : ''}; see --help`,
      );
    }
    if (spec.value === 'none') {
      if (eq >= 0) throw new TrainConfigError(`--${name}: takes no value, got '${a.slice(eq + 1)}'`);
      pairs.push([name, null]);
    } else if (eq >= 0) pairs.push([name, a.slice(eq + 1)]);
    else {
      const v = argv[i + 1];
      if (v === undefined || (v.startsWith('--') && spec.value === 'string'))
        throw new TrainConfigError(`--${name}: needs a value`);
      pairs.push([name, v]);
      i++;
    }
  }
  const given = new Set<string>();
  for (const [n] of pairs) {
    if (given.has(n)) throw new TrainConfigError(`--${n}: given more than once`);
    given.add(n);
  }
  const get = (n: string) => pairs.find(([k]) => k === n)?.[1] ?? null;
  const presetName = (get('preset') ?? 'default') as PresetName;
  if (presetName !== 'default' && presetName !== 'paper')
    throw new TrainConfigError(`--preset: unknown '${presetName}' (use default or paper)`);
  const config = presetConfig(presetName);
  for (const [n, raw] of pairs) {
    const spec = FLAGS[n]!;
    if (!spec.apply) continue;
    spec.apply(config, raw === null ? true : parseValue(n, spec, raw));
  }
  const backend = get('backend') ?? 'dawn';
  if (backend !== 'dawn')
    throw new TrainConfigError(
      `--backend: unknown '${backend}' (this CLI runs on Node with Dawn: use --backend=dawn)`,
    );
  const resume = get('resume');
  const exportStateDict = get('export-state-dict');
  if (exportStateDict !== null && resume === null)
    throw new TrainConfigError('--export-state-dict: needs --resume <checkpoint> (the checkpoint to export)');
  if (given.has('help'))
    return { action: 'help', config, given, backend, resume, exportStateDict, quiet: true };
  if (!/^phantom(:\d+)?$/.test(config.data)) config.data = resolve(config.data);
  validateConfig(config);
  return {
    action: exportStateDict !== null ? 'export' : 'train',
    config,
    given,
    backend,
    resume: resume === null ? null : resolve(resume),
    exportStateDict: exportStateDict === null ? null : resolve(exportStateDict),
    quiet: given.has('quiet'),
  };
}

/**
 * The configuration of a resumed run: the checkpoint's, with the overridable flags the user gave.
 * Any other flag that differs from the checkpoint is an error naming it.
 */
export function mergeResumeConfig(saved: TrainConfig, parsed: ParsedArgs): TrainConfig {
  const out: TrainConfig = JSON.parse(JSON.stringify(saved)) as TrainConfig;
  const fresh = parsed.config;
  for (const flag of parsed.given) {
    if (RESUME_OVERRIDABLE.has(flag)) continue;
    // Compare the field this flag sets: apply it to a copy of the saved config.
    const probe: TrainConfig = JSON.parse(JSON.stringify(saved)) as TrainConfig;
    const spec = FLAGS[flag];
    if (!spec?.apply && flag !== 'preset') continue;
    const asGiven = JSON.stringify(pickFlagEffect(fresh, flag));
    const asSaved = JSON.stringify(pickFlagEffect(probe, flag));
    if (asGiven !== asSaved)
      throw new TrainConfigError(
        `--${flag}: cannot change on --resume (the checkpoint's run has ${asSaved}, given ${asGiven}); ` +
          'start a new run instead',
      );
  }
  for (const flag of [
    'max-steps',
    'out',
    'cache-dir',
    'cache-dtype',
    'cache-mem',
    'val-every',
    'val-cases',
    'overlays',
  ])
    if (parsed.given.has(flag)) FLAGS[flag]!.apply!(out, flagValue(fresh, flag)!);
  if (parsed.given.has('no-eval-before')) out.evalBefore = false;
  if (parsed.given.has('data')) out.data = fresh.data;
  validateConfig(out);
  return out;
}

function pickFlagEffect(c: TrainConfig, flag: string): unknown {
  switch (flag) {
    case 'img-size':
      return (c.model as { img_size?: number }).img_size;
    case 'batch-size':
      return c.batchSize;
    case 'epochs':
      return c.epochs;
    case 'lr':
      return c.lr;
    case 'warmup':
      return c.warmupPeriod;
    case 'weight-decay':
      return c.weightDecay;
    case 'dice-weight':
      return c.diceWeight;
    case 'seed':
      return c.seed;
    case 'variant':
      return c.variant;
    case 'augment':
      return c.augment;
    case 'sam-checkpoint':
      return c.samCheckpoint;
    case 'resnet-checkpoint':
      return c.resnetCheckpoint;
    case 'label-map':
      return c.labelMap;
    case 'preset':
      return c.preset;
    default:
      return null;
  }
}

function flagValue(c: TrainConfig, flag: string): string | number | boolean | null {
  switch (flag) {
    case 'max-steps':
      return c.maxSteps;
    case 'out':
      return c.out;
    case 'cache-dir':
      return c.cacheDir;
    case 'cache-dtype':
      return c.cacheDtype;
    case 'cache-mem':
      return c.cacheMemMb;
    case 'val-every':
      return c.valEvery;
    case 'val-cases':
      return c.valCases;
    case 'overlays':
      return c.overlays;
    default:
      return null;
  }
}

/** The lr schedule length: epochs × iterations per epoch (drop_last False, as the trainer). */
export function itersPerEpoch(trainSize: number, batchSize: number): number {
  return Math.ceil(trainSize / batchSize);
}
