/**
 * nn/layers.ts and nn/capture.ts: PyTorch parameter names and default initialisation (bounds,
 * seeded determinism, zero init with rng null), nn.Sequential index gaps, BatchNorm2d running
 * statistics with momentum and with momentum null (cumulative average, as PyTorch), loading
 * num_batches_tracked, and Capture semantics (activation values, retained gradients, aliases).
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { backward, noGrad, param } from '../../src/autograd/tape.js';
import type { Gpu } from '../../src/gpu/device.js';
import { Capture, tap } from '../../src/nn/capture.js';
import {
  BatchNorm2d,
  Conv2d,
  ConvTranspose2d,
  Embedding,
  LayerNorm,
  Linear,
  MLP,
  ModuleList,
} from '../../src/nn/layers.js';
import { mul } from '../../src/ops/elementwise.js';
import { sum } from '../../src/ops/reduce.js';
import { tidy } from '../../src/tensor/scope.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { Rng } from '../../src/util/rng.js';
import { closeTestGpus, randn, rng, testGpu } from '../helpers.js';

let gpu: Gpu;
beforeAll(async () => {
  gpu = await testGpu();
});
afterAll(closeTestGpus);

const maxAbs = (a: ArrayLike<number>) => Array.from(a).reduce((m, v) => Math.max(m, Math.abs(v)), 0);

describe('default initialisation', () => {
  test('Linear / Conv2d / ConvTranspose2d: U(-1/sqrt(fan_in), 1/sqrt(fan_in)), seeded', async () => {
    const lin = new Linear(gpu, 50, 7, new Rng(1));
    const conv = new Conv2d(gpu, 6, 4, 3, new Rng(1), { groups: 2 });
    const convT = new ConvTranspose2d(gpu, 8, 5, 2, new Rng(1), { stride: 2 });
    const cases: [string, Tensor, number][] = [
      ['linear.weight', lin.weight, 1 / Math.sqrt(50)],
      ['linear.bias', lin.bias!, 1 / Math.sqrt(50)],
      ['conv.weight', conv.weight, 1 / Math.sqrt(3 * 9)],
      ['conv.bias', conv.bias!, 1 / Math.sqrt(3 * 9)],
      // torch's fan_in of a ConvTranspose2d weight (Cin, Cout, k, k) is Cout * k * k.
      ['convT.weight', convT.weight, 1 / Math.sqrt(5 * 4)],
    ];
    for (const [n, t, bound] of cases) {
      const v = await t.readFloat();
      expect(maxAbs(v), n).toBeLessThanOrEqual(bound);
      expect(maxAbs(v), n).toBeGreaterThan(0.5 * bound);
    }
    expect(conv.weight.shape).toEqual([4, 3, 3, 3]);
    expect(convT.weight.shape).toEqual([8, 5, 2, 2]);
    expect(lin.namedParameters().map(([n]) => n)).toEqual(['weight', 'bias']);
    const again = new Linear(gpu, 50, 7, new Rng(1));
    expect(await again.weight.readFloat()).toEqual(await lin.weight.readFloat());
    const zero = new Linear(gpu, 50, 7, null);
    expect(maxAbs(await zero.weight.readFloat())).toBe(0);
    for (const m of [lin, conv, convT, again, zero]) m.dispose();
  });

  test('Embedding ~ N(0, 1); norms start at weight 1, bias 0; BN buffers', async () => {
    const e = new Embedding(gpu, 100, 50, new Rng(2));
    const v = await e.weight.readFloat();
    const mean = v.reduce((a, b) => a + b, 0) / v.length;
    const sd = Math.sqrt(v.reduce((a, b) => a + (b - mean) ** 2, 0) / v.length);
    expect(Math.abs(mean)).toBeLessThan(0.05);
    expect(Math.abs(sd - 1)).toBeLessThan(0.05);
    const ln = new LayerNorm(gpu, 4, 1e-6);
    expect(Array.from(await ln.weight.readFloat())).toEqual([1, 1, 1, 1]);
    expect(Array.from(await ln.bias.readFloat())).toEqual([0, 0, 0, 0]);
    const bn = new BatchNorm2d(gpu, 3);
    expect(bn.stateDict().size).toBe(5);
    expect([...bn.stateDict().keys()]).toEqual([
      'weight',
      'bias',
      'running_mean',
      'running_var',
      'num_batches_tracked',
    ]);
    expect(Array.from(await bn.running_var.readFloat())).toEqual([1, 1, 1]);
    expect(bn.num_batches_tracked.dtype).toBe('i32');
    expect(bn.num_batches_tracked.shape).toEqual([]);
    for (const m of [e, ln, bn]) m.dispose();
  });

  test('nn.Sequential index gaps and MLP naming', () => {
    const seq = new ModuleList(gpu, [new LayerNorm(gpu, 2), null, new Linear(gpu, 2, 2, null)]);
    expect(seq.namedParameters().map(([n]) => n)).toEqual(['0.weight', '0.bias', '2.weight', '2.bias']);
    expect(() => seq.at(1)).toThrow(/no module at index 1/);
    const mlp = new MLP(gpu, 4, 8, 2, 3, null);
    expect(mlp.namedParameters().map(([n, t]) => `${n}${JSON.stringify(t.shape)}`)).toEqual([
      'layers.0.weight[8,4]',
      'layers.0.bias[8]',
      'layers.1.weight[8,8]',
      'layers.1.bias[8]',
      'layers.2.weight[2,8]',
      'layers.2.bias[2]',
    ]);
    seq.dispose();
    mlp.dispose();
  });
});

describe('BatchNorm2d', () => {
  const r = rng(5);
  const batch = (mean: number) => {
    const d = randn(r, 4 * 2 * 3 * 3);
    for (let i = 0; i < d.length; i++) d[i]! += mean;
    return d;
  };
  /** Per-channel mean and unbiased variance of (N, C, H, W) data. */
  const stats = (d: Float32Array, C: number, HW: number) => {
    const N = d.length / (C * HW);
    return Array.from({ length: C }, (_, c) => {
      const xs: number[] = [];
      for (let n = 0; n < N; n++) for (let p = 0; p < HW; p++) xs.push(d[(n * C + c) * HW + p]!);
      const m = xs.reduce((a, b) => a + b, 0) / xs.length;
      return [m, xs.reduce((a, b) => a + (b - m) ** 2, 0) / (xs.length - 1)] as const;
    });
  };

  test.each([0.1, null])(
    'momentum %s: running stats and num_batches_tracked like PyTorch',
    async (momentum) => {
      const bn = new BatchNorm2d(gpu, 2, { momentum });
      const data = [batch(1), batch(-2), batch(0.5)];
      let rm = [0, 0];
      let rv = [1, 1];
      for (const [k, d] of data.entries()) {
        tidy(() => {
          noGrad(() => bn.forward(Tensor.fromData(gpu, d, [4, 2, 3, 3])));
        });
        const f = momentum ?? 1 / (k + 1);
        const s = stats(d, 2, 9);
        rm = rm.map((v, c) => (1 - f) * v + f * s[c]![0]);
        rv = rv.map((v, c) => (1 - f) * v + f * s[c]![1]);
      }
      const gm = await bn.running_mean.readFloat();
      const gv = await bn.running_var.readFloat();
      for (let c = 0; c < 2; c++) {
        expect(gm[c]).toBeCloseTo(rm[c]!, 5);
        expect(gv[c]).toBeCloseTo(rv[c]!, 5);
      }
      expect(bn.numBatchesTracked).toBe(3);
      expect(Array.from(await bn.num_batches_tracked.read())).toEqual([3]);
      // Eval mode neither counts nor updates.
      bn.eval();
      tidy(() => {
        noGrad(() => bn.forward(Tensor.fromData(gpu, batch(9), [4, 2, 3, 3])));
      });
      expect(bn.numBatchesTracked).toBe(3);
      expect(Array.from(await bn.running_mean.readFloat())).toEqual(Array.from(gm));
      bn.dispose();
    },
  );

  test('loading a state dict sets the counter (int64 or float values)', async () => {
    const bn = new BatchNorm2d(gpu, 2);
    const sd = (n: Int32Array | Float32Array) =>
      new Map([
        ['weight', { shape: [2], dtype: 'f32' as const, data: Float32Array.of(1, 1) }],
        ['bias', { shape: [2], dtype: 'f32' as const, data: Float32Array.of(0, 0) }],
        ['running_mean', { shape: [2], dtype: 'f32' as const, data: Float32Array.of(0, 0) }],
        ['running_var', { shape: [2], dtype: 'f32' as const, data: Float32Array.of(1, 1) }],
        [
          'num_batches_tracked',
          { shape: [], dtype: n instanceof Int32Array ? ('i32' as const) : ('f32' as const), data: n },
        ],
      ]);
    bn.loadStateDict(sd(Int32Array.of(41)));
    expect(bn.numBatchesTracked).toBe(41);
    bn.loadStateDict(sd(Float32Array.of(7)));
    expect(bn.numBatchesTracked).toBe(7);
    expect(Array.from(await bn.num_batches_tracked.read())).toEqual([7]);
    bn.dispose();
  });
});

describe('Capture', () => {
  test('records activations and retained gradients (with aliases), identity without a capture', async () => {
    const x = param(Tensor.fromData(gpu, Float32Array.of(1, -2, 3), [3]));
    const none = tidy(() => {
      const a = mul(x, x);
      return tap(undefined, 'a', a) === a;
    });
    expect(none).toBe(true);
    const cap = new Capture({ grads: true });
    tidy(() => {
      const a = cap.tap(['a', 'alias'], mul(x, x)); // a = x^2
      backward(sum(mul(a, a))); // L = sum(a^2): dL/da = 2a, dL/dx = 4x^3
    });
    expect(Array.from(await cap.act('a').readFloat())).toEqual([1, 4, 9]);
    expect(Array.from(await cap.grad('a').readFloat())).toEqual([2, 8, 18]);
    expect(Array.from(await cap.grad('alias').readFloat())).toEqual([2, 8, 18]);
    expect(Array.from(await x.grad!.readFloat())).toEqual([4, -32, 108]);
    expect(() => cap.grad('b')).toThrow(/no gradient for 'b'/);
    cap.dispose();
    x.grad!.dispose();
    x.dispose();
  });
});
