// maxpool.wgsl: MaxPool2d (PyTorch semantics, dilation 1, floor mode) forward with saved argmax,
// and a deterministic gather backward.
//
// Shapes: x (P, H, W) planes (P = N*C, or a chunk of them) -> y, idx (P, Ho, Wo),
//   Ho = floor((H + 2*PH - KH) / SH) + 1 (same for W). Padding is -inf: windows are clipped to the
//   image, so padded positions never win.
// Bindings (group 0):
//   fwd: 0 x (read)  1 y (read_write)   2 idx (read_write, i32)  3 params
//   bwd: 0 dy (read) 1 idx_in (read, i32) 2 dx (read_write)      3 params
// Batch splitting: x/dx are bound as a chunk of planes starting at element x_base of the binding;
//   y, idx, dy at element y_base (y and idx start at the same element, so they share the base).
// fwd: one invocation per output element; scans the clipped window row by row and keeps the first
//   strict maximum (a NaN replaces the running max, as in PyTorch); idx = y*W + x in the plane.
// bwd: one invocation per input element; visits the (at most ceil(KH/SH) x ceil(KW/SW)) windows
//   that contain it in output order and adds dy where idx points at it. No atomics: deterministic.
//   The window range uses a float-estimated, integer-corrected division (udiv).
// fwd_k3s2 / bwd_k3s2: the ResNet stem case (3x3, stride 2, padding 1, W % 8 == 0) with vec4 loads
//   and stores: fwd computes 4 adjacent outputs of a row from 3 rows x (1 + 2) vec4 loads (columns
//   8t-1 .. 8t+7); bwd computes 8 adjacent inputs of a row from at most 2 output rows x (idx, dy)
//   x 2 vec4 loads. Same scan order, tie and NaN rules and summation order as fwd / bwd.
//   Bindings: fwd_k3s2: 0 x4 (read) 1 y4 (read_write) 2 idx4 (read_write, vec4<i32>) 3 params;
//             bwd_k3s2: 0 dy4 (read) 1 idx4_in (read, vec4<i32>) 2 dx4 (read_write) 3 params.
//   Grid as below with cols = Wo/4 (fwd) or W/8 (bwd).
// Dispatch: 3-D, no index divisions: workgroup (WX, WY) covers WX columns x WY rows of one plane;
//   grid (ceil(cols/WX), ceil(rows/WY), planes) with cols/rows those of y (fwd) or x (bwd); the
//   host splits more than 65535 planes into several dispatches.
// Numerics: forward is exact; backward sums in output scan order (as PyTorch's scatter does).
// Override constants: WX, WY (workgroup size).

struct Params {
  P: u32,       // planes in this dispatch
  H: u32,
  W: u32,
  Ho: u32,
  Wo: u32,
  KH: u32,
  KW: u32,
  SH: u32,
  SW: u32,
  PH: u32,
  PW: u32,
  x_base: u32,
  y_base: u32,
}

override WX: u32 = 8u;
override WY: u32 = 8u;

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
@group(0) @binding(2) var<storage, read_write> idx: array<i32>;
@group(0) @binding(3) var<uniform> params: Params;

// NaN test on the bits (float comparisons may be folded under fast-math).
fn is_nan(v: f32) -> bool {
  return (bitcast<u32>(v) & 0x7fffffffu) > 0x7f800000u;
}

@compute @workgroup_size(WX, WY)
fn fwd(@builtin(global_invocation_id) gid: vec3<u32>) {
  let p = params;
  let ox = gid.x;
  let oy = gid.y;
  let plane = gid.z;
  if (ox >= p.Wo || oy >= p.Ho || plane >= p.P) { return; }
  let e = (plane * p.Ho + oy) * p.Wo + ox;
  let ys = i32(oy * p.SH) - i32(p.PH);
  let xs = i32(ox * p.SW) - i32(p.PW);
  let y0 = u32(max(ys, 0));
  let y1 = u32(min(ys + i32(p.KH), i32(p.H)));
  let x0 = u32(max(xs, 0));
  let x1 = u32(min(xs + i32(p.KW), i32(p.W)));
  let base = p.x_base + plane * p.H * p.W;
  // Start from the window's first element (equivalent to PyTorch's -inf start: a value only
  // replaces it when strictly larger or NaN, and a NaN first element replaces -inf there too).
  var at = y0 * p.W + x0;
  var best = x[base + at];
  for (var yy = y0; yy < y1; yy = yy + 1u) {
    let row = yy * p.W;
    for (var xx = x0; xx < x1; xx = xx + 1u) {
      let v = x[base + row + xx];
      if (v > best || is_nan(v)) {
        best = v;
        at = row + xx;
      }
    }
  }
  y[p.y_base + e] = best;
  idx[p.y_base + e] = i32(at);
}

@group(0) @binding(0) var<storage, read> dy: array<f32>;
@group(0) @binding(1) var<storage, read> idx_in: array<i32>;
@group(0) @binding(2) var<storage, read_write> dx: array<f32>;

// a / d for a < 2^23 without an integer division (a per-lane loop on CPU adapters): a float
// estimate, then one correction step each way.
fn udiv(a: u32, d: u32, inv: f32) -> u32 {
  var q = u32(f32(a) * inv);
  if (q * d > a) { q = q - 1u; }
  if ((q + 1u) * d <= a) { q = q + 1u; }
  return q;
}

@compute @workgroup_size(WX, WY)
fn bwd(@builtin(global_invocation_id) gid: vec3<u32>) {
  let p = params;
  let xx = gid.x;
  let yy = gid.y;
  let plane = gid.z;
  if (xx >= p.W || yy >= p.H || plane >= p.P) { return; }
  let e = (plane * p.H + yy) * p.W + xx;
  // Windows containing row yy: oy*SH - PH <= yy <= oy*SH - PH + KH - 1.
  let ty = i32(yy + p.PH);
  let tx = i32(xx + p.PW);
  let ish = 1.0 / f32(p.SH);
  let isw = 1.0 / f32(p.SW);
  let oy0 = udiv(u32(max(ty - i32(p.KH) + i32(p.SH), 0)), p.SH, ish);   // ceil((ty-KH+1)/SH), >= 0
  let oy1 = min(udiv(u32(ty), p.SH, ish) + 1u, p.Ho);
  let ox0 = udiv(u32(max(tx - i32(p.KW) + i32(p.SW), 0)), p.SW, isw);
  let ox1 = min(udiv(u32(tx), p.SW, isw) + 1u, p.Wo);
  let me = i32(yy * p.W + xx);
  let obase = p.y_base + plane * p.Ho * p.Wo;
  var s = 0.0;
  for (var oy = oy0; oy < oy1; oy = oy + 1u) {
    for (var ox = ox0; ox < ox1; ox = ox + 1u) {
      let o = obase + oy * p.Wo + ox;
      if (idx_in[o] == me) { s = s + dy[o]; }
    }
  }
  dx[p.x_base + e] = s;
}

// ---- k=3, s=2, p=1, W % 8 == 0 (ResNet stem)
@group(0) @binding(0) var<storage, read> x4: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read_write> y4: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> idx4: array<vec4<i32>>;

fn is_nan4(v: vec4<f32>) -> vec4<bool> {
  return (bitcast<vec4<u32>>(v) & vec4<u32>(0x7fffffffu)) > vec4<u32>(0x7f800000u);
}

@compute @workgroup_size(WX, WY)
fn fwd_k3s2(@builtin(global_invocation_id) gid: vec3<u32>) {
  let p = params;
  let t = gid.x;                 // outputs 4t .. 4t+3 of row oy; input columns 8t-1 .. 8t+7
  let oy = gid.y;
  let plane = gid.z;
  if (4u * t >= p.Wo || oy >= p.Ho || plane >= p.P) { return; }
  let c0 = 8u * t;
  let y0 = u32(max(i32(2u * oy) - 1, 0));
  let y1 = min(2u * oy + 2u, p.H);
  let base = p.x_base + plane * p.H * p.W;
  let has_left = c0 > 0u;
  // Columns of the window taps k = 0, 1, 2 for the 4 outputs: c0 - 1 + 2j + k.
  let colk0 = vec4<i32>(i32(c0) - 1) + vec4<i32>(0, 2, 4, 6);
  var best = vec4<f32>(0.0);
  var at = vec4<i32>(0);
  for (var yy = y0; yy < y1; yy = yy + 1u) {
    let row = base + yy * p.W + c0;
    var left = 0.0;
    if (has_left) { left = x4[row / 4u - 1u].w; }
    let v1 = x4[row / 4u];
    let v2 = x4[row / 4u + 1u];
    let rpos = i32(yy * p.W);
    let k0 = vec4<f32>(left, v1.y, v1.w, v2.y);
    let k1 = vec4<f32>(v1.x, v1.z, v2.x, v2.z);
    let k2 = vec4<f32>(v1.y, v1.w, v2.y, v2.w);
    let valid0 = vec4<bool>(has_left, true, true, true);
    if (yy == y0) {
      // Start from each window's first element (see fwd).
      best = select(k1, k0, valid0);
      at = select(colk0 + 1, colk0, valid0) + vec4<i32>(rpos);
    }
    var m = valid0 & ((k0 > best) | is_nan4(k0));
    best = select(best, k0, m);
    at = select(at, colk0 + vec4<i32>(rpos), m);
    m = (k1 > best) | is_nan4(k1);
    best = select(best, k1, m);
    at = select(at, colk0 + vec4<i32>(rpos + 1), m);
    m = (k2 > best) | is_nan4(k2);
    best = select(best, k2, m);
    at = select(at, colk0 + vec4<i32>(rpos + 2), m);
  }
  let o = (p.y_base + (plane * p.Ho + oy) * p.Wo) / 4u + t;
  y4[o] = best;
  idx4[o] = at;
}

@group(0) @binding(0) var<storage, read> dy4: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> idx4_in: array<vec4<i32>>;
@group(0) @binding(2) var<storage, read_write> dx4: array<vec4<f32>>;

@compute @workgroup_size(WX, WY)
fn bwd_k3s2(@builtin(global_invocation_id) gid: vec3<u32>) {
  let p = params;
  let t = gid.x;                 // inputs 8t .. 8t+7 of row iy; outputs 4t .. 4t+4
  let iy = gid.y;
  let plane = gid.z;
  if (8u * t >= p.W || iy >= p.H || plane >= p.P) { return; }
  let c0 = 8u * t;
  let ox0 = 4u * t;
  // Output rows whose windows (rows 2*oy-1 .. 2*oy+1) contain row iy: ceil((iy-1)/2) = floor(iy/2)
  // .. floor((iy+1)/2), clipped to Ho.
  let oy_lo = iy / 2u;
  let oy_hi = min((iy + 1u) / 2u + 1u, p.Ho);
  let me = vec4<i32>(i32(iy * p.W + c0));
  let me_even = me + vec4<i32>(0, 2, 4, 6);
  let me_odd = me + vec4<i32>(1, 3, 5, 7);
  let has_right = ox0 + 4u < p.Wo;
  var ev = vec4<f32>(0.0);
  var od = vec4<f32>(0.0);
  for (var oy = oy_lo; oy < oy_hi; oy = oy + 1u) {
    let o = (p.y_base + (plane * p.Ho + oy) * p.Wo + ox0) / 4u;
    let iv = idx4_in[o];
    let dv = dy4[o];
    var iv4 = -1;
    var dv4 = 0.0;
    if (has_right) {
      iv4 = idx4_in[o + 1u].x;
      dv4 = dy4[o + 1u].x;
    }
    ev = ev + select(vec4<f32>(0.0), dv, iv == me_even);
    od = od + select(vec4<f32>(0.0), dv, iv == me_odd);
    let ivs = vec4<i32>(iv.y, iv.z, iv.w, iv4);
    let dvs = vec4<f32>(dv.y, dv.z, dv.w, dv4);
    od = od + select(vec4<f32>(0.0), dvs, ivs == me_odd);
  }
  let d = (p.x_base + (plane * p.H + iy) * p.W + c0) / 4u;
  dx4[d] = vec4<f32>(ev.x, od.x, ev.y, od.y);
  dx4[d + 1u] = vec4<f32>(ev.z, od.z, ev.w, od.w);
}
