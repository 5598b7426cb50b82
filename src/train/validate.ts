/**
 * Validation during training: src/eval/evaluate.ts `evaluateVolumes` (per-volume inference with
 * the spec §13 resampling — each (h, w) slice cubic-zoomed to 224 then to S, argmax of the S×S
 * masks, nearest zoom back — and per-case, per-organ DSC / HD95 with MedPy semantics) driven by a
 * SlicePredictor that runs the training run's variant forward (src/train/variant.ts) with the
 * frozen SAM embedding from the run's FrozenEncoder: the encoder runs once per validation slice for
 * the whole run (the key is the network input's pixels + `eval|S`), later validations read the
 * cache. The model runs in eval mode (BatchNorm running statistics) and is put back in training
 * mode afterwards.
 */
import { noGrad } from '../autograd/tape.js';
import type { Source, Volume } from '../data/types.js';
import { evaluateVolumes } from '../eval/evaluate.js';
import type { SlicePredictor } from '../eval/inference.js';
import type { MetricsSummary } from '../eval/metrics.js';
import type { SamLST } from '../nn/sam_lst.js';
import { tidy } from '../tensor/scope.js';
import { Tensor } from '../tensor/tensor.js';
import type { Variant } from './config.js';
import { hashPixels, type FrozenEncoder } from './embed_cache.js';
import { forwardVariant, usesEncoder } from './variant.js';

export interface ValidationOptions {
  variant: Variant;
  /** Slices per forward (capped so the masks readback stays under ~64 MB). */
  batchSize: number;
  encoder: FrozenEncoder | null;
  /** Use at most this many volumes (0 / undefined: all). */
  limit?: number;
  /** Write overlay PNGs (ground truth | prediction) of this many slices per volume into `overlayDir`. */
  overlaySlices?: number;
  overlayDir?: string | null;
  log?: (line: string) => void;
}

export interface ValidationResult {
  summary: MetricsSummary;
  seconds: number;
  slices: number;
  /** Overlay PNG paths with their case. */
  overlays: { file: string; volume: string }[];
}

export function evalPreprocessKey(S: number): string {
  return `eval|input ${S}`;
}

/**
 * The variant's forward as a SlicePredictor: eval mode between begin() and end(), the SAM
 * embedding of each slice from `encoder` (its cache), no gradient, the S×S masks read back.
 */
export function variantPredictor(
  model: SamLST,
  variant: Variant,
  encoder: FrozenEncoder | null,
): SlicePredictor {
  const { imgSize: S, inChans: C, numMaskTokens: N } = model.cfg;
  if (usesEncoder(variant) && !encoder)
    throw new Error(`validate: variant ${variant} needs the frozen encoder`);
  let wasTraining = true;
  return {
    size: S,
    inChans: C,
    channels: N,
    begin() {
      wasTraining = model.training;
      model.eval();
    },
    end() {
      model.train(wasTraining);
    },
    async run(images: Float32Array, b: number): Promise<Float32Array> {
      const plane = S * S;
      let emb: Tensor | null = null;
      if (encoder) {
        const items = Array.from({ length: b }, (_, i) => {
          const image = images.subarray(i * C * plane, i * C * plane + plane);
          return { image, inputHash: hashPixels({ h: S, w: S, image }), preprocess: evalPreprocessKey(S) };
        });
        emb = await encoder.embed(items);
      }
      const x = Tensor.fromData(model.gpu, images, [b, C, S, S]);
      let masks: Tensor;
      try {
        masks = tidy(() => noGrad(() => forwardVariant(model, variant, x, emb).masks));
      } finally {
        x.dispose();
        emb?.dispose();
      }
      try {
        return await masks.readFloat();
      } finally {
        masks.dispose();
      }
    },
  };
}

/** Runs the validation (see the file comment). */
export async function validate(
  model: SamLST,
  test: Source<Volume>,
  opts: ValidationOptions,
): Promise<ValidationResult> {
  const S = model.cfg.imgSize;
  const capB = Math.max(1, Math.floor((64 * 2 ** 20) / (4 * model.cfg.numMaskTokens * S * S)));
  const ev = await evaluateVolumes(variantPredictor(model, opts.variant, opts.encoder), test, {
    batchSize: Math.max(1, Math.min(opts.batchSize, capB)),
    classes: model.cfg.numClasses,
    ...(opts.limit ? { limit: opts.limit } : {}),
    overlayDir: opts.overlaySlices ? (opts.overlayDir ?? null) : null,
    overlaySlices: opts.overlaySlices ?? 0,
    log: opts.log,
  });
  return {
    summary: ev.summary,
    seconds: ev.seconds,
    slices: ev.slices,
    overlays: ev.cases.flatMap((c) => c.overlays.map((file) => ({ file, volume: c.name }))),
  };
}
