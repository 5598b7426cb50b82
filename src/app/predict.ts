/**
 * Prediction for one NIfTI image: read it with the data layer's reader (src/data/nifti.ts: voxel
 * order (d, h, w) = (z, y, x), the C order of the file), window HU as training does ([-125, 275] →
 * [0, 1] by default), run per-volume inference (inference.ts), and hand back the label volume in
 * the same voxel order together with the input's header geometry, so the mask written by
 * `encodePrediction` has the input's dims, pixdim and qform/sform and overlays it in a viewer.
 *
 * orientation 'radiological' (for models trained with the data layer's radiological option) flips
 * rows/columns of an axis-aligned image before inference and flips the prediction back, so the
 * written mask is still in the file's voxel order.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseNifti } from '../data/nifti.js';
import { checkFinite, windowHU } from '../data/labels.js';
import { encodeNifti, readNiftiGeometry, type NiftiGeometry } from '../io/nifti_write.js';
import { SamLST } from '../nn/sam_lst.js';
import {
  modelPredictor,
  predictVolume,
  type InferenceOptions,
  type SlicePredictor,
} from '../eval/inference.js';
import { pickSlices, radiologicalDisplayFlips, sliceOverlayPng } from '../eval/overlay.js';
import { ArgumentError, badArg, checkObject, checkString, checkTyped, isPlainObject } from '../util/args.js';

export interface PredictNiftiOptions extends InferenceOptions {
  /** HU window mapped to [0, 1] (default [-125, 275], as training); null: use values as they are. */
  window?: [number, number] | null;
  /** Orientation the model was trained with (default 'stored', TransUNet's). */
  orientation?: 'stored' | 'radiological';
}

export interface NiftiPrediction {
  source: string;
  /** (d, h, w) = (z, y, x). */
  shape: [number, number, number];
  /** The network's view of the input: windowed, in the file's voxel order. */
  image: Float32Array;
  /** Label ids in the file's voxel order. */
  prediction: Int32Array;
  geometry: NiftiGeometry;
  affine: number[][];
  spacing: [number, number, number];
  /** Voxels per label id 0..max. */
  counts: number[];
}

export class PredictError extends Error {
  override name = 'PredictError';
}

/** A `predictNifti` result: its shape (d, h, w), an Int32Array prediction and a Float32Array image. */
function checkPrediction(fn: string, p: unknown): asserts p is NiftiPrediction {
  const o = p as Partial<NiftiPrediction> | null;
  if (
    !isPlainObject(o) ||
    !Array.isArray(o.shape) ||
    o.shape.length !== 3 ||
    o.shape.some((d) => !Number.isInteger(d) || d < 1)
  )
    badArg(fn, 'prediction', 'a predictNifti() result', p);
  checkTyped(fn, 'prediction.prediction', o.prediction, Int32Array);
  const [d, h, w] = o.shape;
  if (o.prediction.length !== d * h * w)
    throw new ArgumentError(
      `${fn}: prediction.prediction has ${o.prediction.length} values, expected d x h x w = ${d * h * w}`,
    );
}

function flipPlanes<T extends Float32Array | Int32Array>(
  a: T,
  d: number,
  h: number,
  w: number,
  rows: boolean,
  cols: boolean,
): T {
  if (!rows && !cols) return a;
  const out = new (a.constructor as new (n: number) => T)(a.length);
  for (let z = 0; z < d; z++)
    for (let y = 0; y < h; y++) {
      const sy = rows ? h - 1 - y : y;
      for (let x = 0; x < w; x++) out[(z * h + y) * w + x] = a[(z * h + sy) * w + (cols ? w - 1 - x : x)]!;
    }
  return out;
}

/** Runs the model on a NIfTI image's bytes (see the file comment). `source` names the file in errors. */
export async function predictNifti(
  model: SamLST | SlicePredictor,
  bytes: Uint8Array,
  source: string,
  opts: PredictNiftiOptions = {},
): Promise<NiftiPrediction> {
  const fn = 'predictNifti';
  const m = model as Partial<SlicePredictor> | null;
  if (!(model instanceof SamLST) && !(isPlainObject(m) && typeof m.run === 'function'))
    badArg(fn, 'model', 'a SamLST model or a SlicePredictor', model);
  if (!(bytes instanceof Uint8Array))
    badArg(fn, 'bytes', "the NIfTI file's bytes as a Uint8Array (.nii or .nii.gz)", bytes);
  checkString(fn, 'source', source);
  checkObject(fn, 'options', opts, true);
  const ww = opts.window;
  if (
    ww !== undefined &&
    ww !== null &&
    !(Array.isArray(ww) && ww.length === 2 && ww.every((v) => typeof v === 'number' && Number.isFinite(v)))
  )
    badArg(fn, 'options.window', 'a [low, high] pair of finite HU values, or null', ww);
  if (opts.orientation !== undefined && opts.orientation !== 'stored' && opts.orientation !== 'radiological')
    badArg(fn, 'options.orientation', "'stored' or 'radiological'", opts.orientation);
  const nii = parseNifti(bytes, source);
  const geometry = readNiftiGeometry(bytes, source);
  checkFinite(nii.data, source);
  const win = opts.window === undefined ? ([-125, 275] as [number, number]) : opts.window;
  if (win && !(win[1] > win[0])) throw new PredictError(`HU window [${win.join(', ')}] is empty`);
  const image = win ? windowHU(nii.data, win[0], win[1]) : Float32Array.from(nii.data);
  const { d, h, w } = nii;
  let flips = { flipRows: false, flipCols: false };
  if (opts.orientation === 'radiological') {
    const a = nii.affine;
    const dom = (j: number) => {
      const c = [a[0]?.[j] ?? 0, a[1]?.[j] ?? 0, a[2]?.[j] ?? 0].map(Math.abs);
      return c.indexOf(Math.max(...c));
    };
    if (dom(0) !== 0 || dom(1) !== 1)
      throw new PredictError(`${source}: orientation 'radiological' needs an axial, axis-aligned affine`);
    flips = radiologicalDisplayFlips(a);
  }
  const netImage = flipPlanes(image, d, h, w, flips.flipRows, flips.flipCols);
  const predictor =
    'run' in model && typeof model.run === 'function' ? model : modelPredictor(model as SamLST);
  const pred = await predictVolume(predictor, { id: source, d, h, w, image: netImage }, opts);
  const prediction = flipPlanes(pred, d, h, w, flips.flipRows, flips.flipCols);
  const counts: number[] = [];
  for (let i = 0; i < prediction.length; i++) {
    const l = prediction[i]!;
    while (counts.length <= l) counts.push(0);
    counts[l]!++;
  }
  return {
    source,
    shape: [d, h, w],
    image,
    prediction,
    geometry,
    affine: nii.affine,
    spacing: nii.spacing,
    counts,
  };
}

/** The prediction as a NIfTI-1 label map (uint8, intent NIFTI_INTENT_LABEL) with the input's geometry. */
export function encodePrediction(p: NiftiPrediction, gzip: boolean): Uint8Array {
  checkPrediction('encodePrediction', p);
  if (typeof gzip !== 'boolean') badArg('encodePrediction', 'gzip', 'a boolean', gzip);
  return encodeNifti(p.prediction, p.shape, {
    geometry: p.geometry,
    datatype: 'uint8',
    gzip,
    intentCode: 1002,
    description: 'SAM-LST prediction',
  });
}

/**
 * Overlay PNGs (input | prediction, radiological display for axis-aligned affines) of the given
 * slices (default: the 3 with the most predicted foreground) into `dir`. Returns the paths.
 */
export function writePredictionOverlays(
  p: NiftiPrediction,
  dir: string,
  slices?: readonly number[] | null,
  stem = 'prediction',
): string[] {
  const fn = 'writePredictionOverlays';
  checkPrediction(fn, p);
  checkString(fn, 'dir', dir);
  checkString(fn, 'stem', stem);
  if (slices !== undefined && slices !== null && !Array.isArray(slices))
    badArg(fn, 'slices', 'an array of slice indexes, or null', slices);
  const [d] = p.shape;
  const zs = slices && slices.length ? [...slices] : pickSlices(p.prediction, p.shape, 3);
  for (const z of zs)
    if (!Number.isInteger(z) || z < 0 || z >= d)
      throw new PredictError(`--slices: slice ${z} is outside 0..${d - 1} (${p.source} has ${d} slices)`);
  mkdirSync(dir, { recursive: true });
  const flips = radiologicalDisplayFlips(p.affine);
  const out: string[] = [];
  for (const z of zs) {
    const file = join(dir, `${stem}_slice${String(z).padStart(3, '0')}.png`);
    writeFileSync(
      file,
      sliceOverlayPng(
        p.image,
        p.shape,
        z,
        [
          { labels: null, caption: 'input' },
          { labels: p.prediction, caption: 'prediction' },
        ],
        { title: `${stem} slice ${z}`, ...flips },
      ),
    );
    out.push(file);
  }
  return out;
}
