/**
 * Fuzzing the engine's own checkpoint readers:
 *  - src/train/checkpoint.ts readCheckpoint(path): the training checkpoint (one safetensors file:
 *    model.* and optim.m/v.* tensors, `__metadata__` with format, meta JSON and a sha256 of the
 *    tensor bytes). Seed: a small checkpoint built here in exactly the layout checkpointBytes
 *    writes (no GPU needed). Mutations: generic bytes (header-weighted), data bytes with and
 *    without the checksum re-signed, and structural edits of the meta JSON (not an object, wrong
 *    version, modelKeys/optimizer.steps missing, of the wrong type, naming absent tensors, steps
 *    that are not counts), of the format/sha256 fields, and of tensor dtypes/shapes (which keep the
 *    checksum valid, so they reach the checks after it).
 *  - src/api.ts readCheckpoint(bytes): .pth (zip, legacy) or safetensors with a stored config.
 * Each input ends in a self-consistent result or a CheckpointError naming the file, within 2 s.
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, test } from 'vitest';
import { CheckpointError as ApiCheckpointError, readCheckpoint as readApiCheckpoint } from '../../src/api.js';
import { parseSafetensors, writeSafetensors, type StWriteEntry } from '../../src/io/safetensors.js';
import { SamLstConfig } from '../../src/nn/config.js';
import { CHECKPOINT_FORMAT, CheckpointError, readCheckpoint } from '../../src/train/checkpoint.js';
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

const SEEDS = {
  bytes: 0xc4ec01,
  data: 0xc4ec02,
  meta: 0xc4ec03,
  api: 0xc4ec04,
  apiSt: 0xc4ec05,
  metaSha: 0xc4ec06,
};
const fixtures = join(import.meta.dirname, '..', 'fixtures');
const dir = mkdtempSync(join(tmpdir(), 'fuzz-ckpt-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function tensorSha(entries: ReadonlyMap<string, Uint8Array>): string {
  const h = createHash('sha256');
  for (const k of [...entries.keys()].sort()) h.update(entries.get(k)!);
  return h.digest('hex');
}

const baseMeta = {
  version: 1,
  created: '2024-01-01T00:00:00.000Z',
  config: { preset: 'tiny', batchSize: 2 },
  state: { step: 2, epoch: 0, batchInEpoch: 2, perm: [1, 0], orderRng: 11, augRng: 22, finished: false },
  schedule: { baseLr: 0.001, warmup: 0, maxIters: 10 },
  optimizer: { betas: [0.9, 0.999], eps: 1e-8, weightDecay: 0.1, steps: { 'lin.weight': 2, 'lin.bias': 2 } },
  dataset: { layout: 'phantom', trainSize: 2, trainIds: 'ab' },
  frozenHash: 'f'.repeat(64),
  modelKeys: ['lin.weight', 'lin.bias', 'bn.num_batches_tracked'],
};

/** A training checkpoint in checkpointBytes' layout, from tensors and a meta object. */
function checkpointFile(
  meta: unknown,
  tweak?: (m: Map<string, StWriteEntry>) => void,
  metaSha = false,
): Uint8Array {
  const f = (n: number, s: number) => Float32Array.from({ length: n }, (_, i) => (i + 1) * s);
  const entries = new Map<string, StWriteEntry>([
    ['model.lin.weight', { dtype: 'F32', shape: [3, 2], data: f(6, 0.5) }],
    ['model.lin.bias', { dtype: 'F32', shape: [3], data: f(3, -0.25) }],
    ['model.bn.num_batches_tracked', { dtype: 'I32', shape: [], data: Int32Array.of(7) }],
    ['optim.m.lin.weight', { dtype: 'F32', shape: [3, 2], data: f(6, 0.01) }],
    ['optim.v.lin.weight', { dtype: 'F32', shape: [3, 2], data: f(6, 0.001) }],
    ['optim.m.lin.bias', { dtype: 'F32', shape: [3], data: f(3, 0.02) }],
    ['optim.v.lin.bias', { dtype: 'F32', shape: [3], data: f(3, 0.002) }],
  ]);
  tweak?.(entries);
  const bytes = new Map([...entries].map(([k, e]) => [k, new Uint8Array(e.data.buffer)]));
  const json = typeof meta === 'string' ? meta : JSON.stringify(meta);
  return writeSafetensors(entries, {
    format: CHECKPOINT_FORMAT,
    meta: json,
    sha256: tensorSha(bytes),
    ...(metaSha ? { meta_sha256: createHash('sha256').update(json).digest('hex') } : {}),
  });
}

function headerEnd(b: Uint8Array): number {
  return 8 + Number(new DataView(b.buffer, b.byteOffset).getBigUint64(0, true));
}

/** Recomputes the stored sha256 after a data mutation (the header must still parse). */
function resign(b: Uint8Array): Uint8Array {
  const st = parseSafetensors(b, 'resign');
  const sha = tensorSha(new Map([...st.tensors].map(([k, e]) => [k, e.bytes])));
  const n = headerEnd(b);
  const h = JSON.parse(new TextDecoder().decode(b.subarray(8, n))) as Record<string, Record<string, string>>;
  h.__metadata__!.sha256 = sha;
  return stFile(h, b.subarray(n));
}

const META_EDITS: [string, (m: Record<string, unknown>) => unknown][] = [
  ['meta=[]', () => []],
  ['meta=null', () => null],
  ['meta="x"', () => 'x'],
  ['meta={}', () => ({})],
  ['version 2', (m) => ({ ...m, version: 2 })],
  ['version "1"', (m) => ({ ...m, version: '1' })],
  ['no modelKeys', (m) => ({ ...m, modelKeys: undefined })],
  ['modelKeys "x"', (m) => ({ ...m, modelKeys: 'lin.weight' })],
  ['modelKeys [1]', (m) => ({ ...m, modelKeys: [1, null] })],
  ['modelKeys absent tensor', (m) => ({ ...m, modelKeys: ['lin.weight', 'nope'] })],
  ['modelKeys duplicated', (m) => ({ ...m, modelKeys: ['lin.weight', 'lin.weight'] })],
  ['no optimizer', (m) => ({ ...m, optimizer: undefined })],
  ['optimizer null', (m) => ({ ...m, optimizer: null })],
  ['steps null', (m) => ({ ...m, optimizer: { ...(m.optimizer as object), steps: null } })],
  ['steps []', (m) => ({ ...m, optimizer: { ...(m.optimizer as object), steps: [] } })],
  ['steps "2"', (m) => ({ ...m, optimizer: { ...(m.optimizer as object), steps: { 'lin.weight': '2' } } })],
  ['steps -1', (m) => ({ ...m, optimizer: { ...(m.optimizer as object), steps: { 'lin.weight': -1 } } })],
  ['steps 1.5', (m) => ({ ...m, optimizer: { ...(m.optimizer as object), steps: { 'lin.bias': 1.5 } } })],
  ['steps absent param', (m) => ({ ...m, optimizer: { ...(m.optimizer as object), steps: { ghost: 1 } } })],
  [
    'steps __proto__',
    () => JSON.parse(JSON.stringify(baseMeta).replace('"lin.bias":2', '"__proto__":2')) as unknown,
  ],
  ['no state', (m) => ({ ...m, state: undefined })],
  ['state.step "x"', (m) => ({ ...m, state: { ...(m.state as object), step: 'x' } })],
  ['state.step -3', (m) => ({ ...m, state: { ...(m.state as object), step: -3 } })],
  ['no config', (m) => ({ ...m, config: null })],
  ['frozenHash 1', (m) => ({ ...m, frozenHash: 1 })],
];

function mutateMeta(rng: Rng): Mutant {
  const k = rng.int(0, 10);
  if (k < 6) {
    const [op, edit] = pick(rng, META_EDITS);
    return { op: `meta ${op}`, bytes: checkpointFile(edit(structuredClone(baseMeta))) };
  }
  if (k === 6) return { op: 'meta not JSON', bytes: checkpointFile('{"version": 1,') };
  if (k === 7) {
    // the checksum-protected tensors keep their bytes; their header entries change
    const op = pick(rng, ['dtype I32', 'shape [6]', 'shape [2,3]', 'dtype F16 shape [12]', 'optim shape']);
    return {
      op,
      bytes: checkpointFile(baseMeta, (m) => {
        const w = m.get('model.lin.weight')!;
        if (op === 'dtype I32')
          m.set('model.lin.weight', { ...w, dtype: 'I32', data: new Int32Array(w.data.buffer) });
        if (op === 'shape [6]') m.set('model.lin.weight', { ...w, shape: [6] });
        if (op === 'shape [2,3]') m.set('model.lin.weight', { ...w, shape: [2, 3] });
        if (op === 'dtype F16 shape [12]')
          m.set('model.lin.weight', {
            ...w,
            dtype: 'F16',
            shape: [12],
            data: new Uint16Array(w.data.buffer),
          });
        if (op === 'optim shape') m.set('optim.v.lin.bias', { ...m.get('optim.v.lin.bias')!, shape: [1, 3] });
      }),
    };
  }
  // format / sha256 metadata fields
  const b = checkpointFile(baseMeta);
  const n = headerEnd(b);
  const h = JSON.parse(new TextDecoder().decode(b.subarray(8, n))) as Record<string, Record<string, unknown>>;
  const field = pick(rng, ['format', 'sha256', 'meta']);
  h.__metadata__![field] = pick(rng, [
    '',
    'x',
    '0'.repeat(64),
    CHECKPOINT_FORMAT.toUpperCase(),
    'sam-lst-webgpu/state-dict',
  ]);
  if (k === 9) delete h.__metadata__![field];
  return { op: `metadata.${field} edited`, bytes: stFile(h, b.subarray(n)) };
}

function checkTrainCheckpoint(ck: ReturnType<typeof readCheckpoint>): void {
  const keys = ck.meta.modelKeys;
  if (!Array.isArray(keys) || [...ck.model.keys()].join() !== keys.join())
    throw new Error('model keys differ from modelKeys');
  const size = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);
  for (const [k, t] of ck.model)
    if (t.data.length !== size(t.shape))
      throw new Error(`model '${k}': ${t.data.length} values for [${t.shape}]`);
  for (const [k, p] of Object.entries(ck.optim.params)) {
    if (!Number.isSafeInteger(p.step) || p.step < 0) throw new Error(`optim '${k}': step ${p.step}`);
    if (p.m.shape.join() !== p.v.shape.join()) throw new Error(`optim '${k}': m and v shapes differ`);
    if (p.m.dtype !== 'f32' || p.v.dtype !== 'f32') throw new Error(`optim '${k}': moments are not f32`);
    if (p.m.data.length !== size(p.m.shape)) throw new Error(`optim '${k}': m size`);
    const w = ck.model.get(k);
    if (w && w.shape.join() !== p.m.shape.join())
      throw new Error(`optim '${k}': moments' shape differs from the parameter's`);
  }
}

let fileNo = 0;
function atPath(bytes: Uint8Array, source: string): string {
  const p = join(dir, `${fileNo++}-${source}`);
  writeFileSync(p, bytes);
  return p;
}

test(
  'training checkpoints: mutations end in a verified checkpoint or a CheckpointError naming the file',
  async () => {
    const seed = checkpointFile(baseMeta);
    checkTrainCheckpoint(readCheckpoint(atPath(seed, 'seed.ckpt')));
    const run = new FuzzRun('train-checkpoint', { errors: [CheckpointError] });
    const go = (m: Mutant) =>
      run.one(m.op, m.bytes, (b, src) => readCheckpoint(atPath(b, src)), checkTrainCheckpoint);
    let rng = rngFor(SEEDS.bytes);
    for (let i = 0; i < iters(300); i++) await go(mutateMany(seed, rng, [0, headerEnd(seed)]));
    // tensor data: refused by the checksum unless re-signed, then read as stored
    rng = rngFor(SEEDS.data);
    let refused = 0;
    for (let i = 0; i < iters(60); i++) {
      const b = seed.slice();
      b[rng.int(headerEnd(seed), b.length)]! ^= 1 << rng.int(0, 8);
      if ((await go({ op: 'data bitflip', bytes: b })) === 'error') refused++;
      await go({ op: 'data bitflip re-signed', bytes: resign(b) });
    }
    expect(refused, 'every data bit flip is caught by the checksum').toBe(iters(60));
    rng = rngFor(SEEDS.meta);
    for (let i = 0; i < iters(240); i++) await go(mutateMeta(rng));
    run.report();
    expect(run.failures, run.describeFailures()).toEqual([]);
    expect(run.stats().ok).toBeGreaterThan(0);
  },
  timeout(120_000),
);

test('training checkpoint: structurally wrong metadata is named in the error', () => {
  const cases: [string, unknown, RegExp][] = [
    ['meta=[]', [], /meta.*not a JSON object/],
    ['no modelKeys', { ...baseMeta, modelKeys: undefined }, /modelKeys/],
    [
      'steps "2"',
      { ...baseMeta, optimizer: { ...baseMeta.optimizer, steps: { 'lin.weight': '2' } } },
      /steps.*lin\.weight/,
    ],
    ['absent tensor', { ...baseMeta, modelKeys: ['nope'] }, /tensor 'model\.nope' is missing/],
  ];
  for (const [what, meta, re] of cases) {
    const p = atPath(checkpointFile(meta), 'named.ckpt');
    expect(() => readCheckpoint(p), what).toThrow(CheckpointError);
    expect(() => readCheckpoint(p), what).toThrow(re);
  }
});

// ------------------------------------------------------------------ src/api.ts readCheckpoint

function apiSafetensorsSeed(): Uint8Array {
  const f = (n: number) => Float32Array.from({ length: n }, (_, i) => Math.sin(i));
  return writeSafetensors(
    new Map<string, StWriteEntry>([
      ['sam.mask_decoder.w', { dtype: 'F32', shape: [4, 2], data: f(8) }],
      ['CNN_encoder.bn.num_batches_tracked', { dtype: 'I32', shape: [], data: Int32Array.of(3) }],
      ['module.sam.x', { dtype: 'F16', shape: [2], data: Uint16Array.of(0x3c00, 0x4000) }],
      ['optim.step', { dtype: 'I32', shape: [1], data: Int32Array.of(1) }],
    ]),
    { config: JSON.stringify({ config: SamLstConfig.tiny().toJson() }) },
  );
}

function checkApi(ck: ReturnType<typeof readApiCheckpoint>): void {
  for (const [k, t] of ck.tensors) {
    const n = t.shape.reduce((a, b) => a * b, 1);
    if (t.data.length !== n) throw new Error(`'${k}': ${t.data.length} values for [${t.shape}]`);
    if ((t.dtype === 'f32') !== t.data instanceof Float32Array) throw new Error(`'${k}': dtype ${t.dtype}`);
  }
}

test(
  'api readCheckpoint: mutated .pth and safetensors bytes end in a checkpoint or a CheckpointError',
  async () => {
    const read = (n: string) => new Uint8Array(readFileSync(join(fixtures, 'pth', n)));
    const pths = [read('dtypes_zip.pth'), read('legacy.pth'), read('wrapped_state_dict.pth')];
    const st = apiSafetensorsSeed();
    checkApi(readApiCheckpoint(st, 'seed.safetensors'));
    for (const p of pths) checkApi(readApiCheckpoint(p, 'seed.pth'));
    const run = new FuzzRun('api-checkpoint', { errors: [ApiCheckpointError] });
    let rng = rngFor(SEEDS.api);
    for (let i = 0; i < iters(240); i++) {
      const s = pths[i % pths.length]!;
      const m = mutateMany(s, rng, [0, Math.min(s.length, 1200)]);
      await run.one(m.op, m.bytes, (b, src) => readApiCheckpoint(b, src), checkApi);
    }
    rng = rngFor(SEEDS.apiSt);
    for (let i = 0; i < iters(160); i++) {
      const m = mutateMany(st, rng, [0, headerEnd(st)]);
      await run.one(m.op, m.bytes, (b, src) => readApiCheckpoint(b, src), checkApi);
    }
    run.report();
    expect(run.failures, run.describeFailures()).toEqual([]);
  },
  timeout(120_000),
);

test('training checkpoint: bit flips inside the meta JSON are caught when meta_sha256 is stored', async () => {
  const rng = rngFor(SEEDS.metaSha);
  const counts = { withSha: { ok: 0, refused: 0 }, without: { ok: 0, refused: 0 } };
  for (const [which, seed] of [
    ['withSha', checkpointFile(baseMeta, undefined, true)],
    ['without', checkpointFile(baseMeta)],
  ] as const) {
    const text = new TextDecoder().decode(seed.subarray(8, headerEnd(seed)));
    const at = 8 + text.indexOf('"meta":"') + 8;
    for (let i = 0; i < iters(150); i++) {
      const b = seed.slice();
      b[at + rng.int(0, 300)]! ^= 1 << rng.int(0, 7);
      try {
        readCheckpoint(atPath(b, `metaflip-${which}-${i}.ckpt`));
        counts[which].ok++;
      } catch (e) {
        expect(e).toBeInstanceOf(CheckpointError);
        counts[which].refused++;
      }
    }
  }
  console.log(
    `[fuzz] train-checkpoint meta bit flips: with meta_sha256 ${JSON.stringify(counts.withSha)}, ` +
      `without ${JSON.stringify(counts.without)} (accepted = the flip changed the metadata silently)`,
  );
  expect(counts.withSha.ok).toBe(0);
});
