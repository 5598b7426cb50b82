import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { backward, param } from '../../src/autograd/tape.js';
import type { Gpu } from '../../src/gpu/device.js';
import {
  runSoftmax,
  runSoftmaxBackward,
  softmaxLayout,
  type SoftmaxLayout,
} from '../../src/kernels/softmax.js';
import '../../src/ops/index.js';
import { softmax } from '../../src/ops/attention.js';
import { Tensor } from '../../src/tensor/tensor.js';
import * as ref from '../reference/attention.js';
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

let gpus: Record<string, Gpu>;
beforeAll(async () => {
  gpus = {
    default: await testGpu(),
    gpu: await testGpu({ profile: { kind: 'gpu' } }),
    split: await testGpu({ profile: { maxStorageBindingBytes: 4096 } }),
  };
});
afterAll(closeTestGpus);

const SHAPES: number[][] = [[1], [3, 17], [2, 3, 4], [300, 33], [7, 1500], [2, 5, 1025], [64, 130]];

async function check(g: Gpu, shape: number[], seed: number, scale = 3): Promise<void> {
  const r = rng(seed);
  const n = shape.reduce((a, b) => a * b, 1);
  const cols = shape[shape.length - 1]!;
  const xd = randn(r, n, scale);
  const dyd = randn(r, n);
  const x = param(upload(g, { data: xd, shape }));
  const y = softmax(x);
  const dy = upload(g, { data: dyd, shape });
  backward(y, { grad: dy });
  const want = ref.softmax(xd, n / cols, cols);
  assertClose(await y.read(), want, { atol: 1e-7, rtol: 2e-6, name: `softmax ${shape} y` });
  const dx = ref.softmaxBackward(want, dyd, n / cols, cols);
  assertClose(await x.grad!.read(), dx, { atol: 1e-7, rtol: 1e-5, name: `softmax ${shape} dx` });
  for (const t of [x.grad!, x, y, dy]) t.dispose();
}

describe('softmax over the last axis', () => {
  for (const variant of ['default', 'gpu', 'split'] as const) {
    // The 4096-byte binding limit splits the rows into chunks; a single row must still fit.
    const shapes = variant === 'split' ? SHAPES.filter((s) => s[s.length - 1]! <= 900) : SHAPES;
    test.each(shapes.map((s, i) => [JSON.stringify(s), s, i] as const))(
      `${variant}: %s forward and backward vs reference`,
      async (_n, shape, i) => {
        await check(gpus[variant]!, shape, 10 + i);
      },
    );
  }

  test.each(['rows', 'wide'] as SoftmaxLayout[])(
    'both kernel layouts agree with the reference (%s)',
    async (layout) => {
      const g = gpus.default!;
      for (const [rows, cols] of [
        [5, 3],
        [9, 700],
        [1, 2049],
      ] as const) {
        const r = rng(rows * cols);
        const xd = randn(r, rows * cols, 4);
        const dyd = randn(r, rows * cols);
        const x = upload(g, { data: xd, shape: [rows, cols] });
        const dy = upload(g, { data: dyd, shape: [rows, cols] });
        const y = Tensor.empty(g, [rows, cols]);
        const dx = Tensor.empty(g, [rows, cols]);
        runSoftmax(x, y, rows, cols, layout);
        runSoftmaxBackward(y, dy, dx, rows, cols, layout);
        const want = ref.softmax(xd, rows, cols);
        assertClose(await y.read(), want, { atol: 1e-7, rtol: 2e-6, name: `${layout} y` });
        assertClose(await dx.read(), ref.softmaxBackward(want, dyd, rows, cols), {
          atol: 1e-7,
          rtol: 1e-5,
          name: `${layout} dx`,
        });
        for (const t of [x, dy, y, dx]) t.dispose();
      }
    },
  );

  test('layout choice: long rows use a workgroup per row; real GPUs for rows of 128+', () => {
    expect(softmaxLayout(gpus.default!, 10, 4096)).toBe('wide');
    expect(softmaxLayout(gpus.default!, 10000, 64)).toBe('rows');
    expect(softmaxLayout(gpus.gpu!, 10, 256)).toBe('wide');
  });

  test('huge logits stay finite (max subtracted)', async () => {
    const g = gpus.default!;
    const x = upload(g, { data: Float32Array.of(1000, 999, -1e30, 3e38, 3e38), shape: [1, 5] });
    const y = await softmax(x).read();
    assertClose(y, [0, 0, 0, 0.5, 0.5], { atol: 1e-7, name: 'huge' });
  });

  test('matches the PyTorch fixture softmax_last', async () => {
    for (const g of [gpus.default!, gpus.gpu!]) {
      const c = kernelCase('softmax_last');
      const x = param(upload(g, c.get('x')));
      const y = softmax(x);
      backward(y, { grad: upload(g, c.get('dy')) });
      assertClose(await y.read(), c.f32('y'), { ...c.tol('y'), name: 'softmax_last y' });
      assertClose(await x.grad!.read(), c.f32('dx'), { ...c.tol('dx'), name: 'softmax_last dx' });
    }
  });

  test('reference backward agrees with finite differences', () => {
    const r = rng(4);
    const rows = 3;
    const cols = 7;
    const x = Float64Array.from(randn(r, rows * cols, 2));
    const dy = Float64Array.from(randn(r, rows * cols));
    const f = (v: Float64Array) => ref.softmax(v, rows, cols).reduce((s, y, i) => s + y * dy[i]!, 0);
    const fd = finiteDiff(f, x, [...x.keys()], 1e-5);
    assertClose(fd, ref.softmaxBackward(ref.softmax(x, rows, cols), dy, rows, cols), {
      atol: 1e-8,
      rtol: 1e-6,
      name: 'softmax FD',
    });
  });

  test('bad input names the op and the shape', () => {
    const g = gpus.default!;
    expect(() => softmax(Tensor.zeros(g, []))).toThrow(/softmax: x must have rank >= 1, got shape \[\]/);
    expect(() => softmax(Tensor.fromData(g, Int32Array.of(1, 2), [2]))).toThrow(
      /softmax: x must be f32, got i32 \[2\]/,
    );
  });
});
