/**
 * The SAM-LST fusion gate (spec §5): fused = g*a + (1-g)*b with g = sigmoid(alpha), a = SAM
 * embedding (frozen), b = side-network features, alpha a learnable 1-element tensor (init 0).
 * Fused forward and backward kernels (kernels/gate_add.wgsl); alpha is read on the GPU.
 */
import { record } from '../autograd/tape.js';
import { gatePartialCount, runGateBwd, runGateDalpha, runGateFwd } from '../kernels/gate_add.js';
import { Tensor } from '../tensor/tensor.js';
import { fmt, sameShape, ShapeError } from '../util/shape.js';

/**
 * fused = sigmoid(alpha)*a + (1 - sigmoid(alpha))*b.
 *
 * `alpha`: a 1-element f32 tensor (any shape of size 1), or a number for a fixed gate (ablations;
 * uploaded as a constant, never differentiated). A tensor alpha with requiresGrad false is also a
 * fixed gate. Gradients: d_b = (1-g)*dy; d_a = g*dy only when a requires grad; d_alpha =
 * g(1-g)*sum(dy*(a-b)), reduced deterministically on the GPU.
 */
export function gateAdd(alpha: Tensor | number, a: Tensor, b: Tensor): Tensor {
  if (!sameShape(a.shape, b.shape))
    throw new ShapeError(`gateAdd: a ${fmt(a.shape)} and b ${fmt(b.shape)} must have the same shape`);
  if (a.dtype !== 'f32' || b.dtype !== 'f32')
    throw new ShapeError(`gateAdd: expects f32 tensors, got a ${a.dtype} and b ${b.dtype}`);
  if (typeof alpha === 'number') {
    const t = Tensor.fromData(a.gpu, Float32Array.of(alpha), [1]);
    const out = gateAdd(t, a, b);
    t.dispose();
    return out;
  }
  if (alpha.size !== 1 || alpha.dtype !== 'f32')
    throw new ShapeError(
      `gateAdd: alpha must be a 1-element f32 tensor, got ${alpha.dtype}${fmt(alpha.shape)}`,
    );
  const out = Tensor.empty(a.gpu, a.shape);
  runGateFwd(alpha, a, b, out);
  return record('gateAdd', out, [alpha, a, b], [alpha, a, b], (dy, needs) => {
    const gpu = dy.gpu;
    const db = Tensor.empty(gpu, b.shape);
    const da = needs[1] ? Tensor.empty(gpu, a.shape) : null;
    const partials = Tensor.empty(gpu, [gatePartialCount(gpu, dy.size)]);
    runGateBwd(alpha, dy, a, b, db, da, partials);
    let dalpha: Tensor | null = null;
    if (needs[0]) {
      dalpha = Tensor.empty(gpu, alpha.shape);
      runGateDalpha(alpha, partials, dalpha);
    }
    partials.dispose();
    return [dalpha, da, db];
  });
}
