/**
 * NIfTI-1 writer (.nii, or .nii.gz through fflate's gzip) and the geometry reader it needs.
 *
 * The geometry (dims, pixdim incl. qfac, qform/sform codes, quaternion, offsets, srow_x/y/z,
 * xyzt_units, dim_info, slice timing fields, description) is read verbatim from the header bytes of
 * a reference image — NIfTI-1 or NIfTI-2, either byte order, plain or gzipped — so a mask written
 * with it overlays that image in any viewer. Data are written little-endian in NIfTI's voxel order
 * (x fastest, then y, then z), which is the C order of a (d, h, w) = (z, y, x) array as src/data
 * hands volumes out ('stored' orientation). The header written is a single-file NIfTI-1
 * ("n+1", vox_offset 352, no extensions), scl_slope 1 / scl_inter 0, datatype uint8, int16 or
 * float32. Host-only.
 */
import { Gunzip, gzipSync } from 'fflate';

export type NiftiWriteType = 'uint8' | 'int16' | 'float32';

/** The spatial part of a NIfTI header (what a mask must share with its image). */
export interface NiftiGeometry {
  /** dim[0..7]: rank, then sizes (x, y, z, t, ...). */
  dim: number[];
  /** pixdim[0..7]: qfac (±1), then voxel sizes. */
  pixdim: number[];
  dimInfo: number;
  xyztUnits: number;
  qformCode: number;
  sformCode: number;
  quatern: [number, number, number];
  qoffset: [number, number, number];
  /** srow_x, srow_y, srow_z. */
  srow: [number[], number[], number[]];
  sliceStart: number;
  sliceEnd: number;
  sliceCode: number;
  sliceDuration: number;
  toffset: number;
  description: string;
}

export interface NiftiWriteOptions {
  /** Geometry to copy (from readNiftiGeometry); its x, y, z sizes must match `shape`. */
  geometry?: NiftiGeometry | null;
  /** Voxel sizes (x, y, z) when no geometry is given (default 1, 1, 1). */
  spacing?: [number, number, number];
  datatype?: NiftiWriteType;
  /** gzip the file (.nii.gz). */
  gzip?: boolean;
  /** intent_code, e.g. 1002 (NIFTI_INTENT_LABEL) for label maps (default 0). */
  intentCode?: number;
  /** descrip (80 bytes max; default: the geometry's description). */
  description?: string;
}

export class NiftiWriteError extends Error {
  override name = 'NiftiWriteError';
}

const DATATYPES: Record<NiftiWriteType, { code: number; bitpix: number }> = {
  uint8: { code: 2, bitpix: 8 },
  int16: { code: 4, bitpix: 16 },
  float32: { code: 16, bitpix: 32 },
};

function isGzip(b: Uint8Array): boolean {
  return b.byteLength >= 2 && b[0] === 0x1f && b[1] === 0x8b;
}

function str(b: Uint8Array, from: number, to: number): string {
  let end = from;
  while (end < to && b[end] !== 0) end++;
  return new TextDecoder('latin1').decode(b.subarray(from, end));
}

/**
 * The first `want` decompressed bytes of a gzip stream (fewer if it is shorter), decompressing
 * only as far as needed: the header of a multi-gigabyte volume costs a few kilobytes, and nothing
 * is allocated from the size the gzip trailer declares (fflate's gunzipSync preallocates it).
 */
function gunzipHead(bytes: Uint8Array, want: number): Uint8Array {
  const chunks: Uint8Array[] = [];
  let total = 0;
  const g = new Gunzip((chunk) => {
    chunks.push(chunk);
    total += chunk.length;
  });
  for (let p = 0; p < bytes.length && total < want; p += 4096)
    g.push(bytes.subarray(p, Math.min(bytes.length, p + 4096)), p + 4096 >= bytes.length);
  const out = new Uint8Array(Math.min(total, Math.max(want, 0)));
  let o = 0;
  for (const c of chunks) {
    if (o >= out.length) break;
    out.set(c.subarray(0, out.length - o), o);
    o += c.length;
  }
  return out;
}

/**
 * Reads the geometry fields of a NIfTI-1 / NIfTI-2 header (plain or gzipped file bytes).
 * `source` names the file in errors.
 */
export function readNiftiGeometry(bytes: Uint8Array, source = 'NIfTI data'): NiftiGeometry {
  const fail = (m: string): never => {
    throw new NiftiWriteError(`${source}: ${m}`);
  };
  let b = bytes;
  if (isGzip(b)) {
    try {
      b = gunzipHead(b, 540);
    } catch (e) {
      fail(`corrupt gzip stream (${(e as Error).message})`);
    }
  }
  if (b.byteLength < 348) fail(`too short for a NIfTI header (${b.byteLength} bytes)`);
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const size = (le: boolean) => dv.getInt32(0, le);
  let le = true;
  if (size(true) !== 348 && size(true) !== 540) le = false;
  const hdr = size(le);
  if (hdr === 348) {
    const magic = str(b, 344, 348);
    if (magic !== 'n+1' && magic !== 'ni1') fail(`not a NIfTI-1 file (magic '${magic}')`);
    const i16 = (o: number) => dv.getInt16(o, le);
    const f32 = (o: number) => dv.getFloat32(o, le);
    return checkGeometry(fail, {
      dim: Array.from({ length: 8 }, (_, i) => i16(40 + 2 * i)),
      pixdim: Array.from({ length: 8 }, (_, i) => f32(76 + 4 * i)),
      dimInfo: b[39]!,
      xyztUnits: b[123]!,
      qformCode: i16(252),
      sformCode: i16(254),
      quatern: [f32(256), f32(260), f32(264)],
      qoffset: [f32(268), f32(272), f32(276)],
      srow: [0, 1, 2].map((r) => Array.from({ length: 4 }, (_, c) => f32(280 + 16 * r + 4 * c))) as [
        number[],
        number[],
        number[],
      ],
      sliceStart: i16(74),
      sliceEnd: i16(120),
      sliceCode: b[122]!,
      sliceDuration: f32(132),
      toffset: f32(136),
      description: str(b, 148, 228),
    });
  }
  if (hdr === 540) {
    if (b.byteLength < 540) fail(`too short for a NIfTI-2 header (${b.byteLength} bytes)`);
    const magic = str(b, 4, 8);
    if (magic !== 'n+2' && magic !== 'ni2') fail(`not a NIfTI-2 file (magic '${magic}')`);
    const i64 = (o: number) => Number(dv.getBigInt64(o, le));
    const f64 = (o: number) => dv.getFloat64(o, le);
    const i32 = (o: number) => dv.getInt32(o, le);
    return checkGeometry(fail, {
      dim: Array.from({ length: 8 }, (_, i) => i64(16 + 8 * i)),
      pixdim: Array.from({ length: 8 }, (_, i) => f64(104 + 8 * i)),
      dimInfo: b[524]!,
      xyztUnits: i32(500),
      qformCode: i32(344),
      sformCode: i32(348),
      quatern: [f64(352), f64(360), f64(368)],
      qoffset: [f64(376), f64(384), f64(392)],
      srow: [0, 1, 2].map((r) => Array.from({ length: 4 }, (_, c) => f64(400 + 32 * r + 8 * c))) as [
        number[],
        number[],
        number[],
      ],
      sliceStart: i64(224),
      sliceEnd: i64(232),
      sliceCode: i32(496),
      sliceDuration: f64(208),
      toffset: f64(216),
      description: str(b, 240, 320),
    });
  }
  return fail(`not a NIfTI file (header size ${size(true)} / ${size(false)}, expected 348 or 540)`);
}

/** The dims a reader relies on: a rank of 1..7 and that many positive sizes. */
function checkGeometry(fail: (m: string) => never, g: NiftiGeometry): NiftiGeometry {
  const rank = g.dim[0]!;
  if (!(rank >= 1 && rank <= 7)) fail(`header dim[0] (rank) is ${rank}, not 1..7`);
  for (let i = 1; i <= rank; i++)
    if (!Number.isSafeInteger(g.dim[i]) || g.dim[i]! < 1)
      fail(`header dim[${i}] is ${g.dim[i]}, not a positive size`);
  return g;
}

/** The default geometry of an (x, y, z) volume: unit (or given) spacing, no orientation codes. */
export function defaultGeometry(
  x: number,
  y: number,
  z: number,
  spacing: [number, number, number] = [1, 1, 1],
): NiftiGeometry {
  return {
    dim: [3, x, y, z, 1, 1, 1, 1],
    pixdim: [1, spacing[0], spacing[1], spacing[2], 0, 0, 0, 0],
    dimInfo: 0,
    xyztUnits: 2, // mm
    qformCode: 0,
    sformCode: 0,
    quatern: [0, 0, 0],
    qoffset: [0, 0, 0],
    srow: [
      [spacing[0], 0, 0, 0],
      [0, spacing[1], 0, 0],
      [0, 0, spacing[2], 0],
    ],
    sliceStart: 0,
    sliceEnd: 0,
    sliceCode: 0,
    sliceDuration: 0,
    toffset: 0,
    description: '',
  };
}

/**
 * Encodes a volume as NIfTI-1. `shape` is (d, h, w) = (z, y, x) and `data` is in C order of that
 * shape (= NIfTI voxel order). Values are rounded (integer types) and checked against the type's range.
 */
export function encodeNifti(
  data: ArrayLike<number>,
  shape: readonly [number, number, number],
  opts: NiftiWriteOptions = {},
): Uint8Array {
  const [d, h, w] = shape;
  for (const n of shape)
    if (!Number.isInteger(n) || n < 1 || n > 32767)
      throw new NiftiWriteError(`encodeNifti: invalid shape (${shape.join(', ')}) (sizes 1..32767)`);
  if (data.length !== d * h * w)
    throw new NiftiWriteError(
      `encodeNifti: ${data.length} values for shape (d, h, w) = (${shape.join(', ')})`,
    );
  const type = opts.datatype ?? 'uint8';
  const dt = DATATYPES[type];
  if (!dt) throw new NiftiWriteError(`encodeNifti: unsupported datatype '${String(type)}'`);
  const g = opts.geometry ?? defaultGeometry(w, h, d, opts.spacing);
  const gx = g.dim[1] ?? 1;
  const gy = g.dim[2] ?? 1;
  const gz = (g.dim[0] ?? 0) >= 3 ? (g.dim[3] ?? 1) : 1;
  if (gx !== w || gy !== h || gz !== d)
    throw new NiftiWriteError(
      `encodeNifti: the reference geometry is ${gx}x${gy}x${gz} (x, y, z) but the data is ${w}x${h}x${d}`,
    );
  for (let k = 4; k <= 7; k++)
    if ((g.dim[0] ?? 0) >= k && (g.dim[k] ?? 1) > 1)
      throw new NiftiWriteError(
        `encodeNifti: the reference has dim[${k}] = ${g.dim[k]}; only 3-D is written`,
      );

  const voxOffset = 352;
  const nbytes = (d * h * w * dt.bitpix) / 8;
  const out = new Uint8Array(voxOffset + nbytes);
  const dv = new DataView(out.buffer);
  const te = new TextEncoder();
  const putStr = (o: number, max: number, s: string) => out.set(te.encode(s).subarray(0, max - 1), o);
  dv.setInt32(0, 348, true);
  out[38] = 0x72; // regular = 'r'
  out[39] = g.dimInfo & 0xff;
  const dims = [3, w, h, d, 1, 1, 1, 1];
  dims.forEach((v, i) => dv.setInt16(40 + 2 * i, v, true));
  dv.setInt16(68, opts.intentCode ?? 0, true);
  dv.setInt16(70, dt.code, true);
  dv.setInt16(72, dt.bitpix, true);
  dv.setInt16(74, g.sliceStart, true);
  // pixdim copied verbatim (pixdim[0] is qfac)
  for (let i = 0; i < 8; i++) dv.setFloat32(76 + 4 * i, g.pixdim[i] ?? (i >= 1 && i <= 3 ? 1 : 0), true);
  dv.setFloat32(108, voxOffset, true);
  dv.setFloat32(112, 1, true); // scl_slope
  dv.setFloat32(116, 0, true); // scl_inter
  dv.setInt16(120, g.sliceEnd, true);
  out[122] = g.sliceCode & 0xff;
  out[123] = g.xyztUnits & 0xff;
  let lo = Infinity;
  let hi = -Infinity;
  for (let i = 0; i < data.length; i++) {
    const v = data[i]!;
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  if (type !== 'float32') {
    dv.setFloat32(124, hi, true); // cal_max: display range of the labels
    dv.setFloat32(128, lo, true);
  }
  dv.setFloat32(132, g.sliceDuration, true);
  dv.setFloat32(136, g.toffset, true);
  putStr(148, 80, opts.description ?? g.description);
  dv.setInt16(252, g.qformCode, true);
  dv.setInt16(254, g.sformCode, true);
  g.quatern.forEach((v, i) => dv.setFloat32(256 + 4 * i, v, true));
  g.qoffset.forEach((v, i) => dv.setFloat32(268 + 4 * i, v, true));
  g.srow.forEach((row, r) => row.forEach((v, c) => dv.setFloat32(280 + 16 * r + 4 * c, v, true)));
  putStr(344, 4, 'n+1');
  // bytes 348..351: extension flag 0 (no extensions)

  const at = voxOffset;
  if (type === 'uint8') {
    for (let i = 0; i < data.length; i++) {
      const v = Math.round(data[i]!);
      if (!(v >= 0 && v <= 255))
        throw new NiftiWriteError(`encodeNifti: value ${data[i]} at ${i} does not fit uint8`);
      out[at + i] = v;
    }
  } else if (type === 'int16') {
    for (let i = 0; i < data.length; i++) {
      const v = Math.round(data[i]!);
      if (!(v >= -32768 && v <= 32767))
        throw new NiftiWriteError(`encodeNifti: value ${data[i]} at ${i} does not fit int16`);
      dv.setInt16(at + 2 * i, v, true);
    }
  } else {
    for (let i = 0; i < data.length; i++) dv.setFloat32(at + 4 * i, data[i]!, true);
  }
  return opts.gzip ? gzipSync(out, { level: 6 }) : out;
}

/** gzip or not from the file name: '.nii.gz' → true, '.nii' → false, anything else is an error. */
export function niftiGzipFor(path: string): boolean {
  if (/\.nii\.gz$/i.test(path)) return true;
  if (/\.nii$/i.test(path)) return false;
  throw new NiftiWriteError(`${path}: output file name must end in .nii or .nii.gz`);
}
