/**
 * The model of a training run: built from a TrainConfig (seeded init, optional official SAM /
 * torchvision ResNet18 weights), the trainable set of each ablation variant, and the forward pass
 * each variant trains and evaluates:
 *   lst          SAM-LST: fused = g·e_sam + (1−g)·e_cnn, g = sigmoid(sam.alpha) learnable (spec §5);
 *                trains sam.alpha, output_upscaling and the ResNet (spec §9)
 *   cnn-decoder  side network only: the gate is fixed to the CNN (fused = e_cnn), the SAM encoder
 *                is never run; trains output_upscaling and the ResNet (alpha frozen)
 *   sam-decoder  no side network: fused = e_sam (frozen embedding only); only output_upscaling
 *                trains (alpha and the ResNet frozen)
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { basename } from 'node:path';
import type { Gpu } from '../gpu/device.js';
import { readPth } from '../io/pth.js';
import { interpolateBilinear } from '../ops/spatial.js';
import { SamLST, type SamLstOutput } from '../nn/sam_lst.js';
import type { Tensor } from '../tensor/tensor.js';
import { modelConfig, type TrainConfig, type Variant } from './config.js';

/** Whether the variant runs the frozen SAM image encoder. */
export function usesEncoder(v: Variant): boolean {
  return v !== 'cnn-decoder';
}

/** Whether the variant runs the ResNet side network. */
export function usesCnn(v: Variant): boolean {
  return v !== 'sam-decoder';
}

/** Sets requiresGrad for the variant; returns the trainable parameter names. */
export function setVariantTrainable(model: SamLST, v: Variant): string[] {
  model.setTrainable();
  if (v !== 'lst') model.sam.alpha.requiresGrad = false;
  if (v === 'sam-decoder') model.CNN_encoder.requiresGrad(false);
  return model.trainableParameters().map(([n]) => n);
}

export interface BuiltModel {
  model: SamLST;
  /** What a person should know about the weights (printed by the loop). */
  notes: string[];
}

/**
 * Reads a weights file given on the command line. Release files whose name ends in
 * `-<hex>.pth` (torchvision's convention, e.g. resnet18-f37072fd.pth) carry the first hex digits
 * of their sha256: a file that does not match is refused as corrupt or mislabelled.
 */
export function readWeights(path: string): ReturnType<typeof readPth> {
  let bytes: Uint8Array;
  try {
    bytes = new Uint8Array(readFileSync(path));
  } catch (e) {
    throw new Error(`cannot read ${path}: ${(e as Error).message}`, { cause: e });
  }
  const m = /-([0-9a-f]{8,64})\.(pth|pt)$/.exec(basename(path));
  if (m) {
    const digest = createHash('sha256').update(bytes).digest('hex');
    if (!digest.startsWith(m[1]!))
      throw new Error(
        `${path}: sha256 ${digest.slice(0, 16)}... does not start with ${m[1]} as its name says; ` +
          'the file is corrupt, truncated or not the release it is named after',
      );
  }
  try {
    return readPth(bytes, path);
  } catch (e) {
    throw new Error(`cannot load ${path}: ${(e as Error).message}`, { cause: e });
  }
}

/** The run's model: seeded default init, then the official checkpoints when configured. */
export function buildModel(gpu: Gpu, c: TrainConfig): BuiltModel {
  const cfg = modelConfig(c);
  const model = new SamLST(gpu, cfg, { seed: c.seed });
  const notes: string[] = [];
  try {
    if (c.samCheckpoint) {
      const sam = readWeights(c.samCheckpoint);
      const res = c.resnetCheckpoint ? readWeights(c.resnetCheckpoint) : undefined;
      const r = model.loadOfficial(sam, res, {
        sam: c.samCheckpoint,
        resnet: c.resnetCheckpoint ?? undefined,
      });
      notes.push(
        `SAM weights: ${c.samCheckpoint} (${r.sam.matched} tensors; resized for input ${cfg.imgSize}: ` +
          `${r.resized.length ? r.resized.length : 'none'}; mask tokens, hypernetwork MLPs and IoU head keep ` +
          'their random init and stay frozen, as in SAM-LST)',
      );
    } else {
      notes.push(
        'SAM weights: RANDOM (no --sam-checkpoint given): the frozen encoder and decoder transformer are ' +
          'seeded random initialisations',
      );
      if (c.resnetCheckpoint) {
        const p = c.resnetCheckpoint;
        const res = readWeights(p);
        const inner = new Map([...res].map(([k, v]) => [k.replace(/^module\./, ''), v]));
        model.CNN_encoder.loadStateDict(inner, { strict: true, source: p });
      }
    }
    notes.push(
      c.resnetCheckpoint
        ? `ResNet18 weights: ${c.resnetCheckpoint}`
        : 'ResNet18 weights: random (no --resnet-checkpoint given)',
    );
    setVariantTrainable(model, c.variant);
  } catch (e) {
    model.dispose();
    throw e;
  }
  return { model, notes };
}

/**
 * The variant's forward pass. `embedding` is the frozen SAM embedding (B, C, T, T) of `image`
 * (required for lst / sam-decoder; the encoder is never run here).
 */
export function forwardVariant(
  model: SamLST,
  v: Variant,
  image: Tensor,
  embedding: Tensor | null,
): SamLstOutput {
  if (v === 'lst') {
    if (!embedding) throw new Error('forwardVariant: the lst variant needs the SAM embedding');
    return model.forwardFromEmbedding(image, embedding);
  }
  let fused: Tensor;
  let own = false;
  if (v === 'cnn-decoder') {
    fused = model.CNN_encoder.forward(image);
    own = true;
  } else {
    if (!embedding) throw new Error('forwardVariant: the sam-decoder variant needs the SAM embedding');
    fused = embedding;
  }
  const sam = model.sam;
  const pe = sam.prompt_encoder.densePe();
  const dense = sam.prompt_encoder.noMaskDense();
  const dec = sam.mask_decoder.forward(fused, pe, dense);
  dense.dispose();
  if (own) fused.dispose();
  const S = model.cfg.imgSize;
  const masks = interpolateBilinear(dec.lowResLogits, [S, S]);
  return { lowResLogits: dec.lowResLogits, masks, iouPred: dec.iouPred };
}
