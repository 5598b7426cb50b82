/**
 * lrForStep against values of the oracle's `lr_for_step` (test/oracle/sam_lst_ref.py), hard-coded
 * so the test needs no Python. Generated with /usr/bin/python3 from a verbatim copy of the
 * function body:
 *   if step == 0: return base_lr / warmup
 *   n = step - 1
 *   if n < warmup: return base_lr * (n + 1) / warmup
 *   return base_lr * (1.0 - (n - warmup) / max_iterations) ** power
 * printing repr(lr_for_step(s)) for the defaults (1e-3, 250, 200*93, 0.9) and for
 * (base_lr=5e-3, warmup=10, max_iterations=100).
 */
import { describe, expect, test } from 'vitest';
import { lrForStep, SAM_LST_SCHEDULE } from '../../src/optim/schedule.js';

const SAM_LST: [number, number][] = [
  [0, 4e-6],
  [1, 4e-6],
  [2, 8e-6],
  [100, 0.0004],
  [249, 0.000996],
  [250, 0.001],
  [251, 0.001],
  [252, 0.0009999516127731506],
  [1000, 0.0009636839927256667],
  [9300, 0.000548886198481733],
  [18599, 2.0830458863674405e-5],
];
const SMALL: [number, number][] = [
  [0, 0.0005],
  [1, 0.0005],
  [5, 0.0025],
  [10, 0.005],
  [11, 0.005],
  [12, 0.004954977417064171],
  [50, 0.003204548551230261],
  [109, 0.0001478757636628315],
];

/** Python and V8 pow may differ in the last bit; everything else is the same double arithmetic. */
function expectLr(got: number, want: number): void {
  expect(Math.abs(got - want)).toBeLessThanOrEqual(4 * Number.EPSILON * want);
}

describe('lrForStep reproduces the oracle lr_for_step', () => {
  test.each(SAM_LST)('SAM-LST schedule, step %i', (step, want) => {
    expectLr(lrForStep(step, SAM_LST_SCHEDULE), want);
  });
  test.each(SMALL)('base 5e-3, warm-up 10, 100 iterations, step %i', (step, want) => {
    expectLr(lrForStep(step, { baseLr: 5e-3, warmupPeriod: 10, maxIterations: 100, warmup: true }), want);
  });

  test('warm-up is exact and the lr rises monotonically to base, then decays', () => {
    const s = SAM_LST_SCHEDULE;
    for (let k = 1; k <= 250; k++) expect(lrForStep(k, s)).toBe((1e-3 * k) / 250);
    for (let k = 252; k < 18600; k += 97) expect(lrForStep(k, s)).toBeLessThan(lrForStep(k - 1, s));
    expect(lrForStep(18599, s)).toBeGreaterThan(0);
  });

  test('without warm-up: base at steps 0 and 1, then poly decay from iter_num = step - 1', () => {
    const s = { baseLr: 1e-2, warmupPeriod: 250, maxIterations: 1000, warmup: false };
    expect(lrForStep(0, s)).toBe(1e-2);
    expect(lrForStep(1, s)).toBe(1e-2);
    expectLr(lrForStep(501, s), 1e-2 * 0.5 ** 0.9);
  });

  test('bad steps are rejected', () => {
    expect(() => lrForStep(-1, SAM_LST_SCHEDULE)).toThrow(RangeError);
    expect(() => lrForStep(1.5, SAM_LST_SCHEDULE)).toThrow(/integer/);
    expect(() => lrForStep(40000, SAM_LST_SCHEDULE)).toThrow(/past the end of the schedule/);
  });
});
