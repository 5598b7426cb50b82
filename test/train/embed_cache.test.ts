/**
 * The frozen-encoder cache (src/train/embed_cache.ts): memory hits and LRU eviction by bytes, disk
 * hits across instances, stale entries (recorded key components differ) and corrupt entries
 * (bit flip, truncation, garbage) detected, deleted and recomputed, f16 storage (exact rounding,
 * error bound, recorded dtype), atomic entry writes; and with the GPU: the FrozenEncoder runs the
 * encoder only on misses, returns bit-identical embeddings from the cache, recomputes after a stale
 * or corrupt entry, and the f16 error on real embeddings of phantom slices (printed).
 */
import { readdirSync, readFileSync, statSync, writeFileSync, copyFileSync, mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';
import { applyAugmentation } from '../../src/data/augment.js';
import { phantomSlice } from '../../src/data/phantom.js';
import { parseSafetensors } from '../../src/io/safetensors.js';
import { SamLST } from '../../src/nn/sam_lst.js';
import { presetConfig, modelConfig } from '../../src/train/config.js';
import {
  decodeF16,
  EmbedCache,
  embedKey,
  encodeF16,
  encoderHash,
  f16BitsToF32,
  f16Error,
  f32ToF16Bits,
  FrozenEncoder,
  hashPixels,
  type EmbedKey,
} from '../../src/train/embed_cache.js';
import { closeTestGpus, rng, randn, testGpu } from '../helpers.js';
import { tempDir, tinyModel } from './util.js';

afterAll(closeTestGpus);

const key = (i: number, pre = 'train|S=64|aug=none'): EmbedKey => ({
  encoderHash: 'e'.repeat(64),
  inputHash: `input-${i}`,
  preprocess: pre,
});

function allFiles(dir: string): string[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((d) => d.isFile())
    .map((d) => join(d.parentPath, d.name));
}

describe('host cache', () => {
  test('memory hits, misses and byte-capped LRU eviction', () => {
    const c = new EmbedCache({ memBytes: 3 * 400 });
    const v = (i: number) => Float32Array.from({ length: 100 }, (_, k) => i * 1000 + k);
    expect(c.get(key(0))).toBeNull();
    for (let i = 0; i < 3; i++) c.put(key(i), v(i), [1, 10, 10]);
    expect(c.get(key(0))!.data).toEqual(v(0)); // key 0 becomes most recent
    c.put(key(3), v(3), [1, 10, 10]); // evicts key 1 (least recently used)
    expect(c.get(key(1))).toBeNull();
    expect(c.get(key(0))!.data).toEqual(v(0));
    expect(c.get(key(3))!.data).toEqual(v(3));
    const s = c.stats();
    expect(s).toMatchObject({
      hits: 3,
      memHits: 3,
      misses: 2,
      evictions: 1,
      memEntries: 3,
      memBytes: 1200,
      writes: 4,
    });
  });

  test('the key covers encoder, pixels and preprocessing', () => {
    const k = key(1);
    const variants = [
      { ...k, encoderHash: 'f'.repeat(64) },
      { ...k, inputHash: 'input-2' },
      { ...k, preprocess: 'train|S=64|aug=rotflip:k1:a0' },
      { ...k, preprocess: 'train|S=128|aug=none' },
    ];
    const keys = new Set([k, ...variants].map(embedKey));
    expect(keys.size).toBe(5);
    const c = new EmbedCache();
    c.put(k, new Float32Array(4).fill(1), [4]);
    for (const v of variants) expect(c.get(v)).toBeNull();
    expect(hashPixels({ h: 2, w: 2, image: Float32Array.of(0, 1, 2, 3) })).not.toBe(
      hashPixels({ h: 2, w: 2, image: Float32Array.of(0, 1, 2, 4) }),
    );
    expect(hashPixels({ h: 2, w: 2, image: Float32Array.of(0, 1, 2, 3) })).not.toBe(
      hashPixels({ h: 1, w: 4, image: Float32Array.of(0, 1, 2, 3) }),
    );
  });

  test('disk entries: found by a new instance, atomic (no temp files), checksummed', () => {
    const dir = tempDir('cache');
    const a = new EmbedCache({ dir });
    const data = randn(rng(1), 2 * 4 * 4);
    a.put(key(7), data, [2, 4, 4]);
    const files = allFiles(dir);
    expect(files.length).toBe(1);
    expect(files[0]).toBe(a.pathOf(key(7)));
    const st = parseSafetensors(readFileSync(files[0]!));
    expect(st.metadata).toMatchObject({ dtype: 'f32', preprocess: key(7).preprocess, input_hash: 'input-7' });
    const b = new EmbedCache({ dir });
    const hit = b.get(key(7))!;
    expect(hit.data).toEqual(data);
    expect(hit.dtype).toBe('f32');
    expect(b.stats()).toMatchObject({ hits: 1, diskHits: 1, misses: 0 });
    expect(b.get(key(7))).not.toBeNull(); // now from memory
    expect(b.stats().memHits).toBe(1);
  });

  test('a failed disk write loses only the disk copy; temporaries of dead writers are cleared on open', () => {
    const dir = tempDir('cache-writefail');
    const a = new EmbedCache({ dir });
    // A folder where the entry's file should go: the rename fails.
    mkdirSync(a.pathOf(key(3))!, { recursive: true });
    const data = randn(rng(3), 8);
    expect(() => a.put(key(3), data, [8])).not.toThrow();
    expect(a.stats()).toMatchObject({ writeFailures: 1, writes: 0 });
    expect(a.lastWriteError).toMatch(/cannot write/);
    expect(a.get(key(3))!.data).toEqual(data); // still served from memory
    // Temporaries in a shard folder: a dead writer's is removed, a living one's (ours) kept.
    a.put(key(4), data, [8]);
    const shard = dirname(a.pathOf(key(4))!);
    let deadPid = 4_194_000;
    for (; ; deadPid--) {
      try {
        process.kill(deadPid, 0);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'ESRCH') break;
      }
    }
    const dead = join(shard, `.x.safetensors.tmp-${deadPid}-0-00000000`);
    const live = join(shard, `.y.safetensors.tmp-${process.pid}-0-00000000`);
    writeFileSync(dead, 'torn');
    writeFileSync(live, 'being written');
    new EmbedCache({ dir });
    const left = allFiles(dir);
    expect(left).not.toContain(dead);
    expect(left).toContain(live);
  });

  test('corrupt entries (bit flip, truncation, garbage) are detected, deleted and missed', () => {
    const dir = tempDir('cache-corrupt');
    const w = new EmbedCache({ dir });
    const data = randn(rng(2), 64);
    const damage: ((b: Buffer) => Buffer)[] = [
      (b) => {
        b[b.length - 5]! ^= 0x10; // flip one payload bit
        return b;
      },
      (b) => b.subarray(0, b.length - 7), // truncated
      () => Buffer.from('not a safetensors file at all'),
    ];
    damage.forEach((d, i) => {
      w.put(key(100 + i), data, [64]);
      const p = w.pathOf(key(100 + i))!;
      writeFileSync(p, d(Buffer.from(readFileSync(p))));
    });
    const r = new EmbedCache({ dir });
    for (let i = 0; i < damage.length; i++) expect(r.get(key(100 + i))).toBeNull();
    expect(r.stats()).toMatchObject({ corrupt: 3, stale: 0, hits: 0, misses: 3 });
    expect(allFiles(dir)).toEqual([]); // deleted, to be rewritten
    r.put(key(100), data, [64]);
    expect(new EmbedCache({ dir }).get(key(100))!.data).toEqual(data);
  });

  test('stale entries (recorded key components differ from the request) are never used', () => {
    const dir = tempDir('cache-stale');
    const c = new EmbedCache({ dir });
    c.put(key(1), new Float32Array(16).fill(1), [16]);
    // An entry for key(1) sitting at key(2)'s path (a copied / renamed file): intact checksum, wrong key.
    const to = c.pathOf(key(2))!;
    mkdirSync(dirname(to), { recursive: true });
    copyFileSync(c.pathOf(key(1))!, to);
    const r = new EmbedCache({ dir });
    expect(r.get(key(2))).toBeNull();
    expect(r.stats()).toMatchObject({ stale: 1, corrupt: 0, misses: 1 });
    expect(() => statSync(to)).toThrow();
    expect(r.get(key(1))!.data).toEqual(new Float32Array(16).fill(1));
  });

  test('f16: round to nearest even, subnormals, overflow; error bound; dtype recorded', () => {
    const cases: [number, number][] = [
      [0, 0x0000],
      [-0, 0x8000],
      [1, 0x3c00],
      [-2, 0xc000],
      [65504, 0x7bff],
      [65520, 0x7c00], // rounds up to Inf
      [2 ** -24, 0x0001],
      [2 ** -25, 0x0000], // ties to even (0)
      [3 * 2 ** -25, 0x0002], // 1.5 ulp -> 2 (even)
      [1 + 2 ** -11, 0x3c00], // tie -> even
      [1 + 3 * 2 ** -11, 0x3c02], // tie -> even (up)
      [Infinity, 0x7c00],
    ];
    for (const [x, bits] of cases) expect(f32ToF16Bits(x), String(x)).toBe(bits);
    expect(Number.isNaN(f16BitsToF32(f32ToF16Bits(NaN)))).toBe(true);
    for (let b = 0; b < 0x7c00; b += 7) expect(f32ToF16Bits(f16BitsToF32(b))).toBe(b); // exact round trip
    const x = randn(rng(3), 10000, 3);
    const e = f16Error(x);
    expect(e.maxRel).toBeLessThan(2 ** -11 + 1e-9);
    expect(e.rmsRel).toBeLessThan(4e-4);
    expect(encodeF16(Float32Array.of(1, 1e6))).toBeNull(); // would overflow: stored as f32 instead

    const dir = tempDir('cache-f16');
    const c = new EmbedCache({ dir, dtype: 'f16' });
    const put = c.put(key(5), x.subarray(0, 256), [256]);
    expect(put.dtype).toBe('f16');
    expect(put.data).toEqual(decodeF16(encodeF16(x.subarray(0, 256))!));
    const got = new EmbedCache({ dir, dtype: 'f16' }).get(key(5))!;
    expect(got.dtype).toBe('f16');
    expect(got.data).toEqual(put.data); // what training used on the miss = what the cache returns
    expect(statSync(c.pathOf(key(5))!).size).toBeLessThan(256 * 4);
    const big = c.put(key(6), Float32Array.of(1, 1e6), [2]);
    expect(big.dtype).toBe('f32');
    expect(parseSafetensors(readFileSync(c.pathOf(key(6))!)).metadata.dtype).toBe('f32');
  });
});

describe('FrozenEncoder on the GPU', () => {
  test('encoder runs only on misses; hits are bit-identical; stale/corrupt entries recomputed', async () => {
    const gpu = await testGpu();
    const cfg = tinyModel();
    const model = new SamLST(gpu, cfg, { seed: 5 });
    try {
      const dir = tempDir('cache-enc');
      const cache = new EmbedCache({ dir });
      const eh = await encoderHash(model);
      const enc = new FrozenEncoder(model, cache, eh);
      const S = cfg.imgSize;
      const slices = [0.3, 0.5, 0.7].map((t) => phantomSlice(9, t, 80));
      const items = slices.map((s) => {
        const a = applyAugmentation(s.image, s.label, s.h, s.w, { kind: 'none' }, S);
        return { image: a.image, inputHash: hashPixels(s), preprocess: `train|80x80>${S}|aug=none` };
      });
      const first = await enc.embedHost(items);
      expect(enc.encoded).toBe(3);
      const again = await enc.embedHost([items[2]!, items[0]!]);
      expect(enc.encoded).toBe(3);
      expect(enc.hits).toBe(2);
      expect(again[0]).toEqual(first[2]);
      expect(again[1]).toEqual(first[0]);
      // A batch of one gives the same embedding as inside a batch of three.
      const solo = new FrozenEncoder(model, new EmbedCache(), eh);
      expect((await solo.embedHost([items[1]!]))[0]).toEqual(first[1]);

      // Stale: the entry of item 0 copied over item 1's path; corrupt: item 2's payload flipped.
      copyFileSync(
        cache.pathOf({ encoderHash: eh, ...items[0]! })!,
        cache.pathOf({ encoderHash: eh, ...items[1]! })!,
      );
      const p2 = cache.pathOf({ encoderHash: eh, ...items[2]! })!;
      const b = Buffer.from(readFileSync(p2));
      b[b.length - 1]! ^= 1;
      writeFileSync(p2, b);
      const fresh = new FrozenEncoder(model, new EmbedCache({ dir }), eh);
      const r = await fresh.embedHost(items);
      expect(fresh.cache.stats()).toMatchObject({ diskHits: 1, stale: 1, corrupt: 1 });
      expect(fresh.encoded).toBe(2);
      expect(r).toEqual(first);
      // Other encoder weights -> other keys -> all misses.
      const other = new SamLST(gpu, cfg, { seed: 6 });
      try {
        const oh = await encoderHash(other);
        expect(oh).not.toBe(eh);
        const e2 = new FrozenEncoder(other, new EmbedCache({ dir }), oh);
        await e2.embedHost(items);
        expect(e2.encoded).toBe(3);
      } finally {
        other.dispose();
      }
    } finally {
      model.dispose();
    }
  });

  test('f16 error on real embeddings (default-preset encoder, phantom slices)', async () => {
    const gpu = await testGpu();
    const cfg = modelConfig(presetConfig('default'));
    const model = new SamLST(gpu, cfg, { seed: 1234 });
    try {
      const enc = new FrozenEncoder(model, new EmbedCache({ memBytes: 0 }), await encoderHash(model));
      const S = cfg.imgSize;
      const items = [0.2, 0.47, 0.8].map((t, i) => {
        const s = phantomSlice(100 + i, t, 224);
        const a = applyAugmentation(s.image, s.label, 224, 224, { kind: 'none' }, S);
        return { image: a.image, inputHash: hashPixels(s), preprocess: 'f16-measure' };
      });
      const embs = await enc.embedHost(items);
      let maxRel = 0;
      let rms = 0;
      let maxAbs = 0;
      let absMax = 0;
      for (const e of embs) {
        const r = f16Error(e);
        maxRel = Math.max(maxRel, r.maxRel);
        rms = Math.max(rms, r.rmsRel);
        maxAbs = Math.max(maxAbs, r.maxAbs);
        for (const v of e) absMax = Math.max(absMax, Math.abs(v));
      }
      console.log(
        `f16 vs f32 on ${embs.length} embeddings (${embs[0]!.length} values each, max |x| ${absMax.toFixed(2)}): ` +
          `max abs err ${maxAbs.toExponential(2)}, max rel (to max |x|) ${maxRel.toExponential(2)}, RMS rel ${rms.toExponential(2)}`,
      );
      expect(maxRel).toBeLessThan(2 ** -11 + 1e-9);
      expect(rms).toBeLessThan(5e-4);
    } finally {
      model.dispose();
    }
  });
});
