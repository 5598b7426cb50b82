// attention.wgsl: fused scaled dot-product attention out = softmax(scale*q.k^T + bias) . v with an
// online (streaming) softmax per query row, its backward from the saved logsumexp, and the
// decomposed relative-position helpers of SAM's ViT. All f32.
//
// Layout: q (BH, Lq, d), k and v (BH, Lk, d), o (BH, Lq, d), row-major, d % 4 == 0 (the op layer
//   pads other head dims), read as vec4 (d4 = d/4 per row). lse (BH, Lq). Each binding may be a
//   sub-range of a larger buffer (batch chunks, packed q/k/v): *_base is the offset of bh = 0 of
//   this dispatch in units of the binding's element type.
// Rel-pos (gh > 0): keys and queries lie on the same gh x gw grid (Lk = Lq = gh*gw) and
//   bias(i, j) = relh[i, j / gw] + relw[i, j % gw] with relh = q.Rh^T, relw = q.Rw^T gathered per
//   relative offset (relpos_pick, from the GEMM products q.Rw^T and q.Rh^T). Both live in one
//   `rel` tensor of rows of RS = gwp + ghp floats: [relw (gw, padded to gwp = ceil8(gw)) |
//   relh (gh, padded to ghp = ceil4(gh))]; drel likewise.
//   Keys are then visited grid row by grid row, in blocks of 8 columns, so one relh value and two
//   vec4 of relw serve a block.
//
// Entries (storage bindings in order, then the uniform):
//   attn_fwd        q, k, v, rel, o (rw), lse (rw)              grid (ceil(Lq/WG), BH chunk)
//   attn_fwd_tiled  as attn_fwd, for real GPUs: K/V tiles of KT = 32 rows staged in workgroup
//                   memory (16 KiB), one online-softmax rescale per tile; grid (ceil(Lq/WG), BH)
//   attn_delta      fo, fdo, flse, fstats (rw)                  1-D over Lq rows; stats = (lse, do.o)
//   attn_bwd_q      q, k, v, rel, dout, stats, ga=dq (rw), gb=drel (rw)    grid (ceil(Lq/WG), BH)
//   attn_bwd_kv     q, k, v, rel, dout, stats, ga=dk (rw), gb=dv (rw)      grid (ceil(Lk/WG), BH)
//   relpos_pick     prod, rel_pick (rw)                         1-D over rows*RS/4 (RelParams):
//                   gathers relw/relh from prod = q.[Rw|Rh]^T, bound whole
//   relpos_bwd_dq   drel_in, tab_h, tab_w, dq_io (rw)           1-D over rows*d4: dq += drel.R
//   relpos_bwd_table drel_in, qt, dtab_h (rw), dtab_w (rw)      1-D over (2gh-1 + 2gw-1)*d4
// Dispatch/tiling (attn_*): one invocation per query row (per key row in attn_bwd_kv), WG rows per
//   workgroup. The row's q (pre-scaled) and its accumulators sit in private arrays of 16 vec4
//   (d <= 64) looped over d4 at run time (loops bounded by an override constant are unrolled by
//   lavapipe's compiler: minutes of compile time and slower code). Keys (queries) are streamed in
//   blocks of 8 rows, unrolled, and every invocation loads the block's rows itself: no shared
//   memory, no barriers (CPU-adapter friendly; on real GPUs the invocations of a workgroup load
//   the same rows, which the cache broadcasts). attention_sg.wgsl holds the subgroup variants that
//   load each streamed row once per 8 lanes. Rows past Lq / Lk are clamped on load, never stored.
// Numerics: online softmax with the running max subtracted, one rescale per block of 8 keys;
//   masked keys get -3e38 (exp underflows to 0, no inf-inf). Sums as fma chains in key order.
//   Backward (FlashAttention-2 style, deterministic, no atomics): p = exp(s - lse),
//   ds = p * (do.v - delta), delta = do.o; dq = scale * sum ds k (attn_bwd_q),
//   dk = scale * sum ds q and dv = sum p do (attn_bwd_kv); drel (row sums of ds per key-grid row
//   and column) is written by attn_bwd_q, then relpos_bwd_dq adds drel.R to dq and
//   relpos_bwd_table reduces drel x q into dRh, dRw (fixed order; accum adds to a previous chunk).

struct Params {
  Lq: u32,
  Lk: u32,
  d4: u32,        // head dim / 4
  scale: f32,
  gh: u32,        // rel-pos grid rows; 0 disables rel-pos
  gw: u32,        // rel-pos grid columns
  q_base: u32,    // vec4 offsets (q, k, v, dout/o, ga, gb, rel) and f32 offset (lse/stats: in rows)
  k_base: u32,
  v_base: u32,
  g_base: u32,
  a_base: u32,
  b_base: u32,
  r_base: u32,
  s_base: u32,
}

struct RelParams {
  rows: u32,      // rows (bh, i) in this dispatch
  L: u32,         // tokens per bh (= gh*gw)
  d4: u32,
  gh: u32,
  gw: u32,
  nbh: u32,       // bh in this dispatch (relpos_bwd_table)
  q_base: u32,    // vec4 offsets
  r_base: u32,
  accum: u32,     // relpos_bwd_table: 1 adds to the tables (later batch chunks)
}

// attn_fwd
@group(0) @binding(0) var<storage, read> q: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> k: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> v: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> rel: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> o: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read_write> lse: array<f32>;
@group(0) @binding(6) var<uniform> params: Params;
// attn_bwd_q / attn_bwd_kv (bindings 0..3 as above)
@group(0) @binding(4) var<storage, read> dout: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read> stats: array<vec2<f32>>;
@group(0) @binding(6) var<storage, read_write> ga: array<vec4<f32>>;
@group(0) @binding(7) var<storage, read_write> gb: array<vec4<f32>>;
@group(0) @binding(8) var<uniform> params_b: Params;
// attn_delta
@group(0) @binding(0) var<storage, read> fo: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> fdo: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> flse: array<f32>;
@group(0) @binding(3) var<storage, read_write> fstats: array<vec2<f32>>;
@group(0) @binding(4) var<uniform> params_d: Params;
// relpos_pick
@group(0) @binding(0) var<storage, read> prod: array<f32>;
@group(0) @binding(1) var<storage, read_write> rel_pick: array<vec4<f32>>;
@group(0) @binding(2) var<uniform> params_p: RelParams;
// relpos_bwd_dq / relpos_bwd_table
@group(0) @binding(1) var<storage, read> tab_h: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> tab_w: array<vec4<f32>>;
@group(0) @binding(4) var<uniform> params_r: RelParams;
@group(0) @binding(0) var<storage, read> drel_in: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> dq_io: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> qt: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> dtab_h: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> dtab_w: array<vec4<f32>>;

override WG: u32 = 8u;     // rows per workgroup (attn_*); 1-D workgroup size (attn_delta, relpos_*)

const NEG: f32 = -3.0e38;

fn hsum(a: vec4<f32>) -> f32 {
  return (a.x + a.y) + (a.z + a.w);
}

fn ceil8(x: u32) -> u32 {
  return (x + 7u) & ~7u;
}

fn ceil4(x: u32) -> u32 {
  return (x + 3u) & ~3u;
}

// Online-softmax step for one block of 8 keys: a0..a7 are the lanes' partial dot products
// (summed here), w0/w1 the bias of keys 0..3 / 4..7, keys >= nv masked; m, l the running max and
// sum. Returns the block's unnormalised probabilities and the rescale of the running sums.
struct Block {
  p0: vec4<f32>,
  p1: vec4<f32>,
  alpha: f32,
  m: f32,
  l: f32,
}

fn block_step(a0: vec4<f32>, a1: vec4<f32>, a2: vec4<f32>, a3: vec4<f32>, a4: vec4<f32>,
              a5: vec4<f32>, a6: vec4<f32>, a7: vec4<f32>, w0: vec4<f32>, w1: vec4<f32>, nv: u32,
              m: f32, l: f32) -> Block {
  let idx = vec4<u32>(0u, 1u, 2u, 3u);
  let s0 = select(vec4<f32>(NEG), vec4<f32>(hsum(a0), hsum(a1), hsum(a2), hsum(a3)) + w0, idx < vec4<u32>(nv));
  let s1 = select(vec4<f32>(NEG), vec4<f32>(hsum(a4), hsum(a5), hsum(a6), hsum(a7)) + w1,
                  idx + 4u < vec4<u32>(nv));
  let mx = max(s0, s1);
  let mn = max(m, max(max(mx.x, mx.y), max(mx.z, mx.w)));
  let p0 = exp(s0 - mn);
  let p1 = exp(s1 - mn);
  let alpha = exp(m - mn);
  return Block(p0, p1, alpha, mn, l * alpha + (hsum(p0) + hsum(p1)));
}

fn lin(wid: vec3<u32>, nwg: vec3<u32>, lid: vec3<u32>) -> u32 {
  return (wid.y * nwg.x + wid.x) * WG + lid.x;
}

// ------------------------------------------------------------------------------ forward

@compute @workgroup_size(WG)
fn attn_fwd(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let Lq = params.Lq;
  let d4 = params.d4;
  let bh = wid.y;
  let iq = wid.x * WG + lid.x;
  let row = bh * Lq + min(iq, Lq - 1u);
  let qrow = params.q_base + row * d4;
  var qr: array<vec4<f32>, 16>;
  var acc: array<vec4<f32>, 16>;
  for (var c = 0u; c < d4; c++) {
    qr[c] = q[qrow + c] * params.scale;
    acc[c] = vec4<f32>(0.0);
  }
  let relon = params.gh > 0u;
  let nrows = select(1u, params.gh, relon);
  let rowlen = select(params.Lk, params.gw, relon);
  let gwp = ceil8(params.gw);
  let rrow = (params.r_base * 4u + row * (gwp + ceil4(params.gh)));
  let kbh = bh * params.Lk;
  var m = NEG;
  var l = 0.0;
  for (var ky = 0u; ky < nrows; ky++) {
    var rh = 0.0;
    if (relon) {
      let e = rrow + gwp + ky;
      rh = rel[e / 4u][e % 4u];
    }
    for (var kx0 = 0u; kx0 < rowlen; kx0 += 8u) {
      let nv = min(8u, rowlen - kx0);
      let j0 = kbh + ky * rowlen + kx0;
      let r0 = j0 * d4;
      let r1 = (j0 + min(1u, nv - 1u)) * d4;
      let r2 = (j0 + min(2u, nv - 1u)) * d4;
      let r3 = (j0 + min(3u, nv - 1u)) * d4;
      let r4 = (j0 + min(4u, nv - 1u)) * d4;
      let r5 = (j0 + min(5u, nv - 1u)) * d4;
      let r6 = (j0 + min(6u, nv - 1u)) * d4;
      let r7 = (j0 + min(7u, nv - 1u)) * d4;
      var a0 = vec4<f32>(0.0);
      var a1 = vec4<f32>(0.0);
      var a2 = vec4<f32>(0.0);
      var a3 = vec4<f32>(0.0);
      var a4 = vec4<f32>(0.0);
      var a5 = vec4<f32>(0.0);
      var a6 = vec4<f32>(0.0);
      var a7 = vec4<f32>(0.0);
      let kb = params.k_base;
      for (var c = 0u; c < d4; c++) {
        let cc = kb + c;
        let qc = qr[c];
        a0 = fma(qc, k[r0 + cc], a0);
        a1 = fma(qc, k[r1 + cc], a1);
        a2 = fma(qc, k[r2 + cc], a2);
        a3 = fma(qc, k[r3 + cc], a3);
        a4 = fma(qc, k[r4 + cc], a4);
        a5 = fma(qc, k[r5 + cc], a5);
        a6 = fma(qc, k[r6 + cc], a6);
        a7 = fma(qc, k[r7 + cc], a7);
      }
      var w0 = vec4<f32>(rh);
      var w1 = vec4<f32>(rh);
      if (relon) {
        w0 += rel[(rrow + kx0) / 4u];
        w1 += rel[(rrow + kx0) / 4u + 1u];
      }
      let blk = block_step(a0, a1, a2, a3, a4, a5, a6, a7, w0, w1, nv, m, l);
      m = blk.m;
      l = blk.l;
      let alpha = blk.alpha;
      let p0 = blk.p0.x;
      let p1 = blk.p0.y;
      let p2 = blk.p0.z;
      let p3 = blk.p0.w;
      let p4 = blk.p1.x;
      let p5 = blk.p1.y;
      let p6 = blk.p1.z;
      let p7 = blk.p1.w;
      let vb = params.v_base;
      for (var c = 0u; c < d4; c++) {
        let cc = vb + c;
        var oc = acc[c] * alpha;
        oc = fma(vec4<f32>(p0), v[r0 + cc], oc);
        oc = fma(vec4<f32>(p1), v[r1 + cc], oc);
        oc = fma(vec4<f32>(p2), v[r2 + cc], oc);
        oc = fma(vec4<f32>(p3), v[r3 + cc], oc);
        oc = fma(vec4<f32>(p4), v[r4 + cc], oc);
        oc = fma(vec4<f32>(p5), v[r5 + cc], oc);
        oc = fma(vec4<f32>(p6), v[r6 + cc], oc);
        oc = fma(vec4<f32>(p7), v[r7 + cc], oc);
        acc[c] = oc;
      }
    }
  }
  if (iq < Lq) {
    let inv = 1.0 / l;
    let orow = params.a_base + row * d4;
    for (var c = 0u; c < d4; c++) {
      o[orow + c] = acc[c] * inv;
    }
    lse[params.s_base + row] = m + log(l);
  }
}

// Real-GPU forward: WG query rows per workgroup; K/V tiles of KT rows are staged in workgroup
// memory (cooperative vec4 loads, two barriers per tile) and every invocation scores its query
// against the tile, then does one online-softmax rescale per tile.
const KT: u32 = 32u;
var<workgroup> ktile: array<vec4<f32>, 512>;   // KT rows x up to 16 vec4
var<workgroup> vtile: array<vec4<f32>, 512>;

@compute @workgroup_size(WG)
fn attn_fwd_tiled(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let Lq = params.Lq;
  let Lk = params.Lk;
  let d4 = params.d4;
  let bh = wid.y;
  let iq = wid.x * WG + lid.x;
  let row = bh * Lq + min(iq, Lq - 1u);
  let qrow = params.q_base + row * d4;
  var qr: array<vec4<f32>, 16>;
  var acc: array<vec4<f32>, 16>;
  for (var c = 0u; c < d4; c++) {
    qr[c] = q[qrow + c] * params.scale;
    acc[c] = vec4<f32>(0.0);
  }
  let relon = params.gh > 0u;
  let gw = max(params.gw, 1u);
  let gwp = ceil8(params.gw);
  let rrow = params.r_base * 4u + row * (gwp + ceil4(params.gh));
  let kbh = bh * Lk;
  var m = NEG;
  var l = 0.0;
  var s: array<f32, KT>;
  for (var j0 = 0u; j0 < Lk; j0 += KT) {
    let nk = min(KT, Lk - j0);
    workgroupBarrier();
    for (var t = lid.x; t < KT * d4; t += WG) {
      let j = kbh + j0 + min(t / d4, nk - 1u);
      let c = t % d4;
      ktile[t] = k[params.k_base + j * d4 + c];
      vtile[t] = v[params.v_base + j * d4 + c];
    }
    workgroupBarrier();
    var mb = NEG;
    for (var jj = 0u; jj < KT; jj++) {
      var a = vec4<f32>(0.0);
      for (var c = 0u; c < d4; c++) {
        a = fma(qr[c], ktile[jj * d4 + c], a);
      }
      var sv = hsum(a);
      if (relon) {
        let j = min(j0 + jj, Lk - 1u);
        let ew = rrow + j % gw;
        let eh = rrow + gwp + j / gw;
        sv += rel[ew / 4u][ew % 4u] + rel[eh / 4u][eh % 4u];
      }
      sv = select(NEG, sv, jj < nk);
      s[jj] = sv;
      mb = max(mb, sv);
    }
    let mn = max(m, mb);
    let alpha = exp(m - mn);
    l = l * alpha;
    for (var c = 0u; c < d4; c++) {
      acc[c] = acc[c] * alpha;
    }
    for (var jj = 0u; jj < KT; jj++) {
      let p = exp(s[jj] - mn);
      l += p;
      for (var c = 0u; c < d4; c++) {
        acc[c] = fma(vec4<f32>(p), vtile[jj * d4 + c], acc[c]);
      }
    }
    m = mn;
  }
  if (iq < Lq) {
    let inv = 1.0 / l;
    let orow = params.a_base + row * d4;
    for (var c = 0u; c < d4; c++) {
      o[orow + c] = acc[c] * inv;
    }
    lse[params.s_base + row] = m + log(l);
  }
}

// ------------------------------------------------------------------------------ backward

// stats[row] = (lse[row], dout[row] . o[row]) for the Lq rows of this dispatch (1-D, folded grid);
// o at a_base, dout at g_base, lse at s_base, stats at b_base (in rows).
@compute @workgroup_size(WG)
fn attn_delta(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_id) lid: vec3<u32>) {
  let row = lin(wid, nwg, lid);
  if (row >= params_d.Lq) {
    return;
  }
  let d4 = params_d.d4;
  let ob = params_d.a_base + row * d4;
  let gbase = params_d.g_base + row * d4;
  var acc = vec4<f32>(0.0);
  for (var c = 0u; c < d4; c++) {
    acc = fma(fo[ob + c], fdo[gbase + c], acc);
  }
  fstats[params_d.b_base + row] = vec2<f32>(flse[params_d.s_base + row], hsum(acc));
}

// One invocation per query row: dq (scaled, without the rel-pos term) and drel.
@compute @workgroup_size(WG)
fn attn_bwd_q(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let Lq = params_b.Lq;
  let d4 = params_b.d4;
  let bh = wid.y;
  let iq = wid.x * WG + lid.x;
  let row = bh * Lq + min(iq, Lq - 1u);
  let qrow = params_b.q_base + row * d4;
  let grow = params_b.g_base + row * d4;
  var qr: array<vec4<f32>, 16>;
  var gr: array<vec4<f32>, 16>;
  var acc: array<vec4<f32>, 16>;
  for (var c = 0u; c < d4; c++) {
    qr[c] = q[qrow + c] * params_b.scale;
    gr[c] = dout[grow + c];
    acc[c] = vec4<f32>(0.0);
  }
  let st = stats[params_b.s_base + row];
  let relon = params_b.gh > 0u;
  let nrows = select(1u, params_b.gh, relon);
  let rowlen = select(params_b.Lk, params_b.gw, relon);
  let gwp = ceil8(params_b.gw);
  let rs = gwp + ceil4(params_b.gh);
  let rrow = params_b.r_base * 4u + row * rs;
  let drow = params_b.b_base * 4u + row * rs;
  let kbh = bh * params_b.Lk;
  for (var ky = 0u; ky < nrows; ky++) {
    var rh = 0.0;
    if (relon) {
      let e = rrow + gwp + ky;
      rh = rel[e / 4u][e % 4u];
    }
    var dh = 0.0;
    for (var kx0 = 0u; kx0 < rowlen; kx0 += 8u) {
      let nv = min(8u, rowlen - kx0);
      let j0 = kbh + ky * rowlen + kx0;
      let r0 = j0 * d4;
      let r1 = (j0 + min(1u, nv - 1u)) * d4;
      let r2 = (j0 + min(2u, nv - 1u)) * d4;
      let r3 = (j0 + min(3u, nv - 1u)) * d4;
      let r4 = (j0 + min(4u, nv - 1u)) * d4;
      let r5 = (j0 + min(5u, nv - 1u)) * d4;
      let r6 = (j0 + min(6u, nv - 1u)) * d4;
      let r7 = (j0 + min(7u, nv - 1u)) * d4;
      var a0 = vec4<f32>(0.0);
      var a1 = vec4<f32>(0.0);
      var a2 = vec4<f32>(0.0);
      var a3 = vec4<f32>(0.0);
      var a4 = vec4<f32>(0.0);
      var a5 = vec4<f32>(0.0);
      var a6 = vec4<f32>(0.0);
      var a7 = vec4<f32>(0.0);
      var b0 = vec4<f32>(0.0);
      var b1 = vec4<f32>(0.0);
      var b2 = vec4<f32>(0.0);
      var b3 = vec4<f32>(0.0);
      var b4 = vec4<f32>(0.0);
      var b5 = vec4<f32>(0.0);
      var b6 = vec4<f32>(0.0);
      var b7 = vec4<f32>(0.0);
      let kb = params_b.k_base;
      let vb = params_b.v_base;
      for (var c = 0u; c < d4; c++) {
        let ck = kb + c;
        let cv = vb + c;
        let qc = qr[c];
        let gc = gr[c];
        a0 = fma(qc, k[r0 + ck], a0);
        a1 = fma(qc, k[r1 + ck], a1);
        a2 = fma(qc, k[r2 + ck], a2);
        a3 = fma(qc, k[r3 + ck], a3);
        a4 = fma(qc, k[r4 + ck], a4);
        a5 = fma(qc, k[r5 + ck], a5);
        a6 = fma(qc, k[r6 + ck], a6);
        a7 = fma(qc, k[r7 + ck], a7);
        b0 = fma(gc, v[r0 + cv], b0);
        b1 = fma(gc, v[r1 + cv], b1);
        b2 = fma(gc, v[r2 + cv], b2);
        b3 = fma(gc, v[r3 + cv], b3);
        b4 = fma(gc, v[r4 + cv], b4);
        b5 = fma(gc, v[r5 + cv], b5);
        b6 = fma(gc, v[r6 + cv], b6);
        b7 = fma(gc, v[r7 + cv], b7);
      }
      var w0 = vec4<f32>(rh);
      var w1 = vec4<f32>(rh);
      if (relon) {
        w0 += rel[(rrow + kx0) / 4u];
        w1 += rel[(rrow + kx0) / 4u + 1u];
      }
      let lse_i = st.x;
      let dl = st.y;
      let ds0 = exp(hsum(a0) + w0.x - lse_i) * (hsum(b0) - dl);
      let ds1 = select(0.0, exp(hsum(a1) + w0.y - lse_i) * (hsum(b1) - dl), 1u < nv);
      let ds2 = select(0.0, exp(hsum(a2) + w0.z - lse_i) * (hsum(b2) - dl), 2u < nv);
      let ds3 = select(0.0, exp(hsum(a3) + w0.w - lse_i) * (hsum(b3) - dl), 3u < nv);
      let ds4 = select(0.0, exp(hsum(a4) + w1.x - lse_i) * (hsum(b4) - dl), 4u < nv);
      let ds5 = select(0.0, exp(hsum(a5) + w1.y - lse_i) * (hsum(b5) - dl), 5u < nv);
      let ds6 = select(0.0, exp(hsum(a6) + w1.z - lse_i) * (hsum(b6) - dl), 6u < nv);
      let ds7 = select(0.0, exp(hsum(a7) + w1.w - lse_i) * (hsum(b7) - dl), 7u < nv);
      for (var c = 0u; c < d4; c++) {
        let ck = kb + c;
        var dc = acc[c];
        dc = fma(vec4<f32>(ds0), k[r0 + ck], dc);
        dc = fma(vec4<f32>(ds1), k[r1 + ck], dc);
        dc = fma(vec4<f32>(ds2), k[r2 + ck], dc);
        dc = fma(vec4<f32>(ds3), k[r3 + ck], dc);
        dc = fma(vec4<f32>(ds4), k[r4 + ck], dc);
        dc = fma(vec4<f32>(ds5), k[r5 + ck], dc);
        dc = fma(vec4<f32>(ds6), k[r6 + ck], dc);
        dc = fma(vec4<f32>(ds7), k[r7 + ck], dc);
        acc[c] = dc;
      }
      if (relon) {
        let d0 = vec4<f32>(ds0, ds1, ds2, ds3);
        let d1 = vec4<f32>(ds4, ds5, ds6, ds7);
        dh += hsum(d0) + hsum(d1);
        // Column sums over key-grid rows; this invocation owns its drel row.
        if (iq < Lq) {
          let e = (drow + kx0) / 4u;
          if (ky == 0u) {
            gb[e] = d0;
            gb[e + 1u] = d1;
          } else {
            gb[e] = gb[e] + d0;
            gb[e + 1u] = gb[e + 1u] + d1;
          }
        }
      }
    }
    if (relon && iq < Lq) {
      let e = drow + gwp + ky;
      gb[e / 4u][e % 4u] = dh;
    }
  }
  if (iq < Lq) {
    let arow = params_b.a_base + row * d4;
    for (var c = 0u; c < d4; c++) {
      ga[arow + c] = acc[c] * params_b.scale;
    }
  }
}

// One invocation per key row: dk and dv.
@compute @workgroup_size(WG)
fn attn_bwd_kv(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let Lq = params_b.Lq;
  let Lk = params_b.Lk;
  let d4 = params_b.d4;
  let bh = wid.y;
  let jk = wid.x * WG + lid.x;
  let j = min(jk, Lk - 1u);
  let krow = bh * Lk + j;
  var kr: array<vec4<f32>, 16>;
  var vr: array<vec4<f32>, 16>;
  var dk: array<vec4<f32>, 16>;
  var dv: array<vec4<f32>, 16>;
  for (var c = 0u; c < d4; c++) {
    kr[c] = k[params_b.k_base + krow * d4 + c];
    vr[c] = v[params_b.v_base + krow * d4 + c];
    dk[c] = vec4<f32>(0.0);
    dv[c] = vec4<f32>(0.0);
  }
  let relon = params_b.gh > 0u;
  let gw = max(params_b.gw, 1u);
  let gwp = ceil8(params_b.gw);
  let rs = gwp + ceil4(params_b.gh);
  // Offsets of this key's relw and relh entries within a rel row.
  let ew = j % gw;
  let eh = gwp + j / gw;
  let scale = params_b.scale;
  let qb = params_b.q_base;
  let gbb = params_b.g_base;
  for (var i0 = 0u; i0 < Lq; i0 += 8u) {
    let nv = min(8u, Lq - i0);
    let q0 = bh * Lq + i0;
    let q1 = bh * Lq + i0 + min(1u, nv - 1u);
    let q2 = bh * Lq + i0 + min(2u, nv - 1u);
    let q3 = bh * Lq + i0 + min(3u, nv - 1u);
    let q4 = bh * Lq + i0 + min(4u, nv - 1u);
    let q5 = bh * Lq + i0 + min(5u, nv - 1u);
    let q6 = bh * Lq + i0 + min(6u, nv - 1u);
    let q7 = bh * Lq + i0 + min(7u, nv - 1u);
    var a0 = vec4<f32>(0.0);
    var a1 = vec4<f32>(0.0);
    var a2 = vec4<f32>(0.0);
    var a3 = vec4<f32>(0.0);
    var a4 = vec4<f32>(0.0);
    var a5 = vec4<f32>(0.0);
    var a6 = vec4<f32>(0.0);
    var a7 = vec4<f32>(0.0);
    var b0 = vec4<f32>(0.0);
    var b1 = vec4<f32>(0.0);
    var b2 = vec4<f32>(0.0);
    var b3 = vec4<f32>(0.0);
    var b4 = vec4<f32>(0.0);
    var b5 = vec4<f32>(0.0);
    var b6 = vec4<f32>(0.0);
    var b7 = vec4<f32>(0.0);
    for (var c = 0u; c < d4; c++) {
            let kc = kr[c];
      let vc = vr[c];
      a0 = fma(kc, q[qb + q0 * d4 + c], a0);
      a1 = fma(kc, q[qb + q1 * d4 + c], a1);
      a2 = fma(kc, q[qb + q2 * d4 + c], a2);
      a3 = fma(kc, q[qb + q3 * d4 + c], a3);
      a4 = fma(kc, q[qb + q4 * d4 + c], a4);
      a5 = fma(kc, q[qb + q5 * d4 + c], a5);
      a6 = fma(kc, q[qb + q6 * d4 + c], a6);
      a7 = fma(kc, q[qb + q7 * d4 + c], a7);
      b0 = fma(vc, dout[gbb + q0 * d4 + c], b0);
      b1 = fma(vc, dout[gbb + q1 * d4 + c], b1);
      b2 = fma(vc, dout[gbb + q2 * d4 + c], b2);
      b3 = fma(vc, dout[gbb + q3 * d4 + c], b3);
      b4 = fma(vc, dout[gbb + q4 * d4 + c], b4);
      b5 = fma(vc, dout[gbb + q5 * d4 + c], b5);
      b6 = fma(vc, dout[gbb + q6 * d4 + c], b6);
      b7 = fma(vc, dout[gbb + q7 * d4 + c], b7);
    }
    let sb = params_b.s_base;
    let t0 = stats[sb + q0];
    let t1 = stats[sb + q1];
    let t2 = stats[sb + q2];
    let t3 = stats[sb + q3];
    let t4 = stats[sb + q4];
    let t5 = stats[sb + q5];
    let t6 = stats[sb + q6];
    let t7 = stats[sb + q7];
    var w0 = vec4<f32>(0.0);
    var w1 = vec4<f32>(0.0);
    if (relon) {
      let rb = params_b.r_base * 4u;
      w0 = vec4<f32>(relat(rb + q0 * rs, ew, eh), relat(rb + q1 * rs, ew, eh),
                     relat(rb + q2 * rs, ew, eh), relat(rb + q3 * rs, ew, eh));
      w1 = vec4<f32>(relat(rb + q4 * rs, ew, eh), relat(rb + q5 * rs, ew, eh),
                     relat(rb + q6 * rs, ew, eh), relat(rb + q7 * rs, ew, eh));
    }
    // p = exp(s - lse); queries past Lq get p = 0.
    let p0 = exp(scale * hsum(a0) + w0.x - t0.x);
    let p1 = select(0.0, exp(scale * hsum(a1) + w0.y - t1.x), 1u < nv);
    let p2 = select(0.0, exp(scale * hsum(a2) + w0.z - t2.x), 2u < nv);
    let p3 = select(0.0, exp(scale * hsum(a3) + w0.w - t3.x), 3u < nv);
    let p4 = select(0.0, exp(scale * hsum(a4) + w1.x - t4.x), 4u < nv);
    let p5 = select(0.0, exp(scale * hsum(a5) + w1.y - t5.x), 5u < nv);
    let p6 = select(0.0, exp(scale * hsum(a6) + w1.z - t6.x), 6u < nv);
    let p7 = select(0.0, exp(scale * hsum(a7) + w1.w - t7.x), 7u < nv);
    let ds0 = scale * p0 * (hsum(b0) - t0.y);
    let ds1 = scale * p1 * (hsum(b1) - t1.y);
    let ds2 = scale * p2 * (hsum(b2) - t2.y);
    let ds3 = scale * p3 * (hsum(b3) - t3.y);
    let ds4 = scale * p4 * (hsum(b4) - t4.y);
    let ds5 = scale * p5 * (hsum(b5) - t5.y);
    let ds6 = scale * p6 * (hsum(b6) - t6.y);
    let ds7 = scale * p7 * (hsum(b7) - t7.y);
    for (var c = 0u; c < d4; c++) {
            var xk = dk[c];
      var xv = dv[c];
      xk = fma(vec4<f32>(ds0), q[qb + q0 * d4 + c], xk);
      xv = fma(vec4<f32>(p0), dout[gbb + q0 * d4 + c], xv);
      xk = fma(vec4<f32>(ds1), q[qb + q1 * d4 + c], xk);
      xv = fma(vec4<f32>(p1), dout[gbb + q1 * d4 + c], xv);
      xk = fma(vec4<f32>(ds2), q[qb + q2 * d4 + c], xk);
      xv = fma(vec4<f32>(p2), dout[gbb + q2 * d4 + c], xv);
      xk = fma(vec4<f32>(ds3), q[qb + q3 * d4 + c], xk);
      xv = fma(vec4<f32>(p3), dout[gbb + q3 * d4 + c], xv);
      xk = fma(vec4<f32>(ds4), q[qb + q4 * d4 + c], xk);
      xv = fma(vec4<f32>(p4), dout[gbb + q4 * d4 + c], xv);
      xk = fma(vec4<f32>(ds5), q[qb + q5 * d4 + c], xk);
      xv = fma(vec4<f32>(p5), dout[gbb + q5 * d4 + c], xv);
      xk = fma(vec4<f32>(ds6), q[qb + q6 * d4 + c], xk);
      xv = fma(vec4<f32>(p6), dout[gbb + q6 * d4 + c], xv);
      xk = fma(vec4<f32>(ds7), q[qb + q7 * d4 + c], xk);
      xv = fma(vec4<f32>(p7), dout[gbb + q7 * d4 + c], xv);
      dk[c] = xk;
      dv[c] = xv;
    }
  }
  if (jk < Lk) {
    for (var c = 0u; c < d4; c++) {
      ga[params_b.a_base + krow * d4 + c] = dk[c];
      gb[params_b.b_base + krow * d4 + c] = dv[c];
    }
  }
}

// rel[row] relw part + relh part for the rel row starting at float `e0` (attn_bwd_kv).
fn relat(e0: u32, ew: u32, eh: u32) -> f32 {
  let a = e0 + ew;
  let b = e0 + eh;
  return rel[a / 4u][a % 4u] + rel[b / 4u][b % 4u];
}

// ------------------------------------------------------------------------------ rel-pos

// rel_out[row, t0..t0+3] for one vec4 group of a row, picked from prod[row] = [q.Rw^T (2gw-1
// values) | q.Rh^T (2gh-1 values)] (two GEMMs on the host side): t < gw: prod[qx - t + gw - 1];
// gwp <= t < gwp + gh: prod[2gw-1 + qy - (t - gwp) + gh - 1]; padding slots 0. q is the unscaled
// query. Invocations [0, rows*gwp/4) do the relw groups and the rest the relh groups.
@compute @workgroup_size(WG)
fn relpos_pick(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_id) lid: vec3<u32>) {
  let P = params_p;
  let gwp = ceil8(P.gw);
  let nw4 = gwp / 4u;
  let nh4 = ceil4(P.gh) / 4u;
  let id = lin(wid, nwg, lid);
  if (id >= P.rows * (nw4 + nh4)) {
    return;
  }
  let onw = id < P.rows * nw4;
  let id2 = select(id - P.rows * nw4, id, onw);
  let per = select(nh4, nw4, onw);
  let row = id2 / per;
  let t0 = (id2 % per) * 4u;               // first column within the relw or relh part
  let i = row % P.L;
  let n = select(P.gh, P.gw, onw);         // valid columns of this part
  // prod index of column 0: the part's start plus its table row for column 0.
  let nwt = 2u * P.gw - 1u;
  let top = select(nwt + i / P.gw + P.gh - 1u, i % P.gw + P.gw - 1u, onw);
  let pb = row * (nwt + 2u * P.gh - 1u) + top;
  // Columns past n read a clamped valid element and are zeroed below.
  let v = vec4<f32>(prod[pb - min(t0, n - 1u)], prod[pb - min(t0 + 1u, n - 1u)],
                    prod[pb - min(t0 + 2u, n - 1u)], prod[pb - min(t0 + 3u, n - 1u)]);
  let tt = vec4<u32>(t0, t0 + 1u, t0 + 2u, t0 + 3u);
  let rs4 = nw4 + nh4;
  rel_pick[P.r_base + row * rs4 + select(nw4, 0u, onw) + t0 / 4u] =
      select(vec4<f32>(0.0), v, tt < vec4<u32>(n));
}

// dq[row, c4] += sum_ky drelh[row, ky] Rh[qy-ky+gh-1, c4] + sum_kx drelw[row, kx] Rw[qx-kx+gw-1, c4]
// (drel read a vec4 of 4 columns at a time; padding columns hold zeros or are skipped).
@compute @workgroup_size(WG)
fn relpos_bwd_dq(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_id) lid: vec3<u32>) {
  let P = params_r;
  let id = lin(wid, nwg, lid);
  if (id >= P.rows * P.d4) {
    return;
  }
  let row = id / P.d4;
  let c = id % P.d4;
  let i = row % P.L;
  let qy = i / P.gw;
  let qx = i % P.gw;
  let gwp = ceil8(P.gw);
  let e0 = P.r_base + row * ((gwp + ceil4(P.gh)) / 4u);   // vec4 index of the drel row
  var acc = vec4<f32>(0.0);
  for (var k0 = 0u; k0 < P.gw; k0 += 4u) {
    let g = drel_in[e0 + k0 / 4u];
    let top = qx + P.gw - 1u;
    acc = fma(vec4<f32>(g.x), tab_w[(top - k0) * P.d4 + c], acc);
    if (k0 + 1u < P.gw) {
      acc = fma(vec4<f32>(g.y), tab_w[(top - k0 - 1u) * P.d4 + c], acc);
    }
    if (k0 + 2u < P.gw) {
      acc = fma(vec4<f32>(g.z), tab_w[(top - k0 - 2u) * P.d4 + c], acc);
    }
    if (k0 + 3u < P.gw) {
      acc = fma(vec4<f32>(g.w), tab_w[(top - k0 - 3u) * P.d4 + c], acc);
    }
  }
  for (var k0 = 0u; k0 < P.gh; k0 += 4u) {
    let g = drel_in[e0 + (gwp + k0) / 4u];
    let top = qy + P.gh - 1u;
    acc = fma(vec4<f32>(g.x), tab_h[(top - k0) * P.d4 + c], acc);
    if (k0 + 1u < P.gh) {
      acc = fma(vec4<f32>(g.y), tab_h[(top - k0 - 1u) * P.d4 + c], acc);
    }
    if (k0 + 2u < P.gh) {
      acc = fma(vec4<f32>(g.z), tab_h[(top - k0 - 2u) * P.d4 + c], acc);
    }
    if (k0 + 3u < P.gh) {
      acc = fma(vec4<f32>(g.w), tab_h[(top - k0 - 3u) * P.d4 + c], acc);
    }
  }
  let o4 = P.q_base + id;
  dq_io[o4] = dq_io[o4] + acc;
}

// dRh[r, c4] = sum over (bh, qy, qx) with ky = qy - r + gh - 1 in [0, gh) of drelh[row, ky] q[row, c4];
// dRw likewise over (bh, qx, qy) with kx = qx - r + gw - 1. Threads [0, (2gh-1)*d4) write dRh, the
// next (2gw-1)*d4 write dRw. Fixed summation order (deterministic).
@compute @workgroup_size(WG)
fn relpos_bwd_table(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                    @builtin(local_invocation_id) lid: vec3<u32>) {
  let P = params_r;
  let id = lin(wid, nwg, lid);
  let nh = (2u * P.gh - 1u) * P.d4;
  let nw = (2u * P.gw - 1u) * P.d4;
  if (id >= nh + nw) {
    return;
  }
  let gwp = ceil8(P.gw);
  let rs = gwp + ceil4(P.gh);
  let onh = id < nh;
  let t = select(id - nh, id, onh);
  let r = t / P.d4;
  let c = t % P.d4;
  // Outer grid axis (n1) and inner axis (n2): for dRh the relative axis is y, else x.
  let n1 = select(P.gw, P.gh, onh);
  let n2 = select(P.gh, P.gw, onh);
  let off = select(0u, gwp, onh);
  var total = vec4<f32>(0.0);
  for (var b = 0u; b < P.nbh; b++) {
    for (var a = 0u; a < n1; a++) {
      // a = query coordinate along the relative axis; key coordinate = a - r + n1 - 1.
      if (a + n1 - 1u < r || a + n1 - 1u - r >= n1) {
        continue;
      }
      let kk = a + n1 - 1u - r;
      var acc = vec4<f32>(0.0);
      for (var o2 = 0u; o2 < n2; o2++) {
        let i = select(o2 * P.gw + a, a * P.gw + o2, onh);
        let row = b * P.L + i;
        let e = P.r_base * 4u + row * rs + off + kk;
        acc = fma(vec4<f32>(drel_in[e / 4u][e % 4u]), qt[P.q_base + row * P.d4 + c], acc);
      }
      total += acc;
    }
  }
  if (onh) {
    if (P.accum != 0u) {
      total += dtab_h[t];
    }
    dtab_h[t] = total;
  } else {
    if (P.accum != 0u) {
      total += dtab_w[t];
    }
    dtab_w[t] = total;
  }
}
