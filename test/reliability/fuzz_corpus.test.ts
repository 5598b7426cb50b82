/**
 * Replays the fuzz regression corpus (test/fixtures/fuzz/manifest.json, README.md): every input
 * that once crashed, hung, over-allocated or was wrongly accepted by a reader must now give what
 * the manifest says - a self-consistent result ('ok') or the reader's own error class with a
 * message that names the file and contains the recorded fragment - within 2 s and without memory
 * growth.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, expect, test } from 'vitest';
import { H5Error, readH5Datasets, writeH5 } from '../../src/data/h5.js';
import { NiftiError, parseNifti } from '../../src/data/nifti.js';
import { NpyError, parseNpz } from '../../src/data/npy.js';
import { decodeGreyPng, PngError } from '../../src/data/png.js';
import { NiftiWriteError, readNiftiGeometry } from '../../src/io/nifti_write.js';
import { PickleError, unpickle } from '../../src/io/pickle.js';
import { PthError, readPth, TORCH_GLOBALS } from '../../src/io/pth.js';
import { parseSafetensors, SafetensorsError } from '../../src/io/safetensors.js';
import { CheckpointError, readCheckpoint } from '../../src/train/checkpoint.js';
import { timeout } from './mutate.js';

const corpus = join(import.meta.dirname, '..', 'fixtures', 'fuzz');

interface Entry {
  file: string;
  reader: string;
  expect: string;
  match?: string;
  was: string;
}
// Load the HDF5 library once, untimed (the per-input bound is for reading, not for loading WASM).
beforeAll(async () => {
  const { mkdtempSync, rmSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const d = mkdtempSync(join(tmpdir(), 'fuzz-corpus-'));
  const p = join(d, 'warm.h5');
  await writeH5(p, { image: { data: new Float32Array(8), shape: [2, 2, 2] } });
  await readH5Datasets(p, ['image']);
  rmSync(d, { recursive: true, force: true });
}, timeout(120_000));

const manifest = JSON.parse(readFileSync(join(corpus, 'manifest.json'), 'utf8')) as { entries: Entry[] };

/** Readers that take a path (the message names the path). */
const byPath = (e: Entry) => e.reader === 'h5' || e.reader === 'train-checkpoint';
const size = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);
const checkLen = (what: string, len: number, shape: readonly number[]) => {
  if (len !== size(shape)) throw new Error(`${what}: ${len} values for (${shape.join(', ')})`);
};

/** reader name -> [error class, read + consistency check of a successful result]. */
const READERS: Record<
  string,
  [abstract new (...a: never[]) => Error, (file: string, name: string) => unknown]
> = {
  safetensors: [SafetensorsError, (f, n) => parseSafetensors(new Uint8Array(readFileSync(f)), n)],
  'train-checkpoint': [
    CheckpointError,
    (f) => {
      const ck = readCheckpoint(f);
      for (const [k, t] of ck.model) checkLen(k, t.data.length, t.shape);
      return ck;
    },
  ],
  pth: [
    PthError,
    (f, n) => {
      const m = readPth(new Uint8Array(readFileSync(f)), n, { unwrap: true });
      for (const [k, t] of m) checkLen(k, t.data.length, t.shape);
      return m;
    },
  ],
  pickle: [
    PickleError,
    (f, n) => unpickle(new Uint8Array(readFileSync(f)), { source: n, globals: TORCH_GLOBALS }),
  ],
  npz: [
    NpyError,
    (f, n) => {
      const m = parseNpz(new Uint8Array(readFileSync(f)), n);
      for (const [k, a] of m) checkLen(k, a.data.length, a.shape);
      return m;
    },
  ],
  nifti: [
    NiftiError,
    (f, n) => {
      const v = parseNifti(new Uint8Array(readFileSync(f)), n);
      checkLen('volume', v.data.length, [v.d, v.h, v.w]);
      if (!v.spacing.every(Number.isFinite)) throw new Error(`spacing ${v.spacing}`);
      return v;
    },
  ],
  'nifti-geometry': [
    NiftiWriteError,
    (f, n) => {
      const g = readNiftiGeometry(new Uint8Array(readFileSync(f)), n);
      if (!(g.dim[0]! >= 1 && g.dim[0]! <= 7)) throw new Error(`rank ${g.dim[0]}`);
      return g;
    },
  ],
  h5: [
    H5Error,
    async (f, n) => {
      const m = await readH5Datasets(f, ['image', 'label']);
      for (const [k, a] of m) checkLen(`${n} ${k}`, a.data.length, a.shape);
      return m;
    },
  ],
  png: [
    PngError,
    (f, n) => {
      const g = decodeGreyPng(new Uint8Array(readFileSync(f)), n);
      checkLen('image', g.data.length, [g.h, g.w]);
      return g;
    },
  ],
};

test('the manifest lists every corpus file and only known readers', async () => {
  const { readdirSync, statSync } = await import('node:fs');
  const files = readdirSync(corpus)
    .filter((d) => d !== 'seeds' && statSync(join(corpus, d)).isDirectory())
    .flatMap((d) => readdirSync(join(corpus, d)).map((f) => `${d}/${f}`))
    .sort();
  expect(files).toEqual(manifest.entries.map((e) => e.file).sort());
  for (const e of manifest.entries) expect(Object.keys(READERS), e.file).toContain(e.reader);
});

test.each(manifest.entries.map((e) => [e.file, e] as const))('corpus: %s', async (_name, e) => {
  const [cls, read] = READERS[e.reader]!;
  const file = join(corpus, e.file);
  const before = process.memoryUsage();
  const t0 = performance.now();
  let err: unknown;
  try {
    await read(file, byPath(e) ? file : e.file);
  } catch (x) {
    err = x;
  }
  const ms = performance.now() - t0;
  const after = process.memoryUsage();
  expect(ms, `${e.file} took ${ms.toFixed(0)} ms`).toBeLessThan(2000);
  expect(after.arrayBuffers - before.arrayBuffers, 'arrayBuffers growth').toBeLessThan(128 * 2 ** 20);
  expect(after.rss - before.rss, 'rss growth').toBeLessThan(256 * 2 ** 20);
  if (e.expect === 'ok') {
    expect(err, `${e.file}: ${String(err)}`).toBeUndefined();
    return;
  }
  expect(err, `${e.file}: ${String(err)}`).toBeInstanceOf(cls);
  expect((err as Error).name).toBe(e.expect);
  const msg = (err as Error).message;
  expect(msg, 'the message names the file').toContain(byPath(e) ? file : e.file);
  if (e.match) expect(msg).toContain(e.match);
});
