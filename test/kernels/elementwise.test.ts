import { fmt as fmtShape } from '../../src/util/shape.js';
import { afterAll, beforeAll, describe, expect, test, vi } from 'vitest';
import { backward, param } from '../../src/autograd/tape.js';
import type { Gpu } from '../../src/gpu/device.js';
import * as ops from '../../src/ops/index.js';
import {
  mergeGatherDims,
  runBinary,
  runFill,
  runGather,
  type GatherGeometry,
} from '../../src/kernels/elementwise.js';
import { runSumMid } from '../../src/kernels/reduce.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { tidy } from '../../src/tensor/scope.js';
import * as ref from '../reference/elementwise.js';
import type { Rng } from '../../src/util/rng.js';
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

const SIZES = [1, 7, 257, 4099];

describe('unary forward and backward vs CPU reference', () => {
  const cases = [
    ['relu', ops.relu, ref.relu, (x: number) => (x > 0 ? 1 : 0)],
    ['gelu', ops.gelu, ref.gelu, ref.geluGrad],
    ['sigmoid', ops.sigmoid, ref.sigmoid, (x: number) => ref.sigmoid(x) * (1 - ref.sigmoid(x))],
  ] as const;
  for (const [name, op, f, df] of cases) {
    test.each(SIZES)(`${name} n=%i`, async (n) => {
      const r = rng(n);
      const xd = randn(r, n, 3);
      const dyd = randn(r, n);
      const x = param(upload(gpu, { data: xd, shape: [n] }));
      const y = op(x);
      backward(y, { grad: upload(gpu, { data: dyd, shape: [n] }) });
      assertClose(await y.read(), ref.map(xd, f), { atol: 2e-6, rtol: 2e-6, name: `${name} y` });
      const want = ref.map(xd, df).map((v, i) => v * dyd[i]!);
      assertClose(await x.grad!.read(), want, { atol: 2e-6, rtol: 2e-5, name: `${name} dx` });
    });
  }

  test('gelu reference derivative agrees with finite differences', () => {
    const xs = Float64Array.from([-5, -2.5, -1, -0.3, 0, 0.2, 1.1, 2.6, 6]);
    const fd = finiteDiff((v) => v.reduce((s, t) => s + ref.gelu(t), 0), xs, [...xs.keys()], 1e-5);
    assertClose(fd, ref.map(xs, ref.geluGrad), { atol: 1e-7, rtol: 1e-6, name: 'gelu FD' });
  });

  test('gelu matches the PyTorch fixture (forward and backward)', async () => {
    const c = kernelCase('gelu_erf');
    const x = param(upload(gpu, c.get('x')));
    const y = ops.gelu(x);
    backward(y, { grad: upload(gpu, c.get('dy')) });
    assertClose(await y.read(), c.f32('y'), { ...c.tol('y'), name: 'gelu y' });
    assertClose(await x.grad!.read(), c.f32('dx'), { ...c.tol('dx'), name: 'gelu dx' });
  });
});

describe('binary ops with broadcasting', () => {
  const shapes: [number[], number[]][] = [
    [[5], [5]],
    [[3, 5], [5]],
    [
      [2, 3, 1, 7],
      [3, 5, 1],
    ],
    [
      [4, 1, 6],
      [1, 9, 1],
    ],
    [[2, 3, 4, 5, 6, 7, 2], [1]],
    // Alternating broadcast dims merge with nothing: 5 and 6 dims reach the kernel.
    [
      [2, 1, 3, 1, 5],
      [1, 3, 1, 4, 1],
    ],
    [
      [2, 1, 3, 1, 5, 1],
      [1, 3, 1, 4, 1, 6],
    ],
    // Innermost dim a multiple of 4 and read whole by both: the vec4 entry (binary_bc4).
    [[3, 8], [8]],
    [
      [6, 1, 4],
      [1, 3, 4],
    ],
    [
      [2, 1, 3, 1, 12],
      [1, 3, 1, 5, 12],
    ],
    [
      [1, 20],
      [7, 20],
    ],
  ];
  const fns = {
    add: [ops.add, (a: number, b: number) => a + b, (_a: number, _b: number) => [1, 1]],
    sub: [ops.sub, (a: number, b: number) => a - b, () => [1, -1]],
    mul: [ops.mul, (a: number, b: number) => a * b, (a: number, b: number) => [b, a]],
    div: [ops.div, (a: number, b: number) => a / b, (a: number, b: number) => [1 / b, -a / (b * b)]],
  } as const;
  for (const [name, [op, f, df]] of Object.entries(fns)) {
    test.each(shapes)(`${name} %j x %j`, async (as, bs) => {
      const r = rng(as.length * 31 + bs.length);
      const na = as.reduce((x, y) => x * y, 1);
      const nb = bs.reduce((x, y) => x * y, 1);
      const ad = randn(r, na);
      const bd = Float32Array.from(randn(r, nb), (v) =>
        name === 'div' ? Math.sign(v || 1) * (1 + Math.abs(v)) : v,
      );
      const want = ref.broadcastBinary(ad, as, bd, bs, f);
      const dyd = randn(r, want.data.length);
      const a = param(upload(gpu, { data: ad, shape: as }));
      const b = param(upload(gpu, { data: bd, shape: bs }));
      const y = op(a, b);
      expect([...y.shape]).toEqual(want.shape);
      backward(y, { grad: upload(gpu, { data: dyd, shape: want.shape }) });
      assertClose(await y.read(), want.data, { atol: 1e-5, rtol: 1e-5, name: `${name} y` });
      const ga = ref.broadcastBinary(ad, as, bd, bs, (x, z) => df(x, z)[0]!);
      const gb = ref.broadcastBinary(ad, as, bd, bs, (x, z) => df(x, z)[1]!);
      const dA = ref.sumTo(
        ga.data.map((v, i) => v * dyd[i]!),
        want.shape,
        as,
      );
      const dB = ref.sumTo(
        gb.data.map((v, i) => v * dyd[i]!),
        want.shape,
        bs,
      );
      assertClose(await a.grad!.read(), dA, { atol: 1e-4, rtol: 1e-4, name: `${name} da` });
      assertClose(await b.grad!.read(), dB, { atol: 1e-4, rtol: 1e-4, name: `${name} db` });
    });
  }

  test.each([
    // [a, b, entry]: both read the innermost dim whole in vec4s, or not
    [[3, 8], [8], 'elementwise.binary_bc4'],
    [[6, 1, 4], [1, 3, 4], 'elementwise.binary_bc4'],
    [[1, 20], [7, 20], 'elementwise.binary_bc4'],
    [[2, 1, 3, 1, 12], [1, 3, 1, 5, 12], 'elementwise.binary_bc4'],
    [[3, 5], [5], 'elementwise.binary'], // innermost 5
    [[3, 8], [3, 1], 'elementwise.binary'], // b broadcast along the innermost dim
    [[2, 6], [3, 2, 1], 'elementwise.binary'], // innermost 6 after broadcasting to (3, 2, 6)
  ])('broadcast %j x %j takes %s', (as, bs, entry) => {
    const a = Tensor.zeros(gpu, as);
    const b = Tensor.zeros(gpu, bs);
    const spy = vi.spyOn(gpu, 'dispatch');
    try {
      tidy(() => ops.add(a, b));
      expect(spy.mock.calls.map((c) => c[0].name)).toEqual([entry]);
    } finally {
      spy.mockRestore();
      a.dispose();
      b.dispose();
    }
  });

  test('incompatible shapes name the op and both shapes', () => {
    const a = Tensor.zeros(gpu, [2, 3]);
    const b = Tensor.zeros(gpu, [4]);
    expect(() => ops.add(a, b)).toThrow(/add: shapes \[2, 3\] and \[4\] do not broadcast/);
  });
});

describe('reductions and layout ops', () => {
  test.each([
    [[7], [0]],
    [[3, 5, 4], [1]],
    [
      [3, 5, 4],
      [0, 2],
    ],
    [
      [2, 3, 5, 7],
      [0, 2, 3],
    ],
    [[1000, 3], [0]],
    [[3, 2000], [1]],
  ])('sum %j over %j', async (shape, axes) => {
    const r = rng(shape.length * 7 + axes.length);
    const n = shape.reduce((a, b) => a * b, 1);
    const xd = randn(r, n);
    const x = param(upload(gpu, { data: xd, shape }));
    const y = ops.sum(x, axes, { keepDims: true });
    const target = shape.map((d, i) => (axes.includes(i) ? 1 : d));
    assertClose(await y.read(), ref.sumTo(xd, shape, target), { atol: 1e-4, rtol: 1e-5, name: 'sum' });
    const dyd = randn(r, y.size);
    backward(y, { grad: upload(gpu, { data: dyd, shape: y.shape }) });
    const want = ref.broadcastBinary(new Float64Array(n), shape, dyd, target, (_a, b) => b).data;
    assertClose(await x.grad!.read(), want, { atol: 1e-6, rtol: 0, name: 'sum dx' });
  });

  test.each([
    [1_000_003, 'cpu'],
    [1_000_000, 'cpu'],
    [1_000_003, 'gpu'],
    [1_000_000, 'gpu'],
  ] as const)(
    'sum of %i elements (%s-kind tiling) uses the wide path and stays accurate',
    async (n, kind) => {
      const g = kind === 'cpu' ? gpu : await testGpu({ profile: { kind } });
      const xd = new Float32Array(n).fill(0.1);
      const x = upload(g, { data: xd, shape: [n] });
      const y = ops.sum(x);
      const got = (await y.read())[0]!;
      expect(Math.abs(got - n * 0.1)).toBeLessThan(n * 0.1 * 1e-5);
    },
  );

  test.each([
    // [A, R, I, scale, expected wide entry]: vec4 rows (R % 4 = 0, I = 1), rows of odd length,
    // strided rows (I > 1); R not a multiple of WG * CHUNK (* 4)
    [5, 4100, 1, 1, 'reduce.sum_wide4'],
    [3, 70_000, 1, 0.5, 'reduce.sum_wide4'],
    [4, 1027, 1, 1, 'reduce.sum_wide'],
    [2, 600, 3, 2, 'reduce.sum_wide'],
  ])('sum of (%i, %i, %i) x %f takes %s and matches the CPU sum', async (A, R, I, scale, entry) => {
    const r = rng(A * 7 + R + I);
    const xd = randn(r, A * R * I);
    const want = new Float64Array(A * I);
    for (let a = 0; a < A; a++)
      for (let q = 0; q < R; q++) for (let i = 0; i < I; i++) want[a * I + i]! += xd[(a * R + q) * I + i]!;
    for (const g of [gpu, await testGpu({ profile: { kind: 'gpu' } })]) {
      const x = upload(g, { data: xd, shape: [A * R * I] });
      const out = Tensor.empty(g, [A * I]);
      const spy = vi.spyOn(g, 'dispatch');
      let calls: [string, Record<string, number> | undefined][];
      try {
        runSumMid(x, out, A, R, I, scale);
        calls = spy.mock.calls.map((c) => [c[0].name, c[4]]);
      } finally {
        spy.mockRestore();
      }
      expect(calls.map((c) => c[0])).toEqual([entry]);
      // One SIMD group per workgroup on CPU drivers; the kernel's default (256) on GPUs.
      expect(calls[0]![1]?.WG).toBe(g.profile.kind === 'cpu' ? 8 : undefined);
      assertClose(
        await out.read(),
        want.map((v) => v * scale),
        { atol: 1e-4 * Math.sqrt(R), rtol: 1e-5, name: `${entry} (${g.profile.kind})` },
      );
      x.dispose();
      out.dispose();
    }
  });

  test('permute, pad, slice and concat forward and backward', async () => {
    const r = rng(99);
    const shape = [2, 3, 4, 5, 3];
    const xd = randn(r, 360);
    const x = param(upload(gpu, { data: xd, shape }));
    const perm = [4, 0, 3, 1, 2];
    const p = ops.permute(x, perm);
    assertClose(await p.read(), ref.permute(xd, shape, perm), { atol: 0, rtol: 0, name: 'permute' });
    const padded = ops.pad(p, [
      [0, 0],
      [1, 0],
      [0, 2],
      [0, 0],
      [1, 1],
    ]);
    expect([...padded.shape]).toEqual([3, 3, 7, 3, 6]);
    const back = ops.slice(padded, [0, 1, 0, 0, 1], [3, 2, 5, 3, 4]);
    assertClose(await back.read(), await p.read(), { atol: 0, rtol: 0, name: 'pad+slice' });
    const cat = ops.concat([back, p], 1);
    expect([...cat.shape]).toEqual([3, 4, 5, 3, 4]);
    const loss = ops.sum(ops.mul(cat, cat));
    backward(loss);
    // d/dx sum(2 * x^2) over both copies = 4x
    assertClose(
      await x.grad!.read(),
      Float64Array.from(xd, (v) => 4 * v),
      { atol: 1e-5, rtol: 1e-5, name: 'dx' },
    );
  });

  test('a grid over 65535 workgroups is folded and fully covered', async () => {
    const n = 256 * 70_000 + 3;
    const t = Tensor.empty(gpu, [n]);
    runFill(t, 2.5);
    const d = await t.read();
    expect(d[0]).toBe(2.5);
    expect(d[n - 1]).toBe(2.5);
    expect(d.every((v) => v === 2.5)).toBe(true);
    t.dispose();
  });
});

/** A random strided read of a [src] tensor: permuted strides, offsets that pad or crop. */
function randomGather(rg: Rng, rank: number): { src: number[]; g: GatherGeometry } {
  const r = () => rg.uniform();
  const src = Array.from({ length: rank }, () => 1 + Math.floor(r() * 5));
  const st = src.map((_, k) => src.slice(k + 1).reduce((a, b) => a * b, 1));
  const perm = src.map((_, k) => k);
  for (let k = rank - 1; k > 0; k--) {
    const j = Math.floor(r() * (k + 1));
    [perm[k], perm[j]] = [perm[j]!, perm[k]!];
  }
  const mode = r();
  const dims = perm.map((p) => src[p]! + (mode < 0.3 ? Math.floor(r() * 3) : 0));
  const starts = perm.map(() => (mode < 0.3 ? -Math.floor(r() * 2) : mode < 0.6 ? Math.floor(r() * 2) : 0));
  return {
    src,
    g: { dims, strides: perm.map((p) => st[p]!), starts, extents: perm.map((p) => src[p]!) },
  };
}

describe('gather geometry merging', () => {
  test('merged geometries read exactly what the original ones read (CPU)', () => {
    const r = rng(2024);
    let merged = 0;
    for (let t = 0; t < 400; t++) {
      const { src, g } = randomGather(r, 1 + (t % 6));
      const x = Float64Array.from({ length: src.reduce((a, b) => a * b, 1) }, () => r.uniform());
      const m = mergeGatherDims(g);
      expect(m.dims.reduce((a, b) => a * b, 1)).toBe(g.dims.reduce((a, b) => a * b, 1));
      expect(Array.from(ref.gather(x, m))).toEqual(Array.from(ref.gather(x, g)));
      if (m.dims.length < g.dims.length) merged++;
    }
    expect(merged).toBeGreaterThan(50);
  });

  test('contiguous, inner-block and broadcast reads merge to the fewest dims', () => {
    const whole = { dims: [2, 3, 4], strides: [12, 4, 1], starts: [0, 0, 0], extents: [2, 3, 4] };
    expect(mergeGatherDims(whole).dims).toEqual([24]);
    // Cropping dim 1 keeps it apart from dim 0; dims 1 and 2 merge (dim 2 is read whole).
    const crop = { dims: [2, 2, 4], strides: [12, 4, 1], starts: [0, 1, 0], extents: [2, 3, 4] };
    expect(mergeGatherDims(crop)).toMatchObject({ dims: [2, 8], strides: [12, 1], starts: [0, 4] });
    // Padding the innermost dim stops every merge into it.
    const pad = { dims: [2, 3, 6], strides: [12, 4, 1], starts: [0, 0, -1], extents: [2, 3, 4] };
    expect(mergeGatherDims(pad).dims).toEqual([6, 6]);
    // Size-1 dims read inside the source drop out; one read outside it (pure padding) is kept and
    // merges with the dim after it, its start and extent scaled (every read stays outside).
    expect(
      mergeGatherDims({ dims: [1, 5, 1], strides: [5, 1, 1], starts: [0, 0, 0], extents: [1, 5, 1] }).dims,
    ).toEqual([5]);
    expect(
      mergeGatherDims({ dims: [1, 5], strides: [5, 1], starts: [-1, 0], extents: [1, 5] }),
    ).toMatchObject({ dims: [5], starts: [-5], extents: [5] });
    expect(mergeGatherDims({ dims: [1, 1], strides: [1, 1], starts: [0, 0], extents: [1, 1] }).dims).toEqual([
      1,
    ]);
  });

  test.each([1, 2, 3, 4, 5, 6])(
    'random strided reads of rank %i on the GPU match the CPU reference',
    async (rank) => {
      const r = rng(700 + rank);
      for (let t = 0; t < 6; t++) {
        const { src, g } = randomGather(r, rank);
        const n = src.reduce((a, b) => a * b, 1);
        const xd = randn(r, n);
        const x = upload(gpu, { data: xd, shape: [n] });
        const out = Tensor.empty(gpu, g.dims);
        runGather(x, out, g);
        assertClose(await out.read(), ref.gather(xd, g), {
          atol: 0,
          rtol: 0,
          name: `gather ${JSON.stringify(g)}`,
        });
        x.dispose();
        out.dispose();
      }
    },
  );
});

describe('gather vec4 entry', () => {
  /** Runs one strided read of x (data xd) and returns the kernels it dispatched. */
  async function check(g: Gpu, xd: Float32Array, geo: GatherGeometry): Promise<string[]> {
    const x = upload(g, { data: xd, shape: [xd.length] });
    const out = Tensor.empty(g, geo.dims);
    const spy = vi.spyOn(g, 'dispatch');
    let names: string[];
    try {
      runGather(x, out, geo);
      names = spy.mock.calls.map((c) => c[0].name);
    } finally {
      spy.mockRestore();
    }
    assertClose(await out.read(), ref.gather(xd, geo), { atol: 0, rtol: 0, name: JSON.stringify(geo) });
    x.dispose();
    out.dispose();
    return names;
  }
  const r = rng(4242);
  const x48 = randn(r, 2 * 3 * 8);
  // [2, 3, 8] read in several ways; innermost extent 8, strides (24, 8, 1).
  const whole = { dims: [2, 3, 8], strides: [24, 8, 1], starts: [0, 0, 0], extents: [2, 3, 8] };
  const vec4Reads: [string, GatherGeometry][] = [
    ['contiguous copy (merges to one dim)', whole],
    [
      'permute keeping the innermost dim',
      { dims: [3, 2, 8], strides: [8, 24, 1], starts: [0, 0, 0], extents: [3, 2, 8] },
    ],
    ['pad the innermost dim by 4 and 8', { ...whole, dims: [2, 3, 20], starts: [0, 0, -4] }],
    ['pad outer dims by odd amounts', { ...whole, dims: [3, 6, 8], starts: [-1, -2, 0] }],
    ['crop the innermost dim to [4, 8)', { ...whole, dims: [2, 3, 4], starts: [0, 0, 4] }],
    ['crop and pad', { ...whole, dims: [1, 5, 12], starts: [1, -1, -4] }],
  ];
  test.each(vec4Reads)('%s takes gather4 and matches the CPU reference', async (_name, geo) => {
    expect(await check(gpu, x48, geo)).toEqual(['elementwise.gather4']);
  });
  const scalarReads: [string, GatherGeometry][] = [
    ['innermost pad of 1', { ...whole, dims: [2, 3, 10], starts: [0, 0, -1] }],
    ['innermost size 6', { ...whole, dims: [2, 3, 6], starts: [0, 0, 1] }],
    ['innermost start -2 (a vec4 would straddle the padding)', { ...whole, starts: [0, 0, -2] }],
    ['innermost extent 6 (the last vec4 half outside)', { ...whole, extents: [2, 3, 6] }],
    ['innermost stride 2', { dims: [2, 3, 4], strides: [24, 8, 2], starts: [0, 0, 0], extents: [2, 3, 4] }],
    ['outer stride not a multiple of 4', { dims: [4, 8], strides: [6, 1], starts: [0, 0], extents: [4, 8] }],
    ['offset 2', { dims: [2, 4], strides: [8, 1], starts: [0, 0], extents: [2, 4], offset: 2 }],
  ];
  test.each(scalarReads)('%s takes the scalar gather and matches the CPU reference', async (_name, geo) => {
    expect(await check(gpu, x48, geo)).toEqual(['elementwise.gather']);
  });
  test('an input of 13 floats read in aligned vec4s', async () => {
    const geo = { dims: [3, 4], strides: [4, 1], starts: [0, 0], extents: [3, 4] };
    expect(await check(gpu, randn(r, 13), geo)).toEqual(['elementwise.gather4']);
  });
  test("the first gather makes both entries' pipelines, so the other one later creates none", async () => {
    const g = await testGpu();
    await check(g, x48, scalarReads[0]![1]);
    const made = g.stats().pipelinesCreated;
    expect(await check(g, x48, vec4Reads[1]![1])).toEqual(['elementwise.gather4']);
    expect(g.stats().pipelinesCreated).toBe(made);
  });
  test('empty inputs and outputs (padding an empty tensor, an empty slice) run and give the right shapes', async () => {
    const empty = Tensor.zeros(gpu, [0, 4]);
    const padded = ops.pad(empty, [
      [1, 1],
      [0, 0],
    ]);
    expect([...padded.shape]).toEqual([2, 4]);
    expect(Array.from(await padded.read())).toEqual(new Array<number>(8).fill(0));
    const none = ops.slice(upload(gpu, { data: x48, shape: [6, 8] }), [1, 0], [0, 8]);
    expect([...none.shape]).toEqual([0, 8]);
    expect((await none.read()).length).toBe(0);
    await gpu.sync();
  });
  test('over the binding limit the scalar gather runs in windows', async () => {
    const small = await testGpu({ profile: { maxStorageBindingBytes: 4096 } });
    const xd = randn(r, 3 * 40 * 16);
    const geo = { dims: [40, 3, 24], strides: [16, 640, 1], starts: [0, 0, -4], extents: [40, 3, 16] };
    const names = await check(small, xd, geo);
    expect(names.length).toBeGreaterThan(1);
    expect(new Set(names)).toEqual(new Set(['elementwise.gather']));
  });
});

describe('binary scalar entry on app-owned buffers', () => {
  test('same-shape add over exact-size buffers (no vec4 room) runs the scalar entry', async () => {
    const n = 1027;
    const r = rng(31);
    const ad = randn(r, n);
    const bd = randn(r, n);
    const mk = (d: Float32Array) => {
      const buf = gpu.device.createBuffer({
        size: n * 4,
        usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST | GPUBufferUsage.COPY_SRC,
      });
      gpu.device.queue.writeBuffer(buf, 0, new Float32Array(d));
      return buf;
    };
    const bufs = [mk(ad), mk(bd), mk(new Float32Array(n))];
    const [a, b, out] = bufs.map((buf) => Tensor.fromBuffer(gpu, buf, [n]));
    runBinary('add', a!, b!, out!, { dims: [n], aStrides: [1], bStrides: [1] });
    assertClose(
      await out!.read(),
      ad.map((v, i) => v + bd[i]!),
      { atol: 1e-6, rtol: 0, name: 'add' },
    );
    bufs.forEach((buf) => buf.destroy());
  });
});

describe('memory and pipelines', () => {
  test('100 forward+backward steps keep pool bytes flat and create no pipelines', async () => {
    const r = rng(5);
    const w = param(upload(gpu, { data: randn(r, 64), shape: [8, 8] }));
    const xin = upload(gpu, { data: randn(r, 256), shape: [4, 8, 8] });
    const step = () =>
      tidy(() => {
        const h = ops.gelu(ops.mul(xin, w));
        const y = ops.sum(ops.add(h, ops.permute(h, [0, 2, 1])), [1, 2]);
        backward(ops.sum(ops.square(y)));
      });
    // Two warm-up steps: the first creates the leaf gradient, the second accumulates into it.
    step();
    step();
    await gpu.sync();
    const before = gpu.stats();
    for (let i = 0; i < 100; i++) step();
    await gpu.sync();
    const after = gpu.stats();
    expect(after.pool.liveBytes).toBe(before.pool.liveBytes);
    expect(after.pool.liveBuffers).toBe(before.pool.liveBuffers);
    expect(after.pipelinesCreated).toBe(before.pipelinesCreated);
    expect(after.pool.created).toBe(before.pool.created);
    expect(after.dispatches).toBeGreaterThan(before.dispatches + 100 * 8);
  });
});

describe('flat kernels split bindings over the adapter limit', () => {
  test('unary, unary-grad, same-shape binary, axpby, fill and affine run in chunks and stay exact', async () => {
    // 4096-byte bindings: 1024 floats per chunk; n is neither a chunk nor a vec4 multiple.
    const small = await testGpu({ profile: { maxStorageBindingBytes: 4096 } });
    const n = 5 * 1024 + 7;
    const r = rng(77);
    const xd = randn(r, n, 2);
    const yd = randn(r, n);
    const x = param(upload(small, { data: xd, shape: [n] }));
    const y = upload(small, { data: yd, shape: [n] });
    const d0 = small.stats().dispatches;
    const g = ops.gelu(x);
    expect(small.stats().dispatches - d0).toBeGreaterThan(1);
    const s = ops.add(g, y);
    backward(s, { grad: upload(small, { data: yd, shape: [n] }) });
    assertClose(await g.read(), ref.map(xd, ref.gelu), { atol: 2e-6, rtol: 2e-6, name: 'gelu' });
    assertClose(
      await s.read(),
      ref.map(xd, ref.gelu).map((v, i) => v + yd[i]!),
      { atol: 1e-5, rtol: 1e-5 },
    );
    assertClose(
      await x.grad!.read(),
      ref.map(xd, ref.geluGrad).map((v, i) => v * yd[i]!),
      { atol: 2e-6, rtol: 2e-5, name: 'dx' },
    );
    const f = Tensor.empty(small, [n]);
    runFill(f, 3);
    ops.addInPlace(f, y);
    expect(Array.from(await f.read()).every((v, i) => Math.abs(v - (3 + yd[i]!)) < 1e-6)).toBe(true);
  });

  test.each([
    // [shape, axes]: A-range pieces (one slab fits), R-range pieces (one slab does not), both ends
    [[7, 300, 3], [1]],
    [[2, 1500, 3], [1]],
    [[3, 5000], [1]],
    [[4001], [0]],
    [
      [2, 700, 3],
      [0, 2],
    ],
  ])('sum %j over %j splits over the binding limit and matches the CPU sum', async (shape, axes) => {
    const small = await testGpu({ profile: { maxStorageBindingBytes: 4096 } });
    const r = rng(shape.length * 31 + axes[0]!);
    const n = shape.reduce((a, b) => a * b, 1);
    const xd = randn(r, n);
    const x = param(upload(small, { data: xd, shape }));
    const d0 = small.stats().dispatches;
    const y = ops.sum(x, axes, { keepDims: true });
    expect(small.stats().dispatches - d0).toBeGreaterThan(1);
    const target = shape.map((d, i) => (axes.includes(i) ? 1 : d));
    assertClose(await y.read(), ref.sumTo(xd, shape, target), { atol: 1e-4, rtol: 1e-5, name: 'sum' });
    const dyd = randn(r, y.size);
    backward(y, { grad: upload(small, { data: dyd, shape: y.shape }) });
    const want = ref.broadcastBinary(new Float64Array(n), shape, dyd, target, (_a, b) => b).data;
    assertClose(await x.grad!.read(), want, { atol: 1e-6, rtol: 0, name: 'sum dx' });
  });

  test('broadcast binary ops split output and operands over the binding limit (forward and backward)', async () => {
    const small = await testGpu({ profile: { maxStorageBindingBytes: 4096 } });
    const r = rng(91);
    const cases: [number[], number[], number[]][] = [
      // [a, b, broadcast result]: operand windows, a broadcast operand, both broadcast
      [
        [5, 7, 60],
        [7, 1],
        [5, 7, 60],
      ],
      [
        [3, 1, 500],
        [3, 4, 1],
        [3, 4, 500],
      ],
      [
        [1, 900],
        [5, 1],
        [5, 900],
      ],
    ];
    for (const [as, bs, out] of cases) {
      const ad = randn(
        r,
        as.reduce((x, y) => x * y, 1),
      );
      const bd = randn(
        r,
        bs.reduce((x, y) => x * y, 1),
      );
      const a = param(upload(small, { data: ad, shape: as }));
      const b = param(upload(small, { data: bd, shape: bs }));
      const d0 = small.stats().dispatches;
      const y = ops.mul(a, b);
      expect(small.stats().dispatches - d0).toBeGreaterThan(1);
      const want = ref.broadcastBinary(ad, as, bd, bs, (p, q) => p * q);
      expect(y.shape).toEqual(want.shape);
      expect(y.shape).toEqual(out);
      assertClose(await y.read(), want.data, {
        atol: 1e-6,
        rtol: 1e-6,
        name: `mul ${fmtShape(as)}*${fmtShape(bs)}`,
      });
      const dyd = randn(r, y.size);
      backward(y, { grad: upload(small, { data: dyd, shape: y.shape }) });
      const ga = ref.sumTo(ref.broadcastBinary(dyd, out, bd, bs, (p, q) => p * q).data, out, as);
      const gb = ref.sumTo(ref.broadcastBinary(dyd, out, ad, as, (p, q) => p * q).data, out, bs);
      assertClose(await a.grad!.read(), ga, { atol: 1e-4, rtol: 1e-5, name: 'da' });
      assertClose(await b.grad!.read(), gb, { atol: 1e-4, rtol: 1e-5, name: 'db' });
    }
  });

  test('permute, pad and slice split over the binding limit and match the CPU reference', async () => {
    const small = await testGpu({ profile: { maxStorageBindingBytes: 4096 } });
    const r = rng(92);
    // A transpose reads its whole input for every output chunk: the worst case for windows.
    const shape = [37, 3, 29];
    const xd = randn(r, 37 * 3 * 29);
    const x = param(upload(small, { data: xd, shape }));
    const d0 = small.stats().dispatches;
    const p = ops.permute(x, [2, 1, 0]);
    expect(small.stats().dispatches - d0).toBeGreaterThan(1);
    assertClose(await p.read(), ref.permute(xd, shape, [2, 1, 0]), { atol: 0, rtol: 0, name: 'permute' });
    const dyd = randn(r, p.size);
    backward(p, { grad: upload(small, { data: dyd, shape: p.shape }) });
    assertClose(await x.grad!.read(), ref.permute(dyd, [29, 3, 37], [2, 1, 0]), {
      atol: 0,
      rtol: 0,
      name: 'permute dx',
    });
    // Pad then slice back: zeros in the border, the input in the middle, over several chunks.
    const z = upload(small, { data: xd, shape });
    const padded = ops.pad(z, [
      [1, 2],
      [0, 0],
      [3, 4],
    ]);
    const pv = await padded.read();
    const [P0, P1, P2] = padded.shape as [number, number, number];
    expect([P0, P1, P2]).toEqual([40, 3, 36]);
    let bad = 0;
    for (let i = 0; i < P0; i++)
      for (let j = 0; j < P1; j++)
        for (let k = 0; k < P2; k++) {
          const si = i - 1;
          const sk = k - 3;
          const want = si >= 0 && si < 37 && sk >= 0 && sk < 29 ? xd[(si * 3 + j) * 29 + sk]! : 0;
          if (pv[(i * P1 + j) * P2 + k] !== want) bad++;
        }
    expect(bad).toBe(0);
    const back = ops.slice(padded, [1, 0, 3], [37, 3, 29]);
    assertClose(await back.read(), xd, { atol: 0, rtol: 0, name: 'slice' });
  });
});
