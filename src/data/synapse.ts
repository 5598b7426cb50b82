/**
 * The TransUNet / SAMed Synapse layout (spec §12):
 *
 *   <root>/train_npz/<case>_slice<n>.npz      keys image (H,W) float32 in [0,1], label (H,W) 0..8
 *   <root>/test_vol_h5/<case>.npy.h5          datasets image (D,H,W), label (D,H,W)
 *   lists: lists/lists_Synapse/{train.txt,test_vol.txt} — looked up under the root, in
 *          <root>/lists_Synapse, <root>/lists, the root itself, or next to the data
 *          (train_npz/train.txt, test_vol_h5/test_vol.txt); without a list every file is used.
 *
 * `root` may also be the train_npz or test_vol_h5 folder itself.
 */
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { basename, join } from 'node:path';
import { readH5Datasets } from './h5.js';
import { checkFinite, toSynapseLabels } from './labels.js';
import { parseNpz, type NpyArray } from './npy.js';
import { DataError, type Slice, type Volume } from './types.js';

const isDir = (p: string): boolean => existsSync(p) && statSync(p).isDirectory();

export interface SynapseLayout {
  root: string;
  trainDir: string | null;
  testDir: string | null;
  /** Slice names (no extension) in list order. */
  train: string[];
  /** Case names (no extension) in list order. */
  test: string[];
  trainList: string | null;
  testList: string | null;
  notes: string[];
}

/** Natural sort (case0005_slice010 < case0005_slice100). */
export function naturalCompare(a: string, b: string): number {
  return a.localeCompare(b, 'en', { numeric: true });
}

function readList(path: string): string[] {
  const text = readFileSync(path, 'utf8');
  const names = text
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l.length > 0 && !l.startsWith('#'));
  if (names.length === 0) throw new DataError(`${path}: list file is empty`);
  return names;
}

function findList(candidates: (string | null | undefined)[], file: string): string | null {
  for (const dir of candidates) {
    if (!dir) continue;
    const p = join(dir, file);
    if (existsSync(p)) return p;
  }
  return null;
}

export interface SynapseOptions {
  /** Folder holding train.txt / test_vol.txt (e.g. TransUNet's ./lists/lists_Synapse). */
  listDir?: string;
}

/** Is this folder (or its train_npz / test_vol_h5 child) a Synapse layout? */
export function looksLikeSynapse(root: string): boolean {
  if (isDir(join(root, 'train_npz')) || isDir(join(root, 'test_vol_h5'))) return true;
  if (!isDir(root)) return false;
  const entries = readdirSync(root);
  return entries.some((e) => e.endsWith('.npz') || e.endsWith('.npy.h5'));
}

/** Resolve folders and lists and check that every listed file exists (names the missing ones). */
export function resolveSynapseLayout(root: string, opts: SynapseOptions = {}): SynapseLayout {
  if (!existsSync(root)) throw new DataError(`${root}: dataset folder not found`);
  if (!isDir(root)) throw new DataError(`${root}: not a folder`);
  const notes: string[] = [];
  let trainDir: string | null = isDir(join(root, 'train_npz')) ? join(root, 'train_npz') : null;
  let testDir: string | null = isDir(join(root, 'test_vol_h5')) ? join(root, 'test_vol_h5') : null;
  const here = readdirSync(root);
  if (!trainDir && !testDir) {
    if (here.some((e) => e.endsWith('.npz'))) trainDir = root;
    if (here.some((e) => e.endsWith('.npy.h5'))) testDir = root;
  }
  if (!trainDir && !testDir)
    throw new DataError(`${root}: no train_npz/ or test_vol_h5/ folder and no .npz / .npy.h5 files`);
  const listDirs = [
    opts.listDir,
    join(root, 'lists', 'lists_Synapse'),
    join(root, 'lists_Synapse'),
    join(root, 'lists'),
    root,
  ];
  if (opts.listDir && !isDir(opts.listDir)) throw new DataError(`${opts.listDir}: list folder not found`);

  const collect = (
    dir: string,
    listFile: string,
    ext: string,
    what: string,
  ): { names: string[]; list: string | null } => {
    const list = findList([...listDirs, dir], listFile);
    const files = readdirSync(dir).filter((e) => e.endsWith(ext));
    let names: string[];
    if (list) {
      names = readList(list).map((n) => (n.endsWith(ext) ? n.slice(0, -ext.length) : n));
      const have = new Set(files.map((f) => f.slice(0, -ext.length)));
      const missing = names.filter((n) => !have.has(n));
      if (missing.length)
        throw new DataError(
          `${list}: ${missing.length} of ${names.length} listed ${what} files are missing from ${dir} ` +
            `(first: ${missing
              .slice(0, 5)
              .map((m) => m + ext)
              .join(', ')})`,
        );
    } else {
      names = files.map((f) => f.slice(0, -ext.length)).sort(naturalCompare);
      notes.push(`no ${listFile} found: using all ${names.length} ${ext} files in ${dir}`);
    }
    if (names.length === 0) throw new DataError(`${dir}: folder has no ${ext} files`);
    return { names, list };
  };

  let train: string[] = [];
  let test: string[] = [];
  let trainList: string | null = null;
  let testList: string | null = null;
  if (trainDir) ({ names: train, list: trainList } = collect(trainDir, 'train.txt', '.npz', 'training'));
  if (testDir) ({ names: test, list: testList } = collect(testDir, 'test_vol.txt', '.npy.h5', 'test'));
  return { root, trainDir, testDir, train, test, trainList, testList, notes };
}

function as2d(a: NpyArray | undefined, key: string, file: string): NpyArray {
  if (!a) throw new DataError(`${file}: no '${key}' array in the .npz`);
  if (a.shape.length !== 2)
    throw new DataError(`${file}: '${key}' has shape (${a.shape.join(', ')}), expected 2-D`);
  return a;
}

/** Read and validate one training slice .npz (image/label 2-D, same shape, finite, labels 0..8). */
export function readSynapseSlice(path: string, id = basename(path, '.npz')): Slice {
  let bytes: Uint8Array;
  try {
    bytes = readFileSync(path);
  } catch (e) {
    throw new DataError(`${path}: cannot read file (${(e as Error).message})`);
  }
  if (bytes.byteLength === 0) throw new DataError(`${path}: file is empty`);
  const arrays = parseNpz(bytes, path);
  const img = as2d(arrays.get('image'), 'image', path);
  const lab = as2d(arrays.get('label'), 'label', path);
  if (img.shape[0] !== lab.shape[0] || img.shape[1] !== lab.shape[1])
    throw new DataError(
      `${path}: image shape (${img.shape.join(', ')}) and label shape (${lab.shape.join(', ')}) differ`,
    );
  checkFinite(img.data, path);
  const h = img.shape[0]!;
  const w = img.shape[1]!;
  if (h === 0 || w === 0) throw new DataError(`${path}: empty image (${h}x${w})`);
  const image = img.data instanceof Float32Array ? img.data : Float32Array.from(img.data);
  const label = toSynapseLabels(lab.data, path);
  return { id, h, w, image, label };
}

/** Read and validate one test volume .npy.h5 (metadata only when `read` is false). */
export async function readSynapseVolume(
  path: string,
  id = basename(path, '.npy.h5'),
  read = true,
): Promise<Volume> {
  const m = await readH5Datasets(path, ['image', 'label'], read);
  const img = m.get('image')!;
  const lab = m.get('label')!;
  if (img.shape.length !== 3)
    throw new DataError(`${path}: 'image' has shape (${img.shape.join(', ')}), expected 3-D (D, H, W)`);
  if (img.shape.join(',') !== lab.shape.join(','))
    throw new DataError(
      `${path}: image shape (${img.shape.join(', ')}) and label shape (${lab.shape.join(', ')}) differ`,
    );
  const [d, h, w] = img.shape as [number, number, number];
  if (d * h * w === 0) throw new DataError(`${path}: empty volume (${d}x${h}x${w})`);
  if (!read) return { id, d, h, w, image: new Float32Array(0), label: new Int32Array(0) };
  checkFinite(img.data, path);
  const image = img.data instanceof Float32Array ? img.data : Float32Array.from(img.data);
  const label = toSynapseLabels(lab.data, path);
  return { id, d, h, w, image, label };
}
