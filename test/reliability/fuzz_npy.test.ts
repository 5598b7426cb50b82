/**
 * Fuzzing parseNpy / parseNpz (src/data/npy.ts; .npz members are read with src/io/zip.ts).
 *
 * Seeds: files written by numpy itself (test/fixtures/fuzz/seeds, make_seeds.py: every supported
 * dtype in both byte orders, Fortran order, a 0-d and an empty array, format 2.0, np.savez and
 * np.savez_compressed with ZIP64 records) and by encodeNpy / encodeNpz.
 * Mutations: generic bytes aimed at the magic, version, header length and header text; the header
 * dict rewritten (unknown, structured, object and complex dtypes; huge, negative, fractional,
 * hexadecimal and overflowing shapes; a repeated or missing key; bad fortran_order); the header
 * length set to 0xffff / 2^32-1; every structural zip edit (sizes, offsets, counts, ZIP64 fields,
 * duplicated and overlapping members) and member .npy files mutated then re-zipped with valid
 * CRCs. Each input ends in arrays whose data matches their shape and dtype, or in an NpyError
 * naming the file, within 2 s, without allocating declared-but-absent gigabytes (fflate's
 * unzipSync, used before, allocated the declared size of every member).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { zipSync } from 'fflate';
import { expect, test } from 'vitest';
import { encodeNpy, encodeNpz, NpyError, parseNpy, parseNpz, type NpyArray } from '../../src/data/npy.js';
import { ZipArchive } from '../../src/io/zip.js';
import {
  concatBytes,
  FuzzRun,
  iters,
  mutateMany,
  mutateZipDir,
  pick,
  rngFor,
  writeInt,
  zipLayout,
  type Mutant,
  type Rng,
  timeout,
} from './mutate.js';

const SEEDS = {
  npyBytes: 0x0e7a01,
  npyHeader: 0x0e7a02,
  npzDir: 0x0e7a03,
  npzMember: 0x0e7a04,
  npzBytes: 0x0e7a05,
};
const seedDir = join(import.meta.dirname, '..', 'fixtures', 'fuzz', 'seeds');
const readSeed = (n: string) => new Uint8Array(readFileSync(join(seedDir, n)));

const KIND: Record<string, string> = {
  f4: 'Float32Array',
  f8: 'Float64Array',
  i1: 'Int8Array',
  u1: 'Uint8Array',
  b1: 'Uint8Array',
  i2: 'Int16Array',
  u2: 'Uint16Array',
  i4: 'Int32Array',
  u4: 'Uint32Array',
  i8: 'Float64Array',
  u8: 'Float64Array',
};

function checkArray(a: NpyArray): void {
  if (!a.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) throw new Error(`shape (${a.shape})`);
  const n = a.shape.reduce((x, y) => x * y, 1);
  if (a.data.length !== n) throw new Error(`${a.data.length} values for shape (${a.shape})`);
  const want = KIND[a.descr.slice(1)];
  if (a.data.constructor.name !== want) throw new Error(`descr ${a.descr} gave a ${a.data.constructor.name}`);
}

function checkNpz(m: Map<string, NpyArray>): void {
  for (const a of m.values()) checkArray(a);
}

function npySeeds(): Uint8Array[] {
  return [
    readSeed('numpy_fortran_f8.npy'),
    readSeed('numpy_v2.npy'),
    encodeNpy([1, -2, 3.5, 4, 5, 6], [2, 3], '<f4'),
    encodeNpy([1, 2, 3, 4, 5, 6], [3, 2], '>i4', true),
    encodeNpy([7, -1], [2], '<i8'),
    encodeNpy([1, 0, 255], [3], '|u1'),
    encodeNpy([], [0, 3], '<f4'),
    encodeNpy([9], [], '<i2'),
  ];
}

/** A v1.0 .npy with header text `h` (padded like numpy) and the data of `src`. */
function withHeader(src: Uint8Array, h: string): Uint8Array {
  const dv = new DataView(src.buffer, src.byteOffset);
  const v = src[6]!;
  const hstart = v === 1 ? 10 : 12;
  const hlen = v === 1 ? dv.getUint16(8, true) : dv.getUint32(8, true);
  const data = src.subarray(hstart + hlen);
  let text = h;
  text += ' '.repeat((64 - ((10 + text.length + 1) % 64)) % 64) + '\n';
  const head = new Uint8Array(10 + text.length);
  head.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0]);
  new DataView(head.buffer).setUint16(8, text.length, true);
  for (let i = 0; i < text.length; i++) head[10 + i] = text.charCodeAt(i) & 0xff;
  return concatBytes(head, data);
}

const DESCRS = [
  '<f4',
  '>f8',
  '|b1',
  '<i8',
  '>u8',
  '<u4',
  '<c8',
  '<U10',
  '|O',
  '<f2',
  '<f16',
  '|V8',
  '<M8[s]',
  '',
  '<f',
  'f4',
  '<i3',
  "[('a', '<f4')]",
];
const SHAPES = [
  '(2147483648, 2147483648)',
  '(4294967296, 4294967296, 4294967296)',
  '(-1,)',
  '(1.5,)',
  '(0x10,)',
  '(1e3,)',
  '()',
  '(9007199254740993,)',
  '(2, 3L)',
  '(0, 4294967296)',
  '(6)',
  '(,)',
  '(3, 2',
  '(' + Array.from({ length: 40 }, () => '1').join(', ') + ')',
  '(' + '9'.repeat(400) + ',)',
];

function mutateHeader(src: Uint8Array, rng: Rng): Mutant {
  const k = rng.int(0, 8);
  const descr = pick(rng, DESCRS);
  const shape = pick(rng, SHAPES);
  const fo = pick(rng, ['False', 'True', 'false', '1', 'None']);
  const base = (d: string, f: string, s: string) =>
    `{'descr': '${d}', 'fortran_order': ${f}, 'shape': ${s}, }`;
  if (k < 2) return { op: `descr ${descr}`, bytes: withHeader(src, base(descr, 'False', '(2, 3)')) };
  if (k < 4)
    return { op: `shape ${shape.slice(0, 40)}`, bytes: withHeader(src, base('<f4', 'False', shape)) };
  if (k === 4) return { op: `fortran_order ${fo}`, bytes: withHeader(src, base('<f4', fo, '(2, 3)')) };
  if (k === 5) {
    const dup = pick(rng, [
      "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), 'shape': (9999999999,), }",
      "{'descr': '<i1', 'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), }",
      "{'descr': '<f4', 'fortran_order': False, 'fortran_order': True, 'shape': (2, 3), }",
      "{'descr': '<f4', 'shape': (2, 3), }",
      "{'fortran_order': False, 'shape': (2, 3), }",
      '{}',
      '',
      "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), 'extra': 1, }",
    ]);
    return { op: `header ${dup.slice(0, 60)}`, bytes: withHeader(src, dup) };
  }
  const b = src.slice();
  if (k === 6) {
    const v = src[6] === 1;
    writeInt(
      b,
      8,
      v ? 2 : 4,
      pick(rng, [0n, 1n, 0xffffn, 0xffffffffn, BigInt(src.length), BigInt(src.length - 9)]),
    );
    return { op: 'header length', bytes: b };
  }
  b[6] = pick(rng, [0, 1, 2, 3, 4, 255]);
  b[7] = pick(rng, [0, 1, 255]);
  return { op: `version ${b[6]}.${b[7]}`, bytes: b };
}

test(
  '.npy: mutated files end in an array or an NpyError naming the file',
  async () => {
    const seeds = npySeeds();
    for (const s of seeds) checkArray(parseNpy(s, 'seed'));
    const run = new FuzzRun('npy', { errors: [NpyError] });
    let rng = rngFor(SEEDS.npyBytes);
    for (let i = 0; i < iters(400); i++) {
      const s = seeds[i % seeds.length]!;
      const m = mutateMany(s, rng, [0, Math.min(s.length, 140)]);
      await run.one(m.op, m.bytes, (b, src) => parseNpy(b, src), checkArray);
    }
    rng = rngFor(SEEDS.npyHeader);
    for (let i = 0; i < iters(300); i++) {
      const m = mutateHeader(seeds[i % seeds.length]!, rng);
      await run.one(m.op, m.bytes, (b, src) => parseNpy(b, src), checkArray);
    }
    run.report();
    expect(run.failures, run.describeFailures()).toEqual([]);
    expect(run.stats().ok).toBeGreaterThan(0);
  },
  timeout(120_000),
);

function npzSeeds(): Uint8Array[] {
  const arrays = {
    image: { values: Array.from({ length: 12 }, (_, i) => i / 7), shape: [3, 4] },
    label: { values: [0, 1, 8, 2, 3, 4], shape: [2, 3], descr: '|u1' as const },
  };
  return [
    readSeed('numpy24_stored.npz'),
    readSeed('numpy124_deflated.npz'),
    readSeed('numpy_dtypes_stored.npz'),
    readSeed('numpy_dtypes_deflated.npz'),
    encodeNpz(arrays, true),
    encodeNpz(arrays, false),
  ];
}

function mutateMember(src: Uint8Array, rng: Rng): Mutant {
  const z = new ZipArchive(src, 'seed');
  const entries = z.names().map((n): [string, Uint8Array] => [n, z.read(n)]);
  const i = rng.int(0, entries.length);
  const m = rng.next() < 0.5 ? mutateHeader(entries[i]![1], rng) : mutateMany(entries[i]![1], rng, [0, 128]);
  entries[i] = [entries[i]![0], m.bytes];
  const level = rng.next() < 0.5 ? 6 : 0;
  return { op: `member '${entries[i]![0]}' ${m.op}`, bytes: zipSync(Object.fromEntries(entries), { level }) };
}

test(
  '.npz: mutated archives end in arrays or an NpyError naming the file',
  async () => {
    const seeds = npzSeeds();
    for (const s of seeds) checkNpz(parseNpz(s, 'seed'));
    const run = new FuzzRun('npz', { errors: [NpyError] });
    let rng = rngFor(SEEDS.npzBytes);
    for (let i = 0; i < iters(300); i++) {
      const s = seeds[i % seeds.length]!;
      const m = mutateMany(s, rng, [zipLayout(s).cdOffset, s.length]);
      await run.one(m.op, m.bytes, (b, src) => parseNpz(b, src), checkNpz);
    }
    rng = rngFor(SEEDS.npzDir);
    for (let i = 0; i < iters(300); i++) {
      const m = mutateZipDir(seeds[i % seeds.length]!, rng);
      await run.one(m.op, m.bytes, (b, src) => parseNpz(b, src), checkNpz);
    }
    rng = rngFor(SEEDS.npzMember);
    for (let i = 0; i < iters(200); i++) {
      const m = mutateMember(seeds[i % seeds.length]!, rng);
      await run.one(m.op, m.bytes, (b, src) => parseNpz(b, src), checkNpz);
    }
    run.report();
    expect(run.failures, run.describeFailures()).toEqual([]);
    expect(run.stats().ok).toBeGreaterThan(0);
  },
  timeout(120_000),
);

test('.npz: declared member sizes beyond the archive are refused before allocation', () => {
  const seed = readSeed('numpy124_deflated.npz');
  const L = zipLayout(seed);
  const before = process.memoryUsage();
  for (const [field, off] of [
    ['size', 24],
    ['csize', 20],
  ] as const) {
    const b = seed.slice();
    writeInt(b, L.entries[0]!.cd + off, 4, 0xfffffff0n);
    let err: unknown;
    try {
      parseNpz(b, `huge-${field}.npz`);
    } catch (e) {
      err = e;
    }
    expect(err, field).toBeInstanceOf(NpyError);
    expect((err as Error).message).toContain(`huge-${field}.npz`);
  }
  // a zip64 end record claiming 2^32 members (fflate's unzipSync looped over them)
  const big = readSeed('numpy24_stored.npz');
  const L2 = zipLayout(big);
  const b = big.slice();
  writeInt(b, L2.eocd64 + 32, 8, 1n << 32n);
  const t0 = performance.now();
  expect(() => parseNpz(b, 'count.npz')).toThrow(/count\.npz/);
  expect(performance.now() - t0).toBeLessThan(2000);
  const after = process.memoryUsage();
  expect(after.arrayBuffers - before.arrayBuffers).toBeLessThan(64 * 2 ** 20);
});

test('.npz: two members with the same name are refused', () => {
  const seed = encodeNpz({ image: { values: [1, 2], shape: [2] } }, false);
  const L = zipLayout(seed);
  const e = L.entries[0]!;
  const rec = seed.subarray(e.cd, e.cd + 46 + e.nlen + e.xlen + e.clen);
  const cdEnd = L.cdOffset + L.cdSize;
  const out = concatBytes(seed.subarray(0, cdEnd), rec, seed.subarray(cdEnd));
  const dv = new DataView(out.buffer);
  const eocd = L.eocd + rec.length;
  dv.setUint16(eocd + 8, 2, true);
  dv.setUint16(eocd + 10, 2, true);
  dv.setUint32(eocd + 12, L.cdSize + rec.length, true);
  expect(() => parseNpz(out, 'dup.npz')).toThrow(NpyError);
  expect(() => parseNpz(out, 'dup.npz')).toThrow(/dup\.npz.*image\.npy.*twice/);
});
