// conv2d_pw_sg.wgsl: forward of a strided 1x1 conv (ResNet downsample: kh = kw = 1, sx = 2, no
// padding, groups 1; any row stride sy) for CPU adapters with subgroups of 8 lanes (lavapipe).
// Needs the subgroups feature, so it is a file of its own; the TS side (conv2d.ts, pwS2Applies)
// picks it on the 'sg' conv2d variant only.
//
// Entry `pw_s2_sg`: y(n, o, oy, ox) = bias(o) + sum_ci x(n, ci, sy*oy, 2*ox) * w(o, ci).
// Bindings (group 0): 0 x4 (read, vec4 view of x, NCHW), 1 wt (read, vec4: the packed weight
//   Wp[ci][o padded to 4] written by `pack_pw` below), 2 bias (read, f32; ignored unless
//   has_bias), 3 y4 (read_write, vec4 view of y, NCHW), 4 pp: Params.
// Conditions (host checks): W % 4 == 0 (so Wo = W/2 is even), Ho*Wo % 4 == 0, x_base and y_base
//   multiples of 4 (they are: every batch item of x and y is a multiple of 4 floats).
// Pixel quads: quad q = flat output pixels 4q..4q+3 of one (n, o) plane = one aligned vec4 of y.
//   It is two pixel pairs (4q, 4q+1) and (4q+2, 4q+3); each pair lies in one output row (even
//   start, Wo even) at even ox, but pair 1 may start the next row when Wo % 4 == 2. A pair's two
//   source pixels x(sy*oy, 2*ox) and x(sy*oy, 2*ox+2) are lanes .x and .z of the aligned vec4 of
//   x at row sy*oy, columns 2*ox .. 2*ox+3 (2*ox is a multiple of 4): vec4 index
//   oy*srow4 + ox/2 in the channel plane (srow4 = sy*W/4). So a quad costs 2 vec4 loads per ci.
// Dispatch: workgroup = one subgroup of 8 lanes; grid folded 1-D (grid1d) over
//   ceil(quads/8) * ncb workgroups, linear index L = wid.y*nwg.x + wid.x: column block cb = L % ncb
//   (TC = 64 output channels), pixel tile t = L / ncb (8 quads). Column blocks are the fast index
//   so the ncb workgroups that read the same x quads run back to back (x stays in cache).
// Tiling: lane l owns pixel quad 8t+l and the block's 64 channels: 64 vec4 accumulators (channel
//   x vec4 over the quad's 4 pixels). Per input channel a lane loads its 2 x vec4 and the weight
//   vec4s of channels 64cb+4l .. +3 and 64cb+32+4l .. +3; the 16 weight vec4 reach every lane by
//   subgroupBroadcast (a register permute), so the workgroup loads each weight once. Measured on
//   lavapipe, 64 channels per lane ran ~1.2x faster than 32 (fewer loads per fma; the accumulators
//   live on the stack either way) and as fast as 128; chaining 2 or 4 input channels per fma
//   chain did not help. Stores: one vec4 per channel. Quads past the end and channels past Cout
//   load clamped valid elements and skip their stores; no lane returns before the last
//   subgroupBroadcast. No shared memory, no barriers.
// Entry `pack_pw`: the packed weight pw_s2_sg reads, from w (Cout, Cin) (a 1x1 kernel):
//   wp4[ci * Cout4 + c4] = vec4(w[4c4 + k, ci], k < 4; 0 past Cout). The same layout as
//   conv2d.wgsl `pack_weight` (taps = 1, groups 1, not transposed) at a quarter of the invocations
//   and one integer division each (lavapipe scalarizes u32 division): pack_weight, six divisions
//   per element, took ~10% of the forward's time at Cin x Cout = 128 x 256, pack_pw about half.
//   Bindings: 0 w (read, f32), 1 wp4 (read_write, vec4), 2 kp: PackParams. 1-D grid of WG
//   invocations per workgroup over Cin * Cout4 outputs, folded into (x, y) by grid1d.
// Numerics: pw_s2_sg: f32, one fma chain over ci per output (same order as rows_sg), bias added
//   at the end. pack_pw: copies.
enable subgroups;

struct Params {
  quads: u32,   // pixel quads in this batch chunk = nb * qp
  qp: u32,      // quads per output plane = Ho*Wo/4
  Wo: u32,
  Cin: u32,
  Cout: u32,
  Cout4: u32,   // ceil(Cout / 4): vec4 per packed weight row
  ncb: u32,     // column blocks = ceil(Cout / TC)
  plane4: u32,  // H*W/4: vec4 per input channel plane
  srow4: u32,   // sy*W/4: vec4 between the source rows of consecutive output rows
  x_base: u32,  // element offset of this chunk's x within the binding (multiple of 4)
  y_base: u32,  // same for y
  has_bias: u32,
}

struct PackParams {
  total: u32,   // Cin * Cout4 vec4 outputs
  Cin: u32,
  Cout: u32,
  Cout4: u32,
}

@group(0) @binding(0) var<storage, read> x4: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> wt: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> bias: array<f32>;
@group(0) @binding(3) var<storage, read_write> y4: array<vec4<f32>>;
@group(0) @binding(4) var<uniform> pp: Params;

@group(0) @binding(0) var<storage, read> w: array<f32>;
@group(0) @binding(1) var<storage, read_write> wp4: array<vec4<f32>>;
@group(0) @binding(2) var<uniform> kp: PackParams;

override WG: u32 = 64u;

const LANES: u32 = 8u;
const TC: u32 = 64u;   // output channels per workgroup (2 x LANES x vec4)

// acc[base + 4*s + c] += w(lane s)[c] * xv for the 8 source lanes s and 4 components c (base is
// a constant at each call, so the accumulator indices stay constant after inlining).
fn bfma_w(acc: ptr<function, array<vec4<f32>, TC>>, base: u32, wl: vec4<f32>, xv: vec4<f32>) {
  { let wv = subgroupBroadcast(wl, 0u);
    (*acc)[base + 0u] = fma(vec4<f32>(wv.x), xv, (*acc)[base + 0u]);
    (*acc)[base + 1u] = fma(vec4<f32>(wv.y), xv, (*acc)[base + 1u]);
    (*acc)[base + 2u] = fma(vec4<f32>(wv.z), xv, (*acc)[base + 2u]);
    (*acc)[base + 3u] = fma(vec4<f32>(wv.w), xv, (*acc)[base + 3u]);
  }
  { let wv = subgroupBroadcast(wl, 1u);
    (*acc)[base + 4u] = fma(vec4<f32>(wv.x), xv, (*acc)[base + 4u]);
    (*acc)[base + 5u] = fma(vec4<f32>(wv.y), xv, (*acc)[base + 5u]);
    (*acc)[base + 6u] = fma(vec4<f32>(wv.z), xv, (*acc)[base + 6u]);
    (*acc)[base + 7u] = fma(vec4<f32>(wv.w), xv, (*acc)[base + 7u]);
  }
  { let wv = subgroupBroadcast(wl, 2u);
    (*acc)[base + 8u] = fma(vec4<f32>(wv.x), xv, (*acc)[base + 8u]);
    (*acc)[base + 9u] = fma(vec4<f32>(wv.y), xv, (*acc)[base + 9u]);
    (*acc)[base + 10u] = fma(vec4<f32>(wv.z), xv, (*acc)[base + 10u]);
    (*acc)[base + 11u] = fma(vec4<f32>(wv.w), xv, (*acc)[base + 11u]);
  }
  { let wv = subgroupBroadcast(wl, 3u);
    (*acc)[base + 12u] = fma(vec4<f32>(wv.x), xv, (*acc)[base + 12u]);
    (*acc)[base + 13u] = fma(vec4<f32>(wv.y), xv, (*acc)[base + 13u]);
    (*acc)[base + 14u] = fma(vec4<f32>(wv.z), xv, (*acc)[base + 14u]);
    (*acc)[base + 15u] = fma(vec4<f32>(wv.w), xv, (*acc)[base + 15u]);
  }
  { let wv = subgroupBroadcast(wl, 4u);
    (*acc)[base + 16u] = fma(vec4<f32>(wv.x), xv, (*acc)[base + 16u]);
    (*acc)[base + 17u] = fma(vec4<f32>(wv.y), xv, (*acc)[base + 17u]);
    (*acc)[base + 18u] = fma(vec4<f32>(wv.z), xv, (*acc)[base + 18u]);
    (*acc)[base + 19u] = fma(vec4<f32>(wv.w), xv, (*acc)[base + 19u]);
  }
  { let wv = subgroupBroadcast(wl, 5u);
    (*acc)[base + 20u] = fma(vec4<f32>(wv.x), xv, (*acc)[base + 20u]);
    (*acc)[base + 21u] = fma(vec4<f32>(wv.y), xv, (*acc)[base + 21u]);
    (*acc)[base + 22u] = fma(vec4<f32>(wv.z), xv, (*acc)[base + 22u]);
    (*acc)[base + 23u] = fma(vec4<f32>(wv.w), xv, (*acc)[base + 23u]);
  }
  { let wv = subgroupBroadcast(wl, 6u);
    (*acc)[base + 24u] = fma(vec4<f32>(wv.x), xv, (*acc)[base + 24u]);
    (*acc)[base + 25u] = fma(vec4<f32>(wv.y), xv, (*acc)[base + 25u]);
    (*acc)[base + 26u] = fma(vec4<f32>(wv.z), xv, (*acc)[base + 26u]);
    (*acc)[base + 27u] = fma(vec4<f32>(wv.w), xv, (*acc)[base + 27u]);
  }
  { let wv = subgroupBroadcast(wl, 7u);
    (*acc)[base + 28u] = fma(vec4<f32>(wv.x), xv, (*acc)[base + 28u]);
    (*acc)[base + 29u] = fma(vec4<f32>(wv.y), xv, (*acc)[base + 29u]);
    (*acc)[base + 30u] = fma(vec4<f32>(wv.z), xv, (*acc)[base + 30u]);
    (*acc)[base + 31u] = fma(vec4<f32>(wv.w), xv, (*acc)[base + 31u]);
  }
}

// Vec4 index, inside one input channel plane, of the source vec4 of the output pixel pair that
// starts at flat output pixel `pix` (even; Wo even).
fn pair_src(pix: u32) -> u32 {
  let oy = pix / pp.Wo;
  return oy * pp.srow4 + (pix - oy * pp.Wo) / 2u;
}

@compute @workgroup_size(8)
fn pw_s2_sg(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_index) lane: u32) {
  let L = wid.y * nwg.x + wid.x;
  let t = L / pp.ncb;
  let cb = L - t * pp.ncb;
  let c0 = t * LANES;
  if (c0 >= pp.quads) { return; }     // uniform over the workgroup (grid1d padding)
  let c = min(c0 + lane, pp.quads - 1u);
  let n = c / pp.qp;
  let q = c - n * pp.qp;
  let xb = pp.x_base / 4u + n * pp.Cin * pp.plane4;
  var xi0 = xb + pair_src(4u * q);
  var xi1 = xb + pair_src(4u * q + 2u);
  // This lane's weight vec4s: channels 64cb + 4l .. +3 and 64cb + 32 + 4l .. +3 (clamped).
  var wi0 = min(cb * (TC / 4u) + lane, pp.Cout4 - 1u);
  var wi1 = min(cb * (TC / 4u) + LANES + lane, pp.Cout4 - 1u);
  var acc: array<vec4<f32>, TC>;
  for (var ci = 0u; ci < pp.Cin; ci++) {
    let a = x4[xi0];
    let b = x4[xi1];
    xi0 += pp.plane4;
    xi1 += pp.plane4;
    let w0 = wt[wi0];
    let w1 = wt[wi1];
    wi0 += pp.Cout4;
    wi1 += pp.Cout4;
    let xv = vec4<f32>(a.x, a.z, b.x, b.z);
    bfma_w(&acc, 0u, w0, xv);
    bfma_w(&acc, 32u, w1, xv);
  }
  if (c0 + lane >= pp.quads) { return; }
  // Copy the accumulators (constant indices keep them SSA values in the loop above) into an array
  // walked by a loop: indexing acc itself with the loop counter would make it addressable memory.
  var out: array<vec4<f32>, TC>;
  out[0] = acc[0]; out[1] = acc[1]; out[2] = acc[2]; out[3] = acc[3];
  out[4] = acc[4]; out[5] = acc[5]; out[6] = acc[6]; out[7] = acc[7];
  out[8] = acc[8]; out[9] = acc[9]; out[10] = acc[10]; out[11] = acc[11];
  out[12] = acc[12]; out[13] = acc[13]; out[14] = acc[14]; out[15] = acc[15];
  out[16] = acc[16]; out[17] = acc[17]; out[18] = acc[18]; out[19] = acc[19];
  out[20] = acc[20]; out[21] = acc[21]; out[22] = acc[22]; out[23] = acc[23];
  out[24] = acc[24]; out[25] = acc[25]; out[26] = acc[26]; out[27] = acc[27];
  out[28] = acc[28]; out[29] = acc[29]; out[30] = acc[30]; out[31] = acc[31];
  out[32] = acc[32]; out[33] = acc[33]; out[34] = acc[34]; out[35] = acc[35];
  out[36] = acc[36]; out[37] = acc[37]; out[38] = acc[38]; out[39] = acc[39];
  out[40] = acc[40]; out[41] = acc[41]; out[42] = acc[42]; out[43] = acc[43];
  out[44] = acc[44]; out[45] = acc[45]; out[46] = acc[46]; out[47] = acc[47];
  out[48] = acc[48]; out[49] = acc[49]; out[50] = acc[50]; out[51] = acc[51];
  out[52] = acc[52]; out[53] = acc[53]; out[54] = acc[54]; out[55] = acc[55];
  out[56] = acc[56]; out[57] = acc[57]; out[58] = acc[58]; out[59] = acc[59];
  out[60] = acc[60]; out[61] = acc[61]; out[62] = acc[62]; out[63] = acc[63];
  let o0 = cb * TC;
  let yb = pp.y_base / 4u + (n * pp.Cout + o0) * pp.qp + q;
  for (var j = 0u; j < TC; j++) {
    let o = o0 + j;
    if (o >= pp.Cout) { break; }
    var bv = 0.0;
    if (pp.has_bias != 0u) { bv = bias[o]; }
    y4[yb + j * pp.qp] = out[j] + vec4<f32>(bv);
  }
}

@compute @workgroup_size(WG)
fn pack_pw(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_index) lid: u32) {
  let o = (wid.y * nwg.x + wid.x) * WG + lid;
  if (o >= kp.total) { return; }
  let ci = o / kp.Cout4;
  let c0 = (o - ci * kp.Cout4) * 4u;
  var v = vec4<f32>(0.0);
  for (var k = 0u; k < 4u; k++) {
    if (c0 + k < kp.Cout) { v[k] = w[(c0 + k) * kp.Cin + ci]; }
  }
  wp4[o] = v;
}
