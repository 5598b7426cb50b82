/**
 * SAM's mask decoder as SAM-LST uses it (spec §7): a two-way transformer (depth 2), the IoU token
 * and num_classes + 1 mask tokens, output_upscaling (ConvT, LayerNorm2d, GELU, ConvT, GELU), one
 * hypernetwork MLP per mask token and the IoU head. All mask tokens are returned (no multimask
 * slicing): low-res logits (B, N, 4T, 4T) with channel t = mask token t.
 * State_dict names are SAM's: transformer.layers.{l}.{self_attn, norm1, cross_attn_token_to_image,
 * norm2, mlp, norm3, norm4, cross_attn_image_to_token}, transformer.final_attn_token_to_image,
 * transformer.norm_final_attn, iou_token, mask_tokens, output_upscaling.{0,1,3},
 * output_hypernetworks_mlps.{t}.layers.{0,1,2}, iou_prediction_head.layers.{0..}.
 */
import { noGrad } from '../../autograd/tape.js';
import { decoderAttention } from '../../ops/attention.js';
import { add, expandTo, gelu } from '../../ops/elementwise.js';
import { matmul } from '../../ops/linear.js';
import { concat, permute, reshape, slice } from '../../ops/reshape.js';
import type { Gpu } from '../../gpu/device.js';
import { Tensor } from '../../tensor/tensor.js';
import { fmt, ShapeError } from '../../util/shape.js';
import { tap, type Capture } from '../capture.js';
import type { SamLstConfig } from '../config.js';
import {
  ConvTranspose2d,
  Embedding,
  Layer,
  LayerNorm,
  LayerNorm2d,
  Linear,
  MLP,
  MLPBlock,
  ModuleList,
  type InitRng,
} from '../layers.js';

/** SAM decoder Attention: q/k/v projections to dim / downsample, heads, out projection. */
export class DecAttention extends Layer {
  readonly q_proj: Linear;
  readonly k_proj: Linear;
  readonly v_proj: Linear;
  readonly out_proj: Linear;
  constructor(
    gpu: Gpu,
    dim: number,
    readonly heads: number,
    downsample: number,
    rng: InitRng,
  ) {
    super(gpu);
    const inner = dim / downsample;
    this.q_proj = this.child('q_proj', new Linear(gpu, dim, inner, rng));
    this.k_proj = this.child('k_proj', new Linear(gpu, dim, inner, rng));
    this.v_proj = this.child('v_proj', new Linear(gpu, dim, inner, rng));
    this.out_proj = this.child('out_proj', new Linear(gpu, inner, dim, rng));
  }

  forward(q: Tensor, k: Tensor, v: Tensor): Tensor {
    return decoderAttention(
      q,
      k,
      v,
      {
        qProjWeight: this.q_proj.weight,
        qProjBias: this.q_proj.bias!,
        kProjWeight: this.k_proj.weight,
        kProjBias: this.k_proj.bias!,
        vProjWeight: this.v_proj.weight,
        vProjBias: this.v_proj.bias!,
        outProjWeight: this.out_proj.weight,
        outProjBias: this.out_proj.bias!,
      },
      { heads: this.heads },
    );
  }
}

export class TwoWayAttentionBlock extends Layer {
  readonly self_attn: DecAttention;
  readonly norm1: LayerNorm;
  readonly cross_attn_token_to_image: DecAttention;
  readonly norm2: LayerNorm;
  readonly mlp: MLPBlock;
  readonly norm3: LayerNorm;
  readonly norm4: LayerNorm;
  readonly cross_attn_image_to_token: DecAttention;

  constructor(
    gpu: Gpu,
    cfg: SamLstConfig,
    /** The first layer applies self-attention without PE and without a residual. */
    readonly first: boolean,
    rng: InitRng,
  ) {
    super(gpu);
    const c = cfg.promptDim;
    const h = cfg.decHeads;
    const eps = cfg.decLnEps;
    this.self_attn = this.child('self_attn', new DecAttention(gpu, c, h, 1, rng));
    this.norm1 = this.child('norm1', new LayerNorm(gpu, c, eps));
    this.cross_attn_token_to_image = this.child(
      'cross_attn_token_to_image',
      new DecAttention(gpu, c, h, cfg.attnDownsample, rng),
    );
    this.norm2 = this.child('norm2', new LayerNorm(gpu, c, eps));
    this.mlp = this.child('mlp', new MLPBlock(gpu, c, cfg.decMlpDim, 'relu', rng));
    this.norm3 = this.child('norm3', new LayerNorm(gpu, c, eps));
    this.norm4 = this.child('norm4', new LayerNorm(gpu, c, eps));
    this.cross_attn_image_to_token = this.child(
      'cross_attn_image_to_token',
      new DecAttention(gpu, c, h, cfg.attnDownsample, rng),
    );
  }

  /**
   * queries (B, Nq, C), keys (B, HW, C), queryPe like queries, keyPe (1|B, HW, C). The returned
   * queries are captured under `names.queries` as soon as they exist (the image-to-token attention
   * uses them inside this block, and a captured gradient must include that use).
   */
  forward(
    queries: Tensor,
    keys: Tensor,
    queryPe: Tensor,
    keyPe: Tensor,
    cap?: Capture,
    names: { queries: readonly string[]; keys: readonly string[] } = { queries: [], keys: [] },
  ): [Tensor, Tensor] {
    const tmp: Tensor[] = [];
    const t = (x: Tensor) => (tmp.push(x), x);
    let q: Tensor;
    if (this.first) {
      q = t(this.self_attn.forward(queries, queries, queries));
    } else {
      const qp = t(add(queries, queryPe));
      q = t(add(queries, t(this.self_attn.forward(qp, qp, queries))));
    }
    q = t(this.norm1.forward(q));
    const kp = t(add(keys, keyPe));
    let qp = t(add(q, queryPe));
    q = t(this.norm2.forward(t(add(q, t(this.cross_attn_token_to_image.forward(qp, kp, keys))))));
    q = tap(cap, names.queries, this.norm3.forward(t(add(q, t(this.mlp.forward(q))))));
    qp = t(add(q, queryPe));
    const k = tap(
      cap,
      names.keys,
      this.norm4.forward(t(add(keys, t(this.cross_attn_image_to_token.forward(kp, qp, q))))),
    );
    for (const x of tmp) x.dispose();
    return [q, k];
  }
}

export class TwoWayTransformer extends Layer {
  readonly layers: ModuleList<TwoWayAttentionBlock>;
  readonly final_attn_token_to_image: DecAttention;
  readonly norm_final_attn: LayerNorm;

  constructor(gpu: Gpu, cfg: SamLstConfig, rng: InitRng) {
    super(gpu);
    const c = cfg.promptDim;
    this.layers = this.child(
      'layers',
      new ModuleList(
        gpu,
        Array.from({ length: cfg.decDepth }, (_, i) => new TwoWayAttentionBlock(gpu, cfg, i === 0, rng)),
      ),
    );
    this.final_attn_token_to_image = this.child(
      'final_attn_token_to_image',
      new DecAttention(gpu, c, cfg.decHeads, cfg.attnDownsample, rng),
    );
    this.norm_final_attn = this.child('norm_final_attn', new LayerNorm(gpu, c, cfg.decLnEps));
  }

  /**
   * src (B, C, h, w), pos (1, C, h, w), tokens (B, N, C) -> [queries (B, N, C), keys (B, hw, C)].
   * The last layer's keys are returned as they are, so they are captured as both
   * dec.layer{last}.keys and dec.src_out (one tensor in the oracle).
   */
  forward(src: Tensor, pos: Tensor, tokens: Tensor, cap?: Capture): [Tensor, Tensor] {
    const [B, C, h, w] = src.shape as [number, number, number, number];
    const s3 = reshape(src, [B, C, h * w]);
    let keys = permute(s3, [0, 2, 1]);
    const p3 = reshape(pos, [pos.shape[0]!, C, h * w]);
    const keyPe = permute(p3, [0, 2, 1]);
    s3.dispose();
    p3.dispose();
    let queries = tokens;
    const last = this.layers.length - 1;
    this.layers.items.forEach((layer, i) => {
      const names = {
        queries: [`dec.layer${i}.queries`],
        keys: i === last ? [`dec.layer${i}.keys`, 'dec.src_out'] : [`dec.layer${i}.keys`],
      };
      const [q, k] = layer!.forward(queries, keys, tokens, keyPe, cap, names);
      if (queries !== tokens) queries.dispose();
      keys.dispose();
      queries = q;
      keys = k;
    });
    const qp = add(queries, tokens);
    const kp = add(keys, keyPe);
    const att = this.final_attn_token_to_image.forward(qp, kp, keys);
    const s = add(queries, att);
    const out = this.norm_final_attn.forward(s);
    for (const x of [qp, kp, att, s, keyPe]) x.dispose();
    if (queries !== tokens) queries.dispose();
    return [out, keys];
  }
}

export interface DecoderOutput {
  /** (B, N, 4T, 4T), N = num_classes + 1. */
  lowResLogits: Tensor;
  /** (B, N); not differentiable (SAM-LST computes it but never uses it). */
  iouPred: Tensor;
}

/** x broadcast over a new leading batch of B (differentiable when x requires a gradient). */
function expandBatch(x: Tensor, B: number): Tensor {
  const shape = [B, ...x.shape.slice(1)];
  if (!x.requiresGrad) return expandTo(x, shape);
  const z = Tensor.zeros(x.gpu, [B, ...x.shape.slice(1).map(() => 1)]);
  const out = add(x, z);
  z.dispose();
  return out;
}

export class MaskDecoder extends Layer {
  readonly transformer: TwoWayTransformer;
  readonly iou_token: Embedding;
  readonly mask_tokens: Embedding;
  readonly output_upscaling: ModuleList<ConvTranspose2d | LayerNorm2d>;
  readonly output_hypernetworks_mlps: ModuleList<MLP>;
  readonly iou_prediction_head: MLP;
  readonly numMaskTokens: number;

  constructor(
    gpu: Gpu,
    readonly cfg: SamLstConfig,
    rng: InitRng,
  ) {
    super(gpu);
    const c = cfg.promptDim;
    const n = cfg.numMaskTokens;
    this.numMaskTokens = n;
    this.transformer = this.child('transformer', new TwoWayTransformer(gpu, cfg, rng));
    this.iou_token = this.child('iou_token', new Embedding(gpu, 1, c, rng));
    this.mask_tokens = this.child('mask_tokens', new Embedding(gpu, n, c, rng));
    this.output_upscaling = this.child(
      'output_upscaling',
      new ModuleList<ConvTranspose2d | LayerNorm2d>(gpu, [
        new ConvTranspose2d(gpu, c, c / 4, 2, rng, { stride: 2 }),
        new LayerNorm2d(gpu, c / 4, 1e-6),
        null,
        new ConvTranspose2d(gpu, c / 4, c / 8, 2, rng, { stride: 2 }),
        null,
      ]),
    );
    this.output_hypernetworks_mlps = this.child(
      'output_hypernetworks_mlps',
      new ModuleList(
        gpu,
        Array.from({ length: n }, () => new MLP(gpu, c, c, c / 8, 3, rng)),
      ),
    );
    this.iou_prediction_head = this.child(
      'iou_prediction_head',
      new MLP(gpu, c, cfg.iouHeadHidden, n, cfg.iouHeadDepth, rng),
    );
  }

  /**
   * embeddings (B, C, T, T) (the fused features), imagePe (1, C, T, T), dense (1, C, 1, 1) or
   * (1|B, C, T, T) (the no-mask embedding; added with broadcasting).
   */
  forward(embeddings: Tensor, imagePe: Tensor, dense: Tensor, cap?: Capture): DecoderOutput {
    const c = this.cfg.promptDim;
    const T = this.cfg.grid;
    if (
      embeddings.shape.length !== 4 ||
      embeddings.shape[1] !== c ||
      embeddings.shape[2] !== T ||
      embeddings.shape[3] !== T
    )
      throw new ShapeError(
        `MaskDecoder: image embeddings ${fmt(embeddings.shape)} must be (B, ${c}, ${T}, ${T})`,
      );
    const B = embeddings.shape[0]!;
    const N = this.numMaskTokens;

    // tokens = [iou_token; mask_tokens] (no sparse prompts), expanded to the batch.
    const out0 = concat([this.iou_token.weight, this.mask_tokens.weight], 0);
    const out1 = reshape(out0, [1, N + 1, c]);
    const tokens = tap(cap, 'dec.tokens', expandBatch(out1, B), { retainGrad: false });
    out0.dispose();
    out1.dispose();
    const src = tap(cap, 'dec.src_in', add(embeddings, dense));

    // srcOut is captured as dec.src_out inside the transformer (it is the last layer's keys).
    const [hs0, srcOut] = this.transformer.forward(src, imagePe, tokens, cap);
    src.dispose();
    tokens.dispose();
    const hs = tap(cap, 'dec.hs', hs0);

    // Upscale the image tokens: (B, hw, C) -> (B, C, T, T) -> (B, C/8, 4T, 4T).
    const ft = permute(srcOut, [0, 2, 1]);
    const feat = reshape(ft, [B, c, T, T]);
    const up0 = tap(cap, 'dec.up.0', (this.output_upscaling.at(0) as ConvTranspose2d).forward(feat));
    const up1 = tap(cap, 'dec.up.1', (this.output_upscaling.at(1) as LayerNorm2d).forward(up0));
    const g1 = gelu(up1);
    const up3 = (this.output_upscaling.at(3) as ConvTranspose2d).forward(g1);
    const up = tap(cap, 'dec.upscaled', gelu(up3));
    for (const x of [srcOut, ft, feat, up0, up1, g1, up3]) x.dispose();

    // One hypernetwork MLP per mask token: (B, N, C/8).
    const parts = this.output_hypernetworks_mlps.items.map((mlp, i) => {
      const s = slice(hs, [0, 1 + i, 0], [B, 1, c]);
      const v = reshape(s, [B, c]);
      const o = mlp!.forward(v);
      const r = reshape(o, [B, 1, c / 8]);
      for (const x of [s, v, o]) x.dispose();
      return r;
    });
    const hyper = tap(cap, 'dec.hyper_in', concat(parts, 1));
    for (const p of parts) p.dispose();

    const [, cu, hh, ww] = up.shape as [number, number, number, number];
    const upFlat = reshape(up, [B, cu, hh * ww]);
    const m = matmul(hyper, upFlat);
    const lowResLogits = reshape(m, [B, N, hh, ww]);
    for (const x of [upFlat, m, hyper, up]) x.dispose();

    // The IoU head is frozen and its output never enters SAM-LST's loss: computed without
    // recording, so no unreachable branch of the tape keeps its saved tensors alive.
    const iouPred = noGrad(() => {
      const is = slice(hs, [0, 0, 0], [B, 1, c]);
      const iouTok = reshape(is, [B, c]);
      const y = this.iou_prediction_head.forward(iouTok);
      is.dispose();
      iouTok.dispose();
      return y;
    });
    hs.dispose();
    return { lowResLogits, iouPred };
  }
}
