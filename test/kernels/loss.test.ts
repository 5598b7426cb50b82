import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { backward, noGrad, param } from '../../src/autograd/tape.js';
import type { Gpu } from '../../src/gpu/device.js';
import '../../src/ops/index.js';
import { assertValidLabels, ceDiceLoss, LabelRangeError } from '../../src/ops/loss.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { tidy } from '../../src/tensor/scope.js';
import * as ref from '../reference/loss.js';
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

const numel = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);

function randLabels(seed: number, n: number, C: number): Int32Array {
  const r = rng(seed);
  return Int32Array.from({ length: n }, () => r.int(0, C));
}

async function checkLoss(
  g: Gpu,
  shape: [number, number, number, number],
  seed: number,
  o: { lambda?: number; smooth?: number; scale?: number; hostLabels?: boolean } = {},
) {
  const [B, C, H, W] = shape;
  const r = rng(seed);
  const xd = randn(r, numel(shape), o.scale ?? 2);
  const ld = randLabels(seed + 1, B * H * W, C);
  const gup = r.normal();
  const lambda = o.lambda ?? 0.8;
  const smooth = o.smooth ?? 1e-5;
  const x = param(upload(g, { data: xd, shape }));
  const labels = o.hostLabels ? ld : upload(g, { data: ld, shape: [B, H, W] });
  const res = ceDiceLoss(x, labels, { lambda, smooth, classes: C });
  backward(res.total, { grad: Tensor.fromData(g, Float32Array.of(gup), [1]) });
  const want = ref.lossWithGrad(xd, ld, shape, lambda, smooth);
  assertClose(await res.ce.read(), [want.ce], { atol: 1e-6, rtol: 2e-6, name: 'ce' });
  assertClose(await res.dice.read(), [want.dice], { atol: 1e-6, rtol: 2e-6, name: 'dice' });
  assertClose(await res.total.read(), [want.total], { atol: 1e-6, rtol: 2e-6, name: 'total' });
  expect((await res.invalidLabels.read())[0]).toBe(0);
  const dxMax = want.dx.reduce((m, v) => Math.max(m, Math.abs(v)), 0) * Math.abs(gup);
  assertClose(
    await x.grad!.read(),
    want.dx.map((v) => v * gup),
    { atol: 2e-5 * dxMax + 1e-9, rtol: 1e-4, name: 'dx' },
  );
}

describe('ceDiceLoss vs the float64 reference', () => {
  const shapes: [number, number, number, number][] = [
    // Class counts are override constants (one pipeline set each): keep to 2, 5, 9 and the max 16.
    [1, 2, 5, 7],
    [2, 5, 9, 11],
    [3, 9, 13, 17],
    [2, 5, 1, 1],
    [1, 9, 33, 65],
    [2, 9, 128, 128],
    [3, 16, 7, 5],
  ];
  test.each(shapes)('shape (%i, %i, %i, %i)', async (...shape) => {
    await checkLoss(gpu, shape, numel(shape));
  });

  test('lambda, smooth and label input from host data are parameters', async () => {
    await checkLoss(gpu, [2, 5, 7, 9], 41, { lambda: 0.3, smooth: 1e-3, hostLabels: true });
    await checkLoss(gpu, [2, 5, 7, 9], 42, { lambda: 0, scale: 6 });
    await checkLoss(gpu, [2, 5, 7, 9], 43, { lambda: 1, scale: 0.1 });
  });

  test('extreme logits stay finite (max-subtracted softmax)', async () => {
    await checkLoss(gpu, [2, 9, 6, 10], 44, { scale: 60 });
  });

  test('reference gradient agrees with finite differences', () => {
    const shape = [2, 4, 3, 5] as const;
    const r = rng(3);
    const x = Float64Array.from(randn(r, numel(shape), 1.5));
    const lab = randLabels(4, 2 * 15, 4);
    for (const [lambda, smooth] of [
      [0.8, 1e-5],
      [0.3, 1e-2],
    ] as const) {
      const idx = [0, 7, 31, 64, 100, 119];
      const fd = finiteDiff((v) => ref.lossValue(v, lab, shape, lambda, smooth).total, x, idx, 1e-5);
      const an = ref.lossWithGrad(x, lab, shape, lambda, smooth).dx;
      assertClose(
        fd,
        idx.map((i) => an[i]!),
        { atol: 1e-9, rtol: 1e-6, name: `FD lambda=${lambda}` },
      );
    }
  });

  test('matches the PyTorch fixture loss_ce_dice (total, ce, dice, dx)', async () => {
    const c = kernelCase('loss_ce_dice');
    expect(c.params.classes).toBe(9);
    const x = param(upload(gpu, c.get('x')));
    const lab = upload(gpu, c.get('label'));
    expect(lab.dtype).toBe('i32');
    const res = ceDiceLoss(x, lab, { lambda: 0.8, classes: 9, smooth: c.params.dice_smooth as number });
    backward(res.total, { grad: upload(gpu, c.get('dy')) });
    // y/ce have f32_maxabs 0 in the manifest, so the tolerance floor is 1e-5*ref_maxabs (~1.4e-5).
    assertClose(await res.total.read(), c.f32('y'), { ...c.tol('y'), name: 'total' });
    assertClose(await res.ce.read(), c.f32('ce'), { ...c.tol('ce'), name: 'ce' });
    assertClose(await res.dice.read(), c.f32('dice'), { ...c.tol('dice'), name: 'dice' });
    assertClose(await x.grad!.read(), c.f32('dx'), { ...c.tol('dx'), name: 'dx' });
  });
});

describe('variants, splitting and memory', () => {
  test('batches over the binding limit are split into whole-image chunks', async () => {
    const small = await testGpu({ profile: { maxStorageBindingBytes: 4096 } });
    await checkLoss(small, [7, 5, 11, 13], 51);
  });

  test('the kind=gpu profile', async () => {
    const g = await testGpu({ profile: { kind: 'gpu', subgroups: false } });
    await checkLoss(g, [2, 9, 17, 19], 52);
  });

  test('repeated loss+backward keeps pool bytes flat and creates no pipelines', async () => {
    const shape = [2, 9, 16, 16];
    const r = rng(6);
    const x = param(upload(gpu, { data: randn(r, numel(shape)), shape }));
    const lab = upload(gpu, { data: randLabels(7, 512, 9), shape: [2, 16, 16] });
    const step = () =>
      tidy(() => {
        backward(ceDiceLoss(x, lab).total);
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

  test('under noGrad nothing is recorded', () => {
    const x = param(Tensor.zeros(gpu, [1, 5, 2, 2]));
    const res = noGrad(() => ceDiceLoss(x, new Int32Array(4)));
    expect(res.total.requiresGrad).toBe(false);
  });
});

describe('bad input', () => {
  test('host labels out of range throw at once, naming the value and position', () => {
    const x = Tensor.zeros(gpu, [2, 3, 2, 2]);
    const lab = new Int32Array(8);
    lab[6] = 3;
    expect(() => ceDiceLoss(x, lab)).toThrow(LabelRangeError);
    expect(() => ceDiceLoss(x, lab)).toThrow(/ceDiceLoss: label 3 at \[1, 1, 0\] is outside \[0, 3\)/);
    lab[6] = -1;
    expect(() => ceDiceLoss(x, { shape: [2, 2, 2], dtype: 'i32', data: lab })).toThrow(/label -1/);
  });

  test('GPU labels out of range poison the loss and gradient with NaN and are reported', async () => {
    const shape = [2, 5, 4, 4] as const;
    const x = param(upload(gpu, { data: randn(rng(1), 160), shape: [...shape] }));
    for (const badValue of [5, -1, 1000]) {
      const ld = randLabels(2, 32, 5);
      ld[17] = badValue;
      const lab = upload(gpu, { data: ld, shape: [2, 4, 4] });
      const res = ceDiceLoss(x, lab);
      backward(res.total);
      expect(Number.isNaN((await res.total.read())[0])).toBe(true);
      expect(Number.isNaN((await res.ce.read())[0])).toBe(true);
      expect(Number.isNaN((await res.dice.read())[0])).toBe(true);
      expect((await x.grad!.read()).every((v) => Number.isNaN(v))).toBe(true);
      await expect(assertValidLabels(res, 5)).rejects.toThrow(/ceDiceLoss: 1 label\(s\) outside \[0, 5\)/);
      x.grad!.dispose();
      x.grad = null;
    }
  });

  test('shape errors name the op and the shapes', () => {
    const x = Tensor.zeros(gpu, [2, 3, 4, 5]);
    expect(() => ceDiceLoss(x, Tensor.zeros(gpu, [2, 4, 4], 'i32'))).toThrow(
      /ceDiceLoss: labels i32\[2, 4, 4\] must be i32 \[2, 4, 5\] for logits \[2, 3, 4, 5\]/,
    );
    expect(() => ceDiceLoss(x, Tensor.zeros(gpu, [2, 4, 5]))).toThrow(/labels f32\[2, 4, 5\] must be i32/);
    expect(() => ceDiceLoss(Tensor.zeros(gpu, [3, 4, 5]), new Int32Array(20))).toThrow(
      /ceDiceLoss: logits must be f32 \(B, C, H, W\), got f32\[3, 4, 5\]/,
    );
    expect(() => ceDiceLoss(x, new Int32Array(40), { classes: 9 })).toThrow(
      /ceDiceLoss: classes = 9 but logits \[2, 3, 4, 5\] have 3 channels/,
    );
    expect(() => ceDiceLoss(x, new Int32Array(39))).toThrow(/host labels i32\[2, 4, 5\] \(39 values\)/);
    expect(() => ceDiceLoss(Tensor.zeros(gpu, [1, 17, 2, 2]), new Int32Array(4))).toThrow(/17 classes/);
  });
});
