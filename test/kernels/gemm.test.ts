import { afterAll, beforeAll, describe, expect, test, vi } from 'vitest';
import { backward, noGrad, param } from '../../src/autograd/tape.js';
import type { Gpu, GpuOptions } from '../../src/gpu/device.js';
import {
  gemmVariant,
  runGemm,
  SG_TILE_ROWS,
  sgTileRows,
  type GemmAct,
  type GemmArgs,
  type GemmVariant,
} from '../../src/kernels/gemm.js';
import { linear, matmul } from '../../src/ops/linear.js';
import { tidy } from '../../src/tensor/scope.js';
import { Tensor } from '../../src/tensor/tensor.js';
import type { Rng } from '../../src/util/rng.js';
import * as ref from '../reference/gemm.js';
import { assertClose, closeTestGpus, finiteDiff, randn, rng, testGpu, upload } from '../helpers.js';

afterAll(closeTestGpus);

const prod = (s: readonly number[]) => s.reduce((x, y) => x * y, 1);

/** f32 GEMM tolerance: error grows like sqrt(K) * eps * |a||b|; inputs are N(0,1). */
const tolK = (K: number) => ({ atol: 2e-6 * Math.max(K, 1) ** 0.75 + 1e-6, rtol: 1e-5 });

interface Case {
  M: number;
  N: number;
  K: number;
  batch?: number;
  transA?: boolean;
  transB?: boolean;
  aBroadcast?: boolean;
  bBroadcast?: boolean;
  bias?: boolean;
  act?: GemmAct;
  alpha?: number;
}

/** Runs one GEMM case on `gpu` and compares it with the float64 reference. */
async function checkGemm(gpu: Gpu, c: Case, r: Rng, extra: Partial<GemmArgs> = {}): Promise<void> {
  const batch = c.batch ?? 1;
  const { M, N, K } = c;
  const aItems = c.aBroadcast ? 1 : batch;
  const bItems = c.bBroadcast ? 1 : batch;
  const a = randn(r, aItems * M * K);
  const b = randn(r, bItems * K * N);
  const bias = c.bias ? randn(r, N) : null;
  const A = upload(gpu, { data: a, shape: [a.length] });
  const B = upload(gpu, { data: b, shape: [b.length] });
  const Bias = bias ? upload(gpu, { data: bias, shape: [N] }) : null;
  const C = Tensor.empty(gpu, [batch * M * N]);
  runGemm({
    a: A,
    b: B,
    c: C,
    bias: Bias,
    M,
    N,
    K,
    batch,
    transA: c.transA ?? false,
    transB: c.transB ?? false,
    aBatchStride: c.aBroadcast ? 0 : M * K,
    bBatchStride: c.bBroadcast ? 0 : K * N,
    alpha: c.alpha ?? 1,
    act: c.act ?? 'none',
    ...extra,
  });
  const want = ref.gemmRef({
    a,
    b,
    M,
    N,
    K,
    batch,
    transA: c.transA ?? false,
    transB: c.transB ?? false,
    aBatchStride: c.aBroadcast ? 0 : M * K,
    bBatchStride: c.bBroadcast ? 0 : K * N,
    bias,
    alpha: c.alpha ?? 1,
    act: c.act ?? 'none',
  });
  assertClose(await C.read(), want, { ...tolK(K), name: `gemm ${JSON.stringify(c)}` });
  for (const t of [A, B, C, Bias]) t?.dispose();
}

const SHAPES: [number, number, number][] = [
  [1, 1, 9],
  [1, 37, 1],
  [7, 13, 5],
  [65, 129, 33],
  [24, 32, 8],
  [50, 36, 20],
  [3, 4, 64],
  [97, 8, 12],
];
const ACTS: GemmAct[] = ['none', 'relu', 'gelu'];

const VARIANTS: [GemmVariant, Partial<Omit<GpuOptions, 'device'>>][] = [
  ['sg', {}],
  ['plain', { profile: { subgroups: false } }],
  ['tiled', { profile: { kind: 'gpu' } }],
];

describe.each(VARIANTS)('GEMM variant %s vs CPU reference', (variant, opts) => {
  let gpu: Gpu;
  beforeAll(async () => {
    gpu = await testGpu(opts);
  });

  test('is the variant this adapter profile selects', () => {
    expect(gemmVariant(gpu)).toBe(variant);
  });

  test.each(SHAPES)('M=%i N=%i K=%i, all transposes, bias and activations', async (M, N, K) => {
    const r = rng(M * 1000 + N * 10 + K);
    let i = 0;
    for (const transA of [false, true])
      for (const transB of [false, true]) {
        const act = ACTS[i % 3]!;
        await checkGemm(gpu, { M, N, K, transA, transB, act, bias: i % 2 === 0 }, r);
        i++;
      }
  });

  test('seeded random shapes', async () => {
    const r = rng(77);
    for (let i = 0; i < 4; i++) {
      const M = 1 + Math.floor(r.uniform() * 90);
      const N = 1 + Math.floor(r.uniform() * 90);
      const K = 1 + Math.floor(r.uniform() * 70);
      await checkGemm(gpu, { M, N, K, transA: r.uniform() < 0.5, transB: r.uniform() < 0.5, bias: true }, r);
    }
  });

  test('batched with broadcast operands, alpha, and the summed-batch mode', async () => {
    const r = rng(11);
    await checkGemm(gpu, { M: 9, N: 12, K: 16, batch: 3, alpha: 0.5, bias: true, act: 'relu' }, r);
    await checkGemm(gpu, { M: 9, N: 7, K: 5, batch: 4, aBroadcast: true, transB: true }, r);
    await checkGemm(gpu, { M: 28, N: 12, K: 8, batch: 2, bBroadcast: true, transA: true }, r);
    // kb = 3 products summed into one output: C = sum_t A[t] . B[t].
    const [M, N, K, kb] = [10, 6, 7, 3];
    const a = randn(r, kb * M * K);
    const b = randn(r, kb * K * N);
    const A = upload(gpu, { data: a, shape: [a.length] });
    const B = upload(gpu, { data: b, shape: [b.length] });
    const C = Tensor.empty(gpu, [M * N]);
    runGemm({ a: A, b: B, c: C, M, N, K, kb });
    const want = new Float64Array(M * N);
    for (let t = 0; t < kb; t++) {
      const p = ref.gemmRef({ a: a.subarray(t * M * K), b: b.subarray(t * K * N), M, N, K });
      p.forEach((v, i) => (want[i] = want[i]! + v));
    }
    assertClose(await C.read(), want, { ...tolK(K * kb), name: 'gemm kb=3' });
    // beta = 1 accumulates into C.
    runGemm({ a: A, b: B, c: C, M, N, K, kb, beta: 1 });
    assertClose(
      await C.read(),
      want.map((v) => 2 * v),
      { ...tolK(K * kb), name: 'gemm beta=1' },
    );
  });
});

describe("GEMM 'sg' tile heights", () => {
  let gpu: Gpu;
  beforeAll(async () => {
    gpu = await testGpu();
  });

  test('sgTileRows picks the height that computes the fewest rows', () => {
    // ViT-B at 224: 196 rows = 5 tiles of 40 (200 rows) rather than 9 of 24 (216).
    expect(sgTileRows(196)).toBe(40);
    expect(sgTileRows(1024)).toBe(32);
    expect(sgTileRows(1764)).toBe(24);
    expect(sgTileRows(960)).toBe(40);
    expect(sgTileRows(24)).toBe(24);
    expect(sgTileRows(1)).toBe(24);
    expect(sgTileRows(72)).toBe(24);
    for (let M = 1; M < 300; M++) {
      const tm = sgTileRows(M);
      // Never more padded rows than any supported height would compute.
      for (const other of SG_TILE_ROWS)
        expect(Math.ceil(M / tm) * tm).toBeLessThanOrEqual(Math.ceil(M / other) * other);
    }
  });

  test.each(SG_TILE_ROWS.map((tm) => [tm]))(
    'TM=%i on shapes it does not divide, all transposes, VEC and scalar loads',
    async (tm) => {
      const r = rng(500 + tm);
      // 4-aligned shapes take the whole-vec4 path; the others gather scalars.
      const shapes: [number, number, number][] = [
        [tm + 4, 36, 20],
        [2 * tm + 3, 13, 9],
        [3, 40, 12],
        [tm * 3 - 1, 33, 17],
      ];
      let i = 0;
      for (const [M, N, K] of shapes)
        for (const transA of [false, true])
          for (const transB of [false, true]) {
            const act = ACTS[i++ % 3]!;
            await checkGemm(gpu, { M, N, K, transA, transB, act, bias: true }, r, { tileRows: tm });
          }
      await checkGemm(gpu, { M: tm + 8, N: 20, K: 12, batch: 3, bias: true }, r, { tileRows: tm });
    },
  );

  test('vec4 stores (gemm_sg_c4) when C is 4-aligned, scalar stores otherwise; beta = 1 on both', async () => {
    const r = rng(610);
    /** C = A.B + bias into a window of a (M + 1, ldc) buffer at cOff, then C += A.B (beta = 1). */
    const run = async (M: number, N: number, K: number, ldc: number, cOff: number): Promise<string[]> => {
      const a = randn(r, M * K);
      const b = randn(r, K * N);
      const bias = randn(r, N);
      const c0 = randn(r, cOff + (M + 1) * ldc);
      const [A, B, Bias] = [a, b, bias].map((d) => upload(gpu, { data: d, shape: [d.length] }));
      const C = upload(gpu, { data: c0, shape: [c0.length] });
      const spy = vi.spyOn(gpu, 'dispatch');
      try {
        const args = { a: A!, b: B!, c: C, M, N, K, ldc, cOffset: cOff };
        runGemm({ ...args, bias: Bias, act: 'gelu' });
        runGemm({ ...args, beta: 1 });
        const names = spy.mock.calls.map((x) => x[0].name);
        const prod = ref.gemmRef({ a, b, M, N, K });
        const first = ref.gemmRef({ a, b, M, N, K, bias, act: 'gelu' });
        const got = await C.read();
        const want = Float64Array.from(c0);
        for (let m = 0; m < M; m++)
          for (let n = 0; n < N; n++) want[cOff + m * ldc + n] = first[m * N + n]! + prod[m * N + n]!;
        assertClose(got, want, { ...tolK(K), name: `gemm C window N=${N} ldc=${ldc} cOff=${cOff}` });
        return names;
      } finally {
        spy.mockRestore();
        for (const t of [A, B, Bias, C]) t?.dispose();
      }
    };
    expect(await run(45, 40, 24, 44, 8)).toEqual(['gemm_sg.gemm_sg_c4', 'gemm_sg.gemm_sg_c4']);
    expect(await run(45, 40, 24, 44, 6)).toEqual(['gemm_sg.gemm_sg', 'gemm_sg.gemm_sg']);
    expect(await run(45, 38, 24, 44, 8)).toEqual(['gemm_sg.gemm_sg', 'gemm_sg.gemm_sg']);
    expect(await run(45, 40, 24, 42, 0)).toEqual(['gemm_sg.gemm_sg', 'gemm_sg.gemm_sg']);
  });

  test('tileRows outside the supported set is refused', () => {
    const t = Tensor.zeros(gpu, [64]);
    expect(() =>
      runGemm({ a: t, b: t, c: Tensor.zeros(gpu, [64]), M: 8, N: 8, K: 8, tileRows: 16 as never }),
    ).toThrow(/tileRows must be one of 24, 32, 40, got 16/);
    t.dispose();
  });
});

describe('GEMM with bindings split to fit maxStorageBindingBytes = 4096', () => {
  let gpu: Gpu;
  beforeAll(async () => {
    gpu = await testGpu({ profile: { maxStorageBindingBytes: 4096 } });
  });

  test('rows, columns and depth chunks (all transposes, bias, gelu applied once)', async () => {
    const r = rng(3);
    for (const transA of [false, true])
      for (const transB of [false, true])
        await checkGemm(gpu, { M: 65, N: 129, K: 33, transA, transB, bias: true, act: 'gelu' }, r);
    // Long reduction: split-K accumulation with a ReLU that must see the full sum.
    await checkGemm(gpu, { M: 5, N: 6, K: 1500, transA: true, bias: true, act: 'relu' }, r);
    // Wide output: column chunks (bias sliced per chunk).
    await checkGemm(gpu, { M: 5, N: 700, K: 3, bias: true, act: 'gelu' }, r);
    await checkGemm(gpu, { M: 5, N: 700, K: 3, transB: true, bias: true }, r);
    const before = gpu.stats().dispatches;
    await checkGemm(gpu, { M: 65, N: 129, K: 33 }, r);
    expect(gpu.stats().dispatches - before).toBeGreaterThan(4);
  });

  test('batch chunks with broadcast operands, every variant', async () => {
    const r = rng(4);
    for (const variant of ['sg', 'plain', 'tiled'] as const) {
      await checkGemm(gpu, { M: 20, N: 24, K: 28, batch: 5, bias: true }, r, { variant });
      await checkGemm(gpu, { M: 20, N: 24, K: 28, batch: 5, aBroadcast: true, transB: true }, r, { variant });
    }
  });

  test('matmul backward through split GEMMs (summed broadcast gradient)', async () => {
    const r = rng(5);
    const [as, bs] = [
      [40, 28],
      [6, 28, 20],
    ];
    const ad = randn(r, prod(as));
    const bd = randn(r, prod(bs));
    const a = param(upload(gpu, { data: ad, shape: as }));
    const b = param(upload(gpu, { data: bd, shape: bs }));
    const y = matmul(a, b);
    const dyd = randn(r, y.size);
    backward(y, { grad: upload(gpu, { data: dyd, shape: y.shape }) });
    assertClose(await y.read(), ref.matmulRef(ad, as, bd, bs).data, { ...tolK(28), name: 'y' });
    const g = ref.matmulGradRef(ad, as, bd, bs, dyd);
    assertClose(await a.grad!.read(), g.da, { ...tolK(120), name: 'da' });
    assertClose(await b.grad!.read(), g.db, { ...tolK(40), name: 'db' });
  });
});

describe.each([
  ['default', {}],
  ['split bindings', { profile: { maxStorageBindingBytes: 4096 } }],
] as const)('GEMM on sub-matrices (offsets, leading dimensions), %s', (_name, opts) => {
  let gpu: Gpu;
  beforeAll(async () => {
    gpu = await testGpu(opts);
  });
  test.each([
    [false, false, 0],
    [true, true, 0],
    [false, true, 3],
    [true, false, 1],
  ])('transA=%s transB=%s extra offset %i', async (tA, tB, extra) => {
    const r = rng(40 + extra);
    // Windows (M x K etc.) inside larger row-major buffers: op(A) from a (rowsA, lda) buffer at
    // offset aOff, likewise B; C written into a (M + 2, ldc) buffer at cOff; bias at biasOffset.
    const [M, N, K] = [20, 12, 16];
    const [lda, ldb, ldc] = [(tA ? M : K) + 8, (tB ? K : N) + 4, N + 12];
    const [aOff, bOff, cOff, biasOff] = [8 + extra, 4 + extra, 5, 2];
    const aRows = tA ? K : M;
    const bRows = tB ? N : K;
    const abuf = randn(r, aOff + aRows * lda);
    const bbuf = randn(r, bOff + bRows * ldb);
    const bias = randn(r, biasOff + N);
    const a = new Float64Array(M * K);
    const b = new Float64Array(K * N);
    for (let m = 0; m < M; m++)
      for (let k = 0; k < K; k++) a[m * K + k] = abuf[aOff + (tA ? k * lda + m : m * lda + k)]!;
    for (let k = 0; k < K; k++)
      for (let n = 0; n < N; n++) b[k * N + n] = bbuf[bOff + (tB ? n * ldb + k : k * ldb + n)]!;
    const A = upload(gpu, { data: abuf, shape: [abuf.length] });
    const B = upload(gpu, { data: bbuf, shape: [bbuf.length] });
    const Bias = upload(gpu, { data: bias, shape: [bias.length] });
    const C = Tensor.zeros(gpu, [cOff + (M + 2) * ldc]);
    runGemm({
      ...{ a: A, b: B, c: C, bias: Bias, M, N, K, transA: tA, transB: tB, lda, ldb, ldc },
      ...{ aOffset: aOff, bOffset: bOff, cOffset: cOff, biasOffset: biasOff, act: 'gelu' as const },
    });
    const want = ref.gemmRef({ a, b, M, N, K, bias: bias.subarray(biasOff), act: 'gelu' });
    const got = await C.read();
    const win = Array.from({ length: M * N }, (_, i) => got[cOff + Math.floor(i / N) * ldc + (i % N)]!);
    assertClose(win, want, { ...tolK(K), name: 'strided gemm' });
    // Nothing outside the window was written.
    const outside = Array.from(got).filter((_, i) => {
      const j = i - cOff;
      return j < 0 || Math.floor(j / ldc) >= M || j % ldc >= N;
    });
    expect(outside.every((v) => v === 0)).toBe(true);
  });
});

test('GEMM grids over maxWorkgroupsPerDimension are split into several dispatches', async () => {
  const gpu = await testGpu({ profile: { maxWorkgroupsPerDimension: 2 } });
  const r = rng(8);
  await checkGemm(gpu, { M: 100, N: 150, K: 10, batch: 5, bias: true, act: 'relu' }, r);
  await checkGemm(gpu, { M: 100, N: 150, K: 12, batch: 3, transA: true, transB: true, bBroadcast: true }, r);
});

describe('matmul and linear ops', () => {
  let gpu: Gpu;
  beforeAll(async () => {
    gpu = await testGpu();
  });

  const MATMUL: [number[], number[], boolean, boolean][] = [
    [[5, 7], [7, 3], false, false],
    [[7, 5], [7, 3], true, false],
    [[5, 7], [3, 7], false, true],
    [[7, 5], [3, 7], true, true],
    [[2, 3, 5, 8], [2, 3, 8, 4], false, false],
    [[2, 8, 5], [2, 4, 8], true, true],
    [[5, 7], [4, 7, 6], false, false],
    [[7, 5], [4, 6, 7], true, true],
    [[4, 5, 7], [7, 6], false, false],
    [[3, 9, 5], [6, 9], true, true],
  ];
  test.each(MATMUL)('matmul %j x %j transA=%s transB=%s forward and backward', async (as, bs, tA, tB) => {
    const r = rng(as.length * 100 + bs.length * 10 + (tA ? 1 : 0) + (tB ? 2 : 0));
    const ad = randn(r, prod(as));
    const bd = randn(r, prod(bs));
    const a = param(upload(gpu, { data: ad, shape: as }));
    const b = param(upload(gpu, { data: bd, shape: bs }));
    const y = matmul(a, b, { transA: tA, transB: tB });
    const want = ref.matmulRef(ad, as, bd, bs, tA, tB);
    expect([...y.shape]).toEqual(want.shape);
    assertClose(await y.read(), want.data, { ...tolK(9), name: 'matmul y' });
    const dyd = randn(r, y.size);
    backward(y, { grad: upload(gpu, { data: dyd, shape: y.shape }) });
    const g = ref.matmulGradRef(ad, as, bd, bs, dyd, tA, tB);
    assertClose(await a.grad!.read(), g.da, { ...tolK(40), name: 'matmul da' });
    assertClose(await b.grad!.read(), g.db, { ...tolK(40), name: 'matmul db' });
  });

  test('matmul reference gradient agrees with finite differences', () => {
    const r = rng(9);
    for (const [as, bs, tA, tB] of [MATMUL[7]!, MATMUL[9]!, MATMUL[5]!]) {
      const ad = Float64Array.from(randn(r, prod(as)));
      const bd = Float64Array.from(randn(r, prod(bs)));
      const M = ref.matmulRef(ad, as, bd, bs, tA, tB);
      const dy = Float64Array.from(randn(r, M.data.length));
      const loss = (x: Float64Array, y: Float64Array) =>
        ref.matmulRef(x, as, y, bs, tA, tB).data.reduce((s, v, i) => s + v * dy[i]!, 0);
      const g = ref.matmulGradRef(ad, as, bd, bs, dy, tA, tB);
      const ia = [0, 3, ad.length - 1];
      const ib = [1, 5, bd.length - 1];
      const fa = finiteDiff((x) => loss(x, bd), ad, ia);
      const fb = finiteDiff((y) => loss(ad, y), bd, ib);
      assertClose(
        fa,
        ia.map((i) => g.da[i]!),
        { atol: 1e-6, rtol: 1e-6, name: 'FD da' },
      );
      assertClose(
        fb,
        ib.map((i) => g.db[i]!),
        { atol: 1e-6, rtol: 1e-6, name: 'FD db' },
      );
    }
  });

  const LINEAR: [number[], number, boolean, GemmAct][] = [
    [[2, 3, 10], 6, true, 'none'],
    [[2, 3, 10], 6, false, 'none'],
    [[13, 20], 7, true, 'relu'],
    [[4, 5, 9], 11, true, 'gelu'],
    [[10], 3, true, 'gelu'],
  ];
  test.each(LINEAR)(
    'linear x=%j out=%i bias=%s act=%s forward and backward',
    async (xs, outF, hasBias, act) => {
      const r = rng(xs.length * 50 + outF);
      const inF = xs[xs.length - 1]!;
      const rows = prod(xs) / inF;
      const xd = randn(r, prod(xs));
      const wd = randn(r, outF * inF, 0.5);
      const bd = hasBias ? randn(r, outF) : null;
      const x = param(upload(gpu, { data: xd, shape: xs }));
      const w = param(upload(gpu, { data: wd, shape: [outF, inF] }));
      const b = bd ? param(upload(gpu, { data: bd, shape: [outF] })) : null;
      const y = linear(x, w, b, { act });
      expect([...y.shape]).toEqual([...xs.slice(0, -1), outF]);
      assertClose(await y.read(), ref.linearRef(xd, rows, inF, wd, outF, bd, act), {
        ...tolK(inF),
        name: 'linear y',
      });
      const dyd = randn(r, y.size);
      backward(y, { grad: upload(gpu, { data: dyd, shape: y.shape }) });
      const g = ref.linearGradRef(xd, rows, inF, wd, outF, bd, dyd, act);
      assertClose(await x.grad!.read(), g.dx, { ...tolK(outF), name: 'linear dx' });
      assertClose(await w.grad!.read(), g.dw, { ...tolK(rows), name: 'linear dw' });
      if (b) assertClose(await b.grad!.read(), g.db, { ...tolK(rows), name: 'linear db' });
      // Without gradients the activation is fused into the GEMM; same forward result.
      const y2 = noGrad(() => linear(x, w, b, { act }));
      assertClose(await y2.read(), await y.read(), { atol: 1e-6, rtol: 1e-6, name: 'fused forward' });
    },
  );

  test('linear and matmul with a frozen operand: gradients only where required', async () => {
    const r = rng(31);
    const [rows, inF, outF] = [6, 8, 5];
    const xd = randn(r, rows * inF);
    const wd = randn(r, outF * inF);
    const dyd = randn(r, rows * outF);
    const x = param(upload(gpu, { data: xd, shape: [rows, inF] }));
    const w = upload(gpu, { data: wd, shape: [outF, inF] });
    const y = linear(x, w, null, { act: 'relu' });
    w.dispose(); // the tape keeps what the rule reads
    backward(y, { grad: upload(gpu, { data: dyd, shape: [rows, outF] }) });
    const g = ref.linearGradRef(xd, rows, inF, wd, outF, null, dyd, 'relu');
    assertClose(await x.grad!.read(), g.dx, { ...tolK(outF), name: 'frozen-weight dx' });
    const a = upload(gpu, { data: xd, shape: [rows, inF] });
    const b = param(upload(gpu, { data: wd, shape: [inF, outF] }));
    const m = matmul(a, b);
    a.dispose();
    backward(m, { grad: upload(gpu, { data: dyd, shape: [rows, outF] }) });
    const gm = ref.matmulGradRef(xd, [rows, inF], wd, [inF, outF], dyd);
    assertClose(await b.grad!.read(), gm.db, { ...tolK(rows), name: 'frozen-a db' });
  });

  test('linear reference gradients agree with finite differences (each activation)', () => {
    const r = rng(21);
    const [rows, inF, outF] = [3, 4, 5];
    for (const act of ACTS) {
      const x = Float64Array.from(randn(r, rows * inF));
      const w = Float64Array.from(randn(r, outF * inF));
      const b = Float64Array.from(randn(r, outF));
      const dy = Float64Array.from(randn(r, rows * outF));
      const g = ref.linearGradRef(x, rows, inF, w, outF, b, dy, act);
      const idx = [0, 5, 11];
      const fx = finiteDiff((v) => ref.linearLoss(v, rows, inF, w, outF, b, dy, act), x, idx, 1e-5);
      const fw = finiteDiff((v) => ref.linearLoss(x, rows, inF, v, outF, b, dy, act), w, idx, 1e-5);
      const fb = finiteDiff((v) => ref.linearLoss(x, rows, inF, w, outF, v, dy, act), b, [0, 2, 4], 1e-5);
      const tol = { atol: 1e-6, rtol: 1e-5 };
      assertClose(
        fx,
        idx.map((i) => g.dx[i]!),
        { ...tol, name: `FD dx ${act}` },
      );
      assertClose(
        fw,
        idx.map((i) => g.dw[i]!),
        { ...tol, name: `FD dw ${act}` },
      );
      assertClose(
        fb,
        [0, 2, 4].map((i) => g.db[i]!),
        { ...tol, name: `FD db ${act}` },
      );
    }
  });

  test('ViT qkv shape 196x768 -> 2304 (bias) matches the reference on sampled rows', async () => {
    const r = rng(196);
    const [M, K, N] = [196, 768, 2304];
    const xd = randn(r, M * K);
    const wd = randn(r, N * K, 0.05);
    const bd = randn(r, N);
    const y = noGrad(() =>
      linear(
        upload(gpu, { data: xd, shape: [M, K] }),
        upload(gpu, { data: wd, shape: [N, K] }),
        upload(gpu, { data: bd, shape: [N] }),
      ),
    );
    const got = await y.read();
    const rows = [0, 1, 23, 24, 97, 170, 195];
    const want = ref.gemmRef({ a: xd, b: wd, M, N, K, transB: true, bias: bd, rows });
    const pick = (v: ArrayLike<number>) =>
      rows.flatMap((m) => Array.from({ length: N }, (_, n) => v[m * N + n]!));
    assertClose(pick(got), pick(want), { ...tolK(K), name: 'qkv rows' });
  });

  test('shape errors name the op and both shapes', () => {
    const z = (s: number[]) => Tensor.zeros(gpu, s);
    expect(() => matmul(z([2, 3]), z([4, 5]))).toThrow(/matmul: .*\[2, 3\].*\[4, 5\]/);
    expect(() => matmul(z([2, 3, 4]), z([3, 4, 5]))).toThrow(/matmul: batch .*\[2, 3, 4\].*\[3, 4, 5\]/);
    expect(() => matmul(z([3]), z([3, 4]))).toThrow(/matmul: .*\[3\].*\[3, 4\]/);
    expect(() => linear(z([2, 5]), z([4, 6]))).toThrow(/linear: .*\[2, 5\].*\[4, 6\]/);
    expect(() => linear(z([2, 6]), z([4, 6]), z([5]))).toThrow(/linear: .*\[2, 6\].*\[4, 6\].*\[5\]/);
  });

  test('forward+backward steps keep pool bytes flat and create no pipelines', async () => {
    const r = rng(6);
    const w = param(upload(gpu, { data: randn(r, 24 * 16), shape: [24, 16] }));
    const bias = param(upload(gpu, { data: randn(r, 24), shape: [24] }));
    const x = upload(gpu, { data: randn(r, 3 * 10 * 16), shape: [3, 10, 16] });
    const step = () =>
      tidy(() => {
        const h = linear(x, w, bias, { act: 'gelu' });
        const y = matmul(h, h, { transB: true });
        backward(y, { grad: Tensor.zeros(gpu, y.shape) });
      });
    step();
    step();
    await gpu.sync();
    const before = gpu.stats();
    for (let i = 0; i < 20; i++) step();
    await gpu.sync();
    const after = gpu.stats();
    expect(after.pool.liveBytes).toBe(before.pool.liveBytes);
    expect(after.pool.liveBuffers).toBe(before.pool.liveBuffers);
    expect(after.pipelinesCreated).toBe(before.pipelinesCreated);
  });
});
