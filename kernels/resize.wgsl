// resize.wgsl: bilinear resize, align_corners=False, no antialias (PyTorch F.interpolate with an
// output size), NCHW, any input and output sizes; forward and a deterministic gather backward.
//
// Per axis: src(o) = max(0, (o + 0.5) * scale - 0.5), scale = in/out (f32, from the host),
//   i0 = floor(src), i1 = min(i0 + 1, in - 1), l1 = src - i0, l0 = 1 - l1.
//   y[p,oy,ox] = ly0*(lx0*x[i0y,i0x] + lx1*x[i0y,i1x]) + ly1*(lx0*x[i1y,i0x] + lx1*x[i1y,i1x]).
// Bindings (group 0): fwd: 0 x (read) 1 y (read_write) 2 params;
//                     bwd: 0 dy (read) 1 dx (read_write) 2 params.
// Batch splitting: x/dx are bound as a chunk of planes starting at element x_base of the binding,
//   y/dy at element y_base.
// fwd: one invocation per 4 adjacent outputs of a row (4 loads each; the row taps are shared).
// bwd: one invocation per 4 adjacent inputs of a row. The outputs o whose taps touch input index i
//   lie in [(i - 0.5)/scale - 0.5, (i + 1.5)/scale - 0.5]; the kernel widens that range (out_range)
//   and recomputes every candidate's taps with the same code as the forward (tap_weight), so the
//   backward is the exact adjoint of the forward whatever the rounding. Rows with zero weight are
//   skipped; each dy value in the union of the 4 inputs' column ranges is loaded once and weighted
//   for all 4. No atomics: deterministic.
// Dispatch: 3-D, no index divisions: workgroup (WX, WY) covers 4*WX columns x WY rows of a plane;
//   grid (ceil(cols/4/WX), ceil(rows/WY), planes) with cols/rows those of y (fwd) or x (bwd); the
//   host splits more than 65535 planes into several dispatches.
// Numerics: f32; the backward sums each row's weighted dy, then the rows.
// Override constants: WX, WY (workgroup size).

struct Params {
  P: u32,        // planes in this dispatch
  H: u32,
  W: u32,
  Ho: u32,
  Wo: u32,
  scale_h: f32,  // H / Ho
  scale_w: f32,  // W / Wo
  x_base: u32,
  y_base: u32,
}

override WX: u32 = 8u;
override WY: u32 = 8u;

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
@group(0) @binding(2) var<uniform> params: Params;

struct Taps {
  i0: u32,
  i1: u32,
  l0: f32,
  l1: f32,
}

fn taps(o: u32, scale: f32, n_in: u32) -> Taps {
  let src = max((f32(o) + 0.5) * scale - 0.5, 0.0);
  let i0 = min(u32(src), n_in - 1u);
  let i1 = select(i0, i0 + 1u, i0 + 1u < n_in);
  let l1 = src - f32(i0);
  return Taps(i0, i1, 1.0 - l1, l1);
}

// Weight with which output o reads input i along one axis.
fn tap_weight(o: u32, i: u32, scale: f32, n_in: u32) -> f32 {
  let t = taps(o, scale, n_in);
  return select(0.0, t.l0, t.i0 == i) + select(0.0, t.l1, t.i1 == i);
}

// Candidate output range [lo, hi) for input index i along one axis.
fn out_range(i: u32, scale: f32, n_out: u32) -> vec2<u32> {
  let lo = floor((f32(i) - 0.5) / scale - 0.5) - 1.0;
  let hi = ceil((f32(i) + 1.5) / scale - 0.5) + 2.0;
  return vec2<u32>(u32(clamp(lo, 0.0, f32(n_out))), u32(clamp(hi, 0.0, f32(n_out))));
}

@compute @workgroup_size(WX, WY)
fn fwd(@builtin(global_invocation_id) gid: vec3<u32>) {
  let p = params;
  let ox0 = gid.x * 4u;
  let oy = gid.y;
  let plane = gid.z;
  if (ox0 >= p.Wo || oy >= p.Ho || plane >= p.P) { return; }
  let ty = taps(oy, p.scale_h, p.H);
  let base = p.x_base + plane * p.H * p.W;
  let r0 = base + ty.i0 * p.W;
  let r1 = base + ty.i1 * p.W;
  let obase = p.y_base + (plane * p.Ho + oy) * p.Wo;
  for (var j = 0u; j < 4u; j = j + 1u) {
    let ox = ox0 + j;
    if (ox < p.Wo) {
      let tx = taps(ox, p.scale_w, p.W);
      let top = tx.l0 * x[r0 + tx.i0] + tx.l1 * x[r0 + tx.i1];
      let bot = tx.l0 * x[r1 + tx.i0] + tx.l1 * x[r1 + tx.i1];
      y[obase + ox] = ty.l0 * top + ty.l1 * bot;
    }
  }
}

@group(0) @binding(0) var<storage, read> dy: array<f32>;
@group(0) @binding(1) var<storage, read_write> dx: array<f32>;

@compute @workgroup_size(WX, WY)
fn bwd(@builtin(global_invocation_id) gid: vec3<u32>) {
  let p = params;
  let ix0 = gid.x * 4u;
  let iy = gid.y;
  let plane = gid.z;
  if (ix0 >= p.W || iy >= p.H || plane >= p.P) { return; }
  let ry = out_range(iy, p.scale_h, p.Ho);
  let lo = out_range(ix0, p.scale_w, p.Wo).x;
  let hi = out_range(min(ix0 + 3u, p.W - 1u), p.scale_w, p.Wo).y;
  let ixv = vec4<u32>(ix0, ix0 + 1u, ix0 + 2u, ix0 + 3u);
  let zero = vec4<f32>(0.0);
  let obase = p.y_base + plane * p.Ho * p.Wo;
  var s = zero;
  for (var oy = ry.x; oy < ry.y; oy = oy + 1u) {
    let wy = tap_weight(oy, iy, p.scale_h, p.H);
    if (wy == 0.0) { continue; }
    let row = obase + oy * p.Wo;
    var t = zero;
    for (var ox = lo; ox < hi; ox = ox + 1u) {
      let tx = taps(ox, p.scale_w, p.W);
      let wx = select(zero, vec4<f32>(tx.l0), vec4<u32>(tx.i0) == ixv) +
               select(zero, vec4<f32>(tx.l1), vec4<u32>(tx.i1) == ixv);
      t = fma(wx, vec4<f32>(dy[row + ox]), t);
    }
    s = fma(vec4<f32>(wy), t, s);
  }
  let d = p.x_base + (plane * p.H + iy) * p.W + ix0;
  dx[d] = s.x;
  if (ix0 + 1u < p.W) { dx[d + 1u] = s.y; }
  if (ix0 + 2u < p.W) { dx[d + 2u] = s.z; }
  if (ix0 + 3u < p.W) { dx[d + 3u] = s.w; }
}
