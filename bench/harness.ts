/**
 * Benchmark harness: each case sets up the same work for our kernels and for
 * @tensorflow/tfjs-backend-webgpu on the same GPUDevice, in one process. Timing is tinybench's
 * median over runs after warm-up, each run synced with queue.onSubmittedWorkDone (no readback).
 * The first run (pipeline creation included) is reported apart as compile time.
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
  /** Minimum measured time per task in ms. */
  time: number;
  iterations: number;
}

async function timeRunner(
  name: string,
  r: Runner,
  o: TimeOptions,
): Promise<{ median: number; first: number }> {
  const t0 = performance.now();
  r.run();
  await r.sync();
  const first = performance.now() - t0;
  // Slow cases (tfjs weight gradients at batch 24 take minutes per run): fewer samples, no warm-up
  // beyond the first run already made.
  const slow = first > 5000;
  const bench = new Bench({
    time: slow ? 0 : o.time,
    iterations: slow ? 2 : o.iterations,
    warmupIterations: slow ? 0 : 1,
    warmupTime: 0,
    warmup: !slow,
  });
  bench.add(name, async () => {
    r.run();
    await r.sync();
  });
  const [task] = await bench.run();
  const res = task?.result as { latency?: { p50?: number } } | undefined;
  const median = res?.latency?.p50;
  if (median === undefined) throw new Error(`benchmark '${name}' produced no result`);
  return { median, first };
}

export async function runCase(
  c: BenchCase,
  gpu: Gpu,
  tf: Tf | null,
  tfDevice: GPUDevice | null,
  o: TimeOptions,
): Promise<BenchRecord> {
  const ours = c.ours(gpu);
  const a = await timeRunner(`${c.kernel} ours ${c.shape}`, ours, o);
  ours.dispose();
  let b: { median: number; first: number } | null = null;
  if (tf && tfDevice && c.tfjs) {
    const t = c.tfjs(tf, tfDevice);
    b = await timeRunner(`${c.kernel} tfjs ${c.shape}`, t, o);
    t.dispose();
  }
  const g = (ms: number) => c.flops / (ms * 1e6);
  return {
    kernel: c.kernel,
    shape: c.shape,
    ours_gflops: round(g(a.median)),
    tfjs_gflops: b ? round(g(b.median)) : null,
    ratio: b ? round(b.median / a.median) : null,
    ours_ms: round(a.median),
    tfjs_ms: b ? round(b.median) : null,
    ours_first_ms: round(a.first),
    tfjs_first_ms: b ? round(b.first) : null,
    ...(c.bytes ? { ours_gbps: round(c.bytes / (a.median * 1e6)) } : {}),
  };
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
