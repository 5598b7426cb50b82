/**
 * Cache of the frozen SAM image encoder's output (spec §9: the encoder never trains, so its
 * embedding of a given network input never changes). An embedding is computed once per distinct
 * input and afterwards read from
 *   1. memory: an LRU map with a byte cap (entries kept in their stored dtype), then
 *   2. disk (optional `dir`): one safetensors file per entry, `<dir>/<key[0:2]>/<key>.safetensors`.
 *
 * Key = sha256 over (format version, encoder hash, input hash, preprocessing string):
 *  - encoder hash: `encoderHash(model)`, sha256 over the names, shapes and bytes of every
 *    `sam.image_encoder.*` tensor plus the preprocessing constants (pixel mean/std, input size);
 *  - input hash: `hashPixels(slice)`, sha256 over the slice's size and its raw float32 pixels
 *    (before augmentation and resizing);
 *  - preprocessing: a string naming what turns those pixels into the network input, e.g.
 *    `train|S=128|aug=rotflip:k1:a0` or `eval|224>128` (size, augmentation key, zoom orders).
 * Changing any of them changes the key, so an entry made with other weights or another
 * augmentation is never found, let alone used.
 *
 * Each disk entry records its dtype ('f32', or 'f16' when the cache stores half precision and every
 * value is finite in f16), shape, the key's three components and a sha256 of the tensor bytes. A
 * read recomputes the checksum and compares the recorded components with the request: a truncated,
 * bit-flipped or unparsable file counts as `corrupt`, a file whose recorded components differ from
 * the request (a renamed/copied file, an older format) as `stale`; both are deleted and reported as
 * a miss, so the caller recomputes the embedding and `put`s it again. Writes are atomic (temporary
 * file + rename, src/io/atomic.ts); they skip fsync by default because a torn entry after a power
 * loss fails its checksum and is recomputed.
 *
 * With dtype 'f16', `put` returns the embedding rounded to f16 (and decoded back to f32), and the
 * caller should train on that returned value even on a miss: a run then sees bit-identical
 * embeddings whether they came from the encoder or from the cache, which keeps `--resume` exact.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import type { Slice } from '../data/types.js';
import { decodeEntry, parseSafetensors, writeSafetensors, type StWriteEntry } from '../io/safetensors.js';
import { removeStaleTemps, writeFileAtomic } from '../io/atomic.js';
import type { SamLST } from '../nn/sam_lst.js';
import { noGrad } from '../autograd/tape.js';
import { tidy } from '../tensor/scope.js';
import { Tensor } from '../tensor/tensor.js';

export const EMBED_CACHE_FORMAT = 'sam-lst-webgpu/embedding-v1';

export type CacheDType = 'f32' | 'f16';

export interface EmbedKey {
  encoderHash: string;
  inputHash: string;
  preprocess: string;
}

export interface EmbedCacheOptions {
  /** Folder of the disk cache (created when missing); null/undefined: memory only. */
  dir?: string | null;
  /** Byte cap of the memory LRU (default 256 MiB; 0 disables the memory level). */
  memBytes?: number;
  /** Storage dtype (default 'f32'). */
  dtype?: CacheDType;
  /** fsync disk entries (default false; see the file comment). */
  durable?: boolean;
}

export interface EmbedCacheStats {
  hits: number;
  memHits: number;
  diskHits: number;
  misses: number;
  /** Disk entries rejected because their recorded key components differ from the request. */
  stale: number;
  /** Disk entries rejected because they failed to parse or their checksum did not match. */
  corrupt: number;
  writes: number;
  /** Disk writes that failed (full disk, permissions, a folder in the way): the entry stays in memory only. */
  writeFailures: number;
  evictions: number;
  /** Bytes held by the memory LRU. */
  memBytes: number;
  memEntries: number;
}

interface MemEntry {
  dtype: CacheDType;
  shape: number[];
  data: Float32Array | Uint16Array;
  bytes: number;
}

export interface CachedEmbedding {
  /** The embedding as the cache returns it (f16 entries decoded to f32). */
  data: Float32Array;
  shape: number[];
  /** dtype the entry is stored in. */
  dtype: CacheDType;
}

// ------------------------------------------------------------------------------------ hashing

export function sha256Hex(...parts: (Uint8Array | string)[]): string {
  const h = createHash('sha256');
  for (const p of parts) h.update(p);
  return h.digest('hex');
}

function bytesOf(a: Float32Array | Int32Array | Uint16Array): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

/** sha256 over a slice's size and raw float32 pixels (the network input before preprocessing). */
export function hashPixels(s: Pick<Slice, 'h' | 'w' | 'image'>): string {
  return sha256Hex(`${s.h}x${s.w}|`, bytesOf(s.image));
}

/**
 * sha256 over every `sam.image_encoder.*` tensor (name, shape, bytes, in state_dict order) and the
 * encoder's preprocessing constants. Reads the weights back from the GPU.
 */
export async function encoderHash(model: SamLST): Promise<string> {
  const h = createHash('sha256');
  const c = model.cfg;
  h.update(
    JSON.stringify({
      imgSize: c.imgSize,
      patchSize: c.patchSize,
      pixelMean: c.pixelMean,
      pixelStd: c.pixelStd,
      encLnEps: c.encLnEps,
      windowSize: c.windowSize,
      globalAttnIndexes: c.globalAttnIndexes,
      encHeads: c.encHeads,
    }),
  );
  for (const [name, t] of model.stateDict()) {
    if (!name.startsWith('sam.image_encoder.')) continue;
    h.update(`|${name}|${t.shape.join(',')}|`);
    h.update(bytesOf(await t.read()));
  }
  return h.digest('hex');
}

/** The cache key of an embedding (hex sha256). */
export function embedKey(k: EmbedKey): string {
  return sha256Hex(`${EMBED_CACHE_FORMAT}|${k.encoderHash}|${k.inputHash}|${k.preprocess}`);
}

// ------------------------------------------------------------------------------------ f16

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** IEEE binary16 bits of `x`, rounded to nearest even (overflow → ±Inf, NaN kept). */
export function f32ToF16Bits(x: number): number {
  f32[0] = x;
  const b = u32[0]!;
  const sign = (b >>> 16) & 0x8000;
  const exp = (b >>> 23) & 0xff;
  let mant = b & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  let e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    const half = 1 << (shift - 1);
    const rest = mant & ((1 << shift) - 1);
    let m = mant >>> shift;
    if (rest > half || (rest === half && (m & 1) === 1)) m++;
    return sign | m;
  }
  const rest = mant & 0x1fff;
  let m = mant >>> 13;
  if (rest > 0x1000 || (rest === 0x1000 && (m & 1) === 1)) {
    m++;
    if (m === 0x400) {
      m = 0;
      e++;
      if (e >= 0x1f) return sign | 0x7c00;
    }
  }
  return sign | (e << 10) | m;
}

export function f16BitsToF32(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

/** f16 encoding of `x`, or null when a finite value would not stay finite in f16. */
export function encodeF16(x: Float32Array): Uint16Array | null {
  const out = new Uint16Array(x.length);
  for (let i = 0; i < x.length; i++) {
    const v = x[i]!;
    const b = f32ToF16Bits(v);
    if ((b & 0x7c00) === 0x7c00 && Number.isFinite(v)) return null;
    out[i] = b;
  }
  return out;
}

export function decodeF16(h: Uint16Array): Float32Array {
  const out = new Float32Array(h.length);
  for (let i = 0; i < h.length; i++) out[i] = f16BitsToF32(h[i]!);
  return out;
}

/** Max abs and relative (to max |x|) error of storing `x` in f16; RMS relative to RMS(x). */
export function f16Error(x: Float32Array): { maxAbs: number; maxRel: number; rmsRel: number } {
  const enc = encodeF16(x);
  if (!enc) return { maxAbs: Infinity, maxRel: Infinity, rmsRel: Infinity };
  const y = decodeF16(enc);
  let maxAbs = 0;
  let xMax = 0;
  let se = 0;
  let sx = 0;
  for (let i = 0; i < x.length; i++) {
    const d = Math.abs(x[i]! - y[i]!);
    maxAbs = Math.max(maxAbs, d);
    xMax = Math.max(xMax, Math.abs(x[i]!));
    se += d * d;
    sx += x[i]! * x[i]!;
  }
  return { maxAbs, maxRel: xMax > 0 ? maxAbs / xMax : 0, rmsRel: sx > 0 ? Math.sqrt(se / sx) : 0 };
}

// ------------------------------------------------------------------------------------ cache

export class EmbedCache {
  readonly dir: string | null;
  readonly memCap: number;
  readonly dtype: CacheDType;
  private readonly durable: boolean;
  private readonly mem = new Map<string, MemEntry>();
  private memUsed = 0;
  private readonly counters = {
    hits: 0,
    memHits: 0,
    diskHits: 0,
    misses: 0,
    stale: 0,
    corrupt: 0,
    writes: 0,
    writeFailures: 0,
    evictions: 0,
  };
  /** Message of the last failed disk write (see writeFailures). */
  lastWriteError: string | null = null;

  constructor(opts: EmbedCacheOptions = {}) {
    this.dir = opts.dir ?? null;
    this.memCap = opts.memBytes ?? 256 * 1024 * 1024;
    this.dtype = opts.dtype ?? 'f32';
    this.durable = opts.durable ?? false;
    if (!(this.memCap >= 0)) throw new RangeError(`EmbedCache: memBytes ${this.memCap} must be >= 0`);
    if (this.dtype !== 'f32' && this.dtype !== 'f16')
      throw new RangeError(`EmbedCache: dtype '${String(this.dtype)}' (use f32 or f16)`);
    if (this.dir) {
      mkdirSync(this.dir, { recursive: true });
      // Temporaries of writers killed mid-write (never read: entries are found by their final name).
      for (const shard of readdirSync(this.dir)) {
        if (/^[0-9a-f]{2}$/.test(shard))
          removeStaleTemps(join(this.dir, shard), undefined, { deadWritersOnly: true });
      }
    }
  }

  stats(): EmbedCacheStats {
    return { ...this.counters, memBytes: this.memUsed, memEntries: this.mem.size };
  }

  /** Path of the disk entry of `key` (null without a disk cache). */
  pathOf(key: EmbedKey): string | null {
    if (!this.dir) return null;
    const k = embedKey(key);
    return join(this.dir, k.slice(0, 2), `${k}.safetensors`);
  }

  /**
   * The embedding for `key`, or null (a miss; corrupt/stale disk entries are deleted). With
   * `expectShape`, a disk entry of another shape counts as corrupt (its checksum covers the bytes,
   * not the header, so a damaged shape field would otherwise pass).
   */
  get(key: EmbedKey, expectShape?: readonly number[]): CachedEmbedding | null {
    const k = embedKey(key);
    const m = this.mem.get(k);
    if (m) {
      this.mem.delete(k);
      this.mem.set(k, m);
      this.counters.hits++;
      this.counters.memHits++;
      return {
        data: m.dtype === 'f16' ? decodeF16(m.data as Uint16Array) : (m.data as Float32Array),
        shape: m.shape,
        dtype: m.dtype,
      };
    }
    const path = this.pathOf(key);
    if (path && existsSync(path)) {
      const r = this.readEntry(path, key, expectShape);
      if (r) {
        this.counters.hits++;
        this.counters.diskHits++;
        this.remember(k, r.mem);
        return { data: r.data, shape: r.mem.shape, dtype: r.mem.dtype };
      }
    }
    this.counters.misses++;
    return null;
  }

  /**
   * Stores an embedding (f32 values, `shape`) and returns it as the cache will return it later
   * (rounded to f16 when the cache stores f16).
   */
  put(key: EmbedKey, data: Float32Array, shape: readonly number[]): CachedEmbedding {
    let n = 1;
    for (const d of shape) n *= d;
    if (n !== data.length)
      throw new RangeError(`EmbedCache.put: ${data.length} values for shape [${shape.join(', ')}]`);
    const k = embedKey(key);
    let dtype: CacheDType = 'f32';
    let stored: Float32Array | Uint16Array = Float32Array.from(data);
    let value = stored as Float32Array;
    if (this.dtype === 'f16') {
      const enc = encodeF16(data);
      if (enc) {
        dtype = 'f16';
        stored = enc;
        value = decodeF16(enc);
      }
    }
    const entry: MemEntry = { dtype, shape: [...shape], data: stored, bytes: stored.byteLength };
    this.remember(k, entry);
    const path = this.pathOf(key);
    if (path) {
      const checksum = sha256Hex(bytesOf(stored));
      const st = new Map<string, StWriteEntry>([
        ['embedding', { dtype: dtype === 'f16' ? 'F16' : 'F32', shape: [...shape], data: stored }],
      ]);
      // A failed disk write loses only the cache entry, never the run: count it and go on.
      try {
        writeFileAtomic(
          path,
          writeSafetensors(st, {
            format: EMBED_CACHE_FORMAT,
            encoder_hash: key.encoderHash,
            input_hash: key.inputHash,
            preprocess: key.preprocess,
            dtype,
            sha256: checksum,
          }),
          { durable: this.durable },
        );
        this.counters.writes++;
      } catch (e) {
        this.counters.writeFailures++;
        this.lastWriteError = (e as Error).message;
      }
    } else {
      this.counters.writes++;
    }
    return { data: value, shape: [...shape], dtype };
  }

  /** Drops the memory level (the disk level stays). */
  clearMemory(): void {
    this.mem.clear();
    this.memUsed = 0;
  }

  private remember(k: string, e: MemEntry): void {
    if (e.bytes > this.memCap) return;
    const old = this.mem.get(k);
    if (old) {
      this.memUsed -= old.bytes;
      this.mem.delete(k);
    }
    this.mem.set(k, e);
    this.memUsed += e.bytes;
    while (this.memUsed > this.memCap) {
      const [oldest, v] = this.mem.entries().next().value as [string, MemEntry];
      this.mem.delete(oldest);
      this.memUsed -= v.bytes;
      this.counters.evictions++;
    }
  }

  private readEntry(
    path: string,
    key: EmbedKey,
    expectShape?: readonly number[],
  ): { data: Float32Array; mem: MemEntry } | null {
    const reject = (kind: 'stale' | 'corrupt'): null => {
      this.counters[kind]++;
      try {
        unlinkSync(path);
      } catch {
        // already gone
      }
      return null;
    };
    let bytes: Uint8Array;
    try {
      bytes = readFileSync(path);
    } catch {
      return reject('corrupt');
    }
    let st;
    try {
      st = parseSafetensors(bytes, path);
    } catch {
      return reject('corrupt');
    }
    const md = st.metadata;
    const e = st.tensors.get('embedding');
    if (!e || (e.dtype !== 'F32' && e.dtype !== 'F16') || typeof md.sha256 !== 'string')
      return reject('corrupt');
    if (sha256Hex(e.bytes) !== md.sha256) return reject('corrupt');
    if (expectShape && e.shape.join(',') !== expectShape.join(',')) return reject('corrupt');
    if (
      md.format !== EMBED_CACHE_FORMAT ||
      md.encoder_hash !== key.encoderHash ||
      md.input_hash !== key.inputHash ||
      md.preprocess !== key.preprocess ||
      md.dtype !== (e.dtype === 'F16' ? 'f16' : 'f32')
    )
      return reject('stale');
    const dtype: CacheDType = e.dtype === 'F16' ? 'f16' : 'f32';
    const data = decodeEntry(e, path) as Float32Array;
    const stored =
      dtype === 'f16'
        ? new Uint16Array(e.bytes.buffer.slice(e.bytes.byteOffset, e.bytes.byteOffset + e.bytes.byteLength))
        : data;
    return { data, mem: { dtype, shape: [...e.shape], data: stored, bytes: stored.byteLength } };
  }
}

// ------------------------------------------------------------------------------------ encoder

/** One network input: the S×S single-channel image and the parts of its cache key. */
export interface EncoderInput {
  image: Float32Array;
  inputHash: string;
  preprocess: string;
}

/** (B, 3, S, S) host data: each S×S single-channel image replicated to the 3 channels. */
export function toThreeChannels(images: readonly Float32Array[], S: number, chans = 3): Float32Array {
  const n = S * S;
  const out = new Float32Array(images.length * chans * n);
  images.forEach((im, b) => {
    if (im.length !== n)
      throw new RangeError(`toThreeChannels: image ${b} has ${im.length} pixels, expected ${S}x${S}`);
    for (let c = 0; c < chans; c++) out.set(im, (b * chans + c) * n);
  });
  return out;
}

/**
 * The frozen SAM encoder behind the cache: `embed` returns the (B, C, T, T) embeddings of a batch,
 * running the encoder (one batched forward, no gradient) only on the inputs the cache misses.
 */
export class FrozenEncoder {
  /** Images encoded (cache misses) and the wall time spent encoding them. */
  encoded = 0;
  encodeMs = 0;
  hits = 0;

  constructor(
    readonly model: SamLST,
    readonly cache: EmbedCache,
    readonly encoderHash: string,
  ) {}

  /** Mean encoder time per image so far (ms); NaN before the first miss. */
  get msPerImage(): number {
    return this.encoded ? this.encodeMs / this.encoded : NaN;
  }

  async embedHost(items: readonly EncoderInput[]): Promise<Float32Array[]> {
    const { promptDim: C, grid: T, imgSize: S, inChans } = this.model.cfg;
    const shape = [C, T, T];
    const out: (Float32Array | null)[] = items.map((it) => {
      const hit = this.cache.get(
        { encoderHash: this.encoderHash, inputHash: it.inputHash, preprocess: it.preprocess },
        shape,
      );
      if (hit) this.hits++;
      return hit ? hit.data : null;
    });
    const missIdx = out.flatMap((v, i) => (v ? [] : [i]));
    if (missIdx.length) {
      const t0 = performance.now();
      const x = Tensor.fromData(
        this.model.gpu,
        toThreeChannels(
          missIdx.map((i) => items[i]!.image),
          S,
          inChans,
        ),
        [missIdx.length, inChans, S, S],
      );
      const e = tidy(() => noGrad(() => this.model.encode(x)));
      x.dispose();
      const data = await e.readFloat();
      e.dispose();
      this.encodeMs += performance.now() - t0;
      this.encoded += missIdx.length;
      const n = C * T * T;
      missIdx.forEach((i, j) => {
        const it = items[i]!;
        const stored = this.cache.put(
          { encoderHash: this.encoderHash, inputHash: it.inputHash, preprocess: it.preprocess },
          data.subarray(j * n, (j + 1) * n),
          shape,
        );
        out[i] = stored.data;
      });
    }
    return out as Float32Array[];
  }

  /** The batch's embeddings as one GPU tensor (B, C, T, T); the caller disposes it. */
  async embed(items: readonly EncoderInput[]): Promise<Tensor> {
    const { promptDim: C, grid: T } = this.model.cfg;
    const parts = await this.embedHost(items);
    const n = C * T * T;
    const all = new Float32Array(items.length * n);
    parts.forEach((p, i) => all.set(p, i * n));
    return Tensor.fromData(this.model.gpu, all, [items.length, C, T, T]);
  }
}
