import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { backward, param } from '../../src/autograd/tape.js';
import type { Gpu } from '../../src/gpu/device.js';
import { batchChunks } from '../../src/kernels/split.js';
import '../../src/ops/index.js';
import { interpolateBilinear } from '../../src/ops/spatial.js';
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

type Shape4 = [number, number, number, number];
const CASES: [Shape4, [number, number]][] = [
  [
    [2, 3, 5, 7],
    [11, 4],
  ], // up in H, down in W, odd sizes
  [
    [1, 2, 6, 6],
    [24, 24],
  ], // x4 up (mask upsampling)
  [
    [1, 9, 16, 16],
    [64, 64],
  ],
  [
    [1, 1, 16, 16],
    [7, 7],
  ], // 64 -> 14 like, non-integer ratio
  [
    [1, 4, 8, 8],
    [4, 4],
  ], // exact x2 down
  [
    [2, 2, 9, 13],
    [9, 13],
  ], // identity
  [
    [1, 3, 1, 5],
    [4, 1],
  ], // single row / column
  [
    [1, 1, 15, 4],
    [7, 4],
  ], // rel-pos rows
  [
    [1, 1, 14, 14],
    [64, 64],
  ], // large non-integer up
  [
    [1, 2, 37, 3],
    [5, 29],
  ],
  [
    [1, 1, 3, 3],
    [1, 1],
  ],
];

async function check(dev: Gpu, shape: Shape4, size: [number, number], seed: number): Promise<void> {
  const r = rng(seed);
  const [N, C, H, W] = shape;
  const [Ho, Wo] = size;
  const xd = randn(r, N * C * H * W);
  const dyd = randn(r, N * C * Ho * Wo);
  const x = param(upload(dev, { data: xd, shape }));
  const y = interpolateBilinear(x, size);
  expect([...y.shape]).toEqual([N, C, Ho, Wo]);
  backward(y, { grad: upload(dev, { data: dyd, shape: y.shape }) });
  const name = `${JSON.stringify(shape)} -> ${JSON.stringify(size)}`;
  // The kernel computes source coordinates in f32 (as PyTorch does): src = (o+0.5)*scale - 0.5 is
  // off by a few ulp of src (< 1e-6 * in_size), which moves each tap weight by as much.
  const coord = 1e-6 * Math.max(H, W);
  assertClose(await y.read(), ref.bilinear(xd, N * C, H, W, Ho, Wo), {
    atol: 2e-6 + 8 * coord,
    rtol: 1e-5,
    name: `${name} y`,
  });
  // dx sums up to ~(2*Ho/H + 2)*(2*Wo/W + 2) weighted dy values.
  assertClose(await x.grad!.read(), ref.bilinearBackward(dyd, N * C, H, W, Ho, Wo), {
    atol: 2e-5 + 8 * coord * Math.max(1, (Ho * Wo) / (H * W)),
    rtol: 1e-5,
    name: `${name} dx`,
  });
  for (const t of [x, y, x.grad!]) t.dispose();
}

describe('interpolateBilinear vs CPU reference', () => {
  test.each(CASES.map(([s, o], i) => [JSON.stringify(s), JSON.stringify(o), s, o, i] as const))(
    '%s -> %s',
    async (_a, _b, s, o, i) => {
      await check(gpu, s, o, 400 + i);
    },
  );
  test('more planes than the grid allows per dimension are split into dispatches', async () => {
    const small = await testGpu({ profile: { maxWorkgroupsPerDimension: 4 } });
    await check(small, [3, 5, 7, 6], [9, 4], 502);
  });
  test('GPU workgroup shape (kind gpu)', async () => {
    const asGpu = await testGpu({ profile: { kind: 'gpu' } });
    await check(asGpu, [2, 3, 5, 7], [11, 4], 503);
    await check(asGpu, [1, 2, 40, 3], [7, 70], 504);
  });
  test('batch split over a 4 KiB binding limit (up and down)', async () => {
    expect(batchChunks(tiny, 2 * 3, [10 * 12, 23 * 17], 't').length).toBeGreaterThan(1);
    await check(tiny, [2, 3, 10, 12], [23, 17], 500);
    await check(tiny, [2, 3, 23, 17], [10, 12], 501);
  });
});

describe('interpolateBilinear fixtures (PyTorch)', () => {
  test.each([
    'bilinear_up4_masks',
    'bilinear_down2_posembed',
    'bilinear_down_64to14_like',
    'bilinear_relpos_rows',
  ])('%s', async (name) => {
    const f = kernelCase(name);
    expect(f.params.align_corners).toBe(false);
    const x = param(upload(gpu, f.get('x')));
    const y = interpolateBilinear(x, f.params.out_size as [number, number]);
    backward(y, { grad: upload(gpu, f.get('dy')) });
    assertClose(await y.read(), f.f32('y'), { ...f.tol('y'), name: `${name} y` });
    assertClose(await x.grad!.read(), f.f32('dx'), { ...f.tol('dx'), name: `${name} dx` });
  });
});

describe('bilinear reference gradient agrees with finite differences', () => {
  test.each([
    [2, 3, 5, 7, 4, 9],
    [1, 1, 6, 6, 13, 2],
    [1, 2, 4, 4, 1, 1],
  ])('%i planes x %i: %ix%i -> %ix%i', (N, C, H, W, Ho, Wo) => {
    const r = rng(13);
    const xd = Float64Array.from(randn(r, N * C * H * W));
    const dy = randn(r, N * C * Ho * Wo);
    const fd = finiteDiff((v) => ref.dot(ref.bilinear(v, N * C, H, W, Ho, Wo), dy), xd, [...xd.keys()]);
    assertClose(fd, ref.bilinearBackward(dy, N * C, H, W, Ho, Wo), { atol: 1e-7, rtol: 1e-6, name: 'FD dx' });
  });
});

describe('interpolateBilinear bad input', () => {
  test('errors name the op and the shapes', () => {
    expect(() => interpolateBilinear(Tensor.zeros(gpu, [3, 4, 4]), [8, 8])).toThrow(
      /interpolateBilinear: input must be NCHW \(rank 4\), got shape \[3, 4, 4\]/,
    );
    expect(() => interpolateBilinear(Tensor.zeros(gpu, [1, 3, 4, 4]), [0, 8])).toThrow(
      /interpolateBilinear: output size must be positive integers, got \[0, 8\] for input \[1, 3, 4, 4\]/,
    );
    expect(() => interpolateBilinear(Tensor.zeros(gpu, [1, 3, 4, 4]), [2.5, 8])).toThrow(
      /interpolateBilinear/,
    );
  });
});
