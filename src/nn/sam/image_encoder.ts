/**
 * SAM's ViT image encoder (spec §2) with the official state_dict names: patch_embed.proj,
 * pos_embed (1, T, T, C), blocks.{i}.{norm1, attn.{qkv, proj, rel_pos_h, rel_pos_w}, norm2,
 * mlp.{lin1, lin2}}, neck.{0..3}. Tokens are NHWC inside the encoder; the output is NCHW
 * (B, promptDim, T, T).
 *
 * SAM-LST freezes the encoder, so `forward` always runs under noGrad: nothing is recorded, and
 * each block's input and intermediates are freed as soon as the next value exists, so the peak
 * memory is the weights plus about one block's working set (plus whatever a Capture keeps).
 */
import { noGrad } from '../../autograd/tape.js';
import { vitAttention } from '../../ops/attention.js';
import { add } from '../../ops/elementwise.js';
import { permute } from '../../ops/reshape.js';
import type { Gpu } from '../../gpu/device.js';
import type { Tensor } from '../../tensor/tensor.js';
import { fmt, ShapeError } from '../../util/shape.js';
import { tap, type Capture } from '../capture.js';
import type { SamLstConfig } from '../config.js';
import {
  Conv2d,
  Layer,
  LayerNorm,
  LayerNorm2d,
  Linear,
  MLPBlock,
  ModuleList,
  type InitRng,
} from '../layers.js';

/** ViT attention with decomposed relative positions (window > 0: windowed; 0: global over the grid). */
export class ViTAttention extends Layer {
  readonly qkv: Linear;
  readonly proj: Linear;
  readonly rel_pos_h: Tensor;
  readonly rel_pos_w: Tensor;
  constructor(
    gpu: Gpu,
    dim: number,
    readonly heads: number,
    /** Side of the attended grid: the window, or the full token grid for global blocks. */
    readonly size: number,
    readonly window: number,
    rng: InitRng,
  ) {
    super(gpu);
    const hd = dim / heads;
    this.qkv = this.child('qkv', new Linear(gpu, dim, 3 * dim, rng));
    this.proj = this.child('proj', new Linear(gpu, dim, dim, rng));
    // SAM initialises the tables to zero.
    this.rel_pos_h = this.param('rel_pos_h', [2 * size - 1, hd]);
    this.rel_pos_w = this.param('rel_pos_w', [2 * size - 1, hd]);
  }

  /** x (B, H, W, C) -> (B, H, W, C); windowing, padding and merging happen inside vitAttention. */
  forward(x: Tensor): Tensor {
    return vitAttention(
      x,
      {
        qkvWeight: this.qkv.weight,
        qkvBias: this.qkv.bias!,
        projWeight: this.proj.weight,
        projBias: this.proj.bias!,
        relPosH: this.rel_pos_h,
        relPosW: this.rel_pos_w,
      },
      { heads: this.heads, window: this.window },
    );
  }
}

export class ViTBlock extends Layer {
  readonly norm1: LayerNorm;
  readonly attn: ViTAttention;
  readonly norm2: LayerNorm;
  readonly mlp: MLPBlock;
  constructor(
    gpu: Gpu,
    cfg: SamLstConfig,
    readonly window: number,
    rng: InitRng,
  ) {
    super(gpu);
    const d = cfg.encDim;
    this.norm1 = this.child('norm1', new LayerNorm(gpu, d, cfg.encLnEps));
    this.attn = this.child(
      'attn',
      new ViTAttention(gpu, d, cfg.encHeads, window === 0 ? cfg.grid : window, window, rng),
    );
    this.norm2 = this.child('norm2', new LayerNorm(gpu, d, cfg.encLnEps));
    this.mlp = this.child('mlp', new MLPBlock(gpu, d, Math.round(d * cfg.encMlpRatio), 'gelu', rng));
  }

  /** x + attn(norm1(x)), then + mlp(norm2(.)). Frees its intermediates (not x). */
  forward(x: Tensor): Tensor {
    const h = this.norm1.forward(x);
    const a = this.attn.forward(h);
    h.dispose();
    const x1 = add(x, a);
    a.dispose();
    const n2 = this.norm2.forward(x1);
    const m = this.mlp.forward(n2);
    n2.dispose();
    const y = add(x1, m);
    x1.dispose();
    m.dispose();
    return y;
  }
}

export class PatchEmbed extends Layer {
  readonly proj: Conv2d;
  constructor(gpu: Gpu, cfg: SamLstConfig, rng: InitRng) {
    super(gpu);
    const p = cfg.patchSize;
    this.proj = this.child('proj', new Conv2d(gpu, cfg.inChans, cfg.encDim, p, rng, { stride: p }));
  }

  /** (B, Cin, S, S) NCHW -> (B, T, T, C) NHWC. */
  forward(x: Tensor): Tensor {
    const y = this.proj.forward(x);
    const t = permute(y, [0, 2, 3, 1]);
    y.dispose();
    return t;
  }
}

export class ImageEncoderViT extends Layer {
  readonly patch_embed: PatchEmbed;
  readonly pos_embed: Tensor;
  readonly blocks: ModuleList<ViTBlock>;
  readonly neck: ModuleList<Conv2d | LayerNorm2d>;

  constructor(
    gpu: Gpu,
    readonly cfg: SamLstConfig,
    rng: InitRng,
  ) {
    super(gpu);
    const T = cfg.grid;
    this.pos_embed = this.param('pos_embed', [1, T, T, cfg.encDim]);
    this.patch_embed = this.child('patch_embed', new PatchEmbed(gpu, cfg, rng));
    const global = new Set(cfg.globalAttnIndexes);
    this.blocks = this.child(
      'blocks',
      new ModuleList(
        gpu,
        Array.from(
          { length: cfg.encDepth },
          (_, i) => new ViTBlock(gpu, cfg, global.has(i) ? 0 : cfg.windowSize, rng),
        ),
      ),
    );
    const c = cfg.promptDim;
    this.neck = this.child(
      'neck',
      new ModuleList<Conv2d | LayerNorm2d>(gpu, [
        new Conv2d(gpu, cfg.encDim, c, 1, rng, { bias: false }),
        new LayerNorm2d(gpu, c, 1e-6),
        new Conv2d(gpu, c, c, 3, rng, { padding: 1, bias: false }),
        new LayerNorm2d(gpu, c, 1e-6),
      ]),
    );
  }

  /**
   * image (B, inChans, S, S), S = cfg.imgSize -> embedding (B, promptDim, T, T). Runs without
   * gradient recording (frozen); the result is a constant for the tape.
   */
  forward(x: Tensor, cap?: Capture): Tensor {
    const { inChans: C, imgSize: S, patchSize: P } = this.cfg;
    if (x.shape.length !== 4 || x.shape[1] !== C || x.shape[2] !== S || x.shape[3] !== S)
      throw new ShapeError(
        `ImageEncoderViT: input ${fmt(x.shape)} must be (B, ${C}, ${S}, ${S}) ` +
          `(img_size ${S} = ${S / P} patches of ${P})`,
      );
    return noGrad(() => {
      const pe = tap(cap, 'enc.patch_embed', this.patch_embed.forward(x));
      let h = tap(cap, 'enc.pos_added', add(pe, this.pos_embed));
      pe.dispose();
      this.blocks.items.forEach((blk, i) => {
        const y = blk!.forward(h);
        h.dispose();
        h = tap(cap, `enc.block${i}`, y);
      });
      let y = permute(h, [0, 3, 1, 2]);
      h.dispose();
      for (let i = 0; i < 4; i++) {
        const m = this.neck.at(i);
        const next = m.forward(y);
        y.dispose();
        y = tap(cap, i < 3 ? `enc.neck.${i}` : 'enc.neck_out', next);
      }
      return y;
    });
  }
}
