import { afterAll, beforeAll, describe, expect, test, vi } from 'vitest';
import { backward, noGrad, param } from '../../src/autograd/tape.js';
import type { Gpu } from '../../src/gpu/device.js';
import {
  attentionVariant,
  relRowStride,
  runAttentionBackward,
  runAttentionForward,
  runRelposBackwardDq,
  runRelposBackwardTable,
  runRelposForward,
} from '../../src/kernels/attention.js';
import '../../src/ops/index.js';
import { attentionCore, decoderAttention, vitAttention } from '../../src/ops/attention.js';
import { Tensor } from '../../src/tensor/tensor.js';
import type { Rng } from '../../src/util/rng.js';
import { tidy } from '../../src/tensor/scope.js';
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

// Variants: the adapter default ('sg' on lavapipe), the plain kernels (no subgroups), the real-GPU
// kernels (tiled forward), and a tiny binding limit that forces the BH axis to be split.
// Which bindings can exceed maxStorageBufferBindingSize: every per-(batch*head) tensor (q, k, v,
// out, lse, the backward stats, the rel / drel bias rows and dq, dk, dv); the kernels split them
// along BH (batchChunks/bindSlice, element offsets as uniforms). In SAM-LST none comes near
// 128 MiB (decoder k/v at batch 24: 24*8*1024*16*4 = 12.6 MB; the encoder runs at batch 1:
// window q/k/v 5.4 MB, global 3 MB; an encoder batch of 24 would reach 130 MB per window operand,
// which the split covers), so the split is exercised here. The rel-pos tables (2n-1 rows) are
// always bound whole.
let gpus: Record<string, Gpu>;
beforeAll(async () => {
  gpus = {
    default: await testGpu(),
    plain: await testGpu({ profile: { subgroups: false } }),
    gpu: await testGpu({ profile: { kind: 'gpu' } }),
    split: await testGpu({ profile: { maxStorageBindingBytes: 4096 } }),
  };
});
afterAll(closeTestGpus);

interface CoreCase {
  BH: number;
  Lq: number;
  Lk: number;
  d: number;
  rel?: [number, number];
}

const f64 = (a: Float32Array) => Float64Array.from(a);

/** Runs attentionCore forward + backward on `g` and compares everything with the reference. */
async function checkCore(g: Gpu, c: CoreCase, seed: number): Promise<void> {
  const r = rng(seed);
  const { BH, Lq, Lk, d } = c;
  const scale = 1 / Math.sqrt(d);
  const qd = randn(r, BH * Lq * d);
  const kd = randn(r, BH * Lk * d);
  const vd = randn(r, BH * Lk * d);
  const dod = randn(r, BH * Lq * d);
  const rel = c.rel
    ? {
        gh: c.rel[0],
        gw: c.rel[1],
        rh: randn(r, (2 * c.rel[0] - 1) * d, 0.5),
        rw: randn(r, (2 * c.rel[1] - 1) * d, 0.5),
      }
    : undefined;
  const dims = { BH, Lq, Lk, d, scale };
  const want = ref.attention(qd, kd, vd, dims, rel);
  const wantG = ref.attentionBackward(qd, kd, vd, dod, dims, rel);
  const q = param(upload(g, { data: qd, shape: [BH, Lq, d] }));
  const k = param(upload(g, { data: kd, shape: [BH, Lk, d] }));
  const v = param(upload(g, { data: vd, shape: [BH, Lk, d] }));
  const rh = rel ? param(upload(g, { data: rel.rh, shape: [2 * rel.gh - 1, d] })) : null;
  const rw = rel ? param(upload(g, { data: rel.rw, shape: [2 * rel.gw - 1, d] })) : null;
  const y = attentionCore(q, k, v, {
    scale,
    relPos: rel ? { relH: rh!, relW: rw!, gridH: rel.gh, gridW: rel.gw } : undefined,
  });
  const dy = upload(g, { data: dod, shape: [BH, Lq, d] });
  backward(y, { grad: dy });
  const tag = JSON.stringify(c);
  assertClose(await y.read(), want.out, { atol: 2e-6, rtol: 2e-5, name: `${tag} out` });
  const gt = { atol: 2e-5, rtol: 2e-4 };
  assertClose(await q.grad!.read(), wantG.dq, { ...gt, name: `${tag} dq` });
  assertClose(await k.grad!.read(), wantG.dk, { ...gt, name: `${tag} dk` });
  assertClose(await v.grad!.read(), wantG.dv, { ...gt, name: `${tag} dv` });
  if (rel) {
    // Table gradients sum BH*L*max(gh, gw) terms: scale the tolerance with that count.
    const n = (BH * Lq * Math.max(rel.gh, rel.gw)) / 64;
    const tt = { atol: 2e-5 * Math.max(1, n), rtol: 2e-4 };
    assertClose(await rh!.grad!.read(), wantG.drh!, { ...tt, name: `${tag} drh` });
    assertClose(await rw!.grad!.read(), wantG.drw!, { ...tt, name: `${tag} drw` });
  }
  for (const t of [q, k, v, rh, rw, y, dy]) {
    t?.grad?.dispose();
    t?.dispose();
  }
}

const CORE_CASES: CoreCase[] = [
  { BH: 2, Lq: 13, Lk: 29, d: 16 },
  { BH: 3, Lq: 37, Lk: 9, d: 32 },
  { BH: 1, Lq: 70, Lk: 45, d: 64 },
  { BH: 2, Lq: 1, Lk: 1, d: 8 },
  { BH: 2, Lq: 11, Lk: 17, d: 4 },
  { BH: 2, Lq: 10, Lk: 19, d: 6 },
  { BH: 2, Lq: 30, Lk: 30, d: 16, rel: [5, 6] },
  { BH: 2, Lq: 42, Lk: 42, d: 32, rel: [3, 14] },
  { BH: 1, Lq: 49, Lk: 49, d: 64, rel: [7, 7] },
  { BH: 3, Lq: 10, Lk: 10, d: 12, rel: [2, 5] },
  { BH: 2, Lq: 6, Lk: 6, d: 6, rel: [2, 3] },
];

// With a 4096-byte binding limit these run in 2-4 BH chunks (rel-pos tables accumulated across them).
const SPLIT_CASES: CoreCase[] = [
  { BH: 7, Lq: 13, Lk: 21, d: 16 },
  { BH: 5, Lq: 30, Lk: 30, d: 8, rel: [5, 6] },
  { BH: 4, Lq: 12, Lk: 12, d: 12, rel: [4, 3] },
];

describe('attention core vs the float64 reference (forward and backward)', () => {
  test.each(SPLIT_CASES.map((c, i) => [JSON.stringify(c), c, i] as const))(
    'split over BH: %s',
    async (_name, c, i) => {
      await checkCore(gpus.split!, c, 200 + i);
    },
  );
  test('packed q/k/v in one buffer (element offsets), split over BH, with rel-pos', async () => {
    const g = gpus.split!;
    const r = rng(77);
    const [BH, gh, gw, d] = [6, 4, 5, 8];
    const L = gh * gw;
    const n = BH * L * d;
    const scale = 0.35;
    const qkv = randn(r, 3 * n);
    const rh = randn(r, (2 * gh - 1) * d, 0.5);
    const rw = randn(r, (2 * gw - 1) * d, 0.5);
    const dod = randn(r, n);
    const [qd, kd, vd] = [qkv.subarray(0, n), qkv.subarray(n, 2 * n), qkv.subarray(2 * n)];
    const dims = { BH, Lq: L, Lk: L, d, scale };
    const rel = { rh, rw, gh, gw };
    const want = ref.attention(qd, kd, vd, dims, rel);
    const wantG = ref.attentionBackward(qd, kd, vd, dod, dims, rel);
    const T = (a: Float32Array) => upload(g, { data: a, shape: [a.length] });
    const [packed, tabH, tabW, dout] = [T(qkv), T(rh), T(rw), T(dod)];
    const E = (m: number) => Tensor.empty(g, [m]);
    const rs = relRowStride(gh, gw);
    const [relT, out, lse, dq, dk, dv, drel, dH, dW] = [
      E(BH * L * rs),
      E(n),
      E(BH * L),
      E(n),
      E(n),
      E(n),
      E(BH * L * rs),
      E(rh.length),
      E(rw.length),
    ];
    const shape = { BH, Lq: L, Lk: L, d, scale, gh, gw };
    const geo = { BH, gh, gw, d };
    const ops = { q: { t: packed, offset: 0 }, k: { t: packed, offset: n }, v: { t: packed, offset: 2 * n } };
    runRelposForward(geo, ops.q, tabH, tabW, relT);
    runAttentionForward(shape, { ...ops, rel: relT, out, lse });
    runAttentionBackward(shape, { ...ops, rel: relT, out, lse, dout, dq, dk, dv, drel });
    runRelposBackwardDq(geo, drel, tabH, tabW, dq);
    runRelposBackwardTable(geo, drel, ops.q, dH, dW);
    assertClose(await out.read(), want.out, { atol: 2e-6, rtol: 2e-5, name: 'packed out' });
    assertClose(await lse.read(), want.lse, { atol: 2e-6, rtol: 2e-6, name: 'packed lse' });
    const gt = { atol: 2e-5, rtol: 2e-4 };
    assertClose(await dq.read(), wantG.dq, { ...gt, name: 'packed dq' });
    assertClose(await dk.read(), wantG.dk, { ...gt, name: 'packed dk' });
    assertClose(await dv.read(), wantG.dv, { ...gt, name: 'packed dv' });
    assertClose(await dH.read(), wantG.drh!, { ...gt, name: 'packed dRh' });
    assertClose(await dW.read(), wantG.drw!, { ...gt, name: 'packed dRw' });
    for (const t of [packed, tabH, tabW, dout, relT, out, lse, dq, dk, dv, drel, dH, dW]) t.dispose();
  });

  for (const variant of ['default', 'plain', 'gpu'] as const) {
    test.each(CORE_CASES.map((c, i) => [JSON.stringify(c), c, i] as const))(
      `${variant}: %s`,
      async (_name, c, i) => {
        await checkCore(gpus[variant]!, c, 100 + i);
      },
    );
  }

  test('the default variant on lavapipe is the subgroup one; overrides select the others', () => {
    expect(attentionVariant(gpus.plain!)).toBe('plain');
    expect(attentionVariant(gpus.gpu!)).toBe('tiled');
    if (gpus.default!.profile.kind === 'cpu' && gpus.default!.profile.subgroups)
      expect(attentionVariant(gpus.default!)).toBe('sg');
  });

  test('large logits stay finite (max subtraction) and a uniform row averages v', async () => {
    const g = gpus.default!;
    const BH = 1;
    const L = 20;
    const d = 8;
    const r = rng(9);
    const qd = Float32Array.from(randn(r, BH * L * d), (x) => x * 40);
    const kd = Float32Array.from(randn(r, BH * L * d), (x) => x * 40);
    const vd = randn(r, BH * L * d);
    const want = ref.attention(qd, kd, vd, { BH, Lq: L, Lk: L, d, scale: 1 });
    const y = noGrad(() =>
      attentionCore(
        upload(g, { data: qd, shape: [BH, L, d] }),
        upload(g, { data: kd, shape: [BH, L, d] }),
        upload(g, { data: vd, shape: [BH, L, d] }),
        { scale: 1 },
      ),
    );
    const got = await y.read();
    expect(got.every((x) => Number.isFinite(x))).toBe(true);
    assertClose(got, want.out, { atol: 1e-4, rtol: 1e-4, name: 'large logits' });
    // q = 0: every key has the same logit, the output is the mean of v.
    const z = noGrad(() =>
      attentionCore(
        Tensor.zeros(g, [BH, L, d]),
        upload(g, { data: kd, shape: [BH, L, d] }),
        upload(g, { data: vd, shape: [BH, L, d] }),
        { scale: 1 },
      ),
    );
    const mean = new Float64Array(d);
    for (let j = 0; j < L; j++) for (let c = 0; c < d; c++) mean[c]! += vd[j * d + c]! / L;
    const zz = await z.read();
    for (let i = 0; i < L; i++) assertClose(zz.slice(i * d, i * d + d), mean, { atol: 1e-6, name: 'mean' });
  });
});

describe('reference gradients agree with finite differences', () => {
  test('attention with rel-pos: dq, dk, dv, dRh, dRw', () => {
    const r = rng(3);
    const BH = 2;
    const gh = 2;
    const gw = 3;
    const L = gh * gw;
    const d = 3;
    const dims = { BH, Lq: L, Lk: L, d, scale: 0.7 };
    const q = f64(randn(r, BH * L * d));
    const k = f64(randn(r, BH * L * d));
    const v = f64(randn(r, BH * L * d));
    const rh = f64(randn(r, (2 * gh - 1) * d));
    const rw = f64(randn(r, (2 * gw - 1) * d));
    const dout = f64(randn(r, BH * L * d));
    const loss = (qq: Float64Array, kk: Float64Array, vv: Float64Array, hh: Float64Array, ww: Float64Array) =>
      ref
        .attention(qq, kk, vv, dims, { rh: hh, rw: ww, gh, gw })
        .out.reduce((s, x, i) => s + x * dout[i]!, 0);
    const g = ref.attentionBackward(q, k, v, dout, dims, { rh, rw, gh, gw });
    const idx = (n: number) => [...Array(n).keys()];
    const chk = (fd: number[], an: Float64Array, name: string) =>
      assertClose(fd, an, { atol: 1e-7, rtol: 1e-6, name });
    chk(
      finiteDiff((x) => loss(x, k, v, rh, rw), q, idx(q.length), 1e-5),
      g.dq,
      'dq',
    );
    chk(
      finiteDiff((x) => loss(q, x, v, rh, rw), k, idx(k.length), 1e-5),
      g.dk,
      'dk',
    );
    chk(
      finiteDiff((x) => loss(q, k, x, rh, rw), v, idx(v.length), 1e-5),
      g.dv,
      'dv',
    );
    chk(
      finiteDiff((x) => loss(q, k, v, x, rw), rh, idx(rh.length), 1e-5),
      g.drh!,
      'drh',
    );
    chk(
      finiteDiff((x) => loss(q, k, v, rh, x), rw, idx(rw.length), 1e-5),
      g.drw!,
      'drw',
    );
  });
});

// ------------------------------------------------------------------ compositions vs PyTorch fixtures

describe('vitAttention and decoderAttention match the PyTorch fixtures (y and every gradient)', () => {
  for (const variant of ['default', 'plain', 'gpu'] as const) {
    test.each(['vit_attn_window4_pad', 'vit_attn_global'])(`${variant}: %s`, async (name) => {
      const g = gpus[variant]!;
      const c = kernelCase(name);
      const P = (n: string) => param(upload(g, c.get(n)));
      const x = P('x');
      const p = {
        qkvWeight: P('qkv.weight'),
        qkvBias: P('qkv.bias'),
        projWeight: P('proj.weight'),
        projBias: P('proj.bias'),
        relPosH: P('rel_pos_h'),
        relPosW: P('rel_pos_w'),
      };
      const y = tidy(() => {
        const out = vitAttention(x, p, {
          heads: c.params.heads as number,
          window: c.params.window as number,
        });
        backward(out, { grad: upload(g, c.get('dy')) });
        return out;
      });
      assertClose(await y.read(), c.f32('y'), { ...c.tol('y'), name: `${name} y` });
      y.dispose();
      const grads: [string, Tensor][] = [
        ['dx', x],
        ['dqkv.weight', p.qkvWeight],
        ['dqkv.bias', p.qkvBias],
        ['dproj.weight', p.projWeight],
        ['dproj.bias', p.projBias],
        ['drel_pos_h', p.relPosH],
        ['drel_pos_w', p.relPosW],
      ];
      for (const [n, t] of grads)
        assertClose(await t.grad!.read(), c.f32(n), { ...c.tol(n), name: `${name} ${n}` });
      for (const [, t] of grads) {
        t.grad?.dispose();
        t.dispose();
      }
    });

    test(`${variant}: dec_attention_ds2`, async () => {
      const g = gpus[variant]!;
      const c = kernelCase('dec_attention_ds2');
      const P = (n: string) => param(upload(g, c.get(n)));
      const [q, k, v] = [P('q'), P('k'), P('v')];
      const p = {
        qProjWeight: P('q_proj.weight'),
        qProjBias: P('q_proj.bias'),
        kProjWeight: P('k_proj.weight'),
        kProjBias: P('k_proj.bias'),
        vProjWeight: P('v_proj.weight'),
        vProjBias: P('v_proj.bias'),
        outProjWeight: P('out_proj.weight'),
        outProjBias: P('out_proj.bias'),
      };
      const y = tidy(() => {
        const out = decoderAttention(q, k, v, p, { heads: c.params.heads as number });
        backward(out, { grad: upload(g, c.get('dy')) });
        return out;
      });
      assertClose(await y.read(), c.f32('y'), { ...c.tol('y'), name: 'dec y' });
      const grads: [string, Tensor][] = [
        ['dq', q],
        ['dk', k],
        ['dv', v],
        ['dq_proj.weight', p.qProjWeight],
        ['dq_proj.bias', p.qProjBias],
        ['dk_proj.weight', p.kProjWeight],
        ['dk_proj.bias', p.kProjBias],
        ['dv_proj.weight', p.vProjWeight],
        ['dv_proj.bias', p.vProjBias],
        ['dout_proj.weight', p.outProjWeight],
        ['dout_proj.bias', p.outProjBias],
      ];
      for (const [n, t] of grads)
        assertClose(await t.grad!.read(), c.f32(n), { ...c.tol(n), name: `dec ${n}` });
      for (const [, t] of [...grads, ['y', y] as [string, Tensor]]) {
        t.grad?.dispose();
        t.dispose();
      }
    });
  }
});

/**
 * A seeded ViT attention case: x and the block's parameters on the host (scale 0.3) and on `g`
 * (as params when `grad`), drawn from `r` in the order x, qkv.w, qkv.b, proj.w, proj.b, rel_pos_h,
 * rel_pos_w.
 */
function vitCase(
  g: Gpu,
  r: Rng,
  shape: [number, number, number, number],
  heads: number,
  window: number,
  grad: boolean,
) {
  const [B, H, W, C] = shape;
  const hd = C / heads;
  const gh = window || H;
  const gw = window || W;
  const xd = randn(r, B * H * W * C);
  const host = {
    qkvW: randn(r, 3 * C * C, 0.3),
    qkvB: randn(r, 3 * C, 0.3),
    projW: randn(r, C * C, 0.3),
    projB: randn(r, C, 0.3),
    rh: randn(r, (2 * gh - 1) * hd, 0.3),
    rw: randn(r, (2 * gw - 1) * hd, 0.3),
  };
  const t = (data: Float32Array, sh: number[]) => {
    const u = upload(g, { data, shape: sh });
    return grad ? param(u) : u;
  };
  const x = t(xd, shape);
  const p = {
    qkvWeight: t(host.qkvW, [3 * C, C]),
    qkvBias: t(host.qkvB, [3 * C]),
    projWeight: t(host.projW, [C, C]),
    projBias: t(host.projB, [C]),
    relPosH: t(host.rh, [2 * gh - 1, hd]),
    relPosW: t(host.rw, [2 * gw - 1, hd]),
  };
  return { xd, host, x, p };
}

describe('vitAttention vs the CPU reference on awkward shapes', () => {
  // Odd grids (padding on one or both sides), a head dim that is not a multiple of 4 (split q/k/v
  // path with zero-padded heads) and global attention. Gradients: finite differences of the
  // reference at a few entries of x, qkv.weight and the rel-pos tables.
  const cases: [string, [number, number, number, number], number, number][] = [
    ['window 3 on 5x7, hd 6', [1, 5, 7, 12], 2, 3],
    ['window 4 on 4x6, hd 8', [2, 4, 6, 16], 2, 4],
    ['global 3x4, hd 4', [2, 3, 4, 12], 3, 0],
  ];
  test.each(cases)('%s', async (_name, shape, heads, window) => {
    const g = gpus.default!;
    const [B, H, W, C] = shape;
    const r = rng(B * 100 + H * 10 + W);
    const { xd, host, x, p } = vitCase(g, r, shape, heads, window, true);
    const dyd = randn(r, B * H * W * C);
    const y = tidy(() => {
      const out = vitAttention(x, p, { heads, window });
      backward(out, { grad: upload(g, { data: dyd, shape }) });
      return out;
    });
    const want = ref.vitAttention(xd, shape, host, heads, window);
    assertClose(await y.read(), want, { atol: 2e-5, rtol: 1e-4, name: 'vit y' });
    const loss = (xx: Float64Array, hp: typeof host) =>
      ref.vitAttention(xx, shape, hp, heads, window).reduce((s, v, i) => s + v * dyd[i]!, 0);
    const pick = (n: number) => [0, 1, Math.floor(n / 3), Math.floor(n / 2), n - 2, n - 1];
    const x64 = f64(xd);
    const checks: [string, Tensor, number[]][] = [
      ['dx', x, finiteDiff((v) => loss(v, host), x64, pick(x64.length), 1e-4)],
    ];
    for (const [key, t] of [
      ['qkvW', p.qkvWeight],
      ['rh', p.relPosH],
      ['rw', p.relPosW],
    ] as const) {
      const base = f64(host[key]);
      const fd = finiteDiff((v) => loss(x64, { ...host, [key]: v }), base, pick(base.length), 1e-4);
      checks.push([`d${key}`, t, fd]);
    }
    for (const [name, t, fd] of checks) {
      const got = await t.grad!.read();
      const idx = pick(got.length);
      assertClose(
        idx.map((i) => got[i]!),
        fd,
        { atol: 2e-4, rtol: 2e-3, name: `vit ${name}` },
      );
    }
    for (const t of [x, ...Object.values(p), y]) {
      t.grad?.dispose();
      t.dispose();
    }
  });
});

describe('vitAttention on a padded window grid', () => {
  test('qkv and proj run on the real tokens only; the padded tokens still attend with bias q/k/v', async () => {
    const g = gpus.default!;
    // 5x7 tokens, window 4: the padded grid is 8x8 (64 tokens per image, 35 real).
    const [B, H, W, C, heads, window] = [2, 5, 7, 16, 2, 4];
    const { xd, host, x, p } = vitCase(g, rng(4711), [B, H, W, C], heads, window, false);
    const spy = vi.spyOn(g, 'dispatch');
    let gemmRows: number[];
    let y: Tensor;
    try {
      y = noGrad(() => vitAttention(x, p, { heads, window }));
      gemmRows = spy.mock.calls
        .filter((c) => c[0].name.startsWith('gemm'))
        .filter((c) => c[2].K === C) // the two linears (the rel-pos GEMMs reduce over hd)
        .map((c) => c[2].M!);
    } finally {
      spy.mockRestore();
    }
    // Rows over all dispatches of each linear: B*H*W = 70, not B*8*8 = 128.
    expect(gemmRows.reduce((a, b) => a + b, 0)).toBe(2 * B * H * W);
    assertClose(await y.read(), ref.vitAttention(xd, [B, H, W, C], host, heads, window), {
      atol: 2e-5,
      rtol: 1e-4,
      name: 'padded-grid vit y',
    });
    for (const t of [x, ...Object.values(p), y]) t.dispose();
  });
});

describe('bad input and memory', () => {
  test('shape errors name the op and the shapes', () => {
    const g = gpus.default!;
    const z = (...s: number[]) => Tensor.zeros(g, s);
    const opts = { scale: 1 };
    expect(() => attentionCore(z(2, 3), z(2, 3, 4), z(2, 3, 4), opts)).toThrow(
      /attentionCore: q must be \(BH, L, d\), got shape \[2, 3\]/,
    );
    expect(() => attentionCore(z(2, 5, 8), z(3, 5, 8), z(3, 5, 8), opts)).toThrow(
      /attentionCore: q \[2, 5, 8\] and k \[3, 5, 8\] differ/,
    );
    expect(() => attentionCore(z(2, 5, 8), z(2, 6, 8), z(2, 5, 8), opts)).toThrow(
      /attentionCore: v \[2, 5, 8\] does not match k \[2, 6, 8\]/,
    );
    expect(() => attentionCore(z(1, 5, 80), z(1, 5, 80), z(1, 5, 80), opts)).toThrow(
      /attentionCore: head dim 80 of q \[1, 5, 80\] exceeds 64/,
    );
    const relPos = { relH: z(3, 8), relW: z(5, 8), gridH: 2, gridW: 3 };
    expect(() => attentionCore(z(1, 6, 8), z(1, 7, 8), z(1, 7, 8), { scale: 1, relPos })).toThrow(
      /attentionCore: rel-pos grid 2x3 needs q \[1, 6, 8\] and k \[1, 7, 8\] with 6 tokens each/,
    );
    expect(() =>
      attentionCore(z(1, 6, 8), z(1, 6, 8), z(1, 6, 8), { scale: 1, relPos: { ...relPos, relW: z(4, 8) } }),
    ).toThrow(/attentionCore: relW has shape \[4, 8\], expected \[5, 8\]/);
    const p = {
      qkvWeight: z(48, 16),
      qkvBias: z(48),
      projWeight: z(16, 16),
      projBias: z(16),
      relPosH: z(7, 8),
      relPosW: z(7, 8),
    };
    expect(() => vitAttention(z(2, 6, 16), p, { heads: 2, window: 4 })).toThrow(
      /vitAttention: x must be \(B, H, W, C\), got shape \[2, 6, 16\]/,
    );
    expect(() => vitAttention(z(1, 6, 6, 16), p, { heads: 3, window: 4 })).toThrow(
      /vitAttention: 3 heads do not divide C = 16 of x \[1, 6, 6, 16\]/,
    );
    expect(() => vitAttention(z(1, 6, 6, 16), { ...p, relPosH: z(5, 8) }, { heads: 2, window: 4 })).toThrow(
      /vitAttention: relPosH has shape \[5, 8\], expected \[7, 8\] for x \[1, 6, 6, 16\]/,
    );
    expect(() => vitAttention(z(1, 6, 6, 16), p, { heads: 2, window: 0 })).toThrow(
      /vitAttention: relPosH has shape \[7, 8\], expected \[11, 8\]/,
    );
    const dp = {
      qProjWeight: z(8, 16),
      qProjBias: z(8),
      kProjWeight: z(8, 16),
      kProjBias: z(8),
      vProjWeight: z(8, 16),
      vProjBias: z(8),
      outProjWeight: z(16, 8),
      outProjBias: z(16),
    };
    expect(() => decoderAttention(z(2, 10, 16), z(2, 36, 12), z(2, 36, 16), dp, { heads: 2 })).toThrow(
      /decoderAttention: q \[2, 10, 16\], k \[2, 36, 12\] and v \[2, 36, 16\] must share/,
    );
    expect(() => decoderAttention(z(2, 10, 16), z(2, 36, 16), z(2, 36, 16), dp, { heads: 3 })).toThrow(
      /decoderAttention: 3 heads do not divide the internal dim 8/,
    );
    expect(() =>
      decoderAttention(
        z(2, 10, 16),
        z(2, 36, 16),
        z(2, 36, 16),
        { ...dp, outProjWeight: z(8, 16) },
        { heads: 2 },
      ),
    ).toThrow(/decoderAttention: outProjWeight has shape \[8, 16\], expected \[16, 8\]/);
  });

  test('training steps keep the pool flat and create no pipelines; noGrad frees intermediates', async () => {
    const g = gpus.default!;
    const c = kernelCase('dec_attention_ds2');
    const P = (n: string) => param(upload(g, c.get(n)));
    const [q, k, v] = [P('q'), P('k'), P('v')];
    const p = {
      qProjWeight: P('q_proj.weight'),
      qProjBias: P('q_proj.bias'),
      kProjWeight: P('k_proj.weight'),
      kProjBias: P('k_proj.bias'),
      vProjWeight: P('v_proj.weight'),
      vProjBias: P('v_proj.bias'),
      outProjWeight: P('out_proj.weight'),
      outProjBias: P('out_proj.bias'),
    };
    const dy = upload(g, c.get('dy'));
    const step = () =>
      tidy(() => {
        backward(decoderAttention(q, k, v, p, { heads: 2 }), { grad: dy });
      });
    step();
    step();
    await g.sync();
    const before = g.stats();
    for (let i = 0; i < 20; i++) step();
    await g.sync();
    const after = g.stats();
    expect(after.pool.liveBytes).toBe(before.pool.liveBytes);
    expect(after.pipelinesCreated).toBe(before.pipelinesCreated);
    expect(after.pool.created).toBe(before.pool.created);

    // Frozen ViT attention under noGrad: only the output stays alive.
    const vc = kernelCase('vit_attn_window4_pad');
    const x = upload(g, vc.get('x'));
    const vp = {
      qkvWeight: upload(g, vc.get('qkv.weight')),
      qkvBias: upload(g, vc.get('qkv.bias')),
      projWeight: upload(g, vc.get('proj.weight')),
      projBias: upload(g, vc.get('proj.bias')),
      relPosH: upload(g, vc.get('rel_pos_h')),
      relPosW: upload(g, vc.get('rel_pos_w')),
    };
    const base = g.stats().pool.liveBytes;
    const y = noGrad(() => vitAttention(x, vp, { heads: 2, window: 4 }));
    expect(g.stats().pool.liveBytes - base).toBeLessThanOrEqual(Math.max(256, y.bytes * 2));
    assertClose(await y.read(), vc.f32('y'), { ...vc.tol('y'), name: 'noGrad y' });
    y.dispose();
    expect(g.stats().pool.liveBytes).toBe(base);
  });
});
