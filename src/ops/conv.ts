/**
 * conv2d (NCHW, PyTorch semantics) with its backward rule: dx by the input-gradient kernel, dw by
 * the split weight-gradient kernel, db by the bias reduction — each computed only when needed.
 */
import { record, type GradNode } from '../autograd/tape.js';
import {
  convOutSize,
  runConv2dBiasGrad,
  runConv2dForward,
  runConv2dInputGrad,
  runConv2dWeightGrad,
  type Conv2dGeometry,
} from '../kernels/conv2d.js';
import { Tensor } from '../tensor/tensor.js';
import { fmt, ShapeError } from '../util/shape.js';

export type Conv2dPair = number | readonly [number, number];

export interface Conv2dOptions {
  stride?: Conv2dPair;
  padding?: Conv2dPair;
  dilation?: Conv2dPair;
  groups?: number;
}

function pair(
  op: string,
  name: string,
  v: Conv2dPair | undefined,
  dflt: number,
  min: number,
): [number, number] {
  const p: [number, number] = v === undefined ? [dflt, dflt] : typeof v === 'number' ? [v, v] : [v[0], v[1]];
  if (!p.every((e) => Number.isInteger(e) && e >= min))
    throw new ShapeError(`${op}: ${name} must be integers >= ${min}, got ${JSON.stringify(v)}`);
  return p;
}

/** Validates shapes and options; returns the kernel geometry. */
export function conv2dGeometry(
  x: readonly number[],
  w: readonly number[],
  bias: readonly number[] | null,
  opts: Conv2dOptions = {},
): Conv2dGeometry {
  const op = 'conv2d';
  const [sy, sx] = pair(op, 'stride', opts.stride, 1, 1);
  const [py, px] = pair(op, 'padding', opts.padding, 0, 0);
  const [dly, dlx] = pair(op, 'dilation', opts.dilation, 1, 1);
  const groups = opts.groups ?? 1;
  if (x.length !== 4) throw new ShapeError(`${op}: input must be NCHW (rank 4), got shape ${fmt(x)}`);
  if (w.length !== 4)
    throw new ShapeError(`${op}: weight must be (Cout, Cin/groups, kh, kw) (rank 4), got shape ${fmt(w)}`);
  const [N, Cin, H, W] = x as [number, number, number, number];
  const [Cout, CinG, kh, kw] = w as [number, number, number, number];
  if (!Number.isInteger(groups) || groups < 1)
    throw new ShapeError(`${op}: groups must be a positive integer, got ${groups}`);
  if (Cin % groups !== 0 || Cout % groups !== 0)
    throw new ShapeError(
      `${op}: groups ${groups} must divide input channels and output channels (input ${fmt(x)}, weight ${fmt(w)})`,
    );
  if (CinG * groups !== Cin)
    throw new ShapeError(
      `${op}: input ${fmt(x)} has ${Cin} channels but weight ${fmt(w)} expects ${CinG * groups} (Cin/groups = ${CinG}, groups ${groups})`,
    );
  if (Cout === 0 || CinG === 0 || kh === 0 || kw === 0)
    throw new ShapeError(`${op}: weight ${fmt(w)} has an empty dimension`);
  if (bias && (bias.length !== 1 || bias[0] !== Cout))
    throw new ShapeError(`${op}: bias has shape ${fmt(bias)}, expected [${Cout}] for weight ${fmt(w)}`);
  const ekh = dly * (kh - 1) + 1;
  const ekw = dlx * (kw - 1) + 1;
  if (ekh > H + 2 * py || ekw > W + 2 * px)
    throw new ShapeError(
      `${op}: kernel ${kh}x${kw} (dilation ${dly}x${dlx}) is larger than the padded input ` +
        `${H + 2 * py}x${W + 2 * px} (input ${fmt(x)}, weight ${fmt(w)}, padding ${py}x${px})`,
    );
  const Ho = convOutSize(H, kh, sy, py, dly);
  const Wo = convOutSize(W, kw, sx, px, dlx);
  return { N, Cin, H, W, Cout, kh, kw, sy, sx, py, px, dy: dly, dx: dlx, groups, Ho, Wo };
}

/**
 * 2-D convolution of x (N, Cin, H, W) with weight (Cout, Cin/groups, kh, kw) and an optional
 * bias (Cout): y (N, Cout, Ho, Wo). Stride, padding and dilation take a number or [h, w].
 */
export function conv2d(x: Tensor, weight: Tensor, bias: Tensor | null, opts: Conv2dOptions = {}): Tensor {
  if (x.dtype !== 'f32' || weight.dtype !== 'f32' || (bias && bias.dtype !== 'f32'))
    throw new ShapeError(`conv2d: expects f32 tensors (input ${x.describe()}, weight ${weight.describe()})`);
  const g = conv2dGeometry(x.shape, weight.shape, bias ? bias.shape : null, opts);
  const y = Tensor.empty(x.gpu, [g.N, g.Cout, g.Ho, g.Wo]);
  if (y.size > 0) runConv2dForward(x, weight, bias, y, g);
  const inputs = bias ? [x, weight, bias] : [x, weight];
  return record('conv2d', y, inputs, [x, weight], (grad, needs) => {
    // The tape's retained handles, not x/weight themselves: the caller may have disposed those.
    const [xs, ws] = (y.gradFn as GradNode).saved as [Tensor, Tensor];
    let dx: Tensor | null = null;
    let dw: Tensor | null = null;
    let db: Tensor | null = null;
    if (needs[0]) {
      dx = Tensor.empty(grad.gpu, xs.shape);
      if (dx.size > 0) runConv2dInputGrad(grad, ws, dx, g);
    }
    if (needs[1]) {
      dw = Tensor.empty(grad.gpu, ws.shape);
      if (grad.size > 0) runConv2dWeightGrad(xs, grad, dw, g);
      else grad.gpu.clear(dw.buffer, 0, dw.bytes);
    }
    if (bias && needs[2]) {
      db = Tensor.empty(grad.gpu, [g.Cout]);
      if (grad.size > 0) runConv2dBiasGrad(grad, db, g);
      else grad.gpu.clear(db.buffer, 0, db.bytes);
    }
    return bias ? [dx, dw, db] : [dx, dw];
  });
}
