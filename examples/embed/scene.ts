/**
 * What the embedding example draws, shared with the browser test (which computes the expected
 * pixels in Node): the input slice, the overlay colours and the overlay shader.
 */
import { ORGAN_COLORS, PHANTOM_MID_T, phantomSlice } from '../../src/index.js';

/** The tiny SAM-LST configuration's input side. */
export const SIZE = 96;
/** Canvas pixels per slice pixel. */
export const SCALE = 4;
export const SEED = 3;
/** Opacity of the organ colour over the grey slice. */
export const ALPHA = 0.5;

/** The example's input: phantom case SEED at mid-abdomen, SIZE x SIZE, values in [0, 1]. */
export function sceneSlice(): Float32Array {
  return phantomSlice(SEED, PHANTOM_MID_T, SIZE).image;
}

/** The (1, 3, SIZE, SIZE) model input: the slice replicated to three channels. */
export function sceneInput(): Float32Array<ArrayBuffer> {
  const g = sceneSlice();
  const out = new Float32Array(3 * SIZE * SIZE);
  for (let c = 0; c < 3; c++) out.set(g, c * SIZE * SIZE);
  return out;
}

/** Colour (0..255 per channel) of a pixel with grey value `grey` predicted as class `cls`. */
export function overlayColor(grey: number, cls: number): [number, number, number] {
  const g = Math.min(1, Math.max(0, grey));
  const c = ORGAN_COLORS[cls]!;
  const a = cls > 0 ? ALPHA : 0;
  return [0, 1, 2].map((i) => Math.round(((1 - a) * g + (a * c[i]!) / 255) * 255)) as [
    number,
    number,
    number,
  ];
}

/**
 * The overlay pipeline's WGSL: a full-screen triangle; the fragment shader reads the slice from
 * the app's image buffer and the class logits straight from the engine's `masks` buffer, takes the
 * argmax per pixel (first maximum wins, like torch.argmax) and blends that organ's colour in.
 */
export function overlayWgsl(classes: number): string {
  const colors = Array.from({ length: classes }, (_, k) => {
    const c = ORGAN_COLORS[k] ?? [255, 255, 255];
    return `vec3f(${c.map((v) => (v / 255).toFixed(6)).join(', ')})`;
  }).join(',\n    ');
  return /* wgsl */ `
struct View { size: u32, classes: u32, scale: u32, alpha: f32 }
@group(0) @binding(0) var<storage, read> image: array<f32>;   // (1, 3, S, S), channel 0 used
@group(0) @binding(1) var<storage, read> masks: array<f32>;   // (1, C, S, S) logits
@group(0) @binding(2) var<uniform> view: View;

const COLORS = array<vec3f, ${classes}>(
    ${colors});

@vertex
fn vs(@builtin(vertex_index) i: u32) -> @builtin(position) vec4f {
  let p = vec2f(f32((i << 1u) & 2u), f32(i & 2u));
  return vec4f(p * 2.0 - 1.0, 0.0, 1.0);
}

@fragment
fn fs(@builtin(position) pos: vec4f) -> @location(0) vec4f {
  let s = view.size;
  let x = min(u32(pos.x) / view.scale, s - 1u);
  let y = min(u32(pos.y) / view.scale, s - 1u);
  let p = y * s + x;
  let grey = clamp(image[p], 0.0, 1.0);
  var best = 0u;
  var bv = masks[p];
  for (var c = 1u; c < view.classes; c++) {
    let v = masks[c * s * s + p];
    if (v > bv) { bv = v; best = c; }
  }
  let a = select(view.alpha, 0.0, best == 0u);
  return vec4f(mix(vec3f(grey), COLORS[best], a), 1.0);
}
`;
}
