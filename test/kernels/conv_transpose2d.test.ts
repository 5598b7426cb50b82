import { afterAll, beforeAll, describe, expect, test, vi } from 'vitest';
import { backward, param } from '../../src/autograd/tape.js';
import type { Gpu } from '../../src/gpu/device.js';
import { convTUsesK2s2 } from '../../src/kernels/conv_transpose2d.js';
import { batchChunks } from '../../src/kernels/split.js';
import '../../src/ops/index.js';
import { convTranspose2d } from '../../src/ops/spatial.js';
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
let plain: Gpu;
let asGpu: Gpu;
let tiny: Gpu;
let tinyPlain: Gpu;
beforeAll(async () => {
  gpu = await testGpu();
  plain = await testGpu({ profile: { subgroups: false } });
  asGpu = await testGpu({ profile: { kind: 'gpu' } });
  tiny = await testGpu({ profile: { maxStorageBindingBytes: 4096 } });
  tinyPlain = await testGpu({ profile: { subgroups: false, maxStorageBindingBytes: 4096 } });
});
afterAll(closeTestGpus);

interface Case {
  g: ref.ConvT;
  bias: boolean;
}

/** Runs forward + backward on `dev` and compares y, dx, dw, db with the CPU reference. */
async function check(dev: Gpu, { g, bias }: Case, seed: number, tol = 1e-4): Promise<void> {
  const r = rng(seed);
  const xd = randn(r, g.N * g.Cin * g.H * g.W);
  const wd = randn(r, g.Cin * g.Cout * g.KH * g.KW, 0.5);
  const bd = randn(r, g.Cout);
  const [Ho, Wo] = ref.convTOut(g);
  const dyd = randn(r, g.N * g.Cout * Ho * Wo);
  const x = param(upload(dev, { data: xd, shape: [g.N, g.Cin, g.H, g.W] }));
  const w = param(upload(dev, { data: wd, shape: [g.Cin, g.Cout, g.KH, g.KW] }));
  const b = bias ? param(upload(dev, { data: bd, shape: [g.Cout] })) : null;
  const y = convTranspose2d(x, w, b, { stride: g.S });
  expect([...y.shape]).toEqual([g.N, g.Cout, Ho, Wo]);
  backward(y, { grad: upload(dev, { data: dyd, shape: y.shape }) });
  const want = ref.convTranspose2d(xd, wd, bias ? bd : null, g);
  const grads = ref.convTranspose2dBackward(xd, wd, dyd, g);
  const name = JSON.stringify(g);
  // Sums of up to Cin*KH*KW (forward), Cout*KH*KW (dx) or N*H*W (dw) products of O(1) values.
  assertClose(await y.read(), want, { atol: tol, rtol: tol, name: `${name} y` });
  assertClose(await x.grad!.read(), grads.dx, { atol: tol, rtol: tol, name: `${name} dx` });
  assertClose(await w.grad!.read(), grads.dw, { atol: 4 * tol, rtol: tol, name: `${name} dw` });
  if (b) assertClose(await b.grad!.read(), grads.db, { atol: 4 * tol, rtol: tol, name: `${name} db` });
  for (const t of [x, w, y, x.grad!, w.grad!, ...(b ? [b, b.grad!] : [])]) t.dispose();
}

const g = (
  N: number,
  Cin: number,
  H: number,
  W: number,
  Cout: number,
  K: number | [number, number],
  S: number,
) => {
  const [KH, KW] = typeof K === 'number' ? [K, K] : K;
  return { N, Cin, H, W, Cout, KH, KW, S };
};

// k2s2 shapes hit the register-tiled path (W even, H*W % 4 == 0); channel counts do not divide the
// tiles. The first group has W % 4 == 0 (a pixel quad lies in one row); the second W % 4 == 2, where
// a quad's second pixel pair may start the next input row (14x14 is SAM's decoder at 224 input).
const K2S2: Case[] = [
  { g: g(1, 1, 1, 4, 1, 2, 2), bias: true },
  { g: g(2, 5, 3, 4, 3, 2, 2), bias: true },
  { g: g(3, 13, 5, 8, 11, 2, 2), bias: false },
  { g: g(2, 17, 4, 12, 9, 2, 2), bias: true },
  { g: g(1, 32, 8, 8, 16, 2, 2), bias: true },
  { g: g(2, 5, 2, 6, 3, 2, 2), bias: true },
  { g: g(1, 7, 14, 14, 9, 2, 2), bias: true },
  { g: g(3, 13, 6, 10, 11, 2, 2), bias: false },
  { g: g(2, 3, 2, 2, 5, 2, 2), bias: true },
  { g: g(2, 33, 2, 14, 10, 2, 2), bias: true },
];
// Everything else takes the direct path: odd widths, even widths with H*W % 4 != 0, other kernels
// and strides, overlapping taps.
const DIRECT: Case[] = [
  { g: g(2, 3, 5, 5, 4, 2, 2), bias: true },
  { g: g(1, 4, 3, 7, 2, 3, 2), bias: true },
  { g: g(2, 3, 4, 3, 5, 3, 1), bias: false },
  { g: g(1, 2, 3, 5, 3, [2, 3], 3), bias: true },
  { g: g(3, 5, 2, 6, 2, 4, 2), bias: true },
  { g: g(1, 3, 1, 1, 2, 2, 2), bias: true },
  { g: g(2, 3, 3, 6, 4, 2, 2), bias: true },
  { g: g(1, 2, 1, 2, 3, 2, 2), bias: false },
];
/** K2S2 cases whose pixel quads can straddle two input rows. */
const ROW_STRADDLE = K2S2.filter((c) => c.g.W % 4 === 2);

describe('convTranspose2d vs CPU reference', () => {
  test('the shape tables hit both paths', () => {
    expect(K2S2.every((c) => convTUsesK2s2(c.g))).toBe(true);
    expect(DIRECT.some((c) => convTUsesK2s2(c.g))).toBe(false);
    expect(ROW_STRADDLE.length).toBeGreaterThanOrEqual(4);
    // k=2, s=2 with an even width but H*W % 4 != 0 stays on the direct path.
    const evenW = DIRECT.filter((c) => c.g.KH === 2 && c.g.KW === 2 && c.g.S === 2 && c.g.W % 2 === 0);
    expect(evenW.length).toBeGreaterThanOrEqual(2);
  });
  test('each profile dispatches its variant', () => {
    const run = (dev: Gpu, geo: ref.ConvT) => {
      const spy = vi.spyOn(dev, 'dispatch');
      const x = param(Tensor.zeros(dev, [geo.N, geo.Cin, geo.H, geo.W]));
      const w = param(Tensor.zeros(dev, [geo.Cin, geo.Cout, geo.KH, geo.KW]));
      const b = param(Tensor.zeros(dev, [geo.Cout]));
      const y = convTranspose2d(x, w, b, { stride: geo.S });
      const gy = Tensor.zeros(dev, y.shape);
      backward(y, { grad: gy });
      const names = spy.mock.calls.map((c) => c[0].name).filter((n) => n.startsWith('conv_transpose2d'));
      spy.mockRestore();
      for (const t of [x, w, b, y, gy, x.grad!, w.grad!, b.grad!]) t.dispose();
      return names;
    };
    const sg = ['fwd_k2s2_sg', 'dx_k2s2_sg', 'dw_k2s2_sg', 'bias_grad'];
    const plainK = ['fwd_k2s2', 'dx_k2s2', 'dw_k2s2', 'bias_grad'];
    const fam = (e: string) => (e.endsWith('_sg') ? 'conv_transpose2d_sg.' : 'conv_transpose2d.') + e;
    expect(gpu.profile.kind).toBe('cpu');
    expect(gpu.profile.subgroups).toBe(true); // lavapipe: the default profile takes the _sg entries
    // W % 4 == 0 and W % 4 == 2 (SAM's 14x14) both take the fast entries on every profile.
    for (const k2 of [K2S2[1]!.g, g(1, 4, 14, 14, 3, 2, 2)]) {
      expect(run(gpu, k2).sort()).toEqual(sg.map(fam).sort());
      expect(run(plain, k2).sort()).toEqual(plainK.map(fam).sort());
      expect(run(asGpu, k2).sort()).toEqual(plainK.map(fam).sort());
    }
    const direct = ['fwd_direct', 'dx_direct', 'dw_direct', 'bias_grad'];
    for (const d of [DIRECT[0]!.g, g(1, 2, 3, 6, 2, 2, 2)]) {
      expect(run(gpu, d).sort()).toEqual(direct.map(fam).sort());
      expect(run(plain, d).sort()).toEqual(direct.map(fam).sort());
    }
  });
  test.each(K2S2.map((c, i) => [JSON.stringify(c.g), c, i] as const))('k2s2 %s', async (_n, c, i) => {
    await check(gpu, c, 10 + i);
  });
  test.each(DIRECT.map((c, i) => [JSON.stringify(c.g), c, i] as const))('direct %s', async (_n, c, i) => {
    await check(gpu, c, 30 + i);
  });
  test('plain (no subgroups) profile', async () => {
    for (const [i, c] of K2S2.entries()) await check(plain, c, 40 + i);
    await check(plain, DIRECT[1]!, 51);
    await check(plain, DIRECT[6]!, 52);
  });
  test('GPU tiling profile (kind gpu: 64-lane workgroups, other tiles)', async () => {
    for (const [i, c] of [...K2S2, ...DIRECT].entries()) await check(asGpu, c, 60 + i);
  });
  test('batch split over a 4 KiB binding limit, both paths, sg and plain', async () => {
    // fast2: W % 4 == 2, so chunks start at x_base = 180 * k (mod the 64-float offset alignment).
    const fast = g(5, 3, 4, 8, 4, 2, 2);
    const fast2 = g(5, 3, 6, 10, 4, 2, 2);
    const direct = g(4, 2, 5, 5, 4, 3, 2);
    for (const c of [fast, fast2, direct]) {
      const [Ho, Wo] = ref.convTOut(c);
      const items = [c.Cin * c.H * c.W, c.Cout * Ho * Wo];
      expect(batchChunks(tiny, c.N, items, 'test').length).toBeGreaterThan(1);
    }
    for (const [k, dev] of [tiny, tinyPlain].entries()) {
      await check(dev, { g: fast, bias: true }, 80 + 4 * k);
      await check(dev, { g: fast2, bias: true }, 81 + 4 * k);
      await check(dev, { g: direct, bias: true }, 82 + 4 * k);
    }
  });
  test('dW over more than 4096 pixel quads runs in accumulating passes', async () => {
    await check(gpu, { g: g(5, 3, 68, 64, 5, 2, 2), bias: true }, 95, 3e-4);
    // W % 4 == 2: 561 quads per image, passes of 7 images.
    await check(gpu, { g: g(8, 3, 34, 66, 5, 2, 2), bias: true }, 96, 3e-4);
  });
  test('SAM decoder geometry at reduced size (256 -> 64 channels, k2s2, 8x8)', async () => {
    await check(gpu, { g: g(2, 256, 8, 8, 64, 2, 2), bias: true }, 90, 3e-4);
  });
  test('SAM decoder geometry at 224 input (256 -> 64 channels, 14x14 -> 28x28), sg and plain', async () => {
    const sam = g(2, 256, 14, 14, 64, 2, 2);
    expect(convTUsesK2s2(sam)).toBe(true);
    await check(gpu, { g: sam, bias: true }, 91, 3e-4);
    await check(plain, { g: sam, bias: true }, 92, 3e-4);
  });
});

describe('convTranspose2d fixtures (PyTorch)', () => {
  // bias: x (2,8,5,5), odd width (direct path); bias_b: x (1,4,3,4), the k2s2 path. Every profile.
  test.each(['conv_transpose2d_k2s2_bias', 'conv_transpose2d_k2s2_bias_b'])('%s', async (name) => {
    const c = kernelCase(name);
    expect(c.params.padding).toBe(0);
    for (const [dn, dev] of Object.entries({ gpu, plain, asGpu, tiny, tinyPlain })) {
      const x = param(upload(dev, c.get('x')));
      const w = param(upload(dev, c.get('w')));
      const b = param(upload(dev, c.get('b')));
      const y = convTranspose2d(x, w, b, { stride: c.params.stride as number });
      const dy = upload(dev, c.get('dy'));
      backward(y, { grad: dy });
      const tag = `${name} (${dn})`;
      assertClose(await y.read(), c.f32('y'), { ...c.tol('y'), name: `${tag} y` });
      assertClose(await x.grad!.read(), c.f32('dx'), { ...c.tol('dx'), name: `${tag} dx` });
      assertClose(await w.grad!.read(), c.f32('dw'), { ...c.tol('dw'), name: `${tag} dw` });
      assertClose(await b.grad!.read(), c.f32('db'), { ...c.tol('db'), name: `${tag} db` });
      for (const t of [x, w, b, y, dy, x.grad!, w.grad!, b.grad!]) t.dispose();
    }
  });
});

describe('convTranspose2d reference gradients agree with finite differences', () => {
  test.each([g(1, 2, 3, 2, 3, 2, 2), g(2, 2, 2, 3, 2, 3, 2), g(1, 1, 3, 3, 2, [3, 2], 1)])('%j', (geo) => {
    const r = rng(7);
    const xd = Float64Array.from(randn(r, geo.N * geo.Cin * geo.H * geo.W));
    const wd = Float64Array.from(randn(r, geo.Cin * geo.Cout * geo.KH * geo.KW));
    const bd = Float64Array.from(randn(r, geo.Cout));
    const [Ho, Wo] = ref.convTOut(geo);
    const dy = randn(r, geo.N * geo.Cout * Ho * Wo);
    const an = ref.convTranspose2dBackward(xd, wd, dy, geo);
    const all = (n: number) => [...Array(n).keys()];
    const fx = finiteDiff((v) => ref.dot(ref.convTranspose2d(v, wd, bd, geo), dy), xd, all(xd.length));
    const fw = finiteDiff((v) => ref.dot(ref.convTranspose2d(xd, v, bd, geo), dy), wd, all(wd.length));
    const fb = finiteDiff((v) => ref.dot(ref.convTranspose2d(xd, wd, v, geo), dy), bd, all(bd.length));
    assertClose(fx, an.dx, { atol: 1e-6, rtol: 1e-6, name: 'FD dx' });
    assertClose(fw, an.dw, { atol: 1e-6, rtol: 1e-6, name: 'FD dw' });
    assertClose(fb, an.db, { atol: 1e-6, rtol: 1e-6, name: 'FD db' });
  });
});

describe('convTranspose2d bad input', () => {
  const t = (shape: number[]) => Tensor.zeros(gpu, shape);
  test('channel mismatch names the op and both shapes', () => {
    expect(() => convTranspose2d(t([1, 3, 4, 4]), t([4, 2, 2, 2]), null, { stride: 2 })).toThrow(
      /convTranspose2d: input \[1, 3, 4, 4\] has 3 channels but weight \[4, 2, 2, 2\] expects 4/,
    );
  });
  test('wrong ranks and bias shape', () => {
    expect(() => convTranspose2d(t([3, 4, 4]), t([3, 2, 2, 2]), null, { stride: 2 })).toThrow(
      /convTranspose2d: input must be NCHW \(rank 4\), got shape \[3, 4, 4\]/,
    );
    expect(() => convTranspose2d(t([1, 3, 4, 4]), t([3, 2, 2]), null, { stride: 2 })).toThrow(
      /convTranspose2d: weight must be \(Cin, Cout, kH, kW\), got shape \[3, 2, 2\]/,
    );
    expect(() => convTranspose2d(t([1, 3, 4, 4]), t([3, 2, 2, 2]), t([3]), { stride: 2 })).toThrow(
      /convTranspose2d: bias has shape \[3\], expected \[2\] for weight \[3, 2, 2, 2\]/,
    );
  });
  test('unsupported options', () => {
    expect(() => convTranspose2d(t([1, 3, 4, 4]), t([3, 2, 2, 2]), null, { stride: 0 })).toThrow(/stride/);
    expect(() => convTranspose2d(t([1, 3, 4, 4]), t([3, 2, 2, 2]), null, { stride: 2, padding: 1 })).toThrow(
      /only padding 0/,
    );
  });
  test('i32 input is rejected', () => {
    const xi = Tensor.fromData(gpu, new Int32Array(16), [1, 1, 4, 4]);
    expect(() => convTranspose2d(xi, t([1, 2, 2, 2]), null, { stride: 2 })).toThrow(/must be f32/);
  });
});

describe('convTranspose2d memory', () => {
  test('the backward rule reads the saved handles, so callers may dispose inputs after forward', async () => {
    const geo = g(2, 3, 2, 4, 2, 2, 2);
    const r = rng(21);
    const xd = randn(r, 2 * 3 * 2 * 4);
    const wd = randn(r, 3 * 2 * 4);
    const x = upload(gpu, { data: xd, shape: [2, 3, 2, 4] }); // frozen input
    const w = param(upload(gpu, { data: wd, shape: [3, 2, 2, 2] }));
    const y = convTranspose2d(x, w, null, { stride: 2 });
    x.dispose();
    const dyd = randn(r, y.size);
    backward(y, { grad: upload(gpu, { data: dyd, shape: y.shape }) });
    const want = ref.convTranspose2dBackward(xd, wd, dyd, geo);
    assertClose(await w.grad!.read(), want.dw, { atol: 1e-5, rtol: 1e-5, name: 'dw' });
  });

  test('forward + backward leaves no live buffers behind', async () => {
    const r = rng(3);
    const x = param(upload(gpu, { data: randn(r, 2 * 4 * 4 * 4), shape: [2, 4, 4, 4] }));
    const w = param(upload(gpu, { data: randn(r, 4 * 3 * 4), shape: [4, 3, 2, 2] }));
    const b = param(upload(gpu, { data: randn(r, 3), shape: [3] }));
    await gpu.sync();
    const before = gpu.stats().pool;
    for (let i = 0; i < 3; i++) {
      const y = convTranspose2d(x, w, b, { stride: 2 });
      const gy = Tensor.zeros(gpu, y.shape);
      backward(y, { grad: gy });
      gy.dispose();
      y.dispose();
      for (const p of [x, w, b]) {
        p.grad!.dispose();
        p.grad = null;
      }
    }
    await gpu.sync();
    const after = gpu.stats().pool;
    expect(after.liveBuffers).toBe(before.liveBuffers);
  });
});
