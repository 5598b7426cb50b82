// layernorm.wgsl: LayerNorm over the last dim (x viewed as rows x D) and SAM's LayerNorm2d (over C
// of NCHW at each pixel): forward writes y, mean, rstd; backward writes dx, and per-block partial
// sums of dw/db that reduce.wgsl (sum_mid) finishes, so the weight grads are deterministic.
//
// Bindings (group 0); entries ending in 4 bind arrays of vec4<f32> (the *4 names) and need the
// contiguous extent (D for LN, H*W for LN2d), every base, and for ln2d_fwd4/ln2d_bwd4 also C, to
// be multiples of 4:
//   ln_fwd_row[4], ln_fwd_wg, ln2d_fwd[4]:   0 x, 1 w, 2 b, 3 y, 4 mean, 5 rstd, 6 params
//   ln_bwd_row[4], ln_bwd_wg, ln2d_bwd[4]:   0 x, 1 dy, 2 w, 3 mean, 4 rstd, 5 dx, 6 params
//   ln_dwdb[4], ln2d_dwdb[4]:                0 x, 1 dy, 2 mean, 3 rstd, 4 pw, 5 pb, 6 params
// Dispatch: 1-D, folded into (x, y) by grid1d: id = (wid.y * nwg.x + wid.x) * WG + lid.x.
//   ln_*_row[4]: one invocation per row, no barriers (the variant for CPU adapters, where lanes
//     run one by one and barriers are coroutine switches).
//   ln_*_wg: one workgroup of WG (power of two) per row, strided loads and a shared-memory tree
//     (log2 WG barriers per reduction; the variant for real GPUs, coalesced).
//   ln2d_fwd/bwd[4]: one invocation per pixel (vec4: 4 adjacent pixels), looping over C (the vec4
//     entries 4 channels per trip: loop overhead is a large share of the cost on lavapipe).
//   ln_dwdb[4]: one invocation per (row block of `per` rows, column [quad]); writes row
//     p_off + block of pw/pb (D wide). ln2d_dwdb[4]: one invocation per (n, c, lane of `lanes`),
//     lane l takes pixels l, l+lanes, ...; writes pw/pb[(p_off + n*lanes + l)*C + c].
// Splitting: the TS side runs a chunk of rows / samples per dispatch; x_base, g_base (y or dy),
//   o_base (dx) and s_base (mean/rstd) are element offsets of the chunk inside each binding.
// Numerics: two-pass, f32: the mean is accumulated as sum(x - x0) with x0 the row's (pixel's) first
//   value, so a large common offset does not cancel; then the sum of squared deviations from the
//   mean; biased variance; rstd = 1/sqrt(var + eps). Sums use several independent accumulators
//   (vec4 lanes, two vec4s) rather than compensation, which Mesa's reassociating compiler erases.
//   Backward: dx = rstd * (g - mean(g) - xhat * mean(g * xhat)), g = dy * w, xhat recomputed.

struct Params {
  rows: u32,   // LN: rows in this chunk; LN2d: samples in this chunk
  D: u32,      // LN: normalised length; LN2d: channels C
  HW: u32,     // LN2d: pixels per channel plane (1 for LN)
  eps: f32,
  x_base: u32, // element offset of the chunk in x
  g_base: u32, // ... in y (forward) or dy (backward)
  o_base: u32, // ... in dx
  s_base: u32, // ... in mean / rstd
  lanes: u32,  // ln2d_dwdb: lanes per (n, c) plane
  per: u32,    // ln_dwdb: rows per block
  p_off: u32,  // dwdb: first partial row written by this chunk
  nblk: u32,   // ln_dwdb: row blocks in this chunk
}

override WG: u32 = 64u;

// Scalar views.
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> w: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
@group(0) @binding(4) var<storage, read_write> mean: array<f32>;
@group(0) @binding(5) var<storage, read_write> rstd: array<f32>;
@group(0) @binding(6) var<uniform> params: Params;
// Backward views (binding 1 dy, 2 w, 3 mean, 4 rstd, 5 dx).
@group(0) @binding(1) var<storage, read> dy: array<f32>;
@group(0) @binding(2) var<storage, read> w_b: array<f32>;
@group(0) @binding(3) var<storage, read> mean_b: array<f32>;
@group(0) @binding(4) var<storage, read> rstd_b: array<f32>;
@group(0) @binding(5) var<storage, read_write> dx: array<f32>;
// dw/db partial views (binding 2 mean, 3 rstd, 4 pw, 5 pb).
@group(0) @binding(2) var<storage, read> mean_p: array<f32>;
@group(0) @binding(3) var<storage, read> rstd_p: array<f32>;
@group(0) @binding(4) var<storage, read_write> pw: array<f32>;
@group(0) @binding(5) var<storage, read_write> pb: array<f32>;
// vec4 views.
@group(0) @binding(0) var<storage, read> x4: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> w4: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> b4: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> y4: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> dy4: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> w4_b: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read_write> dx4: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> pw4: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read_write> pb4: array<vec4<f32>>;
// LN2d vec4 statistics (4 adjacent pixels).
@group(0) @binding(4) var<storage, read_write> mean4: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read_write> rstd4: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> mean4_b: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read> rstd4_b: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> mean4_p: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> rstd4_p: array<vec4<f32>>;

var<workgroup> red: array<f32, WG>;
var<workgroup> red2: array<vec2<f32>, WG>;

fn linear_id(wid: vec3<u32>, nwg: vec3<u32>, lid: vec3<u32>) -> u32 {
  return (wid.y * nwg.x + wid.x) * WG + lid.x;
}

fn hsum(v: vec4<f32>) -> f32 {
  return (v.x + v.y) + (v.z + v.w);
}

// Workgroup tree sums (call from workgroup-uniform control flow).
fn tree_sum(l: u32, v: f32) -> f32 {
  red[l] = v;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s = s / 2u) {
    if (l < s) { red[l] = red[l] + red[l + s]; }
    workgroupBarrier();
  }
  let t = red[0];
  workgroupBarrier();
  return t;
}

fn tree_sum2(l: u32, v: vec2<f32>) -> vec2<f32> {
  red2[l] = v;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s = s / 2u) {
    if (l < s) { red2[l] = red2[l] + red2[l + s]; }
    workgroupBarrier();
  }
  let t = red2[0];
  workgroupBarrier();
  return t;
}

// ------------------------------------------------------------------ LayerNorm over the last dim

@compute @workgroup_size(WG)
fn ln_fwd_row4(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_id) lid: vec3<u32>) {
  let r = linear_id(wid, nwg, lid);
  if (r >= params.rows) { return; }
  let D4 = params.D / 4u;
  let xo = params.x_base / 4u + r * D4;
  let yo = params.g_base / 4u + r * D4;
  let K = x4[xo].x;
  var s0 = vec4<f32>(0.0);
  var s1 = vec4<f32>(0.0);
  var k = 0u;
  for (; k + 2u <= D4; k = k + 2u) {
    s0 = s0 + (x4[xo + k] - K);
    s1 = s1 + (x4[xo + k + 1u] - K);
  }
  if (k < D4) { s0 = s0 + (x4[xo + k] - K); }
  let mu = K + hsum(s0 + s1) / f32(params.D);
  var q0 = vec4<f32>(0.0);
  var q1 = vec4<f32>(0.0);
  k = 0u;
  for (; k + 2u <= D4; k = k + 2u) {
    let d0 = x4[xo + k] - mu;
    let d1 = x4[xo + k + 1u] - mu;
    q0 = fma(d0, d0, q0);
    q1 = fma(d1, d1, q1);
  }
  if (k < D4) { let d0 = x4[xo + k] - mu; q0 = fma(d0, d0, q0); }
  let rs = 1.0 / sqrt(hsum(q0 + q1) / f32(params.D) + params.eps);
  for (k = 0u; k < D4; k = k + 1u) {
    y4[yo + k] = fma((x4[xo + k] - mu) * rs, w4[k], b4[k]);
  }
  mean[params.s_base + r] = mu;
  rstd[params.s_base + r] = rs;
}

@compute @workgroup_size(WG)
fn ln_fwd_row(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_id) lid: vec3<u32>) {
  let r = linear_id(wid, nwg, lid);
  if (r >= params.rows) { return; }
  let D = params.D;
  let xo = params.x_base + r * D;
  let yo = params.g_base + r * D;
  let K = x[xo];
  var s = vec4<f32>(0.0);
  var k = 0u;
  for (; k + 4u <= D; k = k + 4u) {
    s = s + (vec4<f32>(x[xo + k], x[xo + k + 1u], x[xo + k + 2u], x[xo + k + 3u]) - K);
  }
  for (; k < D; k = k + 1u) { s.x = s.x + (x[xo + k] - K); }
  let mu = K + hsum(s) / f32(D);
  var q = vec4<f32>(0.0);
  k = 0u;
  for (; k + 4u <= D; k = k + 4u) {
    let d = vec4<f32>(x[xo + k], x[xo + k + 1u], x[xo + k + 2u], x[xo + k + 3u]) - mu;
    q = fma(d, d, q);
  }
  for (; k < D; k = k + 1u) { let d = x[xo + k] - mu; q.x = fma(d, d, q.x); }
  let rs = 1.0 / sqrt(hsum(q) / f32(D) + params.eps);
  for (k = 0u; k < D; k = k + 1u) {
    y[yo + k] = fma((x[xo + k] - mu) * rs, w[k], b[k]);
  }
  mean[params.s_base + r] = mu;
  rstd[params.s_base + r] = rs;
}

@compute @workgroup_size(WG)
fn ln_fwd_wg(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
             @builtin(local_invocation_id) lid: vec3<u32>) {
  let r = wid.y * nwg.x + wid.x;
  if (r >= params.rows) { return; }
  let l = lid.x;
  let D = params.D;
  let xo = params.x_base + r * D;
  let yo = params.g_base + r * D;
  let K = x[xo];
  var s = 0.0;
  for (var k = l; k < D; k = k + WG) { s = s + (x[xo + k] - K); }
  let mu = K + tree_sum(l, s) / f32(D);
  var q = 0.0;
  for (var k = l; k < D; k = k + WG) { let d = x[xo + k] - mu; q = fma(d, d, q); }
  let rs = 1.0 / sqrt(tree_sum(l, q) / f32(D) + params.eps);
  for (var k = l; k < D; k = k + WG) {
    y[yo + k] = fma((x[xo + k] - mu) * rs, w[k], b[k]);
  }
  if (l == 0u) {
    mean[params.s_base + r] = mu;
    rstd[params.s_base + r] = rs;
  }
}

@compute @workgroup_size(WG)
fn ln_bwd_row4(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_id) lid: vec3<u32>) {
  let r = linear_id(wid, nwg, lid);
  if (r >= params.rows) { return; }
  let D4 = params.D / 4u;
  let xo = params.x_base / 4u + r * D4;
  let go = params.g_base / 4u + r * D4;
  let oo = params.o_base / 4u + r * D4;
  let mu = mean_b[params.s_base + r];
  let rs = rstd_b[params.s_base + r];
  var sg = vec4<f32>(0.0);
  var sgx = vec4<f32>(0.0);
  for (var k = 0u; k < D4; k = k + 1u) {
    let g = dy4[go + k] * w4_b[k];
    sg = sg + g;
    sgx = fma(g, (x4[xo + k] - mu) * rs, sgx);
  }
  let inv = 1.0 / f32(params.D);
  let mg = hsum(sg) * inv;
  let mgx = hsum(sgx) * inv;
  for (var k = 0u; k < D4; k = k + 1u) {
    let g = dy4[go + k] * w4_b[k];
    let xh = (x4[xo + k] - mu) * rs;
    dx4[oo + k] = rs * (g - mg - xh * mgx);
  }
}

@compute @workgroup_size(WG)
fn ln_bwd_row(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_id) lid: vec3<u32>) {
  let r = linear_id(wid, nwg, lid);
  if (r >= params.rows) { return; }
  let D = params.D;
  let xo = params.x_base + r * D;
  let go = params.g_base + r * D;
  let oo = params.o_base + r * D;
  let mu = mean_b[params.s_base + r];
  let rs = rstd_b[params.s_base + r];
  var sg = vec2<f32>(0.0);
  var sgx = vec2<f32>(0.0);
  var k = 0u;
  for (; k + 2u <= D; k = k + 2u) {
    let g = vec2<f32>(dy[go + k] * w_b[k], dy[go + k + 1u] * w_b[k + 1u]);
    let xh = (vec2<f32>(x[xo + k], x[xo + k + 1u]) - mu) * rs;
    sg = sg + g;
    sgx = fma(g, xh, sgx);
  }
  if (k < D) {
    let g = dy[go + k] * w_b[k];
    sg.x = sg.x + g;
    sgx.x = fma(g, (x[xo + k] - mu) * rs, sgx.x);
  }
  let inv = 1.0 / f32(D);
  let mg = (sg.x + sg.y) * inv;
  let mgx = (sgx.x + sgx.y) * inv;
  for (k = 0u; k < D; k = k + 1u) {
    let g = dy[go + k] * w_b[k];
    let xh = (x[xo + k] - mu) * rs;
    dx[oo + k] = rs * (g - mg - xh * mgx);
  }
}

@compute @workgroup_size(WG)
fn ln_bwd_wg(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
             @builtin(local_invocation_id) lid: vec3<u32>) {
  let r = wid.y * nwg.x + wid.x;
  if (r >= params.rows) { return; }
  let l = lid.x;
  let D = params.D;
  let xo = params.x_base + r * D;
  let go = params.g_base + r * D;
  let oo = params.o_base + r * D;
  let mu = mean_b[params.s_base + r];
  let rs = rstd_b[params.s_base + r];
  var s = vec2<f32>(0.0);
  for (var k = l; k < D; k = k + WG) {
    let g = dy[go + k] * w_b[k];
    s = s + vec2<f32>(g, g * (x[xo + k] - mu) * rs);
  }
  let t = tree_sum2(l, s) / f32(D);
  for (var k = l; k < D; k = k + WG) {
    let g = dy[go + k] * w_b[k];
    let xh = (x[xo + k] - mu) * rs;
    dx[oo + k] = rs * (g - t.x - xh * t.y);
  }
}

@compute @workgroup_size(WG)
fn ln_dwdb4(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_id) lid: vec3<u32>) {
  let t = linear_id(wid, nwg, lid);
  let D4 = params.D / 4u;
  if (t >= params.nblk * D4) { return; }
  let j = t / D4;
  let q = t % D4;
  let r0 = j * params.per;
  let r1 = min(r0 + params.per, params.rows);
  var aw = vec4<f32>(0.0);
  var ab = vec4<f32>(0.0);
  for (var r = r0; r < r1; r = r + 1u) {
    let g = dy4[params.g_base / 4u + r * D4 + q];
    let xh = (x4[params.x_base / 4u + r * D4 + q] - mean_p[params.s_base + r]) * rstd_p[params.s_base + r];
    aw = fma(g, xh, aw);
    ab = ab + g;
  }
  let o = (params.p_off + j) * D4 + q;
  pw4[o] = aw;
  pb4[o] = ab;
}

@compute @workgroup_size(WG)
fn ln_dwdb(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_id) lid: vec3<u32>) {
  let t = linear_id(wid, nwg, lid);
  let D = params.D;
  if (t >= params.nblk * D) { return; }
  let j = t / D;
  let q = t % D;
  let r0 = j * params.per;
  let r1 = min(r0 + params.per, params.rows);
  var aw = 0.0;
  var ab = 0.0;
  for (var r = r0; r < r1; r = r + 1u) {
    let g = dy[params.g_base + r * D + q];
    let xh = (x[params.x_base + r * D + q] - mean_p[params.s_base + r]) * rstd_p[params.s_base + r];
    aw = fma(g, xh, aw);
    ab = ab + g;
  }
  let o = (params.p_off + j) * D + q;
  pw[o] = aw;
  pb[o] = ab;
}

// ------------------------------------------------------------------ LayerNorm2d (over C of NCHW)

@compute @workgroup_size(WG)
fn ln2d_fwd4(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
             @builtin(local_invocation_id) lid: vec3<u32>) {
  let t = linear_id(wid, nwg, lid);
  let HW4 = params.HW / 4u;
  if (t >= params.rows * HW4) { return; }
  let n = t / HW4;
  let p = t % HW4;
  let C = params.D;
  let xo = params.x_base / 4u + n * C * HW4 + p;
  let yo = params.g_base / 4u + n * C * HW4 + p;
  // Channels in groups of 4 (C % 4 == 0): fewer loop trips, w/b as one vec4 load per group.
  let K = x4[xo];
  var s0 = vec4<f32>(0.0);
  var s1 = vec4<f32>(0.0);
  for (var c = 0u; c < C; c = c + 4u) {
    let o = xo + c * HW4;
    s0 = s0 + ((x4[o] - K) + (x4[o + HW4] - K));
    s1 = s1 + ((x4[o + 2u * HW4] - K) + (x4[o + 3u * HW4] - K));
  }
  let mu = K + (s0 + s1) / f32(C);
  var q0 = vec4<f32>(0.0);
  var q1 = vec4<f32>(0.0);
  for (var c = 0u; c < C; c = c + 4u) {
    let o = xo + c * HW4;
    let d0 = x4[o] - mu;
    let d1 = x4[o + HW4] - mu;
    let d2 = x4[o + 2u * HW4] - mu;
    let d3 = x4[o + 3u * HW4] - mu;
    q0 = fma(d0, d0, fma(d1, d1, q0));
    q1 = fma(d2, d2, fma(d3, d3, q1));
  }
  let rs = 1.0 / sqrt((q0 + q1) / f32(C) + params.eps);
  for (var c = 0u; c < C; c = c + 4u) {
    let wv = w4[c / 4u];
    let bv = b4[c / 4u];
    let o = xo + c * HW4;
    let oy = yo + c * HW4;
    y4[oy] = fma((x4[o] - mu) * rs, vec4<f32>(wv.x), vec4<f32>(bv.x));
    y4[oy + HW4] = fma((x4[o + HW4] - mu) * rs, vec4<f32>(wv.y), vec4<f32>(bv.y));
    y4[oy + 2u * HW4] = fma((x4[o + 2u * HW4] - mu) * rs, vec4<f32>(wv.z), vec4<f32>(bv.z));
    y4[oy + 3u * HW4] = fma((x4[o + 3u * HW4] - mu) * rs, vec4<f32>(wv.w), vec4<f32>(bv.w));
  }
  let so = params.s_base / 4u + n * HW4 + p;
  mean4[so] = mu;
  rstd4[so] = rs;
}

@compute @workgroup_size(WG)
fn ln2d_fwd(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_id) lid: vec3<u32>) {
  let t = linear_id(wid, nwg, lid);
  let HW = params.HW;
  if (t >= params.rows * HW) { return; }
  let n = t / HW;
  let p = t % HW;
  let C = params.D;
  let xo = params.x_base + n * C * HW + p;
  let yo = params.g_base + n * C * HW + p;
  let K = x[xo];
  var s = vec2<f32>(0.0);
  var c = 0u;
  for (; c + 2u <= C; c = c + 2u) {
    s = s + (vec2<f32>(x[xo + c * HW], x[xo + (c + 1u) * HW]) - K);
  }
  if (c < C) { s.x = s.x + (x[xo + c * HW] - K); }
  let mu = K + (s.x + s.y) / f32(C);
  var q = vec2<f32>(0.0);
  c = 0u;
  for (; c + 2u <= C; c = c + 2u) {
    let d = vec2<f32>(x[xo + c * HW], x[xo + (c + 1u) * HW]) - mu;
    q = fma(d, d, q);
  }
  if (c < C) { let d = x[xo + c * HW] - mu; q.x = fma(d, d, q.x); }
  let rs = 1.0 / sqrt((q.x + q.y) / f32(C) + params.eps);
  for (c = 0u; c < C; c = c + 1u) {
    y[yo + c * HW] = fma((x[xo + c * HW] - mu) * rs, w[c], b[c]);
  }
  let so = params.s_base + n * HW + p;
  mean[so] = mu;
  rstd[so] = rs;
}

@compute @workgroup_size(WG)
fn ln2d_bwd4(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
             @builtin(local_invocation_id) lid: vec3<u32>) {
  let t = linear_id(wid, nwg, lid);
  let HW4 = params.HW / 4u;
  if (t >= params.rows * HW4) { return; }
  let n = t / HW4;
  let p = t % HW4;
  let C = params.D;
  let xo = params.x_base / 4u + n * C * HW4 + p;
  let go = params.g_base / 4u + n * C * HW4 + p;
  let oo = params.o_base / 4u + n * C * HW4 + p;
  let so = params.s_base / 4u + n * HW4 + p;
  let mu = mean4_b[so];
  let rs = rstd4_b[so];
  // Channels in groups of 4 (C % 4 == 0), w as one vec4 load per group.
  var sg = vec4<f32>(0.0);
  var sgx = vec4<f32>(0.0);
  for (var c = 0u; c < C; c = c + 4u) {
    let wv = w4_b[c / 4u];
    let o = c * HW4;
    let g0 = dy4[go + o] * wv.x;
    let g1 = dy4[go + o + HW4] * wv.y;
    let g2 = dy4[go + o + 2u * HW4] * wv.z;
    let g3 = dy4[go + o + 3u * HW4] * wv.w;
    sg = sg + ((g0 + g1) + (g2 + g3));
    let a = fma(g0, x4[xo + o] - mu, g1 * (x4[xo + o + HW4] - mu));
    let bb = fma(g2, x4[xo + o + 2u * HW4] - mu, g3 * (x4[xo + o + 3u * HW4] - mu));
    sgx = sgx + (a + bb);
  }
  let inv = 1.0 / f32(C);
  let mg = sg * inv;
  let mgx = sgx * rs * inv;
  for (var c = 0u; c < C; c = c + 4u) {
    let wv = w4_b[c / 4u];
    let o = c * HW4;
    dx4[oo + o] = rs * (dy4[go + o] * wv.x - mg - (x4[xo + o] - mu) * rs * mgx);
    dx4[oo + o + HW4] = rs * (dy4[go + o + HW4] * wv.y - mg - (x4[xo + o + HW4] - mu) * rs * mgx);
    dx4[oo + o + 2u * HW4] =
      rs * (dy4[go + o + 2u * HW4] * wv.z - mg - (x4[xo + o + 2u * HW4] - mu) * rs * mgx);
    dx4[oo + o + 3u * HW4] =
      rs * (dy4[go + o + 3u * HW4] * wv.w - mg - (x4[xo + o + 3u * HW4] - mu) * rs * mgx);
  }
}

@compute @workgroup_size(WG)
fn ln2d_bwd(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_id) lid: vec3<u32>) {
  let t = linear_id(wid, nwg, lid);
  let HW = params.HW;
  if (t >= params.rows * HW) { return; }
  let n = t / HW;
  let p = t % HW;
  let C = params.D;
  let xo = params.x_base + n * C * HW + p;
  let go = params.g_base + n * C * HW + p;
  let oo = params.o_base + n * C * HW + p;
  let so = params.s_base + n * HW + p;
  let mu = mean_b[so];
  let rs = rstd_b[so];
  var sg = 0.0;
  var sgx = 0.0;
  for (var c = 0u; c < C; c = c + 1u) {
    let g = dy[go + c * HW] * w_b[c];
    sg = sg + g;
    sgx = fma(g, (x[xo + c * HW] - mu) * rs, sgx);
  }
  let inv = 1.0 / f32(C);
  let mg = sg * inv;
  let mgx = sgx * inv;
  for (var c = 0u; c < C; c = c + 1u) {
    let g = dy[go + c * HW] * w_b[c];
    let xh = (x[xo + c * HW] - mu) * rs;
    dx[oo + c * HW] = rs * (g - mg - xh * mgx);
  }
}

@compute @workgroup_size(WG)
fn ln2d_dwdb4(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_id) lid: vec3<u32>) {
  let t = linear_id(wid, nwg, lid);
  let L = params.lanes;
  let C = params.D;
  if (t >= params.rows * C * L) { return; }
  let l = t % L;
  let plane = t / L;
  let c = plane % C;
  let n = plane / C;
  let HW4 = params.HW / 4u;
  let xo = params.x_base / 4u + plane * HW4;
  let go = params.g_base / 4u + plane * HW4;
  let so = params.s_base / 4u + n * HW4;
  var aw = vec4<f32>(0.0);
  var ab = vec4<f32>(0.0);
  for (var p = l; p < HW4; p = p + L) {
    let g = dy4[go + p];
    aw = fma(g, (x4[xo + p] - mean4_p[so + p]) * rstd4_p[so + p], aw);
    ab = ab + g;
  }
  let o = (params.p_off + n * L + l) * C + c;
  pw[o] = hsum(aw);
  pb[o] = hsum(ab);
}

@compute @workgroup_size(WG)
fn ln2d_dwdb(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
             @builtin(local_invocation_id) lid: vec3<u32>) {
  let t = linear_id(wid, nwg, lid);
  let L = params.lanes;
  let C = params.D;
  if (t >= params.rows * C * L) { return; }
  let l = t % L;
  let plane = t / L;
  let c = plane % C;
  let n = plane / C;
  let HW = params.HW;
  let xo = params.x_base + plane * HW;
  let go = params.g_base + plane * HW;
  let so = params.s_base + n * HW;
  var aw = 0.0;
  var ab = 0.0;
  for (var p = l; p < HW; p = p + L) {
    let g = dy[go + p];
    aw = fma(g, (x[xo + p] - mean_p[so + p]) * rstd_p[so + p], aw);
    ab = ab + g;
  }
  let o = (params.p_off + n * L + l) * C + c;
  pw[o] = aw;
  pb[o] = ab;
}
