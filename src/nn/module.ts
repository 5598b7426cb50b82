/**
 * Module: named parameters, buffers and child modules whose dotted names are exactly the PyTorch
 * state_dict keys, so loading a checkpoint is a walk plus a strict report of missing, unexpected
 * and wrong-shape keys.
 */
import { param } from '../autograd/tape.js';
import type { Gpu } from '../gpu/device.js';
import type { HostTensor } from '../tensor/host.js';
import { Tensor } from '../tensor/tensor.js';
import { formatLoadReport, loadReport, type LoadReport } from '../io/remap.js';
import { sameShape, type Shape } from '../util/shape.js';

export type { LoadReport };

export class LoadError extends Error {
  override name = 'LoadError';
  constructor(
    message: string,
    readonly report: LoadReport,
  ) {
    super(message);
  }
}

export class Module {
  training = true;
  private readonly _params = new Map<string, Tensor>();
  private readonly _buffers = new Map<string, Tensor>();
  private readonly _children = new Map<string, Module>();

  constructor(readonly gpu: Gpu) {}

  /** Registers a trainable parameter (requiresGrad on; freeze() turns it off). */
  protected addParam(name: string, t: Tensor): Tensor {
    t.name = name;
    t.keep();
    this._params.set(name, param(t));
    return t;
  }

  /** Registers a parameter of `shape` initialised from `init` (host values) or zeros. */
  protected newParam(name: string, shape: Shape, init?: Float32Array): Tensor {
    const t = init ? Tensor.fromData(this.gpu, init, shape) : Tensor.zeros(this.gpu, shape);
    return this.addParam(name, t);
  }

  protected addBuffer(name: string, t: Tensor): Tensor {
    t.name = name;
    t.keep();
    this._buffers.set(name, t);
    return t;
  }

  protected addModule<M extends Module>(name: string, m: M): M {
    this._children.set(name, m);
    return m;
  }

  /** (dotted name, tensor) for every parameter, depth-first in registration order. */
  namedParameters(prefix = ''): [string, Tensor][] {
    const out: [string, Tensor][] = [];
    for (const [n, t] of this._params) out.push([prefix + n, t]);
    for (const [n, m] of this._children) out.push(...m.namedParameters(`${prefix}${n}.`));
    return out;
  }

  namedBuffers(prefix = ''): [string, Tensor][] {
    const out: [string, Tensor][] = [];
    for (const [n, t] of this._buffers) out.push([prefix + n, t]);
    for (const [n, m] of this._children) out.push(...m.namedBuffers(`${prefix}${n}.`));
    return out;
  }

  namedModules(prefix = ''): [string, Module][] {
    const out: [string, Module][] = [[prefix.replace(/\.$/, ''), this]];
    for (const [n, m] of this._children) out.push(...m.namedModules(`${prefix}${n}.`));
    return out;
  }

  /** Parameters and buffers by state_dict key. */
  stateDict(): Map<string, Tensor> {
    return new Map([...this.namedParameters(), ...this.namedBuffers()]);
  }

  /** Parameters that currently require a gradient. */
  trainableParameters(): [string, Tensor][] {
    return this.namedParameters().filter(([, t]) => t.requiresGrad);
  }

  /** Sets requiresGrad on every parameter of this module (recursively). */
  requiresGrad(flag: boolean): this {
    for (const [, t] of this.namedParameters()) t.requiresGrad = flag;
    return this;
  }

  train(mode = true): this {
    for (const [, m] of this.namedModules()) m.training = mode;
    return this;
  }

  eval(): this {
    return this.train(false);
  }

  /**
   * Copies host tensors into the parameters and buffers with the same keys. With `strict` (the
   * default) any missing, unexpected or wrong-shape key throws a LoadError listing them all,
   * before anything is written; otherwise the matching keys are loaded and the report returned.
   * `ignore` lists key patterns that are neither loaded nor reported (e.g. num_batches_tracked).
   */
  loadStateDict(
    src: ReadonlyMap<string, HostTensor>,
    opts: { strict?: boolean; ignore?: readonly RegExp[]; source?: string } = {},
  ): LoadReport {
    const strict = opts.strict ?? true;
    const ignored = (k: string) => (opts.ignore ?? []).some((r) => r.test(k));
    const mine = new Map([...this.stateDict()].filter(([k]) => !ignored(k)));
    const given = new Map([...src].filter(([k]) => !ignored(k)));
    const report = loadReport(given, new Map([...mine].map(([k, t]) => [k, t.shape])));
    if (strict && !report.ok)
      throw new LoadError(
        `${opts.source ?? 'state dict'} does not match the model:\n${formatLoadReport(report)}`,
        report,
      );
    for (const [k, t] of mine) {
      const h = given.get(k);
      if (!h || !sameShape(h.shape, t.shape)) continue;
      const data = t.dtype === 'f32' && h.data instanceof Int32Array ? Float32Array.from(h.data) : h.data;
      this.gpu.upload(t.buffer, 0, data);
    }
    return report;
  }

  /** Frees every parameter and buffer. */
  dispose(): void {
    for (const [, t] of this.namedParameters()) {
      t.grad?.dispose();
      t.dispose();
    }
    for (const [, t] of this.namedBuffers()) t.dispose();
  }
}
