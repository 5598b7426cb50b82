/**
 * Fuzzing readH5Datasets / checkH5File (src/data/h5.ts over h5wasm, HDF5 compiled to WebAssembly).
 *
 * Seeds, written here with h5wasm: superblock v2 (writeH5's default, checksummed metadata), v0
 * (libver earliest: no checksums, so edits reach the object headers, as in h5py's files) and a
 * chunked file with a gzip-compressed dataset.
 * Mutations: generic bytes over the whole (small) file; interesting integers at random offsets;
 * dataspace dims/maxdims set to huge or zero values; the superblock's end-of-file address; a
 * chunked dataset resized to gigabytes with no chunk written (HDF5 reads absent chunks as fill
 * values, so such a 10 kB file is valid and made h5wasm grow its heap to 2 GiB).
 * Each input ends in datasets whose data matches their shape or in an H5Error naming the file,
 * within 2 s; every 20 inputs a valid file must still read back exactly (a failure inside HDF5
 * left the library with open objects and half-updated state: a file that failed once kept failing
 * at the same path even after it was fixed, the heap grew, and after ~2,000 corrupt files the
 * library aborted and every later HDF5 call failed - the reader now replaces its instance after
 * any failure). Half the inputs reuse one path, which is what exposed the stale state.
 */
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { h5, H5Error, readH5Datasets, writeH5, type H5Array } from '../../src/data/h5.js';
import {
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

const SEEDS = { bytes: 0x4d5f01, ints: 0x4d5f02, dims: 0x4d5f03 };
const dir = mkdtempSync(join(tmpdir(), 'fuzz-h5-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const image = Float32Array.from({ length: 2 * 3 * 4 }, (_, i) => i * 0.5 - 3);
const label = Uint8Array.from({ length: 24 }, (_, i) => i % 9);
let seeds: { name: string; bytes: Uint8Array }[] = [];
let goodPath = '';

beforeAll(async () => {
  goodPath = join(dir, 'v2.h5');
  await writeH5(goodPath, {
    image: { data: image, shape: [2, 3, 4] },
    label: { data: label, shape: [2, 3, 4] },
  });
  const mod = await h5();
  const v0 = join(dir, 'v0.h5');
  let f = new mod.File(v0, 'w', { libver: ['earliest', 'latest'] });
  f.create_dataset({ name: 'image', data: image, shape: [2, 3, 4] });
  f.create_dataset({ name: 'label', data: label, shape: [2, 3, 4] });
  f.close();
  const ch = join(dir, 'chunked.h5');
  f = new mod.File(ch, 'w', { libver: ['earliest', 'latest'] });
  f.create_dataset({ name: 'image', data: image, shape: [2, 3, 4], chunks: [1, 3, 4], compression: 'gzip' });
  f.create_dataset({
    name: 'label',
    data: label,
    shape: [2, 3, 4],
    chunks: [2, 3, 4],
    maxshape: [null, 3, 4],
  });
  f.close();
  seeds = [goodPath, v0, ch].map((p) => ({ name: p, bytes: new Uint8Array(readFileSync(p)) }));
}, timeout(120_000));

/** Offsets of the (2, 3, 4) u64 dims and maxdims in a seed (dataspace messages). */
function dimOffsets(b: Uint8Array): number[] {
  const out: number[] = [];
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  for (let p = 0; p + 24 <= b.length; p++)
    if (
      dv.getBigUint64(p, true) === 2n &&
      dv.getBigUint64(p + 8, true) === 3n &&
      dv.getBigUint64(p + 16, true) === 4n
    )
      out.push(p);
  return out;
}

function mutateDims(src: Uint8Array, rng: Rng): Mutant {
  const b = src.slice();
  const offs = dimOffsets(src);
  if (offs.length === 0 || rng.next() < 0.2) {
    // superblock v0/v1: end-of-file address at 40 (v2/v3: 28)
    writeInt(
      b,
      src[8] === 0 ? 40 : 28,
      8,
      pick(rng, [...INTERESTING, BigInt(src.length - 1), BigInt(src.length * 2)]),
    );
    return { op: 'superblock eof address', bytes: b };
  }
  const at = pick(rng, offs) + 8 * rng.int(0, 3);
  const v = pick(rng, [0n, 1n, 5n, 1n << 20n, 1n << 31n, 1n << 40n, 1n << 62n, (1n << 64n) - 1n]);
  writeInt(b, at, 8, v);
  if (rng.next() < 0.5 && offs.includes(at - (at % 8)) === false) writeInt(b, at + 24, 8, v);
  return { op: `dims@${at}=${v}`, bytes: b };
}

function checkDatasets(m: Map<string, H5Array>): void {
  for (const [k, a] of m) {
    if (!a.shape.every((d) => Number.isSafeInteger(d) && d >= 0))
      throw new Error(`'${k}': shape (${a.shape})`);
    const n = a.shape.reduce((x, y) => x * y, 1);
    if (a.data.length !== n) throw new Error(`'${k}': ${a.data.length} values for (${a.shape})`);
  }
}

async function expectHealthy(): Promise<void> {
  const m = await readH5Datasets(goodPath, ['image', 'label']);
  expect(Array.from(m.get('image')!.data)).toEqual(Array.from(image));
  expect(Array.from(m.get('label')!.data)).toEqual(Array.from(label));
}

let fileNo = 0;
const samePath = () => join(dir, 'same.h5');

test(
  'HDF5: mutated files end in datasets or an H5Error naming the file, and the library stays healthy',
  async () => {
    for (const s of seeds) checkDatasets(await readH5Datasets(s.name, ['image', 'label']));
    const run = new FuzzRun('h5', { errors: [H5Error] });
    const go = async (m: Mutant, i: number) => {
      await run.one(
        m.op,
        m.bytes,
        async (b, src) => {
          // the source name must appear in the message: it is the path
          const p = i % 2 ? samePath() : join(dir, `${fileNo++}-${src}`);
          writeFileSync(p, b);
          try {
            return await readH5Datasets(p, ['image', 'label']);
          } catch (e) {
            if (e instanceof H5Error && i % 2 && e.message.includes(p))
              throw new H5Error(`${src}: ${e.message}`);
            throw e;
          }
        },
        checkDatasets,
      );
      if (i % 20 === 19) await expectHealthy();
    };
    let rng = rngFor(SEEDS.bytes);
    let i = 0;
    for (let k = 0; k < iters(120); k++, i++) {
      const s = seeds[k % seeds.length]!.bytes;
      await go(mutateMany(s, rng, [0, s.length]), i);
    }
    rng = rngFor(SEEDS.ints);
    for (let k = 0; k < iters(100); k++, i++) {
      const s = seeds[k % seeds.length]!.bytes;
      const b = s.slice();
      const n = rng.int(1, 4);
      for (let j = 0; j < n; j++)
        writeInt(b, rng.int(0, b.length - 8), pick(rng, [1, 2, 4, 8]), pick(rng, INTERESTING));
      await go({ op: `ints x${n}`, bytes: b }, i);
    }
    rng = rngFor(SEEDS.dims);
    for (let k = 0; k < iters(80); k++, i++) await go(mutateDims(seeds[1 + (k % 2)]!.bytes, rng), i);
    await expectHealthy();
    run.report();
    expect(run.failures, run.describeFailures()).toEqual([]);
    expect(run.stats().ok).toBeGreaterThan(0);
  },
  timeout(180_000),
);

test('HDF5: a file that failed once reads correctly after it is fixed at the same path', async () => {
  const p = join(dir, 'fixed-later.h5');
  const good = seeds[1]!.bytes;
  for (let round = 0; round < 3; round++) {
    const bad = good.slice();
    for (let j = 0; j < 6; j++) writeInt(bad, 96 + 37 * j + round, 4, 0xffffffffn);
    writeFileSync(p, bad);
    await readH5Datasets(p, ['image', 'label']).then(
      () => undefined,
      (e: unknown) => expect(e).toBeInstanceOf(H5Error),
    );
    writeFileSync(p, good);
    const m = await readH5Datasets(p, ['image', 'label']);
    expect(Array.from(m.get('image')!.data), `round ${round}`).toEqual(Array.from(image));
  }
});

test('HDF5: a 10 kB file declaring a 768 MiB dataset is refused before anything is allocated', async () => {
  const mod = await h5();
  const p = join(dir, 'huge-chunked.h5');
  const f = new mod.File(p, 'w', { libver: ['earliest', 'latest'] });
  const d = f.create_dataset({
    name: 'image',
    data: new Float32Array(24),
    shape: [2, 3, 4],
    maxshape: [null, 3, 4],
    chunks: [1, 3, 4],
  });
  d.resize([2 ** 24, 3, 4]);
  f.create_dataset({ name: 'label', data: label, shape: [2, 3, 4] });
  f.close();
  expect(statSync(p).size).toBeLessThan(64 * 1024);
  const before = process.memoryUsage();
  const t0 = performance.now();
  await expect(readH5Datasets(p, ['image', 'label'])).rejects.toThrow(H5Error);
  await expect(readH5Datasets(p, ['image', 'label'])).rejects.toThrow(
    new RegExp(`${p}: dataset 'image' declares 805306368 bytes`),
  );
  expect(performance.now() - t0).toBeLessThan(2000);
  const after = process.memoryUsage();
  expect(after.rss - before.rss).toBeLessThan(128 * 2 ** 20);
  // metadata-only reads still work (the shape is what the file says)
  const meta = await readH5Datasets(p, ['image'], false);
  expect(meta.get('image')!.shape).toEqual([2 ** 24, 3, 4]);
  await expectHealthy();
});
