// conv2d_sg.wgsl: conv2d as implicit GEMM, subgroup variant for CPU adapters (lavapipe).
//
// Design (see /work/shared/notes/LAVAPIPE.md): a workgroup is one subgroup of LANES = 8 lanes, no
// shared memory, no barriers. Each lane loads R = 4 rows of the "broadcast" operand per reduction
// step and every lane obtains all TM = 32 rows with subgroupBroadcast (a register permute); each lane
// owns TM rows x one vec4 of columns of accumulators and feeds them with fma() chains. TM, R and
// LANES are consts (function-scope arrays need constant sizes); the TS side reads TM from here. The TS side
// picks this file only when the subgroups feature is on and the adapter's subgroupMinSize >= 8, so
// the 8-lane workgroup is exactly one subgroup (subgroup_invocation_id == local_invocation_index).
//
// Entry `rows_sg` (forward and input-gradient): dst(n, cd, qy*sdy+ody, qx*sdx+odx) =
//   bias(cd) + sum_{taps t, cs} src(n, cs, qy*ay + by0 + ty*dby, qx*ax + bx0 + tx*dbx) * Wp(g, k(t), cs, cd)
//   with tap t = (ty, tx) -> kernel position (ky0 + ty*kys, kx0 + tx*kxs); reads outside src are 0.
//   Forward: src = x, dst = y, ay = stride, by0 = -pad, dby = dilation, one dispatch.
//   Input grad: src = dy, dst = dx, one dispatch per stride phase (ry, rx): dst rows iy = qy*s + ry,
//   only the kernel rows ky with ky*d == ry + pad (mod s) contribute, oy = qy + (ry + pad - ky*d)/s.
//   Bindings: 0 src (read, f32), 1 wt (read, vec4: packed Wp[g][ky*kw+kx][cs][cd padded to 4]),
//   2 bias (read, f32; ignored unless has_bias), 3 dst (read_write, f32), 4 rp: RowsParams.
//   Rows of the GEMM are destination pixels (n, qy, qx), columns destination channels of group g.
//   Grid: x*y folded = ceil(rows/TM) row tiles (tile = wid.y*nwg.x + wid.x), z = g*ncb + column block
//   of 8 vec4 columns (32 channels).
// Entry `dw_cl2`: dw_cl with two vec4 columns per lane (columns kc and kc + 8 of a block of 16;
//   grid x = ceil(kh*kw*CinG4 / 16)): each broadcast dy vec4 feeds both, halving the dy loads and
//   broadcasts per fma. Used when there are more than 8 column vec4s. dw_cl and dw_cl2 are the
//   same function (dw_tile) with wide = false / true.
// Entry `rows_sg2`: rows_sg with two vec4 columns per lane (columns c4 and c4 + 8 of a block of
//   16 vec4 = 64 channels; grid z = g*ncb + block, ncb = ceil(CdG4/16)): 64 accumulators, and each
//   broadcast source value feeds both columns, so the source loads per fma halve. Used for more
//   than 32 destination channels per group (~1.1x rows_sg on ResNet18's 3x3 convs); same sums in
//   the same order. rows_sg and rows_sg2 are the same function (rows_tile) with wide = false / true.
// Entry `dw_cl` (weight gradient, split over output rows, on channel-last copies made by
//   conv2d.to_cl): part(s, g, co, t, ci) = sum over the output rows (n, oy) of split s and all ox of
//   dy(n, g*CoutG+co, oy, ox) * x(n, g*CinG+ci, oy*sy-py+ky*dly, ox*sx-px+kx*dlx), t = ky*kw+kx.
//   GEMM rows = co: lane l loads dy as one vec4 of channels 4*(8*wid.y+l) .. +3 (channel-last, so
//   one load gives 4 rows) and every lane gets all 32 rows by broadcasting that vec4; columns = one
//   vec4 of 4 input channels at one tap per lane (one load, one bounds check per pixel).
//   Bindings: 0 x4 (read, vec4 [n][H*W][G][CinG4]), 1 dy4 (read, vec4 [n][Ho*Wo][G][CoutG4]),
//   2 part (read_write, vec4 [S][G][CoutG][kh*kw][CinG4]), 3 dp: DwParams.
//   Grid: x = ceil(kh*kw*CinG4 / 8), y = ceil(CoutG / 32), z = g*S + s. With accumulate = 1 the
//   result is added to part (batch chunks after the first).
// Why these two layouts: measured on lavapipe, the NCHW gather for rows_sg beat a channel-last
//   rows kernel, while the weight gradient runs ~1.5x faster channel-last (loads dominate there).
// Numerics: f32 accumulation, one fma chain per output; the dw split sums are added by
//   conv2d.sum_parts in a fixed order.
enable subgroups;

struct RowsParams {
  rows: u32,    // destination rows (n, qy, qx) in this batch chunk
  QHW: u32,     // Qh * Qw
  Qw: u32,
  Cs: u32,      // source channels (all groups)
  Hs: u32,
  Ws: u32,
  CsG: u32,     // source channels per group (the reduction runs over them)
  CdG: u32,     // destination channels per group
  CdG4: u32,    // ceil(CdG / 4): vec4 columns per packed weight row
  Cd: u32,      // destination channels (all groups)
  Hd: u32,
  Wd: u32,
  sdy: u32,     // destination row = qy * sdy + ody
  ody: u32,
  sdx: u32,
  odx: u32,
  taps: u32,    // kh * kw of the packed weight
  kw: u32,
  ky0: u32,     // first kernel row of this phase, step kys, nty rows
  kys: u32,
  nty: u32,
  ay: u32,      // source row = qy * ay + by0 + ty * dby
  by0: i32,
  dby: i32,
  kx0: u32,
  kxs: u32,
  ntx: u32,
  ax: u32,
  bx0: i32,
  dbx: i32,
  s_base: u32,  // element offset of this chunk's first source element within the binding
  d_base: u32,  // same for the destination
  has_bias: u32,
  ncb: u32,     // column blocks per group
}

struct DwParams {
  rowsN: u32,   // output rows (n, oy) in this batch chunk = chunk batch * Ho
  rps: u32,     // output rows per split
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
  Kg: u32,      // CinG * kh * kw
  Kg4: u32,     // ceil(Kg / 4)
  G: u32,
  S: u32,       // splits
  x_base: u32,
  dy_base: u32,
  accumulate: u32,
  CinG4: u32,   // ceil(CinG / 4), channel-last x
  CoutG4: u32,  // ceil(CoutG / 4), channel-last dy
}

@group(0) @binding(0) var<storage, read> src: array<f32>;
@group(0) @binding(1) var<storage, read> wt: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> bias: array<f32>;
@group(0) @binding(3) var<storage, read_write> dst: array<f32>;
@group(0) @binding(4) var<uniform> rp: RowsParams;

@group(0) @binding(0) var<storage, read> x4: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> dy4: array<vec4<f32>>;

@group(0) @binding(2) var<storage, read_write> part: array<vec4<f32>>;
@group(0) @binding(3) var<uniform> dp: DwParams;

const LANES: u32 = 8u;
const R: u32 = 4u;
const TM: u32 = 32u;

// Accumulator tiles hold up to two column vec4 per lane: acc[j] is column 0, acc[ACC2 + j] column 1
// (`wide` tiles only). The helpers take `wide` as an argument; every call site passes a constant, so
// the compiler drops the second column of narrow tiles.
const ACC2: u32 = 32u;

// acc[base + l] += broadcast(v from lane l) * wa (and acc[ACC2 + base + l] += ... * wb when wide),
// for the 8 lanes.
fn bfma(acc: ptr<function, array<vec4<f32>, 64>>, base: u32, v: f32, wa: vec4<f32>, wb: vec4<f32>,
        wide: bool) {
  { let b = vec4<f32>(subgroupBroadcast(v, 0u));
    (*acc)[base + 0u] = fma(b, wa, (*acc)[base + 0u]);
    if (wide) { (*acc)[ACC2 + base + 0u] = fma(b, wb, (*acc)[ACC2 + base + 0u]); } }
  { let b = vec4<f32>(subgroupBroadcast(v, 1u));
    (*acc)[base + 1u] = fma(b, wa, (*acc)[base + 1u]);
    if (wide) { (*acc)[ACC2 + base + 1u] = fma(b, wb, (*acc)[ACC2 + base + 1u]); } }
  { let b = vec4<f32>(subgroupBroadcast(v, 2u));
    (*acc)[base + 2u] = fma(b, wa, (*acc)[base + 2u]);
    if (wide) { (*acc)[ACC2 + base + 2u] = fma(b, wb, (*acc)[ACC2 + base + 2u]); } }
  { let b = vec4<f32>(subgroupBroadcast(v, 3u));
    (*acc)[base + 3u] = fma(b, wa, (*acc)[base + 3u]);
    if (wide) { (*acc)[ACC2 + base + 3u] = fma(b, wb, (*acc)[ACC2 + base + 3u]); } }
  { let b = vec4<f32>(subgroupBroadcast(v, 4u));
    (*acc)[base + 4u] = fma(b, wa, (*acc)[base + 4u]);
    if (wide) { (*acc)[ACC2 + base + 4u] = fma(b, wb, (*acc)[ACC2 + base + 4u]); } }
  { let b = vec4<f32>(subgroupBroadcast(v, 5u));
    (*acc)[base + 5u] = fma(b, wa, (*acc)[base + 5u]);
    if (wide) { (*acc)[ACC2 + base + 5u] = fma(b, wb, (*acc)[ACC2 + base + 5u]); } }
  { let b = vec4<f32>(subgroupBroadcast(v, 6u));
    (*acc)[base + 6u] = fma(b, wa, (*acc)[base + 6u]);
    if (wide) { (*acc)[ACC2 + base + 6u] = fma(b, wb, (*acc)[ACC2 + base + 6u]); } }
  { let b = vec4<f32>(subgroupBroadcast(v, 7u));
    (*acc)[base + 7u] = fma(b, wa, (*acc)[base + 7u]);
    if (wide) { (*acc)[ACC2 + base + 7u] = fma(b, wb, (*acc)[ACC2 + base + 7u]); } }
}

// acc[4*l + c] += broadcast(v[c] from lane l) * wa (and acc[ACC2 + 4*l + c] += ... * wb when wide),
// for the 8 lanes and 4 components.
fn bfma4(acc: ptr<function, array<vec4<f32>, 64>>, v: vec4<f32>, wa: vec4<f32>, wb: vec4<f32>,
         wide: bool) {
  { let b = subgroupBroadcast(v, 0u);
    (*acc)[0] = fma(vec4<f32>(b.x), wa, (*acc)[0]);
    (*acc)[1] = fma(vec4<f32>(b.y), wa, (*acc)[1]);
    (*acc)[2] = fma(vec4<f32>(b.z), wa, (*acc)[2]);
    (*acc)[3] = fma(vec4<f32>(b.w), wa, (*acc)[3]);
    if (wide) {
      (*acc)[ACC2 + 0u] = fma(vec4<f32>(b.x), wb, (*acc)[ACC2 + 0u]);
      (*acc)[ACC2 + 1u] = fma(vec4<f32>(b.y), wb, (*acc)[ACC2 + 1u]);
      (*acc)[ACC2 + 2u] = fma(vec4<f32>(b.z), wb, (*acc)[ACC2 + 2u]);
      (*acc)[ACC2 + 3u] = fma(vec4<f32>(b.w), wb, (*acc)[ACC2 + 3u]);
    }
  }
  { let b = subgroupBroadcast(v, 1u);
    (*acc)[4] = fma(vec4<f32>(b.x), wa, (*acc)[4]);
    (*acc)[5] = fma(vec4<f32>(b.y), wa, (*acc)[5]);
    (*acc)[6] = fma(vec4<f32>(b.z), wa, (*acc)[6]);
    (*acc)[7] = fma(vec4<f32>(b.w), wa, (*acc)[7]);
    if (wide) {
      (*acc)[ACC2 + 4u] = fma(vec4<f32>(b.x), wb, (*acc)[ACC2 + 4u]);
      (*acc)[ACC2 + 5u] = fma(vec4<f32>(b.y), wb, (*acc)[ACC2 + 5u]);
      (*acc)[ACC2 + 6u] = fma(vec4<f32>(b.z), wb, (*acc)[ACC2 + 6u]);
      (*acc)[ACC2 + 7u] = fma(vec4<f32>(b.w), wb, (*acc)[ACC2 + 7u]);
    }
  }
  { let b = subgroupBroadcast(v, 2u);
    (*acc)[8] = fma(vec4<f32>(b.x), wa, (*acc)[8]);
    (*acc)[9] = fma(vec4<f32>(b.y), wa, (*acc)[9]);
    (*acc)[10] = fma(vec4<f32>(b.z), wa, (*acc)[10]);
    (*acc)[11] = fma(vec4<f32>(b.w), wa, (*acc)[11]);
    if (wide) {
      (*acc)[ACC2 + 8u] = fma(vec4<f32>(b.x), wb, (*acc)[ACC2 + 8u]);
      (*acc)[ACC2 + 9u] = fma(vec4<f32>(b.y), wb, (*acc)[ACC2 + 9u]);
      (*acc)[ACC2 + 10u] = fma(vec4<f32>(b.z), wb, (*acc)[ACC2 + 10u]);
      (*acc)[ACC2 + 11u] = fma(vec4<f32>(b.w), wb, (*acc)[ACC2 + 11u]);
    }
  }
  { let b = subgroupBroadcast(v, 3u);
    (*acc)[12] = fma(vec4<f32>(b.x), wa, (*acc)[12]);
    (*acc)[13] = fma(vec4<f32>(b.y), wa, (*acc)[13]);
    (*acc)[14] = fma(vec4<f32>(b.z), wa, (*acc)[14]);
    (*acc)[15] = fma(vec4<f32>(b.w), wa, (*acc)[15]);
    if (wide) {
      (*acc)[ACC2 + 12u] = fma(vec4<f32>(b.x), wb, (*acc)[ACC2 + 12u]);
      (*acc)[ACC2 + 13u] = fma(vec4<f32>(b.y), wb, (*acc)[ACC2 + 13u]);
      (*acc)[ACC2 + 14u] = fma(vec4<f32>(b.z), wb, (*acc)[ACC2 + 14u]);
      (*acc)[ACC2 + 15u] = fma(vec4<f32>(b.w), wb, (*acc)[ACC2 + 15u]);
    }
  }
  { let b = subgroupBroadcast(v, 4u);
    (*acc)[16] = fma(vec4<f32>(b.x), wa, (*acc)[16]);
    (*acc)[17] = fma(vec4<f32>(b.y), wa, (*acc)[17]);
    (*acc)[18] = fma(vec4<f32>(b.z), wa, (*acc)[18]);
    (*acc)[19] = fma(vec4<f32>(b.w), wa, (*acc)[19]);
    if (wide) {
      (*acc)[ACC2 + 16u] = fma(vec4<f32>(b.x), wb, (*acc)[ACC2 + 16u]);
      (*acc)[ACC2 + 17u] = fma(vec4<f32>(b.y), wb, (*acc)[ACC2 + 17u]);
      (*acc)[ACC2 + 18u] = fma(vec4<f32>(b.z), wb, (*acc)[ACC2 + 18u]);
      (*acc)[ACC2 + 19u] = fma(vec4<f32>(b.w), wb, (*acc)[ACC2 + 19u]);
    }
  }
  { let b = subgroupBroadcast(v, 5u);
    (*acc)[20] = fma(vec4<f32>(b.x), wa, (*acc)[20]);
    (*acc)[21] = fma(vec4<f32>(b.y), wa, (*acc)[21]);
    (*acc)[22] = fma(vec4<f32>(b.z), wa, (*acc)[22]);
    (*acc)[23] = fma(vec4<f32>(b.w), wa, (*acc)[23]);
    if (wide) {
      (*acc)[ACC2 + 20u] = fma(vec4<f32>(b.x), wb, (*acc)[ACC2 + 20u]);
      (*acc)[ACC2 + 21u] = fma(vec4<f32>(b.y), wb, (*acc)[ACC2 + 21u]);
      (*acc)[ACC2 + 22u] = fma(vec4<f32>(b.z), wb, (*acc)[ACC2 + 22u]);
      (*acc)[ACC2 + 23u] = fma(vec4<f32>(b.w), wb, (*acc)[ACC2 + 23u]);
    }
  }
  { let b = subgroupBroadcast(v, 6u);
    (*acc)[24] = fma(vec4<f32>(b.x), wa, (*acc)[24]);
    (*acc)[25] = fma(vec4<f32>(b.y), wa, (*acc)[25]);
    (*acc)[26] = fma(vec4<f32>(b.z), wa, (*acc)[26]);
    (*acc)[27] = fma(vec4<f32>(b.w), wa, (*acc)[27]);
    if (wide) {
      (*acc)[ACC2 + 24u] = fma(vec4<f32>(b.x), wb, (*acc)[ACC2 + 24u]);
      (*acc)[ACC2 + 25u] = fma(vec4<f32>(b.y), wb, (*acc)[ACC2 + 25u]);
      (*acc)[ACC2 + 26u] = fma(vec4<f32>(b.z), wb, (*acc)[ACC2 + 26u]);
      (*acc)[ACC2 + 27u] = fma(vec4<f32>(b.w), wb, (*acc)[ACC2 + 27u]);
    }
  }
  { let b = subgroupBroadcast(v, 7u);
    (*acc)[28] = fma(vec4<f32>(b.x), wa, (*acc)[28]);
    (*acc)[29] = fma(vec4<f32>(b.y), wa, (*acc)[29]);
    (*acc)[30] = fma(vec4<f32>(b.z), wa, (*acc)[30]);
    (*acc)[31] = fma(vec4<f32>(b.w), wa, (*acc)[31]);
    if (wide) {
      (*acc)[ACC2 + 28u] = fma(vec4<f32>(b.x), wb, (*acc)[ACC2 + 28u]);
      (*acc)[ACC2 + 29u] = fma(vec4<f32>(b.y), wb, (*acc)[ACC2 + 29u]);
      (*acc)[ACC2 + 30u] = fma(vec4<f32>(b.z), wb, (*acc)[ACC2 + 30u]);
      (*acc)[ACC2 + 31u] = fma(vec4<f32>(b.w), wb, (*acc)[ACC2 + 31u]);
    }
  }
}

// Stores column `col` (0 or 1) of the rows tile of `rows_sg` / `rows_sg2`: acc[col*ACC2 + j] is
// destination row row0 + j, columns 4*c4 .. 4*c4+3 of group g.
fn store_rows(acc: ptr<function, array<vec4<f32>, 64>>, col: u32, row0: u32, g: u32, c4: u32) {
  if (c4 >= rp.CdG4) { return; }
  let HWd = rp.Hd * rp.Wd;
  var b = vec4<f32>(0.0);
  if (rp.has_bias != 0u) {
    for (var k = 0u; k < 4u; k++) {
      b[k] = bias[min(g * rp.CdG + c4 * 4u + k, rp.Cd - 1u)];
    }
  }
  for (var j = 0u; j < TM; j++) {
    let r = row0 + j;
    if (r >= rp.rows) { break; }
    let n = r / rp.QHW;
    let q = r % rp.QHW;
    let oy = (q / rp.Qw) * rp.sdy + rp.ody;
    let ox = (q % rp.Qw) * rp.sdx + rp.odx;
    let base = rp.d_base + (n * rp.Cd + g * rp.CdG + c4 * 4u) * HWd + oy * rp.Wd + ox;
    let v = (*acc)[col * ACC2 + j] + b;
    for (var k = 0u; k < 4u; k++) {
      if (c4 * 4u + k < rp.CdG) {
        dst[base + k * HWd] = v[k];
      }
    }
  }
}

// Column `col` of a dw tile: vec4 column kc = wid.x*(8 or 16) + col*8 + lane of (tap, ci4).
struct DwCol {
  kc: u32,
  t: u32,
  ci4: u32,
  cy: i32,
  cx: i32,
  xo: u32,
}

fn dw_col(wid: vec3<u32>, lane: u32, col: u32, wide: bool, g: u32) -> DwCol {
  let Kc = dp.khkw * dp.CinG4;
  var c: DwCol;
  c.kc = wid.x * select(1u, 2u, wide) * LANES + col * LANES + lane;
  let kcl = min(c.kc, Kc - 1u);
  c.t = kcl / dp.CinG4;
  c.ci4 = kcl % dp.CinG4;
  c.cy = i32((c.t / dp.kw) * dp.dly) - dp.py;
  c.cx = i32((c.t % dp.kw) * dp.dlx) - dp.px;
  c.xo = g * dp.CinG4 + c.ci4;
  return c;
}

// x vec4 of column c at output pixel (oy row base xrow / validity rok, ox); 0 outside x.
fn dw_x(c: DwCol, rok: bool, xrow: u32, ox: u32, xpix: u32) -> vec4<f32> {
  let ix = i32(ox * dp.sx) + c.cx;
  let ok = rok && ix >= 0 && ix < i32(dp.W);
  return x4[select(0u, (xrow + u32(ix)) * xpix + c.xo, ok)] * select(0.0, 1.0, ok);
}

// The weight-gradient tile of `dw_cl` (one column vec4 per lane) or `dw_cl2` (wide: two).
fn dw_tile(wid: vec3<u32>, lane: u32, wide: bool) {
  let taps = dp.khkw;
  let Kc = taps * dp.CinG4;             // vec4 columns: (tap, ci4)
  let co4 = min(wid.y * LANES + lane, dp.CoutG4 - 1u);
  let g = wid.z / dp.S;
  let s = wid.z % dp.S;
  let c0 = dw_col(wid, lane, 0u, wide, g);
  let c1 = dw_col(wid, lane, 1u, wide, g);
  let H = i32(dp.H);
  let xpix = dp.G * dp.CinG4;
  let dpix = dp.G * dp.CoutG4;
  let dof = g * dp.CoutG4 + co4;
  var acc: array<vec4<f32>, 64>;
  let r0 = s * dp.rps;
  let r1 = min(r0 + dp.rps, dp.rowsN);
  for (var rr = r0; rr < r1; rr++) {
    let n = rr / dp.Ho;
    let oy = rr % dp.Ho;
    let iy0 = i32(oy * dp.sy) + c0.cy;
    let rok0 = iy0 >= 0 && iy0 < H;
    let xrow0 = (n * dp.H + u32(max(iy0, 0))) * dp.W;
    let iy1 = i32(oy * dp.sy) + c1.cy;
    let rok1 = iy1 >= 0 && iy1 < H;
    let xrow1 = (n * dp.H + u32(max(iy1, 0))) * dp.W;
    let drow = (n * dp.Ho + oy) * dp.Wo;
    for (var ox = 0u; ox < dp.Wo; ox++) {
      let xv0 = dw_x(c0, rok0, xrow0, ox, xpix);
      var xv1 = vec4<f32>(0.0);
      if (wide) { xv1 = dw_x(c1, rok1, xrow1, ox, xpix); }
      let dv = dy4[(drow + ox) * dpix + dof];
      bfma4(&acc, dv, xv0, xv1, wide);
    }
  }
  for (var j = 0u; j < TM; j++) {
    let co = wid.y * TM + j;
    if (co >= dp.CoutG) { break; }
    let rowi = ((s * dp.G + g) * dp.CoutG + co) * taps;
    if (c0.kc < Kc) {
      let idx = (rowi + c0.t) * dp.CinG4 + c0.ci4;
      part[idx] = select(acc[j], part[idx] + acc[j], dp.accumulate != 0u);
    }
    if (wide && c1.kc < Kc) {
      let idx = (rowi + c1.t) * dp.CinG4 + c1.ci4;
      part[idx] = select(acc[ACC2 + j], part[idx] + acc[ACC2 + j], dp.accumulate != 0u);
    }
  }
}

@compute @workgroup_size(8)
fn dw_cl(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lane: u32) {
  dw_tile(wid, lane, false);
}

@compute @workgroup_size(8)
fn dw_cl2(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lane: u32) {
  dw_tile(wid, lane, true);
}

// The rows tile of `rows_sg` (one column vec4 per lane) or `rows_sg2` (wide: two).
fn rows_tile(wid: vec3<u32>, nwg: vec3<u32>, lane: u32, wide: bool) {
  let tile = wid.y * nwg.x + wid.x;
  let g = wid.z / rp.ncb;
  let c4 = (wid.z % rp.ncb) * select(1u, 2u, wide) * LANES + lane;
  let c4l = min(c4, rp.CdG4 - 1u);
  let c4b = c4 + LANES;                 // wide: the second column
  let c4lb = min(c4b, rp.CdG4 - 1u);
  let row0 = tile * TM;
  let HWs = rp.Hs * rp.Ws;
  // The R rows this lane gathers: row0 + i*LANES + lane.
  var qy: array<i32, R>;
  var qx: array<i32, R>;
  var nb: array<u32, R>;
  var rv: array<bool, R>;
  for (var i = 0u; i < R; i++) {
    let r = row0 + i * LANES + lane;
    rv[i] = r < rp.rows;
    let rr = min(r, rp.rows - 1u);
    let n = rr / rp.QHW;
    let q = rr % rp.QHW;
    qy[i] = i32(q / rp.Qw);
    qx[i] = i32(q % rp.Qw);
    nb[i] = rp.s_base + (n * rp.Cs + g * rp.CsG) * HWs;
  }
  var acc: array<vec4<f32>, 64>;
  let Hs = i32(rp.Hs);
  let Ws = i32(rp.Ws);
  for (var ty = 0u; ty < rp.nty; ty++) {
    let ky = rp.ky0 + ty * rp.kys;
    let oyy = rp.by0 + i32(ty) * rp.dby;
    for (var tx = 0u; tx < rp.ntx; tx++) {
      let kx = rp.kx0 + tx * rp.kxs;
      let oxx = rp.bx0 + i32(tx) * rp.dbx;
      var off: array<u32, R>;
      var m: array<f32, R>;
      for (var i = 0u; i < R; i++) {
        let sy = qy[i] * i32(rp.ay) + oyy;
        let sx = qx[i] * i32(rp.ax) + oxx;
        let ok = rv[i] && sy >= 0 && sy < Hs && sx >= 0 && sx < Ws;
        off[i] = select(0u, nb[i] + u32(sy) * rp.Ws + u32(sx), ok);
        m[i] = select(0.0, 1.0, ok);
      }
      var wi = ((g * rp.taps + ky * rp.kw + kx) * rp.CsG) * rp.CdG4;
      for (var cs = 0u; cs < rp.CsG; cs++) {
        let wa = wt[wi + c4l];
        var wb = vec4<f32>(0.0);
        if (wide) { wb = wt[wi + c4lb]; }
        wi += rp.CdG4;
        let v0 = src[off[0]] * m[0];
        let v1 = src[off[1]] * m[1];
        let v2 = src[off[2]] * m[2];
        let v3 = src[off[3]] * m[3];
        off[0] += HWs;
        off[1] += HWs;
        off[2] += HWs;
        off[3] += HWs;
        bfma(&acc, 0u, v0, wa, wb, wide);
        bfma(&acc, 8u, v1, wa, wb, wide);
        bfma(&acc, 16u, v2, wa, wb, wide);
        bfma(&acc, 24u, v3, wa, wb, wide);
      }
    }
  }
  store_rows(&acc, 0u, row0, g, c4);
  if (wide) { store_rows(&acc, 1u, row0, g, c4b); }
}

@compute @workgroup_size(8)
fn rows_sg(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_index) lane: u32) {
  rows_tile(wid, nwg, lane, false);
}

@compute @workgroup_size(8)
fn rows_sg2(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_index) lane: u32) {
  rows_tile(wid, nwg, lane, true);
}
