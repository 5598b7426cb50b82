/**
 * Checkpoints (src/train/checkpoint.ts) and atomic writes (src/io/atomic.ts):
 *  - save / read / restore round trip: trainable parameters, BatchNorm buffers (incl.
 *    num_batches_tracked), AdamW moments and step counts, loop state; checksum verified;
 *  - a corrupt file fails with a message naming it; a model with other frozen weights is refused;
 *  - a crash mid-write (hook throwing before the rename) and a child process killed with SIGKILL
 *    while rewriting the checkpoint in a loop both leave a checkpoint that loads and verifies;
 *  - the PyTorch-style state_dict export has the reference key names and loads strictly.
 */
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { noGrad } from '../../src/autograd/tape.js';
import { writeFileAtomic } from '../../src/io/atomic.js';
import { decodeEntry, parseSafetensors } from '../../src/io/safetensors.js';
import { SamLST } from '../../src/nn/sam_lst.js';
import { AdamW, SAM_LST_ADAMW } from '../../src/optim/adamw.js';
import type { HostTensor } from '../../src/tensor/host.js';
import { tidy } from '../../src/tensor/scope.js';
import {
  checkpointBytes,
  readCheckpoint,
  restoreCheckpoint,
  saveCheckpoint,
  stateDictBytes,
  type LoopState,
} from '../../src/train/checkpoint.js';
import { trainStep } from '../../src/train/loop.js';
import { closeTestGpus, testDir, testGpu } from '../helpers.js';
import { tempDir, tinyModel, tinyStepSetup, tinyTrainConfig } from './util.js';

let shared: Awaited<ReturnType<typeof trainedModel>>;
beforeAll(async () => {
  shared = await trainedModel();
});
afterAll(() => {
  shared.opt.dispose();
  shared.model.dispose();
  closeTestGpus();
});

const root = join(testDir, '..');

const state: LoopState = {
  step: 2,
  epoch: 0,
  batchInEpoch: 2,
  perm: [3, 1, 0, 2],
  orderRng: 11,
  augRng: 22,
  finished: false,
};

async function trainedModel(seed = 3) {
  const gpu = await testGpu();
  const { model, opt, image, labels } = tinyStepSetup(gpu, seed, 97);
  for (let s = 0; s < 2; s++) {
    const emb = tidy(() => noGrad(() => model.encode(image)));
    await trainStep(model, opt, 'lst', image, labels, emb, { lr: 1e-3 });
    emb.dispose();
  }
  image.dispose();
  labels.dispose();
  return { gpu, model, opt };
}

function meta(out: string) {
  return {
    config: tinyTrainConfig(out),
    state,
    schedule: { baseLr: 1e-3, warmupPeriod: 2, warmup: true, maxIterations: 9, power: 0.9 },
    dataset: { layout: 'phantom', trainSize: 8, trainIds: 'x' },
    frozenHash: '',
  };
}

test('round trip: parameters, BN buffers, AdamW state and loop state', async () => {
  const { gpu, model, opt } = shared;
  const dir = tempDir('ckpt');
  const path = join(dir, 'checkpoint.safetensors');
  const { frozenHash } = await import('../../src/train/checkpoint.js');
  const m = { ...meta(dir), frozenHash: await frozenHash(model) };
  await saveCheckpoint(path, model, opt, m);
  const ck = readCheckpoint(path);
  expect(ck.meta.state).toEqual(state);
  expect(ck.meta.config.batchSize).toBe(3);
  expect(ck.model.get('sam.alpha')).toBeDefined();
  expect(ck.model.get('CNN_encoder.bn1.num_batches_tracked')!.data[0]).toBe(2);
  expect(ck.model.has('sam.image_encoder.patch_embed.proj.weight')).toBe(false); // frozen: not stored
  expect(Object.keys(ck.optim.params).length).toBeGreaterThan(10);
  expect(Object.values(ck.optim.params).every((p) => p.step === 2)).toBe(true);

  // A fresh model of the same seed, restored, equals the trained one in every tensor.
  const fresh = new SamLST(gpu, tinyModel(), { seed: 3 });
  const opt2 = new AdamW(
    fresh.trainableParameters().map(([name, tensor]) => ({ name, tensor })),
    SAM_LST_ADAMW,
  );
  await restoreCheckpoint(fresh, opt2, ck);
  const a = model.stateDict();
  for (const [k, t] of fresh.stateDict()) expect(await t.read(), k).toEqual(await a.get(k)!.read());
  expect(fresh.CNN_encoder.bn1.numBatchesTracked).toBe(2);
  const s1 = await opt.exportState();
  const s2 = await opt2.exportState();
  for (const [n, p] of Object.entries(s1.params)) {
    expect(s2.params[n]!.step).toBe(p.step);
    expect(s2.params[n]!.m.data).toEqual(p.m.data);
    expect(s2.params[n]!.v.data).toEqual(p.v.data);
  }
  // Other frozen weights (another seed) are refused with a clear message.
  const other = new SamLST(gpu, tinyModel(), { seed: 4 });
  const opt3 = new AdamW(other.trainableParameters().map(([name, tensor]) => ({ name, tensor })));
  await expect(restoreCheckpoint(other, opt3, ck)).rejects.toThrow(/frozen weights differ/);
  for (const x of [opt2, opt3, fresh, other]) x.dispose();
});

test('a corrupt checkpoint fails naming the file', async () => {
  const { model, opt } = shared;
  const dir = tempDir('ckpt-bad');
  const path = join(dir, 'checkpoint.safetensors');
  await saveCheckpoint(path, model, opt, meta(dir));
  const b = Buffer.from(readFileSync(path));
  b[b.length - 3]! ^= 4;
  writeFileSync(path, b);
  expect(() => readCheckpoint(path)).toThrow(new RegExp(`${path}: checksum mismatch`));
  writeFileSync(path, b.subarray(0, 100));
  expect(() => readCheckpoint(path)).toThrow(/not a readable checkpoint/);
  // An edit inside the meta JSON that keeps it valid JSON (the step count) is caught too.
  await saveCheckpoint(path, model, opt, meta(dir));
  const text = Buffer.from(readFileSync(path)).toString('latin1');
  const at = text.indexOf('\\"step\\":');
  expect(at).toBeGreaterThan(0);
  const digit = at + '\\"step\\":'.length;
  const edited = text.slice(0, digit) + (text[digit] === '9' ? '8' : '9') + text.slice(digit + 1);
  writeFileSync(path, Buffer.from(edited, 'latin1'));
  expect(() => readCheckpoint(path)).toThrow(new RegExp(`${path}: metadata checksum mismatch`));
});

test('crash before the rename leaves the previous checkpoint intact', async () => {
  const { model, opt } = shared;
  const dir = tempDir('ckpt-crash');
  const path = join(dir, 'checkpoint.safetensors');
  await saveCheckpoint(path, model, opt, meta(dir));
  const before = readFileSync(path);
  await expect(
    saveCheckpoint(
      path,
      model,
      opt,
      { ...meta(dir), state: { ...state, step: 3 } },
      {
        beforeRename: () => {
          throw new Error('simulated crash');
        },
      },
    ),
  ).rejects.toThrow(/simulated crash/);
  expect(readFileSync(path).equals(before)).toBe(true);
  expect(readCheckpoint(path).meta.state.step).toBe(2);
  expect(readdirSync(dir)).toEqual(['checkpoint.safetensors']); // no temporary left
});

test('SIGKILL while rewriting the checkpoint in a loop: what is on disk always verifies', async () => {
  const { model, opt } = shared;
  const dir = tempDir('ckpt-kill');
  const target = join(dir, 'checkpoint.safetensors');
  // Two valid checkpoints, padded to ~8 MB so a write takes a while.
  const pad = (step: number) => ({
    ...meta(dir),
    state: { ...state, step },
    config: { ...tinyTrainConfig(dir), data: 'x'.repeat(4e6) },
  });
  const A = await checkpointBytes(model, opt, pad(10));
  const B = await checkpointBytes(model, opt, pad(20));
  writeFileSync(join(dir, 'A.bin'), A);
  writeFileSync(join(dir, 'B.bin'), B);
  writeFileAtomic(target, A);
  const script = join(dir, 'writer.mts');
  writeFileSync(
    script,
    `import { readFileSync } from 'node:fs';
import { writeFileAtomic } from ${JSON.stringify(join(root, 'src', 'io', 'atomic.ts'))};
const a = readFileSync(${JSON.stringify(join(dir, 'A.bin'))});
const b = readFileSync(${JSON.stringify(join(dir, 'B.bin'))});
let i = 0;
process.stdout.write('ready\\n');
for (;;) writeFileAtomic(${JSON.stringify(target)}, i++ % 2 ? a : b);
`,
  );
  for (let round = 0; round < 3; round++) {
    // node itself with tsx's loader (not the tsx wrapper, which would leave its node child running),
    // in its own process group, killed as a group.
    const loader = pathToFileURL(join(root, 'node_modules', 'tsx', 'dist', 'loader.mjs')).href;
    const child = spawn(process.execPath, ['--import', loader, script], {
      stdio: ['ignore', 'pipe', 'inherit'],
      detached: true,
    });
    const exited = new Promise((r) => child.once('exit', r));
    await new Promise<void>((res) => child.stdout.once('data', () => res()));
    await new Promise((r) => setTimeout(r, 150 + 170 * round));
    process.kill(-child.pid!, 'SIGKILL');
    await exited;
    const ck = readCheckpoint(target); // verifies the checksum
    expect([10, 20]).toContain(ck.meta.state.step);
  }
  // The killed writer may leave a temporary file behind; it never replaces the checkpoint.
  const leftovers = readdirSync(dir).filter((f) => f.includes('.tmp-'));
  expect(leftovers.every((f) => f.startsWith('.checkpoint.safetensors.tmp-'))).toBe(true);
  expect(existsSync(target)).toBe(true);
});

test('state_dict export: reference key names, full model, loads strictly into SamLST', async () => {
  const { gpu, model } = shared;
  const bytes = await stateDictBytes(model);
  const st = parseSafetensors(bytes);
  const keys = [...st.tensors.keys()];
  expect(keys.length).toBe(model.stateDict().size);
  expect(keys.every((k) => k.startsWith('sam.') || k.startsWith('CNN_encoder.'))).toBe(true);
  expect(keys).toContain('sam.image_encoder.blocks.0.attn.qkv.weight');
  expect(keys).toContain('CNN_encoder.layer3.1.bn2.running_var');
  const map = new Map<string, HostTensor>();
  for (const [k, e] of st.tensors) {
    const data = decodeEntry(e, k);
    map.set(k, { shape: e.shape, dtype: data instanceof Int32Array ? 'i32' : 'f32', data });
  }
  const loaded = SamLST.fromCheckpoint(gpu, tinyModel(), map, 'export');
  const a = model.stateDict();
  for (const [k, t] of loaded.stateDict()) expect(await t.read(), k).toEqual(await a.get(k)!.read());
  loaded.dispose();
});
