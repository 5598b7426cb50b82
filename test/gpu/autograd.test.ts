import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { backward, noGrad, param, releaseGraph } from '../../src/autograd/tape.js';
import type { Gpu } from '../../src/gpu/device.js';
import * as ops from '../../src/ops/index.js';
import { tidy } from '../../src/tensor/scope.js';
import { Tensor } from '../../src/tensor/tensor.js';
import * as ref from '../reference/elementwise.js';
import { assertClose, closeTestGpus, testGpu } from '../helpers.js';

let gpu: Gpu;
beforeAll(async () => {
  gpu = await testGpu();
});
afterAll(closeTestGpus);

describe('tape', () => {
  test('noGrad records nothing and frozen inputs get no gradient', async () => {
    const w = param(Tensor.fromData(gpu, [1, 2, 3], [3]));
    const frozen = Tensor.fromData(gpu, [4, 5, 6], [3]);
    const y = noGrad(() => ops.mul(w, frozen));
    expect(y.requiresGrad).toBe(false);
    expect(y.gradFn).toBeNull();
    const z = ops.sum(ops.mul(w, frozen));
    backward(z);
    expect(frozen.grad).toBeNull();
    expect(Array.from(await w.grad!.read())).toEqual([4, 5, 6]);
  });

  test('gradients accumulate across backward calls until cleared', async () => {
    const w = param(Tensor.fromData(gpu, [1, -1], [2]));
    backward(ops.sum(ops.square(w)));
    backward(ops.sum(ops.square(w)));
    expect(Array.from(await w.grad!.read())).toEqual([4, -4]);
    w.grad!.dispose();
    w.grad = null;
    backward(ops.sum(ops.scale(w, 3)));
    expect(Array.from(await w.grad!.read())).toEqual([3, 3]);
  });

  test('a tensor used twice sums both paths (diamond graph)', async () => {
    const x = param(Tensor.fromData(gpu, [0.5, -2], [2]));
    const a = ops.relu(x);
    const b = ops.gelu(x);
    backward(ops.sum(ops.mul(a, b)));
    // d/dx relu(x)*gelu(x): x>0: gelu(x) + x*gelu'(x); x<0: 0
    const g = await x.grad!.read();
    assertClose(g, [ref.gelu(0.5) + 0.5 * ref.geluGrad(0.5), 0], { atol: 1e-5, rtol: 1e-5 });
  });

  test('backward twice through a released graph is an error, retainGraph allows it', async () => {
    const x = param(Tensor.fromData(gpu, [2], [1]));
    const y = ops.square(ops.scale(x, 3));
    backward(y, { retainGraph: true });
    backward(y);
    expect(Array.from(await x.grad!.read())).toEqual([72]);
    const u = ops.gelu(ops.relu(x));
    const v = ops.square(u);
    backward(v);
    expect(() => backward(u)).toThrow(/already released/);
  });

  test('saved tensors are freed by backward and by releaseGraph, even if disposed by a scope', async () => {
    await gpu.sync();
    const base = gpu.stats().pool.liveBytes;
    const x = param(Tensor.fromData(gpu, new Float32Array(1000).fill(1), [1000]));
    const loss = tidy(() => ops.sum(ops.mul(ops.gelu(x), ops.exp(x))));
    // Intermediates were disposed by tidy, but the tape keeps what backward needs.
    expect(gpu.stats().pool.liveBytes).toBeGreaterThan(base + 2 * 4000);
    backward(loss);
    loss.dispose();
    x.grad!.dispose();
    x.dispose();
    expect(gpu.stats().pool.liveBytes).toBe(base);
    const x2 = param(Tensor.fromData(gpu, new Float32Array(1000).fill(1), [1000]));
    const l2 = tidy(() => ops.sum(ops.gelu(x2)));
    releaseGraph(l2);
    l2.dispose();
    x2.dispose();
    expect(gpu.stats().pool.liveBytes).toBe(base);
  });

  test('tidy disposes what it does not return, also when fn throws', async () => {
    const before = gpu.stats().pool.liveBuffers;
    const keep = tidy(() => {
      Tensor.zeros(gpu, [10]);
      return { a: Tensor.zeros(gpu, [3]), list: [Tensor.zeros(gpu, [4])] };
    });
    expect(gpu.stats().pool.liveBuffers).toBe(before + 2);
    keep.a.dispose();
    keep.list[0]!.dispose();
    expect(() =>
      tidy(() => {
        Tensor.zeros(gpu, [10]);
        throw new Error('boom');
      }),
    ).toThrow('boom');
    expect(gpu.stats().pool.liveBuffers).toBe(before);
  });

  test('use after dispose names the tensor', () => {
    const t = Tensor.zeros(gpu, [2, 2]);
    t.name = 'w';
    t.dispose();
    expect(() => t.buffer).toThrow(/tensor w\[2, 2\] was used after dispose/);
  });
});

describe('graph lifetime', () => {
  test('a branch backward never reaches is freed once its output is disposed', async () => {
    await gpu.sync();
    const base = gpu.stats().pool.liveBytes;
    const w = param(Tensor.fromData(gpu, new Float32Array(500).fill(0.5), [500]));
    for (let i = 0; i < 3; i++) {
      tidy(() => {
        const h = ops.gelu(w);
        const used = ops.sum(ops.square(h));
        // A second output that the loss does not use (like SAM's IoU head).
        ops.exp(ops.relu(h));
        backward(used);
      });
    }
    w.grad!.dispose();
    w.grad = null;
    w.dispose();
    expect(gpu.stats().pool.liveBytes).toBe(base);
  });

  test('disposing intermediates before backward keeps what backward needs', async () => {
    const x = param(Tensor.fromData(gpu, [1, 2, 3], [3]));
    const a = ops.square(x);
    const b = ops.exp(a);
    const loss = ops.sum(b);
    a.dispose();
    b.dispose();
    backward(loss);
    const want = [1, 2, 3].map((v) => 2 * v * Math.exp(v * v));
    assertClose(await x.grad!.read(), want, { rtol: 1e-5, atol: 1e-5 });
  });
});
