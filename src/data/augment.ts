/**
 * SAM-LST's training augmentation (`RandomGenerator`, spec §12) as a pure description plus apply():
 *
 *   if random() > 0.5:          rot90 by k ∈ {0,1,2,3}, then flip along axis ∈ {0,1}     (50 %)
 *   elif random() > 0.5:        rotate by an integer angle in [−20, 19]°, order 0,
 *                               reshape=False, constant 0                               (25 %)
 *   else:                       nothing                                                 (25 %)
 *   then zoom image (order 3) and label (order 0) to S×S when the slice is not already S×S,
 *   and zoom the S×S label to S/4 (order 0) for the low-resolution loss target.
 *
 * The description is what a training loop keys its encoder-embedding cache on: the same slice
 * with the same `augmentationKey` always gives the same network input. `augmentationVariants()`
 * lists all 49 possible descriptions with their probabilities, and `sampleAugmentation(rng,
 * variants)` can draw from a restricted finite set.
 */
import type { Rng } from '../util/rng.js';
import { flip, rot90, rotate2d, zoom2d } from './resample.js';

export type Augmentation =
  { kind: 'none' } | { kind: 'rotflip'; k: 0 | 1 | 2 | 3; axis: 0 | 1 } | { kind: 'rotate'; angle: number };

/** Stable string key of an augmentation ('none', 'rotflip:k1:a0', 'rotate:-13'). */
export function augmentationKey(a: Augmentation): string {
  switch (a.kind) {
    case 'none':
      return 'none';
    case 'rotflip':
      return `rotflip:k${a.k}:a${a.axis}`;
    case 'rotate':
      return `rotate:${a.angle}`;
  }
}

/** Inverse of augmentationKey. */
export function parseAugmentationKey(key: string): Augmentation {
  if (key === 'none') return { kind: 'none' };
  let m = /^rotflip:k([0-3]):a([01])$/.exec(key);
  if (m) return { kind: 'rotflip', k: Number(m[1]) as 0 | 1 | 2 | 3, axis: Number(m[2]) as 0 | 1 };
  m = /^rotate:(-?\d+)$/.exec(key);
  if (m) return { kind: 'rotate', angle: Number(m[1]) };
  throw new Error(`not an augmentation key: '${key}'`);
}

/** Draw one augmentation exactly as RandomGenerator does, from a seeded Rng. */
export function randomAugmentation(rng: Rng): Augmentation {
  if (rng.next() > 0.5) {
    const k = rng.int(0, 4) as 0 | 1 | 2 | 3;
    const axis = rng.int(0, 2) as 0 | 1;
    return { kind: 'rotflip', k, axis };
  }
  if (rng.next() > 0.5) return { kind: 'rotate', angle: rng.int(-20, 20) };
  return { kind: 'none' };
}

/** All 49 augmentations with their RandomGenerator probabilities (sum 1). */
export function augmentationVariants(): { aug: Augmentation; p: number }[] {
  const out: { aug: Augmentation; p: number }[] = [];
  for (let k = 0; k < 4; k++)
    for (let axis = 0; axis < 2; axis++)
      out.push({ aug: { kind: 'rotflip', k: k as 0 | 1 | 2 | 3, axis: axis as 0 | 1 }, p: 0.5 / 8 });
  for (let angle = -20; angle < 20; angle++) out.push({ aug: { kind: 'rotate', angle }, p: 0.25 / 40 });
  out.push({ aug: { kind: 'none' }, p: 0.25 });
  return out;
}

/**
 * Draw from a finite set of augmentations: with no set, exactly RandomGenerator; with a set,
 * each element with probability proportional to its RandomGenerator probability (uniform when the
 * set has none of them weighted, e.g. custom angles).
 */
export function sampleAugmentation(rng: Rng, variants?: readonly Augmentation[]): Augmentation {
  if (!variants) return randomAugmentation(rng);
  if (variants.length === 0) throw new Error('sampleAugmentation: empty variant set');
  const weight = (a: Augmentation): number =>
    a.kind === 'none' ? 0.25 : a.kind === 'rotflip' ? 0.5 / 8 : 0.25 / 40;
  let total = 0;
  for (const v of variants) total += weight(v);
  let u = rng.next() * total;
  for (const v of variants) {
    u -= weight(v);
    if (u < 0) return v;
  }
  return variants[variants.length - 1]!;
}

export interface AugmentedSample {
  /** S×S float32 (one channel; the model replicates it to 3). */
  image: Float32Array;
  /** S×S class ids. */
  label: Int32Array;
  /** lowRes×lowRes class ids (default S/4), the loss target. */
  lowResLabel: Int32Array;
  size: number;
  lowRes: number;
}

/** Apply only the geometric part (rot90+flip / rotate / none) at the slice's own size. */
export function applyGeometric(
  image: Float32Array,
  label: Int32Array,
  h: number,
  w: number,
  aug: Augmentation,
): { image: Float32Array; label: Int32Array; h: number; w: number } {
  if (image.length !== h * w || label.length !== h * w)
    throw new Error(
      `applyGeometric: image/label lengths ${image.length}/${label.length} do not match ${h}x${w}`,
    );
  switch (aug.kind) {
    case 'none':
      return { image, label, h, w };
    case 'rotflip': {
      const ri = rot90(image, h, w, aug.k);
      const rl = rot90(label, h, w, aug.k);
      return {
        image: flip(ri.data, ri.h, ri.w, aug.axis),
        label: flip(rl.data, rl.h, rl.w, aug.axis),
        h: ri.h,
        w: ri.w,
      };
    }
    case 'rotate':
      if (!Number.isFinite(aug.angle)) throw new Error(`applyGeometric: bad angle ${aug.angle}`);
      return {
        image: rotate2d(image, h, w, aug.angle, 0),
        label: rotate2d(label, h, w, aug.angle, 0),
        h,
        w,
      };
  }
}

/**
 * The full RandomGenerator transform for a given augmentation: geometric op, zoom to size×size
 * (image order 3, label order 0; skipped when already size×size) and the low-res label.
 */
export function applyAugmentation(
  image: Float32Array,
  label: Int32Array,
  h: number,
  w: number,
  aug: Augmentation,
  size: number,
  lowRes = size / 4,
): AugmentedSample {
  if (!Number.isInteger(size) || size < 1) throw new Error(`applyAugmentation: invalid size ${size}`);
  if (!Number.isInteger(lowRes) || lowRes < 1)
    throw new Error(`applyAugmentation: invalid low-res size ${lowRes}`);
  const g = applyGeometric(image, label, h, w, aug);
  let img = g.image;
  let lab = g.label;
  if (g.h !== size || g.w !== size) {
    img = zoom2d(g.image, g.h, g.w, size, size, 3);
    lab = zoom2d(g.label, g.h, g.w, size, size, 0);
  } else if (aug.kind === 'none') {
    img = Float32Array.from(img);
    lab = Int32Array.from(lab);
  }
  const lowResLabel = zoom2d(lab, size, size, lowRes, lowRes, 0);
  return { image: img, label: lab, lowResLabel, size, lowRes };
}
