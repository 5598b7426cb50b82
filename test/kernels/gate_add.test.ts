import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { backward, param } from '../../src/autograd/tape.js';
import type { Gpu } from '../../src/gpu/device.js';
import '../../src/ops/index.js';
import { gateAdd } from '../../src/ops/gate.js';
import { gatePartialCount, runGateBwd, runGateDalpha, runGateFwd } from '../../src/kernels/gate_add.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { tidy } from '../../src/tensor/scope.js';
import * as ref from '../reference/gate_add.js';
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
beforeAll(async () => {
  gpu = await testGpu();
});
afterAll(closeTestGpus);

const numel = (s: number[]) => s.reduce((a, b) => a * b, 1);

/** Runs the op with autograd and compares y, da, db, dalpha with the float64 reference. */
async function checkOp(g: Gpu, shape: number[], seed: number, aNeedsGrad: boolean, alphaVal = 0.37) {
  const r = rng(seed);
  const n = numel(shape);
  const ad = randn(r, n);
  const bd = randn(r, n);
  const dyd = randn(r, n);
  const alpha = param(Tensor.fromData(g, Float32Array.of(alphaVal), [1]));
  const a = upload(g, { data: ad, shape });
  if (aNeedsGrad) param(a);
  const b = param(upload(g, { data: bd, shape }));
  const y = gateAdd(alpha, a, b);
  backward(y, { grad: upload(g, { data: dyd, shape }) });
  const al = Math.fround(alphaVal);
  const want = ref.gateBackward(al, ad, bd, dyd);
  assertClose(await y.read(), ref.gateForward(al, ad, bd), { atol: 1e-6, rtol: 1e-6, name: 'y' });
  assertClose(await b.grad!.read(), want.db, { atol: 1e-6, rtol: 1e-6, name: 'db' });
  if (aNeedsGrad) assertClose(await a.grad!.read(), want.da, { atol: 1e-6, rtol: 1e-6, name: 'da' });
  else expect(a.grad).toBeNull();
  // d_alpha is a sum of n terms of size ~1: f32 error grows like sqrt(n) * eps * typical magnitude.
  const sumAbs = ad.reduce((s, v, i) => s + Math.abs(dyd[i]! * (v - bd[i]!)), 0);
  assertClose(await alpha.grad!.read(), [want.dalpha], {
    atol: 1e-6 * Math.max(1, sumAbs / 100),
    rtol: 1e-5,
    name: 'dalpha',
  });
  for (const t of [alpha, a, b, y]) {
    t.grad?.dispose();
    t.dispose();
  }
}

describe('gateAdd vs the float64 reference', () => {
  // vec4 path: n % 4 == 0; scalar path otherwise. Sizes straddle the WG*ITEMS = 2048 block.
  const shapes: [number[], boolean][] = [
    [[1, 3, 5, 7], true],
    [[2, 4, 9, 11], true],
    [[3, 5, 13, 17], false],
    [[2, 3, 11, 31], true],
    [[1, 1, 1, 1], true],
    [[2, 256, 32, 32], false],
    [[3, 1, 2049, 1], true],
  ];
  test.each(shapes)('shape %j, a requires grad: %s', async (shape, aGrad) => {
    await checkOp(gpu, shape, numel(shape), aGrad);
  });

  test('large |alpha| saturates the gate without NaN', async () => {
    await checkOp(gpu, [2, 3, 4, 5], 3, true, 40);
    await checkOp(gpu, [2, 3, 4, 5], 4, true, -40);
  });

  test('forced scalar entries on a vec4-able size agree with the vec4 entries', async () => {
    const r = rng(11);
    const n = 4 * 2500;
    const mk = (d: Float32Array) => upload(gpu, { data: d, shape: [n] });
    const alpha = Tensor.fromData(gpu, Float32Array.of(-0.6), [1]);
    const [ad, bd, dyd] = [randn(r, n), randn(r, n), randn(r, n)];
    const [a, b, dy] = [mk(ad), mk(bd), mk(dyd)];
    const want = ref.gateBackward(Math.fround(-0.6), ad, bd, dyd);
    for (const scalar of [false, true]) {
      const y = Tensor.empty(gpu, [n]);
      const da = Tensor.empty(gpu, [n]);
      const db = Tensor.empty(gpu, [n]);
      const parts = Tensor.empty(gpu, [gatePartialCount(gpu, n, { scalar })]);
      const dal = Tensor.empty(gpu, [1]);
      runGateFwd(alpha, a, b, y, { scalar });
      runGateBwd(alpha, dy, a, b, db, da, parts, { scalar });
      runGateDalpha(alpha, parts, dal);
      const tag = scalar ? 'scalar' : 'vec4';
      assertClose(await y.read(), ref.gateForward(Math.fround(-0.6), ad, bd), {
        atol: 1e-6,
        rtol: 1e-6,
        name: `${tag} y`,
      });
      assertClose(await da.read(), want.da, { atol: 1e-6, rtol: 1e-6, name: `${tag} da` });
      assertClose(await db.read(), want.db, { atol: 1e-6, rtol: 1e-6, name: `${tag} db` });
      assertClose(await dal.read(), [want.dalpha], { atol: 2e-4, rtol: 1e-5, name: `${tag} dalpha` });
      [y, da, db, parts, dal].forEach((t) => t.dispose());
    }
  });

  test('d_alpha is bitwise deterministic across runs', async () => {
    const r = rng(21);
    const shape = [4, 64, 16, 16];
    const n = numel(shape);
    const a = upload(gpu, { data: randn(r, n), shape });
    const b = upload(gpu, { data: randn(r, n), shape });
    const dy = upload(gpu, { data: randn(r, n), shape });
    const got: number[] = [];
    for (let k = 0; k < 3; k++) {
      const alpha = param(Tensor.fromData(gpu, Float32Array.of(0.1), [1]));
      const y = gateAdd(alpha, a, b);
      backward(y, { grad: dy });
      got.push((await alpha.grad!.read())[0]!);
      alpha.grad!.dispose();
      alpha.dispose();
      y.dispose();
    }
    expect(new Set(got).size).toBe(1);
  });

  test('reference d_alpha agrees with finite differences', () => {
    const r = rng(5);
    const n = 50;
    const a = Float64Array.from(randn(r, n));
    const b = Float64Array.from(randn(r, n));
    const dy = Float64Array.from(randn(r, n));
    for (const al of [-2, -0.25, 0, 0.7, 3]) {
      const fd = finiteDiff((x) => ref.gateObjective(x[0]!, a, b, dy), Float64Array.of(al), [0], 1e-5);
      assertClose(fd, [ref.gateBackward(al, a, b, dy).dalpha], {
        atol: 1e-8,
        rtol: 1e-7,
        name: `FD alpha=${al}`,
      });
      // d_a and d_b: perturb single elements of a and b.
      const fa = finiteDiff((x) => ref.gateObjective(al, x, b, dy), a, [0, 17, 49], 1e-5);
      const fb = finiteDiff((x) => ref.gateObjective(al, a, x, dy), b, [3, 28], 1e-5);
      const g = ref.gateBackward(al, a, b, dy);
      assertClose(fa, [g.da[0]!, g.da[17]!, g.da[49]!], { atol: 1e-8, rtol: 1e-7, name: 'FD a' });
      assertClose(fb, [g.db[3]!, g.db[28]!], { atol: 1e-8, rtol: 1e-7, name: 'FD b' });
    }
  });

  test('matches the PyTorch fixture sigmoid_gate (y, da, dc, dalpha)', async () => {
    const c = kernelCase('sigmoid_gate');
    const alpha = param(upload(gpu, c.get('alpha')));
    const a = param(upload(gpu, c.get('a')));
    const b = param(upload(gpu, c.get('c')));
    const y = gateAdd(alpha, a, b);
    backward(y, { grad: upload(gpu, c.get('dy')) });
    assertClose(await y.read(), c.f32('y'), { ...c.tol('y'), name: 'y' });
    assertClose(await a.grad!.read(), c.f32('da'), { ...c.tol('da'), name: 'da' });
    assertClose(await b.grad!.read(), c.f32('dc'), { ...c.tol('dc'), name: 'dc' });
    assertClose(await alpha.grad!.read(), c.f32('dalpha'), { ...c.tol('dalpha'), name: 'dalpha' });
  });
});

describe('fixed gate (ablations)', () => {
  test('a number alpha: no alpha gradient, b still gets (1-g)*dy', async () => {
    const r = rng(8);
    const shape = [2, 3, 5, 5];
    const n = numel(shape);
    const [ad, bd, dyd] = [randn(r, n), randn(r, n), randn(r, n)];
    const a = upload(gpu, { data: ad, shape });
    const b = param(upload(gpu, { data: bd, shape }));
    const y = gateAdd(1.5, a, b);
    backward(y, { grad: upload(gpu, { data: dyd, shape }) });
    const al = Math.fround(1.5);
    assertClose(await y.read(), ref.gateForward(al, ad, bd), { atol: 1e-6, rtol: 1e-6, name: 'y' });
    assertClose(await b.grad!.read(), ref.gateBackward(al, ad, bd, dyd).db, {
      atol: 1e-6,
      rtol: 1e-6,
      name: 'db',
    });
    expect(a.grad).toBeNull();
  });

  test('an alpha tensor without requiresGrad gets no gradient', async () => {
    const shape = [1, 8, 4, 4];
    const alpha = Tensor.fromData(gpu, Float32Array.of(0), [1]);
    const a = param(Tensor.zeros(gpu, shape));
    const b = param(Tensor.zeros(gpu, shape));
    const y = gateAdd(alpha, a, b);
    backward(y, { grad: Tensor.zeros(gpu, shape) });
    expect(alpha.grad).toBeNull();
    expect(a.grad).not.toBeNull();
    expect(b.grad).not.toBeNull();
  });
});

describe('binding limits and memory', () => {
  test.each([
    [[3, 7, 11, 13]], // scalar path, 3003 elements
    [[2, 5, 32, 33]], // vec4 path, 10560 elements
  ])('tensors over the binding limit are split into chunks: %j', async (shape) => {
    const small = await testGpu({ profile: { maxStorageBindingBytes: 4096 } });
    await checkOp(small, shape, 77, true);
  });

  test('the kind=gpu profile (256-thread workgroups, shared-memory tree partials)', async () => {
    const g = await testGpu({ profile: { kind: 'gpu', subgroups: false } });
    await checkOp(g, [2, 64, 16, 16], 78, true); // vec4, 4 blocks
    await checkOp(g, [3, 5, 13, 17], 79, false); // scalar, 2 blocks
  });

  test('repeated forward+backward keeps pool bytes flat and creates no pipelines', async () => {
    const r = rng(9);
    const shape = [2, 8, 16, 16];
    const n = numel(shape);
    const alpha = param(Tensor.fromData(gpu, Float32Array.of(0), [1]));
    const a = upload(gpu, { data: randn(r, n), shape });
    const b = param(upload(gpu, { data: randn(r, n), shape }));
    const step = () =>
      tidy(() => {
        backward(gateAdd(alpha, a, b), { grad: Tensor.zeros(gpu, shape) });
      });
    step();
    step();
    await gpu.sync();
    const before = gpu.stats();
    for (let i = 0; i < 20; i++) step();
    await gpu.sync();
    const after = gpu.stats();
    expect(after.pool.liveBytes).toBe(before.pool.liveBytes);
    expect(after.pipelinesCreated).toBe(before.pipelinesCreated);
  });
});

describe('bad input', () => {
  test('mismatched shapes name the op and both shapes', () => {
    const alpha = Tensor.zeros(gpu, [1]);
    const a = Tensor.zeros(gpu, [2, 3, 4, 4]);
    const b = Tensor.zeros(gpu, [2, 3, 4, 5]);
    expect(() => gateAdd(alpha, a, b)).toThrow(/gateAdd: a \[2, 3, 4, 4\] and b \[2, 3, 4, 5\]/);
  });
  test('alpha with more than one element is rejected', () => {
    const a = Tensor.zeros(gpu, [2, 2]);
    expect(() => gateAdd(Tensor.zeros(gpu, [2]), a, a)).toThrow(
      /gateAdd: alpha must be a 1-element f32 tensor, got f32\[2\]/,
    );
  });
});
