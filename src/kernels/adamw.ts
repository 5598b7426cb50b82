/** TS face of kernels/adamw.wgsl: one in-place AdamW update of a flat parameter. */
import { defineKernel } from '../gpu/kernel.js';
import type { Tensor } from '../tensor/tensor.js';
import { ceilDiv } from '../util/shape.js';
import { flatBinding, flatChunks } from './split.js';
import { grid1d } from './grid.js';
import { adamw as source } from './wgsl.gen.js';

const WG = 256;

export const adamwStepKernel = defineKernel({
  file: 'adamw',
  source,
  entry: 'adamw_step',
  // lr, weight decay and bias corrections change every step.
  volatileUniforms: true,
  storage: [
    ['p', 'read_write'],
    ['g', 'read'],
    ['m', 'read_write'],
    ['v', 'read_write'],
  ],
  uniforms: [
    ['n', 'u32'],
    ['decay', 'f32'],
    ['beta1', 'f32'],
    ['beta2', 'f32'],
    ['one_m_beta1', 'f32'],
    ['one_m_beta2', 'f32'],
    ['step_size', 'f32'],
    ['bc2_sqrt', 'f32'],
    ['eps', 'f32'],
  ],
  overrides: { WG },
});

export interface AdamWHyper {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  /** 1-based step count of this parameter (after incrementing), for the bias corrections. */
  step: number;
}

/** Updates p, m, v in place from g (all the same element count; four distinct buffers). */
export function runAdamW(p: Tensor, g: Tensor, m: Tensor, v: Tensor, h: AdamWHyper): void {
  const n = p.size;
  if (g.size !== n || m.size !== n || v.size !== n)
    throw new Error(
      `adamw: sizes differ: param ${p.describe()}, grad ${g.describe()}, m ${m.describe()}, v ${v.describe()}`,
    );
  const bufs = new Set([p.buffer, g.buffer, m.buffer, v.buffer]);
  if (bufs.size !== 4) throw new Error(`adamw: param ${p.describe()} shares a buffer with its grad or state`);
  const gpu = p.gpu;
  // Host scalars in float64, as PyTorch forms them, rounded once to f32 by the uniform packing.
  const u = {
    decay: 1 - h.lr * h.weightDecay,
    beta1: h.beta1,
    beta2: h.beta2,
    one_m_beta1: 1 - h.beta1,
    one_m_beta2: 1 - h.beta2,
    step_size: h.lr / (1 - h.beta1 ** h.step),
    bc2_sqrt: Math.sqrt(1 - h.beta2 ** h.step),
    eps: h.eps,
  };
  for (const [s, c] of flatChunks(gpu, n, 1, 'adamw')) {
    gpu.dispatch(
      adamwStepKernel,
      [flatBinding(p, s, c), flatBinding(g, s, c), flatBinding(m, s, c), flatBinding(v, s, c)],
      { ...u, n: c },
      grid1d(gpu, ceilDiv(c, WG)),
    );
  }
}
