/**
 * What the kill -9 writer (kill_writer.mts) and faults_kill.test.ts agree on: the cache entries it
 * writes (key, data, dtype, a function of the entry number only) and its protocol lines.
 */
import type { CacheDType, EmbedKey } from '../../src/train/embed_cache.js';

/** One entry is a (C, T, T) embedding: 256 x 16 x 16 (256 KiB in f32, 128 KiB in f16). */
export const ENTRY_SHAPE = [256, 16, 16] as const;
export const ENTRY_ELEMS = ENTRY_SHAPE[0] * ENTRY_SHAPE[1] * ENTRY_SHAPE[2];

export function entryKey(j: number): EmbedKey {
  return { encoderHash: 'e'.repeat(64), inputHash: `kill-slice-${j}`, preprocess: 'train|64x64>64|aug=none' };
}

/** Odd entries are stored in f16, even ones in f32. */
export function entryDtype(j: number): CacheDType {
  return j % 2 ? 'f16' : 'f32';
}

export function entryData(j: number): Float32Array {
  const a = new Float32Array(ENTRY_ELEMS);
  for (let i = 0; i < a.length; i++) a[i] = Math.sin(j * 0.37 + i * 0.013) * (1 + (j % 5));
  return a;
}

/** The writer's arguments (one JSON argument). */
export interface WriterArgs {
  /** Where the checkpoint is rewritten (`<runDir>/checkpoint.safetensors`). */
  checkpoint: string;
  /** Files holding the checkpoint versions, written in turn: version v is versions[v % n]. */
  versions: string[];
  cacheDir: string;
  /** First checkpoint version and first cache entry this writer writes. */
  v0: number;
  e0: number;
}

/**
 * Lines the writer prints (stdout is a pipe: synchronous on Linux, so a line is in the pipe before
 * the next write starts): `ready`, `ck-begin v`, `ck-done v` (writeFileAtomic returned),
 * `put-begin j`, `put-done j` (EmbedCache.put returned).
 */
export type WriterLine = ['ready'] | ['ck-begin' | 'ck-done' | 'put-begin' | 'put-done', number];

export function parseLine(l: string): WriterLine {
  const [w, n] = l.trim().split(' ');
  if (w === 'ready') return ['ready'];
  if (w === 'ck-begin' || w === 'ck-done' || w === 'put-begin' || w === 'put-done') return [w, Number(n)];
  throw new Error(`kill writer: unexpected line '${l}'`);
}
