/**
 * Per-volume inference exactly as SAM-LST's test code does it (spec §13, `utils.test_single_volume`,
 * test/oracle/metrics_ref.py `predict_volume`), for every (H, W) slice z of a (D, H, W) volume:
 *
 *   1. if (H, W) != (I, I): scipy.ndimage.zoom(slice, (I/H, I/W), order=3)       I = input size, 224
 *   2. if that size != (S, S): zoom(·, (S/h', S/w'), order=3)                     S = network size
 *   3. copy to the model's input channels (3), model in eval mode, no gradient → `masks`
 *      (B, C, S, S) logits at the network size
 *   4. argmax over the C channels (first maximum wins; softmax first would not change it)
 *   5. if (H, W) != (S, S): zoom(labels, (H/S, W/S), order=0) back to the slice size
 *
 * Zoom output sizes follow scipy (round(n·factor), ties to even) and the zooms are the scipy-exact
 * ports in src/data/resample.ts, so the label volume equals the reference's for the same logits.
 * Slices are batched (`batchSize`) for speed; each slice's logits do not depend on its batch
 * neighbours (eval-mode BatchNorm uses running statistics), so the result is the same as one slice
 * at a time. The host resampling of the next batch overlaps the device work of the current one.
 *
 * The network size S is the model's `cfg.imgSize` (build the model at a smaller size to run
 * faster, e.g. in tests: see load_model.ts `imgSize`); the intermediate size I is `inputSize`.
 * `SlicePredictor` abstracts the model call so tests can substitute a predictable fake.
 */
import { noGrad } from '../autograd/tape.js';
import { zoomBy } from '../data/resample.js';
import type { Volume } from '../data/types.js';
import { SamLST, type SamLstOutput } from '../nn/sam_lst.js';
import { tidy } from '../tensor/scope.js';
import { Tensor } from '../tensor/tensor.js';
import {
  ArgumentError,
  badArg,
  checkInt,
  checkObject,
  checkTyped,
  firstNonFinite,
  isPlainObject,
} from '../util/args.js';

/** A batched slice model: images (b, inChans, S, S) in, logits (b, channels, S, S) out. */
export interface SlicePredictor {
  /** Network input side S. */
  readonly size: number;
  /** Input channels (the grey slice is copied into each). */
  readonly inChans: number;
  /** Output channels (background + organs). */
  readonly channels: number;
  /**
   * Logits for `b` images packed as (b, inChans, S, S). The device work should be submitted
   * before the returned promise first yields, so the caller can prepare the next batch meanwhile.
   */
  run(images: Float32Array, b: number): Promise<Float32Array>;
  /** Called once before a run of batches (e.g. switch the model to eval mode). */
  begin?(): void;
  /** Called once after (restore the mode). */
  end?(): void;
}

export interface InferenceOptions {
  /** Intermediate size I of the 2-step resampling (spec: 224). */
  inputSize?: number;
  /** Slices per model call (default 4). Results do not depend on it. */
  batchSize?: number;
  /** Progress callback: slices done of the volume's total. */
  onProgress?: (done: number, total: number) => void;
}

export class InferenceError extends Error {
  override name = 'InferenceError';
}

function checkSamLst(fn: string, model: unknown): asserts model is SamLST {
  if (!(model instanceof SamLST)) badArg(fn, 'model', 'a SamLST model', model);
}

/** A SlicePredictor: positive integer size / inChans / channels and a run function. */
function checkPredictor(fn: string, p: unknown): asserts p is SlicePredictor {
  const o = p as Partial<SlicePredictor> | null;
  if (o === null || typeof o !== 'object' || typeof o.run !== 'function')
    badArg(
      fn,
      'predictor',
      'a SlicePredictor {size, inChans, channels, run} (e.g. modelPredictor(model))',
      p,
    );
  for (const k of ['size', 'inChans', 'channels'] as const) checkInt(fn, `predictor.${k}`, o[k], 1);
}

/**
 * The SamLST model as a SlicePredictor: eval mode, no gradient, reads back `masks`. `forward`
 * replaces model.forward (e.g. an ablation variant's forward pass, see load_model.ts).
 */
export function modelPredictor(
  model: SamLST,
  forward: (m: SamLST, x: Tensor) => SamLstOutput = (m, x) => m.forward(x),
): SlicePredictor {
  checkSamLst('modelPredictor', model);
  if (typeof forward !== 'function')
    badArg('modelPredictor', 'forward', 'a function (model, x) => outputs', forward);
  const { imgSize: S, inChans: C, numMaskTokens: N } = model.cfg;
  let wasTraining = false;
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
      checkInt('modelPredictor.run', 'b', b, 1);
      checkTyped('modelPredictor.run', 'images', images, Float32Array);
      if (images.length !== b * C * S * S)
        throw new InferenceError(
          `modelPredictor: ${images.length} input values for a batch of ${b} x ${C} x ${S} x ${S}`,
        );
      const x = Tensor.fromData(model.gpu, images, [b, C, S, S]);
      let masks: Tensor;
      try {
        masks = tidy(() => noGrad(() => forward(model, x).masks));
      } finally {
        x.dispose();
      }
      try {
        return await masks.readFloat();
      } finally {
        masks.dispose();
      }
    },
  };
}

/** argmax over channels of (b, c, hw) logits into out[b·hw + p]; the first maximum wins (like torch). */
export function argmaxChannels(logits: Float32Array, b: number, c: number, hw: number): Int32Array {
  checkTyped('argmaxChannels', 'logits', logits, Float32Array);
  checkInt('argmaxChannels', 'b', b, 0);
  checkInt('argmaxChannels', 'c', c, 1);
  checkInt('argmaxChannels', 'hw', hw, 0);
  if (logits.length !== b * c * hw)
    throw new InferenceError(`argmaxChannels: ${logits.length} values for (${b}, ${c}, ${hw})`);
  const out = new Int32Array(b * hw);
  for (let n = 0; n < b; n++) {
    const base = n * c * hw;
    const best = new Float32Array(logits.subarray(base, base + hw));
    const arg = out.subarray(n * hw, (n + 1) * hw);
    for (let k = 1; k < c; k++) {
      const row = base + k * hw;
      for (let p = 0; p < hw; p++) {
        const v = logits[row + p]!;
        if (v > best[p]!) {
          best[p] = v;
          arg[p] = k;
        }
      }
    }
  }
  return out;
}

/**
 * Steps 1-2 for one (h, w) slice: the network input (S, S) float32 plane, bit-identical to the two
 * scipy zooms of the reference.
 */
export function resampleSliceForNetwork(
  slice: Float32Array,
  h: number,
  w: number,
  inputSize: number,
  size: number,
): Float32Array {
  const fn = 'resampleSliceForNetwork';
  checkTyped(fn, 'slice', slice, Float32Array);
  checkInt(fn, 'h', h, 1);
  checkInt(fn, 'w', w, 1);
  checkInt(fn, 'inputSize', inputSize, 1);
  checkInt(fn, 'size', size, 1);
  if (slice.length !== h * w)
    throw new InferenceError(
      `${fn}: slice has ${slice.length} values, expected h x w = ${h} x ${w} = ${h * w}`,
    );
  let s = slice;
  let nh = h;
  let nw = w;
  if (h !== inputSize || w !== inputSize) {
    const r = zoomBy(s, h, w, inputSize / h, inputSize / w, 3);
    s = r.data;
    nh = r.h;
    nw = r.w;
  }
  if (nh !== size || nw !== size) {
    const r = zoomBy(s, nh, nw, size / nh, size / nw, 3);
    s = r.data;
    nh = r.h;
    nw = r.w;
  }
  if (nh !== size || nw !== size)
    throw new InferenceError(`resampling ${h}x${w} gave ${nh}x${nw}, not the network size ${size}`);
  return s === slice ? Float32Array.from(slice) : s;
}

/** Step 5 for one slice: the (S, S) label plane back to (h, w) with order 0 (no-op when equal). */
export function resampleLabelsBack(labels: Int32Array, size: number, h: number, w: number): Int32Array {
  const fn = 'resampleLabelsBack';
  checkTyped(fn, 'labels', labels, Int32Array);
  checkInt(fn, 'size', size, 1);
  checkInt(fn, 'h', h, 1);
  checkInt(fn, 'w', w, 1);
  if (labels.length !== size * size)
    throw new InferenceError(
      `${fn}: labels has ${labels.length} values, expected size x size = ${size * size}`,
    );
  if (h === size && w === size) return labels;
  const r = zoomBy(labels, size, size, h / size, w / size, 0);
  if (r.h !== h || r.w !== w)
    throw new InferenceError(`resampling labels ${size}x${size} back gave ${r.h}x${r.w}, expected ${h}x${w}`);
  return r.data;
}

/** The volume argument of `fn`: positive integer d, h, w and a finite Float32Array image of d x h x w. */
function checkVolume(fn: string, v: Volume): void {
  if (!isPlainObject(v)) badArg(fn, 'volume', 'an object {id, d, h, w, image}', v);
  const { d, h, w } = v;
  const at = `${fn}: volume '${String(v.id)}'`;
  for (const [k, n] of [
    ['d', d],
    ['h', h],
    ['w', w],
  ] as const)
    if (!Number.isInteger(n) || n < 1) throw new InferenceError(`${at}: invalid ${k} = ${n}`);
  checkTyped(fn, 'volume.image', v.image, Float32Array);
  if (v.image.length !== d * h * w)
    throw new InferenceError(
      `${at}: image has ${v.image.length} values, expected d x h x w = ${d} x ${h} x ${w} = ${d * h * w}`,
    );
  const bad = firstNonFinite(v.image);
  if (bad >= 0) {
    const z = Math.floor(bad / (h * w));
    const r = bad % (h * w);
    throw new InferenceError(
      `${at}: image must be finite, got ${v.image[bad]} at slice ${z}, row ${Math.floor(r / w)}, ` +
        `column ${r % w} (a NaN would turn every label of its slice into background)`,
    );
  }
}

/**
 * Predicted label volume (d, h, w) of `volume.image` (values in [0, 1]) through `predictor`, with
 * the spec §13 resampling. The label field of the volume is not used.
 */
export async function predictVolume(
  predictor: SlicePredictor,
  volume: Pick<Volume, 'id' | 'd' | 'h' | 'w' | 'image'>,
  opts: InferenceOptions = {},
): Promise<Int32Array> {
  return predictVolumeAs('predictVolume', predictor, volume, opts);
}

async function predictVolumeAs(
  fn: string,
  predictor: SlicePredictor,
  volume: Pick<Volume, 'id' | 'd' | 'h' | 'w' | 'image'>,
  opts: InferenceOptions,
): Promise<Int32Array> {
  checkPredictor(fn, predictor);
  checkObject(fn, 'options', opts, true);
  if (opts.onProgress !== undefined && typeof opts.onProgress !== 'function')
    throw new ArgumentError(`${fn}: options.onProgress must be a function, got ${typeof opts.onProgress}`);
  checkVolume(fn, volume as Volume);
  const inputSize = opts.inputSize ?? 224;
  const batch = opts.batchSize ?? 4;
  if (!Number.isInteger(inputSize) || inputSize < 1)
    throw new InferenceError(`${fn}: options.inputSize must be a positive integer, got ${inputSize}`);
  if (!Number.isInteger(batch) || batch < 1)
    throw new InferenceError(`${fn}: options.batchSize must be a positive integer, got ${batch}`);
  const { d, h, w, image } = volume;
  const S = predictor.size;
  const C = predictor.inChans;
  const plane = S * S;
  const out = new Int32Array(d * h * w);

  const prepare = (z0: number): { z0: number; b: number; x: Float32Array } => {
    const b = Math.min(batch, d - z0);
    const x = new Float32Array(b * C * plane);
    for (let i = 0; i < b; i++) {
      const z = z0 + i;
      const s = resampleSliceForNetwork(image.subarray(z * h * w, (z + 1) * h * w), h, w, inputSize, S);
      for (let c = 0; c < C; c++) x.set(s, (i * C + c) * plane);
    }
    return { z0, b, x };
  };

  predictor.begin?.();
  try {
    let next: ReturnType<typeof prepare> | null = prepare(0);
    while (next) {
      const cur: ReturnType<typeof prepare> = next;
      const pending = predictor.run(cur.x, cur.b);
      // host work for the next batch while the device runs this one
      try {
        next = cur.z0 + cur.b < d ? prepare(cur.z0 + cur.b) : null;
      } catch (e) {
        await pending.catch(() => undefined);
        throw e;
      }
      const logits = await pending;
      if (logits.length !== cur.b * predictor.channels * plane)
        throw new InferenceError(
          `${fn}: predictor returned ${logits.length} values for ${cur.b} slices of ${predictor.channels} x ${S} x ${S}`,
        );
      const labels = argmaxChannels(logits, cur.b, predictor.channels, plane);
      for (let i = 0; i < cur.b; i++) {
        const lab = resampleLabelsBack(labels.subarray(i * plane, (i + 1) * plane), S, h, w);
        out.set(lab, (cur.z0 + i) * h * w);
      }
      opts.onProgress?.(cur.z0 + cur.b, d);
    }
  } finally {
    predictor.end?.();
  }
  return out;
}

/** `predictVolume` with a SamLST model (switched to eval mode for the call, then restored). */
export function inferVolume(
  model: SamLST,
  volume: Pick<Volume, 'id' | 'd' | 'h' | 'w' | 'image'>,
  opts: InferenceOptions = {},
): Promise<Int32Array> {
  checkSamLst('inferVolume', model);
  return predictVolumeAs('inferVolume', modelPredictor(model), volume, opts);
}
