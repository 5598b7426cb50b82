/**
 * NumPy .npy / .npz readers (and a small .npy writer for tests and tools).
 *
 * .npy: magic "\x93NUMPY", version (1.0: u16 header length; 2.0/3.0: u32), then a Python dict
 * literal `{'descr': '<f4', 'fortran_order': False, 'shape': (512, 512), }` padded with spaces,
 * then the raw data. Supported dtypes: bool, (u)int8/16/32/64 and float32/64 in either byte order.
 * Fortran-order arrays are returned in C order. .npz: a zip (stored or deflated, zip64 included)
 * of `<name>.npy` members, as written by np.savez / np.savez_compressed, read with src/io/zip.ts
 * (every size and offset checked against the file before anything is allocated, CRC-32 verified,
 * duplicated member names refused).
 */
import { zipSync } from 'fflate';
import { looksLikeZip, ZipArchive, ZipError } from '../io/zip.js';

export type NpyData =
  Float32Array | Float64Array | Int8Array | Uint8Array | Int16Array | Uint16Array | Int32Array | Uint32Array;

export interface NpyArray {
  /** numpy dtype string as stored, e.g. '<f4', '|u1', '>i8'. */
  descr: string;
  shape: number[];
  /** True when the file stored the data in Fortran order (the returned data is C order). */
  fortranOrder: boolean;
  /** Values in C order. int64/uint64 come back as Float64Array (exact up to 2^53, checked). */
  data: NpyData;
}

export class NpyError extends Error {
  override name = 'NpyError';
}

const MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]; // \x93NUMPY

interface DTypeInfo {
  kind: 'f' | 'i' | 'u' | 'b';
  size: number;
  little: boolean;
}

function parseDescr(descr: string, fail: (m: string) => never): DTypeInfo {
  const m = /^([<>|=])([fiub])(\d+)$/.exec(descr);
  if (!m) fail(`unsupported dtype '${descr}' (only plain numeric dtypes are supported)`);
  const order = m[1]!;
  const kind = m[2] as DTypeInfo['kind'];
  const size = Number(m[3]);
  const ok =
    (kind === 'f' && (size === 4 || size === 8)) ||
    ((kind === 'i' || kind === 'u') && [1, 2, 4, 8].includes(size)) ||
    (kind === 'b' && size === 1);
  if (!ok) fail(`unsupported dtype '${descr}'`);
  return { kind, size, little: order !== '>' };
}

/** Parse the header dict literal. */
function parseHeader(text: string, fail: (m: string) => never): Omit<NpyArray, 'data'> {
  // numpy's literal_eval would keep the last of two equal keys, the regexes below the first.
  for (const key of ['descr', 'fortran_order', 'shape'])
    if ((text.match(new RegExp(`['"]${key}['"]\\s*:`, 'g')) ?? []).length > 1)
      fail(`header gives '${key}' more than once (${JSON.stringify(text.slice(0, 120))})`);
  const descr = /['"]descr['"]\s*:\s*['"]([^'"]*)['"]/.exec(text)?.[1];
  if (descr === undefined) fail(`header has no 'descr' (${JSON.stringify(text.slice(0, 120))})`);
  const fo = /['"]fortran_order['"]\s*:\s*(True|False)/.exec(text)?.[1];
  if (fo === undefined) fail(`header has no 'fortran_order'`);
  const sh = /['"]shape['"]\s*:\s*\(([^)]*)\)/.exec(text)?.[1];
  if (sh === undefined) fail(`header has no 'shape'`);
  const parts = sh
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
  const shape = parts.map((p) => {
    const n = /^\d+L?$/.test(p) ? Number(p.replace(/L$/, '')) : NaN;
    if (!Number.isSafeInteger(n)) fail(`bad shape entry '${p.slice(0, 40)}' in header`);
    return n;
  });
  return { descr, fortranOrder: fo === 'True', shape };
}

function readValues(bytes: Uint8Array, dt: DTypeInfo, n: number, fail: (m: string) => never): NpyData {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const le = dt.little;
  const { kind, size } = dt;
  if (kind === 'f' && size === 4) {
    const a = new Float32Array(n);
    for (let i = 0; i < n; i++) a[i] = dv.getFloat32(i * 4, le);
    return a;
  }
  if (kind === 'f') {
    const a = new Float64Array(n);
    for (let i = 0; i < n; i++) a[i] = dv.getFloat64(i * 8, le);
    return a;
  }
  if (kind === 'b' || (kind === 'u' && size === 1)) return bytes.slice(0, n);
  if (kind === 'i' && size === 1) return new Int8Array(bytes.slice(0, n).buffer);
  if (size === 2) {
    const a = kind === 'i' ? new Int16Array(n) : new Uint16Array(n);
    for (let i = 0; i < n; i++) a[i] = kind === 'i' ? dv.getInt16(i * 2, le) : dv.getUint16(i * 2, le);
    return a;
  }
  if (size === 4) {
    const a = kind === 'i' ? new Int32Array(n) : new Uint32Array(n);
    for (let i = 0; i < n; i++) a[i] = kind === 'i' ? dv.getInt32(i * 4, le) : dv.getUint32(i * 4, le);
    return a;
  }
  const a = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const v = kind === 'i' ? dv.getBigInt64(i * 8, le) : dv.getBigUint64(i * 8, le);
    const x = Number(v);
    if (!Number.isSafeInteger(x)) fail(`int64 value ${v} at index ${i} does not fit a double exactly`);
    a[i] = x;
  }
  return a;
}

/** Reorder Fortran-order data (first index fastest) to C order. */
function fortranToC<T extends NpyData>(data: T, shape: number[]): T {
  if (shape.length < 2) return data;
  const n = data.length;
  const out = new (data.constructor as new (n: number) => T)(n);
  const nd = shape.length;
  // strides of the Fortran layout
  const fstride = new Array<number>(nd);
  let s = 1;
  for (let d = 0; d < nd; d++) {
    fstride[d] = s;
    s *= shape[d]!;
  }
  const idx = new Array<number>(nd).fill(0);
  let src = 0;
  for (let i = 0; i < n; i++) {
    out[i] = data[src]!;
    // increment the C-order multi-index (last axis fastest)
    for (let d = nd - 1; d >= 0; d--) {
      idx[d]!++;
      src += fstride[d]!;
      if (idx[d]! < shape[d]!) break;
      src -= fstride[d]! * shape[d]!;
      idx[d] = 0;
    }
  }
  return out;
}

/** Parse one .npy file. `source` names the file in errors. */
export function parseNpy(buf: Uint8Array, source = '.npy data'): NpyArray {
  const fail: (m: string) => never = (m) => {
    throw new NpyError(`${source}: ${m}`);
  };
  if (buf.byteLength < 10 || MAGIC.some((b, i) => buf[i] !== b))
    fail('not a .npy file (missing \\x93NUMPY magic)');
  const major = buf[6]!;
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  let hlen: number;
  let hstart: number;
  if (major === 1) {
    hlen = dv.getUint16(8, true);
    hstart = 10;
  } else if (major === 2 || major === 3) {
    if (buf.byteLength < 12) fail('truncated header');
    hlen = dv.getUint32(8, true);
    hstart = 12;
  } else fail(`unsupported .npy format version ${major}.${buf[7]}`);
  if (hstart + hlen > buf.byteLength)
    fail(`header length ${hlen} exceeds the file (${buf.byteLength} bytes)`);
  const text = new TextDecoder(major === 3 ? 'utf-8' : 'latin1').decode(buf.subarray(hstart, hstart + hlen));
  const head = parseHeader(text, fail);
  const dt = parseDescr(head.descr, fail);
  const n = head.shape.reduce((a, b) => a * b, 1);
  const dataStart = hstart + hlen;
  const need = n * dt.size;
  if (!(buf.byteLength - dataStart >= need))
    fail(
      `data truncated: shape (${head.shape.join(', ')}) ${head.descr} needs ${need} bytes, ` +
        `file has ${buf.byteLength - dataStart}`,
    );
  let data = readValues(buf.subarray(dataStart, dataStart + need), dt, n, fail);
  if (head.fortranOrder) data = fortranToC(data, head.shape);
  return { ...head, data };
}

/** Parse a .npz archive into its arrays (member names without the .npy suffix). */
export function parseNpz(buf: Uint8Array, source = '.npz data'): Map<string, NpyArray> {
  if (buf.byteLength < 4 || !looksLikeZip(buf))
    throw new NpyError(`${source}: not a .npz file (no zip signature)`);
  const out = new Map<string, NpyArray>();
  try {
    const zip = new ZipArchive(buf, source);
    for (const name of zip.names()) {
      if (name.endsWith('/')) continue;
      const key = name.endsWith('.npy') ? name.slice(0, -4) : name;
      if (out.has(key)) throw new NpyError(`${source}: member '${key}' appears twice`);
      out.set(key, parseNpy(zip.read(name), `${source}[${name}]`));
    }
  } catch (e) {
    if (e instanceof ZipError) {
      const why = e.message.startsWith(`${source}: `) ? e.message.slice(source.length + 2) : e.message;
      throw new NpyError(`${source}: corrupt .npz (zip) archive: ${why}`, { cause: e });
    }
    throw e;
  }
  return out;
}

// ------------------------------------------------------------------ writers (tests, tools)

export type NpyWriteDType = '<f4' | '<f8' | '<i4' | '<i8' | '|u1' | '<i2' | '>f4' | '>i4';

/** Encode a C-order (or, with fortran=true, Fortran-order) .npy, format 1.0. */
export function encodeNpy(
  values: ArrayLike<number>,
  shape: number[],
  descr: NpyWriteDType = '<f4',
  fortranOrder = false,
): Uint8Array {
  const n = shape.reduce((a, b) => a * b, 1);
  if (values.length !== n)
    throw new NpyError(`encodeNpy: ${values.length} values for shape (${shape.join(',')})`);
  const shp = shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(', ')})`;
  let header = `{'descr': '${descr}', 'fortran_order': ${fortranOrder ? 'True' : 'False'}, 'shape': ${shp}, }`;
  const total = 10 + header.length + 1;
  header += ' '.repeat((64 - (total % 64)) % 64) + '\n';
  const size = Number(descr.slice(2));
  const out = new Uint8Array(10 + header.length + n * size);
  out.set(MAGIC, 0);
  out[6] = 1;
  out[7] = 0;
  const dv = new DataView(out.buffer);
  dv.setUint16(8, header.length, true);
  for (let i = 0; i < header.length; i++) out[10 + i] = header.charCodeAt(i);
  const base = 10 + header.length;
  // element order in the file
  const order: number[] = [];
  if (fortranOrder && shape.length > 1) {
    const nd = shape.length;
    const cstride = new Array<number>(nd);
    let s = 1;
    for (let d = nd - 1; d >= 0; d--) {
      cstride[d] = s;
      s *= shape[d]!;
    }
    const idx = new Array<number>(nd).fill(0);
    for (let i = 0; i < n; i++) {
      let src = 0;
      for (let d = 0; d < nd; d++) src += idx[d]! * cstride[d]!;
      order.push(src);
      for (let d = 0; d < nd; d++) {
        idx[d]!++;
        if (idx[d]! < shape[d]!) break;
        idx[d] = 0;
      }
    }
  }
  const le = descr[0] !== '>';
  for (let i = 0; i < n; i++) {
    const v = values[order.length ? order[i]! : i]!;
    const o = base + i * size;
    switch (descr) {
      case '<f4':
      case '>f4':
        dv.setFloat32(o, v, le);
        break;
      case '<f8':
        dv.setFloat64(o, v, true);
        break;
      case '<i4':
      case '>i4':
        dv.setInt32(o, v, le);
        break;
      case '<i8':
        dv.setBigInt64(o, BigInt(v), true);
        break;
      case '<i2':
        dv.setInt16(o, v, true);
        break;
      case '|u1':
        dv.setUint8(o, v);
        break;
    }
  }
  return out;
}

/** Encode arrays into a .npz (deflated like np.savez_compressed, or stored like np.savez). */
export function encodeNpz(
  arrays: Record<string, { values: ArrayLike<number>; shape: number[]; descr?: NpyWriteDType }>,
  compressed = true,
): Uint8Array {
  const files: Record<string, Uint8Array> = {};
  for (const [k, a] of Object.entries(arrays)) files[`${k}.npy`] = encodeNpy(a.values, a.shape, a.descr);
  return zipSync(files, { level: compressed ? 6 : 0 });
}
