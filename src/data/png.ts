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

/** Largest image accepted, in pixels (16384 x 16384). */
const MAX_PIXELS = 2 ** 28;
/** zlib (DEFLATE) cannot expand data by more than about 1032:1. */
const MAX_DEFLATE_RATIO = 1032;
const CHANNELS: Record<number, number> = { 0: 1, 2: 3, 3: 1, 4: 2, 6: 4 };

/**
 * Walks the chunk list before fast-png sees the file: IHDR must come first and be sane, and the
 * image the header declares must fit in what the IDAT chunks can inflate to. fast-png allocates
 * width x height x channels from IHDR before it inflates anything, so a 60-byte file could
 * otherwise ask for gigabytes.
 */
function precheck(bytes: Uint8Array, fail: (m: string) => never): void {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (bytes.byteLength < 8 + 25) fail(`truncated: ${bytes.byteLength} bytes cannot hold the IHDR chunk`);
  if (dv.getUint32(8) !== 13 || dv.getUint32(12) !== 0x49484452)
    fail('the first chunk is not a 13-byte IHDR');
  const w = dv.getUint32(16);
  const h = dv.getUint32(20);
  const depth = bytes[24]!;
  const colour = bytes[25]!;
  const interlace = bytes[28]!;
  const ch = CHANNELS[colour];
  if (w < 1 || h < 1 || w > 2 ** 31 - 1 || h > 2 ** 31 - 1) fail(`image size ${w}x${h} is invalid`);
  if (w * h > MAX_PIXELS) fail(`image size ${w}x${h} is more than the ${MAX_PIXELS} pixels accepted`);
  if (ch === undefined || ![1, 2, 4, 8, 16].includes(depth))
    fail(`unsupported colour type ${colour} / bit depth ${depth}`);
  let idat = 0;
  let p = 8;
  for (;;) {
    if (p + 12 > bytes.byteLength)
      fail(`chunk at offset ${p} runs past the end of the file (truncated, no IEND)`);
    const len = dv.getUint32(p);
    const type = dv.getUint32(p + 4);
    if (len > bytes.byteLength - p - 12)
      fail(`chunk at offset ${p} declares ${len} bytes, more than the file holds (truncated)`);
    if (type === 0x49444154) idat += len;
    if (type === 0x49454e44) break; // IEND
    p += 12 + len;
  }
  // Unfiltered rows (+1 filter byte each; Adam7 adds at most a filter byte per row of each pass).
  const rowBytes = Math.ceil((w * ch! * depth) / 8);
  const raw = h * (rowBytes + 1) + (interlace ? 7 * h : 0);
  if (raw > idat * MAX_DEFLATE_RATIO + 1024)
    fail(
      `IHDR declares ${w}x${h} pixels (${raw} bytes) but the image data is only ${idat} compressed bytes (truncated or corrupt)`,
    );
}

function decodeChecked(bytes: Uint8Array, source: string): ReturnType<typeof decode> {
  const fail = (m: string): never => {
    throw new PngError(`${source}: ${m}`);
  };
  if (bytes.byteLength === 0) fail('file is empty');
  if (bytes.byteLength < 8 || SIGNATURE.some((b, i) => bytes[i] !== b))
    fail('not a PNG file (bad signature)');
  precheck(bytes, (m) => fail(`corrupt PNG (${m})`));
  try {
    const png = decode(bytes, { checkCrc: true });
    if (png.palette) throw new PngError(`${source}: palette PNGs are not supported`);
    if (png.width < 1 || png.height < 1) throw new PngError(`${source}: empty image`);
    if (png.data.length < png.width * png.height * png.channels)
      throw new PngError(`${source}: truncated pixel data`);
    return png;
  } catch (e) {
    if (e instanceof PngError) throw e;
    const cause = (e as Error).cause;
    const detail = cause instanceof Error ? `: ${cause.message}` : '';
    throw new PngError(`${source}: corrupt PNG (${(e as Error).message}${detail})`);
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
