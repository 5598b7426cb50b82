/**
 * NIfTI-1/2 volumes (.nii, .nii.gz) via nifti-reader-js, with TransUNet's preprocessing.
 *
 * Layout: NIfTI stores voxels with i (x) fastest, then j (y), then k (z). nibabel presents that as
 * an (H, W, D) = (X, Y, Z) array, and TransUNet transposes it to (D, W, H) = (Z, Y, X) — which, in
 * C order, is exactly the byte order of the file. So a volume here is `(d, h, w) = (Z, Y, X)` with
 * `data[z*Y*X + y*X + x]`, no copy needed (spec §12). `orientation: 'radiological'` optionally flips
 * rows/columns (axis-aligned affines only) so that image up = anterior and image left = patient
 * right; the default keeps the stored order like TransUNet.
 */
import * as nifti from 'nifti-reader-js';
import type { Volume } from './types.js';
import {
  checkFinite,
  resolveLabelMap,
  toSynapseLabels,
  windowHU,
  type LabelMap,
  type LabelMapName,
} from './labels.js';

export interface NiftiVolume {
  /** (d, h, w) = (Z, Y, X) as described above. */
  d: number;
  h: number;
  w: number;
  /** Voxel values after scl_slope/scl_inter, C order (d, h, w). */
  data:
    | Float32Array
    | Float64Array
    | Int32Array
    | Int16Array
    | Uint8Array
    | Int8Array
    | Uint16Array
    | Uint32Array;
  /** Voxel spacing (x, y, z) in mm from pixdim. */
  spacing: [number, number, number];
  /** 4×4 voxel → world (RAS) matrix from the header. */
  affine: number[][];
  datatype: string;
}

export class NiftiError extends Error {
  override name = 'NiftiError';
}

function toArrayBuffer(buf: Uint8Array): ArrayBuffer {
  return buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength) as ArrayBuffer;
}

/** Parse a .nii or .nii.gz file's bytes. `source` names the file in errors. */
export function parseNifti(bytes: Uint8Array, source = 'NIfTI data'): NiftiVolume {
  const fail: (m: string) => never = (m) => {
    throw new NiftiError(`${source}: ${m}`);
  };
  if (bytes.byteLength === 0) fail('file is empty');
  let ab = toArrayBuffer(bytes);
  if (nifti.isCompressed(ab)) {
    try {
      ab = nifti.decompress(ab) as ArrayBuffer;
    } catch (e) {
      fail(`corrupt gzip stream (${(e as Error).message})`);
    }
  }
  if (!nifti.isNIFTI(ab)) fail('not a NIfTI-1/2 file (bad header size or magic)');
  let header: nifti.NIFTI1 | nifti.NIFTI2;
  try {
    header = nifti.readHeader(ab);
  } catch (e) {
    fail(`unreadable header (${(e as Error).message})`);
  }
  const dims = header.dims;
  const ndim = dims[0] ?? 0;
  if (ndim < 2 || ndim > 4) fail(`expected a 3-D volume, header says ${ndim} dimensions`);
  const X = dims[1] ?? 0;
  const Y = dims[2] ?? 0;
  const Z = ndim >= 3 ? (dims[3] ?? 1) : 1;
  const T = ndim >= 4 ? (dims[4] ?? 1) : 1;
  if (T > 1) fail(`4-D volume with ${T} time points is not supported`);
  if (X < 1 || Y < 1 || Z < 1) fail(`invalid dimensions ${X}x${Y}x${Z}`);
  const n = X * Y * Z;
  const bpv = header.numBitsPerVoxel / 8;
  const offset = Math.ceil(header.vox_offset);
  if (offset + n * bpv > ab.byteLength)
    fail(
      `image data truncated: ${X}x${Y}x${Z} voxels of ${bpv} bytes need ${offset + n * bpv} bytes, file has ${ab.byteLength}`,
    );
  const raw = ab.slice(offset, offset + n * bpv);
  const le = header.littleEndian;
  const dv = new DataView(raw);
  let data: NiftiVolume['data'];
  let datatype: string;
  const code = header.datatypeCode;
  const read = <T extends NiftiVolume['data']>(make: (n: number) => T, get: (i: number) => number): T => {
    const a = make(n);
    for (let i = 0; i < n; i++) a[i] = get(i);
    return a;
  };
  switch (code) {
    case 2:
      datatype = 'uint8';
      data = new Uint8Array(raw);
      break;
    case 256:
      datatype = 'int8';
      data = new Int8Array(raw);
      break;
    case 4:
      datatype = 'int16';
      data = read(
        (k) => new Int16Array(k),
        (i) => dv.getInt16(i * 2, le),
      );
      break;
    case 512:
      datatype = 'uint16';
      data = read(
        (k) => new Uint16Array(k),
        (i) => dv.getUint16(i * 2, le),
      );
      break;
    case 8:
      datatype = 'int32';
      data = read(
        (k) => new Int32Array(k),
        (i) => dv.getInt32(i * 4, le),
      );
      break;
    case 768:
      datatype = 'uint32';
      data = read(
        (k) => new Uint32Array(k),
        (i) => dv.getUint32(i * 4, le),
      );
      break;
    case 16:
      datatype = 'float32';
      data = read(
        (k) => new Float32Array(k),
        (i) => dv.getFloat32(i * 4, le),
      );
      break;
    case 64:
      datatype = 'float64';
      data = read(
        (k) => new Float64Array(k),
        (i) => dv.getFloat64(i * 8, le),
      );
      break;
    default:
      fail(`unsupported NIfTI datatype code ${code}`);
  }
  const slope = header.scl_slope;
  const inter = header.scl_inter;
  if (Number.isFinite(slope) && slope !== 0 && (slope !== 1 || (Number.isFinite(inter) && inter !== 0))) {
    const f = new Float64Array(n);
    const it = Number.isFinite(inter) ? inter : 0;
    for (let i = 0; i < n; i++) f[i] = data[i]! * slope + it;
    data = f;
  }
  const pd = header.pixDims;
  return {
    d: Z,
    h: Y,
    w: X,
    data,
    spacing: [pd[1] ?? 1, pd[2] ?? 1, pd[3] ?? 1],
    affine: header.affine.map((r) => [...r]),
    datatype,
  };
}

/** Flip rows/columns so image up = anterior, image left = patient right (axis-aligned affines). */
function radiologicalFlips(v: NiftiVolume, source: string): { flipRows: boolean; flipCols: boolean } {
  const a = v.affine;
  const col = (j: number) => [a[0]?.[j] ?? 0, a[1]?.[j] ?? 0, a[2]?.[j] ?? 0];
  const ci = col(0); // direction of x (columns)
  const cj = col(1); // direction of y (rows)
  const dom = (c: number[]) => c.map(Math.abs).indexOf(Math.max(...c.map(Math.abs)));
  if (dom(ci) !== 0 || dom(cj) !== 1)
    throw new NiftiError(`${source}: orientation 'radiological' needs an axial, axis-aligned affine`);
  // NIfTI world space is RAS+ (+x = patient right, +y = anterior). Radiological display puts patient
  // right on image left, so columns must run toward patient left (world x decreasing) and rows
  // must run anterior → posterior (world y decreasing).
  return { flipCols: ci[0]! > 0, flipRows: cj[1]! > 0 };
}

function flipVolume<T extends ArrayLike<number> & { [i: number]: number; length: number }>(
  data: T,
  d: number,
  h: number,
  w: number,
  flipRows: boolean,
  flipCols: boolean,
  make: (n: number) => T,
): T {
  if (!flipRows && !flipCols) return data;
  const out = make(d * h * w);
  for (let z = 0; z < d; z++)
    for (let y = 0; y < h; y++) {
      const sy = flipRows ? h - 1 - y : y;
      for (let x = 0; x < w; x++) {
        const sx = flipCols ? w - 1 - x : x;
        out[(z * h + y) * w + x] = data[(z * h + sy) * w + sx]!;
      }
    }
  return out;
}

export interface NiftiPairOptions {
  /** HU window applied to the image (TransUNet: [-125, 275] → [0, 1]); null keeps raw values. */
  window?: [number, number] | null;
  /** Map label ids to Synapse ids ('totalsegmentator', 'btcv', a record, or null for ids already 0..8). */
  labelMap?: LabelMapName | LabelMap | null;
  /** 'stored' (TransUNet, default) or 'radiological' (see module doc). */
  orientation?: 'stored' | 'radiological';
}

/** Read and preprocess an image/label NIfTI pair into a (d, h, w) volume; validates everything. */
export function niftiPairToVolume(
  id: string,
  imageBytes: Uint8Array,
  labelBytes: Uint8Array,
  imageName: string,
  labelName: string,
  opts: NiftiPairOptions = {},
): Volume {
  const img = parseNifti(imageBytes, imageName);
  const lab = parseNifti(labelBytes, labelName);
  if (img.d !== lab.d || img.h !== lab.h || img.w !== lab.w)
    throw new NiftiError(
      `${labelName}: label shape (x,y,z) ${lab.w}x${lab.h}x${lab.d} does not match image ${imageName} ${img.w}x${img.h}x${img.d}`,
    );
  checkFinite(img.data, imageName);
  const window = opts.window === undefined ? ([-125, 275] as [number, number]) : opts.window;
  let image = window ? windowHU(img.data, window[0], window[1]) : Float32Array.from(img.data);
  let label = toSynapseLabels(lab.data, labelName, resolveLabelMap(opts.labelMap ?? null));
  if (opts.orientation === 'radiological') {
    const { flipRows, flipCols } = radiologicalFlips(img, imageName);
    image = flipVolume(image, img.d, img.h, img.w, flipRows, flipCols, (k) => new Float32Array(k));
    label = flipVolume(label, img.d, img.h, img.w, flipRows, flipCols, (k) => new Int32Array(k));
  }
  return { id, d: img.d, h: img.h, w: img.w, image, label };
}
