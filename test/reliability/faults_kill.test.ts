/**
 * kill -9 at random points during checkpoint and cache writes, many times (test/train/
 * checkpoint.test.ts kills a two-version rewrite loop 3 times; this kills a writer of real
 * checkpoints and cache entries 30 times at seeded random delays and checks everything after each):
 *  - the versions are the real checkpoints of a tiny run (steps 3, 6, 9); a child process
 *    (kill_writer.mts) rewrites `<run>/checkpoint.safetensors` with them in turn, as the loop's
 *    save does, and puts three embedding-cache entries (f32 and f16, 256 KiB / 128 KiB) after each,
 *    printing a line before and after every write;
 *  - after each SIGKILL: the checkpoint loads and verifies its sha256 (readCheckpoint) and is byte
 *    for byte either the last version the writer reported finished or the one it was writing, never
 *    an older one or a mix; every cache entry reported finished by any writer so far loads from disk
 *    and passes its checksum with the data that was put; the entry being written is either absent
 *    or complete; no entry on disk is corrupt; each temporary file a kill left (a genuinely torn
 *    write, or a complete one not yet renamed) is never served: planted at its entry's path it is
 *    rejected as corrupt (a miss) or, if complete, returns exactly the data; a torn checkpoint
 *    temporary fails readCheckpoint;
 *  - then the next writer: `train --resume` of the run (in-process) removes the stale checkpoint
 *    temporaries and continues from the checkpoint on disk; removeStaleTemps on the cache folders
 *    removes exactly the cache temporaries, and every finished entry still verifies.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFileSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, expect, test } from 'vitest';
import { removeStaleTemps, writeFileAtomic } from '../../src/io/atomic.js';
import { CheckpointError, readCheckpoint } from '../../src/train/checkpoint.js';
import { decodeF16, EmbedCache, embedKey, encodeF16 } from '../../src/train/embed_cache.js';
import { CHECKPOINT_FILE, train } from '../../src/train/loop.js';
import { Rng } from '../../src/util/rng.js';
import { closeTestGpus, testDir, testGpu } from '../helpers.js';
import { sink, tempDir } from '../train/util.js';
import { faultConfig, temporaries } from './faults_util.js';
import {
  ENTRY_SHAPE,
  entryData,
  entryDtype,
  entryKey,
  parseLine,
  type WriterArgs,
  type WriterLine,
} from './kill_common.js';

afterAll(closeTestGpus);

const root = join(testDir, '..');
const loader = pathToFileURL(join(root, 'node_modules', 'tsx', 'dist', 'loader.mjs')).href;
const KILLS = 30;
const SEED = 0x5eed_0009;

const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

/** Runs the writer until `delayMs` after it is ready, kills its process group, returns its lines. */
async function killWriter(args: WriterArgs, delayMs: number): Promise<WriterLine[]> {
  const child = spawn(
    process.execPath,
    ['--import', loader, join(testDir, 'reliability', 'kill_writer.mts'), JSON.stringify(args)],
    { stdio: ['ignore', 'pipe', 'pipe'], detached: true },
  );
  let out = '';
  let err = '';
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const closed = new Promise<number | null>((r) => child.once('close', (code) => r(code)));
  await new Promise<void>((resolve, reject) => {
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.startsWith('ready\n')) resolve();
    });
    child.once('exit', () => reject(new Error(`kill writer exited before it was ready: ${err}`)));
  });
  await new Promise((r) => setTimeout(r, delayMs));
  process.kill(-child.pid!, 'SIGKILL');
  await closed; // stdout is drained: every line the writer printed is in `out`
  expect(err, 'writer stderr').toBe('');
  return out
    .split('\n')
    .filter((l) => l.trim())
    .map(parseLine);
}

const expectedCache = new Map<number, Buffer>();
/** The bytes of the data an entry returns from the cache (f16 entries rounded). */
function expectedBytes(j: number): Buffer {
  let b = expectedCache.get(j);
  if (!b) {
    const d = entryData(j);
    const v = entryDtype(j) === 'f16' ? decodeF16(encodeF16(d)!) : d;
    b = Buffer.from(v.buffer, v.byteOffset, v.byteLength);
    expectedCache.set(j, b);
  }
  return b;
}

/** True when `got` holds exactly the data entry `j` was put with (bit for bit). */
function sameData(got: Float32Array, j: number): boolean {
  return Buffer.from(got.buffer, got.byteOffset, got.byteLength).equals(expectedBytes(j));
}

function cacheTemps(cacheDir: string): string[] {
  return readdirSync(cacheDir, { recursive: true, withFileTypes: true })
    .filter((d) => d.isFile() && /\.tmp-\d+-/.test(d.name))
    .map((d) => join(d.parentPath, d.name));
}

test(`SIGKILL ${KILLS} times during checkpoint and cache writes: what is on disk always verifies`, async () => {
  const t0 = performance.now();
  // Real checkpoints of one run: the ends of its three epochs.
  const gpu = await testGpu();
  const run = tempDir('kill-run');
  const versionDir = tempDir('kill-versions');
  const versions: string[] = [];
  await train(faultConfig(run, { maxSteps: 9 }), {
    gpu,
    out: sink(),
    hooks: {
      afterStep: (s) => {
        if (s % 3 !== 0) return;
        const p = join(versionDir, `step${s}.safetensors`);
        copyFileSync(join(run, CHECKPOINT_FILE), p);
        versions.push(p);
      },
    },
  });
  const vBytes = versions.map((p) => readFileSync(p));
  const vHash = vBytes.map(sha);
  expect(new Set(vHash).size).toBe(3);
  const ckPath = join(run, CHECKPOINT_FILE);
  writeFileAtomic(ckPath, vBytes[0]!);
  const cacheDir = tempDir('kill-cache');
  const keyToEntry = new Map<string, number>();

  const rng = new Rng(SEED);
  const fig = {
    kills: 0,
    killedIn: { checkpoint: 0, cache: 0, between: 0 },
    checkpointsVerified: 0,
    versionOnDisk: { previous: 0, inFlight: 0 },
    entriesVerified: 0,
    entriesFinished: 0,
    inFlightEntries: { absent: 0, complete: 0 },
    checkpointTemps: { torn: 0, complete: 0 },
    cacheTemps: { torn: 0, complete: 0 },
    tornPlanted: { checkpoints: 0, entries: 0 },
    writerSeconds: 0,
  };
  let onDisk = 0; // version index whose bytes are on disk
  let nextV = 1;
  let nextE = 0;
  const finished = new Set<number>();
  const seenCkTemps = new Set<string>();
  const seenCacheTemps = new Set<string>();
  const scratch = tempDir('kill-plant');

  for (let k = 0; k < KILLS; k++) {
    const delay = rng.uniform(5, 160);
    const tw = performance.now();
    const lines = await killWriter({ checkpoint: ckPath, versions, cacheDir, v0: nextV, e0: nextE }, delay);
    fig.writerSeconds += (performance.now() - tw) / 1000;
    fig.kills++;
    let ckDone: number | null = null;
    let ckInFlight: number | null = null;
    let putInFlight: number | null = null;
    for (const l of lines) {
      if (l[0] === 'ck-begin') ckInFlight = l[1];
      if (l[0] === 'ck-done') [ckDone, ckInFlight] = [l[1], null];
      if (l[0] === 'put-begin') putInFlight = l[1];
      if (l[0] === 'put-done') {
        finished.add(l[1]);
        keyToEntry.set(embedKey(entryKey(l[1])), l[1]);
        putInFlight = null;
      }
    }
    const last = lines[lines.length - 1]!;
    if (last[0] === 'ck-begin') fig.killedIn.checkpoint++;
    else if (last[0] === 'put-begin') fig.killedIn.cache++;
    else fig.killedIn.between++;

    // The checkpoint: verifies, and is the last finished version or the one in flight.
    const ck = readCheckpoint(ckPath);
    fig.checkpointsVerified++;
    const h = sha(readFileSync(ckPath));
    const prev = ckDone ?? onDisk;
    const allowed = new Map<string, number>([[vHash[prev % 3]!, prev]]);
    if (ckInFlight !== null) allowed.set(vHash[ckInFlight % 3]!, ckInFlight);
    expect(
      allowed.has(h),
      `kill ${k}: checkpoint on disk is not version ${[...allowed.values()].join(' or ')}`,
    ).toBe(true);
    onDisk = allowed.get(h)!;
    if (ckInFlight !== null && onDisk === ckInFlight && ckInFlight !== prev) fig.versionOnDisk.inFlight++;
    else fig.versionOnDisk.previous++;
    expect(ck.meta.state.step).toBe(3 * ((onDisk % 3) + 1));
    nextV = Math.max(ckDone ?? -1, ckInFlight ?? -1, nextV - 1) + 1;

    // Checkpoint temporaries left by this kill: a torn one fails to load, a complete one is a version.
    for (const f of temporaries(run).filter((f) => !seenCkTemps.has(f))) {
      seenCkTemps.add(f);
      const p = join(scratch, `ck-${seenCkTemps.size}`, CHECKPOINT_FILE);
      mkdirSync(dirname(p), { recursive: true });
      copyFileSync(join(run, f), p);
      let complete = false;
      try {
        readCheckpoint(p);
        complete = true;
      } catch (e) {
        expect(e).toBeInstanceOf(CheckpointError);
        expect((e as Error).message).toContain(p);
      }
      if (complete) {
        expect(vHash).toContain(sha(readFileSync(p)));
        fig.checkpointTemps.complete++;
      } else fig.checkpointTemps.torn++;
    }

    // Every finished cache entry loads and verifies; the one in flight is absent or complete.
    const reader = new EmbedCache({ dir: cacheDir, memBytes: 0 });
    for (const j of finished) {
      const got = reader.get(entryKey(j));
      expect(got, `kill ${k}: finished entry ${j} is missing`).not.toBeNull();
      expect(got!.dtype).toBe(entryDtype(j));
      expect(got!.shape).toEqual([...ENTRY_SHAPE]);
      expect(sameData(got!.data, j), `entry ${j}`).toBe(true);
      fig.entriesVerified++;
    }
    if (putInFlight !== null) {
      const got = reader.get(entryKey(putInFlight));
      if (got) {
        expect(sameData(got.data, putInFlight)).toBe(true);
        fig.inFlightEntries.complete++;
      } else fig.inFlightEntries.absent++;
      keyToEntry.set(embedKey(entryKey(putInFlight)), putInFlight);
    }
    expect(reader.stats().corrupt).toBe(0);
    expect(reader.stats().stale).toBe(0);
    nextE = putInFlight ?? Math.max(-1, ...finished) + 1;

    // A torn write as a power loss could leave it (a non-durable cache entry, or a copy cut short):
    // one finished entry and one checkpoint version cut at a seeded length, planted at their paths.
    {
      const js = [...finished];
      if (js.length) {
        const j = js[rng.int(0, js.length)]!;
        const bytes = readFileSync(reader.pathOf(entryKey(j))!);
        const plant = new EmbedCache({ dir: join(scratch, `torn-${k}`), memBytes: 0 });
        const path = plant.pathOf(entryKey(j))!;
        mkdirSync(dirname(path), { recursive: true });
        writeFileSync(path, bytes.subarray(0, rng.int(0, bytes.length)));
        expect(plant.get(entryKey(j))).toBeNull();
        expect(plant.stats().corrupt).toBe(1);
        fig.tornPlanted.entries++;
      }
      const v = vBytes[rng.int(0, 3)]!;
      const cp = join(scratch, `torn-${k}`, CHECKPOINT_FILE);
      // The entry plant above made the directory only when some entry had finished before the kill.
      mkdirSync(dirname(cp), { recursive: true });
      writeFileSync(cp, v.subarray(0, rng.int(0, v.length)));
      expect(() => readCheckpoint(cp)).toThrow(CheckpointError);
      fig.tornPlanted.checkpoints++;
    }

    // Cache temporaries left by this kill, planted at their entry's path in a scratch cache: a torn
    // one is rejected as corrupt (a miss), a complete one returns exactly its data.
    for (const t of cacheTemps(cacheDir).filter((t) => !seenCacheTemps.has(t))) {
      seenCacheTemps.add(t);
      const name = /^\.([0-9a-f]{64})\.safetensors\.tmp-/.exec(basename(t))![1]!;
      const j = keyToEntry.get(name);
      expect(j, `temporary ${t} belongs to no entry the writer began`).toBeDefined();
      const plantDir = join(scratch, `cache-${seenCacheTemps.size}`);
      const plant = new EmbedCache({ dir: plantDir, memBytes: 0 });
      const path = plant.pathOf(entryKey(j!))!;
      mkdirSync(dirname(path), { recursive: true });
      copyFileSync(t, path);
      const got = plant.get(entryKey(j!));
      if (got) {
        expect(sameData(got.data, j!)).toBe(true);
        fig.cacheTemps.complete++;
      } else {
        expect(plant.stats().corrupt).toBe(1);
        fig.cacheTemps.torn++;
      }
    }
  }
  fig.entriesFinished = finished.size;
  expect(fig.kills).toBe(KILLS);
  expect(finished.size).toBeGreaterThan(10); // the writers got real work done between kills

  // The next writer of the run: --resume cleans the stale checkpoint temporaries and continues.
  const before = temporaries(run).length;
  expect(before).toBe(seenCkTemps.size);
  const resumed = readCheckpoint(ckPath);
  const r = await train({ ...resumed.meta.config, maxSteps: 9 }, { gpu, out: sink(), resume: resumed });
  expect(r.steps).toBe(9);
  expect(temporaries(run)).toEqual([]);
  // The cache folders: removeStaleTemps removes exactly the temporaries; every entry still verifies.
  const shards = readdirSync(cacheDir).map((d) => join(cacheDir, d));
  const removed = shards.flatMap((d) => removeStaleTemps(d)).sort();
  expect(removed).toEqual([...seenCacheTemps].sort());
  expect(cacheTemps(cacheDir)).toEqual([]);
  const reader = new EmbedCache({ dir: cacheDir, memBytes: 0 });
  for (const j of finished) expect(sameData(reader.get(entryKey(j))!.data, j), `entry ${j}`).toBe(true);
  expect(reader.stats().corrupt).toBe(0);

  console.log(
    `[faults_kill] ${JSON.stringify({ ...fig, staleCheckpointTempsCleanedByResume: before, staleCacheTempsRemoved: removed.length, seconds: ((performance.now() - t0) / 1000).toFixed(1) })}`,
  );
}, 170_000);
