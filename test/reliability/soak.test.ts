/**
 * Long runs: 1,000 steps of the real training loop (src/train/loop.ts) on the tiny configuration
 * of test/reliability/soak_run.ts (input 64, batch 2: every kernel of the training step, the
 * encoder-embedding cache with memory evictions and disk reads, a checkpoint every 4 steps), sampled
 * every 10 steps. Asserted (soakViolations; bounds and their reasoning in soak_run.ts BOUNDS):
 *  - every loss finite, and the loss goes down (the run really trains);
 *  - from step 50 on, pool live bytes and live buffers exactly equal, no GPU buffer created and
 *    the free lists unchanged; pipelines unchanged from step 1 on; uniform buffers unchanged (the
 *    per-step AdamW scalars use reused volatile buffers); open file descriptors flat;
 *  - after a full GC, the V8 heap grows less than 16 KiB/step and live ArrayBuffers less than
 *    8 KiB/step; RSS (once the bounded uniform-buffer cache is full) less than 96 KiB/step (least
 *    squares) and never more than 160 MiB above its value then;
 *  - the encoder ran at most once per distinct (slice, augmentation), and the final checkpoint is
 *    at step 1000.
 * The figures line is printed. Measured on the 2-core lavapipe machine: 0.14 s per step idle
 * (145 s for the file), 0.24 s with the cores shared (245 s).
 * For longer runs: npx tsx bench/soak.ts --steps 5000.
 */
import { afterAll, expect, test } from 'vitest';
import { closeTestGpus, testGpu } from '../helpers.js';
import {
  runSoak,
  soakFigures,
  soakLine,
  soakViolations,
  type SoakResult,
  type SoakSample,
} from './soak_run.js';

afterAll(closeTestGpus);

const STEPS = 1000;

test(`${STEPS} training steps: pool, buffers and pipelines flat; RSS and heap bounded; loss finite`, async () => {
  const gpu = await testGpu();
  const r = await runSoak(gpu, { steps: STEPS, batchSize: 2, sampleEvery: 10, warmup: 50 });
  const f = soakFigures(r);
  console.log(soakLine(f));
  expect(r.samples.length).toBeGreaterThanOrEqual(STEPS / 10);
  expect(soakViolations(r)).toEqual([]);
});

test('the soak checks trip on the leaks they are sized for (synthetic samples)', () => {
  const KiB = 1024;
  const steps = 1000;
  const base = (step: number): SoakSample => ({
    step,
    t: step * 0.14,
    liveBytes: 2_799_872,
    liveBuffers: 484,
    freeBuffers: 217,
    freeBytes: 3_240_960,
    created: 701,
    pipelines: 51,
    pipelinesCreated: 51,
    uniformBuffers: Math.min(937, 900 + 11 * step),
    fds: 22,
    // deterministic wobble of +-20 MiB, like the measured RSS
    rss: 380 * 2 ** 20 + Math.sin(step * 0.7) * 20 * 2 ** 20,
    heap: 24 * 2 ** 20 + step * 1.5 * KiB,
    arrayBuffers: 0.6 * 2 ** 20,
  });
  const run = (edit: (s: SoakSample) => SoakSample, losses?: number[]): string[] => {
    const samples = [1, ...Array.from({ length: steps / 10 }, (_, i) => (i + 1) * 10)].map((s) =>
      edit(base(s)),
    );
    const l = losses ?? Array.from({ length: steps }, (_, i) => 1.2 - i / 2000);
    const r = {
      steps,
      batchSize: 2,
      warmup: 50,
      samples,
      losses: l,
      stepSeconds: 140,
      seconds: 143,
      checkpointsWritten: 250,
      train: { cache: { hits: 1680, misses: 322, encoded: 322, encodeSeconds: 1, secondsSaved: 1 } },
      finalCheckpointStep: steps,
    } as unknown as SoakResult;
    return soakViolations(r);
  };
  expect(run((s) => s)).toEqual([]);
  const cases: [string, (s: SoakSample) => SoakSample, RegExp][] = [
    [
      'one pool buffer per step',
      (s) => ({ ...s, liveBuffers: s.liveBuffers + s.step, liveBytes: s.liveBytes + 256 * s.step }),
      /pool .* buffers, was/,
    ],
    ['a GPU buffer created per step', (s) => ({ ...s, created: s.created + s.step }), /pool created/],
    [
      'a pipeline after step 1',
      (s) => ({ ...s, pipelinesCreated: s.pipelinesCreated + (s.step > 500 ? 1 : 0) }),
      /pipelines created/,
    ],
    [
      'a uniform buffer per step (per-step values in the content cache)',
      (s) => ({ ...s, uniformBuffers: 900 + 14 * s.step }),
      /uniform buffers/,
    ],
    ['an fd per checkpoint', (s) => ({ ...s, fds: s.fds + Math.floor(s.step / 4) }), /open file descriptors/],
    [
      'the host input batch per step (96 KiB)',
      (s) => ({ ...s, arrayBuffers: s.arrayBuffers + 96 * KiB * s.step }),
      /ArrayBuffers grow/,
    ],
    ['a JS object of 96 KiB per step', (s) => ({ ...s, heap: s.heap + 96 * KiB * s.step }), /heap grows/],
    ['a 288 KiB native buffer per step', (s) => ({ ...s, rss: s.rss + 288 * KiB * s.step }), /RSS grows/],
  ];
  for (const [what, edit, msg] of cases) expect(run(edit).join('\n'), what).toMatch(msg);
  const nan = Array.from({ length: steps }, (_, i) => (i === 700 ? NaN : 1.2 - i / 2000));
  expect(run((s) => s, nan).join('\n')).toMatch(/loss NaN at step 701/);
  expect(
    run(
      (s) => s,
      Array.from({ length: steps }, () => 1),
    ).join('\n'),
  ).toMatch(/did not go down/);
});
