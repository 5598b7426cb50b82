/**
 * Benchmark harness: each case sets up the same work for our kernels and for
 * @tensorflow/tfjs-backend-webgpu on the same GPUDevice, in one process. Timing is tinybench's
 * median over runs after warm-up, synced with queue.onSubmittedWorkDone (no readback) after each
 * run, or after each 8 runs for cases under 20 ms (runsPerSync; the same for both sides), in
 * alternating rounds of ours and tfjs (see runCase). The first run (pipeline creation included)
 * is reported apart as compile time.
 */
import type * as tfjs from '@tensorflow/tfjs-core';
import { Bench } from 'tinybench';
import type { Gpu } from '../src/gpu/device.js';

export interface Runner {
  /** Records/launches one run of the work. */
  run(): void;
  /** Waits until the device has finished everything launched. */
  sync(): Promise<void>;
  dispose(): void;
}

export type Tf = typeof tfjs;

export interface BenchCase {
  kernel: string;
  shape: string;
  /** Floating-point operations per run (2 per multiply-add). */
  flops: number;
  /** Bytes moved per run at minimum (inputs read once + outputs written once), for GB/s. */
  bytes?: number;
  ours(gpu: Gpu): Runner;
  tfjs?(tf: Tf, device: GPUDevice): Runner;
}

export interface BenchRecord {
  kernel: string;
  shape: string;
  ours_gflops: number;
  tfjs_gflops: number | null;
  ratio: number | null;
  ours_ms: number;
  tfjs_ms: number | null;
  ours_first_ms: number;
  tfjs_first_ms: number | null;
  ours_gbps?: number;
}

export interface TimeOptions {
  /** Minimum measured time per task and round in ms. */
  time: number;
  iterations: number;
  /** Alternating rounds (ours, then tfjs) whose per-round ratios give the reported ratio. */
  rounds: number;
}

/** First run of a runner (pipeline creation included), in ms. */
async function firstRun(r: Runner): Promise<number> {
  const t0 = performance.now();
  r.run();
  await r.sync();
  return performance.now() - t0;
}

/**
 * Runs per sync for a case: short cases queue several runs before each sync, so the wait's own
 * latency (a few tenths of a millisecond of polling) is paid once per batch, on both sides alike.
 */
export function runsPerSync(firstMs: number): number {
  return firstMs < 20 ? 8 : 1;
}

/** tinybench's median latency of one run, from rounds of `per` runs per sync. */
async function sampleRound(
  name: string,
  r: Runner,
  o: TimeOptions,
  slow: boolean,
  per: number,
): Promise<number> {
  // Slow cases (tfjs weight gradients at batch 24 take minutes per run): two runs, no warm-up
  // beyond the first run already made.
  const bench = new Bench({
    time: slow ? 0 : o.time,
    iterations: slow ? 2 : o.iterations,
    warmupIterations: slow ? 0 : 1,
    warmupTime: 0,
    warmup: !slow,
  });
  bench.add(name, async () => {
    for (let i = 0; i < per; i++) r.run();
    await r.sync();
  });
  const [task] = await bench.run();
  const res = task?.result as { latency?: { p50?: number } } | undefined;
  const median = res?.latency?.p50;
  if (median === undefined) throw new Error(`benchmark '${name}' produced no result`);
  return median / per;
}

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/**
 * Times our runner and tfjs's in alternating rounds (ours, tfjs, ours, tfjs, ...), so load on a
 * shared machine hits both sides alike: each side's time is the median of its round medians, the
 * ratio the median of the per-round ratios. Both runners stay set up for the whole case.
 */
export async function runCase(
  c: BenchCase,
  gpu: Gpu,
  tf: Tf | null,
  tfDevice: GPUDevice | null,
  o: TimeOptions,
): Promise<BenchRecord> {
  const ours = c.ours(gpu);
  const theirs = tf && tfDevice && c.tfjs ? c.tfjs(tf, tfDevice) : null;
  try {
    const oursFirst = await firstRun(ours);
    const tfFirst = theirs ? await firstRun(theirs) : null;
    const slow = oursFirst > 5000 || (tfFirst ?? 0) > 5000;
    const rounds = slow ? 1 : Math.max(1, o.rounds);
    // Decided from a warm run of ours (the faster side), the same for both sides.
    const per = slow ? 1 : runsPerSync(await firstRun(ours));
    const a: number[] = [];
    const b: number[] = [];
    for (let i = 0; i < rounds; i++) {
      a.push(await sampleRound(`${c.kernel} ours ${c.shape}`, ours, o, slow, per));
      if (theirs) b.push(await sampleRound(`${c.kernel} tfjs ${c.shape}`, theirs, o, slow, per));
    }
    const oursMs = median(a);
    const tfMs = theirs ? median(b) : null;
    const g = (ms: number) => c.flops / (ms * 1e6);
    return {
      kernel: c.kernel,
      shape: c.shape,
      ours_gflops: round(g(oursMs)),
      tfjs_gflops: tfMs !== null ? round(g(tfMs)) : null,
      ratio: theirs ? round(median(b.map((t, i) => t / a[i]!))) : null,
      ours_ms: round(oursMs),
      tfjs_ms: tfMs !== null ? round(tfMs) : null,
      ours_first_ms: round(oursFirst),
      tfjs_first_ms: tfFirst !== null ? round(tfFirst) : null,
      ...(c.bytes ? { ours_gbps: round(c.bytes / (oursMs * 1e6)) } : {}),
    };
  } finally {
    ours.dispose();
    theirs?.dispose();
  }
}

function round(x: number): number {
  return Math.round(x * 100) / 100;
}

export function markdownTable(rows: BenchRecord[]): string {
  const head =
    '| kernel | shape | ours GFLOP/s | tfjs GFLOP/s | ratio | ours ms | tfjs ms | ours first ms | tfjs first ms |\n' +
    '| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n';
  const f = (v: number | null | undefined) => (v === null || v === undefined ? '–' : String(v));
  return (
    head +
    rows
      .map(
        (r) =>
          `| ${r.kernel} | ${r.shape} | ${f(r.ours_gflops)} | ${f(r.tfjs_gflops)} | ${r.ratio === null ? '–' : `${r.ratio}x`} | ${f(r.ours_ms)} | ${f(r.tfjs_ms)} | ${f(r.ours_first_ms)} | ${f(r.tfjs_first_ms)} |`,
      )
      .join('\n') +
    '\n'
  );
}

/** Syncs our Gpu (flush + wait). */
export function oursSync(gpu: Gpu): () => Promise<void> {
  return () => gpu.sync();
}

/** Syncs tfjs: submit its queued commands, then wait for the device. */
export function tfSync(tf: Tf, device: GPUDevice): () => Promise<void> {
  return async () => {
    const be = tf.backend() as unknown as { endComputePassEncoder(): void; submitQueue(): void };
    be.endComputePassEncoder();
    be.submitQueue();
    await device.queue.onSubmittedWorkDone();
  };
}
