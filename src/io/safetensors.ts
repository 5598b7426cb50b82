/**
 * safetensors read/write (host-side). Format: u64 little-endian header length N, N bytes of JSON
 * `{name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__"?: {...}}`, then the data.
 * The reader validates every offset, size and dtype before touching the data and names the file
 * and tensor in its errors.
 */
import { fmt, numel } from '../util/shape.js';

export type StDType = 'F32' | 'F16' | 'BF16' | 'F64' | 'I64' | 'I32' | 'I16' | 'I8' | 'U8' | 'BOOL';
/** Bytes per element of each safetensors dtype. */
export const ST_ITEM_BYTES: Readonly<Record<StDType, number>> = {
  F32: 4,
  F16: 2,
  BF16: 2,
  F64: 8,
  I64: 8,
  I32: 4,
  I16: 2,
  I8: 1,
  U8: 1,
  BOOL: 1,
};

export interface StEntry {
  dtype: StDType;
  shape: number[];
  /** Raw little-endian bytes (a view into the file buffer). */
  bytes: Uint8Array;
}

export interface SafeTensors {
  tensors: Map<string, StEntry>;
  metadata: Record<string, string>;
}

export class SafetensorsError extends Error {
  override name = 'SafetensorsError';
}

const MAX_HEADER = 100 * 1024 * 1024;

export function parseSafetensors(buf: Uint8Array, source = 'safetensors data'): SafeTensors {
  const fail = (m: string): never => {
    throw new SafetensorsError(`${source}: ${m}`);
  };
  if (buf.byteLength < 8) fail(`file is ${buf.byteLength} bytes, too short for a header`);
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const n = Number(dv.getBigUint64(0, true));
  if (n > MAX_HEADER || 8 + n > buf.byteLength)
    fail(`header length ${n} exceeds the file (${buf.byteLength} bytes): truncated or not safetensors`);
  let header: unknown;
  let text = '';
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(buf.subarray(8, 8 + n));
    header = JSON.parse(text);
  } catch (e) {
    fail(`header is not valid JSON (${(e as Error).message})`);
  }
  if (header === null || typeof header !== 'object' || Array.isArray(header))
    fail('header is not a JSON object');
  // JSON.parse keeps the last of two equal keys; a tensor named twice is ambiguous, so refuse it.
  const dup = duplicateTopLevelKey(text);
  if (dup !== undefined) fail(`tensor '${dup}' appears more than once in the header`);
  const dataStart = 8 + n;
  const dataLen = buf.byteLength - dataStart;
  const tensors = new Map<string, StEntry>();
  let metadata: Record<string, string> = {};
  const spans: [number, number, string][] = [];
  for (const [name, v] of Object.entries(header as Record<string, unknown>)) {
    if (name === '__metadata__') {
      // The format's metadata is a str -> str map (null: none).
      if (v === null) continue;
      if (typeof v !== 'object' || Array.isArray(v)) fail('__metadata__ is not a JSON object');
      for (const [k, x] of Object.entries(v as Record<string, unknown>))
        if (typeof x !== 'string')
          fail(
            `__metadata__ '${k}' is ${x === null ? 'null' : Array.isArray(x) ? 'an array' : `a ${typeof x}`}, not a string`,
          );
      metadata = v as Record<string, string>;
      continue;
    }
    const e = v as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (!e || typeof e !== 'object') fail(`tensor '${name}': entry is not an object`);
    const dtype = e.dtype as StDType;
    if (typeof dtype !== 'string' || !(dtype in ST_ITEM_BYTES))
      fail(`tensor '${name}': unsupported dtype ${String(e.dtype)}`);
    const shape = e.shape;
    if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0))
      fail(`tensor '${name}': invalid shape ${JSON.stringify(shape)}`);
    const offs = e.data_offsets;
    if (!Array.isArray(offs) || offs.length !== 2 || !offs.every((o) => Number.isSafeInteger(o) && o >= 0))
      fail(`tensor '${name}': invalid data_offsets ${JSON.stringify(offs)}`);
    const [b, end] = offs as [number, number];
    const count = numel(shape as number[]);
    const want = count * ST_ITEM_BYTES[dtype];
    if (!Number.isSafeInteger(want) || end < b || end - b !== want)
      fail(
        `tensor '${name}': ${dtype}${fmt(shape as number[])} needs ${want} bytes, offsets give ${end - b}`,
      );
    if (end > dataLen)
      fail(`tensor '${name}': data [${b}, ${end}) runs past the end of the file (${dataLen} data bytes)`);
    spans.push([b, end, name]);
    tensors.set(name, {
      dtype,
      shape: shape as number[],
      bytes: buf.subarray(dataStart + b, dataStart + end),
    });
  }
  spans.sort((a, b) => a[0] - b[0]);
  for (let i = 1; i < spans.length; i++) {
    const [b0, e0, n0] = spans[i - 1]!;
    const [b1, , n1] = spans[i]!;
    if (b1 < e0 && e0 > b0) fail(`tensors '${n0}' and '${n1}' overlap`);
  }
  return { tensors, metadata };
}

/**
 * The first top-level key that occurs twice in a JSON object text (already accepted by
 * JSON.parse), or undefined.
 */
function duplicateTopLevelKey(text: string): string | undefined {
  const seen = new Set<string>();
  let depth = 0;
  let expectKey = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22) {
      let j = i + 1;
      while (text.charCodeAt(j) !== 0x22) j += text.charCodeAt(j) === 0x5c ? 2 : 1;
      if (depth === 1 && expectKey) {
        const key = JSON.parse(text.slice(i, j + 1)) as string;
        if (seen.has(key)) return key;
        seen.add(key);
        expectKey = false;
      }
      i = j;
    } else if (c === 0x7b || c === 0x5b) {
      depth++;
      if (depth === 1) expectKey = true;
    } else if (c === 0x7d || c === 0x5d) depth--;
    else if (c === 0x2c && depth === 1) expectKey = true;
  }
  return undefined;
}

function f16ToF32(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

/** Decodes an entry to f32 (floats) or i32 (integers; int64 values must fit in i32). */
export function decodeEntry(e: StEntry, name = 'tensor'): Float32Array | Int32Array {
  const n = numel(e.shape);
  const dv = new DataView(e.bytes.buffer, e.bytes.byteOffset, e.bytes.byteLength);
  switch (e.dtype) {
    case 'F32': {
      const out = new Float32Array(n);
      for (let i = 0; i < n; i++) out[i] = dv.getFloat32(i * 4, true);
      return out;
    }
    case 'F64': {
      const out = new Float32Array(n);
      for (let i = 0; i < n; i++) out[i] = dv.getFloat64(i * 8, true);
      return out;
    }
    case 'F16': {
      const out = new Float32Array(n);
      for (let i = 0; i < n; i++) out[i] = f16ToF32(dv.getUint16(i * 2, true));
      return out;
    }
    case 'BF16': {
      const out = new Float32Array(n);
      const tmp = new DataView(new ArrayBuffer(4));
      for (let i = 0; i < n; i++) {
        tmp.setUint32(0, dv.getUint16(i * 2, true) << 16, true);
        out[i] = tmp.getFloat32(0, true);
      }
      return out;
    }
    case 'I32': {
      const out = new Int32Array(n);
      for (let i = 0; i < n; i++) out[i] = dv.getInt32(i * 4, true);
      return out;
    }
    case 'I64': {
      const out = new Int32Array(n);
      for (let i = 0; i < n; i++) {
        const v = dv.getBigInt64(i * 8, true);
        if (v > 2147483647n || v < -2147483648n)
          throw new SafetensorsError(`${name}: int64 value ${v} does not fit in int32`);
        out[i] = Number(v);
      }
      return out;
    }
    case 'I16':
    case 'I8':
    case 'U8':
    case 'BOOL': {
      const out = new Int32Array(n);
      for (let i = 0; i < n; i++)
        out[i] =
          e.dtype === 'I16' ? dv.getInt16(i * 2, true) : e.dtype === 'I8' ? dv.getInt8(i) : dv.getUint8(i);
      return out;
    }
  }
}

export interface StWriteEntry {
  dtype: 'F32' | 'I32' | 'F16';
  shape: number[];
  data: Float32Array | Int32Array | Uint16Array;
}

/** Serialises tensors (sorted by name) to safetensors bytes. */
export function writeSafetensors(
  entries: Map<string, StWriteEntry>,
  metadata?: Record<string, string>,
): Uint8Array {
  const names = [...entries.keys()].sort();
  const header: Record<string, unknown> = {};
  if (metadata) header.__metadata__ = metadata;
  let off = 0;
  for (const name of names) {
    const e = entries.get(name)!;
    const bytes = e.data.byteLength;
    if (e.data.length !== numel(e.shape))
      throw new SafetensorsError(`write: '${name}' has ${e.data.length} values for shape ${fmt(e.shape)}`);
    header[name] = { dtype: e.dtype, shape: e.shape, data_offsets: [off, off + bytes] };
    off += bytes;
  }
  const raw = new TextEncoder().encode(JSON.stringify(header));
  const hb = new Uint8Array(Math.ceil(raw.byteLength / 8) * 8).fill(0x20);
  hb.set(raw);
  const out = new Uint8Array(8 + hb.byteLength + off);
  new DataView(out.buffer).setBigUint64(0, BigInt(hb.byteLength), true);
  out.set(hb, 8);
  let p = 8 + hb.byteLength;
  for (const name of names) {
    const d = entries.get(name)!.data;
    out.set(new Uint8Array(d.buffer, d.byteOffset, d.byteLength), p);
    p += d.byteLength;
  }
  return out;
}
