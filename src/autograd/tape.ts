/**
 * Reverse-mode autograd on a dynamic tape.
 *
 * Ops call `record()` after computing their output. When gradients are enabled and some input
 * requires one, the output gets a GradNode holding the inputs, the tensors the backward rule needs
 * (pinned: a dispose() by the caller or a tidy() scope is deferred until the rule has run, so rules
 * may simply close over the op's own tensors), and the rule itself. `backward(loss)` walks the nodes in reverse
 * topological order; leaf tensors with `requiresGrad` accumulate into `.grad`, frozen tensors
 * (requiresGrad false) get nothing, and each node's saved tensors are released as soon as its rule
 * has run. Under `noGrad()` nothing is recorded at all.
 */
import { runAxpby, runFill } from '../kernels/elementwise.js';
import type { GradFn } from '../tensor/tensor.js';
import { setDisposeHook, Tensor } from '../tensor/tensor.js';
import { untrack } from '../tensor/scope.js';
import { fmt, sameShape } from '../util/shape.js';

/** Backward rule: gradient of the output → gradient per input (null where not needed). */
export type BackwardRule = (grad: Tensor, needs: readonly boolean[]) => readonly (Tensor | null)[];

export interface GradNode extends GradFn {
  readonly op: string;
  readonly inputs: readonly Tensor[];
  saved: Tensor[];
  rule: BackwardRule | null;
}

let gradEnabled = true;

/** dst += src (same size), in place: gradient accumulation. */
function accumulate(dst: Tensor, src: Tensor): void {
  if (dst.size !== src.size)
    throw new Error(`backward: cannot accumulate ${src.describe()} into ${dst.describe()}`);
  runAxpby(dst, src, 1, 1);
}

function onesLike(like: Tensor): Tensor {
  const t = Tensor.empty(like.gpu, like.shape);
  runFill(t, 1);
  return t;
}

export function isGradEnabled(): boolean {
  return gradEnabled;
}

/** Runs `fn` without recording anything on the tape. */
export function noGrad<T>(fn: () => T): T {
  const prev = gradEnabled;
  gradEnabled = false;
  try {
    return fn();
  } finally {
    gradEnabled = prev;
  }
}

/**
 * Records `out = op(inputs)`. `save` lists the tensors whose DATA the rule reads; they are pinned
 * until the rule has run (or the graph is released), whatever the caller disposes meanwhile.
 * Returns `out`.
 */
export function record(
  op: string,
  out: Tensor,
  inputs: readonly Tensor[],
  save: readonly Tensor[],
  rule: BackwardRule,
): Tensor {
  if (!gradEnabled || !inputs.some((t) => t.requiresGrad)) return out;
  for (const t of save) t.pin();
  for (const t of inputs) t.consumers++;
  const saved = [...save];
  const node: GradNode = { op, inputs: [...inputs], saved, rule };
  out.requiresGrad = true;
  out.gradFn = node;
  return out;
}

/**
 * Clears a node's rule and saved tensors. Its inputs lose a consumer; an input whose handle was
 * already disposed and that no other node consumes can never take part in a backward pass any
 * more, so its own node is released too (this frees branches backward never reaches, such as
 * outputs a loss does not use, as soon as their tensors are disposed).
 */
function releaseNode(first: GradNode, cascade = true): void {
  const stack = [first];
  while (stack.length) {
    const n = stack.pop()!;
    if (!n.rule) continue;
    for (const s of n.saved) s.unpin();
    n.saved = [];
    n.rule = null;
    for (const x of n.inputs) {
      x.consumers--;
      const up = x.gradFn as GradNode | null;
      if (cascade && up?.rule && x.handleReleased && x.consumers === 0) stack.push(up);
    }
  }
}

setDisposeHook((t) => {
  const n = t.gradFn as GradNode | null;
  if (n?.rule && t.consumers === 0) releaseNode(n);
});

/** Marks a tensor as a trainable leaf. */
export function param(t: Tensor): Tensor {
  t.requiresGrad = true;
  t.gradFn = null;
  return t;
}

export interface BackwardOptions {
  /** Upstream gradient of `root`; defaults to ones (root must then be a scalar or you want sum). */
  grad?: Tensor;
  /** Keep the graph for another backward pass. */
  retainGraph?: boolean;
}

/**
 * Computes gradients of `root` with respect to every leaf that requires one, adding them into the
 * leaves' `.grad` (which survive enclosing tidy() scopes).
 */
export function backward(root: Tensor, opts: BackwardOptions = {}): void {
  if (!root.requiresGrad) throw new Error(`backward: ${root.describe()} does not require grad`);
  const acc = accumulate;

  // Topological order of (tensor, node) pairs reachable from root.
  const order: Tensor[] = [];
  const seen = new Set<Tensor>();
  const stack: [Tensor, number][] = [[root, 0]];
  seen.add(root);
  while (stack.length) {
    const top = stack[stack.length - 1]!;
    const [t, i] = top;
    const node = t.gradFn as GradNode | null;
    const inputs = node?.inputs ?? [];
    if (i < inputs.length) {
      top[1]++;
      const c = inputs[i]!;
      if (c.requiresGrad && !seen.has(c)) {
        seen.add(c);
        stack.push([c, 0]);
      }
    } else {
      stack.pop();
      order.push(t);
    }
  }

  const grads = new Map<Tensor, Tensor>();
  const ownRootGrad = !opts.grad;
  const g0 = opts.grad ?? onesLike(root);
  if (!sameShape(g0.shape, root.shape))
    throw new Error(`backward: grad shape ${fmt(g0.shape)} does not match ${root.describe()}`);
  grads.set(root, g0);

  noGrad(() => {
    for (let k = order.length - 1; k >= 0; k--) {
      const t = order[k]!;
      const g = grads.get(t);
      grads.delete(t);
      const node = t.gradFn as GradNode | null;
      if (!node) {
        // Leaf.
        if (g) {
          if (t.grad) {
            acc(t.grad, g);
            if (g !== g0 || ownRootGrad) g.dispose();
          } else {
            t.grad = g === g0 && !ownRootGrad ? g.view(g.shape) : g;
            untrack(t.grad);
          }
        }
        continue;
      }
      if (!g) continue;
      if (!node.rule)
        throw new Error(
          `backward: the graph through '${node.op}' was already released (pass retainGraph to backward twice)`,
        );
      const needs = node.inputs.map((x) => x.requiresGrad);
      const gs = node.rule(g, needs);
      if (g !== g0 || ownRootGrad) g.dispose();
      node.inputs.forEach((x, i) => {
        const gi = gs[i] ?? null;
        if (!needs[i]) {
          gi?.dispose();
          return;
        }
        if (!gi)
          throw new Error(`backward: '${node.op}' returned no gradient for input ${i} (${x.describe()})`);
        if (!sameShape(gi.shape, x.shape))
          throw new Error(`backward: '${node.op}' gave gradient ${fmt(gi.shape)} for input ${x.describe()}`);
        const prev = grads.get(x);
        if (prev) {
          acc(prev, gi);
          gi.dispose();
        } else grads.set(x, gi);
      });
      // The node stays attached with its rule cleared, so a second backward through it is an
      // error rather than silently treating `t` as a leaf.
      // No cascade here: upstream nodes are still to be processed by this pass.
      if (!opts.retainGraph) releaseNode(node, false);
    }
  });
  for (const g of grads.values()) g.dispose();
}

/** Drops the graph behind `t` without computing gradients (frees saved tensors). */
export function releaseGraph(t: Tensor): void {
  const seen = new Set<Tensor>();
  const stack = [t];
  while (stack.length) {
    const x = stack.pop()!;
    if (seen.has(x)) continue;
    seen.add(x);
    const n = x.gradFn as GradNode | null;
    if (!n) continue;
    if (!n.rule) continue;
    for (const i of n.inputs) stack.push(i);
    releaseNode(n);
  }
}

export { Tensor };
