/**
 * SAM's prompt encoder (spec §6). SAM-LST runs only the no-prompt path: sparse embeddings are
 * empty and the dense embedding is no_mask_embed broadcast over the T x T grid; `densePe()` is the
 * random-Fourier positional encoding of the grid. Every official key is registered
 * (pe_layer.positional_encoding_gaussian_matrix, point_embeddings.{0..3}, not_a_point_embed,
 * mask_downscaling.{0,1,3,4,6}, no_mask_embed) so checkpoints load strictly; the point / box /
 * mask paths are not implemented.
 *
 * The positional encoding depends only on the Gaussian matrix G (a buffer) and the grid, so it is
 * computed on the host in float64 whenever G changes (construction, loadStateDict) and kept on
 * the GPU as a constant (1, C, T, T).
 */
import { reshape } from '../../ops/reshape.js';
import type { Gpu } from '../../gpu/device.js';
import type { HostTensor } from '../../tensor/host.js';
import { Tensor } from '../../tensor/tensor.js';
import type { SamLstConfig } from '../config.js';
import { Conv2d, Embedding, Layer, LayerNorm2d, ModuleList, normalInit, type InitRng } from '../layers.js';

/**
 * Dense random-Fourier PE of an h x w grid: cell centres x = (j+0.5)/w, y = (i+0.5)/h,
 * c = 2 (x, y) - 1, z = 2 pi c . G with G (2, F); out (2F, h, w) = [sin z; cos z]. Float64.
 */
export function denseFourierPe(G: ArrayLike<number>, F: number, h: number, w: number): Float32Array {
  const out = new Float32Array(2 * F * h * w);
  const hw = h * w;
  for (let i = 0; i < h; i++) {
    const cy = (2 * (i + 0.5)) / h - 1;
    for (let j = 0; j < w; j++) {
      const cx = (2 * (j + 0.5)) / w - 1;
      for (let k = 0; k < F; k++) {
        const z = 2 * Math.PI * (cx * G[k]! + cy * G[F + k]!);
        out[k * hw + i * w + j] = Math.sin(z);
        out[(F + k) * hw + i * w + j] = Math.cos(z);
      }
    }
  }
  return out;
}

export class PositionEmbeddingRandom extends Layer {
  readonly positional_encoding_gaussian_matrix: Tensor;
  private g: Float32Array;
  private readonly cache = new Map<string, Tensor>();

  constructor(
    gpu: Gpu,
    readonly numFeats: number,
    rng: InitRng,
  ) {
    super(gpu);
    this.g = normalInit(rng, 2 * numFeats) ?? new Float32Array(2 * numFeats);
    this.positional_encoding_gaussian_matrix = this.addBuffer(
      'positional_encoding_gaussian_matrix',
      Tensor.fromData(gpu, this.g, [2, numFeats]),
    );
  }

  /** The encoding of an h x w grid, (1, 2F, h, w); a cached constant owned by this module. */
  grid(h: number, w: number): Tensor {
    const key = `${h}x${w}`;
    let t = this.cache.get(key);
    if (!t) {
      t = Tensor.fromData(this.gpu, denseFourierPe(this.g, this.numFeats, h, w), [
        1,
        2 * this.numFeats,
        h,
        w,
      ]);
      t.keep();
      this.cache.set(key, t);
    }
    return t;
  }

  protected override afterLoad(src: ReadonlyMap<string, HostTensor>, prefix: string): void {
    const h = src.get(`${prefix}positional_encoding_gaussian_matrix`);
    if (!h || h.data.length !== 2 * this.numFeats) return;
    this.g = Float32Array.from(h.data);
    this.releaseExtra();
  }

  protected override releaseExtra(): void {
    for (const t of this.cache.values()) t.dispose();
    this.cache.clear();
  }
}

export class PromptEncoder extends Layer {
  readonly pe_layer: PositionEmbeddingRandom;
  readonly point_embeddings: ModuleList<Embedding>;
  readonly not_a_point_embed: Embedding;
  readonly mask_downscaling: ModuleList<Conv2d | LayerNorm2d>;
  readonly no_mask_embed: Embedding;
  readonly embedDim: number;
  readonly gridSize: number;

  constructor(gpu: Gpu, cfg: SamLstConfig, rng: InitRng) {
    super(gpu);
    const c = cfg.promptDim;
    const m = cfg.maskInChans;
    this.embedDim = c;
    this.gridSize = cfg.grid;
    this.pe_layer = this.child('pe_layer', new PositionEmbeddingRandom(gpu, c / 2, rng));
    this.point_embeddings = this.child(
      'point_embeddings',
      new ModuleList(
        gpu,
        Array.from({ length: 4 }, () => new Embedding(gpu, 1, c, rng)),
      ),
    );
    this.not_a_point_embed = this.child('not_a_point_embed', new Embedding(gpu, 1, c, rng));
    this.mask_downscaling = this.child(
      'mask_downscaling',
      new ModuleList<Conv2d | LayerNorm2d>(gpu, [
        new Conv2d(gpu, 1, m / 4, 2, rng, { stride: 2 }),
        new LayerNorm2d(gpu, m / 4),
        null,
        new Conv2d(gpu, m / 4, m, 2, rng, { stride: 2 }),
        new LayerNorm2d(gpu, m),
        null,
        new Conv2d(gpu, m, c, 1, rng),
      ]),
    );
    this.no_mask_embed = this.child('no_mask_embed', new Embedding(gpu, 1, c, rng));
  }

  /** get_dense_pe(): (1, C, T, T), a constant owned by the encoder (do not dispose). */
  densePe(): Tensor {
    return this.pe_layer.grid(this.gridSize, this.gridSize);
  }

  /**
   * The no-prompt dense embedding as (1, C, 1, 1) (differentiable reshape of no_mask_embed.weight);
   * it broadcasts over the grid where it is added. The caller disposes it.
   */
  noMaskDense(): Tensor {
    return reshape(this.no_mask_embed.weight, [1, this.embedDim, 1, 1]);
  }
}
