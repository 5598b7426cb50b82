/**
 * SAM-LST's adaptation of the official SAM checkpoint to input size S (spec §3; the oracle's
 * `adapt_sam_state_dict`, which equals SAM-LST's `build_sam.load_from` bit-for-bit):
 *   1. keys containing mask_tokens / output_hypernetworks_mlps / iou_prediction_head are dropped
 *      (SAM-LST has 9 mask tokens; those modules keep their fresh random init and stay frozen);
 *   2. if the checkpoint's pos_embed grid G0 differs from T = S / patch: pos_embed (1,G0,G0,C) is
 *      resized to (1,T,T,C) like F.interpolate(NCHW, (T,T), 'bilinear', align_corners=False)
 *      (no antialias); for 64 → 32 this is 2×2 average pooling;
 *   3. in that case only, the global-attention blocks' rel_pos_h / rel_pos_w (L, hd) are resized
 *      like F.interpolate of a (1,1,L,hd) image to (2T−1, hd): linear resampling along the rows,
 *      columns untouched (scale 1 is an exact copy);
 *   4. window blocks keep their tables.
 * Math in float64, results stored as float32.
 *
 * Which blocks are global comes from `globalAttnIndexes` (the model config), as in the oracle.
 * SAM-LST's own load_from instead picks the rel_pos keys that contain the substring "2", "5", "8"
 * or "11". For ViT-B (blocks 0..11, global 2,5,8,11) the two rules select the same keys: the only
 * digits in 'image_encoder.blocks.<i>.attn.rel_pos_h' are the block index, 1 and 10 contain
 * neither "2", "5", "8" nor "11", and 2, 5, 8, 11 each contain one. They differ for other
 * configs (e.g. the tiny test config, global 1,3: the substring rule would pick block 2, a window
 * block; ViT-L/H: blocks 12, 15, 18, 22... would be picked). The oracle, and this code, use the
 * index rule.
 */
import { fmt } from '../util/shape.js';
import type { HostTensor } from '../tensor/host.js';

export const DROPPED_SAM_KEYS: readonly string[] = [
  'mask_tokens',
  'output_hypernetworks_mlps',
  'iou_prediction_head',
];

export interface SamAdaptConfig {
  /** Network input side S. */
  imgSize: number;
  /** ViT patch size (16 for SAM). */
  patchSize: number;
  /** 0-based indexes of the global-attention blocks ([2, 5, 8, 11] for ViT-B). */
  globalAttnIndexes: readonly number[];
}

export interface AdaptOptions {
  /**
   * The model's freshly initialised state (official names, same `prefix`). When given, the
   * result follows the oracle exactly: start from `fresh`, take every official key that `fresh`
   * has and that is not dropped; official keys the model lacks are ignored.
   */
  fresh?: ReadonlyMap<string, HostTensor>;
  /** Prefix of every key, e.g. 'sam.' after remapping (default ''). */
  prefix?: string;
  /** Names the checkpoint in errors. */
  source?: string;
}

export interface AdaptResult {
  map: Map<string, HostTensor>;
  /** Official keys dropped (the three decoder head groups). */
  dropped: string[];
  /** Keys whose tensors were resized. */
  resized: string[];
  /** Official keys absent from `fresh` (only with `fresh`). */
  ignored: string[];
}

export class AdaptError extends Error {
  override name = 'AdaptError';
}

/** PyTorch's align_corners=False source index and weights for one output coordinate. */
function taps(inSize: number, outSize: number): { i0: Int32Array; i1: Int32Array; w1: Float64Array } {
  const i0 = new Int32Array(outSize);
  const i1 = new Int32Array(outSize);
  const w1 = new Float64Array(outSize);
  const scale = inSize / outSize;
  for (let o = 0; o < outSize; o++) {
    const src = Math.max(scale * (o + 0.5) - 0.5, 0);
    const a = Math.floor(src);
    i0[o] = a;
    i1[o] = a < inSize - 1 ? a + 1 : a;
    w1[o] = src - a;
  }
  return { i0, i1, w1 };
}

/**
 * Bilinear resize (align_corners=False, no antialias) of a channels-last (H, W, C) array to
 * (outH, outW, C), computed in float64.
 */
export function resizeBilinearHWC(
  src: ArrayLike<number>,
  h: number,
  w: number,
  c: number,
  outH: number,
  outW: number,
): Float64Array {
  if (src.length !== h * w * c) throw new AdaptError(`resize: ${src.length} values for (${h}, ${w}, ${c})`);
  const ty = taps(h, outH);
  const tx = taps(w, outW);
  const out = new Float64Array(outH * outW * c);
  for (let y = 0; y < outH; y++) {
    const y0 = ty.i0[y]!;
    const y1 = ty.i1[y]!;
    const ly1 = ty.w1[y]!;
    const ly0 = 1 - ly1;
    for (let x = 0; x < outW; x++) {
      const x0 = tx.i0[x]!;
      const x1 = tx.i1[x]!;
      const lx1 = tx.w1[x]!;
      const lx0 = 1 - lx1;
      const o = (y * outW + x) * c;
      const a = (y0 * w + x0) * c;
      const b = (y0 * w + x1) * c;
      const d = (y1 * w + x0) * c;
      const e = (y1 * w + x1) * c;
      for (let k = 0; k < c; k++)
        out[o + k] =
          ly0 * (lx0 * src[a + k]! + lx1 * src[b + k]!) + ly1 * (lx0 * src[d + k]! + lx1 * src[e + k]!);
    }
  }
  return out;
}

function f32(shape: number[], data: Float64Array): HostTensor {
  return { shape, dtype: 'f32', data: Float32Array.from(data) };
}

/** Adapts an official SAM state_dict to the model configuration `cfg` (see the file comment). */
export function adaptSamStateDict(
  official: ReadonlyMap<string, HostTensor>,
  cfg: SamAdaptConfig,
  opts: AdaptOptions = {},
): AdaptResult {
  const p = opts.prefix ?? '';
  const src = opts.source ?? 'SAM checkpoint';
  const fail = (m: string): never => {
    throw new AdaptError(`${src}: ${m}`);
  };
  if (!Number.isInteger(cfg.imgSize / cfg.patchSize) || cfg.imgSize <= 0)
    fail(`input size ${cfg.imgSize} is not a multiple of the patch size ${cfg.patchSize}`);
  const grid = cfg.imgSize / cfg.patchSize;
  const fresh = opts.fresh;
  const map = new Map<string, HostTensor>(fresh ?? []);
  const dropped: string[] = [];
  const ignored: string[] = [];
  for (const [k, v] of official) {
    if (DROPPED_SAM_KEYS.some((s) => k.includes(s))) dropped.push(k);
    else if (fresh && !fresh.has(k)) ignored.push(k);
    else map.set(k, v);
  }
  const resized: string[] = [];
  const peKey = `${p}image_encoder.pos_embed`;
  const pe = official.get(peKey) ?? fail(`no '${peKey}'`);
  if (pe.shape.length !== 4 || pe.shape[0] !== 1 || pe.shape[1] !== pe.shape[2] || pe.dtype !== 'f32')
    fail(`'${peKey}' has shape ${fmt(pe.shape)}; expected a float (1, G, G, C)`);
  const [, g0, , c] = pe.shape as [number, number, number, number];
  if (g0 !== grid) {
    map.set(peKey, f32([1, grid, grid, c], resizeBilinearHWC(pe.data, g0, g0, c, grid, grid)));
    resized.push(peKey);
    for (const i of cfg.globalAttnIndexes) {
      for (const ax of ['h', 'w']) {
        const k = `${p}image_encoder.blocks.${i}.attn.rel_pos_${ax}`;
        const t = official.get(k) ?? fail(`no '${k}' (global block ${i})`);
        if (t.shape.length !== 2 || t.dtype !== 'f32')
          fail(`'${k}' has shape ${fmt(t.shape)}; expected (L, head_dim)`);
        const [len, hd] = t.shape as [number, number];
        map.set(k, f32([2 * grid - 1, hd], resizeBilinearHWC(t.data, len, hd, 1, 2 * grid - 1, hd)));
        resized.push(k);
      }
    }
  }
  return { map, dropped, resized, ignored };
}
