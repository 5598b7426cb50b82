/**
 * Test helpers: the shared GPU, fixture access, closeness checks with useful failure messages,
 * and seeded data. A missing WebGPU adapter is a test failure, never a skip.
 */
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Gpu, type GpuOptions } from '../src/gpu/device.js';
import { decodeEntry, parseSafetensors, type SafeTensors } from '../src/io/safetensors.js';
import { createNodeDevice, type NodeDevice } from '../src/platform/node.js';
import type { HostTensor } from '../src/tensor/host.js';
import { Tensor } from '../src/tensor/tensor.js';
import { Rng } from '../src/util/rng.js';

export const testDir = dirname(fileURLToPath(import.meta.url));
export const fixturesDir = join(testDir, 'fixtures');

// ------------------------------------------------------------------ GPU

const opened: { node: NodeDevice; gpu: Gpu }[] = [];

/**
 * A fresh engine-level Gpu on Dawn. Throws (fails the test) when no adapter exists: run
 * `bash scripts/setup-vulkan.sh` on a machine without a GPU driver.
 */
export async function testGpu(opts: Partial<Omit<GpuOptions, 'device'>> = {}): Promise<Gpu> {
  let node: NodeDevice;
  try {
    node = await createNodeDevice();
  } catch (e) {
    throw new Error(
      `GPU tests need a WebGPU adapter and none was found (${(e as Error).message}). ` +
        'On Linux without a GPU run: bash scripts/setup-vulkan.sh',
    );
  }
  const gpu = new Gpu({ device: node.device, adapterInfo: node.info, owned: false, ...opts });
  opened.push({ node, gpu });
  return gpu;
}

export function closeTestGpus(): void {
  for (const { node, gpu } of opened.splice(0)) {
    gpu.destroy();
    node.close();
  }
}

export function upload(
  gpu: Gpu,
  h: HostTensor | { data: Float32Array | Int32Array; shape: readonly number[] },
): Tensor {
  return Tensor.fromData(gpu, h.data, h.shape);
}

// ------------------------------------------------------------------ fixtures

interface ManifestTensor {
  shape: number[];
  dtype: string;
  f32_maxabs?: number;
  ref_maxabs?: number;
}

export interface Fixture {
  params: Record<string, unknown>;
  has(name: string): boolean;
  get(name: string): HostTensor;
  f32(name: string): Float32Array;
  /** Tolerance derived from the manifest: atol = max(factor*f32_maxabs, 1e-5*ref_maxabs, 1e-6). */
  tol(name: string, factor?: number): { atol: number; rtol: number };
}

const stCache = new Map<string, SafeTensors>();
const jsonCache = new Map<string, Record<string, unknown>>();

function loadSt(file: string): SafeTensors {
  let st = stCache.get(file);
  if (!st) {
    st = parseSafetensors(new Uint8Array(readFileSync(join(fixturesDir, file))), file);
    stCache.set(file, st);
  }
  return st;
}

export function loadJson(file: string): Record<string, unknown> {
  let j = jsonCache.get(file);
  if (!j) {
    j = JSON.parse(readFileSync(join(fixturesDir, file), 'utf8')) as Record<string, unknown>;
    jsonCache.set(file, j);
  }
  return j;
}

function makeFixture(
  st: SafeTensors,
  manifest: Record<string, ManifestTensor>,
  prefix: string,
  params: Record<string, unknown>,
): Fixture {
  const full = (n: string) => prefix + n;
  const get = (n: string): HostTensor => {
    const e = st.tensors.get(full(n));
    if (!e) throw new Error(`fixture tensor '${full(n)}' not found`);
    const data = decodeEntry(e, full(n));
    return { shape: e.shape, dtype: data instanceof Int32Array ? 'i32' : 'f32', data };
  };
  return {
    params,
    has: (n) => st.tensors.has(full(n)),
    get,
    f32: (n) => {
      const d = get(n).data;
      return d instanceof Float32Array ? d : Float32Array.from(d);
    },
    tol(n, factor = 4) {
      const m = manifest[full(n)];
      if (!m || m.f32_maxabs === undefined) throw new Error(`fixture tensor '${full(n)}' has no f32_maxabs`);
      return { atol: Math.max(factor * m.f32_maxabs, 1e-5 * (m.ref_maxabs ?? 0), 1e-6), rtol: 0 };
    },
  };
}

/** One case of kernels.safetensors with its parameters from kernels.json. */
export function kernelCase(name: string): Fixture {
  const j = loadJson('kernels.json') as {
    cases: Record<string, Record<string, unknown>>;
    tensors: Record<string, ManifestTensor>;
  };
  const params = j.cases[name];
  if (!params) throw new Error(`no kernel fixture case '${name}'`);
  return makeFixture(loadSt('kernels.safetensors'), j.tensors, `${name}/`, params);
}

export function kernelCaseNames(op?: string): string[] {
  const j = loadJson('kernels.json') as { cases: Record<string, { op: string }> };
  return Object.keys(j.cases).filter((k) => op === undefined || j.cases[k]!.op === op);
}

/** The tiny end-to-end case (tiny_case.safetensors + tiny_case.json). */
export function tinyCase(): Fixture & { manifest: Record<string, unknown> } {
  const j = loadJson('tiny_case.json') as Record<string, unknown> & {
    tensors: Record<string, ManifestTensor>;
  };
  return { ...makeFixture(loadSt('tiny_case.safetensors'), j.tensors, '', j), manifest: j };
}

// ------------------------------------------------------------------ comparison

export interface CloseOptions {
  atol?: number;
  rtol?: number;
  name?: string;
}

/** Throws unless |a-e| <= atol + rtol*|e| everywhere; reports max error and first mismatches. */
export function assertClose(
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  o: CloseOptions = {},
): number {
  const atol = o.atol ?? 1e-5;
  const rtol = o.rtol ?? 1e-5;
  const name = o.name ?? 'tensor';
  if (actual.length !== expected.length)
    throw new Error(`${name}: length ${actual.length} != expected ${expected.length}`);
  let maxErr = 0;
  let maxAt = -1;
  let bad = 0;
  const first: string[] = [];
  for (let i = 0; i < actual.length; i++) {
    const a = actual[i]!;
    const e = expected[i]!;
    const nan = Number.isNaN(a) || Number.isNaN(e);
    const err = nan ? (Number.isNaN(a) && Number.isNaN(e) ? 0 : Infinity) : a === e ? 0 : Math.abs(a - e);
    if (err > maxErr) {
      maxErr = err;
      maxAt = i;
    }
    if (err > atol + rtol * Math.abs(e)) {
      bad++;
      if (first.length < 6) first.push(`[${i}] got ${a}, want ${e} (err ${err.toExponential(2)})`);
    }
  }
  if (bad)
    throw new Error(
      `${name}: ${bad}/${actual.length} elements differ (atol ${atol.toExponential(2)}, rtol ${rtol}); ` +
        `max err ${maxErr.toExponential(3)} at ${maxAt}; first: ${first.join('; ')}`,
    );
  return maxErr;
}

// ------------------------------------------------------------------ data

export function rng(seed: number): Rng {
  return new Rng(seed);
}

export function randn(r: Rng, n: number, scale = 1): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = r.normal() * scale;
  return a;
}

/**
 * Central finite differences of a scalar function f(x) at x (float64 host math), for checking
 * analytic gradients against the CPU reference.
 */
export function finiteDiff(
  f: (x: Float64Array) => number,
  x: Float64Array,
  idx: number[],
  h = 1e-4,
): number[] {
  return idx.map((i) => {
    const xp = Float64Array.from(x);
    const xm = Float64Array.from(x);
    xp[i]! += h;
    xm[i]! -= h;
    return (f(xp) - f(xm)) / (2 * h);
  });
}
