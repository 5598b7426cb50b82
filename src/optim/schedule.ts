/**
 * SAM-LST learning-rate schedule (spec §11), as the SAMed/SAM-LST trainer applies it: the lr is
 * rewritten AFTER each optimizer step from iter_num (the number of steps done before it), and the
 * first step uses the initial lr (base/warmup with warm-up, base without).
 *
 * With warm-up (`--warmup`, the README command), reproducing `lr_for_step` in
 * test/oracle/sam_lst_ref.py exactly:
 *   step 0:             base / warmupPeriod
 *   n = step - 1 < W:   base * (n + 1) / W
 *   otherwise:          base * (1 - (n - W) / maxIterations) ** power
 * Without warm-up the trainer's else-branch uses shift_iter = iter_num:
 *   step 0: base;  step >= 1: base * (1 - (step - 1) / maxIterations) ** power.
 */
export interface LrSchedule {
  baseLr: number;
  /** Warm-up length in iterations (SAM-LST: 250). */
  warmupPeriod: number;
  /** Total iterations: epochs * iterations per epoch (SAM-LST: 200 * 93 = 18600). */
  maxIterations: number;
  /** Linear warm-up then poly decay (true for SAM-LST); false: poly decay from the start. */
  warmup: boolean;
  /** Poly exponent; 0.9 in the trainer. */
  power?: number;
}

/** The SAM-LST configuration of spec §11. */
export const SAM_LST_SCHEDULE: Required<LrSchedule> = {
  baseLr: 1e-3,
  warmupPeriod: 250,
  maxIterations: 200 * 93,
  warmup: true,
  power: 0.9,
};

/** Learning rate used by optimizer step `step` (0-based). */
export function lrForStep(step: number, s: LrSchedule): number {
  if (!Number.isInteger(step) || step < 0)
    throw new RangeError(`lrForStep: step ${step} must be an integer >= 0`);
  if (!(s.maxIterations > 0)) throw new RangeError(`lrForStep: maxIterations ${s.maxIterations} must be > 0`);
  const power = s.power ?? 0.9;
  const base = s.baseLr;
  if (s.warmup) {
    const w = s.warmupPeriod;
    if (!(Number.isInteger(w) && w > 0))
      throw new RangeError(`lrForStep: warmupPeriod ${w} must be an integer > 0`);
    if (step === 0) return base / w;
    const n = step - 1;
    if (n < w) return (base * (n + 1)) / w;
    return poly(base, n - w, s.maxIterations, power, step);
  }
  if (step === 0) return base;
  return poly(base, step - 1, s.maxIterations, power, step);
}

function poly(base: number, shift: number, maxIterations: number, power: number, step: number): number {
  const f = 1 - shift / maxIterations;
  // The Python trainer would produce a complex number here; never reached within maxIterations.
  if (f < 0)
    throw new RangeError(
      `lrForStep: step ${step} is past the end of the schedule (maxIterations ${maxIterations})`,
    );
  return base * f ** power;
}
