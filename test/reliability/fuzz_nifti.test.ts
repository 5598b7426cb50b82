/**
 * Fuzzing the NIfTI readers: parseNifti and niftiPairToVolume (src/data/nifti.ts, over
 * nifti-reader-js) and readNiftiGeometry (src/io/nifti_write.ts).
 *
 * Seeds: encodeNifti files (int16 / float32 / uint8, plain and gzipped), a hand-built NIfTI-2
 * file, and the TotalSegmentator example in /work/shared/data (CT + segmentation with a header
 * extension), when present.
 * Mutations: generic bytes aimed at the header; structural header edits (sizeof_hdr, dim[] huge /
 * negative / zero, datatype and bitpix unknown or inconsistent, vox_offset NaN / negative / huge /
 * inside the header, scl_slope / pixdim NaN and Inf, magic, extension flag and a negative
 * extension size that made nifti-reader-js loop); the same on NIfTI-2 (64-bit dims and offsets);
 * gzip-level edits (truncation, a trailer declaring 4 GiB, a bad CRC, two members).
 * Each input ends in a volume whose data matches its dimensions (finite spacing; a pair: windowed
 * image in [0, 1] and labels in 0..8) or in a NiftiError / NiftiWriteError naming the file,
 * within 2 s, without allocating what the header or the gzip trailer declares but the file does
 * not hold.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync, gzipSync } from 'fflate';
import { expect, test } from 'vitest';
import { NiftiError, niftiPairToVolume, parseNifti, type NiftiVolume } from '../../src/data/nifti.js';
import {
  encodeNifti,
  NiftiWriteError,
  readNiftiGeometry,
  type NiftiGeometry,
} from '../../src/io/nifti_write.js';
import type { Volume } from '../../src/data/types.js';
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

const SEEDS = {
  bytes: 0x41f701,
  header: 0x41f702,
  v2: 0x41f703,
  gz: 0x41f704,
  pair: 0x41f705,
  geometry: 0x41f706,
};
const realDir = join(import.meta.dirname, '..', '..', '..', 'shared', 'data', 'totalsegmentator-example');

function nifti2(): Uint8Array {
  const b = new Uint8Array(544 + 4 * 24);
  const dv = new DataView(b.buffer);
  dv.setInt32(0, 540, true);
  b.set([0x6e, 0x2b, 0x32, 0, 0x0d, 0x0a, 0x1a, 0x0a], 4);
  dv.setInt16(12, 16, true); // float32
  dv.setInt16(14, 32, true);
  [3, 4, 3, 2, 1, 1, 1, 1].forEach((v, i) => dv.setBigInt64(16 + 8 * i, BigInt(v), true));
  [1, 0.5, 0.5, 2, 1, 1, 1, 1].forEach((v, i) => dv.setFloat64(104 + 8 * i, v, true));
  dv.setBigInt64(168, 544n, true);
  dv.setFloat64(176, 1, true);
  dv.setInt32(348, 1, true); // sform_code
  [0.5, 0, 0, -10, 0, 0.5, 0, -20, 0, 0, 2, 5].forEach((v, i) => dv.setFloat64(400 + 8 * i, v, true));
  for (let i = 0; i < 24; i++) dv.setFloat32(544 + 4 * i, i * 10 - 100, true);
  return b;
}

function synthetic(): Uint8Array[] {
  const n = 5 * 6 * 7;
  const ct = Float32Array.from({ length: n }, (_, i) => (i % 50) * 10 - 200);
  const lab = Uint8Array.from({ length: n }, (_, i) => i % 9);
  return [
    encodeNifti(ct, [5, 6, 7], { datatype: 'int16', spacing: [0.8, 0.8, 2.5] }),
    encodeNifti(ct, [5, 6, 7], { datatype: 'float32', gzip: true }),
    encodeNifti(lab, [5, 6, 7], { datatype: 'uint8', gzip: true }),
    nifti2(),
  ];
}

function real(): { ct: Uint8Array; seg: Uint8Array } | null {
  const ct = join(realDir, 'example_ct_sm.nii.gz');
  const seg = join(realDir, 'example_seg.nii.gz');
  if (!existsSync(ct) || !existsSync(seg)) {
    console.warn(`fuzz_nifti: ${realDir} is absent; fuzzing the synthetic seeds only`);
    return null;
  }
  return { ct: new Uint8Array(readFileSync(ct)), seg: new Uint8Array(readFileSync(seg)) };
}

const isGz = (b: Uint8Array) => b[0] === 0x1f && b[1] === 0x8b;
const plain = (b: Uint8Array) => (isGz(b) ? gunzipSync(b) : b);

const F_NASTY = [NaN, Infinity, -Infinity, -1, 0, 1e30, -352, 3.5e38, 348, 351.5, 2 ** 31, 1e-40];

/** One structural edit of a NIfTI-1 or NIfTI-2 header (on the plain bytes; re-gzipped if the seed was). */
function mutateHeader(src: Uint8Array, rng: Rng): Mutant {
  const gz = isGz(src);
  const b = plain(src).slice();
  const dv = new DataView(b.buffer);
  const v2 = dv.getInt32(0, true) === 540;
  const k = rng.int(0, 11);
  const iv = pick(rng, INTERESTING) * (rng.next() < 0.3 ? -1n : 1n);
  const f = pick(rng, F_NASTY);
  let op: string;
  if (k <= 2) {
    const i = rng.int(0, 8);
    if (v2) writeInt(b, 16 + 8 * i, 8, iv);
    else writeInt(b, 40 + 2 * i, 2, iv);
    op = `dim[${i}]=${iv}`;
  } else if (k === 3) {
    const code = pick(
      rng,
      [0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 511, 512, 768, 1024, 1536, 2048, -1, 0x7fff],
    );
    dv.setInt16(v2 ? 12 : 70, code, true);
    op = `datatype=${code}`;
  } else if (k === 4) {
    const bp = pick(rng, [0, 1, 7, 8, 16, 32, 64, -8, 0x7fff]);
    dv.setInt16(v2 ? 14 : 72, bp, true);
    op = `bitpix=${bp}`;
  } else if (k === 5) {
    if (v2)
      writeInt(
        b,
        168,
        8,
        rng.next() < 0.5 ? iv : BigInt(pick(rng, [0, 348, 539, 540, 544, b.length, b.length + 1])),
      );
    else dv.setFloat32(108, f, true);
    op = `vox_offset=${v2 ? '(i64)' : f}`;
  } else if (k === 6) {
    if (v2) dv.setFloat64(pick(rng, [176, 184]), f, true);
    else dv.setFloat32(pick(rng, [112, 116]), f, true);
    op = `scl=${f}`;
  } else if (k === 7) {
    const i = rng.int(0, 8);
    if (v2) dv.setFloat64(104 + 8 * i, f, true);
    else dv.setFloat32(76 + 4 * i, f, true);
    op = `pixdim[${i}]=${f}`;
  } else if (k === 8) {
    writeInt(b, 0, 4, pick(rng, [0n, 348n, 540n, 0x5c010000n, 0x1c020000n, iv]));
    op = 'sizeof_hdr';
  } else if (k === 9 && !v2) {
    // extension present with a negative size: nifti-reader-js walked back and forth forever
    b[348] = 1;
    dv.setInt32(352, -16, true);
    dv.setInt32(336, 16, true);
    if (dv.getFloat32(108, true) <= 368) dv.setFloat32(108, 368, true);
    op = 'extension esize -16';
  } else {
    const at = v2 ? 4 : 344;
    b.set(
      pick(rng, [
        [0x6e, 0x69, 0x31, 0],
        [0x6e, 0x2b, 0x32, 0],
        [0, 0, 0, 0],
        [0x6e, 0x2b, 0x31, 0],
      ]),
      at,
    );
    op = 'magic';
  }
  return { op: `${v2 ? 'nifti2 ' : ''}${op}${gz ? ' (gz)' : ''}`, bytes: gz ? gzipSync(b, { level: 1 }) : b };
}

function mutateGzip(src: Uint8Array, rng: Rng): Mutant {
  const gz = isGz(src) ? src : gzipSync(src, { level: 1 });
  const b = gz.slice();
  const dv = new DataView(b.buffer);
  const k = rng.int(0, 5);
  if (k === 0) {
    dv.setUint32(b.length - 4, pick(rng, [0xffffffff, 0x7fffffff, 0, 1]), true);
    return { op: 'gzip ISIZE', bytes: b };
  }
  if (k === 1) {
    dv.setUint32(b.length - 8, dv.getUint32(b.length - 8, true) ^ 1, true);
    return { op: 'gzip CRC', bytes: b };
  }
  if (k === 2) return { op: 'gzip two members', bytes: concatBytes(gz, gz) };
  if (k === 3) {
    const cut = rng.int(0, gz.length);
    return { op: `gzip truncate@${cut}`, bytes: gz.slice(0, cut) };
  }
  const m = mutateMany(gz, rng, [0, 64]);
  return { op: `gzip ${m.op}`, bytes: m.bytes };
}

function checkVolume(v: NiftiVolume): void {
  for (const d of [v.d, v.h, v.w])
    if (!Number.isSafeInteger(d) || d < 1) throw new Error(`dims ${v.w}x${v.h}x${v.d}`);
  if (v.data.length !== v.d * v.h * v.w) throw new Error(`${v.data.length} voxels for ${v.w}x${v.h}x${v.d}`);
  if (!v.spacing.every(Number.isFinite)) throw new Error(`spacing ${v.spacing}`);
  if (v.affine.length !== 4 || !v.affine.every((r) => r.length === 4)) throw new Error('affine is not 4x4');
}

function checkGeometry(g: NiftiGeometry): void {
  const r = g.dim[0]!;
  if (!(r >= 1 && r <= 7)) throw new Error(`rank ${r}`);
  for (let i = 1; i <= r; i++)
    if (!Number.isSafeInteger(g.dim[i]) || g.dim[i]! < 1) throw new Error(`dim[${i}] ${g.dim[i]}`);
}

function checkPair(v: Volume): void {
  const n = v.d * v.h * v.w;
  if (v.image.length !== n || v.label.length !== n) throw new Error('sizes differ from the dims');
  for (let i = 0; i < n; i++) {
    if (!(v.image[i]! >= 0 && v.image[i]! <= 1))
      throw new Error(`image value ${v.image[i]} at ${i} outside [0, 1]`);
    if (!(v.label[i]! >= 0 && v.label[i]! <= 8)) throw new Error(`label ${v.label[i]} at ${i} outside 0..8`);
  }
}

test(
  'NIfTI: mutated files end in a volume or a NiftiError naming the file',
  async () => {
    const seeds = synthetic();
    const r = real();
    const big = r ? [r.seg] : [];
    for (const s of [...seeds, ...big]) checkVolume(parseNifti(s, 'seed'));
    const run = new FuzzRun('nifti', { errors: [NiftiError] });
    const go = (m: Mutant) => run.one(m.op, m.bytes, (b, src) => parseNifti(b, src), checkVolume);
    let rng = rngFor(SEEDS.bytes);
    for (let i = 0; i < iters(300); i++) {
      const s = plain(seeds[i % seeds.length]!);
      const m = mutateMany(s, rng, [0, 560]);
      await go(rng.next() < 0.3 ? { op: `${m.op} (gz)`, bytes: gzipSync(m.bytes, { level: 1 }) } : m);
    }
    rng = rngFor(SEEDS.header);
    for (let i = 0; i < iters(400); i++) await go(mutateHeader(seeds[i % seeds.length]!, rng));
    rng = rngFor(SEEDS.gz);
    for (let i = 0; i < iters(120); i++) await go(mutateGzip(seeds[i % seeds.length]!, rng));
    rng = rngFor(SEEDS.v2);
    for (let i = 0; i < iters(40) * big.length; i++)
      await go(i % 2 ? mutateHeader(big[0]!, rng) : mutateGzip(big[0]!, rng));
    run.report();
    expect(run.failures, run.describeFailures()).toEqual([]);
    expect(run.stats().ok).toBeGreaterThan(0);
  },
  timeout(120_000),
);

test(
  'NIfTI: readNiftiGeometry on mutated headers',
  async () => {
    const seeds = synthetic();
    const run = new FuzzRun('nifti-geometry', { errors: [NiftiWriteError] });
    const rng = rngFor(SEEDS.geometry);
    for (let i = 0; i < iters(300); i++) {
      const s = seeds[i % seeds.length]!;
      const m =
        i % 3 === 0
          ? mutateGzip(s, rng)
          : i % 3 === 1
            ? mutateHeader(s, rng)
            : mutateMany(plain(s), rng, [0, 560]);
      await run.one(m.op, m.bytes, (b, src) => readNiftiGeometry(b, src), checkGeometry);
    }
    run.report();
    expect(run.failures, run.describeFailures()).toEqual([]);
  },
  timeout(120_000),
);

test(
  'NIfTI: image/label pairs under mutation end in a valid volume or a NiftiError',
  async () => {
    const r = real();
    const n = 5 * 6 * 7;
    const img = encodeNifti(
      Float32Array.from({ length: n }, (_, i) => i - 100),
      [5, 6, 7],
      { datatype: 'int16' },
    );
    const lab = encodeNifti(
      Uint8Array.from({ length: n }, (_, i) => i % 9),
      [5, 6, 7],
      { datatype: 'uint8' },
    );
    const pairs: [Uint8Array, Uint8Array, 'totalsegmentator' | null][] = [[img, lab, null]];
    if (r) pairs.push([r.ct, r.seg, 'totalsegmentator']);
    for (const [a, b, map] of pairs)
      checkPair(niftiPairToVolume('seed', a, b, 'a.nii', 'b.nii', { labelMap: map }));
    const run = new FuzzRun('nifti-pair', { errors: [NiftiError] });
    const rng = rngFor(SEEDS.pair);
    for (let i = 0; i < iters(150); i++) {
      const [a, b, map] = pairs[i % 5 === 4 && pairs.length > 1 ? 1 : 0]!;
      const which = rng.next() < 0.5;
      const m =
        rng.next() < 0.5 ? mutateHeader(which ? a : b, rng) : mutateMany(plain(which ? a : b), rng, [0, 400]);
      await run.one(
        `${which ? 'image' : 'label'} ${m.op}`,
        m.bytes,
        (x, src) =>
          niftiPairToVolume(
            'fuzz',
            which ? x : a,
            which ? b : x,
            which ? src : 'a.nii',
            which ? 'b.nii' : src,
            { labelMap: map },
          ),
        checkPair,
      );
    }
    run.report();
    expect(run.failures, run.describeFailures()).toEqual([]);
  },
  timeout(120_000),
);

test('NIfTI: a gzip trailer declaring 4 GiB and a header declaring 2^45 voxels allocate nothing', () => {
  const seed = synthetic()[1]!;
  const b = seed.slice();
  new DataView(b.buffer).setUint32(b.length - 4, 0xfffffff0, true);
  const raw = plain(seed).slice();
  const dv = new DataView(raw.buffer);
  [3, 32767, 32767, 32767].forEach((v, i) => dv.setInt16(40 + 2 * i, v, true));
  const before = process.memoryUsage();
  for (const [what, bytes] of [
    ['isize', b],
    ['dims', raw],
    ['dims-gz', gzipSync(raw)],
  ] as const) {
    expect(() => parseNifti(bytes, `${what}.nii`), what).toThrow(NiftiError);
    expect(() => parseNifti(bytes, `${what}.nii`), what).toThrow(`${what}.nii`);
    expect(() => readNiftiGeometry(bytes, `${what}.nii`)).not.toThrow(RangeError);
  }
  const after = process.memoryUsage();
  expect(after.arrayBuffers - before.arrayBuffers).toBeLessThan(64 * 2 ** 20);
  expect(after.rss - before.rss).toBeLessThan(256 * 2 ** 20);
});

test('NIfTI: an extension with a negative size no longer hangs the reader', () => {
  const raw = plain(synthetic()[0]!).slice();
  const dv = new DataView(raw.buffer);
  raw[348] = 1;
  dv.setInt32(352, -16, true);
  dv.setInt32(336, 16, true);
  const body = raw.subarray(352);
  const withExt = concatBytes(raw.subarray(0, 352), new Uint8Array(16), body);
  new DataView(withExt.buffer).setInt32(352, -16, true);
  new DataView(withExt.buffer).setFloat32(108, 368, true);
  const t0 = performance.now();
  const v = parseNifti(withExt, 'ext.nii');
  expect(performance.now() - t0).toBeLessThan(2000);
  checkVolume(v);
});
