/**
 * The writer that faults_kill.test.ts kills with SIGKILL: rewrites the training checkpoint the way
 * the loop's save does (writeFileAtomic of the serialised bytes, durable) with the versions in turn,
 * and after each checkpoint puts three embedding-cache entries (EmbedCache.put, as the
 * FrozenEncoder does on a miss), printing a line before and after every write. Runs until killed.
 */
import { readFileSync } from 'node:fs';
import { writeFileAtomic } from '../../src/io/atomic.js';
import { EmbedCache } from '../../src/train/embed_cache.js';
import { ENTRY_SHAPE, entryData, entryDtype, entryKey, type WriterArgs } from './kill_common.js';

const a = JSON.parse(process.argv[2] ?? '') as WriterArgs;
const versions = a.versions.map((p) => readFileSync(p));
const caches = {
  f32: new EmbedCache({ dir: a.cacheDir, memBytes: 0, dtype: 'f32' }),
  f16: new EmbedCache({ dir: a.cacheDir, memBytes: 0, dtype: 'f16' }),
};
const say = (s: string) => process.stdout.write(`${s}\n`);
// Runs until killed, but never outlives the test: it stops when its parent is gone (the test
// worker died or timed out before killing it) or after two minutes.
const parent = process.ppid;
const started = Date.now();
const orphaned = (): boolean => {
  if (Date.now() - started > 120_000) return true;
  try {
    process.kill(parent, 0);
    return false;
  } catch {
    return true;
  }
};
say('ready');
for (let v = a.v0, j = a.e0; !orphaned(); v++) {
  say(`ck-begin ${v}`);
  writeFileAtomic(a.checkpoint, versions[v % versions.length]!);
  say(`ck-done ${v}`);
  for (let k = 0; k < 3; k++, j++) {
    const data = entryData(j);
    say(`put-begin ${j}`);
    caches[entryDtype(j)].put(entryKey(j), data, ENTRY_SHAPE);
    say(`put-done ${j}`);
  }
}
