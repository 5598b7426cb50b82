import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { backward, noGrad, param } from '../../src/autograd/tape.js';
import type { Gpu } from '../../src/gpu/device.js';
import '../../src/ops/index.js';
import { batchNorm2d } from '../../src/ops/norm.js';
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

/** The BatchNorm kernels are the same on every adapter kind; splitting is the variant that matters. */
const VARIANTS = {
  cpu: {},
  gpu: { profile: { kind: 'gpu' as const } },
  split: { profile: { maxStorageBindingBytes: 4096 } },
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

interface BnData {
  x: Float32Array;
  shape: number[];
  w: Float32Array;
  b: Float32Array;
  rm: Float32Array;
  rv: Float32Array;
  dy: Float32Array;
}

/** Forward + backward with x, w, b requiring grad; returns y, grads and the running stats after. */
async function run(gpu: Gpu, d: BnData, training: boolean, eps: number, momentum: number) {
  const C = d.shape[1]!;
  const x = param(upload(gpu, { data: d.x, shape: d.shape }));
  const w = param(upload(gpu, { data: d.w, shape: [C] }));
  const b = param(upload(gpu, { data: d.b, shape: [C] }));
  const rm = upload(gpu, { data: d.rm, shape: [C] });
  const rv = upload(gpu, { data: d.rv, shape: [C] });
  const y = batchNorm2d(x, w, b, rm, rv, { training, eps, momentum });
  const dy = upload(gpu, { data: d.dy, shape: d.shape });
  backward(y, { grad: dy });
  const out = {
    y: await y.readFloat(),
    dx: await x.grad!.readFloat(),
    dw: await w.grad!.readFloat(),
    db: await b.grad!.readFloat(),
    rm: await rm.readFloat(),
    rv: await rv.readFloat(),
  };
  for (const t of [x, w, b, rm, rv, y, dy, x.grad!, w.grad!, b.grad!]) t.dispose();
  return out;
}

function randomData(shape: number[], seed: number, offset: number, scale = 1): BnData {
  const r = rng(seed);
  const [N, C, H, W] = shape as [number, number, number, number];
  const n = N * C * H * W;
  return {
    x: randn(r, n, scale).map((t) => t + offset),
    shape,
    w: randn(r, C).map((t) => 1 + 0.5 * t),
    b: randn(r, C, 0.5),
    rm: randn(r, C, 0.2),
    rv: randn(r, C).map((t) => 1 + 0.5 * Math.abs(t)),
    dy: randn(r, n),
  };
}

// ------------------------------------------------------------------ fixtures (PyTorch)

describe('PyTorch fixtures', () => {
  for (const v of Object.keys(VARIANTS) as Variant[]) {
    test(`batchnorm2d_train (${v})`, async () => {
      const c = kernelCase('batchnorm2d_train');
      const d: BnData = {
        x: c.f32('x'),
        shape: c.get('x').shape,
        w: c.f32('w'),
        b: c.f32('b'),
        rm: c.f32('running_mean'),
        rv: c.f32('running_var'),
        dy: c.f32('dy'),
      };
      const got = await run(gpus[v], d, true, c.params.eps as number, c.params.momentum as number);
      for (const k of ['y', 'dx', 'dw', 'db'] as const)
        assertClose(got[k], c.f32(k), { ...c.tol(k), name: `train ${k}` });
      assertClose(got.rm, c.f32('running_mean_after'), {
        ...c.tol('running_mean_after'),
        name: 'running_mean',
      });
      assertClose(got.rv, c.f32('running_var_after'), { ...c.tol('running_var_after'), name: 'running_var' });
    });

    test(`batchnorm2d_eval (${v})`, async () => {
      const c = kernelCase('batchnorm2d_eval');
      const d: BnData = {
        x: c.f32('x'),
        shape: c.get('x').shape,
        w: c.f32('w'),
        b: c.f32('b'),
        rm: c.f32('running_mean'),
        rv: c.f32('running_var'),
        dy: c.f32('dy'),
      };
      const got = await run(gpus[v], d, false, c.params.eps as number, 0.1);
      for (const k of ['y', 'dx', 'dw', 'db'] as const)
        assertClose(got[k], c.f32(k), { ...c.tol(k), name: `eval ${k}` });
      // Eval mode leaves the running statistics alone.
      assertClose(got.rm, d.rm, { atol: 0, rtol: 0, name: 'running_mean unchanged' });
      assertClose(got.rv, d.rv, { atol: 0, rtol: 0, name: 'running_var unchanged' });
    });
  }
});

// ------------------------------------------------------------------ random shapes vs the CPU reference

// C = 1 and 3, N = 1, H*W % 4 both ways, planes smaller and larger than one lane's share, large
// offsets (a single-pass E[x^2] - E[x]^2 in f32 would be off by ~1e-1 at offset 1000).
const SHAPES: [number[], number][] = [
  [[2, 1, 3, 3], 0],
  [[1, 3, 5, 7], 0],
  [[4, 3, 4, 4], 0],
  [[3, 8, 16, 17], 0],
  [[2, 5, 32, 32], 0],
  [[1, 2, 64, 80], 0],
  [[6, 4, 6, 6], 0],
  [[9, 3, 5, 5], 1000],
  [[3, 4, 16, 16], 1000],
  // Large enough in N to be split into chunks by the split variant.
  [[120, 1, 3, 3], 0],
  [[40, 3, 4, 4], 0],
  [[30, 3, 5, 5], 1000],
];

/** Split variant: shapes whose samples fit a 4096-byte binding (and that then split into chunks). */
function forVariant(v: Variant, shapes: [number[], number][]) {
  return v === 'split' ? shapes.filter(([s]) => s[1]! * s[2]! * s[3]! * 4 <= 2048) : shapes;
}

describe('batchNorm2d vs CPU reference', () => {
  for (const v of Object.keys(VARIANTS) as Variant[])
    for (const training of [true, false])
      test.each(forVariant(v, SHAPES))(
        `%j + %d (${v}, ${training ? 'train' : 'eval'})`,
        async (shape, offset) => {
          const [N, C, H, W] = shape as [number, number, number, number];
          const HW = H * W;
          const d = randomData(shape, N * C * HW + offset + (training ? 1 : 2), offset);
          if (!training) d.rm = d.rm.map((t) => t + offset);
          const eps = 1e-5;
          const momentum = 0.1;
          const got = await run(gpus[v], d, training, eps, momentum);
          let want: { y: Float64Array; dx: Float64Array; dw: Float64Array; db: Float64Array };
          if (training) {
            const f = ref.batchNormTrain(d.x, d.w, d.b, d.rm, d.rv, N, C, HW, eps, momentum);
            want = { y: f.y, ...ref.batchNormTrainBackward(d.x, d.w, d.dy, N, C, HW, eps) };
            assertClose(got.rm, f.rmAfter, { atol: 1e-5 * (1 + offset), rtol: 1e-5, name: 'running_mean' });
            assertClose(got.rv, f.rvAfter, { atol: 2e-5, rtol: 1e-4, name: 'running_var' });
          } else {
            want = {
              y: ref.batchNormEval(d.x, d.w, d.b, d.rm, d.rv, N, C, HW, eps),
              ...ref.batchNormEvalBackward(d.x, d.w, d.rm, d.rv, d.dy, N, C, HW, eps),
            };
          }
          // f32 inputs near 1000 are quantised to 6e-5, so the batch mean cannot be closer than that.
          const base = offset ? 5e-4 : 2e-5;
          for (const k of ['y', 'dx', 'dw', 'db'] as const) {
            const sum = k === 'dw' || k === 'db';
            assertClose(got[k], want[k], {
              atol: (sum ? 4 : 1) * base * Math.max(1, maxAbs(want[k])),
              rtol: 1e-4,
              name: `${shape} ${k}`,
            });
          }
        },
      );
});

describe('ResNet18-sized plane', () => {
  test('(2, 4, 128, 128) train forward and backward stay accurate over 32K elements per channel', async () => {
    const shape = [2, 4, 128, 128];
    const [N, C, HW] = [2, 4, 128 * 128];
    const d = randomData(shape, 77, 3, 2);
    const got = await run(gpus.cpu, d, true, 1e-5, 0.1);
    const f = ref.batchNormTrain(d.x, d.w, d.b, d.rm, d.rv, N, C, HW, 1e-5, 0.1);
    const g = ref.batchNormTrainBackward(d.x, d.w, d.dy, N, C, HW, 1e-5);
    assertClose(got.y, f.y, { atol: 2e-5 * maxAbs(f.y), rtol: 1e-4, name: 'y' });
    assertClose(got.dx, g.dx, { atol: 2e-5 * maxAbs(g.dx), rtol: 1e-4, name: 'dx' });
    assertClose(got.dw, g.dw, { atol: 1e-4 * maxAbs(g.dw), rtol: 1e-4, name: 'dw' });
    assertClose(got.db, g.db, { atol: 1e-4 * maxAbs(g.db), rtol: 1e-4, name: 'db' });
    assertClose(got.rv, f.rvAfter, { atol: 1e-5, rtol: 1e-5, name: 'running_var' });
  });
});

// ------------------------------------------------------------------ the references' gradients

describe('reference gradients agree with finite differences', () => {
  const [N, C, HW] = [3, 2, 4];
  const r = rng(21);
  const x = Float64Array.from(randn(r, N * C * HW));
  const w = Float64Array.from(randn(r, C));
  const b = Float64Array.from(randn(r, C));
  const rm = Float64Array.from(randn(r, C, 0.3));
  const rv = Float64Array.from(randn(r, C), (t) => 1 + Math.abs(t));
  const dy = Float64Array.from(randn(r, N * C * HW));
  const eps = 1e-5;
  const all = (n: number) => [...Array(n).keys()];
  const close = { atol: 1e-7, rtol: 1e-6 };

  test('train mode', () => {
    const f = (xv: Float64Array, wv: Float64Array, bv: Float64Array) =>
      ref.dot(ref.batchNormTrain(xv, wv, bv, rm, rv, N, C, HW, eps, 0.1).y, dy);
    const g = ref.batchNormTrainBackward(x, w, dy, N, C, HW, eps);
    assertClose(
      g.dx,
      finiteDiff((v) => f(v, w, b), x, all(x.length), 1e-5),
      { ...close, name: 'dx' },
    );
    assertClose(
      g.dw,
      finiteDiff((v) => f(x, v, b), w, all(C), 1e-5),
      { ...close, name: 'dw' },
    );
    assertClose(
      g.db,
      finiteDiff((v) => f(x, w, v), b, all(C), 1e-5),
      { ...close, name: 'db' },
    );
  });

  test('eval mode', () => {
    const f = (xv: Float64Array, wv: Float64Array, bv: Float64Array) =>
      ref.dot(ref.batchNormEval(xv, wv, bv, rm, rv, N, C, HW, eps), dy);
    const g = ref.batchNormEvalBackward(x, w, rm, rv, dy, N, C, HW, eps);
    assertClose(
      g.dx,
      finiteDiff((v) => f(v, w, b), x, all(x.length), 1e-5),
      { ...close, name: 'dx' },
    );
    assertClose(
      g.dw,
      finiteDiff((v) => f(x, v, b), w, all(C), 1e-5),
      { ...close, name: 'dw' },
    );
    assertClose(
      g.db,
      finiteDiff((v) => f(x, w, v), b, all(C), 1e-5),
      { ...close, name: 'db' },
    );
  });

  test('running statistics: unbiased variance, momentum 0.1', () => {
    const s = ref.channelStats(x, N, C, HW);
    const M = N * HW;
    const t = ref.batchNormTrain(x, w, b, rm, rv, N, C, HW, eps, 0.1);
    for (let c = 0; c < C; c++) {
      expect(t.rvAfter[c]).toBeCloseTo(0.9 * rv[c]! + (0.1 * s.varBiased[c]! * M) / (M - 1), 12);
      expect(t.rmAfter[c]).toBeCloseTo(0.9 * rm[c]! + 0.1 * s.mean[c]!, 12);
    }
  });
});

// ------------------------------------------------------------------ op behaviour

describe('op behaviour', () => {
  test('partial needs: dx only, dw/db only; no running stats; noGrad still updates them', async () => {
    const gpu = gpus.cpu;
    const shape = [2, 3, 4, 5];
    const [N, C, HW] = [2, 3, 20];
    const d = randomData(shape, 5, 0);
    const eps = 1e-5;
    for (const training of [true, false]) {
      const x = param(upload(gpu, { data: d.x, shape }));
      const w = upload(gpu, { data: d.w, shape: [C] });
      const b = upload(gpu, { data: d.b, shape: [C] });
      const rm = upload(gpu, { data: d.rm, shape: [C] });
      const rv = upload(gpu, { data: d.rv, shape: [C] });
      backward(batchNorm2d(x, w, b, rm, rv, { training }), { grad: upload(gpu, { data: d.dy, shape }) });
      expect(w.grad).toBeNull();
      const want = training
        ? ref.batchNormTrainBackward(d.x, d.w, d.dy, N, C, HW, eps)
        : ref.batchNormEvalBackward(d.x, d.w, d.rm, d.rv, d.dy, N, C, HW, eps);
      assertClose(await x.grad!.readFloat(), want.dx, { atol: 2e-5, rtol: 1e-4, name: 'dx only' });

      const x2 = upload(gpu, { data: d.x, shape });
      const w2 = param(upload(gpu, { data: d.w, shape: [C] }));
      const b2 = param(upload(gpu, { data: d.b, shape: [C] }));
      backward(batchNorm2d(x2, w2, b2, rm, rv, { training }), { grad: upload(gpu, { data: d.dy, shape }) });
      expect(x2.grad).toBeNull();
      // rm/rv moved once already in train mode; the train-mode grads do not depend on them.
      const want2 = training
        ? ref.batchNormTrainBackward(d.x, d.w, d.dy, N, C, HW, eps)
        : ref.batchNormEvalBackward(d.x, d.w, d.rm, d.rv, d.dy, N, C, HW, eps);
      assertClose(await w2.grad!.readFloat(), want2.dw, { atol: 1e-4, rtol: 1e-4, name: 'dw only' });
      assertClose(await b2.grad!.readFloat(), want2.db, { atol: 1e-4, rtol: 1e-4, name: 'db only' });
    }

    // Train mode without running statistics, and train mode under noGrad (still updates them).
    const x = upload(gpu, { data: d.x, shape });
    const w = upload(gpu, { data: d.w, shape: [C] });
    const b = upload(gpu, { data: d.b, shape: [C] });
    const y = batchNorm2d(x, w, b, null, null, { training: true });
    const f = ref.batchNormTrain(d.x, d.w, d.b, d.rm, d.rv, N, C, HW, eps, 0.1);
    assertClose(await y.readFloat(), f.y, { atol: 2e-5, rtol: 1e-4, name: 'y without running stats' });
    const rm = upload(gpu, { data: d.rm, shape: [C] });
    const rv = upload(gpu, { data: d.rv, shape: [C] });
    noGrad(() => batchNorm2d(x, w, b, rm, rv, { training: true, momentum: 0.1 })).dispose();
    assertClose(await rm.readFloat(), f.rmAfter, { atol: 1e-6, rtol: 1e-5, name: 'rm under noGrad' });
    assertClose(await rv.readFloat(), f.rvAfter, { atol: 1e-6, rtol: 1e-5, name: 'rv under noGrad' });
  });

  test('the split variant really splits', async () => {
    const gpu = gpus.split;
    const d = randomData([30, 3, 5, 5], 1, 0);
    const x = upload(gpu, { data: d.x, shape: d.shape });
    const w = upload(gpu, { data: d.w, shape: [3] });
    const d0 = gpu.stats().dispatches;
    batchNorm2d(x, w, w, null, null, { training: true }).dispose();
    // 1 chunk would be stats + final + apply = 3 dispatches.
    expect(gpu.stats().dispatches - d0).toBeGreaterThan(3);
  });

  test('repeated train steps keep the pool flat and create no pipelines', async () => {
    const gpu = gpus.cpu;
    const d = randomData([4, 8, 8, 8], 3, 0);
    const x = param(upload(gpu, { data: d.x, shape: d.shape }));
    const w = param(upload(gpu, { data: d.w, shape: [8] }));
    const b = param(upload(gpu, { data: d.b, shape: [8] }));
    const rm = upload(gpu, { data: d.rm, shape: [8] });
    const rv = upload(gpu, { data: d.rv, shape: [8] });
    const dy = upload(gpu, { data: d.dy, shape: d.shape });
    const step = () => {
      const y = batchNorm2d(x, w, b, rm, rv, { training: true });
      backward(y, { grad: dy });
      y.dispose();
      const z = batchNorm2d(x, w, b, rm, rv, { training: false });
      backward(z, { grad: dy });
      z.dispose();
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

  test('bad inputs name the op and the shapes', () => {
    const gpu = gpus.cpu;
    const x = Tensor.zeros(gpu, [2, 4, 3, 3]);
    const c4 = Tensor.zeros(gpu, [4]);
    const c5 = Tensor.zeros(gpu, [5]);
    const opts = { training: true };
    expect(() => batchNorm2d(Tensor.zeros(gpu, [2, 4, 9]), c4, c4, c4, c4, opts)).toThrow(
      /batchNorm2d: input must be NCHW \(rank 4\), got \[2, 4, 9\]/,
    );
    expect(() => batchNorm2d(x, c5, c4, c4, c4, opts)).toThrow(
      /batchNorm2d: weight has shape \[5\], expected \[4\] for input \[2, 4, 3, 3\]/,
    );
    expect(() => batchNorm2d(x, c4, c4, c5, c4, opts)).toThrow(
      /batchNorm2d: runningMean has shape \[5\], expected \[4\] for input \[2, 4, 3, 3\]/,
    );
    expect(() => batchNorm2d(x, c4, c4, c4, c5, opts)).toThrow(
      /batchNorm2d: runningVar has shape \[5\], expected \[4\] for input \[2, 4, 3, 3\]/,
    );
    expect(() => batchNorm2d(x, c4, c4, null, null, { training: false })).toThrow(
      /batchNorm2d: eval mode needs runningMean and runningVar \(input \[2, 4, 3, 3\]\)/,
    );
    expect(() => batchNorm2d(Tensor.zeros(gpu, [1, 4, 1, 1]), c4, c4, c4, c4, opts)).toThrow(
      /batchNorm2d: expected more than 1 value per channel when training, got input \[1, 4, 1, 1\]/,
    );
  });
});
