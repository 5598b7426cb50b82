/**
 * Fuzzing decodeGreyPng / decodeMaskPng (src/data/png.ts over fast-png).
 *
 * Seeds: PNGs written with fast-png (8- and 16-bit grey, grey+alpha, RGB, RGBA) and the
 * SAM-Med2D demo images and masks in /work/shared/data when present.
 * Mutations: generic bytes aimed at the signature and IHDR; chunk-level edits with the CRC
 * recomputed so that they reach the decoder (IHDR width/height huge or zero, bit depth / colour
 * type / interlace / filter invalid, an IDAT cut short or its zlib stream corrupted, a chunk length
 * past the end, a missing IEND, an ancillary chunk inserted, a palette added); chunk CRCs broken.
 * Each input ends in an image of the declared size with values in [0, 1] (masks: 0/1) or in a
 * PngError naming the file, within 2 s, without allocating the pixels an IHDR declares but the
 * compressed data cannot hold (fast-png allocated width x height x channels from IHDR first).
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { encode } from 'fast-png';
import { deflateSync } from 'fflate';
import { expect, test } from 'vitest';
import { decodeGreyPng, decodeMaskPng, encodeGreyPng, PngError, type GreyImage } from '../../src/data/png.js';
import { crc32 } from '../../src/io/zip.js';
import {
  concatBytes,
  FuzzRun,
  INTERESTING,
  iters,
  mutateMany,
  pick,
  rngFor,
  writeInt,
  type Mutant,
  type Rng,
  timeout,
} from './mutate.js';

const SEEDS = { bytes: 0x9e6701, chunks: 0x9e6702, mask: 0x9e6703, real: 0x9e6704 };
const demo = join(import.meta.dirname, '..', '..', '..', 'shared', 'data', 'sam-med2d-demo');

function synthetic(): Uint8Array[] {
  const w = 7;
  const h = 5;
  const px = (c: number, max: number) => Array.from({ length: w * h * c }, (_, i) => (i * 37) % (max + 1));
  return [
    encodeGreyPng(px(1, 255), h, w),
    encode({ width: w, height: h, data: Uint16Array.from(px(1, 65535)), channels: 1, depth: 16 }),
    encode({ width: w, height: h, data: Uint8Array.from(px(2, 255)), channels: 2, depth: 8 }),
    encode({ width: w, height: h, data: Uint8Array.from(px(3, 255)), channels: 3, depth: 8 }),
    encode({ width: w, height: h, data: Uint8Array.from(px(4, 255)), channels: 4, depth: 8 }),
  ];
}

function realSeeds(): Uint8Array[] {
  if (!existsSync(demo)) {
    console.warn(`fuzz_png: ${demo} is absent; fuzzing the synthetic seeds only`);
    return [];
  }
  const pick2 = (sub: string) =>
    readdirSync(join(demo, sub))
      .filter((f) => f.endsWith('.png'))
      .sort()
      .slice(0, 2)
      .map((f) => new Uint8Array(readFileSync(join(demo, sub, f))));
  return [...pick2('images'), ...pick2('masks')];
}

interface Chunk {
  type: string;
  data: Uint8Array;
}

function chunks(b: Uint8Array): Chunk[] {
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const out: Chunk[] = [];
  let p = 8;
  while (p + 12 <= b.length) {
    const len = dv.getUint32(p);
    out.push({ type: String.fromCharCode(...b.subarray(p + 4, p + 8)), data: b.slice(p + 8, p + 8 + len) });
    p += 12 + len;
  }
  return out;
}

function chunkBytes(c: Chunk, badCrc = false): Uint8Array {
  const out = new Uint8Array(12 + c.data.length);
  const dv = new DataView(out.buffer);
  dv.setUint32(0, c.data.length);
  for (let i = 0; i < 4; i++) out[4 + i] = c.type.charCodeAt(i);
  out.set(c.data, 8);
  dv.setUint32(8 + c.data.length, crc32(out.subarray(4, 8 + c.data.length)) ^ (badCrc ? 1 : 0));
  return out;
}

function png(cs: Chunk[], badCrcAt = -1): Uint8Array {
  return concatBytes(
    Uint8Array.of(0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a),
    ...cs.map((c, i) => chunkBytes(c, i === badCrcAt)),
  );
}

function mutateChunks(src: Uint8Array, rng: Rng): Mutant {
  const cs = chunks(src);
  const ihdr = cs[0]!;
  const hd = ihdr.data.slice();
  const idx = cs.findIndex((c) => c.type === 'IDAT');
  const k = rng.int(0, 11);
  if (k <= 2) {
    const [f, o] = pick(rng, [
      ['width', 0],
      ['height', 4],
    ] as const);
    const v = pick(rng, [0n, 1n, 0x7fffn, 0x10000n, 0x7fffffffn, 0x80000000n, 0xffffffffn, 40000n]);
    writeInt(hd, o, 4, v, false);
    return { op: `IHDR ${f}=${v}`, bytes: png([{ type: 'IHDR', data: hd }, ...cs.slice(1)]) };
  }
  if (k === 3) {
    const [f, o, vals] = pick(rng, [
      ['depth', 8, [0, 3, 7, 16, 32, 255]],
      ['colour', 9, [1, 3, 5, 7, 255]],
      ['compression', 10, [1, 255]],
      ['filter', 11, [1, 255]],
      ['interlace', 12, [1, 2, 255]],
    ] as const);
    hd[o] = pick(rng, vals);
    return { op: `IHDR ${f}=${hd[o]}`, bytes: png([{ type: 'IHDR', data: hd }, ...cs.slice(1)]) };
  }
  if (k === 4 && idx > 0) {
    const d = cs[idx]!.data;
    const cut = rng.int(0, d.length);
    const out = cs.slice();
    out[idx] = { type: 'IDAT', data: d.slice(0, cut) };
    return { op: `IDAT cut@${cut} (CRC valid)`, bytes: png(out) };
  }
  if (k === 5 && idx > 0) {
    const out = cs.slice();
    const m = mutateMany(cs[idx]!.data, rng);
    out[idx] = { type: 'IDAT', data: m.bytes };
    return { op: `IDAT ${m.op} (CRC valid)`, bytes: png(out) };
  }
  if (k === 6 && idx > 0) {
    // a valid zlib stream of the wrong size (too short / too long for the header)
    const rows = pick(rng, [1, 3, 200]);
    const out = cs.slice();
    out[idx] = { type: 'IDAT', data: deflateZlib(new Uint8Array(rows * 40)) };
    return { op: `IDAT ${rows} rows of zeros`, bytes: png(out) };
  }
  if (k === 7) {
    const b = src.slice();
    const dv = new DataView(b.buffer);
    const at = 8 + 12 + 13 + (idx > 0 ? 0 : 0);
    dv.setUint32(at, Number(pick(rng, INTERESTING) & 0xffffffffn));
    return { op: 'chunk length', bytes: b };
  }
  if (k === 8) return { op: 'no IEND', bytes: png(cs.filter((c) => c.type !== 'IEND')) };
  if (k === 9) {
    const extra = pick(rng, [
      { type: 'tEXt', data: new TextEncoder().encode('Comment\0hello') },
      {
        type: 'zTXt',
        data: concatBytes(new TextEncoder().encode('Comment\0\0'), deflateZlib(new Uint8Array(100_000))),
      },
      { type: 'PLTE', data: new Uint8Array(9) },
      { type: 'tRNS', data: new Uint8Array(4) },
      { type: 'xYzW', data: new Uint8Array(3) },
      { type: 'IHDR', data: ihdr.data },
    ]);
    const at = rng.int(1, cs.length);
    const out = [...cs.slice(0, at), extra, ...cs.slice(at)];
    return { op: `insert ${extra.type}@${at}`, bytes: png(out) };
  }
  return { op: 'bad CRC', bytes: png(cs, rng.int(0, cs.length)) };
}

function deflateZlib(raw: Uint8Array): Uint8Array {
  const d = deflateSync(raw);
  const out = new Uint8Array(2 + d.length + 4);
  out[0] = 0x78;
  out[1] = 0x9c;
  out.set(d, 2);
  let a = 1;
  let b = 0;
  for (const x of raw) {
    a = (a + x) % 65521;
    b = (b + a) % 65521;
  }
  new DataView(out.buffer).setUint32(2 + d.length, ((b << 16) | a) >>> 0);
  return out;
}

function checkGrey(g: GreyImage): void {
  if (!(g.w >= 1 && g.h >= 1) || g.data.length !== g.w * g.h)
    throw new Error(`${g.data.length} values for ${g.w}x${g.h}`);
  for (let i = 0; i < g.data.length; i++)
    if (!(g.data[i]! >= 0 && g.data[i]! <= 1)) throw new Error(`value ${g.data[i]} at ${i} outside [0, 1]`);
}

function checkMask(m: { h: number; w: number; data: Uint8Array }): void {
  if (m.data.length !== m.w * m.h) throw new Error(`${m.data.length} values for ${m.w}x${m.h}`);
  for (const v of m.data) if (v !== 0 && v !== 1) throw new Error(`mask value ${v}`);
}

test(
  'PNG: mutated files end in an image or a PngError naming the file',
  async () => {
    const seeds = synthetic();
    const real = realSeeds();
    for (const s of [...seeds, ...real]) checkGrey(decodeGreyPng(s, 'seed'));
    const run = new FuzzRun('png', { errors: [PngError] });
    let rng = rngFor(SEEDS.bytes);
    for (let i = 0; i < iters(300); i++) {
      const s = seeds[i % seeds.length]!;
      const m = mutateMany(s, rng, [0, 40]);
      await run.one(m.op, m.bytes, (b, src) => decodeGreyPng(b, src), checkGrey);
    }
    rng = rngFor(SEEDS.chunks);
    for (let i = 0; i < iters(400); i++) {
      const m = mutateChunks(seeds[i % seeds.length]!, rng);
      await run.one(m.op, m.bytes, (b, src) => decodeGreyPng(b, src), checkGrey);
    }
    rng = rngFor(SEEDS.mask);
    for (let i = 0; i < iters(150); i++) {
      const m =
        i % 2
          ? mutateChunks(seeds[i % seeds.length]!, rng)
          : mutateMany(seeds[i % seeds.length]!, rng, [0, 40]);
      await run.one(m.op, m.bytes, (b, src) => decodeMaskPng(b, src), checkMask);
    }
    rng = rngFor(SEEDS.real);
    for (let i = 0; i < iters(25) * Math.min(1, real.length); i++) {
      const s = real[i % real.length]!;
      const m = i % 2 ? mutateChunks(s, rng) : mutateMany(s, rng, [0, 64]);
      await run.one(m.op, m.bytes, (b, src) => decodeGreyPng(b, src), checkGrey);
    }
    run.report();
    expect(run.failures, run.describeFailures()).toEqual([]);
    expect(run.stats().ok).toBeGreaterThan(0);
  },
  timeout(120_000),
);

test('PNG: an IHDR declaring 65535 x 65535 RGBA16 over a few bytes is refused before allocation', () => {
  const seed = synthetic()[0]!;
  const cs = chunks(seed);
  const hd = cs[0]!.data.slice();
  const dv = new DataView(hd.buffer);
  const before = process.memoryUsage();
  for (const [w, h, depth, colour] of [
    [65535, 65535, 16, 6],
    [30000, 30000, 8, 0],
    [0x7fffffff, 1, 8, 0],
  ] as const) {
    dv.setUint32(0, w);
    dv.setUint32(4, h);
    hd[8] = depth;
    hd[9] = colour;
    const b = png([{ type: 'IHDR', data: hd }, ...cs.slice(1)]);
    const t0 = performance.now();
    expect(() => decodeGreyPng(b, `huge-${w}.png`)).toThrow(PngError);
    expect(() => decodeGreyPng(b, `huge-${w}.png`)).toThrow(`huge-${w}.png`);
    expect(performance.now() - t0).toBeLessThan(2000);
  }
  const after = process.memoryUsage();
  expect(after.arrayBuffers - before.arrayBuffers).toBeLessThan(64 * 2 ** 20);
  expect(after.rss - before.rss).toBeLessThan(256 * 2 ** 20);
});
