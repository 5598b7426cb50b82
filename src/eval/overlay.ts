/**
 * PNG overlays of label maps on a grey slice: one or more panels side by side (e.g. ground truth |
 * prediction), each the slice in grey (values in [0, 1], clamped) with the organ colours blended
 * in (`alpha`, stronger on the organ borders), a caption above each panel, an optional title, and a
 * legend strip at the bottom naming the colours of the organs present. Text uses a built-in 5×7
 * pixel font (lowercase letters, digits, a few symbols). Encoded as 8-bit RGB PNG via fast-png.
 * Host-only.
 */
import { encode } from 'fast-png';
import { ORGAN_NAMES } from './report.js';
import { radiologicalAxialFlips } from '../data/nifti.js';

/** RGB per label; index 0 (background) is unused. */
export const ORGAN_COLOURS: readonly (readonly [number, number, number])[] = [
  [0, 0, 0],
  [230, 25, 75], // 1 spleen: red
  [60, 180, 75], // 2 right kidney: green
  [0, 130, 200], // 3 left kidney: blue
  [255, 225, 25], // 4 gallbladder: yellow
  [240, 50, 230], // 5 liver: magenta
  [70, 240, 240], // 6 stomach: cyan
  [245, 130, 48], // 7 aorta: orange
  [145, 30, 180], // 8 pancreas: purple
];

function colourOf(label: number): readonly [number, number, number] {
  if (label < ORGAN_COLOURS.length) return ORGAN_COLOURS[label]!;
  // further classes: a deterministic hue walk
  const h = (label * 137.508) % 360;
  const f = (n: number) => {
    const k = (n + h / 60) % 6;
    return Math.round(255 * (1 - Math.max(0, Math.min(k, 4 - k, 1))));
  };
  return [f(5), f(3), f(1)];
}

// ---------------------------------------------------------------------------- 5×7 font

/** Rows top to bottom, bit 4 = leftmost pixel. */
const FONT: Record<string, readonly number[]> = {
  '0': [0x0e, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0e],
  '1': [0x04, 0x0c, 0x04, 0x04, 0x04, 0x04, 0x0e],
  '2': [0x0e, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1f],
  '3': [0x1f, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0e],
  '4': [0x02, 0x06, 0x0a, 0x12, 0x1f, 0x02, 0x02],
  '5': [0x1f, 0x10, 0x1e, 0x01, 0x01, 0x11, 0x0e],
  '6': [0x06, 0x08, 0x10, 0x1e, 0x11, 0x11, 0x0e],
  '7': [0x1f, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08],
  '8': [0x0e, 0x11, 0x11, 0x0e, 0x11, 0x11, 0x0e],
  '9': [0x0e, 0x11, 0x11, 0x0f, 0x01, 0x02, 0x0c],
  a: [0x00, 0x00, 0x0e, 0x01, 0x0f, 0x11, 0x0f],
  b: [0x10, 0x10, 0x16, 0x19, 0x11, 0x11, 0x1e],
  c: [0x00, 0x00, 0x0e, 0x10, 0x10, 0x11, 0x0e],
  d: [0x01, 0x01, 0x0d, 0x13, 0x11, 0x11, 0x0f],
  e: [0x00, 0x00, 0x0e, 0x11, 0x1f, 0x10, 0x0e],
  f: [0x06, 0x09, 0x08, 0x1c, 0x08, 0x08, 0x08],
  g: [0x00, 0x0f, 0x11, 0x11, 0x0f, 0x01, 0x0e],
  h: [0x10, 0x10, 0x16, 0x19, 0x11, 0x11, 0x11],
  i: [0x04, 0x00, 0x0c, 0x04, 0x04, 0x04, 0x0e],
  j: [0x02, 0x00, 0x06, 0x02, 0x02, 0x12, 0x0c],
  k: [0x10, 0x10, 0x12, 0x14, 0x18, 0x14, 0x12],
  l: [0x0c, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0e],
  m: [0x00, 0x00, 0x1a, 0x15, 0x15, 0x11, 0x11],
  n: [0x00, 0x00, 0x16, 0x19, 0x11, 0x11, 0x11],
  o: [0x00, 0x00, 0x0e, 0x11, 0x11, 0x11, 0x0e],
  p: [0x00, 0x00, 0x1e, 0x11, 0x1e, 0x10, 0x10],
  q: [0x00, 0x00, 0x0d, 0x13, 0x0f, 0x01, 0x01],
  r: [0x00, 0x00, 0x16, 0x19, 0x10, 0x10, 0x10],
  s: [0x00, 0x00, 0x0e, 0x10, 0x0e, 0x01, 0x1e],
  t: [0x08, 0x08, 0x1c, 0x08, 0x08, 0x09, 0x06],
  u: [0x00, 0x00, 0x11, 0x11, 0x11, 0x13, 0x0d],
  v: [0x00, 0x00, 0x11, 0x11, 0x11, 0x0a, 0x04],
  w: [0x00, 0x00, 0x11, 0x11, 0x15, 0x15, 0x0a],
  x: [0x00, 0x00, 0x11, 0x0a, 0x04, 0x0a, 0x11],
  y: [0x00, 0x00, 0x11, 0x11, 0x0f, 0x01, 0x0e],
  z: [0x00, 0x00, 0x1f, 0x02, 0x04, 0x08, 0x1f],
  ' ': [0, 0, 0, 0, 0, 0, 0],
  '.': [0, 0, 0, 0, 0, 0x0c, 0x0c],
  ',': [0, 0, 0, 0, 0x0c, 0x04, 0x08],
  ':': [0, 0x0c, 0x0c, 0, 0x0c, 0x0c, 0],
  '-': [0, 0, 0, 0x1f, 0, 0, 0],
  _: [0, 0, 0, 0, 0, 0, 0x1f],
  '=': [0, 0, 0x1f, 0, 0x1f, 0, 0],
  '/': [0, 0x01, 0x02, 0x04, 0x08, 0x10, 0],
  '%': [0x18, 0x19, 0x02, 0x04, 0x08, 0x13, 0x03],
  '(': [0x02, 0x04, 0x08, 0x08, 0x08, 0x04, 0x02],
  ')': [0x08, 0x04, 0x02, 0x02, 0x02, 0x04, 0x08],
  '|': [0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04],
  '?': [0x0e, 0x11, 0x01, 0x02, 0x04, 0x00, 0x04],
};
const GLYPH_W = 6; // 5 pixels + 1 spacing
const GLYPH_H = 7;

/** Width in pixels of `text` in the built-in font. */
export function textWidth(text: string): number {
  return text.length * GLYPH_W;
}

class Canvas {
  readonly rgb: Uint8Array;
  constructor(
    readonly width: number,
    readonly height: number,
    bg: readonly [number, number, number],
  ) {
    this.rgb = new Uint8Array(width * height * 3);
    for (let i = 0; i < width * height; i++) this.rgb.set(bg, i * 3);
  }

  set(x: number, y: number, c: readonly [number, number, number]): void {
    if (x < 0 || y < 0 || x >= this.width || y >= this.height) return;
    this.rgb.set(c, (y * this.width + x) * 3);
  }

  rect(x: number, y: number, w: number, h: number, c: readonly [number, number, number]): void {
    for (let j = 0; j < h; j++) for (let i = 0; i < w; i++) this.set(x + i, y + j, c);
  }

  text(x: number, y: number, s: string, c: readonly [number, number, number]): void {
    let cx = x;
    for (const ch of s.toLowerCase()) {
      const g = FONT[ch] ?? FONT['?']!;
      for (let r = 0; r < GLYPH_H; r++)
        for (let b = 0; b < 5; b++) if ((g[r]! >> (4 - b)) & 1) this.set(cx + b, y + r, c);
      cx += GLYPH_W;
    }
  }
}

// ---------------------------------------------------------------------------- overlays

export interface OverlayPanel {
  /** (h, w) label ids, or null for the plain grey slice. */
  labels: ArrayLike<number> | null;
  /** Caption above the panel. */
  caption?: string;
}

export interface OverlayOptions {
  /** Opacity of the organ colours inside organs (default 0.45); borders use 0.9. */
  alpha?: number;
  /** Integer upscaling (nearest); default: enough to make the slice at least 256 px high/wide. */
  scale?: number;
  /** Title line above the panels. */
  title?: string;
  /** Flip the display vertically / horizontally (e.g. to a radiological view). */
  flipRows?: boolean;
  flipCols?: boolean;
  /** Organ names for the legend, label i + 1 → names[i] (default: the Synapse organs). */
  organNames?: readonly string[];
  /** Legend entries: 'present' (labels that occur in any panel, default) or 'all'. */
  legend?: 'present' | 'all';
}

export interface RgbImage {
  width: number;
  height: number;
  /** 8-bit RGB, row-major. */
  rgb: Uint8Array;
}

const BG: readonly [number, number, number] = [24, 24, 24];
const FG: readonly [number, number, number] = [235, 235, 235];
const PAD = 6;

/** Renders an overlay (see the file comment) of an (h, w) slice with values in [0, 1]. */
export function renderOverlay(
  image: ArrayLike<number>,
  h: number,
  w: number,
  panels: readonly OverlayPanel[],
  opts: OverlayOptions = {},
): RgbImage {
  if (!Number.isInteger(h) || !Number.isInteger(w) || h < 1 || w < 1)
    throw new Error(`renderOverlay: invalid slice size ${h}x${w}`);
  if (image.length !== h * w)
    throw new Error(`renderOverlay: image has ${image.length} values, expected ${h}x${w}`);
  if (panels.length === 0) throw new Error('renderOverlay: no panels');
  panels.forEach((p, i) => {
    if (p.labels && p.labels.length !== h * w)
      throw new Error(`renderOverlay: panel ${i} has ${p.labels.length} labels, expected ${h}x${w}`);
  });
  const alpha = opts.alpha ?? 0.45;
  const scale = opts.scale ?? Math.max(1, Math.ceil(256 / Math.max(h, w)));
  if (!Number.isInteger(scale) || scale < 1)
    throw new Error(`renderOverlay: scale must be a positive integer`);
  const names = opts.organNames ?? ORGAN_NAMES;
  const pw = w * scale;
  const ph = h * scale;

  // legend entries
  const present = new Set<number>();
  if ((opts.legend ?? 'present') === 'all') for (let l = 1; l <= names.length; l++) present.add(l);
  else
    for (const p of panels)
      if (p.labels) for (let i = 0; i < p.labels.length; i++) if (p.labels[i]! > 0) present.add(p.labels[i]!);
  const entries = [...present]
    .sort((a, b) => a - b)
    .map((l) => ({ l, text: `${l} ${names[l - 1] ?? `class ${l}`}` }));

  const width = PAD + panels.length * (pw + PAD);
  // legend layout: entries wrap to the canvas width
  const rowH = GLYPH_H + 6;
  const legendRows: { l: number; text: string; x: number }[][] = [[]];
  let cx = PAD;
  for (const e of entries) {
    const ew = 10 + 4 + textWidth(e.text) + 10;
    if (cx + ew > width - PAD && legendRows[legendRows.length - 1]!.length) {
      legendRows.push([]);
      cx = PAD;
    }
    legendRows[legendRows.length - 1]!.push({ ...e, x: cx });
    cx += ew;
  }
  const titleH = opts.title ? rowH : 0;
  const captionH = panels.some((p) => p.caption) ? rowH : 0;
  const legendH = entries.length ? legendRows.length * rowH + PAD : 0;
  const height = PAD + titleH + captionH + ph + PAD + legendH;
  const cv = new Canvas(width, height, BG);
  if (opts.title) cv.text(PAD, PAD, opts.title, FG);

  const y0 = PAD + titleH + captionH;
  const src = (y: number, x: number) => (opts.flipRows ? h - 1 - y : y) * w + (opts.flipCols ? w - 1 - x : x);
  panels.forEach((p, k) => {
    const x0 = PAD + k * (pw + PAD);
    if (p.caption) cv.text(x0, PAD + titleH, p.caption, FG);
    const lab = p.labels;
    for (let y = 0; y < h; y++)
      for (let x = 0; x < w; x++) {
        const v = Number(image[src(y, x)]);
        const g = Math.round(255 * (Number.isFinite(v) ? Math.min(1, Math.max(0, v)) : 0));
        let c: [number, number, number] = [g, g, g];
        const l = lab ? Number(lab[src(y, x)]) : 0;
        if (l > 0) {
          const border =
            (y > 0 && Number(lab![src(y - 1, x)]) !== l) ||
            (y < h - 1 && Number(lab![src(y + 1, x)]) !== l) ||
            (x > 0 && Number(lab![src(y, x - 1)]) !== l) ||
            (x < w - 1 && Number(lab![src(y, x + 1)]) !== l);
          const a = border ? 0.9 : alpha;
          const oc = colourOf(l);
          c = [
            Math.round((1 - a) * g + a * oc[0]),
            Math.round((1 - a) * g + a * oc[1]),
            Math.round((1 - a) * g + a * oc[2]),
          ];
        }
        cv.rect(x0 + x * scale, y0 + y * scale, scale, scale, c);
      }
  });

  let ly = y0 + ph + PAD;
  for (const row of legendRows) {
    for (const e of row) {
      cv.rect(e.x, ly, 10, GLYPH_H, colourOf(e.l));
      cv.text(e.x + 14, ly, e.text, FG);
    }
    ly += rowH;
  }
  return { width, height, rgb: cv.rgb };
}

/** An RgbImage as PNG bytes. */
export function encodeRgbPng(img: RgbImage): Uint8Array {
  return encode({ width: img.width, height: img.height, data: img.rgb, channels: 3, depth: 8 });
}

/** renderOverlay of slice z of (d, h, w) volumes, as PNG bytes. */
export function sliceOverlayPng(
  image: ArrayLike<number>,
  shape: readonly [number, number, number],
  z: number,
  panels: readonly { labels: ArrayLike<number> | null; caption?: string }[],
  opts: OverlayOptions = {},
): Uint8Array {
  const [d, h, w] = shape;
  if (!Number.isInteger(z) || z < 0 || z >= d) throw new Error(`slice ${z} is outside 0..${d - 1}`);
  const n = h * w;
  const cut = (a: ArrayLike<number>): ArrayLike<number> => {
    if (a.length !== d * n)
      throw new Error(`sliceOverlayPng: volume has ${a.length} values, expected ${d}x${h}x${w}`);
    const sub = (a as { subarray?: (s: number, e: number) => ArrayLike<number> }).subarray;
    return sub ? sub.call(a, z * n, (z + 1) * n) : Array.from({ length: n }, (_, i) => a[z * n + i]!);
  };
  return encodeRgbPng(
    renderOverlay(
      cut(image),
      h,
      w,
      panels.map((p) => ({ labels: p.labels ? cut(p.labels) : null, caption: p.caption })),
      opts,
    ),
  );
}

/**
 * The `n` slices with the most foreground (label > 0) in `labels` (d, h, w), in ascending order;
 * evenly spaced slices when there is no foreground.
 */
export function pickSlices(
  labels: ArrayLike<number>,
  shape: readonly [number, number, number],
  n = 1,
): number[] {
  const [d, h, w] = shape;
  const counts = new Array<number>(d).fill(0);
  for (let z = 0; z < d; z++)
    for (let i = z * h * w; i < (z + 1) * h * w; i++) if (Number(labels[i]) > 0) counts[z]!++;
  const k = Math.min(n, d);
  if (counts.every((c) => c === 0))
    return Array.from({ length: k }, (_, i) => Math.floor(((i + 0.5) * d) / k));
  return counts
    .map((c, z) => [c, z] as const)
    .sort((a, b) => b[0] - a[0] || a[1] - b[1])
    .slice(0, k)
    .map(([, z]) => z)
    .sort((a, b) => a - b);
}

/**
 * Display flips for an axis-aligned NIfTI affine so the slice shows in the radiological
 * convention (anterior up, patient right on the image left); no flips for oblique affines.
 */
export function radiologicalDisplayFlips(affine: readonly (readonly number[])[]): {
  flipRows: boolean;
  flipCols: boolean;
} {
  return radiologicalAxialFlips(affine) ?? { flipRows: false, flipCols: false };
}
