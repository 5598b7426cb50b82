/**
 * PNG slices and per-organ binary masks (SAM-Med2D / SA-Med2D-20M demo layout) via fast-png.
 *
 * Images: 8- or 16-bit grey, grey+alpha, RGB or RGBA; the grey value is the mean of R, G, B (the
 * demo's three channels are equal), scaled by 1/255 (1/65535 for 16-bit) to [0, 1].
 * Masks: one PNG per organ instance, foreground = value > half of the maximum (the demo uses 0/255).
 */
import { decode, encode } from 'fast-png';

export interface GreyImage {
  h: number;
  w: number;
  /** Values in [0, 1]. */
  data: Float32Array;
}

export class PngError extends Error {
  override name = 'PngError';
}

const SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

function decodeChecked(bytes: Uint8Array, source: string): ReturnType<typeof decode> {
  if (bytes.byteLength === 0) throw new PngError(`${source}: file is empty`);
  if (bytes.byteLength < 8 || SIGNATURE.some((b, i) => bytes[i] !== b))
    throw new PngError(`${source}: not a PNG file (bad signature)`);
  try {
    const png = decode(bytes);
    if (png.palette) throw new PngError(`${source}: palette PNGs are not supported`);
    if (png.width < 1 || png.height < 1) throw new PngError(`${source}: empty image`);
    if (png.data.length < png.width * png.height * png.channels)
      throw new PngError(`${source}: truncated pixel data`);
    return png;
  } catch (e) {
    if (e instanceof PngError) throw e;
    throw new PngError(`${source}: corrupt PNG (${(e as Error).message})`);
  }
}

/** Decode a PNG into a grey image in [0, 1]. */
export function decodeGreyPng(bytes: Uint8Array, source = 'PNG data'): GreyImage {
  const png = decodeChecked(bytes, source);
  const { width: w, height: h, channels: c, data } = png;
  const max = png.depth === 16 ? 65535 : (1 << png.depth) - 1;
  const out = new Float32Array(w * h);
  const colour = c >= 3;
  for (let i = 0; i < w * h; i++) {
    const v = colour ? (data[i * c]! + data[i * c + 1]! + data[i * c + 2]!) / 3 : data[i * c]!;
    out[i] = v / max;
  }
  return { h, w, data: out };
}

/** Decode a binary mask PNG: 1 where the (first-channel) value exceeds half of the maximum. */
export function decodeMaskPng(
  bytes: Uint8Array,
  source = 'PNG mask',
): { h: number; w: number; data: Uint8Array } {
  const png = decodeChecked(bytes, source);
  const { width: w, height: h, channels: c, data } = png;
  const half = (png.depth === 16 ? 65535 : (1 << png.depth) - 1) / 2;
  const out = new Uint8Array(w * h);
  for (let i = 0; i < w * h; i++) out[i] = data[i * c]! > half ? 1 : 0;
  return { h, w, data: out };
}

/** Encode an 8-bit grey PNG (tests and tools). Values are clamped to 0..255. */
export function encodeGreyPng(values: ArrayLike<number>, h: number, w: number): Uint8Array {
  const data = new Uint8Array(h * w);
  for (let i = 0; i < h * w; i++) data[i] = Math.max(0, Math.min(255, Math.round(values[i]!)));
  return encode({ width: w, height: h, data, channels: 1, depth: 8 });
}
