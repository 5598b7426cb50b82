/**
 * Standard layers with PyTorch's parameter names and default initialisation, drawn from a seeded
 * host Rng (util/rng.ts) so a model is reproducible:
 *   Linear, Conv2d, ConvTranspose2d   weight and bias ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in))
 *                                     (kaiming_uniform(a=sqrt(5)) as nn.Linear / nn.ConvNd do;
 *                                     ConvTranspose2d's fan_in is Cout/groups * k * k, as in torch)
 *   Embedding                         N(0, 1)
 *   LayerNorm, LayerNorm2d, BatchNorm2d  weight 1, bias 0; BN running_mean 0, running_var 1,
 *                                     num_batches_tracked 0 (an i32 scalar buffer, shape [])
 * Passing `rng = null` skips the random draws (weights start at zero) for models whose every
 * parameter a checkpoint will overwrite.
 *
 * `Layer` is the base of every module in nn/: after `loadStateDict` it calls `afterLoad` on each
 * submodule, so modules that mirror loaded values on the host (BatchNorm2d's batch counter, the
 * prompt encoder's positional encoding) stay in step with the checkpoint.
 */
import type { GemmAct } from '../kernels/gemm.js';
import { Module, type LoadReport } from './module.js';
import { linear } from '../ops/linear.js';
import { conv2d, type Conv2dOptions } from '../ops/conv.js';
import { convTranspose2d } from '../ops/spatial.js';
import { batchNorm2d, layerNorm, layerNorm2d } from '../ops/norm.js';
import type { Gpu } from '../gpu/device.js';
import type { HostTensor } from '../tensor/host.js';
import { Tensor } from '../tensor/tensor.js';
import type { Rng } from '../util/rng.js';
import { fmt, numel, ShapeError, type Shape } from '../util/shape.js';

/** A seeded generator for the default initialisation, or null for "leave at zero". */
export type InitRng = Rng | null;

export function uniformInit(rng: InitRng, n: number, bound: number): Float32Array | undefined {
  if (!rng) return undefined;
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = (2 * rng.next() - 1) * bound;
  return a;
}

export function normalInit(rng: InitRng, n: number, std = 1): Float32Array | undefined {
  if (!rng) return undefined;
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = rng.normal() * std;
  return a;
}

/** Base of the nn/ modules: `loadStateDict` followed by the `afterLoad` hooks. */
export class Layer extends Module {
  override loadStateDict(
    src: ReadonlyMap<string, HostTensor>,
    opts: { strict?: boolean; ignore?: readonly RegExp[]; source?: string } = {},
  ): LoadReport {
    const report = super.loadStateDict(src, opts);
    for (const [name, m] of this.namedModules())
      if (m instanceof Layer) m.afterLoad(src, name ? `${name}.` : '');
    return report;
  }

  /** Called after a state dict was loaded into a module containing this one (keys under `prefix`). */
  protected afterLoad(_src: ReadonlyMap<string, HostTensor>, _prefix: string): void {}

  /** Frees parameters, buffers and every submodule's extra (non-state) tensors. */
  override dispose(): void {
    for (const [, m] of this.namedModules()) if (m instanceof Layer) m.releaseExtra();
    super.dispose();
  }

  /** Frees tensors a module keeps besides its parameters and buffers (caches, constants). */
  protected releaseExtra(): void {}

  /** Registers a parameter of `shape`, initialised from `init` or (undefined) zeros. */
  protected param(name: string, shape: Shape, init?: Float32Array): Tensor {
    return this.newParam(name, shape, init);
  }

  protected ones(name: string, n: number): Tensor {
    return this.newParam(name, [n], new Float32Array(n).fill(1));
  }

  protected child<M extends Module>(name: string, m: M): M {
    return this.addModule(name, m);
  }
}

/** nn.ModuleList / nn.Sequential: children named 0, 1, ...; null entries leave their index unused
 * (the parameter-free entries of an nn.Sequential, e.g. GELU). */
export class ModuleList<M extends Module = Module> extends Layer {
  readonly items: readonly (M | null)[];
  constructor(gpu: Gpu, items: readonly (M | null)[]) {
    super(gpu);
    this.items = [...items];
    this.items.forEach((m, i) => {
      if (m) this.addModule(String(i), m);
    });
  }

  at(i: number): M {
    const m = this.items[i];
    if (!m) throw new Error(`ModuleList: no module at index ${i}`);
    return m;
  }

  get length(): number {
    return this.items.length;
  }
}

export class Linear extends Layer {
  readonly weight: Tensor;
  readonly bias: Tensor | null;
  constructor(
    gpu: Gpu,
    readonly inFeatures: number,
    readonly outFeatures: number,
    rng: InitRng,
    opts: { bias?: boolean } = {},
  ) {
    super(gpu);
    const bound = 1 / Math.sqrt(inFeatures);
    this.weight = this.param(
      'weight',
      [outFeatures, inFeatures],
      uniformInit(rng, outFeatures * inFeatures, bound),
    );
    this.bias =
      (opts.bias ?? true) ? this.param('bias', [outFeatures], uniformInit(rng, outFeatures, bound)) : null;
  }

  forward(x: Tensor, act: GemmAct = 'none'): Tensor {
    return linear(x, this.weight, this.bias, { act });
  }
}

export class Embedding extends Layer {
  readonly weight: Tensor;
  constructor(gpu: Gpu, num: number, dim: number, rng: InitRng) {
    super(gpu);
    this.weight = this.param('weight', [num, dim], normalInit(rng, num * dim));
  }
}

export interface Conv2dLayerOptions extends Conv2dOptions {
  bias?: boolean;
}

export class Conv2d extends Layer {
  readonly weight: Tensor;
  readonly bias: Tensor | null;
  readonly opts: Conv2dOptions;
  constructor(
    gpu: Gpu,
    cin: number,
    cout: number,
    kernel: number,
    rng: InitRng,
    opts: Conv2dLayerOptions = {},
  ) {
    super(gpu);
    const groups = opts.groups ?? 1;
    const { bias = true, ...conv } = opts;
    this.opts = conv;
    const fanIn = (cin / groups) * kernel * kernel;
    const bound = 1 / Math.sqrt(fanIn);
    const shape = [cout, cin / groups, kernel, kernel];
    this.weight = this.param('weight', shape, uniformInit(rng, numel(shape), bound));
    this.bias = bias ? this.param('bias', [cout], uniformInit(rng, cout, bound)) : null;
  }

  forward(x: Tensor): Tensor {
    return conv2d(x, this.weight, this.bias, this.opts);
  }
}

export class ConvTranspose2d extends Layer {
  readonly weight: Tensor;
  readonly bias: Tensor | null;
  readonly stride: number;
  constructor(
    gpu: Gpu,
    cin: number,
    cout: number,
    kernel: number,
    rng: InitRng,
    opts: { stride?: number; bias?: boolean } = {},
  ) {
    super(gpu);
    this.stride = opts.stride ?? 1;
    const bound = 1 / Math.sqrt(cout * kernel * kernel);
    const shape = [cin, cout, kernel, kernel];
    this.weight = this.param('weight', shape, uniformInit(rng, numel(shape), bound));
    this.bias = (opts.bias ?? true) ? this.param('bias', [cout], uniformInit(rng, cout, bound)) : null;
  }

  forward(x: Tensor): Tensor {
    return convTranspose2d(x, this.weight, this.bias, { stride: this.stride });
  }
}

/** nn.LayerNorm over the last dimension. */
export class LayerNorm extends Layer {
  readonly weight: Tensor;
  readonly bias: Tensor;
  constructor(
    gpu: Gpu,
    dim: number,
    readonly eps = 1e-5,
  ) {
    super(gpu);
    this.weight = this.ones('weight', dim);
    this.bias = this.param('bias', [dim]);
  }

  forward(x: Tensor): Tensor {
    return layerNorm(x, this.weight, this.bias, this.eps);
  }
}

/** SAM's LayerNorm2d: over the channels of NCHW at each pixel. */
export class LayerNorm2d extends Layer {
  readonly weight: Tensor;
  readonly bias: Tensor;
  constructor(
    gpu: Gpu,
    channels: number,
    readonly eps = 1e-6,
  ) {
    super(gpu);
    this.weight = this.ones('weight', channels);
    this.bias = this.param('bias', [channels]);
  }

  forward(x: Tensor): Tensor {
    return layerNorm2d(x, this.weight, this.bias, this.eps);
  }
}

/**
 * nn.BatchNorm2d (affine, track_running_stats). Training mode: batch statistics, running stats
 * updated in place, num_batches_tracked += 1 per forward (momentum null: cumulative average with
 * factor 1/num_batches_tracked, as PyTorch). Eval mode: running statistics.
 */
export class BatchNorm2d extends Layer {
  readonly weight: Tensor;
  readonly bias: Tensor;
  readonly running_mean: Tensor;
  readonly running_var: Tensor;
  readonly num_batches_tracked: Tensor;
  private batches = 0;

  constructor(
    gpu: Gpu,
    readonly channels: number,
    readonly opts: { eps?: number; momentum?: number | null } = {},
  ) {
    super(gpu);
    this.weight = this.ones('weight', channels);
    this.bias = this.param('bias', [channels]);
    this.running_mean = this.addBuffer('running_mean', Tensor.zeros(gpu, [channels]));
    this.running_var = this.addBuffer(
      'running_var',
      Tensor.fromData(gpu, new Float32Array(channels).fill(1), [channels]),
    );
    this.num_batches_tracked = this.addBuffer('num_batches_tracked', Tensor.zeros(gpu, [], 'i32'));
  }

  get eps(): number {
    return this.opts.eps ?? 1e-5;
  }

  /** Training forwards counted so far (PyTorch's num_batches_tracked). */
  get numBatchesTracked(): number {
    return this.batches;
  }

  set numBatchesTracked(n: number) {
    if (!Number.isInteger(n) || n < 0 || n > 0x7fffffff)
      throw new RangeError(`BatchNorm2d: num_batches_tracked ${n} must be an int32 >= 0`);
    this.batches = n;
    this.gpu.upload(this.num_batches_tracked.buffer, 0, Int32Array.of(n));
  }

  forward(x: Tensor): Tensor {
    if (x.shape.length !== 4 || x.shape[1] !== this.channels)
      throw new ShapeError(
        `BatchNorm2d(${this.channels}): input must be (N, ${this.channels}, H, W), got ${fmt(x.shape)}`,
      );
    if (!this.training)
      return batchNorm2d(x, this.weight, this.bias, this.running_mean, this.running_var, {
        training: false,
        eps: this.eps,
      });
    this.numBatchesTracked = this.batches + 1;
    const m = this.opts.momentum === undefined ? 0.1 : this.opts.momentum;
    return batchNorm2d(x, this.weight, this.bias, this.running_mean, this.running_var, {
      training: true,
      momentum: m ?? 1 / this.batches,
      eps: this.eps,
    });
  }

  protected override afterLoad(src: ReadonlyMap<string, HostTensor>, prefix: string): void {
    const h = src.get(`${prefix}num_batches_tracked`);
    if (h && h.data.length === 1) this.numBatchesTracked = Math.round(Number(h.data[0]));
  }
}

export type MlpAct = 'relu' | 'gelu';

/** SAM's MLPBlock: lin1 -> act -> lin2. */
export class MLPBlock extends Layer {
  readonly lin1: Linear;
  readonly lin2: Linear;
  constructor(
    gpu: Gpu,
    dim: number,
    hidden: number,
    readonly act: MlpAct,
    rng: InitRng,
  ) {
    super(gpu);
    this.lin1 = this.child('lin1', new Linear(gpu, dim, hidden, rng));
    this.lin2 = this.child('lin2', new Linear(gpu, hidden, dim, rng));
  }

  forward(x: Tensor): Tensor {
    const h = this.lin1.forward(x, this.act);
    const y = this.lin2.forward(h);
    h.dispose();
    return y;
  }
}

/** SAM's MLP: `layers.{i}` Linear layers with ReLU between (none after the last). */
export class MLP extends Layer {
  readonly layers: ModuleList<Linear>;
  constructor(gpu: Gpu, din: number, dhid: number, dout: number, n: number, rng: InitRng) {
    super(gpu);
    const dims = [din, ...new Array<number>(n - 1).fill(dhid), dout];
    this.layers = this.child(
      'layers',
      new ModuleList(
        gpu,
        dims.slice(0, -1).map((a, i) => new Linear(gpu, a, dims[i + 1]!, rng)),
      ),
    );
  }

  forward(x: Tensor): Tensor {
    let h = x;
    const n = this.layers.length;
    for (let i = 0; i < n; i++) {
      const y = this.layers.at(i).forward(h, i < n - 1 ? 'relu' : 'none');
      if (h !== x) h.dispose();
      h = y;
    }
    return h;
  }
}
