// conv_transpose2d.wgsl: ConvTranspose2d (PyTorch semantics, padding 0, output_padding 0, groups 1),
// NCHW, weight (Cin, Cout, KH, KW), forward plus the three gradients (dx, dW, db).
//
// Shapes: x (N, Cin, H, W) -> y (N, Cout, Ho, Wo), Ho = (H-1)*S + KH, Wo = (W-1)*S + KW.
//   y[n,o,Y,X] = b[o] + sum_{i, y*S+a=Y, x*S+b=X} x[n,i,y,x] * w[i,o,a,b]
//
// Bindings (group 0), per entry, storage in this order then the uniform Params:
//   fwd_k2s2 / fwd_direct:  0 x (read)  1 w (read)  2 bias (read)  3 y (read_write)    4 params
//   dx_k2s2 / dx_direct:    0 dy (read) 1 w (read)  2 dx (read_write)                 3 params
//   dw_k2s2 / dw_direct:    0 x (read)  1 dy (read) 2 dw (read_write)                 3 params
//   bias_grad:              0 dy (read) 1 db (read_write)                             2 params
// Batch splitting: x/y/dx/dy may be bound as a slice of a batch chunk; x_base / y_base are the
//   element offsets of the chunk's first element inside those bindings (multiples of 4 on the
//   *_k2s2 entries, which read and write vec4). w, bias, dw, db are always bound whole.
//   dw_* and bias_grad add into their output when params.accumulate is 1 (later chunks).
//
// *_k2s2 (KH = KW = S = 2, W even, H*W % 4 == 0): every input pixel owns a disjoint 2x2 output
//   block, so each pass is a GEMM with K = Cin (forward), 4*Cout (dx) or N*H*W (dW). Register
//   tiling with no shared memory and no barriers (see shared/notes/LAVAPIPE.md): an invocation
//   owns a pixel quad (flat input pixels 4q..4q+3 of one plane: one vec4) and TC channels;
//   w[i,o,0:2,0:2] is one vec4 (taps a*2+b). A quad is two pixel pairs (4q, 4q+1), (4q+2, 4q+3),
//   each inside one input row (even start, W even); the second starts the next row when
//   W % 4 == 2. A pair at (y, x) covers y[.., 2y+a, 2x:2x+4]: one vec4 in each of the two output
//   rows (Wo = 2W is a multiple of 4), at pair_pos() and pair_pos() + Wo/4.
//   fwd:  acc[j][tap] (vec4 over 4 pixels) += w[i,o0+j][tap] * x[n,i,quad]   over i; TC=TO
//         stores two vec4 per (o, pair): lanes .xy (pair 0) / .zw (pair 1) with the b=0 / b=1
//         taps interleaved.
//   dx:   acc[j] (vec4 over 4 pixels) += sum_tap w[i0+j,o][tap] * dy[n,o,2y+a,2x+b]   over o
//         (the dy blocks of the two pairs for one o are 4 vec4 loads, de-interleaved in
//         registers); TC=TI
//   dW:   one invocation per (TI input channels) x (TO output channels); acc[j][k][tap] (vec4 over
//         pixel lanes) += x[n,i0+j,pix] * dy taps, summed over the chunk's pixels; per-image partial
//         sums are folded into a scalar total after each image (blocked summation).
//   Grid: fwd/dx: x,y = folded 1-D over (N * H*W/4) pixel quads in workgroups of WG; z = channel
//   tiles. dW: 1-D folded over ceil(Cin/TI)*ceil(Cout/TO) invocations, each looping over the
//   H*W/4 quads of every image with the pair positions tracked incrementally.
// *_direct (any KH, KW, S): one invocation per output element, scalar loops; the general fallback.
// bias_grad: one invocation per output channel, sums the chunk's N*Ho*Wo values of dy.
// Numerics: f32 accumulation in fma chains; out-of-range channels of a tile read a clamped valid
//   channel and skip their stores.
// Variants: these *_k2s2 entries are the plain register tiles (adapters without subgroups, real
//   GPUs); CPU adapters with 8-lane subgroups use conv_transpose2d_sg.wgsl instead.
// Override constants: WG (invocations per workgroup); TO (output channels per invocation: <= 8 in
//   fwd_k2s2, <= 2 in dw_k2s2); TI (input channels per invocation: <= 16 in dx_k2s2, <= 4 in dw_k2s2).

struct Params {
  N: u32,          // batch items in this dispatch (the chunk)
  Cin: u32,
  H: u32,
  W: u32,
  Cout: u32,
  Ho: u32,
  Wo: u32,
  KH: u32,
  KW: u32,
  S: u32,
  x_base: u32,     // element offset of the chunk in the x / dx binding
  y_base: u32,     // element offset of the chunk in the y / dy binding
  has_bias: u32,
  accumulate: u32, // dw_* / bias_grad: 1 adds into the output, 0 overwrites
}

override WG: u32 = 8u;
override TO: u32 = 4u;
override TI: u32 = 8u;

// ---- fwd_k2s2
@group(0) @binding(0) var<storage, read> x4: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> w4: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> bias: array<f32>;
@group(0) @binding(3) var<storage, read_write> y4: array<vec4<f32>>;
@group(0) @binding(4) var<uniform> pf: Params;

fn lin(wid: vec3<u32>, nwg: vec3<u32>, lid: vec3<u32>) -> u32 {
  return (wid.y * nwg.x + wid.x) * WG + lid.x;
}

// Vec4 index, inside one output-channel plane, of the 2x4 output block of the pixel pair that
// starts at flat input pixel `pix` (even; W even): output rows 2y and 2y+1 at it and it + wo4.
fn pair_pos(pix: u32, W: u32, wo4: u32) -> u32 {
  let yy = pix / W;
  return 2u * yy * wo4 + (pix - yy * W) / 2u;
}

@compute @workgroup_size(WG)
fn fwd_k2s2(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_id) lid: vec3<u32>) {
  let p = pf;
  let qp = (p.H * p.W) / 4u;           // pixel quads per image
  let c = lin(wid, nwg, lid);
  if (c >= p.N * qp) { return; }
  let n = c / qp;
  let q = c - n * qp;
  let o0 = wid.z * TO;
  var acc: array<vec4<f32>, 32>;      // [j*4 + tap], j < TO
  for (var k = 0u; k < 32u; k = k + 1u) { acc[k] = vec4<f32>(0.0); }
  var xi = p.x_base / 4u + n * p.Cin * qp + q;
  var wi = array<u32, 8>();
  for (var j = 0u; j < TO; j = j + 1u) { wi[j] = min(o0 + j, p.Cout - 1u); }
  for (var i = 0u; i < p.Cin; i = i + 1u) {
    let xv = x4[xi];
    xi = xi + qp;
    let wrow = i * p.Cout;
    for (var j = 0u; j < TO; j = j + 1u) {
      let wv = w4[wrow + wi[j]];
      acc[j * 4u + 0u] = fma(vec4<f32>(wv.x), xv, acc[j * 4u + 0u]);
      acc[j * 4u + 1u] = fma(vec4<f32>(wv.y), xv, acc[j * 4u + 1u]);
      acc[j * 4u + 2u] = fma(vec4<f32>(wv.z), xv, acc[j * 4u + 2u]);
      acc[j * 4u + 3u] = fma(vec4<f32>(wv.w), xv, acc[j * 4u + 3u]);
    }
  }
  let wo4 = p.Wo / 4u;
  let r0 = pair_pos(q * 4u, p.W, wo4);
  let r1 = pair_pos(q * 4u + 2u, p.W, wo4);
  let plane4 = p.Ho * wo4;
  for (var j = 0u; j < TO; j = j + 1u) {
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

// ---- dx_k2s2
@group(0) @binding(0) var<storage, read> dy4: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> dx4: array<vec4<f32>>;
@group(0) @binding(3) var<uniform> p3: Params;

@compute @workgroup_size(WG)
fn dx_k2s2(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_id) lid: vec3<u32>) {
  let p = p3;
  let qp = (p.H * p.W) / 4u;
  let c = lin(wid, nwg, lid);
  if (c >= p.N * qp) { return; }
  let n = c / qp;
  let q = c - n * qp;
  let i0 = wid.z * TI;
  let wo4 = p.Wo / 4u;
  let plane4 = p.Ho * wo4;
  let r0 = pair_pos(q * 4u, p.W, wo4);
  let r1 = pair_pos(q * 4u + 2u, p.W, wo4);
  var acc: array<vec4<f32>, 16>;
  for (var k = 0u; k < 16u; k = k + 1u) { acc[k] = vec4<f32>(0.0); }
  var wrow = array<u32, 16>();
  for (var j = 0u; j < TI; j = j + 1u) { wrow[j] = min(i0 + j, p.Cin - 1u) * p.Cout; }
  var di0 = p.y_base / 4u + n * p.Cout * plane4 + r0;
  var di1 = p.y_base / 4u + n * p.Cout * plane4 + r1;
  for (var o = 0u; o < p.Cout; o = o + 1u) {
    let d00 = dy4[di0];
    let d01 = dy4[di1];
    let d10 = dy4[di0 + wo4];
    let d11 = dy4[di1 + wo4];
    di0 = di0 + plane4;
    di1 = di1 + plane4;
    let t00 = vec4<f32>(d00.x, d00.z, d01.x, d01.z);
    let t01 = vec4<f32>(d00.y, d00.w, d01.y, d01.w);
    let t10 = vec4<f32>(d10.x, d10.z, d11.x, d11.z);
    let t11 = vec4<f32>(d10.y, d10.w, d11.y, d11.w);
    for (var j = 0u; j < TI; j = j + 1u) {
      let wv = w4[wrow[j] + o];
      var a = acc[j];
      a = fma(vec4<f32>(wv.x), t00, a);
      a = fma(vec4<f32>(wv.y), t01, a);
      a = fma(vec4<f32>(wv.z), t10, a);
      a = fma(vec4<f32>(wv.w), t11, a);
      acc[j] = a;
    }
  }
  let xrow = p.x_base / 4u + n * p.Cin * qp + q;
  for (var j = 0u; j < TI; j = j + 1u) {
    let i = i0 + j;
    if (i < p.Cin) {
      dx4[xrow + i * qp] = acc[j];
    }
  }
}

// ---- dw_k2s2
@group(0) @binding(1) var<storage, read> dyw4: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> dw4: array<vec4<f32>>;

@compute @workgroup_size(WG)
fn dw_k2s2(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_id) lid: vec3<u32>) {
  let p = p3;
  let tiles_o = (p.Cout + TO - 1u) / TO;
  let c = lin(wid, nwg, lid);
  if (c >= tiles_o * ((p.Cin + TI - 1u) / TI)) { return; }
  let ti = c / tiles_o;
  let i0 = ti * TI;
  let o0 = (c - ti * tiles_o) * TO;
  let qp = (p.H * p.W) / 4u;
  let wo4 = p.Wo / 4u;
  let plane4 = p.Ho * wo4;
  var xoff = array<u32, 4>();
  for (var j = 0u; j < TI; j = j + 1u) { xoff[j] = min(i0 + j, p.Cin - 1u) * qp; }
  var doff = array<u32, 2>();
  for (var k = 0u; k < TO; k = k + 1u) { doff[k] = min(o0 + k, p.Cout - 1u) * plane4; }
  var tot: array<vec4<f32>, 8>;       // [j*TO + k]: taps of w[i0+j, o0+k]
  for (var k = 0u; k < 8u; k = k + 1u) { tot[k] = vec4<f32>(0.0); }
  for (var n = 0u; n < p.N; n = n + 1u) {
    var acc: array<vec4<f32>, 32>;    // [(j*TO + k)*4 + tap], vec4 over pixel lanes
    for (var k = 0u; k < 32u; k = k + 1u) { acc[k] = vec4<f32>(0.0); }
    let xb = p.x_base / 4u + n * p.Cin * qp;
    let dbase = p.y_base / 4u + n * p.Cout * plane4;
    var rp = 0u;   // 2 * yy * wo4: first output row of the current pixel pair, in vec4
    var xx = 0u;   // input column of the pair's first pixel (even)
    for (var q = 0u; q < qp; q = q + 1u) {
      // The quad's two pixel pairs; the second starts the next input row when W % 4 == 2.
      let dp0 = dbase + rp + xx / 2u;
      xx = xx + 2u;
      if (xx == p.W) { xx = 0u; rp = rp + 2u * wo4; }
      let dp1 = dbase + rp + xx / 2u;
      xx = xx + 2u;
      if (xx == p.W) { xx = 0u; rp = rp + 2u * wo4; }
      var xv = array<vec4<f32>, 4>();
      for (var j = 0u; j < TI; j = j + 1u) { xv[j] = x4[xb + xoff[j] + q]; }
      for (var k = 0u; k < TO; k = k + 1u) {
        let d00 = dyw4[dp0 + doff[k]];
        let d01 = dyw4[dp1 + doff[k]];
        let d10 = dyw4[dp0 + doff[k] + wo4];
        let d11 = dyw4[dp1 + doff[k] + wo4];
        let t00 = vec4<f32>(d00.x, d00.z, d01.x, d01.z);
        let t01 = vec4<f32>(d00.y, d00.w, d01.y, d01.w);
        let t10 = vec4<f32>(d10.x, d10.z, d11.x, d11.z);
        let t11 = vec4<f32>(d10.y, d10.w, d11.y, d11.w);
        for (var j = 0u; j < TI; j = j + 1u) {
          let a = (j * TO + k) * 4u;
          acc[a + 0u] = fma(xv[j], t00, acc[a + 0u]);
          acc[a + 1u] = fma(xv[j], t01, acc[a + 1u]);
          acc[a + 2u] = fma(xv[j], t10, acc[a + 2u]);
          acc[a + 3u] = fma(xv[j], t11, acc[a + 3u]);
        }
      }
    }
    for (var t = 0u; t < TI * TO; t = t + 1u) {
      let a0 = acc[t * 4u + 0u];
      let a1 = acc[t * 4u + 1u];
      let a2 = acc[t * 4u + 2u];
      let a3 = acc[t * 4u + 3u];
      tot[t] = tot[t] + vec4<f32>((a0.x + a0.y) + (a0.z + a0.w), (a1.x + a1.y) + (a1.z + a1.w),
                                  (a2.x + a2.y) + (a2.z + a2.w), (a3.x + a3.y) + (a3.z + a3.w));
    }
  }
  for (var j = 0u; j < TI; j = j + 1u) {
    for (var k = 0u; k < TO; k = k + 1u) {
      let i = i0 + j;
      let o = o0 + k;
      if (i < p.Cin && o < p.Cout) {
        let wi = i * p.Cout + o;
        var v = tot[j * TO + k];
        if (p.accumulate != 0u) { v = v + dw4[wi]; }
        dw4[wi] = v;
      }
    }
  }
}

// ---- direct (general KH, KW, S) entries: scalar views of the same bindings.
@group(0) @binding(0) var<storage, read> xs: array<f32>;
@group(0) @binding(1) var<storage, read> ws: array<f32>;
@group(0) @binding(3) var<storage, read_write> ys: array<f32>;

@compute @workgroup_size(WG)
fn fwd_direct(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_id) lid: vec3<u32>) {
  let p = pf;
  let e = lin(wid, nwg, lid);
  if (e >= p.N * p.Cout * p.Ho * p.Wo) { return; }
  let X = e % p.Wo;
  var r = e / p.Wo;
  let Y = r % p.Ho;
  r = r / p.Ho;
  let o = r % p.Cout;
  let n = r / p.Cout;
  let kk = p.KH * p.KW;
  let ocout = p.Cout * kk;
  var s = 0.0;
  for (var a = 0u; a < p.KH; a = a + 1u) {
    if (Y < a || (Y - a) % p.S != 0u) { continue; }
    let yy = (Y - a) / p.S;
    if (yy >= p.H) { continue; }
    for (var b = 0u; b < p.KW; b = b + 1u) {
      if (X < b || (X - b) % p.S != 0u) { continue; }
      let xx = (X - b) / p.S;
      if (xx >= p.W) { continue; }
      var xi = p.x_base + (n * p.Cin * p.H + yy) * p.W + xx;
      var wi = o * kk + a * p.KW + b;
      var t = 0.0;
      for (var i = 0u; i < p.Cin; i = i + 1u) {
        t = fma(xs[xi], ws[wi], t);
        xi = xi + p.H * p.W;
        wi = wi + ocout;
      }
      s = s + t;
    }
  }
  if (p.has_bias != 0u) { s = s + bias[o]; }
  ys[p.y_base + e] = s;
}

@group(0) @binding(0) var<storage, read> dys: array<f32>;
@group(0) @binding(2) var<storage, read_write> dxs: array<f32>;

@compute @workgroup_size(WG)
fn dx_direct(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
             @builtin(local_invocation_id) lid: vec3<u32>) {
  let p = p3;
  let e = lin(wid, nwg, lid);
  if (e >= p.N * p.Cin * p.H * p.W) { return; }
  let xx = e % p.W;
  var r = e / p.W;
  let yy = r % p.H;
  r = r / p.H;
  let i = r % p.Cin;
  let n = r / p.Cin;
  let kk = p.KH * p.KW;
  let plane = p.Ho * p.Wo;
  var s = 0.0;
  for (var a = 0u; a < p.KH; a = a + 1u) {
    for (var b = 0u; b < p.KW; b = b + 1u) {
      var di = p.y_base + n * p.Cout * plane + (yy * p.S + a) * p.Wo + xx * p.S + b;
      var wi = i * p.Cout * kk + a * p.KW + b;
      var t = 0.0;
      for (var o = 0u; o < p.Cout; o = o + 1u) {
        t = fma(dys[di], ws[wi], t);
        di = di + plane;
        wi = wi + kk;
      }
      s = s + t;
    }
  }
  dxs[p.x_base + e] = s;
}

@group(0) @binding(1) var<storage, read> dyws: array<f32>;
@group(0) @binding(2) var<storage, read_write> dws: array<f32>;

@compute @workgroup_size(WG)
fn dw_direct(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
             @builtin(local_invocation_id) lid: vec3<u32>) {
  let p = p3;
  let e = lin(wid, nwg, lid);
  let kk = p.KH * p.KW;
  if (e >= p.Cin * p.Cout * kk) { return; }
  let b = e % p.KW;
  var r = e / p.KW;
  let a = r % p.KH;
  r = r / p.KH;
  let o = r % p.Cout;
  let i = r / p.Cout;
  let plane = p.Ho * p.Wo;
  var s = 0.0;
  for (var n = 0u; n < p.N; n = n + 1u) {
    let xb = p.x_base + (n * p.Cin + i) * p.H * p.W;
    let dbase = p.y_base + (n * p.Cout + o) * plane + a * p.Wo + b;
    var t = 0.0;
    for (var yy = 0u; yy < p.H; yy = yy + 1u) {
      var u = 0.0;
      for (var xx = 0u; xx < p.W; xx = xx + 1u) {
        u = fma(xs[xb + yy * p.W + xx], dyws[dbase + yy * p.S * p.Wo + xx * p.S], u);
      }
      t = t + u;
    }
    s = s + t;
  }
  if (p.accumulate != 0u) { s = s + dws[e]; }
  dws[e] = s;
}

// ---- bias_grad
@group(0) @binding(1) var<storage, read_write> db: array<f32>;
@group(0) @binding(2) var<uniform> p2: Params;

@compute @workgroup_size(WG)
fn bias_grad(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
             @builtin(local_invocation_id) lid: vec3<u32>) {
  let p = p2;
  let o = lin(wid, nwg, lid);
  if (o >= p.Cout) { return; }
  let plane = p.Ho * p.Wo;
  var s = 0.0;
  for (var n = 0u; n < p.N; n = n + 1u) {
    var i = p.y_base + (n * p.Cout + o) * plane;
    let end = i + plane;
    var s0 = 0.0; var s1 = 0.0; var s2 = 0.0; var s3 = 0.0;
    for (; i + 4u <= end; i = i + 4u) {
      s0 = s0 + dys[i];
      s1 = s1 + dys[i + 1u];
      s2 = s2 + dys[i + 2u];
      s3 = s3 + dys[i + 3u];
    }
    for (; i < end; i = i + 1u) { s0 = s0 + dys[i]; }
    s = s + ((s0 + s1) + (s2 + s3));
  }
  if (p.accumulate != 0u) { s = s + db[o]; }
  db[o] = s;
}
