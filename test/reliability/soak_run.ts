/**
 * The soak run shared by test/reliability/soak.test.ts (1,000 steps in CI) and bench/soak.ts
 * (longer local runs): the real training loop (src/train/loop.ts `train`) on the tiny model of
 * test/train/util.ts (input 64, ViT dim 32 x 2 blocks, ResNet width 8, decoder dim 32) over the
 * built-in phantom (8 training slices of 64x64, batch 2, so an epoch is 4 steps and a checkpoint is
 * written every 4 steps), with the paper's augmentation, AdamW and the warm-up + poly schedule, and
 * the encoder-embedding cache on disk behind a 0.25 MiB memory LRU (about 120 of the up to 392
 * distinct (slice, variant) embeddings fit, so the run evicts, re-reads entries from disk and
 * re-encodes nothing). Every step is the full training step: frozen SAM embedding (cache),
 * ResNet18 side network, gate, prompt encoder, two-way transformer, output upscaling, CE + Dice,
 * backward, loss read back and checked, AdamW.
 *
 * After each step the loop's `afterStep` hook samples (every `sampleEvery` steps, and at step 1)
 * the pool (live bytes / buffers, free buffers, buffers ever created), the pipeline count, the
 * uniform-buffer cache, open file descriptors, process RSS and the V8 heap after a full GC.
 * `soakViolations` turns the samples into the assertions listed there.
 */
import { readdirSync } from 'node:fs';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import type { Gpu } from '../../src/gpu/device.js';
import { readCheckpoint } from '../../src/train/checkpoint.js';
import { train, type TrainResult } from '../../src/train/loop.js';
import { sink, tempDir, tinyModel, tinyTrainConfig } from '../train/util.js';

setFlagsFromString('--expose_gc');
const gc = runInNewContext('gc') as () => void;

/** The Gpu's uniform-buffer cache is an LRU of at most this many buffers (src/gpu/device.ts uniformCap). */
export const UNIFORM_CACHE_CAP = 4096;
/** Training slices x the 49 augmentation variants: the most distinct embeddings the run can need. */
export const MAX_DISTINCT_EMBEDDINGS = 8 * 49;

export interface SoakSample {
  step: number;
  /** Seconds since the end of the first step. */
  t: number;
  liveBytes: number;
  liveBuffers: number;
  freeBuffers: number;
  freeBytes: number;
  /** createBuffer calls the pool made so far. */
  created: number;
  pipelines: number;
  pipelinesCreated: number;
  uniformBuffers: number;
  /** Open file descriptors (-1 where /proc/self/fd does not exist). */
  fds: number;
  rss: number;
  /** V8 heap used after a full GC. */
  heap: number;
  /** Bytes of live ArrayBuffers (typed arrays, Node Buffers) after a full GC. */
  arrayBuffers: number;
}

export interface SoakOptions {
  steps: number;
  batchSize?: number;
  /** Network input size (default 64, the tiny model's). */
  imgSize?: number;
  sampleEvery?: number;
  /** Steps before the pool / file-descriptor counts must be flat (default 50). */
  warmup?: number;
  onSample?: (s: SoakSample) => void;
}

export interface SoakResult {
  steps: number;
  batchSize: number;
  warmup: number;
  samples: SoakSample[];
  losses: number[];
  /** Wall seconds of steps 2..N (end of the first step to the end of the last; the first step
   * compiles the pipelines). */
  stepSeconds: number;
  /** Wall seconds of the whole `train` call (setup, final validation and report included). */
  seconds: number;
  checkpointsWritten: number;
  train: TrainResult;
  finalCheckpointStep: number;
}

function openFds(): number {
  try {
    return readdirSync('/proc/self/fd').length;
  } catch {
    return -1;
  }
}

export async function runSoak(gpu: Gpu, o: SoakOptions): Promise<SoakResult> {
  const B = o.batchSize ?? 2;
  const every = o.sampleEvery ?? 10;
  const warmup = o.warmup ?? 50;
  const ipe = Math.ceil(8 / B);
  if (o.steps % ipe !== 0) throw new Error(`soak: steps must be a multiple of ${ipe} (whole epochs)`);
  const samples: SoakSample[] = [];
  const losses: number[] = [];
  let t0 = 0;
  let tLast = 0;
  let checkpoints = 0;
  const sample = (step: number) => {
    gc();
    const st = gpu.stats();
    const m = process.memoryUsage();
    const s: SoakSample = {
      step,
      t: (performance.now() - t0) / 1000,
      liveBytes: st.pool.liveBytes,
      liveBuffers: st.pool.liveBuffers,
      freeBuffers: st.pool.freeBuffers,
      freeBytes: st.pool.freeBytes,
      created: st.pool.created,
      pipelines: st.pipelines,
      pipelinesCreated: st.pipelinesCreated,
      uniformBuffers: st.uniformBuffers,
      fds: openFds(),
      rss: m.rss,
      heap: m.heapUsed,
      arrayBuffers: m.arrayBuffers,
    };
    samples.push(s);
    o.onSample?.(s);
  };
  const model = tinyModel().toJson();
  delete model.grid;
  const cfg = tinyTrainConfig(tempDir('soak'), {
    model: { ...model, img_size: o.imgSize ?? 64 },
    batchSize: B,
    epochs: o.steps / ipe,
    warmupPeriod: 20,
    phantom: { trainCases: 2, slicesPerCase: 4, size: 64, testCases: 1, testSize: 64, depth: 2 },
    cacheDir: tempDir('soak-cache'),
    cacheMemMb: 0.25,
    overlays: 0,
  });
  const tStart = performance.now();
  const result = await train(cfg, {
    gpu,
    out: sink(),
    hooks: {
      afterStep: (step, l) => {
        const now = performance.now();
        if (step === 1) t0 = now;
        tLast = now;
        losses.push(l.total);
        if (step % ipe === 0) checkpoints++;
        if (step === 1 || step % every === 0 || step === o.steps) sample(step);
      },
    },
  });
  const seconds = (performance.now() - tStart) / 1000;
  const ck = readCheckpoint(result.checkpoint);
  return {
    steps: o.steps,
    batchSize: B,
    warmup,
    samples,
    losses,
    stepSeconds: (tLast - t0) / 1000,
    seconds,
    checkpointsWritten: checkpoints,
    train: result,
    finalCheckpointStep: ck.meta.state.step,
  };
}

/** Least-squares slope of y over x. */
export function slope(xs: readonly number[], ys: readonly number[]): number {
  const n = xs.length;
  const mx = xs.reduce((a, b) => a + b, 0) / n;
  const my = ys.reduce((a, b) => a + b, 0) / n;
  let sxy = 0;
  let sxx = 0;
  for (let i = 0; i < n; i++) {
    sxy += (xs[i]! - mx) * (ys[i]! - my);
    sxx += (xs[i]! - mx) ** 2;
  }
  return sxx ? sxy / sxx : 0;
}

const KiB = 1024;
const MiB = 1024 * 1024;

/**
 * Bounds of the host-memory checks (GPU memory is checked exactly through the pool counters).
 *  - Host JavaScript memory, measured after a full GC, so precise: the V8 heap grows less than
 *    16 KiB/step and live ArrayBuffers less than 8 KiB/step (least squares after warm-up).
 *    Reference leak: the host copy of one input batch (B x 3 x 64 x 64 f32 = 96 KiB at batch 2)
 *    kept per step, 6x and 12x these bounds. Measured: heap 1-3 KiB/step (the loop keeps one
 *    metrics record per step for its end-of-run plots), ArrayBuffers flat.
 *  - Native memory (Dawn, lavapipe's buffer memory, malloc), only visible as RSS, which is noisy
 *    (the allocator's arenas keep growing for a while, more so when the 2 cores are contended):
 *    least-squares slope over the samples after the uniform-buffer cache is full < 96 KiB/step,
 *    and never more than 160 MiB above the value at the start of that window. Reference leak: one
 *    mask-logit activation (B x 9 x 64 x 64 f32 = 288 KiB) per step kept outside the pool, 3x the
 *    slope bound and 202 MiB over the ~720-step window of the 1,000-step test. Measured slopes:
 *    6 KiB/step on an idle machine, 29 KiB/step with the cores shared.
 *  - Open file descriptors: at most 4 more than at warm-up (a leak of one per checkpoint written
 *    or per disk-cache read would add hundreds).
 */
export const BOUNDS = {
  heapSlope: 16 * KiB,
  arrayBufferSlope: 8 * KiB,
  rssSlope: 96 * KiB,
  rssAbove: 160 * MiB,
  fdsAbove: 4,
};

/** Least-squares slope of `key` over the steps of `xs` (0 for fewer than 3 samples). */
function fit(xs: readonly SoakSample[], key: 'rss' | 'heap' | 'arrayBuffers'): number {
  return xs.length > 2
    ? slope(
        xs.map((x) => x.step),
        xs.map((x) => x[key]),
      )
    : 0;
}

export interface SoakFigures {
  steps: number;
  batch: number;
  stepSeconds: number;
  stepsPerSec: number;
  seconds: number;
  checkpoints: number;
  /** First sample at or after warm-up, and the last sample. */
  poolBytes: [number, number];
  buffers: [number, number];
  freeBuffers: [number, number];
  created: [number, number];
  pipelines: [number, number];
  uniformBuffers: [number, number];
  uniformFullAt: number | null;
  fds: [number, number];
  /** RSS at step 1, at warm-up, at the start of the RSS window, at the end, and the maximum. */
  rss: { first: number; warm: number; windowStart: number; windowFrom: number; end: number; max: number };
  rssSlope: number;
  heap: { warm: number; end: number; max: number };
  heapSlope: number;
  arrayBuffers: { warm: number; end: number; max: number };
  arrayBufferSlope: number;
  loss: { first: number; last: number; firstMean: number; lastMean: number; min: number; max: number };
  cache: TrainResult['cache'];
}

export function soakFigures(r: SoakResult): SoakFigures {
  const s = r.samples;
  const warm = s.find((x) => x.step >= r.warmup) ?? s[s.length - 1]!;
  const last = s[s.length - 1]!;
  const full = s.find((x) => x.uniformBuffers >= UNIFORM_CACHE_CAP) ?? null;
  // RSS window: once the (bounded) uniform-buffer cache is full, or after warm-up if it never fills.
  const from = Math.max(r.warmup, full?.step ?? 0);
  const win = s.filter((x) => x.step >= from);
  const post = s.filter((x) => x.step >= r.warmup);
  const mean = (a: number[]) => a.reduce((x, y) => x + y, 0) / a.length;
  const L = r.losses;
  const k = Math.min(50, Math.floor(L.length / 4));
  return {
    steps: r.steps,
    batch: r.batchSize,
    stepSeconds: r.stepSeconds,
    stepsPerSec: (r.steps - 1) / r.stepSeconds,
    seconds: r.seconds,
    checkpoints: r.checkpointsWritten,
    poolBytes: [warm.liveBytes, last.liveBytes],
    buffers: [warm.liveBuffers, last.liveBuffers],
    freeBuffers: [warm.freeBuffers, last.freeBuffers],
    created: [warm.created, last.created],
    pipelines: [s[0]!.pipelines, last.pipelines],
    uniformBuffers: [warm.uniformBuffers, last.uniformBuffers],
    uniformFullAt: full?.step ?? null,
    fds: [warm.fds, last.fds],
    rss: {
      first: s[0]!.rss,
      warm: warm.rss,
      windowStart: win[0]?.rss ?? last.rss,
      windowFrom: win[0]?.step ?? last.step,
      end: last.rss,
      max: Math.max(...s.map((x) => x.rss)),
    },
    rssSlope: fit(win, 'rss'),
    heap: { warm: warm.heap, end: last.heap, max: Math.max(...post.map((x) => x.heap)) },
    heapSlope: fit(post, 'heap'),
    arrayBuffers: {
      warm: warm.arrayBuffers,
      end: last.arrayBuffers,
      max: Math.max(...post.map((x) => x.arrayBuffers)),
    },
    arrayBufferSlope: fit(post, 'arrayBuffers'),
    loss: {
      first: L[0]!,
      last: L[L.length - 1]!,
      firstMean: mean(L.slice(0, k)),
      lastMean: mean(L.slice(-k)),
      min: Math.min(...L),
      max: Math.max(...L),
    },
    cache: r.train.cache,
  };
}

/** Every broken expectation of the run, as text (empty when the run was clean). */
export function soakViolations(r: SoakResult): string[] {
  const out: string[] = [];
  const s = r.samples;
  const f = soakFigures(r);
  const bad = (m: string) => out.push(m);
  if (r.losses.length !== r.steps) bad(`${r.losses.length} losses for ${r.steps} steps`);
  const nonFinite = r.losses.findIndex((l) => !Number.isFinite(l));
  if (nonFinite >= 0) bad(`loss ${r.losses[nonFinite]} at step ${nonFinite + 1}`);
  if (!(f.loss.lastMean < f.loss.firstMean))
    bad(
      `the loss did not go down (mean of the first steps ${f.loss.firstMean}, of the last ${f.loss.lastMean})`,
    );
  if (r.finalCheckpointStep !== r.steps)
    bad(`final checkpoint at step ${r.finalCheckpointStep}, not ${r.steps}`);
  const first = s[0]!;
  for (const x of s) {
    // no pipeline is created after the first step
    if (x.pipelines !== first.pipelines || x.pipelinesCreated !== first.pipelinesCreated)
      bad(`step ${x.step}: ${x.pipelinesCreated} pipelines created (${first.pipelinesCreated} after step 1)`);
    if (x.uniformBuffers > UNIFORM_CACHE_CAP) bad(`step ${x.step}: ${x.uniformBuffers} uniform buffers`);
  }
  const warm = s.find((x) => x.step >= r.warmup)!;
  for (const x of s.filter((y) => y.step >= r.warmup)) {
    // uniform values of a step repeat (per-step scalars use reused volatile buffers)
    if (x.uniformBuffers !== warm.uniformBuffers)
      bad(
        `step ${x.step}: ${x.uniformBuffers} uniform buffers (${warm.uniformBuffers} at step ${warm.step})`,
      );
    // between steps only parameters, their gradients, AdamW moments and BatchNorm buffers are alive
    if (x.liveBytes !== warm.liveBytes || x.liveBuffers !== warm.liveBuffers)
      bad(
        `step ${x.step}: pool ${x.liveBytes} B in ${x.liveBuffers} buffers, ` +
          `was ${warm.liveBytes} B in ${warm.liveBuffers} at step ${warm.step}`,
      );
    // and no GPU buffer is created after warm-up (the free lists serve every request)
    if (x.created !== warm.created || x.freeBuffers !== warm.freeBuffers)
      bad(
        `step ${x.step}: pool created ${x.created} buffers (${x.freeBuffers} free), ` +
          `was ${warm.created} (${warm.freeBuffers} free) at step ${warm.step}`,
      );
    if (x.fds >= 0 && x.fds > warm.fds + BOUNDS.fdsAbove)
      bad(`step ${x.step}: ${x.fds} open file descriptors, ${warm.fds} at step ${warm.step}`);
  }
  if (f.rssSlope > BOUNDS.rssSlope)
    bad(
      `RSS grows ${(f.rssSlope / KiB).toFixed(1)} KiB/step from step ${f.rss.windowFrom} (bound ${BOUNDS.rssSlope / KiB})`,
    );
  if (f.rss.max > f.rss.windowStart + BOUNDS.rssAbove)
    bad(
      `RSS peaked at ${(f.rss.max / MiB).toFixed(1)} MiB, ${(f.rss.windowStart / MiB).toFixed(1)} at step ${f.rss.windowFrom}`,
    );
  if (f.heapSlope > BOUNDS.heapSlope)
    bad(
      `heap grows ${(f.heapSlope / KiB).toFixed(1)} KiB/step after warm-up (bound ${BOUNDS.heapSlope / KiB})`,
    );
  if (f.arrayBufferSlope > BOUNDS.arrayBufferSlope)
    bad(
      `live ArrayBuffers grow ${(f.arrayBufferSlope / KiB).toFixed(1)} KiB/step after warm-up (bound ${BOUNDS.arrayBufferSlope / KiB})`,
    );
  // the encoder ran at most once per distinct (slice, variant) despite the evictions
  if (f.cache.encoded > MAX_DISTINCT_EMBEDDINGS)
    bad(`the encoder ran ${f.cache.encoded} times (at most ${MAX_DISTINCT_EMBEDDINGS} distinct inputs)`);
  if (f.cache.hits === 0) bad('no encoder-cache hits');
  return out;
}

const mib = (b: number) => (b / MiB).toFixed(1);

/** One line of figures for logs. */
export function soakLine(f: SoakFigures): string {
  return (
    `soak: ${f.steps} steps (batch ${f.batch}) in ${f.stepSeconds.toFixed(1)} s (${f.stepsPerSec.toFixed(2)} steps/s; ` +
    `run ${f.seconds.toFixed(1)} s, ${f.checkpoints} checkpoints); pool ${f.poolBytes[0]} -> ${f.poolBytes[1]} B, ` +
    `buffers ${f.buffers[0]} -> ${f.buffers[1]} (free ${f.freeBuffers[0]} -> ${f.freeBuffers[1]}, created ${f.created[0]} -> ${f.created[1]}), ` +
    `pipelines ${f.pipelines[0]} -> ${f.pipelines[1]}, uniform buffers ${f.uniformBuffers[0]} -> ${f.uniformBuffers[1]}` +
    `${f.uniformFullAt ? ` (cap from step ${f.uniformFullAt})` : ''}, fds ${f.fds[0]} -> ${f.fds[1]}; ` +
    `RSS ${mib(f.rss.first)} / warm ${mib(f.rss.warm)} / step ${f.rss.windowFrom} ${mib(f.rss.windowStart)} -> end ${mib(f.rss.end)} ` +
    `(max ${mib(f.rss.max)}) MiB, slope ${(f.rssSlope / KiB).toFixed(2)} KiB/step; heap ${mib(f.heap.warm)} -> ${mib(f.heap.end)} MiB ` +
    `(slope ${(f.heapSlope / KiB).toFixed(2)} KiB/step); ArrayBuffers ${mib(f.arrayBuffers.warm)} -> ${mib(f.arrayBuffers.end)} MiB ` +
    `(slope ${(f.arrayBufferSlope / KiB).toFixed(2)} KiB/step); loss ${f.loss.first.toFixed(4)} -> ${f.loss.last.toFixed(4)} ` +
    `(all finite, range ${f.loss.min.toFixed(4)}..${f.loss.max.toFixed(4)}); encoder cache ${f.cache.hits} hits, ${f.cache.encoded} encodes`
  );
}

/** The figures as a Markdown table. */
export function soakTable(f: SoakFigures): string {
  const rows: [string, string, string][] = [
    ['steps (batch)', `${f.steps} (${f.batch})`, ''],
    ['wall time of the steps', `${f.stepSeconds.toFixed(1)} s`, `${f.stepsPerSec.toFixed(2)} steps/s`],
    [
      'whole run (setup, final validation)',
      `${f.seconds.toFixed(1)} s`,
      `${f.checkpoints} checkpoints written`,
    ],
    ['pool live bytes', `${f.poolBytes[0]}`, `${f.poolBytes[1]}`],
    ['pool live buffers', `${f.buffers[0]}`, `${f.buffers[1]}`],
    ['pool free buffers', `${f.freeBuffers[0]}`, `${f.freeBuffers[1]}`],
    ['GPU buffers created by the pool', `${f.created[0]}`, `${f.created[1]}`],
    ['pipelines', `${f.pipelines[0]}`, `${f.pipelines[1]}`],
    [
      'uniform buffers (LRU cap 4096)',
      `${f.uniformBuffers[0]}`,
      `${f.uniformBuffers[1]}${f.uniformFullAt ? ` (full from step ${f.uniformFullAt})` : ''}`,
    ],
    ['open file descriptors', `${f.fds[0]}`, `${f.fds[1]}`],
    [
      'RSS (MiB)',
      `step 1 ${mib(f.rss.first)}, warm ${mib(f.rss.warm)}, step ${f.rss.windowFrom} ${mib(f.rss.windowStart)}`,
      `${mib(f.rss.end)} (max ${mib(f.rss.max)}; slope ${(f.rssSlope / KiB).toFixed(2)} KiB/step)`,
    ],
    [
      'V8 heap after GC (MiB)',
      mib(f.heap.warm),
      `${mib(f.heap.end)} (max ${mib(f.heap.max)}; slope ${(f.heapSlope / KiB).toFixed(2)} KiB/step)`,
    ],
    [
      'live ArrayBuffers after GC (MiB)',
      mib(f.arrayBuffers.warm),
      `${mib(f.arrayBuffers.end)} (max ${mib(f.arrayBuffers.max)}; slope ${(f.arrayBufferSlope / KiB).toFixed(2)} KiB/step)`,
    ],
    [
      'loss',
      `${f.loss.first.toFixed(4)} (mean of first ${Math.min(50, Math.floor(f.steps / 4))}: ${f.loss.firstMean.toFixed(4)})`,
      `${f.loss.last.toFixed(4)} (mean of last: ${f.loss.lastMean.toFixed(4)}); all finite`,
    ],
    ['encoder cache', `${f.cache.encoded} encodes`, `${f.cache.hits} hits`],
  ];
  return [
    '| figure | start (after warm-up) | end |',
    '| --- | --- | --- |',
    ...rows.map((r) => `| ${r.join(' | ')} |`),
  ].join('\n');
}
