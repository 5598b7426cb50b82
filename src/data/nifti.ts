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
import { Gunzip } from 'fflate';
import * as nifti from 'nifti-reader-js';
import { crc32 } from '../io/zip.js';
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

/** Largest decompressed .nii accepted (the typed arrays it becomes are capped near this too). */
const MAX_NIFTI_BYTES = 2 ** 31;
/** DEFLATE cannot expand data by more than about 1032:1. */
const MAX_DEFLATE_RATIO = 1032;
/** Bytes per voxel of each supported datatype code (bitpix is not trusted). */
const DATATYPES: Record<number, [string, number]> = {
  2: ['uint8', 1],
  256: ['int8', 1],
  4: ['int16', 2],
  512: ['uint16', 2],
  8: ['int32', 4],
  768: ['uint32', 4],
  16: ['float32', 4],
  64: ['float64', 8],
};

function isGzip(b: Uint8Array): boolean {
  return b.byteLength >= 2 && b[0] === 0x1f && b[1] === 0x8b;
}

/**
 * gunzip that allocates only what the stream really produces (fflate's gunzipSync preallocates
 * the size the gzip trailer declares, up to 4 GiB) and checks the trailer's CRC-32 and length.
 */
function gunzipChecked(bytes: Uint8Array, fail: (m: string) => never): Uint8Array {
  const cap = Math.min(MAX_NIFTI_BYTES, bytes.byteLength * MAX_DEFLATE_RATIO + 1024);
  const chunks: Uint8Array[] = [];
  let total = 0;
  let members = 1;
  const g = new Gunzip((chunk) => {
    total += chunk.length;
    if (total > cap) throw new RangeError(`decompresses to more than ${cap} bytes`);
    chunks.push(chunk);
  });
  g.onmember = () => members++;
  try {
    g.push(bytes, true);
  } catch (e) {
    fail(`corrupt gzip stream (${(e as Error).message})`);
  }
  const out = new Uint8Array(total);
  let o = 0;
  for (const c of chunks) {
    out.set(c, o);
    o += c.length;
  }
  if (members === 1 && bytes.byteLength >= 18) {
    const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const crc = dv.getUint32(bytes.byteLength - 8, true);
    const size = dv.getUint32(bytes.byteLength - 4, true);
    if (size !== total % 2 ** 32 || crc !== crc32(out))
      fail('gzip trailer (CRC-32 / length) does not match the data: the file is corrupt or truncated');
  }
  return out;
}

/** Parse a .nii or .nii.gz file's bytes. `source` names the file in errors. */
export function parseNifti(bytes: Uint8Array, source = 'NIfTI data'): NiftiVolume {
  const fail: (m: string) => never = (m) => {
    throw new NiftiError(`${source}: ${m}`);
  };
  if (bytes.byteLength === 0) fail('file is empty');
  const raw8 = isGzip(bytes) ? gunzipChecked(bytes, fail) : bytes;
  const ab = raw8.buffer.slice(raw8.byteOffset, raw8.byteOffset + raw8.byteLength) as ArrayBuffer;
  if (!nifti.isNIFTI(ab)) fail('not a NIfTI-1/2 file (bad header size or magic)');
  let header: nifti.NIFTI1 | nifti.NIFTI2;
  const isV2 = nifti.isNIFTI2(ab);
  const hdrSize = isV2 ? 540 : 348;
  if (ab.byteLength < hdrSize) fail(`too short for a NIfTI-${isV2 ? 2 : 1} header (${ab.byteLength} bytes)`);
  try {
    // The header alone: nifti-reader-js's extension walk trusts esize (a negative one loops forever).
    header = nifti.readHeader(ab.slice(0, hdrSize));
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
  if (![X, Y, Z].every((v) => Number.isSafeInteger(v) && v >= 1)) fail(`invalid dimensions ${X}x${Y}x${Z}`);
  const code = header.datatypeCode;
  const dt = DATATYPES[code];
  if (!dt) return fail(`unsupported NIfTI datatype code ${code}`);
  const [datatype, bpv] = dt;
  const n = X * Y * Z;
  const vox = header.vox_offset;
  if (!Number.isFinite(vox) || vox < hdrSize)
    fail(`vox_offset ${vox} is not an offset past the ${hdrSize}-byte header`);
  const offset = Math.ceil(vox);
  if (!(offset + n * bpv <= ab.byteLength))
    fail(
      `image data truncated: ${X}x${Y}x${Z} voxels of ${bpv} bytes need ${offset + n * bpv} bytes, file has ${ab.byteLength}`,
    );
  const pd = header.pixDims;
  const spacing: [number, number, number] = [pd[1] ?? 1, pd[2] ?? 1, pd[3] ?? 1];
  if (!spacing.every(Number.isFinite)) fail(`pixdim (voxel size) ${spacing.join(', ')} is not finite`);
  const raw = ab.slice(offset, offset + n * bpv);
  const le = header.littleEndian;
  const dv = new DataView(raw);
  let data: NiftiVolume['data'];
  const read = <T extends NiftiVolume['data']>(make: (n: number) => T, get: (i: number) => number): T => {
    const a = make(n);
    for (let i = 0; i < n; i++) a[i] = get(i);
    return a;
  };
  switch (code) {
    case 2:
      data = new Uint8Array(raw);
      break;
    case 256:
      data = new Int8Array(raw);
      break;
    case 4:
      data = read(
        (k) => new Int16Array(k),
        (i) => dv.getInt16(i * 2, le),
      );
      break;
    case 512:
      data = read(
        (k) => new Uint16Array(k),
        (i) => dv.getUint16(i * 2, le),
      );
      break;
    case 8:
      data = read(
        (k) => new Int32Array(k),
        (i) => dv.getInt32(i * 4, le),
      );
      break;
    case 768:
      data = read(
        (k) => new Uint32Array(k),
        (i) => dv.getUint32(i * 4, le),
      );
      break;
    case 16:
      data = read(
        (k) => new Float32Array(k),
        (i) => dv.getFloat32(i * 4, le),
      );
      break;
    default:
      data = read(
        (k) => new Float64Array(k),
        (i) => dv.getFloat64(i * 8, le),
      );
  }
  const slope = header.scl_slope;
  const inter = header.scl_inter;
  if (Number.isFinite(slope) && slope !== 0 && (slope !== 1 || (Number.isFinite(inter) && inter !== 0))) {
    const f = new Float64Array(n);
    const it = Number.isFinite(inter) ? inter : 0;
    for (let i = 0; i < n; i++) f[i] = data[i]! * slope + it;
    data = f;
  }
  return {
    d: Z,
    h: Y,
    w: X,
    data,
    spacing,
    affine: header.affine.map((r) => [...r]),
    datatype,
  };
}

/**
 * Flips that show an axial slice in the radiological convention (image up = anterior, image left =
 * patient right) for an axis-aligned affine; null when the affine is oblique or not axial.
 */
export function radiologicalAxialFlips(
  affine: readonly (readonly number[])[],
): { flipRows: boolean; flipCols: boolean } | null {
  const col = (j: number) => [affine[0]?.[j] ?? 0, affine[1]?.[j] ?? 0, affine[2]?.[j] ?? 0];
  const ci = col(0); // direction of x (columns)
  const cj = col(1); // direction of y (rows)
  const dom = (c: number[]) => c.map(Math.abs).indexOf(Math.max(...c.map(Math.abs)));
  if (dom(ci) !== 0 || dom(cj) !== 1) return null;
  // NIfTI world space is RAS+ (+x = patient right, +y = anterior). Radiological display puts patient
  // right on image left, so columns must run toward patient left (world x decreasing) and rows
  // must run anterior → posterior (world y decreasing).
  return { flipCols: ci[0]! > 0, flipRows: cj[1]! > 0 };
}

function radiologicalFlips(v: NiftiVolume, source: string): { flipRows: boolean; flipCols: boolean } {
  const f = radiologicalAxialFlips(v.affine);
  if (!f) throw new NiftiError(`${source}: orientation 'radiological' needs an axial, axis-aligned affine`);
  return f;
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
  let label: Int32Array;
  try {
    checkFinite(img.data, imageName);
    label = toSynapseLabels(lab.data, labelName, resolveLabelMap(opts.labelMap ?? null));
  } catch (e) {
    if (e instanceof NiftiError) throw e;
    throw new NiftiError((e as Error).message, { cause: e });
  }
  const window = opts.window === undefined ? ([-125, 275] as [number, number]) : opts.window;
  let image = window ? windowHU(img.data, window[0], window[1]) : Float32Array.from(img.data);
  if (opts.orientation === 'radiological') {
    const { flipRows, flipCols } = radiologicalFlips(img, imageName);
    image = flipVolume(image, img.d, img.h, img.w, flipRows, flipCols, (k) => new Float32Array(k));
    label = flipVolume(label, img.d, img.h, img.w, flipRows, flipCols, (k) => new Int32Array(k));
  }
  return { id, d: img.d, h: img.h, w: img.w, image, label };
}
