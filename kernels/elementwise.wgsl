// elementwise.wgsl: pointwise unary/binary ops, their gradients, in-place axpby, fill, and a
// rank-6 strided gather (permute, pad, crop, slice, broadcast) in one family.
//
// Bindings (group 0): each entry uses a prefix of
//   0: x  (read)        1: y / other input (read) or output     2: out (read_write)
//   last: var<uniform> params: Params
// Dispatch: 1-D over elements; WG threads per workgroup, grid folded into (x, y) so grids above
//   65535 workgroups work: linear index = (wid.y * num_workgroups.x + wid.x) * WG + lid.x.
// Tiling: none (memory bound). Scalar entries take one element per invocation (binary and
//   gather: RUN consecutive elements), bounds-checked against params.n. The *4 entries take RUN
//   consecutive vec4s per invocation over ceil(n/4) vec4s: lavapipe loads a vec4 lane in about
//   the time of half an f32 lane, so they move ~8x more data per load, and RUN per invocation
//   spreads the per-invocation index and bounds work (1.1-1.3x over one vec4 per invocation on
//   lavapipe, in-process A/B). They read and write the whole last vec4, so every binding must
//   span ceil(n/4)*16 bytes (pool buffers always do; the TS side falls back to the scalar
//   entries otherwise). gather4 and binary_bc4 are the strided reads (permute/pad, broadcast)
//   whose innermost dim is read in whole aligned vec4s; see each entry.
// Splitting: binary / gather outputs over the binding limit run in flat chunks (i_off = first
//   output index); inputs over it are bound as windows (x_lo/x_len, b_lo/b_len) and every window
//   combination that can feed the chunk is dispatched; each output element is written once.
// Numerics: f32 throughout. GELU is exact (erf from the Numerical Recipes erfc, fractional error
//   < 1.2e-7, see erf_f32); sigmoid is evaluated on -|x| so it never overflows.
// Override constants: WG (workgroup size), OP (operation code, see each entry).

struct Params {
  n: u32,          // number of output elements
  alpha: f32,      // scalar operand (scale, fill value, axpby alpha)
  beta: f32,       // second scalar operand (shift, axpby beta)
  i_off: u32,      // binary / gather: index of this dispatch's first output element (split runs)
  // Broadcast/gather geometry (rank 6, innermost last). out_dim*: output sizes; a_*/b_*: element
  // strides of operand a/b for each output dim (0 broadcasts); a_start*: offset per dim (may be
  // negative for padding); a_ext*: operand a's extent per dim (reads outside are 0).
  d0: u32, d1: u32, d2: u32, d3: u32, d4: u32, d5: u32,
  as0: i32, as1: i32, as2: i32, as3: i32, as4: i32, as5: i32,
  bs0: i32, bs1: i32, bs2: i32, bs3: i32, bs4: i32, bs5: i32,
  ast0: i32, ast1: i32, ast2: i32, ast3: i32, ast4: i32, ast5: i32,
  ae0: u32, ae1: u32, ae2: u32, ae3: u32, ae4: u32, ae5: u32,
  a_off: u32,
  b_off: u32,
  // binary / gather over tensors larger than one binding: the bound windows of x and y are
  // elements [x_lo, x_lo + x_len) and [b_lo, b_lo + b_len) of the whole tensors. An output element
  // whose source lies outside a window is left for the dispatch that binds it; write_pad = 1 makes
  // this dispatch write the zeros of gather's padding (exactly one dispatch per output chunk does).
  x_lo: u32,
  x_len: u32,
  b_lo: u32,
  b_len: u32,
  write_pad: u32,
  // binary / gather: how many innermost dims of the (front-padded) geometry can exceed 1, 1..6.
  // A uniform rather than an override: it follows the shapes (merged dims, batch sizes), and a
  // pipeline per value would be created whenever the data brings a new one.
  nd: u32,
}

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> y: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<uniform> params: Params;

// vec4 views for the *4 entries.
@group(0) @binding(0) var<storage, read> x4: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> y4: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> out4: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read_write> out14: array<vec4<f32>>;
@group(0) @binding(0) var<storage, read_write> acc4: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> src4: array<vec4<f32>>;
@group(0) @binding(0) var<storage, read_write> dst4: array<vec4<f32>>;

// In-place entries bind their accumulator at binding 0 instead.
@group(0) @binding(0) var<storage, read_write> acc: array<f32>;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<uniform> params_ip: Params;
// fill binds only its output.
@group(0) @binding(0) var<storage, read_write> dst: array<f32>;
@group(0) @binding(1) var<uniform> params_fill: Params;
// unary / gather bind input + output.
@group(0) @binding(1) var<storage, read_write> out1: array<f32>;
@group(0) @binding(2) var<uniform> params_un: Params;

override WG: u32 = 256u;
override OP: u32 = 0u;
// Consecutive outputs (scalar binary / gather) or vec4s (every *4 entry) per invocation. Strided
// entries compute their coordinates (integer division, which CPU drivers run lane by lane) once
// per run and step them along the innermost dim.
const RUN: u32 = 4u;

const INV_SQRT2: f32 = 0.70710678118654752;
const INV_SQRT_2PI: f32 = 0.39894228040143268;

fn linear_id(wid: vec3<u32>, nwg: vec3<u32>, lid: vec3<u32>) -> u32 {
  return (wid.y * nwg.x + wid.x) * WG + lid.x;
}

// The items [x, y) this invocation takes when each takes RUN consecutive ones of `count` (outputs,
// or vec4s of the *4 entries); empty past the end. The strided entries walk it as j < RUN with a
// break at y: a constant trip count, which CPU drivers unroll (bounds x..y measured ~10 % slower).
fn run_range(wid: vec3<u32>, nwg: vec3<u32>, lid: vec3<u32>, count: u32) -> vec2<u32> {
  let i0 = linear_id(wid, nwg, lid) * RUN;
  return vec2<u32>(i0, min(i0 + RUN, count));
}

// erf for f32: sign(x) * (1 - t*exp(-x^2 + poly(t))), Numerical Recipes erfc (fractional error < 1.2e-7).
fn erf_f32(u: f32) -> f32 {
  let z = abs(u);
  let t = 1.0 / (1.0 + 0.5 * z);
  let p = -z * z - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (-0.18628806 +
          t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277))))))));
  let r = 1.0 - t * exp(p);
  return select(-r, r, u >= 0.0);
}

fn sigmoid_f32(v: f32) -> f32 {
  let e = exp(-abs(v));
  return select(e / (1.0 + e), 1.0 / (1.0 + e), v >= 0.0);
}

// OP codes for `unary`: 0 relu, 1 gelu (erf), 2 sigmoid, 3 affine alpha*x+beta, 4 exp, 5 square,
// 6 sqrt, 7 abs.
fn unary_op(v: f32) -> f32 {
  switch OP {
    case 0u: { return max(v, 0.0); }
    case 1u: { return 0.5 * v * (1.0 + erf_f32(v * INV_SQRT2)); }
    case 2u: { return sigmoid_f32(v); }
    case 3u: { return params_un.alpha * v + params_un.beta; }
    case 4u: { return exp(v); }
    case 5u: { return v * v; }
    case 6u: { return sqrt(v); }
    default: { return abs(v); }
  }
}

@compute @workgroup_size(WG)
fn unary(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
         @builtin(local_invocation_id) lid: vec3<u32>) {
  let i = linear_id(wid, nwg, lid);
  if (i >= params_un.n) { return; }
  out1[i] = unary_op(x[i]);
}

// OP codes for `unary_grad` (x = forward input, y = upstream grad): 0 relu, 1 gelu, 2 sigmoid
// (x holds the forward OUTPUT s: ds = dy*s*(1-s)).
@compute @workgroup_size(WG)
fn unary_grad(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_id) lid: vec3<u32>) {
  let i = linear_id(wid, nwg, lid);
  if (i >= params.n) { return; }
  let v = x[i];
  let g = y[i];
  var d: f32;
  switch OP {
    case 0u: { d = select(0.0, g, v > 0.0); }
    case 1u: {
      let cdf = 0.5 * (1.0 + erf_f32(v * INV_SQRT2));
      let pdf = INV_SQRT_2PI * exp(-0.5 * v * v);
      d = g * (cdf + v * pdf);
    }
    default: { d = g * v * (1.0 - v); }
  }
  out[i] = d;
}

// Coordinates of output i of this dispatch (flat index i + i_off) in the rank-6 shape (d0, .., d5),
// innermost last. Shapes are padded at the front, so only the innermost nd dims can exceed 1: the
// others get coordinate 0 and only nd - 1 divisions run (CPU drivers divide lane by lane; nd is
// uniform, so the branches are too).
fn unravel(p: Params, i: u32) -> array<u32, 6> {
  var c: array<u32, 6>;
  var r = i + p.i_off;
  if (p.nd <= 1u) { c[5] = r; return c; }
  c[5] = r % p.d5; r = r / p.d5;
  if (p.nd == 2u) { c[4] = r; return c; }
  c[4] = r % p.d4; r = r / p.d4;
  if (p.nd == 3u) { c[3] = r; return c; }
  c[3] = r % p.d3; r = r / p.d3;
  if (p.nd == 4u) { c[2] = r; return c; }
  c[2] = r % p.d2; r = r / p.d2;
  if (p.nd == 5u) { c[1] = r; return c; }
  c[1] = r % p.d1;
  c[0] = r / p.d1;
  return c;
}

// Coordinates of output i, which lies `step` outputs after the one at c: a step along the
// innermost dim, or a fresh unravel where that dim ends (binary / gather runs: step 1; gather4: 4).
fn step_coords(p: Params, c: array<u32, 6>, i: u32, step: u32) -> array<u32, 6> {
  var n = c;
  n[5] += step;
  if (n[5] == p.d5) { return unravel(p, i); }
  return n;
}

// Element of x (a) / y (b) that the broadcast output at coordinate c reads.
fn bc_src_a(p: Params, c: array<u32, 6>) -> i32 {
  return i32(p.a_off) + i32(c[0]) * p.as0 + i32(c[1]) * p.as1 + i32(c[2]) * p.as2 +
         i32(c[3]) * p.as3 + i32(c[4]) * p.as4 + i32(c[5]) * p.as5;
}
fn bc_src_b(p: Params, c: array<u32, 6>) -> i32 {
  return i32(p.b_off) + i32(c[0]) * p.bs0 + i32(c[1]) * p.bs1 + i32(c[2]) * p.bs2 +
         i32(c[3]) * p.bs3 + i32(c[4]) * p.bs4 + i32(c[5]) * p.bs5;
}

// a OP b for the binary entries (OP: 0 add, 1 sub, 2 mul, 3 div); the scalar entry uses lane x.
fn binary_op4(a: vec4<f32>, b: vec4<f32>) -> vec4<f32> {
  switch OP {
    case 0u: { return a + b; }
    case 1u: { return a - b; }
    case 2u: { return a * b; }
    default: { return a / b; }
  }
}

// OP codes for `binary`: 0 add, 1 sub, 2 mul, 3 div. Operands are addressed through the
// broadcast strides (a_* for x, b_* for y). RUN consecutive outputs per invocation, as in gather.
@compute @workgroup_size(WG)
fn binary(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
          @builtin(local_invocation_id) lid: vec3<u32>) {
  let p = params;
  let r = run_range(wid, nwg, lid, p.n);
  if (r.x >= r.y) { return; }
  var c = unravel(p, r.x);
  for (var j = 0u; j < RUN; j++) {
    let i = r.x + j;
    if (i >= r.y) { break; }
    if (j > 0u) { c = step_coords(p, c, i, 1u); }
    // Window-relative indices; a source outside its window wraps to a huge u32 and is skipped.
    let ra = u32(bc_src_a(p, c)) - p.x_lo;
    let rb = u32(bc_src_b(p, c)) - p.b_lo;
    if (ra < p.x_len && rb < p.b_len) {
      out[i] = binary_op4(vec4<f32>(x[ra]), vec4<f32>(y[rb])).x;
    }
  }
}

// `binary` with vec4 loads and stores, for broadcasts whose innermost dim is read contiguously by
// both operands: as5 = bs5 = 1 and d5, a_off, b_off and every other stride multiples of 4 (the TS
// side checks this and binds whole tensors, no windows). RUN vec4s per invocation, stepped like
// gather4; grid over ceil(n / (4 * RUN)) invocations.
@compute @workgroup_size(WG)
fn binary_bc4(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_id) lid: vec3<u32>) {
  let p = params;
  let r = run_range(wid, nwg, lid, p.n / 4u);
  if (r.x >= r.y) { return; }
  var c = unravel(p, r.x * 4u);
  for (var j = 0u; j < RUN; j++) {
    let q = r.x + j;
    if (q >= r.y) { break; }
    if (j > 0u) { c = step_coords(p, c, q * 4u, 4u); }
    out4[q] = binary_op4(x4[u32(bc_src_a(p, c)) >> 2u], y4[u32(bc_src_b(p, c)) >> 2u]);
  }
}

// acc = alpha * acc + beta * src (same shape). Used for gradient accumulation and updates.
@compute @workgroup_size(WG)
fn axpby(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
         @builtin(local_invocation_id) lid: vec3<u32>) {
  let i = linear_id(wid, nwg, lid);
  if (i >= params_ip.n) { return; }
  acc[i] = params_ip.alpha * acc[i] + params_ip.beta * src[i];
}

// dst = alpha * dst + beta, in place.
@compute @workgroup_size(WG)
fn affine_inplace(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                  @builtin(local_invocation_id) lid: vec3<u32>) {
  let i = linear_id(wid, nwg, lid);
  if (i >= params_fill.n) { return; }
  dst[i] = params_fill.alpha * dst[i] + params_fill.beta;
}

@compute @workgroup_size(WG)
fn fill(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_id) lid: vec3<u32>) {
  let i = linear_id(wid, nwg, lid);
  if (i >= params_fill.n) { return; }
  dst[i] = params_fill.alpha;
}

fn in_ext(v: i32, e: u32) -> bool {
  return v >= 0 && v < i32(e);
}

// out[c] = x[a_off + sum_d (c_d + ast_d) * as_d] when every c_d + ast_d lies in [0, ae_d), else 0.
// Permute: as_d = permuted strides, ast_d = 0, ae_d = d_d. Pad: ast_d = -pad_lo. Crop: ast_d = lo.
// Dispatch: 1-D over ceil(n / RUN) invocations, RUN consecutive outputs each.

// Source element of the read at output coordinate c, or -1 when some c_d + ast_d lies outside
// [0, ae_d) (padding).
fn gather_src(p: Params, c: array<u32, 6>) -> i32 {
  let s0 = i32(c[0]) + p.ast0; let s1 = i32(c[1]) + p.ast1; let s2 = i32(c[2]) + p.ast2;
  let s3 = i32(c[3]) + p.ast3; let s4 = i32(c[4]) + p.ast4; let s5 = i32(c[5]) + p.ast5;
  let inside = in_ext(s0, p.ae0) && in_ext(s1, p.ae1) && in_ext(s2, p.ae2) && in_ext(s3, p.ae3) &&
               in_ext(s4, p.ae4) && in_ext(s5, p.ae5);
  if (!inside) { return -1; }
  return i32(p.a_off) + s0 * p.as0 + s1 * p.as1 + s2 * p.as2 + s3 * p.as3 + s4 * p.as4 + s5 * p.as5;
}

@compute @workgroup_size(WG)
fn gather(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
          @builtin(local_invocation_id) lid: vec3<u32>) {
  let p = params_un;
  let r = run_range(wid, nwg, lid, p.n);
  if (r.x >= r.y) { return; }
  var c = unravel(p, r.x);
  for (var j = 0u; j < RUN; j++) {
    let i = r.x + j;
    if (i >= r.y) { break; }
    if (j > 0u) { c = step_coords(p, c, i, 1u); }
    let si = gather_src(p, c);
    if (si >= 0) {
      let rel = u32(si) - p.x_lo;
      if (rel < p.x_len) { out1[i] = x[rel]; }
    } else if (p.write_pad != 0u) {
      out1[i] = 0.0;
    }
  }
}

// gather with vec4 loads and stores, for geometries whose innermost dim is read contiguously in
// whole aligned vec4s: as5 = 1 and d5, ast5, ae5, a_off and every other stride multiples of 4
// (the TS side checks this and binds whole tensors, no windows). Output vec4 q holds outputs
// 4q..4q+3 of one innermost row, all inside or all outside the read extent. RUN vec4s per
// invocation, stepped like gather; grid over ceil(n / (4 * RUN)) invocations.
@compute @workgroup_size(WG)
fn gather4(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_id) lid: vec3<u32>) {
  let p = params_un;
  let r = run_range(wid, nwg, lid, p.n / 4u);
  if (r.x >= r.y) { return; }
  var c = unravel(p, r.x * 4u);
  for (var j = 0u; j < RUN; j++) {
    let q = r.x + j;
    if (q >= r.y) { break; }
    if (j > 0u) { c = step_coords(p, c, q * 4u, 4u); }
    let si = gather_src(p, c);
    var v = vec4<f32>(0.0);
    if (si >= 0) { v = x4[u32(si) >> 2u]; }
    out14[q] = v;
  }
}

// ---------------------------------------------------------------- vec4 entries (see header)

fn erf4(v: vec4<f32>) -> vec4<f32> {
  return vec4<f32>(erf_f32(v.x), erf_f32(v.y), erf_f32(v.z), erf_f32(v.w));
}

fn sigmoid4(v: vec4<f32>) -> vec4<f32> {
  let e = exp(-abs(v));
  return select(e / (1.0 + e), 1.0 / (1.0 + e), v >= vec4<f32>(0.0));
}

fn unary_op4(v: vec4<f32>) -> vec4<f32> {
  switch OP {
    case 0u: { return max(v, vec4<f32>(0.0)); }
    case 1u: { return 0.5 * v * (1.0 + erf4(v * INV_SQRT2)); }
    case 2u: { return sigmoid4(v); }
    case 3u: { return params_un.alpha * v + params_un.beta; }
    case 4u: { return exp(v); }
    case 5u: { return v * v; }
    case 6u: { return sqrt(v); }
    default: { return abs(v); }
  }
}

@compute @workgroup_size(WG)
fn unary4(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
          @builtin(local_invocation_id) lid: vec3<u32>) {
  let r = run_range(wid, nwg, lid, (params_un.n + 3u) / 4u);
  for (var i = r.x; i < r.y; i++) {
    out14[i] = unary_op4(x4[i]);
  }
}

fn unary_grad_op4(v: vec4<f32>, g: vec4<f32>) -> vec4<f32> {
  switch OP {
    case 0u: { return select(vec4<f32>(0.0), g, v > vec4<f32>(0.0)); }
    case 1u: {
      let cdf = 0.5 * (1.0 + erf4(v * INV_SQRT2));
      let pdf = INV_SQRT_2PI * exp(-0.5 * v * v);
      return g * (cdf + v * pdf);
    }
    default: { return g * v * (1.0 - v); }
  }
}

@compute @workgroup_size(WG)
fn unary_grad4(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_id) lid: vec3<u32>) {
  let r = run_range(wid, nwg, lid, (params.n + 3u) / 4u);
  for (var i = r.x; i < r.y; i++) {
    out4[i] = unary_grad_op4(x4[i], y4[i]);
  }
}

// Same-shape binary op (no broadcasting), OP as in `binary`.
@compute @workgroup_size(WG)
fn binary4(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_id) lid: vec3<u32>) {
  let r = run_range(wid, nwg, lid, (params.n + 3u) / 4u);
  for (var i = r.x; i < r.y; i++) {
    out4[i] = binary_op4(x4[i], y4[i]);
  }
}

@compute @workgroup_size(WG)
fn axpby4(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
          @builtin(local_invocation_id) lid: vec3<u32>) {
  let r = run_range(wid, nwg, lid, (params_ip.n + 3u) / 4u);
  for (var i = r.x; i < r.y; i++) {
    acc4[i] = params_ip.alpha * acc4[i] + params_ip.beta * src4[i];
  }
}

@compute @workgroup_size(WG)
fn affine_inplace4(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                   @builtin(local_invocation_id) lid: vec3<u32>) {
  let r = run_range(wid, nwg, lid, (params_fill.n + 3u) / 4u);
  for (var i = r.x; i < r.y; i++) {
    dst4[i] = params_fill.alpha * dst4[i] + params_fill.beta;
  }
}

@compute @workgroup_size(WG)
fn fill4(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
         @builtin(local_invocation_id) lid: vec3<u32>) {
  let r = run_range(wid, nwg, lid, (params_fill.n + 3u) / 4u);
  for (var i = r.x; i < r.y; i++) {
    dst4[i] = vec4<f32>(params_fill.alpha);
  }
}
