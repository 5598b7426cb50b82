/**
 * AdamW with torch.optim.AdamW semantics (single param group, amsgrad off): decoupled weight decay
 * p *= 1 - lr*wd, first/second moments, per-parameter step counts for the bias corrections, and
 * parameters whose `.grad` is null are skipped entirely (no decay, no state, no step), as PyTorch
 * skips parameters whose grad is None. One in-place kernel per parameter (kernels/adamw.wgsl);
 * `step()` only records dispatches, so a whole update goes out in one batch with the rest of the
 * training step.
 *
 * Defaults are PyTorch's (lr 1e-3, betas (0.9, 0.999), eps 1e-8, weight_decay 1e-2); SAM-LST uses
 * `SAM_LST_ADAMW` (weight_decay 0.1, spec §11).
 */
import { runAdamW } from '../kernels/adamw.js';
import type { HostTensor } from '../tensor/host.js';
import { Tensor } from '../tensor/tensor.js';

export interface NamedParam {
  name: string;
  tensor: Tensor;
}

export interface AdamWOptions {
  lr?: number;
  betas?: readonly [number, number];
  eps?: number;
  weightDecay?: number;
}

/** Spec §11: AdamW(betas (0.9, 0.999), eps 1e-8, weight_decay 0.1), base lr 1e-3. */
export const SAM_LST_ADAMW: Required<AdamWOptions> = {
  lr: 1e-3,
  betas: [0.9, 0.999],
  eps: 1e-8,
  weightDecay: 0.1,
};

/** Optimizer state of one parameter; m and v are absent until its first update. */
export interface AdamWParamState<T = HostTensor> {
  step: number;
  m: T;
  v: T;
}

/** Exported state: per parameter name (parameters never updated have no entry, like PyTorch). */
export interface AdamWState<T = HostTensor> {
  params: Record<string, AdamWParamState<T>>;
}

interface Slot {
  name: string;
  param: Tensor;
  step: number;
  m: Tensor | null;
  v: Tensor | null;
}

export class AdamW {
  readonly lr: number;
  readonly beta1: number;
  readonly beta2: number;
  readonly eps: number;
  readonly weightDecay: number;
  private readonly slots: Slot[];
  private readonly byName = new Map<string, Slot>();

  constructor(params: readonly NamedParam[], opts: AdamWOptions = {}) {
    this.lr = opts.lr ?? 1e-3;
    [this.beta1, this.beta2] = opts.betas ?? [0.9, 0.999];
    this.eps = opts.eps ?? 1e-8;
    this.weightDecay = opts.weightDecay ?? 1e-2;
    checkRange('lr', this.lr, 0, Infinity);
    checkRange('beta1', this.beta1, 0, 1, true);
    checkRange('beta2', this.beta2, 0, 1, true);
    checkRange('eps', this.eps, 0, Infinity);
    checkRange('weightDecay', this.weightDecay, 0, Infinity);
    this.slots = params.map(({ name, tensor }) => {
      if (this.byName.has(name)) throw new Error(`AdamW: duplicate parameter name '${name}'`);
      if (tensor.dtype !== 'f32') throw new Error(`AdamW: parameter '${name}' is ${tensor.dtype}, not f32`);
      const s: Slot = { name, param: tensor, step: 0, m: null, v: null };
      this.byName.set(name, s);
      return s;
    });
  }

  get names(): string[] {
    return this.slots.map((s) => s.name);
  }

  /** Steps taken by parameter `name` (0 until it first had a gradient at a step). */
  stepCount(name: string): number {
    return this.slot(name).step;
  }

  /**
   * One update of every parameter whose `.grad` is set, with learning rate `lr` (default: the
   * constructor's). Records dispatches only; nothing is read back or flushed.
   */
  step(lr: number = this.lr): void {
    checkRange('lr', lr, 0, Infinity);
    for (const s of this.slots) {
      const g = s.param.grad;
      if (!g) continue;
      if (g.size !== s.param.size)
        throw new Error(
          `AdamW: grad ${g.describe()} does not match parameter '${s.name}' ${s.param.describe()}`,
        );
      if (!s.m || !s.v) {
        s.m = Tensor.zeros(s.param.gpu, s.param.shape).keep();
        s.v = Tensor.zeros(s.param.gpu, s.param.shape).keep();
      }
      s.step++;
      runAdamW(s.param, g, s.m, s.v, {
        lr,
        beta1: this.beta1,
        beta2: this.beta2,
        eps: this.eps,
        weightDecay: this.weightDecay,
        step: s.step,
      });
    }
  }

  /**
   * Clears gradients. Default (PyTorch >= 2.0): drop them (`.grad = null`, buffers back to the
   * pool). `setToNone: false` zeroes them in place (PyTorch 1.x default), so those parameters keep
   * being updated (decay and momentum) at later steps even without a new gradient.
   */
  zeroGrad(opts: { setToNone?: boolean } = {}): void {
    for (const s of this.slots) {
      const g = s.param.grad;
      if (!g) continue;
      if (opts.setToNone ?? true) {
        g.dispose();
        s.param.grad = null;
      } else if (g.size) {
        g.gpu.clear(g.buffer, 0, g.bytes);
      }
    }
  }

  /** Live handles on the state tensors (not copies); parameters never updated are absent. */
  stateTensors(): AdamWState<Tensor> {
    const params: Record<string, AdamWParamState<Tensor>> = {};
    for (const s of this.slots) if (s.m && s.v) params[s.name] = { step: s.step, m: s.m, v: s.v };
    return { params };
  }

  /** Host copies of the state, for checkpoints. */
  async exportState(): Promise<AdamWState> {
    const params: Record<string, AdamWParamState> = {};
    for (const s of this.slots) {
      if (!s.m || !s.v) continue;
      params[s.name] = { step: s.step, m: await s.m.toHost(), v: await s.v.toHost() };
    }
    return { params };
  }

  /**
   * Replaces the state from `state` (host or GPU tensors; GPU tensors are copied). Names not in
   * this optimizer and size mismatches throw; parameters absent from `state` start fresh.
   */
  importState(state: AdamWState<HostTensor | Tensor>): void {
    const entries = Object.entries(state.params);
    for (const [name, st] of entries) {
      const s = this.byName.get(name);
      if (!s) throw new Error(`AdamW.importState: unknown parameter '${name}'`);
      for (const [k, t] of [
        ['m', st.m],
        ['v', st.v],
      ] as const) {
        const size = t instanceof Tensor ? t.size : t.data.length;
        if (size !== s.param.size || t.dtype !== 'f32')
          throw new Error(
            `AdamW.importState: '${name}'.${k} is ${t.dtype}[${t.shape.join(', ')}], parameter is ${s.param.describe()}`,
          );
      }
      if (!Number.isInteger(st.step) || st.step < 1)
        throw new Error(`AdamW.importState: '${name}' has step ${st.step}; expected an integer >= 1`);
    }
    // Copy first, then drop the old state: `state` may hold this optimizer's own tensors.
    const fresh = entries.map(([name, st]) => {
      const s = this.byName.get(name)!;
      return { s, step: st.step, m: this.copyIn(s.param, st.m), v: this.copyIn(s.param, st.v) };
    });
    for (const s of this.slots) this.resetSlot(s);
    for (const f of fresh) {
      f.s.step = f.step;
      f.s.m = f.m;
      f.s.v = f.v;
    }
  }

  /** Frees the state tensors (parameters and gradients are the caller's). */
  dispose(): void {
    for (const s of this.slots) this.resetSlot(s);
  }

  private copyIn(param: Tensor, t: HostTensor | Tensor): Tensor {
    if (t instanceof Tensor) {
      const out = Tensor.empty(param.gpu, param.shape).keep();
      if (t.size) param.gpu.copy(t.buffer, 0, out.buffer, 0, t.bytes);
      return out;
    }
    return Tensor.fromData(param.gpu, t.data, param.shape).keep();
  }

  private resetSlot(s: Slot): void {
    s.m?.dispose();
    s.v?.dispose();
    s.m = null;
    s.v = null;
    s.step = 0;
  }

  private slot(name: string): Slot {
    const s = this.byName.get(name);
    if (!s) throw new Error(`AdamW: unknown parameter '${name}'`);
    return s;
  }
}

function checkRange(what: string, v: number, lo: number, hi: number, openHi = false): void {
  if (!Number.isFinite(v) || !(v >= lo && (openHi ? v < hi : v <= hi)))
    throw new RangeError(`AdamW: ${what} = ${v} is outside [${lo}, ${hi}${openHi ? ')' : ']'}`);
}
