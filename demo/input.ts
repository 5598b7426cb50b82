/**
 * Slices for the demo from the sources a user has: a phantom case, or PNG / NIfTI files (image
 * and, optionally, a label map with Synapse ids 0..8). Everything runs in the browser.
 */
import { decode as decodePng } from 'fast-png';
import { toSynapseLabels, windowHU } from '../src/data/labels.js';
import { parseNifti } from '../src/data/nifti.js';
import { phantomSlice } from '../src/data/phantom.js';
import type { GreySlice } from '../src/index.js';

/** A (d, h, w) stack of slices (a PNG is one slice). */
export interface Stack {
  name: string;
  d: number;
  h: number;
  w: number;
  /** Image values in [0, 1]. */
  image: Float32Array;
  /** How the values were mapped to [0, 1], for the status line. */
  note: string;
}

export interface LabelStack {
  name: string;
  d: number;
  h: number;
  w: number;
  label: Int32Array;
}

export function phantom(seed: number, t: number, size: number): GreySlice {
  const s = phantomSlice(seed, t, size);
  return { h: s.h, w: s.w, image: s.image, label: s.label };
}

const isNifti = (name: string) => /\.nii(\.gz)?$/i.test(name);
const isPng = (name: string) => /\.png$/i.test(name);

function rawPng(
  bytes: Uint8Array,
  name: string,
): { h: number; w: number; values: Float64Array; max: number } {
  let png;
  try {
    png = decodePng(bytes);
  } catch (e) {
    throw new Error(`${name}: not a readable PNG (${(e as Error).message})`);
  }
  if (png.palette) throw new Error(`${name}: palette PNGs are not supported`);
  const { width: w, height: h, channels: c, data } = png;
  const max = png.depth === 16 ? 65535 : (1 << png.depth) - 1;
  const values = new Float64Array(w * h);
  const colour = c >= 3;
  for (let i = 0; i < w * h; i++)
    values[i] = colour ? (data[i * c]! + data[i * c + 1]! + data[i * c + 2]!) / 3 : data[i * c]!;
  return { h, w, values, max };
}

/** An image file (PNG or NIfTI) as a stack of slices in [0, 1]. */
export function readImageFile(bytes: Uint8Array, name: string): Stack {
  if (isPng(name)) {
    const p = rawPng(bytes, name);
    const image = new Float32Array(p.h * p.w);
    for (let i = 0; i < image.length; i++) image[i] = p.values[i]! / p.max;
    return { name, d: 1, h: p.h, w: p.w, image, note: `grey / ${p.max}` };
  }
  if (isNifti(name)) {
    const v = parseNifti(bytes, name);
    let lo = Infinity;
    let hi = -Infinity;
    for (let i = 0; i < v.data.length; i++) {
      const x = v.data[i]!;
      if (!Number.isFinite(x)) throw new Error(`${name}: value ${x} at voxel ${i} is not finite`);
      if (x < lo) lo = x;
      if (x > hi) hi = x;
    }
    // Already-normalised volumes stay as they are; CT in Hounsfield units gets SAM-LST's window.
    if (lo >= -0.5 && hi <= 1.5) {
      const image = Float32Array.from(v.data, (x) => Math.min(1, Math.max(0, x)));
      return { name, d: v.d, h: v.h, w: v.w, image, note: 'values already in [0, 1]' };
    }
    return { name, d: v.d, h: v.h, w: v.w, image: windowHU(v.data), note: 'CT window [-125, 275] HU' };
  }
  throw new Error(`${name}: unsupported image file (use .png, .nii or .nii.gz)`);
}

/** A label file (PNG with class ids as grey values, or NIfTI) with Synapse ids 0..8. */
export function readLabelFile(bytes: Uint8Array, name: string): LabelStack {
  if (isPng(name)) {
    const p = rawPng(bytes, name);
    return { name, d: 1, h: p.h, w: p.w, label: toSynapseLabels(p.values, name) };
  }
  if (isNifti(name)) {
    const v = parseNifti(bytes, name);
    return { name, d: v.d, h: v.h, w: v.w, label: toSynapseLabels(v.data, name) };
  }
  throw new Error(`${name}: unsupported label file (use .png, .nii or .nii.gz)`);
}

export function checkPair(img: Stack, lab: LabelStack): void {
  if (img.d !== lab.d || img.h !== lab.h || img.w !== lab.w)
    throw new Error(
      `${lab.name} is ${lab.d}x${lab.h}x${lab.w} (slices x rows x columns) but ${img.name} is ${img.d}x${img.h}x${img.w}`,
    );
}

/** Slice z of a stack (and of its labels) as a GreySlice. */
export function sliceOf(img: Stack, lab: LabelStack | null, z: number): GreySlice {
  const n = img.h * img.w;
  return {
    h: img.h,
    w: img.w,
    image: img.image.subarray(z * n, (z + 1) * n),
    label: lab ? lab.label.subarray(z * n, (z + 1) * n) : null,
  };
}

/** The slice with the most labelled pixels (the middle slice when there are no labels). */
export function bestSlice(img: Stack, lab: LabelStack | null): number {
  if (!lab) return Math.floor(img.d / 2);
  const n = img.h * img.w;
  let best = Math.floor(img.d / 2);
  let most = -1;
  for (let z = 0; z < img.d; z++) {
    let c = 0;
    for (let i = z * n; i < (z + 1) * n; i++) if (lab.label[i]! > 0) c++;
    if (c > most) {
      most = c;
      best = z;
    }
  }
  return best;
}

/** Tells a dropped label file from an image file by its name. */
export function looksLikeLabel(name: string): boolean {
  return /(label|seg|mask|gt)/i.test(name);
}
