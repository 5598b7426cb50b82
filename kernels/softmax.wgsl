// softmax.wgsl: softmax over the last axis of a (rows, cols) tensor, and its backward
// dx = y * (dy - sum(dy * y)). f32.
//
// Bindings (group 0), each entry: forward 0 x (read), 1 y (read_write), 2 params;
//   backward 0 y (read), 1 dy (read), 2 dx (read_write), 3 params.
//   Bindings may be sub-ranges of larger buffers (row chunks): a_base/b_base/c_base are the element
//   offsets of row 0 of this dispatch in x|y, y|dy, -|dx.
// Entries and dispatch:
//   softmax_rows / softmax_bwd_rows: one invocation per row (many rows), WG rows per workgroup,
//     1-D grid of ceil(rows/WG) folded into (x, y). No barriers (CPU-adapter friendly).
//   softmax_wide / softmax_bwd_wide: one workgroup of WG invocations per row (few long rows, real
//     GPUs); each invocation strides over the row, then a shared-memory tree combines the lanes.
// Numerics: max-subtracted. The row max and the sum of exp are computed in one online pass
//   (running max m and sum s rescaled by exp(m_old - m_new) once per 4 elements), then y =
//   exp(x - m) / s. Sums are blocked (4 elements, then the running value; tree across lanes).

struct Params {
  rows: u32,
  cols: u32,
  a_base: u32,
  b_base: u32,
  c_base: u32,
}

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
@group(0) @binding(2) var<uniform> params: Params;

@group(0) @binding(0) var<storage, read> yb: array<f32>;
@group(0) @binding(1) var<storage, read> dy: array<f32>;
@group(0) @binding(2) var<storage, read_write> dx: array<f32>;
@group(0) @binding(3) var<uniform> params_b: Params;

override WG: u32 = 64u;

const NEG: f32 = -3.0e38;

var<workgroup> red_m: array<f32, WG>;
var<workgroup> red_s: array<f32, WG>;

fn row_id(wid: vec3<u32>, nwg: vec3<u32>) -> u32 {
  return wid.y * nwg.x + wid.x;
}

@compute @workgroup_size(WG)
fn softmax_rows(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_id) lid: vec3<u32>) {
  let r = row_id(wid, nwg) * WG + lid.x;
  if (r >= params.rows) {
    return;
  }
  let n = params.cols;
  let xb = params.a_base + r * n;
  let yo = params.b_base + r * n;
  var m = NEG;
  var s = 0.0;
  var c = 0u;
  for (; c + 4u <= n; c += 4u) {
    let a0 = x[xb + c];
    let a1 = x[xb + c + 1u];
    let a2 = x[xb + c + 2u];
    let a3 = x[xb + c + 3u];
    let mn = max(m, max(max(a0, a1), max(a2, a3)));
    s = s * exp(m - mn) + ((exp(a0 - mn) + exp(a1 - mn)) + (exp(a2 - mn) + exp(a3 - mn)));
    m = mn;
  }
  for (; c < n; c++) {
    let a = x[xb + c];
    let mn = max(m, a);
    s = s * exp(m - mn) + exp(a - mn);
    m = mn;
  }
  let inv = 1.0 / s;
  for (var j = 0u; j < n; j++) {
    y[yo + j] = exp(x[xb + j] - m) * inv;
  }
}

@compute @workgroup_size(WG)
fn softmax_wide(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_id) lid: vec3<u32>) {
  let r = row_id(wid, nwg);
  let valid = r < params.rows;
  let n = params.cols;
  let xb = params.a_base + r * n;
  var m = NEG;
  var s = 0.0;
  if (valid) {
    for (var c = lid.x; c < n; c += WG) {
      let a = x[xb + c];
      let mn = max(m, a);
      s = s * exp(m - mn) + exp(a - mn);
      m = mn;
    }
  }
  red_m[lid.x] = m;
  red_s[lid.x] = s;
  workgroupBarrier();
  for (var st = WG / 2u; st > 0u; st = st / 2u) {
    if (lid.x < st) {
      let m1 = red_m[lid.x];
      let m2 = red_m[lid.x + st];
      let mn = max(m1, m2);
      red_s[lid.x] = red_s[lid.x] * exp(m1 - mn) + red_s[lid.x + st] * exp(m2 - mn);
      red_m[lid.x] = mn;
    }
    workgroupBarrier();
  }
  let mt = red_m[0];
  let inv = 1.0 / red_s[0];
  if (valid) {
    let yo = params.b_base + r * n;
    for (var c = lid.x; c < n; c += WG) {
      y[yo + c] = exp(x[xb + c] - mt) * inv;
    }
  }
}

@compute @workgroup_size(WG)
fn softmax_bwd_rows(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                    @builtin(local_invocation_id) lid: vec3<u32>) {
  let r = row_id(wid, nwg) * WG + lid.x;
  if (r >= params_b.rows) {
    return;
  }
  let n = params_b.cols;
  let yo = params_b.a_base + r * n;
  let go = params_b.b_base + r * n;
  let xo = params_b.c_base + r * n;
  var s0 = 0.0;
  var s1 = 0.0;
  var s2 = 0.0;
  var s3 = 0.0;
  var c = 0u;
  for (; c + 4u <= n; c += 4u) {
    s0 = fma(yb[yo + c], dy[go + c], s0);
    s1 = fma(yb[yo + c + 1u], dy[go + c + 1u], s1);
    s2 = fma(yb[yo + c + 2u], dy[go + c + 2u], s2);
    s3 = fma(yb[yo + c + 3u], dy[go + c + 3u], s3);
  }
  for (; c < n; c++) {
    s0 = fma(yb[yo + c], dy[go + c], s0);
  }
  let dot = (s0 + s1) + (s2 + s3);
  for (var j = 0u; j < n; j++) {
    dx[xo + j] = yb[yo + j] * (dy[go + j] - dot);
  }
}

@compute @workgroup_size(WG)
fn softmax_bwd_wide(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                    @builtin(local_invocation_id) lid: vec3<u32>) {
  let r = row_id(wid, nwg);
  let valid = r < params_b.rows;
  let n = params_b.cols;
  let yo = params_b.a_base + r * n;
  let go = params_b.b_base + r * n;
  var s = 0.0;
  if (valid) {
    for (var c = lid.x; c < n; c += WG) {
      s = fma(yb[yo + c], dy[go + c], s);
    }
  }
  red_s[lid.x] = s;
  workgroupBarrier();
  for (var st = WG / 2u; st > 0u; st = st / 2u) {
    if (lid.x < st) {
      red_s[lid.x] = red_s[lid.x] + red_s[lid.x + st];
    }
    workgroupBarrier();
  }
  let dot = red_s[0];
  if (valid) {
    let xo = params_b.c_base + r * n;
    for (var c = lid.x; c < n; c += WG) {
      dx[xo + c] = yb[yo + c] * (dy[go + c] - dot);
    }
  }
}
