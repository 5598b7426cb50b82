import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { backward, param } from '../../src/autograd/tape.js';
import type { Gpu } from '../../src/gpu/device.js';
import '../../src/ops/index.js';
import { layerNorm, layerNorm2d } from '../../src/ops/norm.js';
import { Tensor } from '../../src/tensor/tensor.js';
import * as ref from '../reference/norm.js';
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

/** Every variant: the CPU-adapter kernels, the GPU-adapter kernels, and both with forced splitting. */
const VARIANTS = {
  cpu: {},
  gpu: { profile: { kind: 'gpu' as const } },
  split: { profile: { maxStorageBindingBytes: 4096 } },
  'split-gpu': { profile: { maxStorageBindingBytes: 4096, kind: 'gpu' as const } },
};
type Variant = keyof typeof VARIANTS;
const gpus = {} as Record<Variant, Gpu>;

beforeAll(async () => {
  for (const [k, o] of Object.entries(VARIANTS)) gpus[k as Variant] = await testGpu(o);
});
afterAll(closeTestGpus);

const maxAbs = (a: ArrayLike<number>) => {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]!));
  return m;
};

type Op = typeof layerNorm;

/** Runs op forward and backward (upstream dy) with x, w, b all requiring grad; reads everything back. */
async function run(
  gpu: Gpu,
  op: Op,
  xd: Float32Array,
  shape: number[],
  wd: Float32Array,
  bd: Float32Array,
  dyd: Float32Array,
  eps: number,
) {
  const x = param(upload(gpu, { data: xd, shape }));
  const w = param(upload(gpu, { data: wd, shape: [wd.length] }));
  const b = param(upload(gpu, { data: bd, shape: [bd.length] }));
  const y = op(x, w, b, eps);
  const dy = upload(gpu, { data: dyd, shape });
  backward(y, { grad: dy });
  const out = {
    y: await y.readFloat(),
    dx: await x.grad!.readFloat(),
    dw: await w.grad!.readFloat(),
    db: await b.grad!.readFloat(),
  };
  for (const t of [x, w, b, y, dy, x.grad!, w.grad!, b.grad!]) t.dispose();
  return out;
}

function compare(
  got: Record<'y' | 'dx' | 'dw' | 'db', Float32Array>,
  want: { y: ArrayLike<number>; dx: ArrayLike<number>; dw: ArrayLike<number>; db: ArrayLike<number> },
  tol: (k: 'y' | 'dx' | 'dw' | 'db') => { atol: number; rtol: number },
  label: string,
) {
  for (const k of ['y', 'dx', 'dw', 'db'] as const)
    assertClose(got[k], want[k], { ...tol(k), name: `${label} ${k}` });
}

// ------------------------------------------------------------------ fixtures (PyTorch)

describe('PyTorch fixtures', () => {
  const cases = [
    ['layernorm_last_eps1e-6', layerNorm],
    ['layernorm_last_eps1e-5', layerNorm],
    ['layernorm2d', layerNorm2d],
  ] as const;
  for (const v of Object.keys(VARIANTS) as Variant[])
    for (const [name, op] of cases)
      test(`${name} (${v})`, async () => {
        const c = kernelCase(name);
        const xh = c.get('x');
        const got = await run(
          gpus[v],
          op,
          c.f32('x'),
          xh.shape,
          c.f32('w'),
          c.f32('b'),
          c.f32('dy'),
          c.params.eps as number,
        );
        compare(
          got,
          { y: c.f32('y'), dx: c.f32('dx'), dw: c.f32('dw'), db: c.f32('db') },
          (k) => c.tol(k),
          name,
        );
      });
});

// ------------------------------------------------------------------ random shapes vs the CPU reference

/** The split variants (4096-byte bindings) take the shapes whose items fit a binding with room to spare. */
function forVariant(v: Variant, shapes: [number[], number][], itemElems: (s: number[]) => number) {
  return v.startsWith('split') ? shapes.filter(([s]) => itemElems(s) * 4 <= 2048) : shapes;
}

/** atol scaled to the reference's magnitude; `cancel` widens it for inputs far from zero. */
function tolFor(want: ArrayLike<number>, base: number) {
  return { atol: base * Math.max(1, maxAbs(want)), rtol: 1e-4 };
}

describe('layerNorm vs CPU reference', () => {
  // [shape, offset]: D = 1 and 3, rows not a multiple of the workgroup, D % 4 both ways, SAM's D.
  const shapes: [number[], number][] = [
    [[1, 1], 0],
    [[4, 3], 0],
    [[3, 33, 16], 0],
    [[130, 20], 0],
    [[7, 257], 0],
    [[67, 768], 0],
    [[10, 256], 0],
    [[9, 768], 1000],
    [[65, 5], 1000],
    [[300, 7], 1000],
  ];
  for (const v of Object.keys(VARIANTS) as Variant[])
    test.each(forVariant(v, shapes, (s) => 2 * s[s.length - 1]!))(`%j + %d (${v})`, async (shape, offset) => {
      const r = rng(shape.reduce((a, b) => a * b, 1) + offset);
      const D = shape[shape.length - 1]!;
      const rows = shape.reduce((a, b) => a * b, 1) / D;
      const xd = randn(r, rows * D).map((t) => t + offset);
      const wd = randn(r, D).map((t) => 1 + 0.5 * t);
      const bd = randn(r, D, 0.5);
      const dyd = randn(r, rows * D);
      const eps = 1e-6;
      const got = await run(gpus[v], layerNorm, xd, shape, wd, bd, dyd, eps);
      const y = ref.layerNorm(xd, wd, bd, rows, D, eps);
      const g = ref.layerNormBackward(xd, wd, dyd, rows, D, eps);
      // With offset 1000 the f32 inputs are quantised to 6e-5 and the mean can be no closer than
      // that; a single-pass E[x^2]-E[x]^2 would be off by ~1e-1 here.
      const base = offset ? 5e-4 : 1e-5;
      compare(
        got,
        { y, ...g },
        (k) => tolFor(k === 'y' ? y : g[k], k === 'dw' || k === 'db' ? 4 * base : base),
        `${shape}`,
      );
    });
});

describe('layerNorm2d vs CPU reference', () => {
  const shapes: [number[], number][] = [
    [[1, 1, 3, 3], 0],
    [[2, 3, 5, 7], 0],
    [[2, 6, 4, 4], 0],
    [[3, 256, 4, 8], 0],
    [[5, 64, 8, 8], 0],
    [[1, 3, 1, 1], 0],
    [[2, 32, 4, 4], 1000],
    [[2, 3, 5, 3], 1000],
    [[6, 5, 6, 6], 0],
    [[20, 3, 5, 5], 0],
    [[30, 16, 2, 2], 1000],
  ];
  for (const v of Object.keys(VARIANTS) as Variant[])
    test.each(forVariant(v, shapes, (s) => s[1]! * s[2]! * s[3]!))(
      `%j + %d (${v})`,
      async (shape, offset) => {
        const [N, C, H, W] = shape as [number, number, number, number];
        const HW = H * W;
        const r = rng(N * C * HW + offset + 1);
        const xd = randn(r, N * C * HW).map((t) => t + offset);
        const wd = randn(r, C).map((t) => 1 + 0.5 * t);
        const bd = randn(r, C, 0.5);
        const dyd = randn(r, N * C * HW);
        const eps = 1e-6;
        const got = await run(gpus[v], layerNorm2d, xd, shape, wd, bd, dyd, eps);
        const y = ref.layerNorm2d(xd, wd, bd, N, C, HW, eps);
        const g = ref.layerNorm2dBackward(xd, wd, dyd, N, C, HW, eps);
        const base = offset ? 5e-4 : 1e-5;
        compare(
          got,
          { y, ...g },
          (k) => tolFor(k === 'y' ? y : g[k], k === 'dw' || k === 'db' ? 4 * base : base),
          `${shape}`,
        );
      },
    );
});

// ------------------------------------------------------------------ the references' gradients

describe('reference gradients agree with finite differences', () => {
  test('layerNorm', () => {
    const r = rng(3);
    const rows = 3;
    const D = 5;
    const x = Float64Array.from(randn(r, rows * D));
    const w = Float64Array.from(randn(r, D));
    const b = Float64Array.from(randn(r, D));
    const dy = Float64Array.from(randn(r, rows * D));
    const eps = 1e-5;
    const g = ref.layerNormBackward(x, w, dy, rows, D, eps);
    const all = (n: number) => [...Array(n).keys()];
    const fx = finiteDiff((xv) => ref.dot(ref.layerNorm(xv, w, b, rows, D, eps), dy), x, all(rows * D), 1e-5);
    const fw = finiteDiff((wv) => ref.dot(ref.layerNorm(x, wv, b, rows, D, eps), dy), w, all(D), 1e-5);
    const fb = finiteDiff((bv) => ref.dot(ref.layerNorm(x, w, bv, rows, D, eps), dy), b, all(D), 1e-5);
    assertClose(g.dx, fx, { atol: 1e-7, rtol: 1e-6, name: 'dx' });
    assertClose(g.dw, fw, { atol: 1e-7, rtol: 1e-6, name: 'dw' });
    assertClose(g.db, fb, { atol: 1e-7, rtol: 1e-6, name: 'db' });
  });

  test('layerNorm2d', () => {
    const r = rng(4);
    const [N, C, HW] = [2, 3, 4];
    const x = Float64Array.from(randn(r, N * C * HW));
    const w = Float64Array.from(randn(r, C));
    const b = Float64Array.from(randn(r, C));
    const dy = Float64Array.from(randn(r, N * C * HW));
    const eps = 1e-6;
    const g = ref.layerNorm2dBackward(x, w, dy, N, C, HW, eps);
    const all = (n: number) => [...Array(n).keys()];
    const f = (xv: Float64Array, wv: Float64Array, bv: Float64Array) =>
      ref.dot(ref.layerNorm2d(xv, wv, bv, N, C, HW, eps), dy);
    assertClose(
      g.dx,
      finiteDiff((v) => f(v, w, b), x, all(x.length), 1e-5),
      { atol: 1e-7, rtol: 1e-6, name: 'dx' },
    );
    assertClose(
      g.dw,
      finiteDiff((v) => f(x, v, b), w, all(C), 1e-5),
      { atol: 1e-7, rtol: 1e-6, name: 'dw' },
    );
    assertClose(
      g.db,
      finiteDiff((v) => f(x, w, v), b, all(C), 1e-5),
      { atol: 1e-7, rtol: 1e-6, name: 'db' },
    );
  });
});

// ------------------------------------------------------------------ partial needs, memory, errors

describe('op behaviour', () => {
  test('only the requested gradients are produced; frozen weights get none', async () => {
    const gpu = gpus.cpu;
    const r = rng(8);
    const xd = randn(r, 24);
    const wd = randn(r, 8);
    const bd = randn(r, 8);
    const dyd = randn(r, 24);
    const x = param(upload(gpu, { data: xd, shape: [3, 8] }));
    const w = upload(gpu, { data: wd, shape: [8] });
    const b = param(upload(gpu, { data: bd, shape: [8] }));
    backward(layerNorm(x, w, b, 1e-5), { grad: upload(gpu, { data: dyd, shape: [3, 8] }) });
    expect(w.grad).toBeNull();
    const g = ref.layerNormBackward(xd, wd, dyd, 3, 8, 1e-5);
    assertClose(await x.grad!.readFloat(), g.dx, { atol: 1e-5, rtol: 1e-4, name: 'dx' });
    assertClose(await b.grad!.readFloat(), g.db, { atol: 1e-5, rtol: 1e-4, name: 'db' });

    const x2 = upload(gpu, { data: xd, shape: [1, 8, 3, 1] });
    const w2 = param(upload(gpu, { data: wd, shape: [8] }));
    const b2 = upload(gpu, { data: bd, shape: [8] });
    backward(layerNorm2d(x2, w2, b2, 1e-6), { grad: upload(gpu, { data: dyd, shape: [1, 8, 3, 1] }) });
    expect(x2.grad).toBeNull();
    expect(b2.grad).toBeNull();
    const g2 = ref.layerNorm2dBackward(xd, wd, dyd, 1, 8, 3, 1e-6);
    assertClose(await w2.grad!.readFloat(), g2.dw, { atol: 1e-5, rtol: 1e-4, name: 'dw' });
  });

  test('repeated forward+backward keeps the pool flat and creates no pipelines', async () => {
    const gpu = gpus.cpu;
    const r = rng(9);
    const x = param(upload(gpu, { data: randn(r, 4 * 16 * 8), shape: [4, 16, 2, 4] }));
    const w = param(upload(gpu, { data: randn(r, 16), shape: [16] }));
    const b = param(upload(gpu, { data: randn(r, 16), shape: [16] }));
    const w1 = param(upload(gpu, { data: randn(r, 4), shape: [4] }));
    const b1 = param(upload(gpu, { data: randn(r, 4), shape: [4] }));
    const dy = upload(gpu, { data: randn(r, 4 * 16 * 8), shape: [4, 16, 2, 4] });
    const step = () => {
      const h = layerNorm2d(x, w, b, 1e-6);
      const y = layerNorm(h, w1, b1, 1e-6);
      backward(y, { grad: dy });
      h.dispose();
      y.dispose();
    };
    step();
    step();
    await gpu.sync();
    const before = gpu.stats();
    for (let i = 0; i < 10; i++) step();
    await gpu.sync();
    const after = gpu.stats();
    expect(after.pool.liveBytes).toBe(before.pool.liveBytes);
    expect(after.pool.liveBuffers).toBe(before.pool.liveBuffers);
    expect(after.pipelinesCreated).toBe(before.pipelinesCreated);
  });

  test('the split variant really splits', async () => {
    const gpu = gpus.split;
    const r = rng(10);
    const x = upload(gpu, { data: randn(r, 20 * 75), shape: [20, 3, 5, 5] });
    const w = upload(gpu, { data: randn(r, 3), shape: [3] });
    const d0 = gpu.stats().dispatches;
    layerNorm2d(x, w, w, 1e-6).dispose();
    expect(gpu.stats().dispatches - d0).toBeGreaterThan(1);
    const x2 = upload(gpu, { data: randn(r, 300 * 7), shape: [300, 7] });
    const w2 = upload(gpu, { data: randn(r, 7), shape: [7] });
    const d1 = gpu.stats().dispatches;
    layerNorm(x2, w2, w2, 1e-6).dispose();
    expect(gpu.stats().dispatches - d1).toBeGreaterThan(1);
  });

  test('bad inputs name the op and the shapes', () => {
    const gpu = gpus.cpu;
    const x = Tensor.zeros(gpu, [2, 4]);
    const w4 = Tensor.zeros(gpu, [4]);
    const w5 = Tensor.zeros(gpu, [5]);
    expect(() => layerNorm(x, w5, w4)).toThrow(
      /layerNorm: weight has shape \[5\], expected \[4\] for input \[2, 4\]/,
    );
    expect(() => layerNorm(x, w4, w5)).toThrow(
      /layerNorm: bias has shape \[5\], expected \[4\] for input \[2, 4\]/,
    );
    expect(() => layerNorm(x, w4, w4, -1)).toThrow(/layerNorm: eps/);
    const x3 = Tensor.zeros(gpu, [2, 4, 3]);
    expect(() => layerNorm2d(x3, w4, w4)).toThrow(
      /layerNorm2d: input must be NCHW \(rank 4\), got \[2, 4, 3\]/,
    );
    const x4 = Tensor.zeros(gpu, [2, 5, 3, 3]);
    expect(() => layerNorm2d(x4, w4, w4)).toThrow(
      /layerNorm2d: weight has shape \[4\], expected \[5\] for input \[2, 5, 3, 3\]/,
    );
    const xi = Tensor.fromData(gpu, new Int32Array(8), [2, 4]);
    expect(() => layerNorm(xi, w4, w4)).toThrow(/layerNorm: x must be f32, got i32 \[2, 4\]/);
  });
});
