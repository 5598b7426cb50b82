// conv_transpose2d_sg.wgsl: the k=2, s=2 ConvTranspose2d passes (forward, dx, dW) for CPU adapters
// with subgroups of 8 lanes (lavapipe). Same Params, bindings and semantics as the *_k2s2 entries of
// conv_transpose2d.wgsl (see its header); this file needs the subgroups feature, so it is separate.
//
// Bindings (group 0): fwd_k2s2_sg: 0 x4 (read) 1 w4 (read) 2 bias (read) 3 y4 (read_write) 4 params
//                     dx_k2s2_sg:  0 dy4 (read) 1 w4 (read) 2 dx4 (read_write)             3 params
//                     dw_k2s2_sg:  0 x4 (read) 1 dyw4 (read) 2 dw4 (read_write)            3 params
// Conditions (host: convTUsesK2s2): KH = KW = S = 2, W even, H*W % 4 == 0 (x_base, y_base multiples
// of 4). Pixel quad q = flat input pixels 4q..4q+3 of one (n, channel) plane, one vec4 of x. It is
// two pixel pairs (4q, 4q+1) and (4q+2, 4q+3); each pair lies in one input row (even start, W even),
// but the second may start the next row when W % 4 == 2. A pair's 2x2 taps cover a 2x4 output block
// that is one vec4 in each of two output rows (Wo = 2W is a multiple of 4): pair_pos() gives its
// vec4 index r (rows at r and r + Wo/4); pair 0 uses lanes .xy of the quad, pair 1 lanes .zw.
// Dispatch: workgroup = one subgroup of 8 lanes.
//   fwd: grid (folded 1-D over ceil(N*H*W/4 / 8)) x ceil(Cout/8). Lane l owns pixel quad c0+l and
//        the workgroup's 8 output channels: 32 vec4 accumulators (channel x tap, vec4 over the 4
//        pixels). Per input channel i each lane loads its x quad (1 vec4) and w[i, o0+l, :, :]
//        (1 vec4); the 8 weight vec4 reach every lane by subgroupBroadcast (a register permute), so
//        the workgroup loads each weight once. Stores 4 vec4 per channel (2 per pair).
//   dx:  grid (folded 1-D over quads / 8) x ceil(Cin/32). Lane l owns pixel quad c0+l and 32 input
//        channels (32 vec4 accumulators). Per output channel o it loads the dy blocks of its two
//        pairs (4 vec4, de-interleaved into the 4 taps) and w[i0+8r+l, o] for r < 4 (4 vec4),
//        broadcast.
//   dW:  grid folded 1-D over ceil(Cin/32) * ceil(Cout/8) workgroups. Lane l owns output channel
//        o0+l, the workgroup's 32 input channels and 4 taps: 128 scalar accumulators, each fed by
//        dot products over the 4 pixels of a quad (as cheap as a vec4 fma per lane on lavapipe,
//        with a quarter of the registers). The loop runs over the H*W/4 quads of each image (pair
//        positions tracked incrementally, uniform over the subgroup); per quad a lane loads
//        x[n, i0+8r+l, quad] for r < 4 (4 vec4, broadcast to all lanes) and the dy blocks of the
//        quad's two pairs in its own channel (4 vec4). The host splits long batches into passes
//        of at most 4096 quads that add into dw (blocked summation).
// Tiles past Cin/Cout or the last pixel quad load a clamped valid element and skip their stores; no
// lane returns before the last subgroupBroadcast. No shared memory, no barriers.
// Numerics: f32 fma chains; see conv_transpose2d.wgsl.

enable subgroups;

struct Params {
  N: u32,
  Cin: u32,
  H: u32,
  W: u32,
  Cout: u32,
  Ho: u32,
  Wo: u32,
  KH: u32,
  KW: u32,
  S: u32,
  x_base: u32,
  y_base: u32,
  has_bias: u32,
  accumulate: u32,
}

@group(0) @binding(0) var<storage, read> x4: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> w4: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> bias: array<f32>;
@group(0) @binding(3) var<storage, read_write> y4: array<vec4<f32>>;
@group(0) @binding(4) var<uniform> pf: Params;

// Vec4 index, inside one output-channel plane, of the 2x4 output block of the pixel pair that
// starts at flat input pixel `pix` (even; W even): output rows 2y and 2y+1 at it and it + wo4.
fn pair_pos(pix: u32, W: u32, wo4: u32) -> u32 {
  let yy = pix / W;
  return 2u * yy * wo4 + (pix - yy * W) / 2u;
}

@compute @workgroup_size(8)
fn fwd_k2s2_sg(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_id) lid: vec3<u32>) {
  let p = pf;
  let qp = (p.H * p.W) / 4u;
  let total = p.N * qp;
  let c0 = (wid.y * nwg.x + wid.x) * 8u;
  if (c0 >= total) { return; }        // uniform over the workgroup
  let c = min(c0 + lid.x, total - 1u);
  let n = c / qp;
  let q = c - n * qp;
  let o0 = wid.z * 8u;
  var acc: array<vec4<f32>, 32>;
  for (var k = 0u; k < 32u; k = k + 1u) { acc[k] = vec4<f32>(0.0); }
  var xi = p.x_base / 4u + n * p.Cin * qp + q;
  var wi = min(o0 + lid.x, p.Cout - 1u);
  for (var i = 0u; i < p.Cin; i = i + 1u) {
    let xv = x4[xi];
    xi = xi + qp;
    let wl = w4[wi];
    wi = wi + p.Cout;
    { let wv = subgroupBroadcast(wl, 0u);
      acc[0] = fma(vec4<f32>(wv.x), xv, acc[0]);
      acc[1] = fma(vec4<f32>(wv.y), xv, acc[1]);
      acc[2] = fma(vec4<f32>(wv.z), xv, acc[2]);
      acc[3] = fma(vec4<f32>(wv.w), xv, acc[3]);
    }
    { let wv = subgroupBroadcast(wl, 1u);
      acc[4] = fma(vec4<f32>(wv.x), xv, acc[4]);
      acc[5] = fma(vec4<f32>(wv.y), xv, acc[5]);
      acc[6] = fma(vec4<f32>(wv.z), xv, acc[6]);
      acc[7] = fma(vec4<f32>(wv.w), xv, acc[7]);
    }
    { let wv = subgroupBroadcast(wl, 2u);
      acc[8] = fma(vec4<f32>(wv.x), xv, acc[8]);
      acc[9] = fma(vec4<f32>(wv.y), xv, acc[9]);
      acc[10] = fma(vec4<f32>(wv.z), xv, acc[10]);
      acc[11] = fma(vec4<f32>(wv.w), xv, acc[11]);
    }
    { let wv = subgroupBroadcast(wl, 3u);
      acc[12] = fma(vec4<f32>(wv.x), xv, acc[12]);
      acc[13] = fma(vec4<f32>(wv.y), xv, acc[13]);
      acc[14] = fma(vec4<f32>(wv.z), xv, acc[14]);
      acc[15] = fma(vec4<f32>(wv.w), xv, acc[15]);
    }
    { let wv = subgroupBroadcast(wl, 4u);
      acc[16] = fma(vec4<f32>(wv.x), xv, acc[16]);
      acc[17] = fma(vec4<f32>(wv.y), xv, acc[17]);
      acc[18] = fma(vec4<f32>(wv.z), xv, acc[18]);
      acc[19] = fma(vec4<f32>(wv.w), xv, acc[19]);
    }
    { let wv = subgroupBroadcast(wl, 5u);
      acc[20] = fma(vec4<f32>(wv.x), xv, acc[20]);
      acc[21] = fma(vec4<f32>(wv.y), xv, acc[21]);
      acc[22] = fma(vec4<f32>(wv.z), xv, acc[22]);
      acc[23] = fma(vec4<f32>(wv.w), xv, acc[23]);
    }
    { let wv = subgroupBroadcast(wl, 6u);
      acc[24] = fma(vec4<f32>(wv.x), xv, acc[24]);
      acc[25] = fma(vec4<f32>(wv.y), xv, acc[25]);
      acc[26] = fma(vec4<f32>(wv.z), xv, acc[26]);
      acc[27] = fma(vec4<f32>(wv.w), xv, acc[27]);
    }
    { let wv = subgroupBroadcast(wl, 7u);
      acc[28] = fma(vec4<f32>(wv.x), xv, acc[28]);
      acc[29] = fma(vec4<f32>(wv.y), xv, acc[29]);
      acc[30] = fma(vec4<f32>(wv.z), xv, acc[30]);
      acc[31] = fma(vec4<f32>(wv.w), xv, acc[31]);
    }
  }
  if (c0 + lid.x >= total) { return; }
  let wo4 = p.Wo / 4u;
  let r0 = pair_pos(q * 4u, p.W, wo4);
  let r1 = pair_pos(q * 4u + 2u, p.W, wo4);
  let plane4 = p.Ho * wo4;
  for (var j = 0u; j < 8u; j = j + 1u) {
    let o = o0 + j;
    if (o < p.Cout) {
      var bv = 0.0;
      if (p.has_bias != 0u) { bv = bias[o]; }
      let b4 = vec4<f32>(bv);
      let ob = p.y_base / 4u + (n * p.Cout + o) * plane4;
      let a00 = acc[j * 4u + 0u];
      let a01 = acc[j * 4u + 1u];
      let a10 = acc[j * 4u + 2u];
      let a11 = acc[j * 4u + 3u];
      y4[ob + r0] = vec4<f32>(a00.x, a01.x, a00.y, a01.y) + b4;
      y4[ob + r1] = vec4<f32>(a00.z, a01.z, a00.w, a01.w) + b4;
      y4[ob + r0 + wo4] = vec4<f32>(a10.x, a11.x, a10.y, a11.y) + b4;
      y4[ob + r1 + wo4] = vec4<f32>(a10.z, a11.z, a10.w, a11.w) + b4;
    }
  }
}

@group(0) @binding(0) var<storage, read> dy4: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> dx4: array<vec4<f32>>;
@group(0) @binding(3) var<uniform> p3: Params;

@compute @workgroup_size(8)
fn dx_k2s2_sg(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_id) lid: vec3<u32>) {
  let p = p3;
  let qp = (p.H * p.W) / 4u;
  let total = p.N * qp;
  let c0 = (wid.y * nwg.x + wid.x) * 8u;
  if (c0 >= total) { return; }
  let c = min(c0 + lid.x, total - 1u);
  let n = c / qp;
  let q = c - n * qp;
  let i0 = wid.z * 32u;
  let wo4 = p.Wo / 4u;
  let plane4 = p.Ho * wo4;
  let r0 = pair_pos(q * 4u, p.W, wo4);
  let r1 = pair_pos(q * 4u + 2u, p.W, wo4);
  var acc: array<vec4<f32>, 32>;
  for (var k = 0u; k < 32u; k = k + 1u) { acc[k] = vec4<f32>(0.0); }
  let wi0 = min(i0 + 0u + lid.x, p.Cin - 1u) * p.Cout;
  let wi1 = min(i0 + 8u + lid.x, p.Cin - 1u) * p.Cout;
  let wi2 = min(i0 + 16u + lid.x, p.Cin - 1u) * p.Cout;
  let wi3 = min(i0 + 24u + lid.x, p.Cin - 1u) * p.Cout;
  var di0 = p.y_base / 4u + n * p.Cout * plane4 + r0;
  var di1 = p.y_base / 4u + n * p.Cout * plane4 + r1;
  for (var o = 0u; o < p.Cout; o = o + 1u) {
    let d00 = dy4[di0];
    let d01 = dy4[di1];
    let d10 = dy4[di0 + wo4];
    let d11 = dy4[di1 + wo4];
    di0 = di0 + plane4;
    di1 = di1 + plane4;
    let w0 = w4[wi0 + o];
    let w1 = w4[wi1 + o];
    let w2 = w4[wi2 + o];
    let w3 = w4[wi3 + o];
    let t00 = vec4<f32>(d00.x, d00.z, d01.x, d01.z);
    let t01 = vec4<f32>(d00.y, d00.w, d01.y, d01.w);
    let t10 = vec4<f32>(d10.x, d10.z, d11.x, d11.z);
    let t11 = vec4<f32>(d10.y, d10.w, d11.y, d11.w);
    { let wv = subgroupBroadcast(w0, 0u);
      acc[0] = fma(vec4<f32>(wv.w), t11, fma(vec4<f32>(wv.z), t10,
                fma(vec4<f32>(wv.y), t01, fma(vec4<f32>(wv.x), t00, acc[0])))); }
    { let wv = subgroupBroadcast(w0, 1u);
      acc[1] = fma(vec4<f32>(wv.w), t11, fma(vec4<f32>(wv.z), t10,
                fma(vec4<f32>(wv.y), t01, fma(vec4<f32>(wv.x), t00, acc[1])))); }
    { let wv = subgroupBroadcast(w0, 2u);
      acc[2] = fma(vec4<f32>(wv.w), t11, fma(vec4<f32>(wv.z), t10,
                fma(vec4<f32>(wv.y), t01, fma(vec4<f32>(wv.x), t00, acc[2])))); }
    { let wv = subgroupBroadcast(w0, 3u);
      acc[3] = fma(vec4<f32>(wv.w), t11, fma(vec4<f32>(wv.z), t10,
                fma(vec4<f32>(wv.y), t01, fma(vec4<f32>(wv.x), t00, acc[3])))); }
    { let wv = subgroupBroadcast(w0, 4u);
      acc[4] = fma(vec4<f32>(wv.w), t11, fma(vec4<f32>(wv.z), t10,
                fma(vec4<f32>(wv.y), t01, fma(vec4<f32>(wv.x), t00, acc[4])))); }
    { let wv = subgroupBroadcast(w0, 5u);
      acc[5] = fma(vec4<f32>(wv.w), t11, fma(vec4<f32>(wv.z), t10,
                fma(vec4<f32>(wv.y), t01, fma(vec4<f32>(wv.x), t00, acc[5])))); }
    { let wv = subgroupBroadcast(w0, 6u);
      acc[6] = fma(vec4<f32>(wv.w), t11, fma(vec4<f32>(wv.z), t10,
                fma(vec4<f32>(wv.y), t01, fma(vec4<f32>(wv.x), t00, acc[6])))); }
    { let wv = subgroupBroadcast(w0, 7u);
      acc[7] = fma(vec4<f32>(wv.w), t11, fma(vec4<f32>(wv.z), t10,
                fma(vec4<f32>(wv.y), t01, fma(vec4<f32>(wv.x), t00, acc[7])))); }
    { let wv = subgroupBroadcast(w1, 0u);
      acc[8] = fma(vec4<f32>(wv.w), t11, fma(vec4<f32>(wv.z), t10,
                fma(vec4<f32>(wv.y), t01, fma(vec4<f32>(wv.x), t00, acc[8])))); }
    { let wv = subgroupBroadcast(w1, 1u);
      acc[9] = fma(vec4<f32>(wv.w), t11, fma(vec4<f32>(wv.z), t10,
                fma(vec4<f32>(wv.y), t01, fma(vec4<f32>(wv.x), t00, acc[9])))); }
    { let wv = subgroupBroadcast(w1, 2u);
      acc[10] = fma(vec4<f32>(wv.w), t11, fma(vec4<f32>(wv.z), t10,
                fma(vec4<f32>(wv.y), t01, fma(vec4<f32>(wv.x), t00, acc[10])))); }
    { let wv = subgroupBroadcast(w1, 3u);
      acc[11] = fma(vec4<f32>(wv.w), t11, fma(vec4<f32>(wv.z), t10,
                fma(vec4<f32>(wv.y), t01, fma(vec4<f32>(wv.x), t00, acc[11])))); }
    { let wv = subgroupBroadcast(w1, 4u);
      acc[12] = fma(vec4<f32>(wv.w), t11, fma(vec4<f32>(wv.z), t10,
                fma(vec4<f32>(wv.y), t01, fma(vec4<f32>(wv.x), t00, acc[12])))); }
    { let wv = subgroupBroadcast(w1, 5u);
      acc[13] = fma(vec4<f32>(wv.w), t11, fma(vec4<f32>(wv.z), t10,
                fma(vec4<f32>(wv.y), t01, fma(vec4<f32>(wv.x), t00, acc[13])))); }
    { let wv = subgroupBroadcast(w1, 6u);
      acc[14] = fma(vec4<f32>(wv.w), t11, fma(vec4<f32>(wv.z), t10,
                fma(vec4<f32>(wv.y), t01, fma(vec4<f32>(wv.x), t00, acc[14])))); }
    { let wv = subgroupBroadcast(w1, 7u);
      acc[15] = fma(vec4<f32>(wv.w), t11, fma(vec4<f32>(wv.z), t10,
                fma(vec4<f32>(wv.y), t01, fma(vec4<f32>(wv.x), t00, acc[15])))); }
    { let wv = subgroupBroadcast(w2, 0u);
      acc[16] = fma(vec4<f32>(wv.w), t11, fma(vec4<f32>(wv.z), t10,
                fma(vec4<f32>(wv.y), t01, fma(vec4<f32>(wv.x), t00, acc[16])))); }
    { let wv = subgroupBroadcast(w2, 1u);
      acc[17] = fma(vec4<f32>(wv.w), t11, fma(vec4<f32>(wv.z), t10,
                fma(vec4<f32>(wv.y), t01, fma(vec4<f32>(wv.x), t00, acc[17])))); }
    { let wv = subgroupBroadcast(w2, 2u);
      acc[18] = fma(vec4<f32>(wv.w), t11, fma(vec4<f32>(wv.z), t10,
                fma(vec4<f32>(wv.y), t01, fma(vec4<f32>(wv.x), t00, acc[18])))); }
    { let wv = subgroupBroadcast(w2, 3u);
      acc[19] = fma(vec4<f32>(wv.w), t11, fma(vec4<f32>(wv.z), t10,
                fma(vec4<f32>(wv.y), t01, fma(vec4<f32>(wv.x), t00, acc[19])))); }
    { let wv = subgroupBroadcast(w2, 4u);
      acc[20] = fma(vec4<f32>(wv.w), t11, fma(vec4<f32>(wv.z), t10,
                fma(vec4<f32>(wv.y), t01, fma(vec4<f32>(wv.x), t00, acc[20])))); }
    { let wv = subgroupBroadcast(w2, 5u);
      acc[21] = fma(vec4<f32>(wv.w), t11, fma(vec4<f32>(wv.z), t10,
                fma(vec4<f32>(wv.y), t01, fma(vec4<f32>(wv.x), t00, acc[21])))); }
    { let wv = subgroupBroadcast(w2, 6u);
      acc[22] = fma(vec4<f32>(wv.w), t11, fma(vec4<f32>(wv.z), t10,
                fma(vec4<f32>(wv.y), t01, fma(vec4<f32>(wv.x), t00, acc[22])))); }
    { let wv = subgroupBroadcast(w2, 7u);
      acc[23] = fma(vec4<f32>(wv.w), t11, fma(vec4<f32>(wv.z), t10,
                fma(vec4<f32>(wv.y), t01, fma(vec4<f32>(wv.x), t00, acc[23])))); }
    { let wv = subgroupBroadcast(w3, 0u);
      acc[24] = fma(vec4<f32>(wv.w), t11, fma(vec4<f32>(wv.z), t10,
                fma(vec4<f32>(wv.y), t01, fma(vec4<f32>(wv.x), t00, acc[24])))); }
    { let wv = subgroupBroadcast(w3, 1u);
      acc[25] = fma(vec4<f32>(wv.w), t11, fma(vec4<f32>(wv.z), t10,
                fma(vec4<f32>(wv.y), t01, fma(vec4<f32>(wv.x), t00, acc[25])))); }
    { let wv = subgroupBroadcast(w3, 2u);
      acc[26] = fma(vec4<f32>(wv.w), t11, fma(vec4<f32>(wv.z), t10,
                fma(vec4<f32>(wv.y), t01, fma(vec4<f32>(wv.x), t00, acc[26])))); }
    { let wv = subgroupBroadcast(w3, 3u);
      acc[27] = fma(vec4<f32>(wv.w), t11, fma(vec4<f32>(wv.z), t10,
                fma(vec4<f32>(wv.y), t01, fma(vec4<f32>(wv.x), t00, acc[27])))); }
    { let wv = subgroupBroadcast(w3, 4u);
      acc[28] = fma(vec4<f32>(wv.w), t11, fma(vec4<f32>(wv.z), t10,
                fma(vec4<f32>(wv.y), t01, fma(vec4<f32>(wv.x), t00, acc[28])))); }
    { let wv = subgroupBroadcast(w3, 5u);
      acc[29] = fma(vec4<f32>(wv.w), t11, fma(vec4<f32>(wv.z), t10,
                fma(vec4<f32>(wv.y), t01, fma(vec4<f32>(wv.x), t00, acc[29])))); }
    { let wv = subgroupBroadcast(w3, 6u);
      acc[30] = fma(vec4<f32>(wv.w), t11, fma(vec4<f32>(wv.z), t10,
                fma(vec4<f32>(wv.y), t01, fma(vec4<f32>(wv.x), t00, acc[30])))); }
    { let wv = subgroupBroadcast(w3, 7u);
      acc[31] = fma(vec4<f32>(wv.w), t11, fma(vec4<f32>(wv.z), t10,
                fma(vec4<f32>(wv.y), t01, fma(vec4<f32>(wv.x), t00, acc[31])))); }
  }
  if (c0 + lid.x >= total) { return; }
  let xrow = p.x_base / 4u + n * p.Cin * qp + q;
  for (var j = 0u; j < 32u; j = j + 1u) {
    let i = i0 + j;
    if (i < p.Cin) {
      dx4[xrow + i * qp] = acc[j];
    }
  }
}

@group(0) @binding(1) var<storage, read> dyw4: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> dw4: array<vec4<f32>>;

@compute @workgroup_size(8)
fn dw_k2s2_sg(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_id) lid: vec3<u32>) {
  let p = p3;
  let tiles_o = (p.Cout + 7u) / 8u;
  let t = wid.y * nwg.x + wid.x;
  if (t >= tiles_o * ((p.Cin + 31u) / 32u)) { return; }
  let ti = t / tiles_o;
  let i0 = ti * 32u;
  let o0 = (t - ti * tiles_o) * 8u;
  let qp = (p.H * p.W) / 4u;
  let wo4 = p.Wo / 4u;
  let plane4 = p.Ho * wo4;
  let doff = min(o0 + lid.x, p.Cout - 1u) * plane4;
  let xoff0 = min(i0 + 0u + lid.x, p.Cin - 1u) * qp;
  let xoff1 = min(i0 + 8u + lid.x, p.Cin - 1u) * qp;
  let xoff2 = min(i0 + 16u + lid.x, p.Cin - 1u) * qp;
  let xoff3 = min(i0 + 24u + lid.x, p.Cin - 1u) * qp;
  var acc: array<f32, 128>;   // [j*4 + tap]: input channel i0+j, output channel o0+lane
  for (var k = 0u; k < 128u; k = k + 1u) { acc[k] = 0.0; }
  for (var n = 0u; n < p.N; n = n + 1u) {
    let xb = p.x_base / 4u + n * p.Cin * qp;
    let dbase = p.y_base / 4u + n * p.Cout * plane4 + doff;
    var rp = 0u;   // 2 * yy * wo4: first output row of the current pixel pair, in vec4
    var xx = 0u;   // input column of the pair's first pixel (even)
    for (var q = 0u; q < qp; q = q + 1u) {
      let x0 = x4[xb + xoff0 + q];
      let x1 = x4[xb + xoff1 + q];
      let x2 = x4[xb + xoff2 + q];
      let x3 = x4[xb + xoff3 + q];
      // The quad's two pixel pairs; the second starts the next input row when W % 4 == 2.
      let d0 = dbase + rp + xx / 2u;
      xx = xx + 2u;
      if (xx == p.W) { xx = 0u; rp = rp + 2u * wo4; }
      let d1 = dbase + rp + xx / 2u;
      xx = xx + 2u;
      if (xx == p.W) { xx = 0u; rp = rp + 2u * wo4; }
      let d00 = dyw4[d0];
      let d01 = dyw4[d1];
      let d10 = dyw4[d0 + wo4];
      let d11 = dyw4[d1 + wo4];
      let t00 = vec4<f32>(d00.x, d00.z, d01.x, d01.z);
      let t01 = vec4<f32>(d00.y, d00.w, d01.y, d01.w);
      let t10 = vec4<f32>(d10.x, d10.z, d11.x, d11.z);
      let t11 = vec4<f32>(d10.y, d10.w, d11.y, d11.w);
      { let xj = subgroupBroadcast(x0, 0u);
        acc[0] = fma(xj.w, t00.w, fma(xj.z, t00.z, fma(xj.y, t00.y, fma(xj.x, t00.x, acc[0]))));
        acc[1] = fma(xj.w, t01.w, fma(xj.z, t01.z, fma(xj.y, t01.y, fma(xj.x, t01.x, acc[1]))));
        acc[2] = fma(xj.w, t10.w, fma(xj.z, t10.z, fma(xj.y, t10.y, fma(xj.x, t10.x, acc[2]))));
        acc[3] = fma(xj.w, t11.w, fma(xj.z, t11.z, fma(xj.y, t11.y, fma(xj.x, t11.x, acc[3]))));
      }
      { let xj = subgroupBroadcast(x0, 1u);
        acc[4] = fma(xj.w, t00.w, fma(xj.z, t00.z, fma(xj.y, t00.y, fma(xj.x, t00.x, acc[4]))));
        acc[5] = fma(xj.w, t01.w, fma(xj.z, t01.z, fma(xj.y, t01.y, fma(xj.x, t01.x, acc[5]))));
        acc[6] = fma(xj.w, t10.w, fma(xj.z, t10.z, fma(xj.y, t10.y, fma(xj.x, t10.x, acc[6]))));
        acc[7] = fma(xj.w, t11.w, fma(xj.z, t11.z, fma(xj.y, t11.y, fma(xj.x, t11.x, acc[7]))));
      }
      { let xj = subgroupBroadcast(x0, 2u);
        acc[8] = fma(xj.w, t00.w, fma(xj.z, t00.z, fma(xj.y, t00.y, fma(xj.x, t00.x, acc[8]))));
        acc[9] = fma(xj.w, t01.w, fma(xj.z, t01.z, fma(xj.y, t01.y, fma(xj.x, t01.x, acc[9]))));
        acc[10] = fma(xj.w, t10.w, fma(xj.z, t10.z, fma(xj.y, t10.y, fma(xj.x, t10.x, acc[10]))));
        acc[11] = fma(xj.w, t11.w, fma(xj.z, t11.z, fma(xj.y, t11.y, fma(xj.x, t11.x, acc[11]))));
      }
      { let xj = subgroupBroadcast(x0, 3u);
        acc[12] = fma(xj.w, t00.w, fma(xj.z, t00.z, fma(xj.y, t00.y, fma(xj.x, t00.x, acc[12]))));
        acc[13] = fma(xj.w, t01.w, fma(xj.z, t01.z, fma(xj.y, t01.y, fma(xj.x, t01.x, acc[13]))));
        acc[14] = fma(xj.w, t10.w, fma(xj.z, t10.z, fma(xj.y, t10.y, fma(xj.x, t10.x, acc[14]))));
        acc[15] = fma(xj.w, t11.w, fma(xj.z, t11.z, fma(xj.y, t11.y, fma(xj.x, t11.x, acc[15]))));
      }
      { let xj = subgroupBroadcast(x0, 4u);
        acc[16] = fma(xj.w, t00.w, fma(xj.z, t00.z, fma(xj.y, t00.y, fma(xj.x, t00.x, acc[16]))));
        acc[17] = fma(xj.w, t01.w, fma(xj.z, t01.z, fma(xj.y, t01.y, fma(xj.x, t01.x, acc[17]))));
        acc[18] = fma(xj.w, t10.w, fma(xj.z, t10.z, fma(xj.y, t10.y, fma(xj.x, t10.x, acc[18]))));
        acc[19] = fma(xj.w, t11.w, fma(xj.z, t11.z, fma(xj.y, t11.y, fma(xj.x, t11.x, acc[19]))));
      }
      { let xj = subgroupBroadcast(x0, 5u);
        acc[20] = fma(xj.w, t00.w, fma(xj.z, t00.z, fma(xj.y, t00.y, fma(xj.x, t00.x, acc[20]))));
        acc[21] = fma(xj.w, t01.w, fma(xj.z, t01.z, fma(xj.y, t01.y, fma(xj.x, t01.x, acc[21]))));
        acc[22] = fma(xj.w, t10.w, fma(xj.z, t10.z, fma(xj.y, t10.y, fma(xj.x, t10.x, acc[22]))));
        acc[23] = fma(xj.w, t11.w, fma(xj.z, t11.z, fma(xj.y, t11.y, fma(xj.x, t11.x, acc[23]))));
      }
      { let xj = subgroupBroadcast(x0, 6u);
        acc[24] = fma(xj.w, t00.w, fma(xj.z, t00.z, fma(xj.y, t00.y, fma(xj.x, t00.x, acc[24]))));
        acc[25] = fma(xj.w, t01.w, fma(xj.z, t01.z, fma(xj.y, t01.y, fma(xj.x, t01.x, acc[25]))));
        acc[26] = fma(xj.w, t10.w, fma(xj.z, t10.z, fma(xj.y, t10.y, fma(xj.x, t10.x, acc[26]))));
        acc[27] = fma(xj.w, t11.w, fma(xj.z, t11.z, fma(xj.y, t11.y, fma(xj.x, t11.x, acc[27]))));
      }
      { let xj = subgroupBroadcast(x0, 7u);
        acc[28] = fma(xj.w, t00.w, fma(xj.z, t00.z, fma(xj.y, t00.y, fma(xj.x, t00.x, acc[28]))));
        acc[29] = fma(xj.w, t01.w, fma(xj.z, t01.z, fma(xj.y, t01.y, fma(xj.x, t01.x, acc[29]))));
        acc[30] = fma(xj.w, t10.w, fma(xj.z, t10.z, fma(xj.y, t10.y, fma(xj.x, t10.x, acc[30]))));
        acc[31] = fma(xj.w, t11.w, fma(xj.z, t11.z, fma(xj.y, t11.y, fma(xj.x, t11.x, acc[31]))));
      }
      { let xj = subgroupBroadcast(x1, 0u);
        acc[32] = fma(xj.w, t00.w, fma(xj.z, t00.z, fma(xj.y, t00.y, fma(xj.x, t00.x, acc[32]))));
        acc[33] = fma(xj.w, t01.w, fma(xj.z, t01.z, fma(xj.y, t01.y, fma(xj.x, t01.x, acc[33]))));
        acc[34] = fma(xj.w, t10.w, fma(xj.z, t10.z, fma(xj.y, t10.y, fma(xj.x, t10.x, acc[34]))));
        acc[35] = fma(xj.w, t11.w, fma(xj.z, t11.z, fma(xj.y, t11.y, fma(xj.x, t11.x, acc[35]))));
      }
      { let xj = subgroupBroadcast(x1, 1u);
        acc[36] = fma(xj.w, t00.w, fma(xj.z, t00.z, fma(xj.y, t00.y, fma(xj.x, t00.x, acc[36]))));
        acc[37] = fma(xj.w, t01.w, fma(xj.z, t01.z, fma(xj.y, t01.y, fma(xj.x, t01.x, acc[37]))));
        acc[38] = fma(xj.w, t10.w, fma(xj.z, t10.z, fma(xj.y, t10.y, fma(xj.x, t10.x, acc[38]))));
        acc[39] = fma(xj.w, t11.w, fma(xj.z, t11.z, fma(xj.y, t11.y, fma(xj.x, t11.x, acc[39]))));
      }
      { let xj = subgroupBroadcast(x1, 2u);
        acc[40] = fma(xj.w, t00.w, fma(xj.z, t00.z, fma(xj.y, t00.y, fma(xj.x, t00.x, acc[40]))));
        acc[41] = fma(xj.w, t01.w, fma(xj.z, t01.z, fma(xj.y, t01.y, fma(xj.x, t01.x, acc[41]))));
        acc[42] = fma(xj.w, t10.w, fma(xj.z, t10.z, fma(xj.y, t10.y, fma(xj.x, t10.x, acc[42]))));
        acc[43] = fma(xj.w, t11.w, fma(xj.z, t11.z, fma(xj.y, t11.y, fma(xj.x, t11.x, acc[43]))));
      }
      { let xj = subgroupBroadcast(x1, 3u);
        acc[44] = fma(xj.w, t00.w, fma(xj.z, t00.z, fma(xj.y, t00.y, fma(xj.x, t00.x, acc[44]))));
        acc[45] = fma(xj.w, t01.w, fma(xj.z, t01.z, fma(xj.y, t01.y, fma(xj.x, t01.x, acc[45]))));
        acc[46] = fma(xj.w, t10.w, fma(xj.z, t10.z, fma(xj.y, t10.y, fma(xj.x, t10.x, acc[46]))));
        acc[47] = fma(xj.w, t11.w, fma(xj.z, t11.z, fma(xj.y, t11.y, fma(xj.x, t11.x, acc[47]))));
      }
      { let xj = subgroupBroadcast(x1, 4u);
        acc[48] = fma(xj.w, t00.w, fma(xj.z, t00.z, fma(xj.y, t00.y, fma(xj.x, t00.x, acc[48]))));
        acc[49] = fma(xj.w, t01.w, fma(xj.z, t01.z, fma(xj.y, t01.y, fma(xj.x, t01.x, acc[49]))));
        acc[50] = fma(xj.w, t10.w, fma(xj.z, t10.z, fma(xj.y, t10.y, fma(xj.x, t10.x, acc[50]))));
        acc[51] = fma(xj.w, t11.w, fma(xj.z, t11.z, fma(xj.y, t11.y, fma(xj.x, t11.x, acc[51]))));
      }
      { let xj = subgroupBroadcast(x1, 5u);
        acc[52] = fma(xj.w, t00.w, fma(xj.z, t00.z, fma(xj.y, t00.y, fma(xj.x, t00.x, acc[52]))));
        acc[53] = fma(xj.w, t01.w, fma(xj.z, t01.z, fma(xj.y, t01.y, fma(xj.x, t01.x, acc[53]))));
        acc[54] = fma(xj.w, t10.w, fma(xj.z, t10.z, fma(xj.y, t10.y, fma(xj.x, t10.x, acc[54]))));
        acc[55] = fma(xj.w, t11.w, fma(xj.z, t11.z, fma(xj.y, t11.y, fma(xj.x, t11.x, acc[55]))));
      }
      { let xj = subgroupBroadcast(x1, 6u);
        acc[56] = fma(xj.w, t00.w, fma(xj.z, t00.z, fma(xj.y, t00.y, fma(xj.x, t00.x, acc[56]))));
        acc[57] = fma(xj.w, t01.w, fma(xj.z, t01.z, fma(xj.y, t01.y, fma(xj.x, t01.x, acc[57]))));
        acc[58] = fma(xj.w, t10.w, fma(xj.z, t10.z, fma(xj.y, t10.y, fma(xj.x, t10.x, acc[58]))));
        acc[59] = fma(xj.w, t11.w, fma(xj.z, t11.z, fma(xj.y, t11.y, fma(xj.x, t11.x, acc[59]))));
      }
      { let xj = subgroupBroadcast(x1, 7u);
        acc[60] = fma(xj.w, t00.w, fma(xj.z, t00.z, fma(xj.y, t00.y, fma(xj.x, t00.x, acc[60]))));
        acc[61] = fma(xj.w, t01.w, fma(xj.z, t01.z, fma(xj.y, t01.y, fma(xj.x, t01.x, acc[61]))));
        acc[62] = fma(xj.w, t10.w, fma(xj.z, t10.z, fma(xj.y, t10.y, fma(xj.x, t10.x, acc[62]))));
        acc[63] = fma(xj.w, t11.w, fma(xj.z, t11.z, fma(xj.y, t11.y, fma(xj.x, t11.x, acc[63]))));
      }
      { let xj = subgroupBroadcast(x2, 0u);
        acc[64] = fma(xj.w, t00.w, fma(xj.z, t00.z, fma(xj.y, t00.y, fma(xj.x, t00.x, acc[64]))));
        acc[65] = fma(xj.w, t01.w, fma(xj.z, t01.z, fma(xj.y, t01.y, fma(xj.x, t01.x, acc[65]))));
        acc[66] = fma(xj.w, t10.w, fma(xj.z, t10.z, fma(xj.y, t10.y, fma(xj.x, t10.x, acc[66]))));
        acc[67] = fma(xj.w, t11.w, fma(xj.z, t11.z, fma(xj.y, t11.y, fma(xj.x, t11.x, acc[67]))));
      }
      { let xj = subgroupBroadcast(x2, 1u);
        acc[68] = fma(xj.w, t00.w, fma(xj.z, t00.z, fma(xj.y, t00.y, fma(xj.x, t00.x, acc[68]))));
        acc[69] = fma(xj.w, t01.w, fma(xj.z, t01.z, fma(xj.y, t01.y, fma(xj.x, t01.x, acc[69]))));
        acc[70] = fma(xj.w, t10.w, fma(xj.z, t10.z, fma(xj.y, t10.y, fma(xj.x, t10.x, acc[70]))));
        acc[71] = fma(xj.w, t11.w, fma(xj.z, t11.z, fma(xj.y, t11.y, fma(xj.x, t11.x, acc[71]))));
      }
      { let xj = subgroupBroadcast(x2, 2u);
        acc[72] = fma(xj.w, t00.w, fma(xj.z, t00.z, fma(xj.y, t00.y, fma(xj.x, t00.x, acc[72]))));
        acc[73] = fma(xj.w, t01.w, fma(xj.z, t01.z, fma(xj.y, t01.y, fma(xj.x, t01.x, acc[73]))));
        acc[74] = fma(xj.w, t10.w, fma(xj.z, t10.z, fma(xj.y, t10.y, fma(xj.x, t10.x, acc[74]))));
        acc[75] = fma(xj.w, t11.w, fma(xj.z, t11.z, fma(xj.y, t11.y, fma(xj.x, t11.x, acc[75]))));
      }
      { let xj = subgroupBroadcast(x2, 3u);
        acc[76] = fma(xj.w, t00.w, fma(xj.z, t00.z, fma(xj.y, t00.y, fma(xj.x, t00.x, acc[76]))));
        acc[77] = fma(xj.w, t01.w, fma(xj.z, t01.z, fma(xj.y, t01.y, fma(xj.x, t01.x, acc[77]))));
        acc[78] = fma(xj.w, t10.w, fma(xj.z, t10.z, fma(xj.y, t10.y, fma(xj.x, t10.x, acc[78]))));
        acc[79] = fma(xj.w, t11.w, fma(xj.z, t11.z, fma(xj.y, t11.y, fma(xj.x, t11.x, acc[79]))));
      }
      { let xj = subgroupBroadcast(x2, 4u);
        acc[80] = fma(xj.w, t00.w, fma(xj.z, t00.z, fma(xj.y, t00.y, fma(xj.x, t00.x, acc[80]))));
        acc[81] = fma(xj.w, t01.w, fma(xj.z, t01.z, fma(xj.y, t01.y, fma(xj.x, t01.x, acc[81]))));
        acc[82] = fma(xj.w, t10.w, fma(xj.z, t10.z, fma(xj.y, t10.y, fma(xj.x, t10.x, acc[82]))));
        acc[83] = fma(xj.w, t11.w, fma(xj.z, t11.z, fma(xj.y, t11.y, fma(xj.x, t11.x, acc[83]))));
      }
      { let xj = subgroupBroadcast(x2, 5u);
        acc[84] = fma(xj.w, t00.w, fma(xj.z, t00.z, fma(xj.y, t00.y, fma(xj.x, t00.x, acc[84]))));
        acc[85] = fma(xj.w, t01.w, fma(xj.z, t01.z, fma(xj.y, t01.y, fma(xj.x, t01.x, acc[85]))));
        acc[86] = fma(xj.w, t10.w, fma(xj.z, t10.z, fma(xj.y, t10.y, fma(xj.x, t10.x, acc[86]))));
        acc[87] = fma(xj.w, t11.w, fma(xj.z, t11.z, fma(xj.y, t11.y, fma(xj.x, t11.x, acc[87]))));
      }
      { let xj = subgroupBroadcast(x2, 6u);
        acc[88] = fma(xj.w, t00.w, fma(xj.z, t00.z, fma(xj.y, t00.y, fma(xj.x, t00.x, acc[88]))));
        acc[89] = fma(xj.w, t01.w, fma(xj.z, t01.z, fma(xj.y, t01.y, fma(xj.x, t01.x, acc[89]))));
        acc[90] = fma(xj.w, t10.w, fma(xj.z, t10.z, fma(xj.y, t10.y, fma(xj.x, t10.x, acc[90]))));
        acc[91] = fma(xj.w, t11.w, fma(xj.z, t11.z, fma(xj.y, t11.y, fma(xj.x, t11.x, acc[91]))));
      }
      { let xj = subgroupBroadcast(x2, 7u);
        acc[92] = fma(xj.w, t00.w, fma(xj.z, t00.z, fma(xj.y, t00.y, fma(xj.x, t00.x, acc[92]))));
        acc[93] = fma(xj.w, t01.w, fma(xj.z, t01.z, fma(xj.y, t01.y, fma(xj.x, t01.x, acc[93]))));
        acc[94] = fma(xj.w, t10.w, fma(xj.z, t10.z, fma(xj.y, t10.y, fma(xj.x, t10.x, acc[94]))));
        acc[95] = fma(xj.w, t11.w, fma(xj.z, t11.z, fma(xj.y, t11.y, fma(xj.x, t11.x, acc[95]))));
      }
      { let xj = subgroupBroadcast(x3, 0u);
        acc[96] = fma(xj.w, t00.w, fma(xj.z, t00.z, fma(xj.y, t00.y, fma(xj.x, t00.x, acc[96]))));
        acc[97] = fma(xj.w, t01.w, fma(xj.z, t01.z, fma(xj.y, t01.y, fma(xj.x, t01.x, acc[97]))));
        acc[98] = fma(xj.w, t10.w, fma(xj.z, t10.z, fma(xj.y, t10.y, fma(xj.x, t10.x, acc[98]))));
        acc[99] = fma(xj.w, t11.w, fma(xj.z, t11.z, fma(xj.y, t11.y, fma(xj.x, t11.x, acc[99]))));
      }
      { let xj = subgroupBroadcast(x3, 1u);
        acc[100] = fma(xj.w, t00.w, fma(xj.z, t00.z, fma(xj.y, t00.y, fma(xj.x, t00.x, acc[100]))));
        acc[101] = fma(xj.w, t01.w, fma(xj.z, t01.z, fma(xj.y, t01.y, fma(xj.x, t01.x, acc[101]))));
        acc[102] = fma(xj.w, t10.w, fma(xj.z, t10.z, fma(xj.y, t10.y, fma(xj.x, t10.x, acc[102]))));
        acc[103] = fma(xj.w, t11.w, fma(xj.z, t11.z, fma(xj.y, t11.y, fma(xj.x, t11.x, acc[103]))));
      }
      { let xj = subgroupBroadcast(x3, 2u);
        acc[104] = fma(xj.w, t00.w, fma(xj.z, t00.z, fma(xj.y, t00.y, fma(xj.x, t00.x, acc[104]))));
        acc[105] = fma(xj.w, t01.w, fma(xj.z, t01.z, fma(xj.y, t01.y, fma(xj.x, t01.x, acc[105]))));
        acc[106] = fma(xj.w, t10.w, fma(xj.z, t10.z, fma(xj.y, t10.y, fma(xj.x, t10.x, acc[106]))));
        acc[107] = fma(xj.w, t11.w, fma(xj.z, t11.z, fma(xj.y, t11.y, fma(xj.x, t11.x, acc[107]))));
      }
      { let xj = subgroupBroadcast(x3, 3u);
        acc[108] = fma(xj.w, t00.w, fma(xj.z, t00.z, fma(xj.y, t00.y, fma(xj.x, t00.x, acc[108]))));
        acc[109] = fma(xj.w, t01.w, fma(xj.z, t01.z, fma(xj.y, t01.y, fma(xj.x, t01.x, acc[109]))));
        acc[110] = fma(xj.w, t10.w, fma(xj.z, t10.z, fma(xj.y, t10.y, fma(xj.x, t10.x, acc[110]))));
        acc[111] = fma(xj.w, t11.w, fma(xj.z, t11.z, fma(xj.y, t11.y, fma(xj.x, t11.x, acc[111]))));
      }
      { let xj = subgroupBroadcast(x3, 4u);
        acc[112] = fma(xj.w, t00.w, fma(xj.z, t00.z, fma(xj.y, t00.y, fma(xj.x, t00.x, acc[112]))));
        acc[113] = fma(xj.w, t01.w, fma(xj.z, t01.z, fma(xj.y, t01.y, fma(xj.x, t01.x, acc[113]))));
        acc[114] = fma(xj.w, t10.w, fma(xj.z, t10.z, fma(xj.y, t10.y, fma(xj.x, t10.x, acc[114]))));
        acc[115] = fma(xj.w, t11.w, fma(xj.z, t11.z, fma(xj.y, t11.y, fma(xj.x, t11.x, acc[115]))));
      }
      { let xj = subgroupBroadcast(x3, 5u);
        acc[116] = fma(xj.w, t00.w, fma(xj.z, t00.z, fma(xj.y, t00.y, fma(xj.x, t00.x, acc[116]))));
        acc[117] = fma(xj.w, t01.w, fma(xj.z, t01.z, fma(xj.y, t01.y, fma(xj.x, t01.x, acc[117]))));
        acc[118] = fma(xj.w, t10.w, fma(xj.z, t10.z, fma(xj.y, t10.y, fma(xj.x, t10.x, acc[118]))));
        acc[119] = fma(xj.w, t11.w, fma(xj.z, t11.z, fma(xj.y, t11.y, fma(xj.x, t11.x, acc[119]))));
      }
      { let xj = subgroupBroadcast(x3, 6u);
        acc[120] = fma(xj.w, t00.w, fma(xj.z, t00.z, fma(xj.y, t00.y, fma(xj.x, t00.x, acc[120]))));
        acc[121] = fma(xj.w, t01.w, fma(xj.z, t01.z, fma(xj.y, t01.y, fma(xj.x, t01.x, acc[121]))));
        acc[122] = fma(xj.w, t10.w, fma(xj.z, t10.z, fma(xj.y, t10.y, fma(xj.x, t10.x, acc[122]))));
        acc[123] = fma(xj.w, t11.w, fma(xj.z, t11.z, fma(xj.y, t11.y, fma(xj.x, t11.x, acc[123]))));
      }
      { let xj = subgroupBroadcast(x3, 7u);
        acc[124] = fma(xj.w, t00.w, fma(xj.z, t00.z, fma(xj.y, t00.y, fma(xj.x, t00.x, acc[124]))));
        acc[125] = fma(xj.w, t01.w, fma(xj.z, t01.z, fma(xj.y, t01.y, fma(xj.x, t01.x, acc[125]))));
        acc[126] = fma(xj.w, t10.w, fma(xj.z, t10.z, fma(xj.y, t10.y, fma(xj.x, t10.x, acc[126]))));
        acc[127] = fma(xj.w, t11.w, fma(xj.z, t11.z, fma(xj.y, t11.y, fma(xj.x, t11.x, acc[127]))));
      }
    }
  }
  let o = o0 + lid.x;
  if (o >= p.Cout) { return; }
  for (var j = 0u; j < 32u; j = j + 1u) {
    let i = i0 + j;
    if (i < p.Cin) {
      let wi = i * p.Cout + o;
      var v = vec4<f32>(acc[j * 4u], acc[j * 4u + 1u], acc[j * 4u + 2u], acc[j * 4u + 3u]);
      if (p.accumulate != 0u) { v = v + dw4[wi]; }
      dw4[wi] = v;
    }
  }
}
