/**
 * The SAM-LST training loss (spec §10): total = (1-lambda)*CE + lambda*Dice with lambda = 0.8,
 * CE = mean cross-entropy over all B*H*W pixels, Dice over all classes (background included) with
 * sums over the whole batch jointly, squared terms in the denominator and smooth 1e-5.
 * Forward and backward run on the GPU (kernels/loss.wgsl); nothing is read back.
 *
 * Label validation: labels given as host data (Int32Array / HostTensor) are checked on the host
 * before upload and a LabelRangeError is thrown at once. Labels already on the GPU are checked by
 * the kernel: any label outside [0, classes) makes total, ce, dice and the gradient NaN and sets
 * `invalidLabels` > 0; `assertValidLabels(result)` reads that count and throws LabelRangeError.
 */
import { record } from '../autograd/tape.js';
import {
  LOSS_MAX_CLASSES,
  lossPartialRows,
  lossRow,
  runLossFinal,
  runLossGrad,
  runLossStats,
  type LossGeometry,
} from '../kernels/loss.js';
import type { HostTensor } from '../tensor/host.js';
import { Tensor } from '../tensor/tensor.js';
import { fmt, sameShape, ShapeError } from '../util/shape.js';

export class LabelRangeError extends Error {
  override name = 'LabelRangeError';
}

export interface CeDiceOptions {
  /** Dice weight lambda (CE gets 1 - lambda). Default 0.8. */
  lambda?: number;
  /** Class count; must equal logits.shape[1] (default: that). At most 16. */
  classes?: number;
  /** Dice smoothing. Default 1e-5. */
  smooth?: number;
}

export interface CeDiceResult {
  /** (1-lambda)*CE + lambda*Dice, shape [1]; differentiable with respect to the logits. */
  total: Tensor;
  /** Mean cross-entropy, shape [1] (not differentiable). */
  ce: Tensor;
  /** Dice loss mean_c(1 - D_c), shape [1] (not differentiable). */
  dice: Tensor;
  /** Number of labels outside [0, classes), as f32, shape [1]. */
  invalidLabels: Tensor;
}

export type LabelInput = Tensor | HostTensor | Int32Array;

/**
 * ceDiceLoss(logits (B, C, H, W) f32, labels (B, H, W) i32 with values 0..C-1).
 */
export function ceDiceLoss(logits: Tensor, labels: LabelInput, opts: CeDiceOptions = {}): CeDiceResult {
  const op = 'ceDiceLoss';
  if (logits.shape.length !== 4 || logits.dtype !== 'f32')
    throw new ShapeError(`${op}: logits must be f32 (B, C, H, W), got ${logits.dtype}${fmt(logits.shape)}`);
  const [B, C, H, W] = logits.shape as [number, number, number, number];
  const classes = opts.classes ?? C;
  if (classes !== C)
    throw new ShapeError(`${op}: classes = ${classes} but logits ${fmt(logits.shape)} have ${C} channels`);
  if (C < 1 || C > LOSS_MAX_CLASSES)
    throw new ShapeError(
      `${op}: ${C} classes in logits ${fmt(logits.shape)}; supported 1..${LOSS_MAX_CLASSES}`,
    );
  const lambda = opts.lambda ?? 0.8;
  const smooth = opts.smooth ?? 1e-5;
  if (!(lambda >= 0 && lambda <= 1)) throw new RangeError(`${op}: lambda ${lambda} is outside [0, 1]`);
  if (!(smooth >= 0)) throw new RangeError(`${op}: smooth ${smooth} must be >= 0`);
  const want = [B, H, W];
  const gpu = logits.gpu;

  let lab: Tensor;
  let ownLabels = false;
  if (labels instanceof Tensor) {
    if (!sameShape(labels.shape, want) || labels.dtype !== 'i32')
      throw new ShapeError(
        `${op}: labels ${labels.dtype}${fmt(labels.shape)} must be i32 ${fmt(want)} for logits ${fmt(logits.shape)}`,
      );
    if (labels.requiresGrad) throw new ShapeError(`${op}: labels must not require grad`);
    lab = labels;
  } else {
    const data = labels instanceof Int32Array ? labels : labels.data;
    const shape = labels instanceof Int32Array ? want : labels.shape;
    if (!(data instanceof Int32Array) || !sameShape(shape, want) || data.length !== B * H * W)
      throw new ShapeError(
        `${op}: host labels ${data instanceof Int32Array ? 'i32' : 'f32'}${fmt(shape)} (${data.length} values) ` +
          `must be i32 ${fmt(want)} for logits ${fmt(logits.shape)}`,
      );
    checkHostLabels(data, classes, H, W);
    lab = Tensor.fromData(gpu, data, want);
    ownLabels = true;
  }

  const g: LossGeometry = { batch: B, classes, hw: H * W, lambda, smooth };
  const partials = Tensor.empty(gpu, [lossPartialRows(gpu, g) * lossRow(classes)]);
  runLossStats(logits, lab, partials, g);
  const total = Tensor.empty(gpu, [1]);
  const ce = Tensor.empty(gpu, [1]);
  const dice = Tensor.empty(gpu, [1]);
  const invalidLabels = Tensor.empty(gpu, [1]);
  const coef = Tensor.empty(gpu, [2 * classes]);
  runLossFinal(partials, { total, ce, dice, coef, nbad: invalidLabels }, g);
  partials.dispose();

  record(op, total, [logits, lab], [logits, lab, coef], (gup) => {
    const dx = Tensor.empty(gpu, logits.shape);
    runLossGrad(logits, lab, coef, gup, dx, g);
    return [dx, null];
  });
  coef.dispose();
  if (ownLabels) lab.dispose();
  return { total, ce, dice, invalidLabels };
}

function checkHostLabels(data: Int32Array, classes: number, H: number, W: number): void {
  for (let i = 0; i < data.length; i++) {
    const v = data[i]!;
    if (v < 0 || v >= classes) {
      const b = Math.floor(i / (H * W));
      const y = Math.floor((i % (H * W)) / W);
      const x = i % W;
      throw new LabelRangeError(`ceDiceLoss: label ${v} at [${b}, ${y}, ${x}] is outside [0, ${classes})`);
    }
  }
}

/** Reads `invalidLabels` and throws LabelRangeError when any GPU-side label was out of range. */
export async function assertValidLabels(r: CeDiceResult, classes?: number): Promise<void> {
  const n = (await r.invalidLabels.read())[0]!;
  if (n > 0)
    throw new LabelRangeError(
      `ceDiceLoss: ${n} label(s) outside [0, ${classes ?? 'classes'}); the loss and its gradient are NaN`,
    );
}
