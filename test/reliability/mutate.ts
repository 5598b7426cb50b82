/**
 * A small, seeded, deterministic mutation engine and fuzz harness for the file readers
 * (test/reliability/fuzz_*.test.ts).
 *
 *  - Generic byte mutators: truncation (anywhere, 0 bytes, header-only), bit flips, byte runs
 *    overwritten, inserted/deleted ranges, "interesting" integers (0, 2^31, 2^32-1, 2^60, ...)
 *    written as u16/u32/u64 in either byte order, copied ranges. A mutator can be pointed at a hot
 *    region (the header) so that most mutations hit structure rather than tensor data.
 *  - Format-aware helpers shared by several readers: a zip directory editor (sizes, offsets,
 *    counts, duplicated and overlapping entries) and a pickle disassembler/assembler with opcode
 *    mutations (drop/duplicate/swap ops, huge or negative ints, renamed globals, injected ops).
 *  - `FuzzRun`: runs one reader over many inputs and classifies each outcome: success (then the
 *    caller's consistency check runs), a clean error (an instance of the reader's own error
 *    classes whose message names the source), or a failure (any other error, a message without
 *    the source, an input slower than the bound, memory growth past the bound). Failures are
 *    written to a temporary folder so they can be shrunk (`shrink`) and added to the regression
 *    corpus (test/fixtures/fuzz).
 *
 * FUZZ_ITERS (default 1) multiplies every iteration count for long local campaigns; FUZZ_SEED
 * (default 0) shifts every seed so a campaign can explore new inputs. A failure message names the
 * seed, the mutation and the saved input.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Rng } from '../../src/util/rng.js';

export { Rng };

/** Multiplier of every iteration count (env FUZZ_ITERS, default 1). */
export const FUZZ_ITERS = Math.max(1, Number(process.env.FUZZ_ITERS ?? 1) || 1);
/** Added to every seed (env FUZZ_SEED, default 0). */
export const FUZZ_SEED = Number(process.env.FUZZ_SEED ?? 0) || 0;

export function iters(n: number): number {
  return Math.round(n * FUZZ_ITERS);
}

/** A test timeout that grows with FUZZ_ITERS. */
export function timeout(ms: number): number {
  return Math.round(ms * FUZZ_ITERS);
}

export function rngFor(seed: number): Rng {
  return new Rng((seed + FUZZ_SEED * 0x9e3779b1) >>> 0);
}

export function pick<T>(rng: Rng, a: readonly T[]): T {
  return a[rng.int(0, a.length)]!;
}

export const INTERESTING: readonly bigint[] = [
  0n,
  1n,
  2n,
  0x7fn,
  0x80n,
  0xffn,
  0x100n,
  0x7fffn,
  0x8000n,
  0xffffn,
  0x10000n,
  0x7fffffffn,
  0x80000000n,
  0xfffffffen,
  0xffffffffn,
  1n << 32n,
  (1n << 53n) - 1n,
  1n << 53n,
  (1n << 53n) + 1n,
  1n << 60n,
  (1n << 63n) - 1n,
  1n << 63n,
  (1n << 64n) - 1n,
];

export interface Mutant {
  op: string;
  bytes: Uint8Array;
}

export type Region = readonly [number, number];

function cat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((a, p) => a + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

export { cat as concatBytes };

/** Writes `v` (mod 2^(8*width)) at `off` (clipped to the buffer). */
export function writeInt(b: Uint8Array, off: number, width: number, v: bigint, le = true): void {
  let x = BigInt.asUintN(width * 8, v);
  for (let i = 0; i < width; i++) {
    const p = le ? off + i : off + width - 1 - i;
    if (p >= 0 && p < b.length) b[p] = Number(x & 0xffn);
    x >>= 8n;
  }
}

function offsetIn(rng: Rng, len: number, hot?: Region): number {
  if (len === 0) return 0;
  if (hot && rng.next() < 0.75) {
    const lo = Math.max(0, Math.min(hot[0], len - 1));
    const hi = Math.max(lo + 1, Math.min(hot[1], len));
    return rng.int(lo, hi);
  }
  return rng.int(0, len);
}

/** One generic byte-level mutation. `hot` (e.g. the header) gets most of them. */
export function mutateBytes(src: Uint8Array, rng: Rng, hot?: Region): Mutant {
  const len = src.length;
  const k = rng.int(0, 100);
  if (k < 14) {
    // truncation: 0 bytes, 1-8 bytes, header-only, or anywhere
    const r = rng.int(0, 5);
    const cut =
      r === 0
        ? 0
        : r === 1
          ? Math.min(len, rng.int(1, 9))
          : r === 2 && hot
            ? Math.min(len, hot[1] + rng.int(-2, 3))
            : rng.int(0, len);
    return { op: `truncate@${cut}`, bytes: src.slice(0, Math.max(0, cut)) };
  }
  const b = src.slice();
  if (len === 0) return { op: 'empty', bytes: b };
  if (k < 38) {
    const n = rng.int(1, 9);
    for (let i = 0; i < n; i++) {
      const o = offsetIn(rng, len, hot);
      b[o]! ^= 1 << rng.int(0, 8);
    }
    return { op: `bitflip x${n}`, bytes: b };
  }
  if (k < 52) {
    const o = offsetIn(rng, len, hot);
    const n = Math.min(len - o, rng.int(1, 65));
    const mode = rng.int(0, 3);
    for (let i = 0; i < n; i++) b[o + i] = mode === 0 ? 0 : mode === 1 ? 0xff : rng.int(0, 256);
    return { op: `run@${o}+${n}:${['00', 'ff', 'rand'][mode]}`, bytes: b };
  }
  if (k < 76) {
    const width = pick(rng, [2, 4, 8] as const);
    const o = offsetIn(rng, len, hot);
    const v = pick(rng, INTERESTING);
    const le = rng.next() < 0.8;
    writeInt(b, o, width, rng.next() < 0.15 ? -v : v, le);
    return { op: `int${width * 8}${le ? 'le' : 'be'}@${o}=${v}`, bytes: b };
  }
  if (k < 84) {
    const o = offsetIn(rng, len, hot);
    const n = rng.int(1, 33);
    const ins = Uint8Array.from({ length: n }, () => rng.int(0, 256));
    return { op: `insert@${o}+${n}`, bytes: cat(src.subarray(0, o), ins, src.subarray(o)) };
  }
  if (k < 92) {
    const o = offsetIn(rng, len, hot);
    const n = Math.min(len - o, rng.int(1, 65));
    return { op: `delete@${o}+${n}`, bytes: cat(src.subarray(0, o), src.subarray(o + n)) };
  }
  const from = rng.int(0, len);
  const n = Math.min(len - from, rng.int(1, 129));
  const to = offsetIn(rng, len, hot);
  b.set(src.subarray(from, from + Math.min(n, len - to)), to);
  return { op: `copy ${from}+${n}->${to}`, bytes: b };
}

/** Several stacked generic mutations (1..max). */
export function mutateMany(src: Uint8Array, rng: Rng, hot?: Region, max = 3): Mutant {
  let cur: Mutant = { op: '', bytes: src };
  const n = rng.int(1, max + 1);
  const ops: string[] = [];
  for (let i = 0; i < n; i++) {
    cur = mutateBytes(cur.bytes, rng, hot);
    ops.push(cur.op);
  }
  return { op: ops.join(' + '), bytes: cur.bytes };
}

/** A safetensors file from a header object (or raw header text) and a data region. */
export function stFile(header: unknown, data: Uint8Array, raw?: string): Uint8Array {
  const h = new TextEncoder().encode(raw ?? JSON.stringify(header));
  const out = new Uint8Array(8 + h.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(h.length), true);
  out.set(h, 8);
  out.set(data, 8 + h.length);
  return out;
}

// ------------------------------------------------------------------ zip directory

export interface ZipLayoutEntry {
  /** Offset of the central directory record. */
  cd: number;
  lho: number;
  nlen: number;
  xlen: number;
  clen: number;
}

export interface ZipLayout {
  eocd: number;
  /** Offset of the ZIP64 end-of-central-directory record, or -1. */
  eocd64: number;
  cdOffset: number;
  cdSize: number;
  entries: ZipLayoutEntry[];
}

/** The directory layout of a well-formed zip (the seed before mutation). */
export function zipLayout(b: Uint8Array): ZipLayout {
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  let eocd = -1;
  for (let p = b.length - 22; p >= 0; p--)
    if (dv.getUint32(p, true) === 0x06054b50) {
      eocd = p;
      break;
    }
  if (eocd < 0) throw new Error('zipLayout: no EOCD');
  let cdOffset = dv.getUint32(eocd + 16, true);
  let cdSize = dv.getUint32(eocd + 12, true);
  let count = dv.getUint16(eocd + 10, true);
  let eocd64 = -1;
  if (eocd >= 20 && dv.getUint32(eocd - 20, true) === 0x07064b50) {
    eocd64 = Number(dv.getBigUint64(eocd - 12, true));
    count = Number(dv.getBigUint64(eocd64 + 32, true));
    cdSize = Number(dv.getBigUint64(eocd64 + 40, true));
    cdOffset = Number(dv.getBigUint64(eocd64 + 48, true));
  }
  const entries: ZipLayoutEntry[] = [];
  let p = cdOffset;
  for (let i = 0; i < count; i++) {
    const nlen = dv.getUint16(p + 28, true);
    const xlen = dv.getUint16(p + 30, true);
    const clen = dv.getUint16(p + 32, true);
    entries.push({ cd: p, lho: dv.getUint32(p + 42, true), nlen, xlen, clen });
    p += 46 + nlen + xlen + clen;
  }
  return { eocd, eocd64, cdOffset, cdSize, entries };
}

/** One structural mutation of a zip's directory (central, local or end records). */
export function mutateZipDir(src: Uint8Array, rng: Rng): Mutant {
  const L = zipLayout(src);
  const b = src.slice();
  const e = L.entries.length ? pick(rng, L.entries) : undefined;
  const v = pick(rng, INTERESTING);
  const k = rng.int(0, 12);
  if (k === 0 && e) {
    // a central-directory field of one entry
    const [name, off, w] = pick(rng, [
      ['flags', 8, 2],
      ['method', 10, 2],
      ['crc', 16, 4],
      ['csize', 20, 4],
      ['size', 24, 4],
      ['nlen', 28, 2],
      ['xlen', 30, 2],
      ['clen', 32, 2],
      ['disk', 34, 2],
      ['lho', 42, 4],
    ] as const);
    writeInt(b, e.cd + off, w, v);
    return { op: `zip cd.${name}=${v}`, bytes: b };
  }
  if (k === 1 && e) {
    const [name, off, w] = pick(rng, [
      ['flags', 6, 2],
      ['method', 8, 2],
      ['crc', 14, 4],
      ['csize', 18, 4],
      ['size', 22, 4],
      ['nlen', 26, 2],
      ['xlen', 28, 2],
    ] as const);
    writeInt(b, e.lho + off, w, v);
    return { op: `zip local.${name}=${v}`, bytes: b };
  }
  if (k === 2) {
    const [name, off, w] = pick(rng, [
      ['disk', 4, 2],
      ['cdDisk', 6, 2],
      ['countDisk', 8, 2],
      ['count', 10, 2],
      ['cdSize', 12, 4],
      ['cdOffset', 16, 4],
      ['commentLen', 20, 2],
    ] as const);
    writeInt(b, L.eocd + off, w, v);
    return { op: `zip eocd.${name}=${v}`, bytes: b };
  }
  if (k === 3 && L.eocd64 >= 0) {
    const [name, off, w] = pick(rng, [
      ['size', 4, 8],
      ['disk', 16, 4],
      ['cdDisk', 20, 4],
      ['countDisk', 24, 8],
      ['count', 32, 8],
      ['cdSize', 40, 8],
      ['cdOffset', 48, 8],
    ] as const);
    writeInt(b, L.eocd64 + off, w, v);
    return { op: `zip eocd64.${name}=${v}`, bytes: b };
  }
  if (k === 3) {
    writeInt(b, L.eocd - 12, 8, v);
    return { op: `zip locator64=${v}`, bytes: b };
  }
  if (k === 4 && L.entries.length >= 2) {
    // two entries share a local header (overlap)
    const a = L.entries[rng.int(0, L.entries.length)]!;
    const c = L.entries[rng.int(0, L.entries.length)]!;
    writeInt(b, c.cd + 42, 4, BigInt(a.lho));
    return { op: 'zip overlap lho', bytes: b };
  }
  if (k === 5 && e) {
    // the same central record twice (duplicated name), counts and sizes adjusted
    const rec = src.subarray(e.cd, e.cd + 46 + e.nlen + e.xlen + e.clen);
    const cdEnd = L.cdOffset + L.cdSize;
    const out = cat(src.subarray(0, cdEnd), rec, src.subarray(cdEnd));
    const shift = rec.length;
    const dv = new DataView(out.buffer);
    const eocd = L.eocd + shift;
    dv.setUint16(eocd + 8, dv.getUint16(eocd + 8, true) + 1, true);
    dv.setUint16(eocd + 10, dv.getUint16(eocd + 10, true) + 1, true);
    if (dv.getUint32(eocd + 12, true) !== 0xffffffff)
      dv.setUint32(eocd + 12, dv.getUint32(eocd + 12, true) + shift, true);
    if (L.eocd64 >= 0) {
      const e64 = L.eocd64 + shift;
      dv.setBigUint64(e64 + 24, dv.getBigUint64(e64 + 24, true) + 1n, true);
      dv.setBigUint64(e64 + 32, dv.getBigUint64(e64 + 32, true) + 1n, true);
      dv.setBigUint64(e64 + 40, dv.getBigUint64(e64 + 40, true) + BigInt(shift), true);
      dv.setBigUint64(eocd - 12, BigInt(e64), true);
    }
    return { op: 'zip duplicate entry', bytes: out };
  }
  if (k === 6 && e) {
    // rename an entry in the central record only (or both, keeping them consistent)
    const both = rng.next() < 0.5;
    const i = rng.int(0, e.nlen);
    const ch = pick(rng, [0x2f, 0x00, 0x2e, 0x41, 0xff]);
    b[e.cd + 46 + i] = ch;
    if (both) b[e.lho + 30 + i] = ch;
    return { op: `zip rename${both ? ' both' : ''}[${i}]=${ch}`, bytes: b };
  }
  if (k === 7 && e) {
    // ZIP64: mark a size as 0xffffffff (needs an extra field that may not be there)
    writeInt(b, e.cd + pick(rng, [20, 24, 42]), 4, 0xffffffffn);
    return { op: 'zip force zip64 field', bytes: b };
  }
  if (k === 8 && e && e.xlen >= 4) {
    // corrupt the extra field's id/size in the central or local record
    const local = rng.next() < 0.5;
    const base = local ? e.lho + 30 + e.nlen : e.cd + 46 + e.nlen;
    writeInt(b, base + pick(rng, [0, 2, 4, 12]), pick(rng, [2, 8]), v);
    return { op: `zip ${local ? 'local' : 'cd'} extra=${v}`, bytes: b };
  }
  if (k === 9) {
    // truncate inside the directory / just before the EOCD
    const cut = rng.int(L.cdOffset, src.length);
    return { op: `zip truncate dir@${cut}`, bytes: src.slice(0, cut) };
  }
  if (k === 10) {
    // junk appended after the EOCD (a comment that the length field does not cover)
    return {
      op: 'zip trailing junk',
      bytes: cat(
        src,
        Uint8Array.from({ length: rng.int(1, 40) }, () => 7),
      ),
    };
  }
  return mutateBytes(src, rng, [L.cdOffset, src.length]);
}

// ------------------------------------------------------------------ pickle

export interface PickleOp {
  op: number;
  /** The argument bytes exactly as they follow the opcode. */
  arg: Uint8Array;
}

const LINE1 = new Set([0x49, 0x4c, 0x46, 0x53, 0x56, 0x70, 0x67, 0x50]); // INT LONG FLOAT STRING UNICODE PUT GET PERSID
const LINE2 = new Set([0x63, 0x69]); // GLOBAL INST
const FIXED: Record<number, number> = {
  0x80: 1,
  0x95: 8,
  0x4a: 4,
  0x4b: 1,
  0x4d: 2,
  0x47: 8,
  0x71: 1,
  0x72: 4,
  0x68: 1,
  0x6a: 4,
  0x82: 1,
  0x83: 2,
  0x84: 4,
};
/** opcode → [length-prefix width] for the counted arguments. */
const COUNTED: Record<number, number> = {
  0x8a: 1, // LONG1
  0x8b: 4, // LONG4
  0x58: 4, // BINUNICODE
  0x8c: 1, // SHORT_BINUNICODE
  0x8d: 8, // BINUNICODE8
  0x54: 4, // BINSTRING
  0x55: 1, // SHORT_BINSTRING
  0x42: 4, // BINBYTES
  0x43: 1, // SHORT_BINBYTES
  0x8e: 8, // BINBYTES8
  0x96: 8, // BYTEARRAY8
};

/** Splits one pickle (from `start` through STOP) into opcodes; `rest` is what follows STOP. */
export function disassemble(b: Uint8Array, start = 0): { ops: PickleOp[]; end: number } {
  const ops: PickleOp[] = [];
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  let p = start;
  for (;;) {
    if (p >= b.length) throw new Error('disassemble: no STOP');
    const op = b[p++]!;
    let len = 0;
    if (op in FIXED) len = FIXED[op]!;
    else if (op in COUNTED) {
      const w = COUNTED[op]!;
      const n = w === 1 ? b[p]! : w === 4 ? dv.getUint32(p, true) : Number(dv.getBigUint64(p, true));
      len = w + n;
    } else if (LINE1.has(op)) len = b.indexOf(0x0a, p) + 1 - p;
    else if (LINE2.has(op)) len = b.indexOf(0x0a, b.indexOf(0x0a, p) + 1) + 1 - p;
    ops.push({ op, arg: b.slice(p, p + len) });
    p += len;
    if (op === 0x2e) return { ops, end: p };
  }
}

export function assemble(ops: readonly PickleOp[]): Uint8Array {
  return cat(...ops.map((o) => cat(Uint8Array.of(o.op), o.arg)));
}

const enc = new TextEncoder();

function counted(op: number, w: number, payload: Uint8Array): PickleOp {
  const arg = new Uint8Array(w + payload.length);
  writeInt(arg, 0, w, BigInt(payload.length));
  arg.set(payload, w);
  return { op, arg };
}

/** The pickle op that pushes integer `v` (BININT when it fits, else LONG1). */
export function intOp(v: bigint): PickleOp {
  if (v >= -(1n << 31n) && v < 1n << 31n) {
    const arg = new Uint8Array(4);
    writeInt(arg, 0, 4, v);
    return { op: 0x4a, arg };
  }
  const bytes: number[] = [];
  let x = v;
  for (;;) {
    bytes.push(Number(BigInt.asUintN(8, x)));
    x >>= 8n;
    if ((x === 0n && !(bytes[bytes.length - 1]! & 0x80)) || (x === -1n && bytes[bytes.length - 1]! & 0x80))
      break;
  }
  return counted(0x8a, 1, Uint8Array.from(bytes));
}

export function strOp(s: string): PickleOp {
  return counted(0x58, 4, enc.encode(s));
}

export function globalOp(module: string, name: string, op = 0x63): PickleOp {
  return { op, arg: enc.encode(`${module}\n${name}\n`) };
}

const INJECT: readonly number[] = [
  0x28, // MARK
  0x74, // TUPLE
  0x7d, // EMPTY_DICT
  0x5d, // EMPTY_LIST
  0x75, // SETITEMS
  0x73, // SETITEM
  0x65, // APPENDS
  0x61, // APPEND
  0x52, // REDUCE
  0x62, // BUILD
  0x81, // NEWOBJ
  0x93, // STACK_GLOBAL
  0x30, // POP
  0x31, // POP_MARK
  0x32, // DUP
  0x4e, // NONE
  0x85, // TUPLE1
  0x86, // TUPLE2
  0x87, // TUPLE3
  0x29, // EMPTY_TUPLE
  0x51, // BINPERSID
  0x64, // DICT
  0x6c, // LIST
  0x90, // ADDITEMS
  0x8f, // EMPTY_SET
  0x91, // FROZENSET
  0x94, // MEMOIZE
  0x2e, // STOP
  0x92, // NEWOBJ_EX
  0x6f, // OBJ
  0x97, // NEXT_BUFFER
  0x98, // READONLY_BUFFER
];

const EVIL: readonly [string, string][] = [
  ['os', 'system'],
  ['builtins', 'eval'],
  ['builtins', 'exec'],
  ['__builtin__', 'eval'],
  ['subprocess', 'Popen'],
  ['torch', 'load'],
  ['numpy.core.multiarray', '_reconstruct'],
  ['torch._utils', '_rebuild_tensor_v2'],
  ['torch', 'FloatStorage'],
  ['torch', 'LongStorage'],
  ['collections', 'OrderedDict'],
  ['_codecs', 'encode'],
];

const INT_OPS = new Set([0x4a, 0x4b, 0x4d, 0x8a, 0x8b, 0x49, 0x4c]);
const STR_OPS = new Set([0x58, 0x8c, 0x8d, 0x54, 0x55, 0x56, 0x53]);

/** One opcode-level mutation of a pickle (the ops after it are kept). */
export function mutatePickleOps(ops: readonly PickleOp[], rng: Rng): { op: string; ops: PickleOp[] } {
  const out = ops.slice();
  const i = rng.int(0, Math.max(1, out.length - 1)); // rarely the final STOP
  const k = rng.int(0, 12);
  const ints = out.flatMap((o, j) => (INT_OPS.has(o.op) ? [j] : []));
  const strs = out.flatMap((o, j) => (STR_OPS.has(o.op) ? [j] : []));
  const globs = out.flatMap((o, j) => (o.op === 0x63 || o.op === 0x93 ? [j] : []));
  if (k <= 2 && ints.length) {
    const j = pick(rng, ints);
    const base = pick(rng, INTERESTING);
    const v = pick(rng, [base, -base, base + 1n, -1n, 1n << 40n, 1n << 62n, 10n ** 30n]);
    out[j] = intOp(v);
    return { op: `pickle int#${j}=${v}`, ops: out };
  }
  if (k === 3 && strs.length) {
    const j = pick(rng, strs);
    const s = pick(rng, [
      'storage',
      'module',
      'FloatStorage',
      '',
      'x'.repeat(300),
      'little',
      'big',
      '0',
      '1',
    ]);
    out[j] = strOp(s);
    return { op: `pickle str#${j}='${s.slice(0, 12)}'`, ops: out };
  }
  if (k === 4 && globs.length) {
    const j = pick(rng, globs);
    const [m, n] = pick(rng, EVIL);
    if (out[j]!.op === 0x63) out[j] = globalOp(m, n);
    else out.splice(j, 1, strOp(m), strOp(n), { op: 0x93, arg: new Uint8Array(0) });
    return { op: `pickle global#${j}=${m}.${n}`, ops: out };
  }
  if (k === 5) {
    out.splice(i, 1);
    return { op: `pickle drop#${i}`, ops: out };
  }
  if (k === 6) {
    out.splice(i, 0, out[i]!);
    return { op: `pickle dup#${i}`, ops: out };
  }
  if (k === 7 && i + 1 < out.length) {
    const t = out[i]!;
    out[i] = out[i + 1]!;
    out[i + 1] = t;
    return { op: `pickle swap#${i}`, ops: out };
  }
  if (k === 8) {
    const o = pick(rng, INJECT);
    out.splice(i, 0, { op: o, arg: new Uint8Array(0) });
    return { op: `pickle inject#${i}=0x${o.toString(16)}`, ops: out };
  }
  if (k === 9) {
    // a memo index moved (BINGET/BINPUT 1-byte, LONG_BINGET/LONG_BINPUT 4-byte)
    const memo = out.flatMap((o, j) => ([0x68, 0x71, 0x6a, 0x72].includes(o.op) ? [j] : []));
    if (memo.length) {
      const j = pick(rng, memo);
      const a = out[j]!.arg.slice();
      writeInt(a, 0, a.length, pick(rng, INTERESTING));
      out[j] = { op: out[j]!.op, arg: a };
      return { op: `pickle memo#${j}`, ops: out };
    }
  }
  if (k === 10 && out.length > 2) {
    // a range of ops moved elsewhere
    const a = rng.int(0, out.length - 1);
    const n = Math.min(out.length - 1 - a, rng.int(1, 6));
    const moved = out.splice(a, n);
    out.splice(rng.int(0, out.length), 0, ...moved);
    return { op: `pickle move#${a}+${n}`, ops: out };
  }
  // an op's argument bytes corrupted in place (lengths included)
  const withArg = out.flatMap((o, j) => (o.arg.length ? [j] : []));
  if (withArg.length) {
    const j = pick(rng, withArg);
    const a = out[j]!.arg.slice();
    const m = mutateBytes(a, rng);
    out[j] = { op: out[j]!.op, arg: m.bytes };
    return { op: `pickle arg#${j} ${m.op}`, ops: out };
  }
  out.splice(i, 1);
  return { op: `pickle drop#${i}`, ops: out };
}

/** 1..max stacked opcode mutations of the pickle starting at `start`; bytes after STOP are kept. */
export function mutatePickle(b: Uint8Array, rng: Rng, start = 0, max = 2): Mutant {
  const { ops, end } = disassemble(b, start);
  let cur = ops;
  const names: string[] = [];
  const n = rng.int(1, max + 1);
  for (let i = 0; i < n; i++) {
    const m = mutatePickleOps(cur, rng);
    cur = m.ops;
    names.push(m.op);
  }
  return { op: names.join(' + '), bytes: cat(b.subarray(0, start), assemble(cur), b.subarray(end)) };
}

// ------------------------------------------------------------------ harness

type ErrorClass = abstract new (...args: never[]) => Error;

export interface FuzzOptions {
  /** The reader's own error classes; anything else thrown is a failure. */
  errors: readonly ErrorClass[];
  /** Per-input time bound in ms (default 2000). */
  maxMs?: number;
  /** Growth of rss + arrayBuffers allowed across one input (default 256 MiB). */
  maxGrowthBytes?: number;
}

export interface FuzzFailure {
  reader: string;
  op: string;
  kind: 'raw-error' | 'unnamed' | 'slow' | 'inconsistent' | 'memory';
  message: string;
  file: string;
}

export interface FuzzStats {
  reader: string;
  inputs: number;
  ok: number;
  clean: number;
  maxMs: number;
  maxGrowthMiB: number;
}

const saveDir = join(tmpdir(), 'sam-lst-fuzz');

export class FuzzRun {
  readonly failures: FuzzFailure[] = [];
  private inputs = 0;
  private ok = 0;
  private clean = 0;
  private maxMs = 0;
  private maxOp = '';
  private maxGrowth = 0;
  readonly errorsSeen = new Map<string, number>();

  constructor(
    readonly reader: string,
    readonly opts: FuzzOptions,
  ) {}

  /**
   * Runs `run(bytes, source)` on one input. `source` is a name unique to this input that the
   * reader must put in its error message. `check` validates a successful result.
   */
  async one<T>(
    op: string,
    bytes: Uint8Array,
    run: (bytes: Uint8Array, source: string) => T | Promise<T>,
    check?: (out: T, bytes: Uint8Array) => void,
  ): Promise<'ok' | 'error' | 'fail'> {
    const id = this.inputs++;
    const source = `fuzz-${this.reader}-${id}.bin`;
    const m0 = process.memoryUsage();
    const t0 = performance.now();
    let out: T | undefined;
    let err: unknown;
    let threw = false;
    try {
      out = await run(bytes, source);
    } catch (e) {
      err = e;
      threw = true;
    }
    const ms = performance.now() - t0;
    const m1 = process.memoryUsage();
    const growth = Math.max(0, m1.rss - m0.rss) + Math.max(0, m1.arrayBuffers - m0.arrayBuffers);
    if (ms > this.maxMs) {
      this.maxMs = ms;
      this.maxOp = op;
    }
    this.maxGrowth = Math.max(this.maxGrowth, growth);
    const fail = (kind: FuzzFailure['kind'], message: string): 'fail' => {
      const dir = join(saveDir, this.reader);
      mkdirSync(dir, { recursive: true });
      const file = join(dir, `${kind}-${FUZZ_SEED}-${id}.bin`);
      writeFileSync(file, bytes);
      this.failures.push({ reader: this.reader, op, kind, message: message.slice(0, 300), file });
      return 'fail';
    };
    if (ms > (this.opts.maxMs ?? 2000)) return fail('slow', `${ms.toFixed(0)} ms`);
    if (growth > (this.opts.maxGrowthBytes ?? 256 * 2 ** 20))
      return fail('memory', `grew ${(growth / 2 ** 20).toFixed(0)} MiB`);
    if (threw) {
      const e = err as Error;
      const cls = this.opts.errors.find((c) => e instanceof c);
      if (!cls) return fail('raw-error', `${(e as Error)?.name}: ${String((e as Error)?.message ?? e)}`);
      if (!String(e.message).includes(source))
        return fail('unnamed', `${e.name} without the source name: ${e.message}`);
      this.clean++;
      this.errorsSeen.set(e.name, (this.errorsSeen.get(e.name) ?? 0) + 1);
      return 'error';
    }
    if (check) {
      try {
        check(out as T, bytes);
      } catch (e) {
        return fail('inconsistent', (e as Error).message);
      }
    }
    this.ok++;
    return 'ok';
  }

  stats(): FuzzStats {
    return {
      reader: this.reader,
      inputs: this.inputs,
      ok: this.ok,
      clean: this.clean,
      maxMs: Math.round(this.maxMs),
      maxGrowthMiB: Math.round(this.maxGrowth / 2 ** 20),
    };
  }

  /** Prints the summary line (reader, inputs, ok-parses, clean errors, max ms). */
  report(): FuzzStats {
    const s = this.stats();
    const errs = [...this.errorsSeen].map(([k, v]) => `${k} ${v}`).join(', ');
    console.log(
      `[fuzz] ${s.reader}: inputs ${s.inputs}, ok-parses ${s.ok}, clean errors ${s.clean} (${errs}), ` +
        `failures ${this.failures.length}, max ${s.maxMs} ms (${this.maxOp.slice(0, 40)}), ` +
        `max growth ${s.maxGrowthMiB} MiB ` +
        `(FUZZ_ITERS=${FUZZ_ITERS}, FUZZ_SEED=${FUZZ_SEED})`,
    );
    return s;
  }

  /** A readable list of the first failures (for the assertion message). */
  describeFailures(max = 8): string {
    return this.failures
      .slice(0, max)
      .map((f) => `${f.kind} [${f.op}] ${f.message} (input: ${f.file})`)
      .join('\n');
  }
}

/**
 * Shrinks a failing input: drops tail halves, then chunks of decreasing size, keeping each cut
 * while `fails` still holds. Deterministic; at most `budget` calls of `fails`.
 */
export async function shrink(
  input: Uint8Array,
  fails: (b: Uint8Array) => boolean | Promise<boolean>,
  budget = 3000,
): Promise<Uint8Array> {
  let cur = input;
  let calls = 0;
  const tryCut = async (c: Uint8Array): Promise<boolean> => {
    if (calls++ >= budget) return false;
    if (await fails(c)) {
      cur = c;
      return true;
    }
    return false;
  };
  for (let chunk = cur.length >> 1; chunk >= 1 && calls < budget; chunk >>= 1) {
    let i = 0;
    while (i < cur.length && calls < budget) {
      if (!(await tryCut(cat(cur.subarray(0, i), cur.subarray(i + chunk))))) i += chunk;
    }
  }
  return cur;
}
