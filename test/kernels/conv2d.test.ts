import { afterAll, beforeAll, describe, expect, test, vi } from 'vitest';
import { backward, param } from '../../src/autograd/tape.js';
import type { Gpu } from '../../src/gpu/device.js';
import { conv2dVariant, pwS2Applies, rowsPlan, runConv2dWeightGrad } from '../../src/kernels/conv2d.js';
import { conv2d, conv2dGeometry, type Conv2dOptions } from '../../src/ops/conv.js';
import '../../src/ops/index.js';
import { tidy } from '../../src/tensor/scope.js';
import { Tensor } from '../../src/tensor/tensor.js';
import * as ref from '../reference/conv2d.js';
import {
  assertClose,
  closeTestGpus,
  finiteDiff,
  kernelCase,
  kernelCaseNames,
  randn,
  rng,
  testGpu,
  upload,
} from '../helpers.js';

let sg: Gpu;
let plainCpu: Gpu;
let plainGpu: Gpu;
let tiny: Gpu;
let tinyPlain: Gpu;
beforeAll(async () => {
  sg = await testGpu();
  plainCpu = await testGpu({ profile: { subgroups: false } });
  plainGpu = await testGpu({ profile: { kind: 'gpu' } });
  tiny = await testGpu({ profile: { maxStorageBindingBytes: 4096 } });
  tinyPlain = await testGpu({ profile: { maxStorageBindingBytes: 4096, subgroups: false } });
});
afterAll(closeTestGpus);

type P2 = [number, number];
const p2 = (v: number | P2): P2 => (typeof v === 'number' ? [v, v] : v);

interface Case {
  name: string;
  x: [number, number, number, number];
  w: [number, number, number, number];
  stride?: number | P2;
  padding?: number | P2;
  dilation?: number | P2;
  groups?: number;
  bias?: boolean;
}

function refOpts(c: Case): ref.ConvOpts {
  return {
    stride: p2(c.stride ?? 1),
    padding: p2(c.padding ?? 0),
    dilation: p2(c.dilation ?? 1),
    groups: c.groups ?? 1,
  };
}

const prod = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);

/** Runs forward + backward on `gpu` and compares y, dx, dw, db with the float64 reference. */
async function checkCase(gpu: Gpu, c: Case, seed: number, tol = 2e-5): Promise<void> {
  const r = rng(seed);
  const xd = randn(r, prod(c.x));
  const wd = randn(r, prod(c.w), 1 / Math.sqrt(prod(c.w.slice(1))));
  const bd = c.bias ? randn(r, c.w[0]) : null;
  const o = refOpts(c);
  const ys = ref.outShape({ x: c.x, w: c.w }, o);
  const dyd = randn(r, prod(ys));
  const want = ref.conv2d(xd, wd, bd, { x: c.x, w: c.w }, o);
  const grads = ref.conv2dBackward(xd, wd, dyd, { x: c.x, w: c.w }, o);
  const out = tidy(() => {
    const x = param(upload(gpu, { data: xd, shape: c.x }));
    const w = param(upload(gpu, { data: wd, shape: c.w }));
    const b = bd ? param(upload(gpu, { data: bd, shape: [c.w[0]] })) : null;
    const y = conv2d(x, w, b, c as Conv2dOptions);
    backward(y, { grad: upload(gpu, { data: dyd, shape: ys }) });
    return { y, dx: x.grad!, dw: w.grad!, db: b?.grad ?? null };
  });
  try {
    expect([...out.y.shape]).toEqual(ys);
    const scale = (a: ArrayLike<number>) => Math.max(1, ...Array.from(a, Math.abs));
    const cmp = async (t: Tensor, e: Float64Array, what: string) =>
      assertClose(await t.read(), e, { atol: tol * scale(e), rtol: tol, name: `${c.name} ${what}` });
    await cmp(out.y, want, 'y');
    await cmp(out.dx, grads.dx, 'dx');
    await cmp(out.dw, grads.dw, 'dw');
    if (out.db) await cmp(out.db, grads.db, 'db');
  } finally {
    for (const t of Object.values(out)) t?.dispose();
  }
}

// Shapes that divide none of the tiles (32 rows x 32 columns for 'sg', 8 rows / 8x8 for 'plain').
const AWKWARD: Case[] = [
  { name: '3x3 p1 bias', x: [2, 3, 11, 13], w: [5, 3, 3, 3], padding: 1, bias: true },
  { name: '3x2 s(2,1) p(1,0)', x: [1, 5, 9, 7], w: [7, 5, 3, 2], stride: [2, 1], padding: [1, 0] },
  {
    name: 'dilation (2,1) s2 groups 2',
    x: [3, 4, 10, 9],
    w: [6, 2, 3, 3],
    stride: 2,
    padding: 1,
    dilation: [2, 1],
    groups: 2,
    bias: true,
  },
  { name: 'depthwise 3x3', x: [2, 6, 7, 8], w: [6, 1, 3, 3], padding: 1, groups: 6 },
  { name: 'stride 3 > kernel 1x2', x: [2, 3, 9, 10], w: [4, 3, 1, 2], stride: 3, bias: true },
  { name: '1x1 s2', x: [2, 9, 7, 9], w: [11, 9, 1, 1], stride: 2 },
  // Even sizes: the strided 1x1 runs as subsample + GEMM (dx: GEMM + zero insertion).
  { name: '1x1 s2 even (GEMM path on gpu-kind, rows on cpu)', x: [3, 10, 8, 6], w: [7, 10, 1, 1], stride: 2 },
  { name: '1x1 s1 (GEMM path)', x: [2, 13, 5, 7], w: [9, 13, 1, 1] },
  { name: 'Cout 37 over tiles', x: [1, 9, 12, 11], w: [37, 9, 3, 3], padding: 1 },
  // rows_sg2 (64 channels per workgroup): two column blocks, the second partly empty; per group.
  { name: 'Cout 70 two wide blocks', x: [1, 5, 9, 7], w: [70, 5, 3, 3], padding: 1, bias: true },
  { name: 'groups 2 x 36 wide', x: [2, 8, 6, 5], w: [72, 4, 3, 3], padding: 1, groups: 2 },
  { name: 'Cin 40 s2 p2', x: [2, 40, 6, 5], w: [33, 40, 3, 3], stride: 2, padding: 2 },
  { name: 'stem 7x7 s2 p3', x: [1, 3, 17, 19], w: [10, 3, 7, 7], stride: 2, padding: 3 },
  { name: 'patch 16x16 s16 bias', x: [1, 3, 32, 48], w: [9, 3, 16, 16], stride: 16, bias: true },
  { name: 'dilation 2 p2 groups 3', x: [1, 6, 9, 9], w: [9, 2, 3, 3], padding: 2, dilation: 2, groups: 3 },
];

// Strided 1x1 convs whose forward takes `pw_s2_sg` on the 'sg' variant (W % 4 == 0, Ho*Wo % 4 == 0;
// 64 output channels x 8 pixel quads per workgroup). Channel counts divide neither the 64-channel
// block nor the vec4; Wo % 4 == 2 makes pixel quads cross output rows (pair 1 starts the next row).
const PW_S2: Case[] = [
  // Wo 14: quads cross rows; 42 quads = 5 full tiles + 2; Cout 37 < 64.
  { name: 'pw s2 Cin 13 Cout 37 Wo%4=2', x: [2, 13, 12, 28], w: [37, 13, 1, 1], stride: 2 },
  { name: 'pw s2 Cin 3 Cout 5 bias', x: [3, 3, 8, 8], w: [5, 3, 1, 1], stride: 2, bias: true },
  // H odd (Ho = 4 from H = 7), Cout 70: two column blocks, the second nearly empty.
  { name: 'pw s2 H odd Cout 70 bias', x: [1, 6, 7, 12], w: [70, 6, 1, 1], stride: 2, bias: true },
  { name: 'pw s(3,2) Cout 9', x: [2, 5, 10, 8], w: [9, 5, 1, 1], stride: [3, 2] },
  { name: 'pw s2 Cin 40 Cout 130', x: [1, 40, 4, 20], w: [130, 40, 1, 1], stride: 2 },
];
// Strided 1x1 convs that keep the generic row kernel (W % 4 != 0, Ho*Wo % 4 != 0, stride x 3,
// padding); more than 8 output channels, so the sg variant runs rows_sg (see rowsPlan).
const PW_S2_NOT: Case[] = [
  { name: '1x1 s2 W%4=2', x: [2, 5, 8, 10], w: [11, 5, 1, 1], stride: 2, bias: true },
  { name: '1x1 s2 Ho*Wo%4=2', x: [2, 4, 6, 12], w: [9, 4, 1, 1], stride: 2 },
  { name: '1x1 s(2,3)', x: [1, 3, 8, 12], w: [12, 3, 1, 1], stride: [2, 3] },
  { name: '1x1 s2 p1', x: [1, 3, 8, 12], w: [10, 3, 1, 1], stride: 2, padding: 1 },
];

describe('variant selection', () => {
  test('each test GPU runs the variant it is meant to cover', () => {
    expect(conv2dVariant(sg)).toBe('sg');
    expect(conv2dVariant(plainCpu)).toBe('plain');
    expect(conv2dVariant(plainGpu)).toBe('plain');
    expect(plainGpu.profile.kind).toBe('gpu');
    // Inside 'sg', narrow destinations (<= 8 channels per group) take the plain kernel and wide
    // ones (> 32) rows_sg2; AWKWARD below has all three (e.g. 'Cout 37' forward: rows_sg2; its
    // input gradient, 9 channels: rows_sg; 'stem 7x7' input gradient, 3 channels: rows).
    expect(rowsPlan(sg, 37)).toEqual({ kernel: 'rows_sg2', shape: { WGC: 16, WGS: 8 } });
    expect(rowsPlan(sg, 33).kernel).toBe('rows_sg2');
    expect(rowsPlan(sg, 32).kernel).toBe('rows_sg');
    expect(rowsPlan(sg, 9).kernel).toBe('rows_sg');
    expect(rowsPlan(sg, 3)).toEqual({ kernel: 'rows', shape: { WGC: 1, WGS: 8 } });
    expect(rowsPlan(sg, 8)).toEqual({ kernel: 'rows', shape: { WGC: 2, WGS: 8 } });
    expect(rowsPlan(plainCpu, 37)).toEqual({ kernel: 'rows', shape: { WGC: 8, WGS: 8 } });
    expect(rowsPlan(plainCpu, 3)).toEqual({ kernel: 'rows', shape: { WGC: 1, WGS: 8 } });
    expect(rowsPlan(plainGpu, 37)).toEqual({ kernel: 'rows', shape: { WGC: 8, WGS: 64 } });
    expect(rowsPlan(plainGpu, 11)).toEqual({ kernel: 'rows', shape: { WGC: 4, WGS: 64 } });
  });
});

describe('conv2d forward and backward vs CPU reference', () => {
  const variants = [
    ['sg', () => sg],
    ['plain cpu', () => plainCpu],
    ['plain gpu', () => plainGpu],
  ] as const;
  const all = [...AWKWARD, ...PW_S2, ...PW_S2_NOT];
  for (const [vname, get] of variants) {
    test.each(all.map((c, i) => [c.name, c, i] as const))(`${vname}: %s`, async (_n, c, i) => {
      await checkCase(get(), c, 100 + i);
    });
  }
});

describe('strided 1x1 forward kernel (pw_s2_sg)', () => {
  const geom = (c: Case) => conv2dGeometry(c.x, c.w, null, c as Conv2dOptions);
  /** Names of the kernels one forward of `c` dispatches on `gpu` (weight packing first). */
  const forwardKernels = (gpu: Gpu, c: Case): string[] => {
    const spy = vi.spyOn(gpu, 'dispatch');
    try {
      tidy(() => {
        const x = Tensor.zeros(gpu, c.x);
        const w = Tensor.zeros(gpu, c.w);
        const b = c.bias ? Tensor.zeros(gpu, [c.w[0]]) : null;
        conv2d(x, w, b, c as Conv2dOptions);
      });
      return spy.mock.calls.map((a) => a[0].name);
    } finally {
      spy.mockRestore();
    }
  };
  test('the shape tables hit the paths they are meant to', () => {
    for (const c of PW_S2) {
      expect(pwS2Applies(sg, geom(c)), c.name).toBe(true);
      expect(pwS2Applies(tiny, geom(c)), c.name).toBe(true);
      expect(pwS2Applies(plainCpu, geom(c)), c.name).toBe(false);
      expect(pwS2Applies(plainGpu, geom(c)), c.name).toBe(false);
    }
    for (const c of PW_S2_NOT) expect(pwS2Applies(sg, geom(c)), c.name).toBe(false);
    // Quads that cross output rows are covered.
    expect(PW_S2.filter((c) => geom(c).Wo % 4 === 2).length).toBeGreaterThanOrEqual(2);
  });
  test('the sg variant dispatches pw_s2_sg for a qualifying shape, the row kernels otherwise', () => {
    const down: Case = { name: 'downsample', x: [2, 16, 16, 16], w: [32, 16, 1, 1], stride: 2 };
    const pw = ['conv2d_pw_sg.pack_pw', 'conv2d_pw_sg.pw_s2_sg'];
    const rowsSg = ['conv2d.pack_weight', 'conv2d_sg.rows_sg'];
    expect(forwardKernels(sg, down)).toEqual(pw);
    expect(forwardKernels(sg, { ...down, bias: true })).toEqual(pw);
    expect(forwardKernels(plainCpu, down)).toEqual(['conv2d.pack_weight', 'conv2d.rows']);
    for (const c of PW_S2_NOT) expect(forwardKernels(sg, c), c.name).toEqual(rowsSg);
    // W odd (AWKWARD '1x1 s2'), dilation 2 (irrelevant to a 1x1 kernel, but not on the fast path).
    expect(
      forwardKernels(
        sg,
        AWKWARD.find((c) => c.name === '1x1 s2')!,
      ),
    ).toEqual(rowsSg);
    expect(forwardKernels(sg, { ...down, dilation: 2 })).toEqual(rowsSg);
  });
  test('batch chunks under the 4 KiB binding limit: several pw_s2_sg dispatches, right answer', async () => {
    // x item 3*8*12 = 288 floats: 3 items per 4096-byte binding (minus 256 B of slack), so 5 items
    // run as 2 chunks; the second starts at element 864 of x (binding base 32) and 504 of y (56).
    const c: Case = { name: 'split pw s2 bias', x: [5, 3, 8, 12], w: [7, 3, 1, 1], stride: 2, bias: true };
    expect(forwardKernels(tiny, c)).toEqual([
      'conv2d_pw_sg.pack_pw',
      'conv2d_pw_sg.pw_s2_sg',
      'conv2d_pw_sg.pw_s2_sg',
    ]);
    await checkCase(tiny, c, 320);
    await checkCase(tiny, { ...c, name: 'split pw s2 Wo%4=2', x: [5, 2, 12, 12], w: [10, 2, 1, 1] }, 321);
  });
});

describe('weight-gradient kernel choice on the sg variant', () => {
  const dwKernels = (c: Case): string[] => {
    const g = conv2dGeometry(c.x, c.w, null, c as Conv2dOptions);
    const spy = vi.spyOn(sg, 'dispatch');
    try {
      tidy(() => {
        const x = Tensor.zeros(sg, c.x);
        const dy = Tensor.zeros(sg, [g.N, g.Cout, g.Ho, g.Wo]);
        const dw = Tensor.empty(sg, c.w);
        runConv2dWeightGrad(x, dy, dw, g);
      });
      return spy.mock.calls.map((a) => a[0].name).filter((n) => n.includes('dw'));
    } finally {
      spy.mockRestore();
    }
  };
  test('more than 8 column vec4s (taps x input channels / 4) take dw_cl2, fewer dw_cl', () => {
    // 3x3 over 9 channels: 9 taps x 3 vec4 = 27 columns; AWKWARD has several such cases.
    expect(dwKernels({ name: 'wide', x: [1, 9, 6, 5], w: [7, 9, 3, 3], padding: 1 })).toEqual([
      'conv2d_sg.dw_cl2',
    ]);
    // 1x2 over 3 channels: 2 columns.
    expect(dwKernels({ name: 'narrow', x: [1, 3, 6, 5], w: [4, 3, 1, 2] })).toEqual(['conv2d_sg.dw_cl']);
    // Both occur in the tables every variant is checked on.
    const cols = (c: Case) => (c.w[2] * c.w[3] * Math.ceil(c.w[1] / 4)) as number;
    expect(AWKWARD.some((c) => cols(c) > 8 && !(c.w[2] === 1 && c.w[3] === 1))).toBe(true);
    expect(AWKWARD.some((c) => cols(c) <= 8 && !(c.w[2] === 1 && c.w[3] === 1))).toBe(true);
  });
});

describe('batch splitting (maxStorageBindingBytes 4096)', () => {
  const cases: Case[] = [
    { name: 'split 3x3 p1 bias', x: [5, 3, 9, 8], w: [4, 3, 3, 3], padding: 1, bias: true },
    { name: 'split s2 groups 2', x: [4, 4, 9, 7], w: [6, 2, 3, 3], stride: 2, padding: 1, groups: 2 },
    { name: 'split 1x1 s2', x: [7, 5, 10, 6], w: [3, 5, 1, 1], stride: 2, bias: true },
  ];
  test.each(cases.map((c, i) => [c.name, c, i] as const))('sg: %s', async (_n, c, i) => {
    await checkCase(tiny, c, 300 + i);
  });
  test.each(cases.map((c, i) => [c.name, c, i] as const))('plain: %s', async (_n, c, i) => {
    await checkCase(tinyPlain, c, 400 + i);
  });
  test('the split path really splits: one item per chunk needs several dispatches', async () => {
    const c = cases[0]!;
    const before = tiny.stats().dispatches;
    await checkCase(tiny, c, 310);
    // 5 items: an output item is 4*9*8 floats (1152 B), so a 4096-byte binding (minus 256 B of
    // alignment slack) holds 3 and every pass runs 2 chunks: forward pack + 2 rows, input grad
    // pack + 2 rows, weight grad 2 x (2 to_cl + dw_cl) + sum, bias grad 2 partials + sum = 16
    // (one chunk would be 10).
    expect(tiny.stats().dispatches - before).toBe(16);
  });
});

describe('PyTorch fixtures', () => {
  const names = kernelCaseNames('conv2d');
  test('all nine conv2d cases are present', () => {
    expect(names.length).toBe(9);
  });
  test.each(names)('%s', async (name) => {
    const c = kernelCase(name);
    const p = c.params as {
      stride: number;
      padding: number;
      groups: number;
      dilation: number;
      bias: boolean;
    };
    const out = tidy(() => {
      const x = param(upload(sg, c.get('x')));
      const w = param(upload(sg, c.get('w')));
      const b = p.bias ? param(upload(sg, c.get('b'))) : null;
      const y = conv2d(x, w, b, {
        stride: p.stride,
        padding: p.padding,
        groups: p.groups,
        dilation: p.dilation,
      });
      backward(y, { grad: upload(sg, c.get('dy')) });
      return { y, dx: x.grad!, dw: w.grad!, db: b?.grad ?? null };
    });
    assertClose(await out.y.read(), c.f32('y'), { ...c.tol('y'), name: `${name} y` });
    assertClose(await out.dx.read(), c.f32('dx'), { ...c.tol('dx'), name: `${name} dx` });
    assertClose(await out.dw.read(), c.f32('dw'), { ...c.tol('dw'), name: `${name} dw` });
    if (out.db) assertClose(await out.db.read(), c.f32('db'), { ...c.tol('db'), name: `${name} db` });
    for (const t of Object.values(out)) t?.dispose();
  });
});

describe('reference gradients agree with finite differences', () => {
  test.each([
    [
      {
        name: 'fd s2 p1 dil',
        x: [1, 2, 6, 5],
        w: [3, 2, 3, 2],
        stride: 2,
        padding: 1,
        dilation: [1, 2],
      } as Case,
    ],
    [
      {
        name: 'fd groups 2 bias',
        x: [2, 4, 5, 5],
        w: [2, 2, 2, 3],
        padding: [0, 1],
        groups: 2,
        bias: true,
      } as Case,
    ],
  ])('%#', (c) => {
    const r = rng(7);
    const xd = Float64Array.from(randn(r, prod(c.x)));
    const wd = Float64Array.from(randn(r, prod(c.w)));
    const bd = Float64Array.from(randn(r, c.w[0]));
    const o = refOpts(c);
    const s = { x: c.x, w: c.w };
    const dyd = Float64Array.from(randn(r, prod(ref.outShape(s, o))));
    const loss = (xx: Float64Array, ww: Float64Array, bb: Float64Array) =>
      ref.conv2d(xx, ww, c.bias ? bb : null, s, o).reduce((a, v, i) => a + v * dyd[i]!, 0);
    const g = ref.conv2dBackward(xd, wd, dyd, s, o);
    const ix = [...xd.keys()];
    const iw = [...wd.keys()];
    assertClose(
      finiteDiff((v) => loss(v, wd, bd), xd, ix),
      g.dx,
      { atol: 1e-6, rtol: 1e-6, name: 'fd dx' },
    );
    assertClose(
      finiteDiff((v) => loss(xd, v, bd), wd, iw),
      g.dw,
      { atol: 1e-6, rtol: 1e-6, name: 'fd dw' },
    );
    if (c.bias)
      assertClose(
        finiteDiff((v) => loss(xd, wd, v), bd, [...bd.keys()]),
        g.db,
        { atol: 1e-6, rtol: 1e-6, name: 'fd db' },
      );
  });
});

describe('gradients only where needed', () => {
  test('an image input without requiresGrad gets no dx; weight and bias do', async () => {
    const r = rng(11);
    const xd = randn(r, 2 * 3 * 8 * 8);
    const w = param(upload(sg, { data: randn(r, 4 * 3 * 9), shape: [4, 3, 3, 3] }));
    const b = param(upload(sg, { data: randn(r, 4), shape: [4] }));
    const dyd = randn(r, 2 * 4 * 8 * 8);
    const run = (xNeedsGrad: boolean): { dispatches: number; x: Tensor } => {
      for (const p of [w, b]) {
        p.grad?.dispose();
        p.grad = null;
      }
      const x = upload(sg, { data: xd, shape: [2, 3, 8, 8] });
      if (xNeedsGrad) param(x);
      const y = conv2d(x, w, b, { padding: 1 });
      const before = sg.stats().dispatches;
      backward(y, { grad: upload(sg, { data: dyd, shape: y.shape }) });
      return { dispatches: sg.stats().dispatches - before, x };
    };
    const withDx = run(true);
    const noDx = run(false);
    await sg.sync();
    expect(noDx.x.grad).toBeNull();
    expect(withDx.x.grad).not.toBeNull();
    expect(w.grad).not.toBeNull();
    expect(b.grad).not.toBeNull();
    // The input gradient takes a weight repack and one rows dispatch (stride 1: one phase).
    expect(withDx.dispatches - noDx.dispatches).toBe(2);
  });

  test('backward works after the caller disposed the inputs (the tape keeps its own handles)', async () => {
    const c: Case = { name: 'dispose', x: [2, 5, 7, 6], w: [6, 5, 3, 3], stride: [1, 2], padding: 1 };
    const r = rng(13);
    const xd = randn(r, prod(c.x));
    const wd = randn(r, prod(c.w));
    const o = refOpts(c);
    const ys = ref.outShape({ x: c.x, w: c.w }, o);
    const dyd = randn(r, prod(ys));
    const want = ref.conv2dBackward(xd, wd, dyd, { x: c.x, w: c.w }, o);
    const x = param(upload(sg, { data: xd, shape: c.x }));
    const w = param(upload(sg, { data: wd, shape: c.w }));
    const y = conv2d(x, w, null, { stride: [1, 2], padding: 1 });
    x.dispose();
    w.dispose();
    backward(y, { grad: upload(sg, { data: dyd, shape: ys }) });
    assertClose(await x.grad!.read(), want.dx, { atol: 1e-4, rtol: 1e-4, name: 'dx' });
    assertClose(await w.grad!.read(), want.dw, { atol: 1e-4, rtol: 1e-4, name: 'dw' });
  });

  test('forward+backward steps keep pool bytes flat and create no pipelines', async () => {
    const r = rng(12);
    const x = param(upload(sg, { data: randn(r, 2 * 4 * 9 * 9), shape: [2, 4, 9, 9] }));
    const w = param(upload(sg, { data: randn(r, 6 * 4 * 9), shape: [6, 4, 3, 3] }));
    const b = param(upload(sg, { data: randn(r, 6), shape: [6] }));
    const step = () =>
      tidy(() => {
        const y = conv2d(x, w, b, { stride: 2, padding: 1 });
        backward(y, { grad: Tensor.zeros(sg, y.shape) });
      });
    step();
    step();
    await sg.sync();
    const before = sg.stats();
    for (let i = 0; i < 20; i++) step();
    await sg.sync();
    const after = sg.stats();
    expect(after.pool.liveBytes).toBe(before.pool.liveBytes);
    expect(after.pool.liveBuffers).toBe(before.pool.liveBuffers);
    expect(after.pipelinesCreated).toBe(before.pipelinesCreated);
  });
});

describe('bad input', () => {
  const t = (shape: number[]) => Tensor.zeros(sg, shape);
  test.each([
    [[2, 3, 8, 8], [4, 2, 3, 3], {}, /conv2d: input \[2, 3, 8, 8\] has 3 channels but weight \[4, 2, 3, 3\]/],
    [
      [2, 4, 8, 8],
      [6, 2, 3, 3],
      { groups: 3 },
      /conv2d: groups 3 must divide.*\[2, 4, 8, 8\].*\[6, 2, 3, 3\]/,
    ],
    [
      [2, 3, 4, 4],
      [4, 3, 7, 7],
      { padding: 1 },
      /conv2d: kernel 7x7.*larger than the padded input 6x6.*\[2, 3, 4, 4\].*\[4, 3, 7, 7\]/,
    ],
    [[3, 8, 8], [4, 3, 3, 3], {}, /conv2d: input must be NCHW \(rank 4\), got shape \[3, 8, 8\]/],
    [[2, 3, 8, 8], [4, 3, 3], {}, /conv2d: weight must be .* got shape \[4, 3, 3\]/],
    [[2, 3, 8, 8], [4, 3, 3, 3], { stride: 0 }, /conv2d: stride must be integers >= 1/],
    [[2, 3, 8, 8], [4, 3, 3, 3], { padding: [1, -1] }, /conv2d: padding must be integers >= 0/],
  ] as const)('x %j w %j %j', (xs, ws, o, re) => {
    expect(() => conv2d(t([...xs]), t([...ws]), null, o as Conv2dOptions)).toThrow(re);
  });
  test('bias of the wrong length names both shapes', () => {
    expect(() => conv2d(t([1, 3, 5, 5]), t([4, 3, 3, 3]), t([5]), {})).toThrow(
      /conv2d: bias has shape \[5\], expected \[4\] for weight \[4, 3, 3, 3\]/,
    );
  });
});
