/**
 * Out of memory during training (tiny phantom configuration: batch 3, input 64; its largest tensor
 * at batch 3 is 432 KiB, its largest parameter 144 KiB):
 *  - over the adapter's maxBufferSize (a Gpu whose profile says 300 000 bytes): resuming the step-3
 *    checkpoint stops at step 4 with a TrainOutOfMemoryError (a GpuOutOfMemoryError) naming the
 *    tensor, its size, the limit, --batch-size and --img-size with their values, the step and the
 *    intact checkpoint, which stays byte for byte; a fresh run says no checkpoint exists yet; with
 *    --batch-size 1, as the message suggests, the run trains;
 *  - an allocation the device refuses (Gpu.injectFault out-of-memory, as an out-of-memory error
 *    scope reports it) at step 5: the same kind of message, with the device-memory wording; the
 *    step-3 checkpoint is kept, and --resume from it ends bit-identical to a straight run;
 *  - a binding over maxStorageBufferBindingSize (16 KiB) that a kernel does not split: a
 *    TrainOutOfMemoryError naming the binding, its size and the limit, not a crash.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { Gpu } from '../../src/gpu/device.js';
import { GpuOutOfMemoryError } from '../../src/gpu/errors.js';
import { readCheckpoint } from '../../src/train/checkpoint.js';
import { CHECKPOINT_FILE, train, TrainOutOfMemoryError } from '../../src/train/loop.js';
import { closeTestGpus, testGpu } from '../helpers.js';
import { sink, tempDir } from '../train/util.js';
import {
  expectSameCheckpoint,
  faultConfig,
  referenceRun,
  stepLosses,
  temporaries,
  TOTAL,
  type Reference,
} from './faults_util.js';

let base: Gpu;
let ref: Reference;
beforeAll(async () => {
  base = await testGpu();
  ref = await referenceRun(base);
}, 60_000);
afterAll(closeTestGpus);

const injected: Record<string, number> = {};
afterAll(() => console.log(`[faults_oom] out-of-memory faults: ${JSON.stringify(injected)}`));

/** An engine on the shared device whose adapter profile has other limits. */
function limited(over: Partial<Gpu['profile']>): Gpu {
  return new Gpu({ device: base.device, profile: { ...base.profile, ...over } });
}

/** A run folder holding the clean run's step-3 checkpoint; returns it read back. */
function folderAtStep3(tag: string) {
  const dir = tempDir(tag);
  mkdirSync(dir, { recursive: true });
  const path = join(dir, CHECKPOINT_FILE);
  writeFileSync(path, ref.bytes.get(3)!);
  writeFileSync(join(dir, 'metrics.jsonl'), readFileSync(join(ref.dir, 'metrics.jsonl')));
  return { dir, path, ck: readCheckpoint(path) };
}

const esc = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

describe('out of memory during training', () => {
  test('a tensor over maxBufferSize: sizes, limit and flags named; the checkpoint stays', async () => {
    const gpu = limited({ maxBufferBytes: 300_000 });
    const { dir, path, ck } = folderAtStep3('oom-limit');
    const err = await train({ ...ck.meta.config, out: dir }, { gpu, out: sink(), resume: ck }).catch(
      (e: unknown) => e,
    );
    injected['over maxBufferSize (resumed run)'] = 1;
    expect(err).toBeInstanceOf(TrainOutOfMemoryError);
    expect(err).toBeInstanceOf(GpuOutOfMemoryError);
    const e = err as TrainOutOfMemoryError;
    expect(e.limitBytes).toBe(300_000);
    expect(e.requestedBytes).toBeGreaterThan(300_000);
    expect(e.what).toMatch(/^tensor \[3, /);
    expect(e.message).toMatch(
      new RegExp(
        `^out of GPU memory: ${esc(e.what)} needs [\\d.]+ KiB but the limit is 293\\.0 KiB \\(the adapter's ` +
          `maxBufferSize\\); reduce --batch-size \\(now 3\\) or --img-size \\(now 64\\), at step 4 of 7 ` +
          `\\(epoch 2, batch 1 of 3\\): training stopped\\. The last checkpoint, ${esc(path)} \\(step 3\\), is ` +
          `intact; --resume ${esc(dir)} keeps the run's batch and image size, so a smaller one needs a new run`,
      ),
    );
    expect(e.stop).toEqual({ step: 4, checkpoint: path, checkpointStep: 3 });
    expect(readFileSync(path).equals(ref.bytes.get(3)!)).toBe(true);
    expect(readCheckpoint(path).meta.state.step).toBe(3);
    expect(temporaries(dir)).toEqual([]);

    // A new run on the same limits: stopped at step 1, no checkpoint yet.
    const fresh = tempDir('oom-fresh');
    await expect(train(faultConfig(fresh), { gpu, out: sink() })).rejects.toThrow(
      /needs [\d.]+ KiB but the limit is 293\.0 KiB .*reduce --batch-size \(now 3\) or --img-size \(now 64\), at step 1 of 7 .*No checkpoint had been saved yet/,
    );
    injected['over maxBufferSize (new run)'] = 1;
    // What the message suggests works: batch 1 fits.
    const small = tempDir('oom-batch1');
    const r = await train(faultConfig(small, { batchSize: 1, maxSteps: 2 }), { gpu, out: sink() });
    expect(r.steps).toBe(2);
    gpu.destroy();
  }, 60_000);

  test('an allocation the device refuses at step 5: named, checkpoint kept, --resume loses nothing', async () => {
    const gpu = limited({});
    const dir = tempDir('oom-refused');
    let afterEpoch1: Buffer | null = null;
    const err = await train(faultConfig(dir), {
      gpu,
      out: sink(),
      hooks: {
        afterStep: (s) => {
          if (s === 3) afterEpoch1 = readFileSync(join(dir, CHECKPOINT_FILE));
          if (s === 4) {
            gpu.trim(); // step 5 must create buffers again
            gpu.injectFault({ kind: 'out-of-memory', on: 'alloc', after: 2 });
          }
        },
      },
    }).catch((e: unknown) => e);
    injected['device refused an allocation (injected)'] = 1;
    expect(err).toBeInstanceOf(TrainOutOfMemoryError);
    const e = err as TrainOutOfMemoryError;
    expect(e.limitName).toBe('device memory');
    const path = join(dir, CHECKPOINT_FILE);
    expect(e.message).toMatch(
      new RegExp(
        `^out of GPU memory: the device could not allocate [\\d.]+ (B|KiB|MiB) for ${esc(e.what)}, within the ` +
          `adapter's per-buffer limit of [\\d.]+ (MiB|GiB): its memory is exhausted \\(the engine held [\\d.]+ ` +
          `(KiB|MiB)\\) \\(injected by Gpu\\.injectFault\\); reduce --batch-size \\(now 3\\) or --img-size ` +
          `\\(now 64\\), at step 5 of 7 \\(epoch 2, batch 2 of 3\\): training stopped\\. The last checkpoint, ` +
          `${esc(path)} \\(step 3\\), is intact`,
      ),
    );
    expect(e.what).toMatch(/^(tensor \[[\d, ]*\]|a readback)$/);
    expect(gpu.lost).toBe(false);
    expect(readFileSync(path).equals(afterEpoch1!)).toBe(true);
    const ck = readCheckpoint(path);
    expectSameCheckpoint(readCheckpoint(join(folderAtStep3('oom-ref3').dir, CHECKPOINT_FILE)), ck);
    gpu.destroy();

    const r = await train(ck.meta.config, { gpu: base, out: sink(), resume: ck });
    expect(r.steps).toBe(TOTAL);
    expectSameCheckpoint(ref.final, readCheckpoint(r.checkpoint));
    expect(stepLosses(dir)).toEqual(ref.losses);
  }, 60_000);

  test('a binding over maxStorageBufferBindingSize that is not split: named, not a crash', async () => {
    const gpu = limited({ maxStorageBindingBytes: 16384 });
    const dir = tempDir('oom-binding');
    const err = await train(faultConfig(dir, { maxSteps: 1 }), { gpu, out: sink() }).then(
      () => null,
      (e: unknown) => e,
    );
    injected['binding over maxStorageBufferBindingSize'] = 1;
    // Kernels split oversize bindings where they can; one that cannot says so with the sizes.
    if (err !== null) {
      expect(err).toBeInstanceOf(TrainOutOfMemoryError);
      expect((err as Error).message).toMatch(
        /^out of GPU memory: kernel '[\w.]+': binding '\w+' needs [\d.]+ KiB but the limit is 16\.0 KiB \(the adapter's maxStorageBufferBindingSize\): .*reduce --batch-size \(now 3\) or --img-size \(now 64\), at step 1 of 1/,
      );
    }
    gpu.destroy();
  }, 60_000);
});
