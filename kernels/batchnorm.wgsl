// batchnorm.wgsl: BatchNorm2d over NCHW (statistics per channel over N, H, W), train and eval
// mode, forward and backward, as per-lane partials + a per-channel finalize + a per-channel apply.
//
// Entries and bindings (group 0); entries ending in 4 bind arrays of vec4<f32> (*4 names) and need
// H*W and every base to be multiples of 4:
//   bn_stats[4]:     0 x, 1 part (vec4: lane mean, lane M2, lane count, 0), 2 params
//   bn_grad[4]:      0 x, 1 dy, 2 stats, 3 part2 (vec2: sum dy*(x-mean), sum dy), 4 params
//   bn_apply[4]:     0 u, 1 v, 2 coef, 3 out, 4 params:  out = P*u + Q*(v - R) + S per channel,
//                    coef[c] = (P, Q, R, S); u is read only when HAS_U (forward binds x twice)
//   bn_stats_final:  0 part, 1 w, 2 b, 3 stats, 4 coef, 5 rm, 6 rv, 7 params
//   bn_eval_coef:    0 rm, 1 rv, 2 w, 3 b, 4 stats, 5 coef, 6 params
//   bn_grad_final:   0 part2, 1 w, 2 stats, 3 dw, 4 db, 5 coef, 6 params
//   stats = [mean(C), rstd(C)] (saved for backward).
// Dispatch: 1-D, folded into (x, y) by grid1d: id = (wid.y * nwg.x + wid.x) * WG + lid.x.
//   bn_stats/bn_grad: one invocation per (n, c, lane); lane l of `lanes` takes elements (vec4s)
//     l, l+lanes, ... of plane (n, c), so neighbouring invocations read neighbouring addresses;
//     no barriers. Partial row (p_off + n*lanes + l), column c. *_final: one invocation per
//     channel, looping over the T partial rows. bn_apply: one invocation per (n, c, lane) as well,
//     the lane loop over the plane's elements (per-invocation overhead and the channel lookup are
//     paid once per lane, not per element: 3-5x faster than one invocation per vec4 on lavapipe).
// Splitting: the TS side runs a chunk of samples per dispatch (tensors over the binding limit);
//   x_base, u_base, o_base are element offsets of the chunk inside x/u, v and out; partials of
//   all chunks land in one buffer and are finalised once.
// Numerics: f32. Lane statistics are two-pass: mean of (x - x0) with x0 the lane's first value,
//   then the sum of squared deviations (M2). The finalize merges lanes exactly:
//   mean = K + sum n_t (m_t - K) / N with K = the first lane's mean, M2 = sum M2_t + n_t (m_t - mean)^2
//   (blocked sums of BLK terms; no compensation, which Mesa's reassociating compiler erases).
//   Normalisation uses the biased variance; the running variance gets the unbiased M2/(N-1) with
//   rm = (1-momentum) rm + momentum mean (PyTorch). Forward y = (w rstd)(x - mean) + b keeps the
//   mean subtraction before scaling, so large offsets do not cancel.
//   Backward (train): dx = w rstd dy - w rstd^2 dw/N (x - mean) - w rstd db/N with
//   dw = rstd sum dy (x - mean), db = sum dy; (eval): dx = w rstd dy, same dw/db with running stats.

struct Params {
  N: u32,        // samples in this chunk
  C: u32,
  HW: u32,
  lanes: u32,    // lanes per (n, c) plane
  x_base: u32,   // element offset of the chunk in x (or v for bn_apply)
  u_base: u32,   // ... in dy (bn_grad) or u (bn_apply)
  o_base: u32,   // ... in out (bn_apply)
  p_off: u32,    // first partial row of this chunk
  T: u32,        // *_final: partial rows in all
  count: f32,    // *_final: elements per channel, N*H*W
  eps: f32,
  momentum: f32,
  flags: u32,    // bn_stats_final: 1 = update running stats; bn_grad_final: 1 = train mode
}

override WG: u32 = 64u;
override BLK: u32 = 64u;
override HAS_U: bool = true;

// bn_stats
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(0) var<storage, read> x4: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read_write> part: array<vec4<f32>>;
@group(0) @binding(2) var<uniform> params2: Params;
// bn_grad
@group(0) @binding(1) var<storage, read> dy: array<f32>;
@group(0) @binding(1) var<storage, read> dy4: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> stats: array<f32>;
@group(0) @binding(3) var<storage, read_write> part2: array<vec2<f32>>;
@group(0) @binding(4) var<uniform> params4: Params;
// bn_apply
@group(0) @binding(0) var<storage, read> u: array<f32>;
@group(0) @binding(1) var<storage, read> v: array<f32>;
@group(0) @binding(0) var<storage, read> u4: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> v4: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> coef: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<storage, read_write> out4: array<vec4<f32>>;
// bn_stats_final
@group(0) @binding(0) var<storage, read> part_in: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> w: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> stats_out: array<f32>;
@group(0) @binding(4) var<storage, read_write> coef_out: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read_write> rm: array<f32>;
@group(0) @binding(6) var<storage, read_write> rv: array<f32>;
@group(0) @binding(7) var<uniform> params7: Params;
// bn_eval_coef
@group(0) @binding(0) var<storage, read> rm_in: array<f32>;
@group(0) @binding(1) var<storage, read> rv_in: array<f32>;
@group(0) @binding(2) var<storage, read> w_e: array<f32>;
@group(0) @binding(3) var<storage, read> b_e: array<f32>;
@group(0) @binding(4) var<storage, read_write> stats_e: array<f32>;
@group(0) @binding(5) var<storage, read_write> coef_e: array<vec4<f32>>;
@group(0) @binding(6) var<uniform> params6: Params;
// bn_grad_final (uniform at 6 as well)
@group(0) @binding(0) var<storage, read> part2_in: array<vec2<f32>>;
@group(0) @binding(2) var<storage, read> stats_g: array<f32>;
@group(0) @binding(3) var<storage, read_write> dw: array<f32>;
@group(0) @binding(4) var<storage, read_write> db: array<f32>;
@group(0) @binding(5) var<storage, read_write> coef_g: array<vec4<f32>>;

fn linear_id(wid: vec3<u32>, nwg: vec3<u32>, lid: vec3<u32>) -> u32 {
  return (wid.y * nwg.x + wid.x) * WG + lid.x;
}

fn hsum(a: vec4<f32>) -> f32 {
  return (a.x + a.y) + (a.z + a.w);
}

// ------------------------------------------------------------------ statistics

@compute @workgroup_size(WG)
fn bn_stats4(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
             @builtin(local_invocation_id) lid: vec3<u32>) {
  let t = linear_id(wid, nwg, lid);
  let L = params2.lanes;
  let C = params2.C;
  if (t >= params2.N * C * L) { return; }
  let l = t % L;
  let plane = t / L;
  let c = plane % C;
  let n = plane / C;
  let HW4 = params2.HW / 4u;
  let xo = params2.x_base / 4u + plane * HW4;
  let K = x4[xo + l].x;
  var s = vec4<f32>(0.0);
  var cnt = 0u;
  for (var p = l; p < HW4; p = p + L) {
    s = s + (x4[xo + p] - K);
    cnt = cnt + 4u;
  }
  let nt = f32(cnt);
  let m = K + hsum(s) / nt;
  var q = vec4<f32>(0.0);
  for (var p = l; p < HW4; p = p + L) {
    let d = x4[xo + p] - m;
    q = fma(d, d, q);
  }
  part[(params2.p_off + n * L + l) * C + c] = vec4<f32>(m, hsum(q), nt, 0.0);
}

@compute @workgroup_size(WG)
fn bn_stats(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_id) lid: vec3<u32>) {
  let t = linear_id(wid, nwg, lid);
  let L = params2.lanes;
  let C = params2.C;
  if (t >= params2.N * C * L) { return; }
  let l = t % L;
  let plane = t / L;
  let c = plane % C;
  let n = plane / C;
  let HW = params2.HW;
  let xo = params2.x_base + plane * HW;
  let K = x[xo + l];
  var s = 0.0;
  var cnt = 0u;
  for (var p = l; p < HW; p = p + L) {
    s = s + (x[xo + p] - K);
    cnt = cnt + 1u;
  }
  let nt = f32(cnt);
  let m = K + s / nt;
  var q = 0.0;
  for (var p = l; p < HW; p = p + L) {
    let d = x[xo + p] - m;
    q = fma(d, d, q);
  }
  part[(params2.p_off + n * L + l) * C + c] = vec4<f32>(m, q, nt, 0.0);
}

@compute @workgroup_size(WG)
fn bn_stats_final(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                  @builtin(local_invocation_id) lid: vec3<u32>) {
  let c = linear_id(wid, nwg, lid);
  let C = params7.C;
  if (c >= C) { return; }
  let T = params7.T;
  let K = part_in[c].x;
  var acc = 0.0;
  for (var t0 = 0u; t0 < T; t0 = t0 + BLK) {
    var inner = 0.0;
    let t1 = min(t0 + BLK, T);
    for (var t = t0; t < t1; t = t + 1u) {
      let p = part_in[t * C + c];
      inner = fma(p.z, p.x - K, inner);
    }
    acc = acc + inner;
  }
  let mu = K + acc / params7.count;
  var m2 = 0.0;
  for (var t0 = 0u; t0 < T; t0 = t0 + BLK) {
    var inner = 0.0;
    let t1 = min(t0 + BLK, T);
    for (var t = t0; t < t1; t = t + 1u) {
      let p = part_in[t * C + c];
      let d = p.x - mu;
      inner = inner + fma(p.z * d, d, p.y);
    }
    m2 = m2 + inner;
  }
  let rs = 1.0 / sqrt(m2 / params7.count + params7.eps);
  stats_out[c] = mu;
  stats_out[C + c] = rs;
  coef_out[c] = vec4<f32>(0.0, w[c] * rs, mu, b[c]);
  if ((params7.flags & 1u) != 0u) {
    let mom = params7.momentum;
    rm[c] = (1.0 - mom) * rm[c] + mom * mu;
    rv[c] = (1.0 - mom) * rv[c] + mom * (m2 / (params7.count - 1.0));
  }
}

@compute @workgroup_size(WG)
fn bn_eval_coef(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_id) lid: vec3<u32>) {
  let c = linear_id(wid, nwg, lid);
  let C = params6.C;
  if (c >= C) { return; }
  let rs = 1.0 / sqrt(rv_in[c] + params6.eps);
  stats_e[c] = rm_in[c];
  stats_e[C + c] = rs;
  coef_e[c] = vec4<f32>(0.0, w_e[c] * rs, rm_in[c], b_e[c]);
}

// ------------------------------------------------------------------ apply (forward y, backward dx)

@compute @workgroup_size(WG)
fn bn_apply4(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
             @builtin(local_invocation_id) lid: vec3<u32>) {
  let t = linear_id(wid, nwg, lid);
  let L = params4.lanes;
  if (t >= params4.N * params4.C * L) { return; }
  let l = t % L;
  let plane = t / L;
  let cf = coef[plane % params4.C];
  let HW4 = params4.HW / 4u;
  let vo = params4.x_base / 4u + plane * HW4;
  let uo = params4.u_base / 4u + plane * HW4;
  let oo = params4.o_base / 4u + plane * HW4;
  let q = vec4<f32>(cf.y);
  let s = vec4<f32>(cf.w);
  for (var p = l; p < HW4; p = p + L) {
    var r = fma(q, v4[vo + p] - cf.z, s);
    if (HAS_U) { r = fma(vec4<f32>(cf.x), u4[uo + p], r); }
    out4[oo + p] = r;
  }
}

@compute @workgroup_size(WG)
fn bn_apply(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_id) lid: vec3<u32>) {
  let t = linear_id(wid, nwg, lid);
  let L = params4.lanes;
  if (t >= params4.N * params4.C * L) { return; }
  let l = t % L;
  let plane = t / L;
  let cf = coef[plane % params4.C];
  let HW = params4.HW;
  let vo = params4.x_base + plane * HW;
  let uo = params4.u_base + plane * HW;
  let oo = params4.o_base + plane * HW;
  for (var p = l; p < HW; p = p + L) {
    var r = fma(cf.y, v[vo + p] - cf.z, cf.w);
    if (HAS_U) { r = fma(cf.x, u[uo + p], r); }
    out[oo + p] = r;
  }
}

// ------------------------------------------------------------------ backward sums

@compute @workgroup_size(WG)
fn bn_grad4(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_id) lid: vec3<u32>) {
  let t = linear_id(wid, nwg, lid);
  let L = params4.lanes;
  let C = params4.C;
  if (t >= params4.N * C * L) { return; }
  let l = t % L;
  let plane = t / L;
  let c = plane % C;
  let n = plane / C;
  let HW4 = params4.HW / 4u;
  let xo = params4.x_base / 4u + plane * HW4;
  let go = params4.u_base / 4u + plane * HW4;
  let mu = stats[c];
  var a = vec4<f32>(0.0);
  var s = vec4<f32>(0.0);
  for (var p = l; p < HW4; p = p + L) {
    let g = dy4[go + p];
    a = fma(g, x4[xo + p] - mu, a);
    s = s + g;
  }
  part2[(params4.p_off + n * L + l) * C + c] = vec2<f32>(hsum(a), hsum(s));
}

@compute @workgroup_size(WG)
fn bn_grad(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_id) lid: vec3<u32>) {
  let t = linear_id(wid, nwg, lid);
  let L = params4.lanes;
  let C = params4.C;
  if (t >= params4.N * C * L) { return; }
  let l = t % L;
  let plane = t / L;
  let c = plane % C;
  let n = plane / C;
  let HW = params4.HW;
  let xo = params4.x_base + plane * HW;
  let go = params4.u_base + plane * HW;
  let mu = stats[c];
  var a = 0.0;
  var s = 0.0;
  for (var p = l; p < HW; p = p + L) {
    let g = dy[go + p];
    a = fma(g, x[xo + p] - mu, a);
    s = s + g;
  }
  part2[(params4.p_off + n * L + l) * C + c] = vec2<f32>(a, s);
}

@compute @workgroup_size(WG)
fn bn_grad_final(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_id) lid: vec3<u32>) {
  let c = linear_id(wid, nwg, lid);
  let C = params6.C;
  if (c >= C) { return; }
  let T = params6.T;
  var acc = vec2<f32>(0.0);
  for (var t0 = 0u; t0 < T; t0 = t0 + BLK) {
    var inner = vec2<f32>(0.0);
    let t1 = min(t0 + BLK, T);
    for (var t = t0; t < t1; t = t + 1u) { inner = inner + part2_in[t * C + c]; }
    acc = acc + inner;
  }
  let mu = stats_g[c];
  let rs = stats_g[C + c];
  let wc = w[c];
  let dwc = rs * acc.x;
  let dbc = acc.y;
  dw[c] = dwc;
  db[c] = dbc;
  if ((params6.flags & 1u) != 0u) {
    let k = wc * rs;
    coef_g[c] = vec4<f32>(k, -k * rs * dwc / params6.count, mu, -k * dbc / params6.count);
  } else {
    coef_g[c] = vec4<f32>(0.0, wc * rs, 0.0, 0.0);
  }
}
