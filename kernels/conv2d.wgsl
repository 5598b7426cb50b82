// conv2d.wgsl: NCHW conv2d as implicit GEMM, plain variant (no optional feature), plus the helper
// entries every variant uses (weight packing, split-sum of weight-gradient partials, bias gradient).
//
// Entry `rows` (forward and input-gradient; same math as conv2d_sg.wgsl `rows_sg`, see there):
//   dst(n, cd, qy*sdy+ody, qx*sdx+odx) = bias(cd) + sum_{t, cs} src(n, cs, qy*ay+by0+ty*dby,
//   qx*ax+bx0+tx*dbx) * Wp(g, k(t), cs, cd). Register tiling without shared memory or barriers:
//   a workgroup is WGS invocations (WGC columns x WGS/WGC row groups); each invocation owns RP = 8
//   rows (destination pixels, gathered by itself) x one vec4 of destination channels and
//   accumulates with fma() chains. Also used by the subgroup variant for narrow destinations
//   (<= 8 channels per group) with WGC = 1 or 2, WGS = 8.
//   Bindings: 0 src, 1 wt (vec4 packed weight), 2 bias, 3 dst (read_write), 4 rp: RowsParams.
//   Grid: x*y folded = ceil(rows / (WGS/WGC*RP)) row tiles, z = g*ncb + column block of WGC vec4s.
// Entry `dw` (weight gradient partials, NCHW): part(s, g, co, k) = sum over the output rows
//   (n, oy) of split s and all ox of dy(n, g*CoutG+co, oy, ox) * x(n, g*CinG+ci, oy*sy-py+ky*dly,
//   ox*sx-px+kx*dlx), k = (ci*kh+ky)*kw+kx; each invocation owns RP output channels x 4
//   consecutive k. With accumulate = 1 the result is added to part (batch chunks after the first). Bindings: 0 x, 1 dy, 2 part (read_write vec4
//   [S][G][CoutG][Kg4]), 3 dp: DwParams. Grid: x = ceil(Kg4 / WGC), y = ceil(CoutG / (WGS/WGC*RP)),
//   z = g*S + s.
// Entry `pack_weight`: Wp[g][t][cs][cd (padded to CdG4*4 with zeros)] from w (Cout, CinG, kh, kw);
//   transpose = 0: cs = ci, cd = co (forward); 1: cs = co, cd = ci (input gradient). One
//   invocation per packed row (g, t, cs): the row's index arithmetic is paid once and its CdG4
//   vec4 are stored whole (wp bound as vec4). 1-D grid over G*taps*CsG rows, folded into (x, y).
// Entry `sum_parts`: out[(g*CoutG + co)*Kg + k] = sum_{s<S} part[((s*G + g)*CoutG + co)*ld + col(k)],
//   col(k = ci*taps + t) = t*cip + ci (dw from `dw`: taps = cip = 1, ld = Kg4*4; dw from the
//   channel-last `dw_cl`: ld = taps*CinG4*4, cip = CinG4*4; db: ld = Kg = 1). 1-D folded grid.
//   `sum_parts4`: the same sums for the channel-last layout, four input channels per invocation
//   from vec4 loads (1-D grid over G*CoutG*taps*CinG4).
// Entry `to_cl`: channel-last copy of an NCHW batch chunk for the subgroup kernels:
//   cl[n][p][g][c4] = vec4 of channels g*CG + 4*c4 .. +3 at pixel p (zero past CG). 1-D folded grid
//   over (n, p, g); each invocation writes the CG4 vec4 of its pixel and group.
// Entry `bias_partial`: part[s*C + c] (+)= sum over the chunk's batch items n and the pixels
//   [s*ps, (s+1)*ps) of dy(n, c, p). 1-D folded grid over C*S invocations.
// Numerics: f32 accumulation with fma chains; split sums are added in a fixed order (blocked, so no
//   single accumulator takes more than one split's terms plus S partials).
// Override constants: WGC, WGS (rows/dw workgroup shape), WG (1-D helpers).

struct RowsParams {
  rows: u32,
  QHW: u32,
  Qw: u32,
  Cs: u32,
  Hs: u32,
  Ws: u32,
  CsG: u32,
  CdG: u32,
  CdG4: u32,
  Cd: u32,
  Hd: u32,
  Wd: u32,
  sdy: u32,
  ody: u32,
  sdx: u32,
  odx: u32,
  taps: u32,
  kw: u32,
  ky0: u32,
  kys: u32,
  nty: u32,
  ay: u32,
  by0: i32,
  dby: i32,
  kx0: u32,
  kxs: u32,
  ntx: u32,
  ax: u32,
  bx0: i32,
  dbx: i32,
  s_base: u32,
  d_base: u32,
  has_bias: u32,
  ncb: u32,
}

struct DwParams {
  rowsN: u32,
  rps: u32,
  Ho: u32,
  Wo: u32,
  Cin: u32,
  H: u32,
  W: u32,
  CinG: u32,
  Cout: u32,
  CoutG: u32,
  khkw: u32,
  kw: u32,
  sy: u32,
  sx: u32,
  py: i32,
  px: i32,
  dly: u32,
  dlx: u32,
  Kg: u32,
  Kg4: u32,
  G: u32,
  S: u32,
  x_base: u32,
  dy_base: u32,
  accumulate: u32,
  CinG4: u32,
  CoutG4: u32,
}

struct PackParams {
  total: u32,   // G * taps * CsG * CdG4 * 4 outputs
  taps: u32,
  CsG: u32,
  CdG: u32,
  CdG4: u32,
  CinG: u32,
  CoutG: u32,
  transpose: u32,
}

struct SumParams {
  total: u32,   // G * CoutG * Kg outputs
  Kg: u32,
  ld: u32,      // row stride of part (elements)
  rowsPerSplit: u32,  // G * CoutG
  S: u32,
  taps: u32,    // output column k = ci*taps + t reads part column t*cip + ci
  cip: u32,
}

struct ClParams {
  total: u32,   // invocations: nb * HW * G (each writes CG4 vec4)
  C: u32,
  CG: u32,
  CG4: u32,
  G: u32,
  HW: u32,
  base: u32,    // element offset of the chunk's first element within the input binding
}

struct BiasParams {
  C: u32,
  P: u32,       // pixels per channel plane
  nb: u32,      // batch items in this chunk
  S: u32,
  ps: u32,      // pixels per split
  base: u32,    // element offset of the chunk within the binding
  accumulate: u32,
}

@group(0) @binding(0) var<storage, read> src: array<f32>;
@group(0) @binding(1) var<storage, read> wt: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> bias: array<f32>;
@group(0) @binding(3) var<storage, read_write> dst: array<f32>;
@group(0) @binding(4) var<uniform> rp: RowsParams;

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> dy: array<f32>;
@group(0) @binding(2) var<storage, read_write> part: array<vec4<f32>>;
@group(0) @binding(3) var<uniform> dp: DwParams;

@group(0) @binding(0) var<storage, read> w: array<f32>;
@group(0) @binding(1) var<storage, read_write> wp4: array<vec4<f32>>;
@group(0) @binding(2) var<uniform> pp: PackParams;

@group(0) @binding(0) var<storage, read> parts: array<f32>;
@group(0) @binding(0) var<storage, read> parts4: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<uniform> sp: SumParams;

@group(0) @binding(0) var<storage, read> nchw: array<f32>;
@group(0) @binding(1) var<storage, read_write> cl: array<vec4<f32>>;
@group(0) @binding(2) var<uniform> cp: ClParams;

@group(0) @binding(0) var<storage, read> g_in: array<f32>;
@group(0) @binding(1) var<storage, read_write> bpart: array<f32>;
@group(0) @binding(2) var<uniform> bp: BiasParams;

override WGC: u32 = 8u;
override WGS: u32 = 64u;  // invocations per workgroup: WGC columns x WGS/WGC row groups
override WG: u32 = 256u;

const RP: u32 = 8u;

@compute @workgroup_size(WGS)
fn rows(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let tile = wid.y * nwg.x + wid.x;
  let g = wid.z / rp.ncb;
  let c4 = (wid.z % rp.ncb) * WGC + lid % WGC;
  let c4l = min(c4, rp.CdG4 - 1u);
  let row0 = tile * ((WGS / WGC) * RP) + (lid / WGC) * RP;
  let HWs = rp.Hs * rp.Ws;
  var qy: array<i32, RP>;
  var qx: array<i32, RP>;
  var nb: array<u32, RP>;
  var rv: array<bool, RP>;
  for (var i = 0u; i < RP; i++) {
    let r = row0 + i;
    rv[i] = r < rp.rows;
    let rr = min(r, rp.rows - 1u);
    let n = rr / rp.QHW;
    let q = rr % rp.QHW;
    qy[i] = i32(q / rp.Qw);
    qx[i] = i32(q % rp.Qw);
    nb[i] = rp.s_base + (n * rp.Cs + g * rp.CsG) * HWs;
  }
  var acc: array<vec4<f32>, RP>;
  let Hs = i32(rp.Hs);
  let Ws = i32(rp.Ws);
  for (var ty = 0u; ty < rp.nty; ty++) {
    let ky = rp.ky0 + ty * rp.kys;
    let oyy = rp.by0 + i32(ty) * rp.dby;
    for (var tx = 0u; tx < rp.ntx; tx++) {
      let kx = rp.kx0 + tx * rp.kxs;
      let oxx = rp.bx0 + i32(tx) * rp.dbx;
      var off: array<u32, RP>;
      var m: array<f32, RP>;
      for (var i = 0u; i < RP; i++) {
        let sy = qy[i] * i32(rp.ay) + oyy;
        let sx = qx[i] * i32(rp.ax) + oxx;
        let ok = rv[i] && sy >= 0 && sy < Hs && sx >= 0 && sx < Ws;
        off[i] = select(0u, nb[i] + u32(sy) * rp.Ws + u32(sx), ok);
        m[i] = select(0.0, 1.0, ok);
      }
      var wi = ((g * rp.taps + ky * rp.kw + kx) * rp.CsG) * rp.CdG4 + c4l;
      for (var cs = 0u; cs < rp.CsG; cs++) {
        let wv = wt[wi];
        wi += rp.CdG4;
        for (var i = 0u; i < RP; i++) {
          acc[i] = fma(vec4<f32>(src[off[i]] * m[i]), wv, acc[i]);
          off[i] += HWs;
        }
      }
    }
  }
  if (c4 >= rp.CdG4) { return; }
  let HWd = rp.Hd * rp.Wd;
  var b = vec4<f32>(0.0);
  if (rp.has_bias != 0u) {
    for (var k = 0u; k < 4u; k++) {
      b[k] = bias[min(g * rp.CdG + c4 * 4u + k, rp.Cd - 1u)];
    }
  }
  for (var i = 0u; i < RP; i++) {
    let r = row0 + i;
    if (r >= rp.rows) { break; }
    let n = r / rp.QHW;
    let q = r % rp.QHW;
    let oy = (q / rp.Qw) * rp.sdy + rp.ody;
    let ox = (q % rp.Qw) * rp.sdx + rp.odx;
    let base = rp.d_base + (n * rp.Cd + g * rp.CdG + c4 * 4u) * HWd + oy * rp.Wd + ox;
    let v = acc[i] + b;
    for (var k = 0u; k < 4u; k++) {
      if (c4 * 4u + k < rp.CdG) {
        dst[base + k * HWd] = v[k];
      }
    }
  }
}

@compute @workgroup_size(WGS)
fn dw(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let c4 = wid.x * WGC + lid % WGC;
  let co0 = wid.y * ((WGS / WGC) * RP) + (lid / WGC) * RP;
  let g = wid.z / dp.S;
  let s = wid.z % dp.S;
  let HW = dp.H * dp.W;
  let HoWo = dp.Ho * dp.Wo;
  let H = i32(dp.H);
  let W = i32(dp.W);
  var coff: array<u32, 4>;
  var cy: array<i32, 4>;
  var cx: array<i32, 4>;
  var cv: array<bool, 4>;
  for (var j = 0u; j < 4u; j++) {
    let k = c4 * 4u + j;
    cv[j] = k < dp.Kg;
    let kk = min(k, dp.Kg - 1u);
    let ci = kk / dp.khkw;
    let t = kk % dp.khkw;
    coff[j] = (g * dp.CinG + ci) * HW;
    cy[j] = i32((t / dp.kw) * dp.dly) - dp.py;
    cx[j] = i32((t % dp.kw) * dp.dlx) - dp.px;
  }
  var crow: array<u32, RP>;
  for (var i = 0u; i < RP; i++) {
    crow[i] = g * dp.CoutG + min(co0 + i, dp.CoutG - 1u);
  }
  var acc: array<vec4<f32>, RP>;
  let r0 = s * dp.rps;
  let r1 = min(r0 + dp.rps, dp.rowsN);
  for (var rr = r0; rr < r1; rr++) {
    let n = rr / dp.Ho;
    let oy = rr % dp.Ho;
    let xb = dp.x_base + n * dp.Cin * HW;
    var roff: array<u32, 4>;
    var rok: array<bool, 4>;
    for (var j = 0u; j < 4u; j++) {
      let iy = i32(oy * dp.sy) + cy[j];
      rok[j] = cv[j] && iy >= 0 && iy < H;
      roff[j] = xb + coff[j] + u32(max(iy, 0)) * dp.W;
    }
    let db = dp.dy_base + n * dp.Cout * HoWo + oy * dp.Wo;
    var doff: array<u32, RP>;
    for (var i = 0u; i < RP; i++) {
      doff[i] = db + crow[i] * HoWo;
    }
    for (var ox = 0u; ox < dp.Wo; ox++) {
      let ixb = i32(ox * dp.sx);
      var xv: vec4<f32>;
      for (var j = 0u; j < 4u; j++) {
        let ix = ixb + cx[j];
        let ok = rok[j] && ix >= 0 && ix < W;
        xv[j] = select(0.0, x[select(0u, roff[j] + u32(ix), ok)], ok);
      }
      for (var i = 0u; i < RP; i++) {
        acc[i] = fma(vec4<f32>(dy[doff[i] + ox]), xv, acc[i]);
      }
    }
  }
  if (c4 >= dp.Kg4) { return; }
  for (var i = 0u; i < RP; i++) {
    let co = co0 + i;
    if (co >= dp.CoutG) { break; }
    let idx = ((s * dp.G + g) * dp.CoutG + co) * dp.Kg4 + c4;
    if (dp.accumulate != 0u) {
      part[idx] = part[idx] + acc[i];
    } else {
      part[idx] = acc[i];
    }
  }
}

@compute @workgroup_size(WG)
fn pack_weight(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) lid: u32) {
  let row = (wid.y * nwg.x + wid.x) * WG + lid;
  if (row >= pp.total / (pp.CdG4 * 4u)) { return; }
  let cs = row % pp.CsG;
  let r2 = row / pp.CsG;
  let t = r2 % pp.taps;
  let g = r2 / pp.taps;
  // w[((g*CoutG + co)*CinG + ci)*taps + t] along cd: co = cd (step CinG*taps), or ci = cd (step taps).
  let tr = pp.transpose != 0u;
  let step = select(pp.CinG * pp.taps, pp.taps, tr);
  var i = g * pp.CoutG * pp.CinG * pp.taps + t + cs * select(pp.taps, pp.CinG * pp.taps, tr);
  for (var c4 = 0u; c4 < pp.CdG4; c4++) {
    var v = vec4<f32>(0.0);
    for (var j = 0u; j < 4u; j++) {
      if (c4 * 4u + j < pp.CdG) {
        v[j] = w[i];
        i += step;
      }
    }
    wp4[row * pp.CdG4 + c4] = v;
  }
}

@compute @workgroup_size(WG)
fn sum_parts(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
             @builtin(local_invocation_index) lid: u32) {
  let o = (wid.y * nwg.x + wid.x) * WG + lid;
  if (o >= sp.total) { return; }
  let k = o % sp.Kg;
  let row = o / sp.Kg;
  let stride = sp.rowsPerSplit * sp.ld;
  var i = row * sp.ld + (k % sp.taps) * sp.cip + k / sp.taps;
  var s0 = 0.0;
  var s1 = 0.0;
  var s = 0u;
  for (; s + 2u <= sp.S; s += 2u) {
    s0 += parts[i];
    s1 += parts[i + stride];
    i += 2u * stride;
  }
  if (s < sp.S) {
    s0 += parts[i];
  }
  out[o] = s0 + s1;
}

// sum_parts for the channel-last layout (cip = 4*CinG4, ld a multiple of 4): one invocation per
// (row, t, ci4) sums the S partial vec4 of four input channels (the same pairwise order as
// sum_parts) and writes their four outputs (stride taps).
@compute @workgroup_size(WG)
fn sum_parts4(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_index) lid: u32) {
  let o = (wid.y * nwg.x + wid.x) * WG + lid;
  let cin4 = sp.cip / 4u;
  if (o >= (sp.total / sp.Kg) * sp.taps * cin4) { return; }
  let ci4 = o % cin4;
  let r = o / cin4;
  let t = r % sp.taps;
  let row = r / sp.taps;
  let stride = sp.rowsPerSplit * sp.ld / 4u;
  var i = (row * sp.ld + t * sp.cip) / 4u + ci4;
  var s0 = vec4<f32>(0.0);
  var s1 = vec4<f32>(0.0);
  var s = 0u;
  for (; s + 2u <= sp.S; s += 2u) {
    s0 += parts4[i];
    s1 += parts4[i + stride];
    i += 2u * stride;
  }
  if (s < sp.S) {
    s0 += parts4[i];
  }
  let v = s0 + s1;
  let cin = sp.Kg / sp.taps;
  let base = row * sp.Kg + t;
  for (var j = 0u; j < 4u; j++) {
    let ci = ci4 * 4u + j;
    if (ci < cin) { out[base + ci * sp.taps] = v[j]; }
  }
}

@compute @workgroup_size(WG)
fn to_cl(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
         @builtin(local_invocation_index) lid: u32) {
  // One invocation per (n, p, g): the index arithmetic (integer division, which CPU drivers run
  // lane by lane) is paid once per pixel and group, not once per vec4.
  let o = (wid.y * nwg.x + wid.x) * WG + lid;
  if (o >= cp.total) { return; }
  let g = o % cp.G;
  let r = o / cp.G;
  let p = r % cp.HW;
  let n = r / cp.HW;
  var si = cp.base + (n * cp.C + g * cp.CG) * cp.HW + p;
  let di = o * cp.CG4;
  for (var c4 = 0u; c4 < cp.CG4; c4++) {
    let c0 = c4 * 4u;
    var v = vec4<f32>(0.0);
    for (var j = 0u; j < 4u; j++) {
      if (c0 + j < cp.CG) {
        v[j] = nchw[si + j * cp.HW];
      }
    }
    si += 4u * cp.HW;
    cl[di + c4] = v;
  }
}

@compute @workgroup_size(WG)
fn bias_partial(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_index) lid: u32) {
  let o = (wid.y * nwg.x + wid.x) * WG + lid;
  if (o >= bp.C * bp.S) { return; }
  let c = o % bp.C;
  let s = o / bp.C;
  let p0 = s * bp.ps;
  let p1 = min(p0 + bp.ps, bp.P);
  var tot = 0.0;
  for (var n = 0u; n < bp.nb; n++) {
    let base = bp.base + (n * bp.C + c) * bp.P;
    var t = 0.0;
    for (var p = p0; p < p1; p++) {
      t += g_in[base + p];
    }
    tot += t;
  }
  if (bp.accumulate != 0u) {
    bpart[o] = bpart[o] + tot;
  } else {
    bpart[o] = tot;
  }
}
