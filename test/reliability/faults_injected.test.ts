/**
 * Device loss mid-training injected through the test seam Gpu.injectFault (the shared suite in
 * faults_lost.ts): at a dispatch and at a submit of step 5, and at a readback while the checkpoint
 * of step 6 is being serialised; plus a loss before the first checkpoint (the message says there is
 * none and none is written), the seam itself at the Gpu level (a lost readback / submit, a refused
 * allocation reported at the next sync point) and its refusal of fault kinds it cannot model.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { Gpu } from '../../src/gpu/device.js';
import { DeviceLostError, GpuOutOfMemoryError } from '../../src/gpu/errors.js';
import { runUnary } from '../../src/kernels/elementwise.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { CHECKPOINT_FILE, train, TrainDeviceLostError } from '../../src/train/loop.js';
import { sink, tempDir } from '../train/util.js';
import { describeDeviceLoss, type LostCase } from './faults_lost.js';
import { faultConfig, temporaries } from './faults_util.js';

const cases: LostCase[] = [
  {
    name: 'injected loss at the 301st dispatch of step 5',
    kind: 'injected on dispatch',
    hooks: (gpu) => ({
      afterStep: (s) => {
        if (s === 4) gpu.injectFault({ kind: 'device-lost', on: 'dispatch', after: 300 });
      },
    }),
    reason: 'injected',
    where: /at step 5 of 7 \(epoch 2, batch 2 of 3\)/,
    step: 5,
  },
  {
    name: 'injected loss at the second submit of step 5',
    kind: 'injected on submit',
    hooks: (gpu) => ({
      afterStep: (s) => {
        if (s === 4) gpu.injectFault({ kind: 'device-lost', on: 'submit', after: 1 });
      },
    }),
    reason: 'injected',
    where: /at step 5 of 7 \(epoch 2, batch 2 of 3\)/,
    step: 5,
  },
  {
    name: "injected loss at the 21st readback of step 6's checkpoint",
    kind: 'injected on readback (save)',
    hooks: (gpu) => ({
      beforeSave: (s) => {
        if (s === 6) gpu.injectFault({ kind: 'device-lost', on: 'read', after: 20 });
      },
    }),
    reason: 'injected',
    where: /while saving the checkpoint of step 6/,
    step: 6,
  },
];

const suite = describeDeviceLoss(
  'injected device loss mid-training, then --resume',
  cases,
  'faults_injected',
);

describe('injected device loss: edges', () => {
  test('a loss before the first checkpoint says so and leaves none', async () => {
    const base = suite.base();
    const gpu = new Gpu({ device: base.device, profile: base.profile });
    const dir = tempDir('fault-early');
    const run = train(faultConfig(dir), {
      gpu,
      out: sink(),
      hooks: {
        afterStep: (s) => {
          if (s === 1) gpu.injectFault({ kind: 'device-lost', on: 'read', after: 0 });
        },
      },
    });
    await expect(run).rejects.toThrow(TrainDeviceLostError);
    await expect(run).rejects.toThrow(
      /reason: injected.*at step 2 of 7 \(epoch 1, batch 2 of 3\): training stopped\. Nothing was written from the lost device; no checkpoint had been saved yet/,
    );
    suite.injected['injected on readback (before any checkpoint)'] = 1;
    expect(existsSync(join(dir, CHECKPOINT_FILE))).toBe(false);
    expect(temporaries(dir)).toEqual([]);
    gpu.destroy();
  });

  test('the seam at the Gpu level: each kind fails where and as it says', async () => {
    const base = suite.base();
    const fresh = () => new Gpu({ device: base.device, profile: base.profile });
    // device-lost on read: that readback rejects, and so does every later call.
    let gpu = fresh();
    const x = Tensor.fromData(gpu, [1, -2, 3], [3]);
    expect(Array.from(await x.read())).toEqual([1, -2, 3]);
    gpu.injectFault({ kind: 'device-lost', on: 'read', after: 1 });
    expect(Array.from(await x.read())).toEqual([1, -2, 3]); // the first read passes
    await expect(x.read()).rejects.toThrow(/device lost \(reason: injected\): .*at a readback/);
    expect(gpu.lost).toBe(true);
    expect(() => Tensor.empty(gpu, [2])).toThrow(DeviceLostError);
    gpu.destroy();
    // device-lost on submit: the submit is dropped silently, the next sync point throws.
    gpu = fresh();
    const y = Tensor.fromData(gpu, [4, 5], [2]);
    gpu.injectFault({ kind: 'device-lost', on: 'submit' });
    const z = Tensor.empty(gpu, [2]);
    runUnary('relu', y, z);
    gpu.flush();
    expect(gpu.lost).toBe(true);
    await expect(z.read()).rejects.toThrow(DeviceLostError);
    gpu.destroy();
    // out-of-memory on alloc: the third new buffer is refused, reported at the next sync point.
    gpu = fresh();
    gpu.injectFault({ kind: 'out-of-memory', on: 'alloc', after: 2 });
    const ts = [Tensor.empty(gpu, [10]), Tensor.empty(gpu, [1000]), Tensor.empty(gpu, [64, 64])];
    const err = await gpu.sync().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(GpuOutOfMemoryError);
    expect((err as Error).message).toMatch(
      /^out of GPU memory: the device could not allocate 16\.0 KiB for tensor \[64, 64\], within the adapter's per-buffer limit of .*: its memory is exhausted \(the engine held [\d.]+ KiB\) \(injected by Gpu\.injectFault\); reduce --batch-size or --img-size$/,
    );
    await expect(gpu.sync()).resolves.toBeUndefined(); // reported once; the engine goes on
    for (const t of ts) t.dispose();
    gpu.destroy();
    suite.injected['seam unit checks (read, submit, alloc)'] = 3;
  });

  test('the seam refuses combinations it cannot model', () => {
    const gpu = suite.base();
    expect(() => gpu.injectFault({ kind: 'out-of-memory', on: 'read' } as never)).toThrow(
      /out-of-memory cannot be injected on 'read'/,
    );
    expect(() => gpu.injectFault({ kind: 'device-lost', on: 'alloc' } as never)).toThrow(
      /device-lost cannot be injected on 'alloc'/,
    );
    gpu.injectFault(null);
  });
});
