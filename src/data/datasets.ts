/**
 * One entry point for every data source: `openDataset(dirOrSpec)` detects the layout, validates
 * the files up front (before any training starts) and returns a `Dataset` of training slices and
 * test volumes with the common shapes from ./types.ts.
 *
 * Layouts:
 *  - 'synapse': TransUNet/SAMed `train_npz/` + `test_vol_h5/` (+ lists), see ./synapse.ts.
 *  - 'nifti':   image/label NIfTI pairs (HU window [-125, 275] → [0, 1], (H,W,D) → (D,W,H)),
 *               from explicit pairs or a folder: `imagesTr/`+`labelsTr/` (same file names, images
 *               may carry a `_0000` channel suffix), `img/`+`label/` (raw Synapse
 *               `imgXXXX`/`labelXXXX`, BTCV label map by default), or a flat folder where each
 *               `*seg*`/`*label*` file is paired with the image of the same prefix and shape.
 *               Every axial slice is a training slice; each pair is a test volume.
 *  - 'png':     SAM-Med2D demo: `images/<stem>.png` + `masks/<stem>_<organ>_<n>.png`; organ names
 *               mapped to Synapse ids; each image is a training slice and a 1-slice test volume.
 *  - 'phantom': synthetic cases from ./phantom.ts ('phantom', 'phantom:<seed>' or a spec).
 */
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { NUM_CLASSES, organNameToSynapse, type LabelMap, type LabelMapName } from './labels.js';
import { niftiPairToVolume, parseNifti } from './nifti.js';
import {
  phantomCaseSeeds,
  phantomCase,
  phantomSliceTs,
  phantomVolume,
  renderPhantomSlice,
} from './phantom.js';
import { decodeGreyPng, decodeMaskPng } from './png.js';
import {
  looksLikeSynapse,
  naturalCompare,
  readSynapseSlice,
  readSynapseVolume,
  resolveSynapseLayout,
} from './synapse.js';
import { DataError, type Dataset, type Slice, type Source, type Volume } from './types.js';

export type { Dataset, Slice, Source, Volume } from './types.js';

export interface NiftiPairSpec {
  id?: string;
  image: string;
  label: string;
}

export type DatasetSpec =
  | string
  | { kind: 'synapse'; root: string; listDir?: string }
  | {
      kind: 'nifti';
      root?: string;
      pairs?: NiftiPairSpec[];
      labelMap?: LabelMapName | LabelMap | null;
      window?: [number, number] | null;
      orientation?: 'stored' | 'radiological';
      /** which axial slices become training slices (default 'all') */
      trainSlices?: 'all' | 'labelled';
    }
  | { kind: 'png'; root: string }
  | {
      kind: 'phantom';
      seed?: number;
      trainCases?: number;
      testCases?: number;
      /** training slice size (default 224) */
      size?: number;
      /** test volume in-plane size (default 512, like Synapse test volumes) */
      testSize?: number;
      /** slices per test volume (default 48) */
      depth?: number;
      /** training slices per training case (default 24) */
      slicesPerCase?: number;
    };

export interface OpenOptions {
  /** 'full' (default) reads and checks every file; 'quick' checks existence, headers and shapes. */
  validate?: 'full' | 'quick';
  /** Keep loaded items in memory (default false). */
  cache?: boolean;
  /** Defaults for NIfTI folders opened by path. */
  labelMap?: LabelMapName | LabelMap | null;
  orientation?: 'stored' | 'radiological';
}

const isDir = (p: string): boolean => existsSync(p) && statSync(p).isDirectory();

function source<T>(ids: string[], load: (i: number) => Promise<T> | T, cache: boolean): Source<T> {
  const memo = new Map<number, Promise<T>>();
  return {
    ids,
    size: ids.length,
    get(i: number): Promise<T> {
      if (!Number.isInteger(i) || i < 0 || i >= ids.length)
        return Promise.reject(new RangeError(`index ${i} outside 0..${ids.length - 1}`));
      const hit = memo.get(i);
      if (hit) return hit;
      const p = Promise.resolve().then(() => load(i));
      if (cache) memo.set(i, p);
      return p;
    },
  };
}

// ---------------------------------------------------------------------------- synapse

async function openSynapse(root: string, listDir: string | undefined, o: OpenOptions): Promise<Dataset> {
  const lay = resolveSynapseLayout(root, listDir ? { listDir } : {});
  const full = (o.validate ?? 'full') === 'full';
  const trainPath = (n: string) => join(lay.trainDir!, `${n}.npz`);
  const testPath = (n: string) => join(lay.testDir!, `${n}.npy.h5`);
  // validate up front
  for (const n of lay.train) {
    const p = trainPath(n);
    if (full) readSynapseSlice(p, n);
    else if (statSync(p).size === 0) throw new DataError(`${p}: file is empty`);
  }
  for (const n of lay.test) await readSynapseVolume(testPath(n), n, full);
  return {
    layout: 'synapse',
    root: resolve(root),
    train: lay.trainDir
      ? source(lay.train, (i) => readSynapseSlice(trainPath(lay.train[i]!), lay.train[i]!), !!o.cache)
      : null,
    test: lay.testDir
      ? source(lay.test, (i) => readSynapseVolume(testPath(lay.test[i]!), lay.test[i]!), !!o.cache)
      : null,
    notes: lay.notes,
  };
}

// ---------------------------------------------------------------------------- nifti

const NII = /\.nii(\.gz)?$/;
const stripNii = (f: string) => f.replace(NII, '');

function readBytes(path: string): Uint8Array {
  if (!existsSync(path)) throw new DataError(`${path}: file not found`);
  try {
    return readFileSync(path);
  } catch (e) {
    throw new DataError(`${path}: cannot read file (${(e as Error).message})`);
  }
}

/** Find image/label pairs in a folder (see module doc). */
export function findNiftiPairs(root: string): {
  pairs: NiftiPairSpec[];
  labelMap: LabelMapName | null;
  notes: string[];
} {
  if (!isDir(root)) throw new DataError(`${root}: dataset folder not found`);
  const notes: string[] = [];
  const list = (d: string) =>
    readdirSync(d)
      .filter((f) => NII.test(f))
      .sort(naturalCompare);
  // imagesTr / labelsTr (MSD, nnU-Net)
  for (const [id, ld] of [
    ['imagesTr', 'labelsTr'],
    ['images', 'labels'],
  ] as const) {
    if (isDir(join(root, id)) && isDir(join(root, ld))) {
      const labels = list(join(root, ld));
      if (labels.length === 0) throw new DataError(`${join(root, ld)}: no .nii/.nii.gz label files`);
      const images = new Map(list(join(root, id)).map((f) => [stripNii(f).replace(/_0000$/, ''), f]));
      const pairs = labels.map((lf) => {
        const key = stripNii(lf);
        const imf = images.get(key);
        if (!imf) throw new DataError(`${join(root, ld, lf)}: no matching image in ${join(root, id)}`);
        return { id: key, image: join(root, id, imf), label: join(root, ld, lf) };
      });
      return { pairs, labelMap: null, notes };
    }
  }
  // raw Synapse: img/imgXXXX.nii.gz + label/labelXXXX.nii.gz
  if (isDir(join(root, 'img')) && isDir(join(root, 'label'))) {
    const images = list(join(root, 'img'));
    if (images.length === 0) throw new DataError(`${join(root, 'img')}: no .nii/.nii.gz files`);
    const pairs = images.map((f) => {
      const num = stripNii(f).replace(/^img/, '');
      const lf = readdirSync(join(root, 'label')).find((x) => stripNii(x) === `label${num}`);
      if (!lf)
        throw new DataError(`${join(root, 'img', f)}: no label${num}.nii(.gz) in ${join(root, 'label')}`);
      return { id: `case${num}`, image: join(root, 'img', f), label: join(root, 'label', lf) };
    });
    notes.push('raw Synapse layout: BTCV label ids mapped to the 8 organs');
    return { pairs, labelMap: 'btcv', notes };
  }
  // flat folder: *seg* / *label* files paired with the image of the same prefix and shape
  const files = list(root);
  if (files.length === 0) throw new DataError(`${root}: no .nii/.nii.gz files`);
  const isLabel = (f: string) => /(seg|label|mask|gt)/i.test(stripNii(f));
  const labels = files.filter(isLabel);
  const images = files.filter((f) => !isLabel(f));
  if (labels.length === 0)
    throw new DataError(`${root}: no label files (names containing seg/label/mask/gt)`);
  const dims = new Map<string, string>();
  const dimOf = (f: string) => {
    let d = dims.get(f);
    if (!d) {
      const v = parseNifti(readBytes(join(root, f)), join(root, f));
      d = `${v.w}x${v.h}x${v.d}`;
      dims.set(f, d);
    }
    return d;
  };
  const pairs = labels.map((lf) => {
    const prefix = stripNii(lf)
      .replace(/[_-]?(seg|segmentation|label|labels|mask|gt)$/i, '')
      .replace(/[_-]?(seg|label|mask|gt)[_-]?/i, '');
    let cands = images.filter((f) => stripNii(f).startsWith(prefix));
    if (cands.length === 0) cands = images;
    const want = dimOf(lf);
    const match = cands.filter((f) => dimOf(f) === want);
    if (match.length === 0)
      throw new DataError(
        `${join(root, lf)}: no image with the label's shape (${want}) among ${cands.join(', ') || 'none'}`,
      );
    if (match.length > 1) notes.push(`${lf}: several images match (${match.join(', ')}); using ${match[0]}`);
    return { id: stripNii(match[0]!), image: join(root, match[0]!), label: join(root, lf) };
  });
  return { pairs, labelMap: null, notes };
}

async function openNifti(spec: Extract<DatasetSpec, { kind: 'nifti' }>, o: OpenOptions): Promise<Dataset> {
  let pairs = spec.pairs;
  let labelMap: LabelMapName | LabelMap | null | undefined =
    spec.labelMap !== undefined ? spec.labelMap : o.labelMap;
  const notes: string[] = [];
  if (!pairs) {
    if (!spec.root) throw new DataError('nifti dataset: give a root folder or explicit pairs');
    const found = findNiftiPairs(spec.root);
    pairs = found.pairs;
    notes.push(...found.notes);
    if (labelMap === undefined) labelMap = found.labelMap;
  }
  if (pairs.length === 0) throw new DataError(`${spec.root ?? 'nifti dataset'}: no image/label pairs`);
  const ids = pairs.map((p, i) => p.id ?? (stripNii(basename(p.image)) || `case${i}`));
  if (new Set(ids).size !== ids.length)
    throw new DataError(`nifti dataset: duplicate case ids (${ids.join(', ')})`);
  const popts = {
    labelMap: labelMap ?? null,
    window: spec.window === undefined ? ([-125, 275] as [number, number]) : spec.window,
    orientation: spec.orientation ?? o.orientation ?? 'stored',
  };
  const load = (i: number): Volume => {
    const p = pairs[i]!;
    return niftiPairToVolume(ids[i]!, readBytes(p.image), readBytes(p.label), p.image, p.label, popts);
  };
  // validate every pair up front and index the training slices
  const sliceIds: string[] = [];
  const sliceRef: [number, number][] = [];
  for (let i = 0; i < pairs.length; i++) {
    const v = load(i);
    for (let z = 0; z < v.d; z++) {
      if (spec.trainSlices === 'labelled') {
        let any = false;
        const s = v.label.subarray(z * v.h * v.w, (z + 1) * v.h * v.w);
        for (let k = 0; k < s.length && !any; k++) any = s[k]! > 0;
        if (!any) continue;
      }
      sliceIds.push(`${ids[i]}_slice${String(z).padStart(3, '0')}`);
      sliceRef.push([i, z]);
    }
  }
  // small LRU so consecutive slices of one volume do not re-decode the file
  const lru = new Map<number, Volume>();
  const vol = (i: number): Volume => {
    let v = lru.get(i);
    if (v) {
      lru.delete(i);
      lru.set(i, v);
      return v;
    }
    v = load(i);
    lru.set(i, v);
    while (lru.size > 2) lru.delete(lru.keys().next().value!);
    return v;
  };
  const cache = !!o.cache;
  return {
    layout: 'nifti',
    root: resolve(spec.root ?? '.'),
    train: source(
      sliceIds,
      (k): Slice => {
        const [i, z] = sliceRef[k]!;
        const v = vol(i);
        const n = v.h * v.w;
        return {
          id: sliceIds[k]!,
          h: v.h,
          w: v.w,
          image: v.image.slice(z * n, (z + 1) * n),
          label: v.label.slice(z * n, (z + 1) * n),
        };
      },
      cache,
    ),
    test: source(ids, (i) => vol(i), cache),
    notes,
  };
}

// ---------------------------------------------------------------------------- png

interface PngItem {
  id: string;
  image: string;
  masks: { file: string; organ: string; id: number }[];
}

/** Index a SAM-Med2D style folder: images/<stem>.png with masks/<stem>_<organ>_<n>.png. */
export function indexPngFolder(root: string): { items: PngItem[]; notes: string[] } {
  const imDir = join(root, 'images');
  const maskDir = join(root, 'masks');
  if (!isDir(imDir)) throw new DataError(`${root}: no images/ folder`);
  const images = readdirSync(imDir)
    .filter((f) => f.toLowerCase().endsWith('.png'))
    .sort(naturalCompare);
  if (images.length === 0) throw new DataError(`${imDir}: folder has no .png images`);
  const masks = isDir(maskDir) ? readdirSync(maskDir).filter((f) => f.toLowerCase().endsWith('.png')) : [];
  const notes: string[] = [];
  if (!isDir(maskDir)) notes.push(`${root}: no masks/ folder, all labels are background`);
  const stems = images.map((f) => f.slice(0, -4)).sort((a, b) => b.length - a.length);
  const items = new Map<string, PngItem>(
    images.map((f) => [f.slice(0, -4), { id: f.slice(0, -4), image: join(imDir, f), masks: [] }]),
  );
  for (const m of masks.sort(naturalCompare)) {
    const base = m.slice(0, -4);
    const stem = stems.find((s) => base.startsWith(`${s}_`));
    if (!stem) {
      notes.push(`${join(maskDir, m)}: no image for this mask, ignored`);
      continue;
    }
    const organ = base.slice(stem.length + 1).replace(/_\d+$/, '');
    items.get(stem)!.masks.push({ file: join(maskDir, m), organ, id: organNameToSynapse(organ) });
  }
  for (const it of items.values())
    if (!it.masks.some((m) => m.id > 0))
      notes.push(`${it.image}: no mask of the 8 Synapse organs, label is all background`);
  return { items: [...items.values()].sort((a, b) => naturalCompare(a.id, b.id)), notes };
}

function loadPngItem(it: PngItem): Slice {
  const img = decodeGreyPng(readBytes(it.image), it.image);
  const label = new Int32Array(img.h * img.w);
  for (const m of it.masks) {
    const mk = decodeMaskPng(readBytes(m.file), m.file);
    if (mk.h !== img.h || mk.w !== img.w)
      throw new DataError(`${m.file}: mask is ${mk.w}x${mk.h} but image ${it.image} is ${img.w}x${img.h}`);
    if (m.id === 0) continue;
    for (let k = 0; k < label.length; k++) if (mk.data[k]) label[k] = m.id;
  }
  for (let k = 0; k < img.data.length; k++)
    if (!Number.isFinite(img.data[k]!)) throw new DataError(`${it.image}: non-finite pixel at ${k}`);
  return { id: it.id, h: img.h, w: img.w, image: img.data, label };
}

async function openPng(root: string, o: OpenOptions): Promise<Dataset> {
  const { items, notes } = indexPngFolder(root);
  for (const it of items) loadPngItem(it); // validate every file
  const ids = items.map((i) => i.id);
  return {
    layout: 'png',
    root: resolve(root),
    train: source(ids, (i) => loadPngItem(items[i]!), !!o.cache),
    test: source(
      ids,
      (i): Volume => {
        const s = loadPngItem(items[i]!);
        return { id: s.id, d: 1, h: s.h, w: s.w, image: s.image, label: s.label };
      },
      !!o.cache,
    ),
    notes,
  };
}

// ---------------------------------------------------------------------------- phantom

function openPhantom(spec: Extract<DatasetSpec, { kind: 'phantom' }>, o: OpenOptions): Dataset {
  const seed = spec.seed ?? 0;
  const nTrain = spec.trainCases ?? 18;
  const nTest = spec.testCases ?? 12;
  const size = spec.size ?? 224;
  const testSize = spec.testSize ?? 512;
  const depth = spec.depth ?? 48;
  const per = spec.slicesPerCase ?? 24;
  for (const [k, v] of Object.entries({
    trainCases: nTrain,
    testCases: nTest,
    size,
    testSize,
    depth,
    slicesPerCase: per,
  }))
    if (!Number.isInteger(v) || v < (k.endsWith('Cases') ? 0 : 1))
      throw new DataError(`phantom dataset: invalid ${k} ${v}`);
  const trainSeeds = phantomCaseSeeds('train', nTrain, seed);
  const testSeeds = phantomCaseSeeds('test', nTest, seed);
  const ts = phantomSliceTs(per);
  const sliceIds: string[] = [];
  for (const s of trainSeeds)
    ts.forEach((_, z) => sliceIds.push(`phantom${s}_slice${String(z).padStart(3, '0')}`));
  return {
    layout: 'phantom',
    root: `phantom:${seed}`,
    train: nTrain
      ? source(
          sliceIds,
          (k): Slice => {
            const c = Math.floor(k / per);
            const r = renderPhantomSlice(phantomCase(trainSeeds[c]!), ts[k % per]!, size, size);
            return { id: sliceIds[k]!, h: size, w: size, image: r.image, label: r.label };
          },
          !!o.cache,
        )
      : null,
    test: nTest
      ? source(
          testSeeds.map((s) => `phantom${s}`),
          (i) => phantomVolume(testSeeds[i]!, depth, testSize),
          !!o.cache,
        )
      : null,
    notes: [],
  };
}

// ---------------------------------------------------------------------------- entry point

/** Which layout a folder holds (throws a DataError describing what was looked for). */
export function detectLayout(root: string): 'synapse' | 'nifti' | 'png' {
  if (!existsSync(root)) throw new DataError(`${root}: dataset folder not found`);
  if (!isDir(root)) throw new DataError(`${root}: not a folder`);
  if (looksLikeSynapse(root)) return 'synapse';
  if (
    isDir(join(root, 'images')) &&
    readdirSync(join(root, 'images')).some((f) => f.toLowerCase().endsWith('.png'))
  )
    return 'png';
  const hasNii = (d: string) => isDir(d) && readdirSync(d).some((f) => NII.test(f));
  if (
    hasNii(root) ||
    hasNii(join(root, 'imagesTr')) ||
    hasNii(join(root, 'images')) ||
    hasNii(join(root, 'img'))
  )
    return 'nifti';
  const entries = readdirSync(root);
  throw new DataError(
    `${root}: unrecognised dataset layout (${entries.length ? `contains ${entries.slice(0, 8).join(', ')}` : 'folder is empty'}); ` +
      'expected train_npz/ + test_vol_h5/ (Synapse), images/ + masks/ PNGs, or .nii/.nii.gz image/label pairs',
  );
}

/**
 * Open a dataset from a folder path, 'phantom' / 'phantom:<seed>', or an explicit spec. All files
 * are validated before this resolves; errors are DataError / NpyError / NiftiError / PngError /
 * H5Error naming the file.
 */
export async function openDataset(spec: DatasetSpec, opts: OpenOptions = {}): Promise<Dataset> {
  if (typeof spec === 'string') {
    const m = /^phantom(?::(\d+))?$/.exec(spec);
    if (m) return openPhantom({ kind: 'phantom', seed: m[1] ? Number(m[1]) : 0 }, opts);
    const layout = detectLayout(spec);
    if (layout === 'synapse') return openSynapse(spec, undefined, opts);
    if (layout === 'png') return openPng(spec, opts);
    return openNifti({ kind: 'nifti', root: spec }, opts);
  }
  switch (spec.kind) {
    case 'synapse':
      return openSynapse(spec.root, spec.listDir, opts);
    case 'nifti':
      return openNifti(spec, opts);
    case 'png':
      return openPng(spec.root, opts);
    case 'phantom':
      return openPhantom(spec, opts);
    default:
      throw new DataError(`unknown dataset kind '${(spec as { kind: string }).kind}'`);
  }
}

/** Class-id histogram over a dataset's training slices (for reports / sanity checks). */
export async function trainLabelHistogram(ds: Dataset, limit = Infinity): Promise<number[]> {
  const h = new Array<number>(NUM_CLASSES).fill(0);
  if (!ds.train) return h;
  const n = Math.min(ds.train.size, limit);
  for (let i = 0; i < n; i++) {
    const s = await ds.train.get(i);
    for (let k = 0; k < s.label.length; k++) h[s.label[k]!]!++;
  }
  return h;
}
