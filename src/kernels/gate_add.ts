/**
 * TS face of kernels/gate_add.wgsl: the fused sigmoid gate out = g*a + (1-g)*b (g = sigmoid of a
 * 1-element GPU tensor) and its fused backward with a deterministic two-stage d_alpha reduction.
 *
 * Variants: the vec4 entries run when the element count is a multiple of 4 (every SAM-LST shape;
 * loads are vec4, which lavapipe executes at about twice the f32 rate), the scalar entries
 * otherwise. Tensors over the adapter's binding limit are processed in flat chunks (`flatChunks`).
 */
import type { Binding, Gpu } from '../gpu/device.js';
import { flatBinding, flatChunks } from './split.js';
import { defineKernel } from '../gpu/kernel.js';
import type { Tensor } from '../tensor/tensor.js';
import { ceilDiv } from '../util/shape.js';
import { grid1d } from './grid.js';
import { gateAdd as source } from './wgsl.gen.js';

const WG = 256;
const ITEMS = 8;

/**
 * Backward tiling per adapter kind (see the header of gate_add.wgsl for TREE). lavapipe: barriers
 * are coroutine switches, so each invocation writes its own partial sum (TREE 0) and handles 32
 * vec4s; the final one-workgroup reduction then reads ~50K partials at the SAM-LST shape (cheap
 * on a CPU). Real GPUs: 256 threads, 8 items each, a shared-memory tree per workgroup (TREE 1).
 */
interface BwdConfig {
  WG: number;
  ITEMS: number;
  TREE: number;
}
function bwdConfig(gpu: Gpu): BwdConfig {
  return gpu.profile.kind === 'cpu' ? { WG: 64, ITEMS: 32, TREE: 0 } : { WG: 256, ITEMS: 8, TREE: 1 };
}
function partialsPerBlock(c: BwdConfig): number {
  return c.TREE ? 1 : c.WG;
}
const common = {
  file: 'gate_add',
  source,
  uniforms: [
    ['n', 'u32'],
    ['p_base', 'u32'],
  ],
  overrides: { WG, ITEMS, TREE: 1 },
} as const;

export const gateFwdKernel = defineKernel({
  ...common,
  entry: 'gate_fwd',
  storage: [
    ['alpha', 'read'],
    ['a', 'read'],
    ['b', 'read'],
    ['out', 'read_write'],
  ],
});
export const gateFwd4Kernel = defineKernel({
  ...common,
  entry: 'gate_fwd4',
  storage: [
    ['alpha', 'read'],
    ['a4', 'read'],
    ['b4', 'read'],
    ['out4', 'read_write'],
  ],
});
export const gateBwdKernel = defineKernel({
  ...common,
  entry: 'gate_bwd',
  storage: [
    ['alpha', 'read'],
    ['dy', 'read'],
    ['ga', 'read'],
    ['gb', 'read'],
    ['db', 'read_write'],
    ['partials', 'read_write'],
  ],
});
export const gateBwdDaKernel = defineKernel({
  ...common,
  entry: 'gate_bwd_da',
  storage: [
    ['alpha', 'read'],
    ['dy', 'read'],
    ['ga', 'read'],
    ['gb', 'read'],
    ['db', 'read_write'],
    ['partials', 'read_write'],
    ['da', 'read_write'],
  ],
});
export const gateBwd4Kernel = defineKernel({
  ...common,
  entry: 'gate_bwd4',
  storage: [
    ['alpha', 'read'],
    ['dy4', 'read'],
    ['ga4', 'read'],
    ['gb4', 'read'],
    ['db4', 'read_write'],
    ['partials', 'read_write'],
  ],
});
export const gateBwdDa4Kernel = defineKernel({
  ...common,
  entry: 'gate_bwd_da4',
  storage: [
    ['alpha', 'read'],
    ['dy4', 'read'],
    ['ga4', 'read'],
    ['gb4', 'read'],
    ['db4', 'read_write'],
    ['partials', 'read_write'],
    ['da4', 'read_write'],
  ],
});
export const gateDalphaKernel = defineKernel({
  ...common,
  entry: 'gate_dalpha',
  storage: [
    ['alpha', 'read'],
    ['parts_in', 'read'],
    ['dalpha', 'read_write'],
  ],
});

function alphaBinding(alpha: Tensor): Binding {
  return { buffer: alpha.buffer, offset: 0, size: 4 };
}

/** Which entries run for `n` elements: vec4 when n % 4 == 0 (unless `scalar` forces the f32 path). */
function useVec4(n: number, scalar: boolean): boolean {
  return !scalar && n % 4 === 0;
}

/** out = g*a + (1-g)*b, g = sigmoid(alpha[0]). All of a, b, out have `n` elements. */
export function runGateFwd(
  alpha: Tensor,
  a: Tensor,
  b: Tensor,
  out: Tensor,
  opts: { scalar?: boolean } = {},
): void {
  const gpu = a.gpu;
  const n = out.size;
  const v4 = useVec4(n, opts.scalar ?? false);
  const w = v4 ? 4 : 1;
  for (const [s, c] of flatChunks(gpu, n, w, 'gateAdd')) {
    const items = c / w;
    gpu.dispatch(
      v4 ? gateFwd4Kernel : gateFwdKernel,
      [alphaBinding(alpha), flatBinding(a, s, c), flatBinding(b, s, c), flatBinding(out, s, c)],
      { n: items, p_base: 0 },
      grid1d(gpu, ceilDiv(items, WG)),
    );
  }
}

/** Number of d_alpha partial sums the backward writes for `n` elements. */
export function gatePartialCount(gpu: Gpu, n: number, opts: { scalar?: boolean } = {}): number {
  const w = useVec4(n, opts.scalar ?? false) ? 4 : 1;
  const cfg = bwdConfig(gpu);
  return flatChunks(gpu, n, w, 'gateAdd').reduce(
    (k, [, c]) => k + ceilDiv(c / w, cfg.WG * cfg.ITEMS) * partialsPerBlock(cfg),
    0,
  );
}

/**
 * Fused backward: db = (1-g)*dy, da = g*dy (when `da` is given), and per-block partial sums of
 * dy*(a-b) into `partials` (gatePartialCount elements). Then `runGateDalpha` finishes d_alpha.
 */
export function runGateBwd(
  alpha: Tensor,
  dy: Tensor,
  a: Tensor,
  b: Tensor,
  db: Tensor,
  da: Tensor | null,
  partials: Tensor,
  opts: { scalar?: boolean } = {},
): void {
  const gpu = a.gpu;
  const n = dy.size;
  const v4 = useVec4(n, opts.scalar ?? false);
  const w = v4 ? 4 : 1;
  const cfg = bwdConfig(gpu);
  let pBase = 0;
  for (const [s, c] of flatChunks(gpu, n, w, 'gateAdd backward')) {
    const items = c / w;
    const blocks = ceilDiv(items, cfg.WG * cfg.ITEMS);
    const bindings = [
      alphaBinding(alpha),
      flatBinding(dy, s, c),
      flatBinding(a, s, c),
      flatBinding(b, s, c),
      flatBinding(db, s, c),
      partials.binding(),
    ];
    if (da) bindings.push(flatBinding(da, s, c));
    const spec = da ? (v4 ? gateBwdDa4Kernel : gateBwdDaKernel) : v4 ? gateBwd4Kernel : gateBwdKernel;
    gpu.dispatch(spec, bindings, { n: items, p_base: pBase }, grid1d(gpu, blocks), { ...cfg });
    pBase += blocks * partialsPerBlock(cfg);
  }
  if (pBase !== partials.size)
    throw new Error(`gateAdd backward: wrote ${pBase} partial sums into ${partials.describe()}`);
}

/** dalpha[0] = g(1-g) * sum(partials): one workgroup, fixed summation order. */
export function runGateDalpha(alpha: Tensor, partials: Tensor, dalpha: Tensor): void {
  alpha.gpu.dispatch(
    gateDalphaKernel,
    [alphaBinding(alpha), partials.binding(), alphaBinding(dalpha)],
    { n: partials.size, p_base: 0 },
    [1, 1, 1],
  );
}
