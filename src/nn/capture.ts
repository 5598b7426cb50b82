/**
 * Capture: records named intermediate activations of a forward pass and, on request, the gradient
 * of the loss with respect to them (PyTorch's `retain_grad()`), for parity tests and debugging.
 *
 * `tap(name, x)` keeps a handle on x (the capture owns it; it survives tidy scopes until
 * `dispose()`). With `grads` on, it also returns an identity node in front of x (a view of it; the
 * handle x is then disposed unless `keepInput`): every later use of the activation must go through
 * the returned tensor, and its backward rule copies the incoming
 * gradient (the full dLoss/dx, since the tape accumulates all uses before running the rule) and
 * passes it through unchanged. Without a capture the model code calls `tap(undefined, ...)`, which
 * returns x itself: no extra nodes, no extra memory.
 */
import { isGradEnabled, record } from '../autograd/tape.js';
import { Tensor } from '../tensor/tensor.js';

export interface CaptureOptions {
  /** Also record gradients (of tensors that require one) during backward. Default false. */
  grads?: boolean;
  /** Record only the names this accepts (default: all). */
  filter?: (name: string) => boolean;
}

export interface TapOptions {
  /** Record this tensor as the activation instead of x (x is still the one whose gradient is taken). */
  act?: Tensor;
  /** Retain the gradient of this one (default true when the capture records gradients). */
  retainGrad?: boolean;
  /** Turns the gradient arriving at x into the stored gradient (returns a new tensor it owns). */
  gradTransform?: (g: Tensor) => Tensor;
  /** Do not dispose x when a new node is returned (x is a parameter or otherwise still needed). */
  keepInput?: boolean;
}

function copyOf(g: Tensor): Tensor {
  const c = Tensor.empty(g.gpu, g.shape);
  if (g.size) g.gpu.copy(g.buffer, 0, c.buffer, 0, g.bytes);
  return c;
}

export class Capture {
  /** Activations by name (handles owned by the capture). */
  readonly acts = new Map<string, Tensor>();
  /** Gradients dLoss/d(activation) by name, filled in by backward(). */
  readonly grads = new Map<string, Tensor>();
  private readonly wantGrads: boolean;
  private readonly filter: (name: string) => boolean;

  constructor(opts: CaptureOptions = {}) {
    this.wantGrads = opts.grads ?? false;
    this.filter = opts.filter ?? (() => true);
  }

  /**
   * Records x under `names` (several names alias one tensor, as two retain_grad() captures of the
   * same PyTorch tensor do); returns the tensor to use downstream (see the file comment). Tap a
   * tensor where it is created, before any use: the captured gradient covers only uses of the
   * returned tensor.
   */
  tap(names: string | readonly string[], x: Tensor, opts: TapOptions = {}): Tensor {
    const list = (typeof names === 'string' ? [names] : names).filter((n) => this.filter(n));
    if (!list.length) return x;
    const a = opts.act ?? x;
    for (const n of list) {
      this.acts.get(n)?.dispose();
      this.acts.set(n, a.view(a.shape).keep());
    }
    if (!this.wantGrads || !(opts.retainGrad ?? true) || !isGradEnabled() || !x.requiresGrad) return x;
    const out = x.view(x.shape);
    const shape = x.shape;
    record('capture', out, [x], [], (g) => {
      const kept = (opts.gradTransform ? opts.gradTransform(g) : copyOf(g)).keep();
      list.forEach((n, i) => {
        this.grads.get(n)?.dispose();
        this.grads.set(n, i === 0 ? kept : kept.view(kept.shape).keep());
      });
      return [g.view(shape)];
    });
    if (!opts.keepInput) x.dispose();
    return out;
  }

  act(name: string): Tensor {
    const t = this.acts.get(name);
    if (!t) throw new Error(`capture: no activation '${name}' (have: ${[...this.acts.keys()].join(', ')})`);
    return t;
  }

  grad(name: string): Tensor {
    const t = this.grads.get(name);
    if (!t)
      throw new Error(`capture: no gradient for '${name}' (have: ${[...this.grads.keys()].join(', ')})`);
    return t;
  }

  /** Frees every recorded tensor. */
  dispose(): void {
    for (const t of this.acts.values()) t.dispose();
    for (const t of this.grads.values()) t.dispose();
    this.acts.clear();
    this.grads.clear();
  }
}

/** `cap.tap(name, x, opts)`, or x itself when there is no capture. */
export function tap(
  cap: Capture | undefined,
  names: string | readonly string[],
  x: Tensor,
  opts?: TapOptions,
): Tensor {
  return cap ? cap.tap(names, x, opts) : x;
}
