import { afterAll, beforeAll, describe, expect, test, vi } from 'vitest';
import { backward, param, releaseGraph } from '../../src/autograd/tape.js';
import type { Gpu } from '../../src/gpu/device.js';
import { poolOutSize, poolUsesK3s2, runMaxPool2d } from '../../src/kernels/maxpool.js';
import { batchChunks } from '../../src/kernels/split.js';
import '../../src/ops/index.js';
import { maxPool2d } from '../../src/ops/spatial.js';
import { Tensor } from '../../src/tensor/tensor.js';
import * as ref from '../reference/spatial.js';
import {
  assertClose,
  closeTestGpus,
  finiteDiff,
  kernelCase,
  randn,
  rng,
  testGpu,
  upload,
} from '../helpers.js';

let gpu: Gpu;
let tiny: Gpu;
beforeAll(async () => {
  gpu = await testGpu();
  tiny = await testGpu({ profile: { maxStorageBindingBytes: 4096 } });
});
afterAll(closeTestGpus);

type P = [number, number];
interface Case {
  shape: [number, number, number, number];
  k: P;
  s: P;
  p: P;
}
const c = (shape: Case['shape'], k: P, s: P, p: P): Case => ({ shape, k, s, p });
const geo = ({ shape: [N, C, H, W], k, s, p }: Case): ref.Pool => ({
  N,
  C,
  H,
  W,
  KH: k[0],
  KW: k[1],
  SH: s[0],
  SW: s[1],
  PH: p[0],
  PW: p[1],
});

const CASES: Case[] = [
  c([2, 3, 9, 9], [3, 3], [2, 2], [1, 1]), // ResNet stem geometry, odd size (generic path)
  c([2, 3, 10, 16], [3, 3], [2, 2], [1, 1]), // ResNet stem, W % 8 == 0: vec4 path
  c([1, 2, 7, 24], [3, 3], [2, 2], [1, 1]), // vec4 path, odd height
  c([1, 2, 8, 8], [3, 3], [2, 2], [1, 1]),
  c([1, 2, 7, 10], [2, 2], [2, 2], [0, 0]),
  c([2, 1, 8, 5], [3, 3], [1, 1], [1, 1]),
  c([1, 2, 6, 7], [3, 2], [2, 1], [1, 0]),
  c([3, 4, 5, 5], [5, 5], [3, 3], [2, 2]),
  c([1, 1, 1, 1], [1, 1], [1, 1], [0, 0]),
];

/** Forward (y and argmax) and backward vs the reference on `dev`. `data` overrides random x. */
async function check(dev: Gpu, cs: Case, seed: number, data?: Float32Array): Promise<void> {
  const r = rng(seed);
  const g = geo(cs);
  const n = cs.shape.reduce((a, b) => a * b, 1);
  const xd = data ?? randn(r, n);
  const want = ref.maxPool2d(xd, g);
  const dyd = randn(r, want.y.length);
  const x = param(upload(dev, { data: xd, shape: cs.shape }));
  const y = maxPool2d(x, { kernel: cs.k, stride: cs.s, padding: cs.p });
  const [Ho, Wo] = ref.poolOut(g);
  expect([...y.shape]).toEqual([g.N, g.C, Ho, Wo]);
  backward(y, { grad: upload(dev, { data: dyd, shape: y.shape }) });
  const name = JSON.stringify(cs);
  assertClose(await y.read(), want.y, { atol: 0, rtol: 0, name: `${name} y` });
  assertClose(await x.grad!.read(), ref.maxPool2dBackward(want.idx, dyd, g), {
    atol: 1e-6,
    rtol: 1e-6,
    name: `${name} dx`,
  });
  // The saved argmax itself, through the kernel entry point.
  const yk = Tensor.empty(dev, y.shape);
  const idx = Tensor.empty(dev, y.shape, 'i32');
  runMaxPool2d(x, yk, idx, {
    P: g.N * g.C,
    H: g.H,
    W: g.W,
    KH: g.KH,
    KW: g.KW,
    SH: g.SH,
    SW: g.SW,
    PH: g.PH,
    PW: g.PW,
  });
  expect([...((await idx.read()) as Int32Array)]).toEqual([...want.idx]);
  for (const t of [x, y, x.grad!, yk, idx]) t.dispose();
}

describe('maxPool2d vs CPU reference', () => {
  test.each(CASES.map((cs, i) => [JSON.stringify(cs), cs, i] as const))('%s', async (_n, cs, i) => {
    await check(gpu, cs, 100 + i);
  });

  test('the ResNet stem geometry with W % 8 == 0 takes the vec4 entries', () => {
    expect(poolUsesK3s2({ ...geo(CASES[1]!), P: 1 })).toBe(true);
    expect(poolUsesK3s2({ ...geo(CASES[2]!), P: 1 })).toBe(true);
    expect(poolUsesK3s2({ ...geo(CASES[0]!), P: 1 })).toBe(false);
    const spy = vi.spyOn(gpu, 'dispatch');
    const x = param(Tensor.zeros(gpu, CASES[1]!.shape));
    const y = maxPool2d(x, { kernel: 3, stride: 2, padding: 1 });
    const gy = Tensor.zeros(gpu, y.shape);
    backward(y, { grad: gy });
    expect(spy.mock.calls.map((c) => c[0].name)).toEqual(['maxpool.fwd_k3s2', 'maxpool.bwd_k3s2']);
    spy.mockRestore();
    for (const t of [x, y, gy, x.grad!]) t.dispose();
  });

  test('ties route the gradient to the first maximum in scan order', async () => {
    const r = rng(7);
    for (const cs of [CASES[0]!, CASES[1]!, CASES[2]!, CASES[5]!, CASES[6]!]) {
      const n = cs.shape.reduce((a, b) => a * b, 1);
      const ties = Float32Array.from({ length: n }, () => Math.floor(r.next() * 3));
      await check(gpu, cs, 200, ties);
      await check(gpu, cs, 201, new Float32Array(n).fill(1.5)); // every window is one tie
    }
  });

  test('-inf everywhere in a window and NaN propagate as in PyTorch', async () => {
    for (const W of [6, 8]) {
      const cs = c([1, 1, 6, W], [3, 3], [2, 2], [1, 1]);
      const xd = randn(rng(3), 6 * W);
      // First window all -inf: y = -inf, idx = its first element.
      for (const i of [0, 1, W, W + 1]) xd[i] = -Infinity;
      xd[3 * W + 2] = NaN;
      xd[3 * W + 5] = NaN; // later NaN in a shared window wins (PyTorch updates on every NaN)
      const want = ref.maxPool2d(xd, geo(cs));
      expect(want.y[0]).toBe(-Infinity);
      expect(want.y.some((v) => Number.isNaN(v))).toBe(true);
      await check(gpu, cs, 4, xd);
    }
  });

  test('more planes than the grid allows per dimension are split into dispatches', async () => {
    const small = await testGpu({ profile: { maxWorkgroupsPerDimension: 4 } });
    await check(small, c([3, 5, 7, 6], [3, 3], [2, 2], [1, 1]), 301);
    await check(small, c([3, 5, 7, 8], [3, 3], [2, 2], [1, 1]), 301);
  });

  test('GPU workgroup shape (kind gpu)', async () => {
    const asGpu = await testGpu({ profile: { kind: 'gpu' } });
    await check(asGpu, CASES[0]!, 302);
    await check(asGpu, CASES[1]!, 303);
    await check(asGpu, c([1, 2, 41, 5], [3, 3], [2, 2], [1, 1]), 304);
  });

  test('batch split over a 4 KiB binding limit', async () => {
    for (const cs of [c([3, 4, 17, 19], [3, 3], [2, 2], [1, 1]), c([3, 4, 18, 16], [3, 3], [2, 2], [1, 1])]) {
      const g = geo(cs);
      const [Ho, Wo] = ref.poolOut(g);
      expect(batchChunks(tiny, g.N * g.C, [g.H * g.W, Ho * Wo], 't').length).toBeGreaterThan(1);
      await check(tiny, cs, 300);
    }
  });
});

describe('maxPool2d fixture (PyTorch)', () => {
  test('maxpool_3x3_s2_p1', async () => {
    const f = kernelCase('maxpool_3x3_s2_p1');
    const x = param(upload(gpu, f.get('x')));
    const y = maxPool2d(x, {
      kernel: f.params.kernel as number,
      stride: f.params.stride as number,
      padding: f.params.padding as number,
    });
    backward(y, { grad: upload(gpu, f.get('dy')) });
    assertClose(await y.read(), f.f32('y'), { ...f.tol('y'), name: 'y' });
    assertClose(await x.grad!.read(), f.f32('dx'), { ...f.tol('dx'), name: 'dx' });
  });
});

describe('maxPool2d reference gradient agrees with finite differences', () => {
  test.each([CASES[0]!, CASES[6]!, CASES[7]!])('%j', (cs) => {
    const g = geo(cs);
    const r = rng(11);
    const n = cs.shape.reduce((a, b) => a * b, 1);
    // Distinct values spaced well above the step, so no window changes its argmax under +-h.
    const perm = [...Array(n).keys()].sort(() => r.next() - 0.5);
    const xd = Float64Array.from(perm, (v) => v * 0.01);
    const dy = randn(r, ref.maxPool2d(xd, g).y.length);
    const fd = finiteDiff((v) => ref.dot(ref.maxPool2d(v, g).y, dy), xd, [...Array(n).keys()], 1e-4);
    assertClose(fd, ref.maxPool2dBackward(ref.maxPool2d(xd, g).idx, dy, g), {
      atol: 1e-8,
      rtol: 1e-6,
      name: 'FD dx',
    });
  });
});

describe('maxPool2d bad input and memory', () => {
  test('errors name the op and the shapes', () => {
    const x3 = Tensor.zeros(gpu, [2, 5, 5]);
    expect(() => maxPool2d(x3, { kernel: 3 })).toThrow(
      /maxPool2d: input must be NCHW \(rank 4\), got shape \[2, 5, 5\]/,
    );
    const x = Tensor.zeros(gpu, [1, 1, 2, 2]);
    expect(() => maxPool2d(x, { kernel: 3, stride: 1 })).toThrow(
      /maxPool2d: input \[1, 1, 2, 2\] is smaller than the kernel \[3, 3\]/,
    );
    expect(() => maxPool2d(x, { kernel: 2, padding: 2 })).toThrow(
      /maxPool2d: padding \[2, 2\] must be at most half/,
    );
    expect(() => maxPool2d(x, { kernel: 0 })).toThrow(/maxPool2d: kernel must be integers >= 1/);
  });

  test('the saved argmax is freed after backward and with releaseGraph', async () => {
    const x = param(upload(gpu, { data: randn(rng(1), 2 * 3 * 16 * 16), shape: [2, 3, 16, 16] }));
    await gpu.sync();
    const before = gpu.stats().pool.liveBuffers;
    const y = maxPool2d(x, { kernel: 3, stride: 2, padding: 1 });
    const gy = Tensor.zeros(gpu, y.shape);
    backward(y, { grad: gy });
    for (const t of [gy, y, x.grad!]) t.dispose();
    x.grad = null;
    const y2 = maxPool2d(x, { kernel: 3, stride: 2, padding: 1 });
    releaseGraph(y2);
    y2.dispose();
    await gpu.sync();
    expect(gpu.stats().pool.liveBuffers).toBe(before);
    expect(poolOutSize({ P: 1, H: 256, W: 256, KH: 3, KW: 3, SH: 2, SW: 2, PH: 1, PW: 1 })).toEqual([
      128, 128,
    ]);
  });
});
