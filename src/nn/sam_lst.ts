/**
 * SAM-LST (spec §1, §5, §9): the frozen SAM ViT encoder and a trainable ResNet18 side network see
 * the same image; their (B, C, T, T) features are fused by a learnable sigmoid gate,
 * fused = g * e_sam + (1 - g) * e_cnn with g = sigmoid(sam.alpha), and decoded by SAM's mask
 * decoder without prompts into num_classes + 1 low-res logits, upsampled bilinearly to the input.
 *
 * Module tree and state_dict names are the oracle's (test/oracle/sam_lst_ref.py):
 *   sam.image_encoder.* / sam.prompt_encoder.* / sam.mask_decoder.*   official SAM names
 *   sam.alpha                                                          the raw gate parameter
 *   CNN_encoder.*                                                      torchvision resnet18 names
 * Trainable (set in the constructor, `setTrainable()`): sam.alpha, sam.mask_decoder.
 * output_upscaling.* and every CNN_encoder parameter (layer4 / fc never get a gradient).
 *
 * Loading: `loadCheckpoint` / `SamLST.fromCheckpoint` take a SAM-LST training checkpoint
 * ('module.' prefixes and the 'sam_encoder.' alias are handled by io/remap.ts); `loadOfficial`
 * takes the official SAM checkpoint (adapted to the input size like SAM-LST's load_from, io/adapt.ts)
 * and optionally torchvision's resnet18.
 */
import { noGrad } from '../autograd/tape.js';
import { affine, div, expandTo, mul, sigmoid, sub } from '../ops/elementwise.js';
import { gateAdd } from '../ops/gate.js';
import { interpolateBilinear } from '../ops/spatial.js';
import type { Gpu } from '../gpu/device.js';
import { adaptSamStateDict, DROPPED_SAM_KEYS } from '../io/adapt.js';
import { formatLoadReport, loadReport, remapCheckpoint, RemapError, type LoadReport } from '../io/remap.js';
import type { HostTensor } from '../tensor/host.js';
import { Tensor } from '../tensor/tensor.js';
import { Rng } from '../util/rng.js';
import { describeValue } from '../util/args.js';
import { fmt, ShapeError, type Shape } from '../util/shape.js';
import { tap, type Capture } from './capture.js';
import { SamLstConfig } from './config.js';
import { Layer, type InitRng } from './layers.js';
import { ResNet18 } from './resnet18.js';
import { ImageEncoderViT } from './sam/image_encoder.js';
import { MaskDecoder } from './sam/mask_decoder.js';
import { PromptEncoder } from './sam/prompt_encoder.js';

export interface SamLstOutput {
  /** (B, N, 4T, 4T): the loss is computed on these. */
  lowResLogits: Tensor;
  /** (B, N, S, S): bilinear (align_corners=False) upsampling of lowResLogits. */
  masks: Tensor;
  /** (B, N): IoU head output (unused by loss and inference; computed without gradient). */
  iouPred: Tensor;
}

export interface SamLstOptions {
  /** Seed of the default initialisation (default 0). */
  seed?: number;
  /**
   * 'default': PyTorch's default layer initialisation from the seeded Rng; 'none': parameters start
   * at zero (norm weights at one) — only for models whose every parameter a checkpoint overwrites.
   */
  init?: 'default' | 'none';
}

/** SAM with the LST gate: image_encoder, prompt_encoder, mask_decoder, alpha. */
export class Sam extends Layer {
  readonly image_encoder: ImageEncoderViT;
  readonly prompt_encoder: PromptEncoder;
  readonly mask_decoder: MaskDecoder;
  readonly alpha: Tensor;
  private readonly norm: { mean: Tensor; std: Tensor } | null;

  constructor(
    gpu: Gpu,
    readonly cfg: SamLstConfig,
    rng: InitRng,
  ) {
    super(gpu);
    this.alpha = this.param('alpha', [1]);
    this.image_encoder = this.child('image_encoder', new ImageEncoderViT(gpu, cfg, rng));
    this.prompt_encoder = this.child('prompt_encoder', new PromptEncoder(gpu, cfg, rng));
    this.mask_decoder = this.child('mask_decoder', new MaskDecoder(gpu, cfg, rng));
    const identity = cfg.pixelMean.every((m) => m === 0) && cfg.pixelStd.every((s) => s === 1);
    const c = cfg.inChans;
    this.norm = identity
      ? null
      : {
          mean: Tensor.fromData(gpu, Float32Array.from(cfg.pixelMean), [1, c, 1, 1]).keep(),
          std: Tensor.fromData(gpu, Float32Array.from(cfg.pixelStd), [1, c, 1, 1]).keep(),
        };
  }

  protected override releaseExtra(): void {
    this.norm?.mean.dispose();
    this.norm?.std.dispose();
  }

  /** (x - pixel_mean) / pixel_std (SAM-LST: identity, so x itself is returned). */
  preprocess(x: Tensor): Tensor {
    if (!this.norm) return x;
    const d = sub(x, this.norm.mean);
    const y = div(d, this.norm.std);
    d.dispose();
    return y;
  }

  /** The frozen image embedding (B, C, T, T) of an image (B, inChans, S, S); no gradient. */
  embed(image: Tensor, cap?: Capture): Tensor {
    const x = this.preprocess(image);
    const e = this.image_encoder.forward(x, cap);
    if (x !== image) x.dispose();
    return e;
  }

  /** Gate, prompt-free decoder and upsampling on an image embedding and the side features. */
  decode(embedding: Tensor, cnnFeat: Tensor, cap?: Capture): SamLstOutput {
    let alpha = this.alpha;
    if (cap) {
      // act.gate = sigmoid(alpha); its gradient dLoss/dgate comes from dLoss/dalpha / (g (1 - g)).
      const g = noGrad(() => sigmoid(this.alpha));
      alpha = cap.tap('gate', this.alpha, {
        act: g,
        keepInput: true,
        gradTransform: (dAlpha) => {
          const s = cap.act('gate');
          const oneMinus = affine(s, -1, 1);
          const d = mul(s, oneMinus);
          const r = div(dAlpha, d);
          oneMinus.dispose();
          d.dispose();
          return r;
        },
      });
      g.dispose();
    }
    const fused = tap(cap, 'fused', gateAdd(alpha, embedding, cnnFeat));
    if (alpha !== this.alpha) alpha.dispose();
    const pe = this.prompt_encoder.densePe();
    const dense = this.prompt_encoder.noMaskDense();
    if (cap) {
      cap.tap('prompt.dense_pe', pe, { retainGrad: false, keepInput: true });
      const full = noGrad(() => expandTo(dense, pe.shape));
      cap.tap('prompt.dense_no_mask', full, { retainGrad: false });
      full.dispose();
    }
    const dec = this.mask_decoder.forward(fused, pe, dense, cap);
    fused.dispose();
    dense.dispose();
    const lowResLogits = tap(cap, 'low_res_logits', dec.lowResLogits);
    const iouPred = tap(cap, 'iou_pred', dec.iouPred);
    const S = this.cfg.imgSize;
    const masks = tap(cap, 'masks', interpolateBilinear(lowResLogits, [S, S]));
    return { lowResLogits, masks, iouPred };
  }
}

export class SamLST extends Layer {
  readonly sam: Sam;
  readonly CNN_encoder: ResNet18;
  readonly cfg: SamLstConfig;

  constructor(gpu: Gpu, cfg: SamLstConfig = SamLstConfig.vitB(), opts: SamLstOptions = {}) {
    super(gpu);
    this.cfg = cfg;
    const rng = (opts.init ?? 'default') === 'default' ? new Rng(opts.seed ?? 0) : null;
    this.sam = this.child('sam', new Sam(gpu, cfg, rng));
    this.CNN_encoder = this.child(
      'CNN_encoder',
      new ResNet18(
        gpu,
        {
          width: cfg.cnnWidth,
          fcOut: cfg.cnnFcOut,
          inChans: cfg.inChans,
          bnEps: cfg.bnEps,
          bnMomentum: cfg.bnMomentum,
        },
        rng,
      ),
    );
    this.setTrainable();
  }

  /**
   * SAM-LST's trainable set: in `sam` only names containing 'alpha' or 'output_upscaling'; every
   * CNN_encoder parameter. Returns the trainable names (state_dict order).
   */
  setTrainable(): string[] {
    for (const [n, p] of this.sam.namedParameters())
      p.requiresGrad = n.includes('alpha') || n.includes('output_upscaling');
    this.CNN_encoder.requiresGrad(true);
    return this.trainableParameters().map(([n]) => n);
  }

  private checkImage(where: string, image: Tensor): void {
    const { inChans: C, imgSize: S, patchSize: P } = this.cfg;
    const want = `(B, ${C}, ${S}, ${S})`;
    if (!(image instanceof Tensor))
      throw new ShapeError(`SamLST.${where}: image must be a Tensor ${want}, got ${describeValue(image)}`);
    if (image.dtype !== 'f32' || image.shape.length !== 4)
      throw new ShapeError(
        `SamLST.${where}: image must be an f32 NCHW tensor ${want}, got ${image.dtype}${fmt(image.shape)}`,
      );
    const [, c, h, w] = image.shape as [number, number, number, number];
    if (P !== 16)
      throw new ShapeError(
        `SamLST.${where}: patch size ${P} differs from the ResNet output stride 16, so the SAM and CNN ` +
          `features cannot be fused (this configuration only loads checkpoints)`,
      );
    if (c !== C)
      throw new ShapeError(
        `SamLST.${where}: image ${fmt(image.shape)} has ${c} channels, expected ${C}: ${want}`,
      );
    if (h % P !== 0 || w % P !== 0)
      throw new ShapeError(
        `SamLST.${where}: image ${fmt(image.shape)} is ${h}x${w}, not a multiple of the patch size ${P}; expected ${want}`,
      );
    if (h !== S || w !== S)
      throw new ShapeError(
        `SamLST.${where}: image ${fmt(image.shape)} is ${h}x${w} but the model is built for img_size ${S}: ${want}`,
      );
  }

  /** image (B, inChans, S, S) -> outputs; `cap` records the intermediates named like the fixtures. */
  forward(image: Tensor, cap?: Capture): SamLstOutput {
    this.checkImage('forward', image);
    const feat = this.CNN_encoder.forward(image, cap);
    const emb = this.sam.embed(image, cap);
    const out = this.sam.decode(emb, feat, cap);
    emb.dispose();
    feat.dispose();
    return out;
  }

  /** The frozen SAM embedding (B, promptDim, T, T) of an image, e.g. to cache across epochs. */
  encode(image: Tensor): Tensor {
    this.checkImage('encode', image);
    return this.sam.embed(image);
  }

  /**
   * The forward pass with a precomputed frozen embedding (B, promptDim, T, T) of the same images
   * (from `encode`); the CNN still runs on the image.
   */
  forwardFromEmbedding(image: Tensor, embedding: Tensor, cap?: Capture): SamLstOutput {
    this.checkImage('forwardFromEmbedding', image);
    const { promptDim: c, grid: T } = this.cfg;
    const want: Shape = [image.shape[0]!, c, T, T];
    if (embedding.shape.length !== 4 || embedding.shape.some((d, i) => d !== want[i]))
      throw new ShapeError(
        `SamLST.forwardFromEmbedding: embedding ${fmt(embedding.shape)} must be ${fmt(want)} for image ${fmt(image.shape)}`,
      );
    const feat = this.CNN_encoder.forward(image, cap);
    const out = this.sam.decode(embedding, feat, cap);
    feat.dispose();
    return out;
  }

  /** Loads a SAM-LST checkpoint (trainer state_dict; 'module.' and 'sam_encoder.' handled), strictly. */
  loadCheckpoint(ckpt: ReadonlyMap<string, HostTensor>, source = 'SAM-LST checkpoint'): LoadReport {
    const r = remapCheckpoint(ckpt, 'auto', source);
    if (r.kind !== 'sam-lst')
      throw new RemapError(
        `${source} looks like a ${r.kind} checkpoint, not a SAM-LST one; use loadOfficial(samDict, resnetDict)`,
      );
    return this.loadStateDict(r.map, { strict: true, source });
  }

  /** A model for `cfg` with the weights of a SAM-LST checkpoint (strict). */
  static fromCheckpoint(
    gpu: Gpu,
    cfg: SamLstConfig,
    ckpt: ReadonlyMap<string, HostTensor>,
    source?: string,
  ): SamLST {
    const m = new SamLST(gpu, cfg, { init: 'none' });
    try {
      m.loadCheckpoint(ckpt, source);
    } catch (e) {
      m.dispose();
      throw e;
    }
    return m;
  }

  /**
   * SAM-LST's initialisation from the official checkpoints (the oracle's load_official):
   * the official SAM state_dict is adapted to this input size (pos_embed and global rel-pos tables
   * resized) and loaded into `sam`, except mask_tokens / output_hypernetworks_mlps /
   * iou_prediction_head, which keep their fresh random init, and sam.alpha (stays 0); the
   * torchvision resnet18 state_dict, when given, is loaded strictly into CNN_encoder.
   * Missing or wrong-shape SAM keys throw; official keys the model lacks are ignored (and listed).
   */
  loadOfficial(
    samDict: ReadonlyMap<string, HostTensor>,
    resnetDict?: ReadonlyMap<string, HostTensor>,
    sources: { sam?: string; resnet?: string } = {},
  ): { sam: LoadReport; resnet: LoadReport | null; dropped: string[]; resized: string[] } {
    const samSrc = sources.sam ?? 'SAM checkpoint';
    const remapped = remapCheckpoint(samDict, 'sam-official', samSrc);
    const adapted = adaptSamStateDict(
      remapped.map,
      {
        imgSize: this.cfg.imgSize,
        patchSize: this.cfg.patchSize,
        globalAttnIndexes: this.cfg.globalAttnIndexes,
      },
      { prefix: 'sam.', source: samSrc },
    );
    const keepFresh = (k: string) => k === 'sam.alpha' || DROPPED_SAM_KEYS.some((s) => k.includes(s));
    const expected = new Map(
      [...this.stateDict()]
        .filter(([k]) => k.startsWith('sam.') && !keepFresh(k))
        .map(([k, t]) => [k, t.shape]),
    );
    const report = loadReport(adapted.map, expected);
    if (report.missing.length || report.wrongShape.length)
      throw new RemapError(`${samSrc} does not match the model:\n${formatLoadReport(report)}`);
    const use = new Map([...adapted.map].filter(([k]) => expected.has(k)));
    this.loadStateDict(use, { strict: false, source: samSrc });
    let resnet: LoadReport | null = null;
    if (resnetDict) {
      const resSrc = sources.resnet ?? 'ResNet18 checkpoint';
      const r = remapCheckpoint(resnetDict, 'resnet18', resSrc);
      const inner = new Map([...r.map].map(([k, v]) => [k.slice('CNN_encoder.'.length), v]));
      resnet = this.CNN_encoder.loadStateDict(inner, { strict: true, source: resSrc });
    }
    return { sam: report, resnet, dropped: adapted.dropped, resized: adapted.resized };
  }
}
