import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { Gpu } from '../../src/gpu/device.js';
import { AdamW, SAM_LST_ADAMW, type NamedParam } from '../../src/optim/adamw.js';
import { lrForStep, SAM_LST_SCHEDULE } from '../../src/optim/schedule.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { adamwRefStep, type AdamWRefState } from '../reference/adamw.js';
import { assertClose, closeTestGpus, randn, rng, testGpu, upload } from '../helpers.js';

let gpu: Gpu;
beforeAll(async () => {
  gpu = await testGpu();
});
afterAll(closeTestGpus);

const H = { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.1 };

interface Case {
  name: string;
  shape: number[];
  /** Steps (0-based) at which this parameter has a gradient. */
  gradAt: (step: number) => boolean;
}

/**
 * Runs `steps` optimizer steps on the GPU and the float64 reference with the same f32 gradients
 * and the SAM-LST lr schedule at large lr, then compares p, m, v and the step counts.
 */
async function runAndCompare(g: Gpu, cases: Case[], steps: number, seed: number) {
  const r = rng(seed);
  const params: NamedParam[] = [];
  const refs: AdamWRefState[] = [];
  for (const c of cases) {
    const n = c.shape.reduce((a, b) => a * b, 1);
    const p0 = randn(r, n);
    params.push({ name: c.name, tensor: upload(g, { data: p0, shape: c.shape }) });
    refs.push({ p: Float64Array.from(p0), m: new Float64Array(n), v: new Float64Array(n), t: 0 });
  }
  const opt = new AdamW(params, SAM_LST_ADAMW);
  // A compressed schedule so that warm-up, peak and decay all happen within a few steps.
  const sched = { baseLr: 0.05, warmupPeriod: 2, maxIterations: 10, warmup: true };
  for (let s = 0; s < steps; s++) {
    const lr = lrForStep(s, sched);
    cases.forEach((c, k) => {
      const p = params[k]!.tensor;
      p.grad?.dispose();
      p.grad = null;
      if (!c.gradAt(s)) return;
      // Mixed scales, exact zeros and tiny values (denominator dominated by eps).
      const gd = randn(r, p.size, s % 2 ? 1e-3 : 1);
      for (let i = 0; i < gd.length; i += 5) gd[i] = 0;
      for (let i = 3; i < gd.length; i += 11) gd[i] = 1e-9;
      p.grad = upload(g, { data: gd, shape: p.shape });
      adamwRefStep(refs[k]!, gd, { ...H, lr });
    });
    opt.step(lr);
  }
  const st = opt.stateTensors();
  for (let k = 0; k < cases.length; k++) {
    const c = cases[k]!;
    const ref = refs[k]!;
    expect(opt.stepCount(c.name), `${c.name} steps`).toBe(ref.t);
    const got = await params[k]!.tensor.readFloat();
    assertClose(got, ref.p, { atol: 2e-6, rtol: 1e-6, name: `${c.name} p` });
    if (ref.t === 0) {
      expect(st.params[c.name]).toBeUndefined();
      continue;
    }
    const { m, v } = st.params[c.name]!;
    // m and v are running sums whose terms cancel (gradients alternate in sign and scale), so the
    // f32 error is relative to the largest terms (|(1-b1) g| <= ~0.5, |(1-b2) g^2| <= ~0.03) over
    // six steps, not to the result: atol = 6 steps * 2 ulp(0.5) ~ 4e-7 for m, 2e-9 for v.
    assertClose(await m.readFloat(), ref.m, { atol: 4e-7, rtol: 1e-5, name: `${c.name} m` });
    assertClose(await v.readFloat(), ref.v, { atol: 2e-9, rtol: 1e-5, name: `${c.name} v` });
  }
  return { opt, params };
}

describe('AdamW vs the float64 reference', () => {
  test('awkward sizes (1, 7, 1000003), weight decay, bias correction, several steps', async () => {
    await runAndCompare(
      gpu,
      [
        { name: 'alpha', shape: [1], gradAt: () => true },
        { name: 'bias7', shape: [7], gradAt: () => true },
        { name: 'big', shape: [1000003], gradAt: () => true },
        { name: 'conv', shape: [8, 3, 7, 7], gradAt: () => true },
      ],
      6,
      1,
    );
  });

  test('params without grad are untouched; late gradients start their own step count', async () => {
    const { params } = await runAndCompare(
      gpu,
      [
        { name: 'never', shape: [37], gradAt: () => false },
        { name: 'late', shape: [5, 3], gradAt: (s) => s >= 3 },
        { name: 'gappy', shape: [11], gradAt: (s) => s % 2 === 0 },
      ],
      6,
      2,
    );
    // `never` was created from the same seeded stream: compare with its initial values exactly.
    const r2 = rng(2);
    const p0 = randn(r2, 37);
    expect(Array.from(await params[0]!.tensor.readFloat())).toEqual(Array.from(p0));
  });

  test('split into chunks when a parameter exceeds the binding limit', async () => {
    const small = await testGpu({ profile: { maxStorageBindingBytes: 4096 } });
    await runAndCompare(
      small,
      [
        { name: 'w', shape: [10007], gradAt: () => true },
        { name: 'b', shape: [3], gradAt: () => true },
      ],
      3,
      3,
    );
  });
});

describe('AdamW state, batching and errors', () => {
  test('step() records dispatches without submitting; no new pipelines after the first', async () => {
    const ps = [7, 300, 4099].map((n, i) => ({ name: `p${i}`, tensor: Tensor.zeros(gpu, [n]) }));
    for (const p of ps) p.tensor.grad = Tensor.zeros(gpu, p.tensor.shape);
    const opt = new AdamW(ps, SAM_LST_ADAMW);
    opt.step();
    await gpu.sync();
    const before = gpu.stats();
    opt.step(lrForStep(5, SAM_LST_SCHEDULE));
    const mid = gpu.stats();
    expect(mid.submits).toBe(before.submits);
    expect(mid.dispatches).toBe(before.dispatches + 3);
    await gpu.sync();
    expect(gpu.stats().pipelinesCreated).toBe(before.pipelinesCreated);
    // The per-step scalars live in reused uniform buffers (as many as one submit holds): once
    // warm, a new lr every step creates none.
    const steps = async (from: number) => {
      for (let s = from; s < from + 24; s++) {
        opt.step(lrForStep(s, SAM_LST_SCHEDULE));
        if (s % 3 === 0) await gpu.sync();
      }
      await gpu.sync();
    };
    await steps(6);
    const u0 = gpu.stats().uniformBuffers;
    await steps(30);
    expect(gpu.stats().uniformBuffers).toBe(u0);
    opt.dispose();
  });

  test('several steps recorded in one batch each see their own lr', async () => {
    // No submit between the steps: each dispatch must keep its own uniform values.
    const mk = () => {
      const t = Tensor.fromData(gpu, new Float32Array([1, -2, 3]), [3]);
      t.grad = Tensor.fromData(gpu, new Float32Array([0.5, 0.25, -1]), [3]);
      return t;
    };
    const a = mk();
    const b = mk();
    const optA = new AdamW([{ name: 'w', tensor: a }], SAM_LST_ADAMW);
    const optB = new AdamW([{ name: 'w', tensor: b }], SAM_LST_ADAMW);
    const lrs = [1e-3, 5e-2, 2e-4, 3e-2];
    for (const lr of lrs) optA.step(lr);
    for (const lr of lrs) {
      optB.step(lr);
      await gpu.sync();
    }
    expect(Array.from(await a.readFloat())).toEqual(Array.from(await b.readFloat()));
    const ref: AdamWRefState = {
      p: Float64Array.from([1, -2, 3]),
      m: new Float64Array(3),
      v: new Float64Array(3),
      t: 0,
    };
    const [beta1, beta2] = SAM_LST_ADAMW.betas;
    const h = { eps: SAM_LST_ADAMW.eps, weightDecay: SAM_LST_ADAMW.weightDecay, beta1, beta2 };
    for (const lr of lrs) adamwRefStep(ref, [0.5, 0.25, -1], { ...h, lr });
    assertClose(await a.readFloat(), ref.p, { atol: 1e-6, rtol: 1e-5, name: 'batched steps vs reference' });
    optA.dispose();
    optB.dispose();
  });

  test('export, import into a fresh optimizer, continue: identical to an uninterrupted run', async () => {
    const r = rng(7);
    const shapes = [[13], [4, 9]];
    const init = shapes.map((s) =>
      randn(
        r,
        s.reduce((a, b) => a * b, 1),
      ),
    );
    const grads = [0, 1, 2, 3].map(() => init.map((p) => randn(r, p.length)));
    const make = () =>
      init.map((d, i) => ({ name: `w${i}`, tensor: upload(gpu, { data: d, shape: shapes[i]! }) }));
    const setGrads = (ps: NamedParam[], s: number) =>
      ps.forEach((p, i) => {
        p.tensor.grad?.dispose();
        p.tensor.grad = upload(gpu, { data: grads[s]![i]!, shape: shapes[i]! });
      });
    // Uninterrupted: 4 steps.
    const a = make();
    const optA = new AdamW(a, SAM_LST_ADAMW);
    for (let s = 0; s < 4; s++) {
      setGrads(a, s);
      optA.step();
    }
    // Interrupted after 2 steps: export host state and parameter values, rebuild, import.
    const b = make();
    const optB = new AdamW(b, SAM_LST_ADAMW);
    for (let s = 0; s < 2; s++) {
      setGrads(b, s);
      optB.step();
    }
    const saved = await optB.exportState();
    expect(saved.params.w0!.step).toBe(2);
    expect(saved.params.w1!.m.shape).toEqual([4, 9]);
    const pv = await Promise.all(b.map((p) => p.tensor.readFloat()));
    const c = pv.map((d, i) => ({ name: `w${i}`, tensor: upload(gpu, { data: d, shape: shapes[i]! }) }));
    const optC = new AdamW(c, SAM_LST_ADAMW);
    optC.importState(saved);
    // Also exercise importing from GPU tensors (copied, so disposing the source is safe).
    const optD = new AdamW(
      pv.map((d, i) => ({ name: `w${i}`, tensor: upload(gpu, { data: d, shape: shapes[i]! }) })),
      SAM_LST_ADAMW,
    );
    optD.importState(optB.stateTensors());
    optB.dispose();
    for (let s = 2; s < 4; s++) {
      setGrads(c, s);
      optC.step();
    }
    for (let i = 0; i < 2; i++)
      expect(Array.from(await c[i]!.tensor.readFloat())).toEqual(Array.from(await a[i]!.tensor.readFloat()));
    expect(optC.stepCount('w1')).toBe(4);
    // Re-importing an optimizer's own live state is a no-op.
    const before = await optC.exportState();
    optC.importState(optC.stateTensors());
    const after = await optC.exportState();
    expect(Array.from(after.params.w0!.m.data)).toEqual(Array.from(before.params.w0!.m.data));
    expect(after.params.w0!.step).toBe(4);
    const dState = await optD.exportState();
    expect(Array.from(dState.params.w1!.v.data)).toEqual(Array.from(saved.params.w1!.v.data));
  });

  test('zeroGrad drops gradients (default) or zeroes them in place', async () => {
    const p = { name: 'p', tensor: Tensor.zeros(gpu, [5]) };
    p.tensor.grad = upload(gpu, { data: Float32Array.of(1, 2, 3, 4, 5), shape: [5] });
    const opt = new AdamW([p]);
    opt.zeroGrad({ setToNone: false });
    expect(Array.from(await p.tensor.grad.readFloat())).toEqual([0, 0, 0, 0, 0]);
    opt.zeroGrad();
    expect(p.tensor.grad).toBeNull();
  });

  test('bad input is rejected with clear messages', () => {
    const t = Tensor.zeros(gpu, [4]);
    expect(
      () =>
        new AdamW([
          { name: 'a', tensor: t },
          { name: 'a', tensor: t },
        ]),
    ).toThrow(/duplicate parameter name 'a'/);
    expect(() => new AdamW([{ name: 'a', tensor: t }], { betas: [1, 0.999] })).toThrow(
      /beta1 = 1 is outside/,
    );
    const opt = new AdamW([{ name: 'a', tensor: t }]);
    t.grad = Tensor.zeros(gpu, [5]);
    expect(() => opt.step()).toThrow(/grad #\d+\[5\] does not match parameter 'a' #\d+\[4\]/);
    expect(() => opt.step(-1)).toThrow(/lr = -1/);
    const h = { shape: [4], dtype: 'f32' as const, data: new Float32Array(4) };
    expect(() => opt.importState({ params: { b: { step: 1, m: h, v: h } } })).toThrow(
      /unknown parameter 'b'/,
    );
    const h3 = { shape: [3], dtype: 'f32' as const, data: new Float32Array(3) };
    expect(() => opt.importState({ params: { a: { step: 1, m: h3, v: h } } })).toThrow(
      /'a'\.m is f32\[3\], parameter is #\d+\[4\]/,
    );
    expect(() => opt.importState({ params: { a: { step: 0, m: h, v: h } } })).toThrow(/step 0/);
    expect(() => opt.stepCount('zzz')).toThrow(/unknown parameter 'zzz'/);
  });
});
