/**
 * Fuzzing the embedding cache's disk entries (src/train/embed_cache.ts EmbedCache.get).
 *
 * Seeds: entries written by EmbedCache.put itself (f32 and f16 caches, random embeddings of shape
 * (4, 3, 3)). Each entry file is then damaged in place: generic byte mutations aimed at the header,
 * truncation, bit flips in the data, and header edits that keep the data checksum valid (shape
 * reshaped to the same element count, dtype switched, metadata fields changed or dropped, the file
 * replaced by a directory or by an empty file). A damaged entry must never be used: `get` returns
 * null (counted as corrupt or stale, the file deleted) or the exact embedding that was stored, never
 * throws, within 2 s; afterwards `put` + `get` serve the recomputed value again.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, existsSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, test } from 'vitest';
import { EmbedCache, type CacheDType, type EmbedKey } from '../../src/train/embed_cache.js';
import {
  FuzzRun,
  iters,
  mutateMany,
  pick,
  rngFor,
  stFile,
  type Mutant,
  type Rng,
  timeout,
} from './mutate.js';

const SEEDS = { f32: 0xe3bc01, f16: 0xe3bc02 };
const root = mkdtempSync(join(tmpdir(), 'fuzz-embed-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
const SHAPE = [4, 3, 3];

function headerEnd(b: Uint8Array): number {
  return 8 + Number(new DataView(b.buffer, b.byteOffset).getBigUint64(0, true));
}

function mutateEntry(src: Uint8Array, rng: Rng): Mutant | 'dir' {
  const k = rng.int(0, 10);
  const n = headerEnd(src);
  if (k < 4) return mutateMany(src, rng, [0, n]);
  if (k === 4) {
    const b = src.slice();
    b[rng.int(n, b.length)]! ^= 1 << rng.int(0, 8);
    return { op: 'data bitflip', bytes: b };
  }
  if (k === 5) return { op: 'truncate', bytes: src.slice(0, rng.int(0, src.length)) };
  if (k === 6) return rng.next() < 0.5 ? 'dir' : { op: 'empty file', bytes: new Uint8Array(0) };
  // header edits that keep the checksummed bytes as they are
  const h = JSON.parse(new TextDecoder().decode(src.subarray(8, n))) as Record<
    string,
    Record<string, unknown>
  >;
  const e = h.embedding!;
  const md = h.__metadata__!;
  const edit = pick(rng, [
    'shape 36',
    'shape 6x6',
    'shape 2x2x9',
    'dtype',
    'encoder_hash',
    'preprocess',
    'format',
    'no sha256',
    'dtype md',
  ]);
  if (edit === 'shape 36') e.shape = [36];
  if (edit === 'shape 6x6') e.shape = [6, 6];
  if (edit === 'shape 2x2x9') e.shape = [2, 2, 9];
  if (edit === 'dtype') {
    const f16 = e.dtype === 'F16';
    e.dtype = f16 ? 'F32' : 'F16';
    e.shape = f16 ? [2, 3, 3] : [8, 3, 3];
  }
  if (edit === 'encoder_hash') md.encoder_hash = 'x';
  if (edit === 'preprocess') md.preprocess = `${String(md.preprocess)} `;
  if (edit === 'format') md.format = 'sam-lst-webgpu/embedding-v0';
  if (edit === 'no sha256') delete md.sha256;
  if (edit === 'dtype md') md.dtype = md.dtype === 'f16' ? 'f32' : 'f16';
  return { op: `header ${edit}`, bytes: stFile(h, src.subarray(n)) };
}

async function fuzzCache(dtype: CacheDType, seed: number): Promise<FuzzRun> {
  const dir = join(root, dtype);
  const cache = new EmbedCache({ dir, dtype, memBytes: 0 });
  const rng = rngFor(seed);
  const run = new FuzzRun(`embed-cache-${dtype}`, { errors: [] });
  let served = 0;
  for (let i = 0; i < iters(150); i++) {
    const key: EmbedKey = {
      encoderHash: `enc${dtype}`,
      inputHash: `in${i}`,
      preprocess: `train|S=12|aug=${i % 3}`,
    };
    const value = Float32Array.from({ length: 36 }, () => rng.uniform(-3, 3));
    const stored = cache.put(key, value, SHAPE).data;
    const path = cache.pathOf(key)!;
    const m = mutateEntry(new Uint8Array(readFileSync(path)), rng);
    if (m === 'dir') {
      rmSync(path);
      mkdirSync(path);
    } else writeFileSync(path, m.bytes);
    const before = cache.stats();
    await run.one(
      m === 'dir' ? 'entry replaced by a directory' : m.op,
      m === 'dir' ? new Uint8Array(0) : m.bytes,
      () => cache.get(key, SHAPE),
      (got) => {
        const after = cache.stats();
        const rejected = after.corrupt + after.stale - before.corrupt - before.stale;
        if (got === null) {
          if (rejected !== 1) throw new Error(`a miss that was not counted as corrupt/stale (${rejected})`);
          if (m !== 'dir' && existsSync(path)) throw new Error('a rejected entry was not deleted');
          return;
        }
        if (rejected !== 0) throw new Error('a hit counted as rejected');
        served++;
        if (got.shape.join() !== SHAPE.join()) throw new Error(`served shape [${got.shape}]`);
        if (got.data.length !== 36 || got.data.some((v, j) => !Object.is(v, stored[j]!)))
          throw new Error('served data that differs from what was stored');
      },
    );
    // the caller recomputes and stores again; the cache serves it
    if (m === 'dir') rmSync(path, { recursive: true, force: true });
    cache.clearMemory();
    cache.put(key, value, SHAPE);
    cache.clearMemory();
    const again = cache.get(key, SHAPE);
    expect(again?.data, `${i}: the recomputed entry is served`).toEqual(stored);
  }
  const st = cache.stats();
  console.log(
    `[fuzz] embed-cache-${dtype}: damaged entries ${iters(150)}: rejected as corrupt ${st.corrupt}, ` +
      `as stale ${st.stale}, served intact ${served} (damage that left the entry's meaning unchanged)`,
  );
  return run;
}

test(
  'embedding cache: damaged disk entries are never used and never throw',
  async () => {
    for (const [dtype, seed] of [
      ['f32', SEEDS.f32],
      ['f16', SEEDS.f16],
    ] as const) {
      const run = await fuzzCache(dtype, seed);
      run.report();
      expect(run.failures, run.describeFailures()).toEqual([]);
      expect(run.stats().ok).toBe(iters(150));
    }
  },
  timeout(120_000),
);
