/**
 * Spatial ops on NCHW tensors, each with its backward rule: ConvTranspose2d (padding 0, the SAM
 * decoder's output upscaling), MaxPool2d (the ResNet stem) and bilinear resize with
 * align_corners=False (mask upsampling, positional-embedding and relative-position resizing).
 */
import { record, type GradNode } from '../autograd/tape.js';
import {
  convTOutSize,
  runConvTranspose2d,
  runConvTranspose2dDb,
  runConvTranspose2dDw,
  runConvTranspose2dDx,
  type ConvTGeom,
} from '../kernels/conv_transpose2d.js';
import { poolOutSize, runMaxPool2d, runMaxPool2dBackward, type PoolGeom } from '../kernels/maxpool.js';
import { runResizeBilinear, runResizeBilinearBackward, type ResizeGeom } from '../kernels/resize.js';
import { Tensor } from '../tensor/tensor.js';
import { fmt, ShapeError } from '../util/shape.js';

function checkF32(op: string, what: string, t: Tensor): void {
  if (t.dtype !== 'f32') throw new ShapeError(`${op}: ${what} ${fmt(t.shape)} must be f32, got ${t.dtype}`);
}

function checkNchw(op: string, what: string, t: Tensor): void {
  checkF32(op, what, t);
  if (t.shape.length !== 4)
    throw new ShapeError(`${op}: ${what} must be NCHW (rank 4), got shape ${fmt(t.shape)}`);
}

function pair(
  op: string,
  what: string,
  v: number | readonly [number, number],
  min: number,
): [number, number] {
  const p: [number, number] = typeof v === 'number' ? [v, v] : [v[0], v[1]];
  if (!p.every((k) => Number.isInteger(k) && k >= min))
    throw new ShapeError(`${op}: ${what} must be integers >= ${min}, got ${JSON.stringify(v)}`);
  return p;
}

/**
 * The handles the tape retained for `out`'s backward rule (the `save` list of record()). Rules read
 * these rather than the forward's own handles, which the caller may have disposed meanwhile.
 */
function savedFor(out: Tensor, op: string): readonly Tensor[] {
  const node = out.gradFn as GradNode | null;
  if (!node || node.saved.length === 0) throw new Error(`${op}: backward called without saved tensors`);
  return node.saved;
}

// ------------------------------------------------------------------ ConvTranspose2d

export interface ConvTranspose2dOptions {
  stride: number;
  /** Only 0 is supported (as the SAM decoder uses). */
  padding?: number;
}

/**
 * PyTorch ConvTranspose2d with padding 0 and output_padding 0: x (N, Cin, H, W), weight
 * (Cin, Cout, KH, KW), bias (Cout) or null -> (N, Cout, (H-1)*s + KH, (W-1)*s + KW).
 */
export function convTranspose2d(
  x: Tensor,
  weight: Tensor,
  bias: Tensor | null,
  opts: ConvTranspose2dOptions,
): Tensor {
  const op = 'convTranspose2d';
  checkNchw(op, 'input', x);
  checkF32(op, 'weight', weight);
  if (weight.shape.length !== 4)
    throw new ShapeError(`${op}: weight must be (Cin, Cout, kH, kW), got shape ${fmt(weight.shape)}`);
  const [N, Cin, H, W] = x.shape as [number, number, number, number];
  const [wCin, Cout, KH, KW] = weight.shape as [number, number, number, number];
  if (wCin !== Cin)
    throw new ShapeError(
      `${op}: input ${fmt(x.shape)} has ${Cin} channels but weight ${fmt(weight.shape)} expects ${wCin}`,
    );
  if (bias) {
    checkF32(op, 'bias', bias);
    if (bias.shape.length !== 1 || bias.shape[0] !== Cout)
      throw new ShapeError(
        `${op}: bias has shape ${fmt(bias.shape)}, expected [${Cout}] for weight ${fmt(weight.shape)}`,
      );
  }
  const S = opts.stride;
  if (!Number.isInteger(S) || S < 1) throw new ShapeError(`${op}: stride must be an integer >= 1, got ${S}`);
  if ((opts.padding ?? 0) !== 0)
    throw new ShapeError(`${op}: only padding 0 is supported, got ${opts.padding}`);
  if (KH < 1 || KW < 1 || Cout < 1 || Cin < 1 || H < 1 || W < 1)
    throw new ShapeError(`${op}: empty input ${fmt(x.shape)} or weight ${fmt(weight.shape)}`);
  const g: ConvTGeom = { N, Cin, H, W, Cout, KH, KW, S };
  const [Ho, Wo] = convTOutSize(g);
  const y = Tensor.empty(x.gpu, [N, Cout, Ho, Wo]);
  runConvTranspose2d(x, weight, bias, y, g);
  const inputs = bias ? [x, weight, bias] : [x, weight];
  return record(op, y, inputs, [x, weight], (dy, needs) => {
    const [xs, ws] = savedFor(y, op) as [Tensor, Tensor];
    let dx: Tensor | null = null;
    let dw: Tensor | null = null;
    let db: Tensor | null = null;
    if (needs[0]) {
      dx = Tensor.empty(dy.gpu, [N, Cin, H, W]);
      runConvTranspose2dDx(dy, ws, dx, g);
    }
    if (needs[1]) {
      dw = Tensor.empty(dy.gpu, [Cin, Cout, KH, KW]);
      runConvTranspose2dDw(xs, dy, dw, g);
    }
    if (bias && needs[2]) {
      db = Tensor.empty(dy.gpu, [Cout]);
      runConvTranspose2dDb(dy, db, g);
    }
    return bias ? [dx, dw, db] : [dx, dw];
  });
}

// ------------------------------------------------------------------ MaxPool2d

export interface MaxPool2dOptions {
  kernel: number | readonly [number, number];
  /** Defaults to the kernel size. */
  stride?: number | readonly [number, number];
  padding?: number | readonly [number, number];
}

/**
 * PyTorch MaxPool2d (dilation 1, ceil_mode False): padding counts as -inf, the gradient goes to the
 * first maximum of each window in row-major scan order.
 */
export function maxPool2d(x: Tensor, opts: MaxPool2dOptions): Tensor {
  const op = 'maxPool2d';
  checkNchw(op, 'input', x);
  const [KH, KW] = pair(op, 'kernel', opts.kernel, 1);
  const [SH, SW] = pair(op, 'stride', opts.stride ?? opts.kernel, 1);
  const [PH, PW] = pair(op, 'padding', opts.padding ?? 0, 0);
  if (2 * PH > KH || 2 * PW > KW)
    throw new ShapeError(`${op}: padding [${PH}, ${PW}] must be at most half the kernel [${KH}, ${KW}]`);
  const [N, C, H, W] = x.shape as [number, number, number, number];
  const g: PoolGeom = { P: N * C, H, W, KH, KW, SH, SW, PH, PW };
  const [Ho, Wo] = poolOutSize(g);
  if (Ho < 1 || Wo < 1)
    throw new ShapeError(
      `${op}: input ${fmt(x.shape)} is smaller than the kernel [${KH}, ${KW}] with padding [${PH}, ${PW}]`,
    );
  const y = Tensor.empty(x.gpu, [N, C, Ho, Wo]);
  const idx = Tensor.empty(x.gpu, [N, C, Ho, Wo], 'i32');
  runMaxPool2d(x, y, idx, g);
  const out = record(op, y, [x], [idx], (dy) => {
    const dx = Tensor.empty(dy.gpu, [N, C, H, W]);
    runMaxPool2dBackward(dy, savedFor(y, op)[0]!, dx, g);
    return [dx];
  });
  idx.dispose();
  return out;
}

// ------------------------------------------------------------------ bilinear resize

/**
 * F.interpolate(x, size=[outH, outW], mode='bilinear', align_corners=False) (no antialias) on an
 * NCHW tensor; up- and down-sampling.
 */
export function interpolateBilinear(x: Tensor, size: readonly [number, number]): Tensor {
  const op = 'interpolateBilinear';
  checkNchw(op, 'input', x);
  const [Ho, Wo] = size;
  if (!Number.isInteger(Ho) || !Number.isInteger(Wo) || Ho < 1 || Wo < 1)
    throw new ShapeError(
      `${op}: output size must be positive integers, got [${Ho}, ${Wo}] for input ${fmt(x.shape)}`,
    );
  const [N, C, H, W] = x.shape as [number, number, number, number];
  if (H < 1 || W < 1) throw new ShapeError(`${op}: empty input ${fmt(x.shape)}`);
  const g: ResizeGeom = { P: N * C, H, W, Ho, Wo };
  const y = Tensor.empty(x.gpu, [N, C, Ho, Wo]);
  runResizeBilinear(x, y, g);
  return record(op, y, [x], [], (dy) => {
    const dx = Tensor.empty(dy.gpu, [N, C, H, W]);
    runResizeBilinearBackward(dy, dx, g);
    return [dx];
  });
}
