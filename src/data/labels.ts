/**
 * Label conventions: SAM-LST / SAMed / TransUNet Synapse 8-organ ids (spec §12), maps from other
 * label sets onto them, and the checks every reader applies to a label map.
 */

import { DataError } from './types.js';

/** Number of classes including background (label index 0..8, spec §12). */
export const NUM_CLASSES = 9;

/** Synapse organ id → name (index 0 = background). */
export const SYNAPSE_ORGANS = [
  'background',
  'spleen',
  'right_kidney',
  'left_kidney',
  'gallbladder',
  'liver',
  'stomach',
  'aorta',
  'pancreas',
] as const;

export type SynapseOrganName = (typeof SYNAPSE_ORGANS)[number];

export const SYNAPSE_ID = {
  background: 0,
  spleen: 1,
  right_kidney: 2,
  left_kidney: 3,
  gallbladder: 4,
  liver: 5,
  stomach: 6,
  aorta: 7,
  pancreas: 8,
} as const satisfies Record<SynapseOrganName, number>;

/**
 * A label map: source id → Synapse id; ids not listed map to 0 (background). Represented as a
 * plain record so it can come from JSON.
 */
export type LabelMap = Readonly<Record<number, number>>;

/** TotalSegmentator v2 `total` task ids → Synapse ids (shared/data/totalsegmentator-example/SOURCE.md). */
export const TOTALSEGMENTATOR_TO_SYNAPSE: LabelMap = {
  1: 1, // spleen
  2: 2, // kidney_right
  3: 3, // kidney_left
  4: 4, // gallbladder
  5: 5, // liver
  6: 6, // stomach
  52: 7, // aorta
  7: 8, // pancreas
};

/**
 * Raw Synapse / BTCV 13-organ ids → the 8-organ ids (spec §12: raw 1,2,3,4,6,7,8,11 → 1..8;
 * esophagus 5, IVC 9, portal/splenic vein 10, adrenals 12/13 → background).
 */
export const BTCV_TO_SYNAPSE: LabelMap = { 1: 1, 2: 2, 3: 3, 4: 4, 6: 5, 7: 6, 8: 7, 11: 8 };

/** Identity on 0..8 (labels already in Synapse ids); anything else is an error, not background. */
export const IDENTITY_MAP: LabelMap = { 0: 0, 1: 1, 2: 2, 3: 3, 4: 4, 5: 5, 6: 6, 7: 7, 8: 8 };

/** Named label maps accepted by the readers. */
export const LABEL_MAPS = {
  synapse: null, // already Synapse ids: validated, not remapped
  totalsegmentator: TOTALSEGMENTATOR_TO_SYNAPSE,
  btcv: BTCV_TO_SYNAPSE,
} as const;

export type LabelMapName = keyof typeof LABEL_MAPS;

/**
 * Organ names as they appear in mask file names (SAM-Med2D / SA-Med2D-20M, AMOS, TotalSegmentator)
 * → Synapse id. Organs not listed (inferior_vena_cava, ribs, …) are background.
 */
const ORGAN_ALIASES: Record<string, number> = {
  spleen: 1,
  kidney_right: 2,
  right_kidney: 2,
  kidney_r: 2,
  rkidney: 2,
  kidney_left: 3,
  left_kidney: 3,
  kidney_l: 3,
  lkidney: 3,
  gallbladder: 4,
  gall_bladder: 4,
  liver: 5,
  stomach: 6,
  aorta: 7,
  pancreas: 8,
};

/** Synapse id for an organ name from a mask file name (0 when it is not one of the 8 organs). */
export function organNameToSynapse(name: string): number {
  const key = name
    .trim()
    .toLowerCase()
    .replace(/[\s-]+/g, '_');
  return ORGAN_ALIASES[key] ?? 0;
}

export function resolveLabelMap(m: LabelMapName | LabelMap | null | undefined): LabelMap | null {
  if (m === undefined || m === null) return null;
  if (typeof m === 'string') {
    if (!(m in LABEL_MAPS))
      throw new Error(
        `unknown label map '${m}' (known: ${Object.keys(LABEL_MAPS).join(', ')}, or an id → id record)`,
      );
    return LABEL_MAPS[m];
  }
  for (const [k, v] of Object.entries(m)) {
    if (!Number.isInteger(Number(k)) || !Number.isInteger(v) || v < 0 || v >= NUM_CLASSES)
      throw new Error(`label map entry ${k} → ${String(v)} is not an integer id in 0..${NUM_CLASSES - 1}`);
  }
  return m;
}

/**
 * Convert label values to Int32 Synapse ids, applying `map` (unlisted ids → 0) and checking that
 * every value is a finite integer and, after mapping, in 0..8. Errors name `source`.
 */
export function toSynapseLabels(
  values: ArrayLike<number>,
  source: string,
  map: LabelMap | null = null,
): Int32Array {
  const out = new Int32Array(values.length);
  const lut = new Int32Array(256).fill(-1);
  if (map) {
    lut.fill(0);
    for (const [k, v] of Object.entries(map)) {
      const kk = Number(k);
      if (kk >= 0 && kk < 256) lut[kk] = v;
    }
  }
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!;
    if (!Number.isFinite(v)) throw new DataError(`${source}: label value ${v} at index ${i} is not finite`);
    if (!Number.isInteger(v))
      throw new DataError(`${source}: label value ${v} at index ${i} is not an integer class id`);
    let id: number;
    if (map) {
      id = v >= 0 && v < 256 ? lut[v]! : (map[v] ?? 0);
    } else id = v;
    if (id < 0 || id >= NUM_CLASSES)
      throw new DataError(
        `${source}: label value ${v} at index ${i} is outside 0..${NUM_CLASSES - 1}` +
          (map ? ' after mapping' : ' (pass a label map if these are not Synapse ids)'),
      );
    out[i] = id;
  }
  return out;
}

/** Throws (naming `source`) if any image value is NaN or infinite. */
export function checkFinite(values: ArrayLike<number>, source: string, what = 'image'): void {
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!;
    if (!Number.isFinite(v))
      throw new DataError(`${source}: ${what} value ${v} at index ${i} is not finite (NaN/Inf in the data)`);
  }
}

/** Voxel count per Synapse id (length 9). */
export function labelCounts(label: ArrayLike<number>): number[] {
  const c = new Array<number>(NUM_CLASSES).fill(0);
  for (let i = 0; i < label.length; i++) {
    const v = label[i]!;
    if (v >= 0 && v < NUM_CLASSES) c[v] = c[v]! + 1;
  }
  return c;
}

/** TransUNet HU windowing: clip to [lo, hi] and scale to [0, 1] (float32). */
export function windowHU(values: ArrayLike<number>, lo = -125, hi = 275): Float32Array {
  const out = new Float32Array(values.length);
  const range = hi - lo;
  for (let i = 0; i < values.length; i++) {
    let v = values[i]!;
    if (v < lo) v = lo;
    else if (v > hi) v = hi;
    out[i] = (v - lo) / range;
  }
  return out;
}
