/**
 * The SAM-LST training loop (spec §9-§12) behind `npm run train`.
 *
 * One step: B training slices in the epoch's shuffled order, each with an augmentation drawn as
 * SAM-LST's RandomGenerator draws it (src/data/augment.ts: 50 % rot90+flip, 25 % rotation by an
 * integer angle in [−20, 19]°, 25 % none, i.e. one of 49 discrete variants), zoomed to S×S (cubic
 * image, nearest label) with the S/4 label as the loss target; the frozen SAM embedding of each
 * (slice, augmentation) from the FrozenEncoder (computed at most once, then cached: see below); the
 * variant's forward (src/train/variant.ts) with BatchNorm in train mode; (1−λ)·CE + λ·Dice on the
 * S/4 logits; backward; the loss and one sum per trainable parameter's gradient are read back in
 * one readback and checked (a NaN/Inf in the loss or in any gradient stops the run before the
 * update is applied, keeping the last good checkpoint); AdamW (betas .9/.999, eps 1e-8, wd 0.1)
 * with the lr of `lrForStep` (warm-up + poly 0.9, exactly the oracle's schedule, over
 * epochs × ceil(N/B) iterations).
 *
 * Augmentation and the encoder cache. Because the paper's augmentation is a finite set of 49
 * geometric variants, the network input of a sample is a pure function of (slice, variant), and the
 * frozen encoder's output is cached under that pair (plus the encoder weights and input size):
 * sampling stays exactly the paper's, and the encoder runs once per distinct pair over the whole run
 * (at most 49 times per slice; an unaugmented slice is an ordinary entry). Over the paper's 200
 * epochs a slice is drawn 200 times but has at most 49 distinct inputs (≥ 75 % hits); a 4-epoch run
 * sees mostly first draws. Hits, misses and the encoder time they saved are logged per epoch.
 *
 * Determinism and --resume: the data order (one Rng draw per epoch) and the augmentations (one Rng
 * stream per sample) come from two seeded Rngs whose states, the epoch's order and the position in
 * it are checkpointed with the parameters, BatchNorm buffers and AdamW moments; GPU kernels are
 * deterministic (no atomics) and embeddings come out of the cache in the stored precision even on a
 * miss. So N steps, stop, resume, M steps equals N + M steps straight through, bit for bit.
 *
 * Faults. A checkpoint is written at the end of every epoch (atomically: a kill leaves the previous
 * one). A lost device (TrainDeviceLostError) or an allocation over the adapter's limits or refused
 * by the device (TrainOutOfMemoryError) stops the run with a message naming the step (or the save /
 * validation it was in), the flags involved, and the last checkpoint, which is never rewritten from
 * a lost device: `--resume <out>` on a working device continues from it, losing only the steps
 * since. A non-finite loss or gradient (NonFiniteLossError, NonFiniteGradientError) stops the run
 * before that update, also keeping the last good checkpoint.
 */
import { existsSync, mkdirSync, statSync } from 'node:fs';
import { basename, dirname, join, relative } from 'node:path';
import { backward } from '../autograd/tape.js';
import {
  applyAugmentation,
  augmentationKey,
  randomAugmentation,
  type Augmentation,
} from '../data/augment.js';
import { openDataset, type DatasetSpec } from '../data/datasets.js';
import type { LabelMapName } from '../data/labels.js';
import { DataError, type Dataset, type Slice } from '../data/types.js';
import { writeReport } from '../eval/report.js';
import type { MetricsSummary } from '../eval/metrics.js';
import type { Gpu } from '../gpu/device.js';
import { DeviceLostError, GpuOutOfMemoryError, MEMORY_HINT } from '../gpu/errors.js';
import { removeStaleTemps, writeFileAtomic } from '../io/atomic.js';
import type { SamLST } from '../nn/sam_lst.js';
import { ceDiceLoss } from '../ops/loss.js';
import { sum } from '../ops/reduce.js';
import { AdamW } from '../optim/adamw.js';
import { lrForStep, type LrSchedule } from '../optim/schedule.js';
import { tidy } from '../tensor/scope.js';
import { Tensor } from '../tensor/tensor.js';
import { Rng } from '../util/rng.js';
import {
  checkpointBytes,
  datasetFingerprint,
  exportStateDict,
  frozenHash,
  restoreCheckpoint,
  type Checkpoint,
  type LoopState,
} from './checkpoint.js';
import { itersPerEpoch, modelConfig, TrainConfigError, type TrainConfig, type Variant } from './config.js';
import {
  EmbedCache,
  encoderHash,
  FrozenEncoder,
  hashPixels,
  toThreeChannels,
  type EncoderInput,
} from './embed_cache.js';
import {
  formatDuration,
  MetricsLog,
  Progress,
  RateMeter,
  type EpochRecord,
  type MetricsRecord,
  type OutputStream,
  type ValRecord,
} from './log.js';
import { legendSvg, runPlots } from './plots.js';
import { organLegend, reportMarkdown, validationTable } from './run_report.js';
import { validate, type ValidationResult } from './validate.js';
import { buildModel, forwardVariant, usesEncoder } from './variant.js';

export const CHECKPOINT_FILE = 'checkpoint.safetensors';
export const STATE_DICT_FILE = 'state_dict.safetensors';

/**
 * The loss of a step was NaN or Inf: the run stopped before applying that step's update.
 * (NonFiniteGradientError, a subclass, is the same for a gradient.)
 */
export class NonFiniteLossError extends Error {
  override name = 'NonFiniteLossError';
  constructor(
    message: string,
    readonly step: number,
    readonly checkpoint: string | null,
  ) {
    super(message);
  }
}

/**
 * A gradient of a step held NaN or Inf (the loss was finite): the run stopped before applying that
 * step's update. `parameter` is the first trainable parameter (in the model's order) whose gradient
 * is not finite.
 */
export class NonFiniteGradientError extends NonFiniteLossError {
  override name = 'NonFiniteGradientError';
  constructor(
    message: string,
    step: number,
    checkpoint: string | null,
    readonly parameter: string,
  ) {
    super(message, step, checkpoint);
  }
}

/** Where a run stopped on a device fault, and what it left on disk. */
export interface RunStop {
  /** The step being computed (or whose checkpoint was being saved) when the fault came. */
  step: number;
  /** The last checkpoint on disk (intact: never written from a failing device), or null. */
  checkpoint: string | null;
  checkpointStep: number | null;
}

/**
 * The device was lost during a run. The message names the step (or the save / validation), says
 * that nothing was written from the lost device, which checkpoint is on disk and how to continue.
 */
export class TrainDeviceLostError extends DeviceLostError {
  constructor(
    cause: DeviceLostError,
    message: string,
    readonly stop: RunStop,
  ) {
    super(cause.reason, cause.detail);
    this.message = message;
    this.cause = cause;
  }
}

/**
 * An allocation over the adapter's limits or refused by the device during a run: the message of the
 * underlying GpuOutOfMemoryError (the tensor, its size, the limit) with the run's --batch-size and
 * --img-size, where it happened and the last checkpoint.
 */
export class TrainOutOfMemoryError extends GpuOutOfMemoryError {
  constructor(
    cause: GpuOutOfMemoryError,
    message: string,
    readonly stop: RunStop,
  ) {
    super(cause.requestedBytes, cause.limitBytes, cause.what, {
      limitName: cause.limitName,
      ...(cause.heldBytes !== null ? { heldBytes: cause.heldBytes } : {}),
    });
    this.message = message;
    this.cause = cause;
  }
}

export interface StepLosses {
  total: number;
  ce: number;
  dice: number;
}

/** A trainable parameter and its gradient after backward (for StepOptions.onGrads). */
export interface ParamGrad {
  name: string;
  param: Tensor;
  grad: Tensor;
}

export interface StepOptions {
  lr: number;
  /** λ of (1 − λ)·CE + λ·Dice (default 0.8). */
  diceWeight?: number;
  /** Step number for messages. */
  step?: number;
  /** Test hook: may replace the losses read back before the finite check. */
  onLoss?: (step: number, l: StepLosses) => StepLosses | void;
  /**
   * Test hook: called after backward with the gradients of the trainable parameters (in the
   * model's order), before they are checked; tests write NaN/Inf into one here.
   */
  onGrads?: (step: number, grads: readonly ParamGrad[]) => void | Promise<void>;
}

/** Counts the NaN and ±Inf values of `a`. */
function countNonFinite(a: Float32Array): { nan: number; inf: number } {
  let nan = 0;
  let inf = 0;
  for (let i = 0; i < a.length; i++) {
    const v = a[i]!;
    if (v !== v) nan++;
    else if (v === Infinity || v === -Infinity) inf++;
  }
  return { nan, inf };
}

/**
 * One optimizer step of `variant` on a batch: forward (BatchNorm as the model's mode says), loss on
 * the low-res logits, backward, then one readback of the losses and of one sum per trainable
 * parameter's gradient (a NaN or Inf anywhere in a gradient makes its sum non-finite; a sum that
 * overflowed from finite values is told apart by reading that gradient), then AdamW with `opts.lr`.
 * Throws NonFiniteLossError / NonFiniteGradientError (without updating anything but the BatchNorm
 * running statistics of this forward) when the loss or a gradient is not finite. `embedding` is the
 * frozen SAM embedding of `image` (required unless the variant is cnn-decoder).
 */
export async function trainStep(
  model: SamLST,
  opt: AdamW,
  variant: Variant,
  image: Tensor,
  lowResLabels: Tensor,
  embedding: Tensor | null,
  opts: StepOptions,
): Promise<StepLosses> {
  const gpu = model.gpu;
  const step = opts.step ?? 0;
  const l = tidy(() => {
    const out = forwardVariant(model, variant, image, embedding);
    const r = ceDiceLoss(out.lowResLogits, lowResLabels, {
      lambda: opts.diceWeight ?? 0.8,
      classes: model.cfg.numMaskTokens,
    });
    opt.zeroGrad();
    backward(r.total);
    return { total: r.total, ce: r.ce, dice: r.dice, bad: r.invalidLabels };
  });
  let values: Float32Array;
  let grads: ParamGrad[];
  try {
    grads = model
      .trainableParameters()
      .flatMap(([name, param]) => (param.grad ? [{ name, param, grad: param.grad }] : []));
    await opts.onGrads?.(step, grads);
    // [total, ce, dice, invalid labels, sum of each gradient]: one readback per step.
    const packed = tidy(() => {
      const v = Tensor.empty(gpu, [4 + grads.length]);
      [l.total, l.ce, l.dice, l.bad].forEach((t, i) => gpu.copy(t.buffer, 0, v.buffer, 4 * i, 4));
      grads.forEach((g, i) => {
        const s = sum(g.grad);
        gpu.copy(s.buffer, 0, v.buffer, 4 * (4 + i), 4);
      });
      return v;
    });
    try {
      values = await packed.readFloat();
    } finally {
      packed.dispose();
    }
  } catch (e) {
    opt.zeroGrad();
    throw e;
  } finally {
    for (const t of [l.total, l.ce, l.dice, l.bad]) t.dispose();
  }
  let losses: StepLosses = { total: values[0]!, ce: values[1]!, dice: values[2]! };
  const bad = values[3]!;
  if (bad > 0) {
    opt.zeroGrad();
    throw new DataError(`step ${step}: ${bad} label(s) outside 0..${model.cfg.numClasses}`);
  }
  losses = opts.onLoss?.(step, losses) ?? losses;
  if (![losses.total, losses.ce, losses.dice].every(Number.isFinite)) {
    opt.zeroGrad();
    throw new NonFiniteLossError(
      `loss is ${losses.total} at step ${step} (ce ${losses.ce}, dice ${losses.dice})`,
      step,
      null,
    );
  }
  // A non-finite sum: read that gradient to tell NaN/Inf from a sum that overflowed f32.
  const badGrads: { name: string; nan: number; inf: number; size: number }[] = [];
  for (let i = 0; i < grads.length; i++) {
    if (Number.isFinite(values[4 + i]!)) continue;
    const g = grads[i]!;
    const c = countNonFinite(await g.grad.readFloat());
    if (c.nan + c.inf > 0) badGrads.push({ name: g.name, ...c, size: g.grad.size });
  }
  if (badGrads.length) {
    opt.zeroGrad();
    const f = badGrads[0]!;
    throw new NonFiniteGradientError(
      `gradient of ${f.name} is not finite at step ${step} (${f.nan} NaN and ${f.inf} ±Inf of ${f.size} ` +
        `values; loss ${losses.total})` +
        (badGrads.length > 1
          ? `; ${badGrads.length - 1} more parameter(s) with non-finite gradients: ` +
            badGrads
              .slice(1, 6)
              .map((b) => b.name)
              .join(', ') +
            (badGrads.length > 6 ? ', ...' : '')
          : ''),
      step,
      null,
      f.name,
    );
  }
  opt.step(opts.lr);
  return losses;
}

// ------------------------------------------------------------------------------------ data

export interface PreparedSample {
  image: Float32Array;
  lowRes: Int32Array;
  encoderInput: EncoderInput;
}

export function trainPreprocessKey(s: Pick<Slice, 'h' | 'w'>, S: number, aug: Augmentation): string {
  return `train|${s.h}x${s.w}>${S}|aug=${augmentationKey(aug)}`;
}

/** RandomGenerator for one slice: augmentation, zoom to S (cubic / nearest), S/4 label. */
export function prepareSample(s: Slice, aug: Augmentation, S: number, inputHash?: string): PreparedSample {
  const a = applyAugmentation(s.image, s.label, s.h, s.w, aug, S);
  return {
    image: a.image,
    lowRes: a.lowResLabel,
    encoderInput: {
      image: a.image,
      inputHash: inputHash ?? hashPixels(s),
      preprocess: trainPreprocessKey(s, S, aug),
    },
  };
}

/** Fisher–Yates permutation of 0..n-1 from `rng`. */
export function shuffled(n: number, rng: Rng): number[] {
  const p = Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = rng.int(0, i + 1);
    [p[i], p[j]] = [p[j]!, p[i]!];
  }
  return p;
}

/** Seed of one of the run's Rng streams. */
export function streamSeed(seed: number, stream: 'order' | 'aug'): number {
  let h = (seed ^ (stream === 'order' ? 0x9e3779b9 : 0x85ebca6b)) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x7feb352d) >>> 0;
  h = Math.imul(h ^ (h >>> 15), 0x846ca68b) >>> 0;
  return (h ^ (h >>> 16)) >>> 0;
}

export function datasetSpec(c: TrainConfig): DatasetSpec {
  const m = /^phantom(?::(\d+))?$/.exec(c.data);
  if (m) return { kind: 'phantom', seed: m[1] ? Number(m[1]) : 0, ...c.phantom };
  return c.data;
}

export async function openTrainingData(c: TrainConfig): Promise<Dataset> {
  const spec = datasetSpec(c);
  const small = typeof spec !== 'string' || existsSync(join(spec, 'images'));
  return openDataset(spec, {
    cache: small,
    ...(c.labelMap ? { labelMap: c.labelMap as LabelMapName } : {}),
  });
}

// ------------------------------------------------------------------------------------ train

export interface TrainHooks {
  /** May replace a step's losses before the finite check (tests inject NaN here). */
  onLoss?: (step: number, l: StepLosses) => StepLosses | void;
  /** Sees a step's gradients after backward, before they are checked (tests inject NaN here). */
  onGrads?: (step: number, grads: readonly ParamGrad[]) => void | Promise<void>;
  /** Called before a checkpoint of `step` steps is serialised (tests inject device faults here). */
  beforeSave?: (step: number) => void | Promise<void>;
  /** Called after each completed step (and its end-of-epoch checkpoint / validation) with the steps done. */
  afterStep?: (step: number, losses: StepLosses) => void | Promise<void>;
}

export interface TrainOptions {
  gpu: Gpu;
  /** A checkpoint to continue (read by the caller; its config must be `config`'s base). */
  resume?: Checkpoint | null;
  /** Progress / messages (default process.stdout). */
  out?: OutputStream;
  tty?: boolean;
  quiet?: boolean;
  hooks?: TrainHooks;
}

export interface TrainResult {
  outDir: string;
  checkpoint: string;
  stateDict: string;
  report: string;
  steps: number;
  finished: boolean;
  before: MetricsSummary | null;
  after: MetricsSummary | null;
  seconds: number;
  cache: { hits: number; misses: number; encoded: number; encodeSeconds: number; secondsSaved: number };
}

function valRecord(v: ValidationResult, step: number, epoch: number, when: string): ValRecord {
  return {
    type: 'val',
    step,
    epoch,
    when,
    meanDice: v.summary.meanDice,
    meanHd95: v.summary.meanHd95,
    perOrganDice: v.summary.perOrgan.map((m) => m.dice),
    perOrganHd95: v.summary.perOrgan.map((m) => m.hd95),
    seconds: v.seconds,
  };
}

function summaryFromRecord(r: ValRecord, cases = 0): MetricsSummary {
  return {
    classes: r.perOrganDice.length,
    cases: Array.from({ length: cases }, () => ({ name: '', organs: [] })),
    perOrgan: r.perOrganDice.map((d, i) => ({ dice: d, hd95: r.perOrganHd95[i]! })),
    meanDice: r.meanDice,
    meanHd95: r.meanHd95,
  };
}

/** What a run is doing, for the messages of the device faults that may stop it. */
interface RunContext {
  phase: string;
  /** The step being computed (or saved); 0 before training starts. */
  step: number;
  lastCheckpoint: { path: string; step: number } | null;
}

/**
 * Trains as `config` says (see the file comment) and writes the run folder. Device faults become
 * TrainDeviceLostError / TrainOutOfMemoryError naming where the run stopped and what is on disk.
 */
export async function train(config: TrainConfig, opts: TrainOptions): Promise<TrainResult> {
  const ctx: RunContext = { phase: 'while setting up the run', step: 0, lastCheckpoint: null };
  try {
    return await runTraining(config, opts, ctx);
  } catch (e) {
    throw runFault(e, config, opts.gpu, ctx);
  }
}

/** A device fault `e` as the run-level error that says where the run stopped; others unchanged. */
function runFault(e: unknown, c: TrainConfig, gpu: Gpu, ctx: RunContext): unknown {
  if (
    e instanceof NonFiniteLossError ||
    e instanceof TrainDeviceLostError ||
    e instanceof TrainOutOfMemoryError
  )
    return e;
  let lost: DeviceLostError | null = e instanceof DeviceLostError ? e : null;
  if (!lost && gpu.lost) {
    // Another error (a failed readback, a validation error) on a device that is now lost.
    try {
      gpu.assertAlive();
    } catch (l) {
      if (l instanceof DeviceLostError) lost = l;
    }
  }
  const lc = ctx.lastCheckpoint;
  // --resume takes the run folder (or the checkpoint file when it is not the folder's own).
  const resumeArg = lc ? (basename(lc.path) === CHECKPOINT_FILE ? dirname(lc.path) : lc.path) : '';
  const stop: RunStop = { step: ctx.step, checkpoint: lc?.path ?? null, checkpointStep: lc?.step ?? null };
  const redo =
    lc && ctx.step > lc.step
      ? ctx.step === lc.step + 1
        ? ` (step ${ctx.step} is computed again)`
        : ` (steps ${lc.step + 1}-${ctx.step} are computed again)`
      : '';
  if (lost) {
    const msg =
      `${lost.message}, ${ctx.phase}: training stopped. Nothing was written from the lost device; ` +
      (lc
        ? `the last checkpoint, ${lc.path} (step ${lc.step}), is intact: continue with --resume ${resumeArg}${redo}`
        : `no checkpoint had been saved yet (the first is written at the end of epoch 1): start the run again`);
    const err = new TrainDeviceLostError(lost, msg, stop);
    if (e !== lost) err.cause = e;
    return err;
  }
  if (e instanceof GpuOutOfMemoryError) {
    const S = modelConfig(c).imgSize;
    const hint = `reduce --batch-size (now ${c.batchSize}) or --img-size (now ${S})`;
    const base = e.message.includes(MEMORY_HINT)
      ? e.message.replace(MEMORY_HINT, hint)
      : `${e.message}; ${hint}`;
    const msg =
      `${base}, ${ctx.phase}: training stopped. ` +
      (lc
        ? `The last checkpoint, ${lc.path} (step ${lc.step}), is intact; --resume ${resumeArg} keeps the run's ` +
          'batch and image size, so a smaller one needs a new run (or a device with more memory)'
        : 'No checkpoint had been saved yet');
    return new TrainOutOfMemoryError(e, msg, stop);
  }
  return e;
}

async function runTraining(config: TrainConfig, opts: TrainOptions, ctx: RunContext): Promise<TrainResult> {
  const t0 = performance.now();
  const out = opts.out ?? process.stdout;
  const progress = new Progress(out, { tty: opts.tty, quiet: opts.quiet });
  const say = (s: string) => progress.line(s);
  const gpu = opts.gpu;
  const c = config;
  const cfgModel = modelConfig(c);
  const S = cfgModel.imgSize;
  const outDir = c.out;
  mkdirSync(outDir, { recursive: true });
  if (existsSync(outDir) && !statSync(outDir).isDirectory()) throw new Error(`--out ${outDir}: not a folder`);
  removeStaleTemps(outDir, undefined, { deadWritersOnly: true });
  const ckPath = join(outDir, CHECKPOINT_FILE);
  const sdPath = join(outDir, STATE_DICT_FILE);
  const resume = opts.resume ?? null;
  if (!resume && existsSync(ckPath))
    throw new TrainConfigError(
      `--out ${outDir} already holds a training run (${CHECKPOINT_FILE}); continue it with --resume ${outDir} ` +
        'or choose another --out',
    );

  // ---- data (validated before anything trains)
  const ds = await openTrainingData(c);
  if (!ds.train || ds.train.size === 0)
    throw new DataError(`${ds.root}: no training slices (a Synapse folder needs train_npz/)`);
  for (const n of ds.notes) say(`data note: ${n}`);
  const N = ds.train.size;
  const B = c.batchSize;
  const ipe = itersPerEpoch(N, B);
  const schedule: LrSchedule = {
    baseLr: c.lr,
    warmupPeriod: Math.max(1, c.warmupPeriod),
    warmup: c.warmupPeriod > 0,
    maxIterations: c.epochs * ipe,
    power: 0.9,
  };
  const totalSteps = Math.min(c.maxSteps ?? Infinity, c.epochs * ipe);
  const fingerprint = datasetFingerprint(ds.layout, ds.train.ids);
  if (resume) {
    const f = resume.meta.dataset;
    if (
      f.layout !== fingerprint.layout ||
      f.trainSize !== fingerprint.trainSize ||
      f.trainIds !== fingerprint.trainIds
    )
      throw new DataError(
        `--resume: the training data differ from the checkpoint's run (${f.layout}, ${f.trainSize} slices ` +
          `vs ${fingerprint.layout}, ${fingerprint.trainSize} slices from ${ds.root})`,
      );
  }

  // ---- model, optimizer, cache
  ctx.phase = 'while building the model';
  const { model, notes } = buildModel(gpu, c);
  const owned: { dispose(): void }[] = [model];
  try {
    const opt = new AdamW(
      model.trainableParameters().map(([name, tensor]) => ({ name, tensor })),
      { lr: c.lr, betas: c.betas, eps: c.eps, weightDecay: c.weightDecay },
    );
    owned.push(opt);
    const fHash = await frozenHash(model);
    if (resume) await restoreCheckpoint(model, opt, resume);
    const cache = new EmbedCache({
      dir: c.cacheDir,
      memBytes: Math.round(c.cacheMemMb * 2 ** 20),
      dtype: c.cacheDtype,
    });
    const encoder = usesEncoder(c.variant) ? new FrozenEncoder(model, cache, await encoderHash(model)) : null;

    const paramCount = (list: [string, Tensor][]) => list.reduce((a, [, t]) => a + t.size, 0);
    say(
      `sam-lst train: ${c.preset} preset, variant ${c.variant}, on ${gpu.profile.description || 'WebGPU adapter'}`,
    );
    say(
      `  model: input ${S}, ViT dim ${cfgModel.encDim} depth ${cfgModel.encDepth} heads ${cfgModel.encHeads} ` +
        `window ${cfgModel.windowSize} global [${cfgModel.globalAttnIndexes.join(',')}], ResNet18 width ${cfgModel.cnnWidth} ` +
        `(decoder dim ${cfgModel.promptDim}); ${paramCount(model.namedParameters())} parameters, ` +
        `${paramCount(model.trainableParameters())} trainable`,
    );
    for (const n of notes) say(`  ${n}`);
    say(
      `  data: ${ds.layout} ${ds.root}: ${N} training slices, ${ds.test?.size ?? 0} test volumes` +
        (c.valCases && ds.test ? ` (validating on ${Math.min(c.valCases, ds.test.size)})` : ''),
    );
    say(
      `  schedule: ${c.epochs} epochs x ${ipe} steps of ${B} = ${c.epochs * ipe} steps` +
        (totalSteps < c.epochs * ipe ? ` (stopping at ${totalSteps}: --max-steps)` : '') +
        `; lr ${c.lr} warm-up ${c.warmupPeriod} + poly 0.9; AdamW wd ${c.weightDecay}; λ ${c.diceWeight}; ` +
        `augmentation ${c.augment}; seed ${c.seed}`,
    );
    say(
      `  encoder cache: memory ${c.cacheMemMb} MiB${c.cacheDir ? `, disk ${c.cacheDir}` : ''}, ${c.cacheDtype}` +
        (encoder ? '' : ' (unused: the cnn-decoder variant never runs the SAM encoder)'),
    );
    say(`  output: ${outDir}${resume ? ` (resuming ${resume.path} at step ${resume.meta.state.step})` : ''}`);
    writeFileAtomic(join(outDir, 'config.json'), JSON.stringify(c, null, 2) + '\n');

    const metrics = new MetricsLog(join(outDir, 'metrics.jsonl'));
    const history: MetricsRecord[] = metrics.init(
      resume ? resume.meta.state.step : null,
      resume ? join(dirname(resume.path), 'metrics.jsonl') : undefined,
    );
    const record = (r: MetricsRecord) => {
      metrics.write(r);
      history.push(r);
    };

    const state: LoopState = resume
      ? structuredClone(resume.meta.state)
      : {
          step: 0,
          epoch: 0,
          batchInEpoch: 0,
          perm: null,
          orderRng: streamSeed(c.seed, 'order'),
          augRng: streamSeed(c.seed, 'aug'),
          finished: false,
        };
    const orderRng = new Rng(0);
    orderRng.state = state.orderRng;
    const augRng = new Rng(0);
    augRng.state = state.augRng;
    let lastCheckpoint: { path: string; step: number } | null = resume
      ? { path: resume.path, step: state.step }
      : null;
    ctx.lastCheckpoint = lastCheckpoint;
    // The checkpoint is serialised (every tensor read back) before anything is written, and written
    // only if the device is still alive after it: a lost device never replaces the last checkpoint.
    const save = async () => {
      ctx.phase = `while saving the checkpoint of step ${state.step}`;
      ctx.step = state.step;
      await opts.hooks?.beforeSave?.(state.step);
      const bytes = await checkpointBytes(model, opt, {
        config: c,
        state: { ...state, finished: state.step >= c.epochs * ipe },
        schedule,
        dataset: fingerprint,
        frozenHash: fHash,
      });
      gpu.assertAlive();
      writeFileAtomic(ckPath, bytes);
      lastCheckpoint = { path: ckPath, step: state.step };
      ctx.lastCheckpoint = lastCheckpoint;
    };

    const runValidation = async (when: string): Promise<ValidationResult | null> => {
      if (!ds.test) return null;
      ctx.phase =
        when === 'before'
          ? 'while validating the untrained model'
          : when === 'final'
            ? `during the final validation (after step ${state.step})`
            : `during the validation after epoch ${state.epoch} (step ${state.step})`;
      const v = await validate(model, ds.test, {
        variant: c.variant,
        batchSize: B,
        encoder,
        limit: c.valCases,
        overlaySlices: when === 'final' ? c.overlays : 0,
        overlayDir: join(outDir, 'overlays'),
      });
      record(valRecord(v, state.step, state.epoch, when));
      return v;
    };

    // ---- the untrained model
    let before: MetricsSummary | null = null;
    if (!resume && c.evalBefore && ds.test) {
      say('validating the untrained model ...');
      const v = await runValidation('before');
      if (v) {
        before = v.summary;
        say(
          `untrained: mean DSC ${(100 * v.summary.meanDice).toFixed(2)} %, mean HD95 ${v.summary.meanHd95.toFixed(2)} (${v.seconds.toFixed(1)} s, ${v.slices} slices)`,
        );
      }
    } else {
      const r = history.find((h): h is ValRecord => h.type === 'val' && h.when === 'before');
      if (r) before = summaryFromRecord(r);
    }

    // ---- training
    const meter = new RateMeter();
    const tLoop = performance.now();
    let epochStart = performance.now();
    let epochHits0 = encoder?.hits ?? 0;
    let epochMiss0 = encoder?.encoded ?? 0;
    const inputHashes = new Map<number, string>();
    let stopped: NonFiniteLossError | null = null;
    if (state.step >= totalSteps) say(`nothing to train: the run is at step ${state.step} of ${totalSteps}`);
    while (state.step < totalSteps) {
      const ts = performance.now();
      ctx.step = state.step + 1;
      ctx.phase = `at step ${ctx.step} of ${totalSteps} (epoch ${state.epoch + 1}, batch ${state.batchInEpoch + 1} of ${ipe})`;
      if (state.perm === null) {
        state.perm = shuffled(N, orderRng);
        state.orderRng = orderRng.state;
        epochStart = performance.now();
        epochHits0 = encoder?.hits ?? 0;
        epochMiss0 = encoder?.encoded ?? 0;
      }
      const lo = state.batchInEpoch * B;
      const idx = state.perm.slice(lo, lo + B);
      const samples: PreparedSample[] = [];
      for (const i of idx) {
        const s = await ds.train.get(i);
        const aug: Augmentation = c.augment === 'paper' ? randomAugmentation(augRng) : { kind: 'none' };
        let h = inputHashes.get(i);
        if (!h) {
          h = hashPixels(s);
          inputHashes.set(i, h);
        }
        samples.push(prepareSample(s, aug, S, h));
      }
      const hits0 = encoder?.hits ?? 0;
      const miss0 = encoder?.encoded ?? 0;
      const emb = encoder ? await encoder.embed(samples.map((x) => x.encoderInput)) : null;
      const b = samples.length;
      const image = Tensor.fromData(
        gpu,
        toThreeChannels(
          samples.map((x) => x.image),
          S,
          cfgModel.inChans,
        ),
        [b, cfgModel.inChans, S, S],
      );
      const lowRes = new Int32Array(b * (S / 4) ** 2);
      samples.forEach((x, k) => lowRes.set(x.lowRes, k * (S / 4) ** 2));
      const labels = Tensor.fromData(gpu, lowRes, [b, S / 4, S / 4]);
      const lr = lrForStep(state.step, schedule);
      let losses: StepLosses;
      try {
        losses = await trainStep(model, opt, c.variant, image, labels, emb, {
          lr,
          diceWeight: c.diceWeight,
          step: state.step + 1,
          onLoss: opts.hooks?.onLoss,
          onGrads: opts.hooks?.onGrads,
        });
      } catch (e) {
        if (!(e instanceof NonFiniteLossError)) throw e;
        const lc = lastCheckpoint as { path: string; step: number } | null;
        const msg =
          `${e.message} (epoch ${state.epoch + 1}): training stopped before applying this update; ` +
          (lc
            ? `the last good checkpoint is ${lc.path} (step ${lc.step}), left as it was`
            : 'no checkpoint had been saved yet');
        stopped =
          e instanceof NonFiniteGradientError
            ? new NonFiniteGradientError(msg, e.step, lc?.path ?? null, e.parameter)
            : new NonFiniteLossError(msg, e.step, lc?.path ?? null);
        break;
      } finally {
        image.dispose();
        labels.dispose();
        emb?.dispose();
      }
      state.step++;
      state.batchInEpoch++;
      state.augRng = augRng.state;
      const alpha = (await model.sam.alpha.readFloat())[0]!;
      const dt = (performance.now() - ts) / 1000;
      meter.add(dt);
      const epochNo = state.epoch + 1;
      record({
        type: 'step',
        step: state.step,
        epoch: epochNo,
        loss: losses.total,
        ce: losses.ce,
        dice: losses.dice,
        lr,
        alpha,
        gate: 1 / (1 + Math.exp(-alpha)),
        imagesPerSec: b / dt,
        time: (performance.now() - tLoop) / 1000,
        cacheHits: (encoder?.hits ?? 0) - hits0,
        cacheMisses: (encoder?.encoded ?? 0) - miss0,
      });
      progress.update({
        step: state.step,
        totalSteps,
        epoch: epochNo,
        epochs: c.epochs,
        loss: losses.total,
        imagesPerSec: b / meter.perStep,
        etaSeconds: (totalSteps - state.step) * meter.perStep,
        gate: c.variant === 'lst' ? 1 / (1 + Math.exp(-alpha)) : undefined,
      });

      if (state.batchInEpoch === ipe) {
        // ---- end of epoch: statistics, checkpoint, validation
        const hits = (encoder?.hits ?? 0) - epochHits0;
        const misses = (encoder?.encoded ?? 0) - epochMiss0;
        const msPer = encoder?.msPerImage ?? NaN;
        const er: EpochRecord = {
          type: 'epoch',
          step: state.step,
          epoch: epochNo,
          seconds: (performance.now() - epochStart) / 1000,
          cacheHits: hits,
          cacheMisses: misses,
          encoderMsPerImage: Number.isFinite(msPer) ? msPer : 0,
          secondsSaved: Number.isFinite(msPer) ? (hits * msPer) / 1000 : 0,
          cacheMemMB: cache.stats().memBytes / 2 ** 20,
        };
        record(er);
        state.epoch++;
        state.batchInEpoch = 0;
        state.perm = null;
        await save();
        say(
          `epoch ${epochNo}/${c.epochs}: ${er.seconds.toFixed(1)} s, loss ${losses.total.toFixed(4)}` +
            (encoder
              ? `; encoder cache ${hits} hits / ${misses} misses (${misses ? ((100 * hits) / (hits + misses)).toFixed(0) : 100} % hits, ` +
                `${er.encoderMsPerImage.toFixed(0)} ms per encoded image, ~${er.secondsSaved.toFixed(1)} s saved)`
              : '') +
            `; checkpoint saved`,
        );
        // (the last epoch's validation is the final one, below)
        if (ds.test && c.valEvery > 0 && state.epoch % c.valEvery === 0 && state.step < totalSteps) {
          const v = await runValidation('epoch');
          if (v) {
            say(
              `  validation: mean DSC ${(100 * v.summary.meanDice).toFixed(2)} %, HD95 ${v.summary.meanHd95.toFixed(2)} (${v.seconds.toFixed(1)} s)`,
            );
          }
        }
      }
      await opts.hooks?.afterStep?.(state.step, losses);
    }
    progress.clear();
    state.finished = state.step >= c.epochs * ipe;
    if (!stopped && (lastCheckpoint === null || (lastCheckpoint as { step: number }).step !== state.step))
      await save();

    // ---- final validation, overlays, plots, report
    let after: MetricsSummary | null = null;
    const overlayFiles: { file: string; caption: string }[] = [];
    if (!stopped && ds.test) {
      say('validating the trained model ...');
      const v = await runValidation('final');
      if (v) {
        after = v.summary;
        for (const o of v.overlays)
          overlayFiles.push({ file: relative(outDir, o.file), caption: `${o.volume}: ${basename(o.file)}` });
        writeReport(v.summary, join(outDir, 'validation'), {
          title: `SAM-LST validation (${c.variant}, step ${state.step})`,
        });
      }
    }
    if (!stopped && !ds.test) say('no test volumes in the dataset: validation skipped');
    if (!stopped) {
      ctx.phase = `while exporting the state_dict (after step ${state.step})`;
      await exportStateDict(model, sdPath, { config: JSON.stringify(c), step: String(state.step) });
    }

    const plots = runPlots(history);
    writeFileAtomic(join(outDir, 'loss.svg'), plots.loss, { durable: false });
    writeFileAtomic(join(outDir, 'val_dice.svg'), plots.valDice, { durable: false });
    writeFileAtomic(join(outDir, 'alpha.svg'), plots.alpha, { durable: false });
    writeFileAtomic(join(outDir, 'legend.svg'), legendSvg(organLegend()), { durable: false });

    const seconds = (performance.now() - t0) / 1000;
    const epochRecs = history.filter((h): h is EpochRecord => h.type === 'epoch');
    const cs = cache.stats();
    const saved = epochRecs.reduce((a, r) => a + r.secondsSaved, 0);
    const cacheLines = encoder
      ? [
          `${encoder.hits} hits, ${encoder.encoded} encoder runs in this process (${cs.diskHits} from disk, ${cs.stale} stale and ${cs.corrupt} corrupt entries recomputed` +
            (cs.writeFailures
              ? `; ${cs.writeFailures} disk writes failed: ${cache.lastWriteError ?? ''}`
              : '') +
            ')',
          `encoder: ${(encoder.encodeMs / 1000).toFixed(1)} s for ${encoder.encoded} images (${Number.isFinite(encoder.msPerImage) ? encoder.msPerImage.toFixed(1) : '-'} ms each); training hits saved ~${saved.toFixed(1)} s`,
          ...epochRecs.map(
            (r) =>
              `epoch ${r.epoch}: ${r.cacheHits} hits / ${r.cacheMisses} misses, ~${r.secondsSaved.toFixed(1)} s saved`,
          ),
          `storage: ${c.cacheDtype}${c.cacheDir ? `, disk ${c.cacheDir}` : ', memory only'} (memory LRU ${(cs.memBytes / 2 ** 20).toFixed(1)} MiB of ${c.cacheMemMb} MiB)`,
        ]
      : [];
    const report = join(outDir, 'report.md');
    const rel = (p: string) => relative(outDir, p) || p;
    writeFileAtomic(
      report,
      reportMarkdown({
        title: `SAM-LST training run (${c.preset} preset, ${c.variant})`,
        summary: [
          `steps ${state.step} of ${c.epochs * ipe} (${c.epochs} epochs x ${ipe}, batch ${B})${stopped ? ` — STOPPED: ${stopped.message}` : ''}`,
          `model: input ${S}, ViT dim ${cfgModel.encDim}, depth ${cfgModel.encDepth}, heads ${cfgModel.encHeads}, window ${cfgModel.windowSize}, global blocks [${cfgModel.globalAttnIndexes.join(', ')}]; ResNet18 width ${cfgModel.cnnWidth}; decoder dim ${cfgModel.promptDim}`,
          ...notes,
          `data: ${ds.layout} (${ds.root}), ${N} training slices, ${ds.test?.size ?? 0} test volumes`,
          `optimisation: AdamW (betas ${c.betas.join(', ')}, wd ${c.weightDecay}), lr ${c.lr}, warm-up ${c.warmupPeriod} + poly 0.9, loss ${Number((1 - c.diceWeight).toFixed(6))}·CE + ${c.diceWeight}·Dice, augmentation ${c.augment}, seed ${c.seed}`,
          `wall time ${formatDuration(seconds)} on ${gpu.profile.description || 'WebGPU'}`,
        ],
        before,
        after,
        validationNote:
          `${ds.test ? `${c.valCases ? Math.min(c.valCases, ds.test.size) : ds.test.size} test volume(s) of ${ds.root}` : 'no test volumes'}; ` +
          `slices resampled to 224 then ${S} (cubic), eval-mode BatchNorm, argmax of the ${S}x${S} masks, nearest resize back.`,
        plots: { loss: 'loss.svg', valDice: 'val_dice.svg', alpha: 'alpha.svg' },
        legend: 'legend.svg',
        overlays: overlayFiles,
        cacheLines,
        files: [
          {
            name: CHECKPOINT_FILE,
            what: `training checkpoint (step ${lastCheckpoint ? (lastCheckpoint as { step: number }).step : 0}; continue with --resume ${rel(outDir)})`,
          },
          ...(stopped
            ? []
            : [
                {
                  name: STATE_DICT_FILE,
                  what: 'PyTorch-style state_dict (sam.*, CNN_encoder.*), safetensors',
                },
              ]),
          {
            name: 'metrics.jsonl',
            what: 'per-step loss, CE, Dice, lr, alpha/gate, images/s; per-epoch cache statistics; validations',
          },
          ...(after
            ? [
                {
                  name: 'validation.md',
                  what: 'per-case and per-organ validation table (also validation.json)',
                },
              ]
            : []),
          { name: 'config.json', what: 'the run configuration' },
        ],
        notes: [
          "The frozen SAM encoder output is cached per (slice, augmentation variant): the paper's augmentation is 49 discrete variants, sampled with its probabilities.",
        ],
      }),
      { durable: false },
    );

    if (stopped) {
      say(stopped.message);
      say(`outputs: ${outDir} (report.md, metrics.jsonl, plots)`);
      throw stopped;
    }
    if (after) {
      say('');
      say(
        `validation (${c.valCases && ds.test ? Math.min(c.valCases, ds.test.size) : (ds.test?.size ?? 0)} test volumes; DSC %, HD95 voxels):`,
      );
      for (const line of validationTable(after, before).split('\n')) say(`  ${line}`);
      say('');
    }
    say(`wrote ${outDir}:`);
    say(`  report     ${report}`);
    say(`  checkpoint ${ckPath}`);
    say(`  state_dict ${sdPath}`);
    say(
      `  metrics    ${join(outDir, 'metrics.jsonl')}; plots loss.svg val_dice.svg alpha.svg; overlays/ (${overlayFiles.length})`,
    );
    say(`done in ${formatDuration(seconds)}`);
    return {
      outDir,
      checkpoint: ckPath,
      stateDict: sdPath,
      report,
      steps: state.step,
      finished: state.finished,
      before,
      after,
      seconds,
      cache: {
        hits: encoder?.hits ?? 0,
        misses: encoder?.encoded ?? 0,
        encoded: encoder?.encoded ?? 0,
        encodeSeconds: (encoder?.encodeMs ?? 0) / 1000,
        secondsSaved: saved,
      },
    };
  } finally {
    for (const o of owned.reverse()) o.dispose();
  }
}
