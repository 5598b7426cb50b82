// attention_sg.wgsl: the fused attention kernels of attention.wgsl (same bindings, Params, layout,
// numerics and results) for CPU adapters with subgroups of at least 8 lanes (lavapipe: 8).
//
// Entries: attn_fwd_sg (q, k, v, rel, o, lse), attn_bwd_q_sg (q, k, v, rel, dout, stats, ga=dq,
//   gb=drel), attn_bwd_kv_sg (q, k, v, rel, dout, stats, ga=dk, gb=dv); see attention.wgsl.
// Dispatch: workgroup = one subgroup of 8 lanes. attn_fwd_sg: grid (ceil(Lq/16), BH chunk), lane l
//   owns query rows 16*wid.x + l and 16*wid.x + 8 + l (each broadcast key vec4 feeds two rows);
//   attn_bwd_q_sg: grid (ceil(Lq/8), BH), lane l owns query row 8*wid.x + l; attn_bwd_kv_sg:
//   grid (ceil(Lk/8), BH), lane l owns key row 8*wid.x + l.
// Tiling: rows are streamed in blocks of 8 (keys for fwd/bwd_q, queries for bwd_kv); lane l loads
//   row l of the block one vec4 at a time and subgroupBroadcast (a register permute) hands each
//   vec4 to all 8 lanes, so every streamed row is loaded once per workgroup instead of once per
//   lane. The lane's own row (pre-scaled q) and accumulators sit in private arrays of 16 vec4. No
//   shared memory, no barriers. All control flow is uniform across the subgroup (loop bounds come
//   from uniforms and the workgroup id); rows past Lq / Lk are clamped on load, never stored.
enable subgroups;

struct Params {
  Lq: u32,
  Lk: u32,
  d4: u32,
  scale: f32,
  gh: u32,
  gw: u32,
  q_base: u32,
  k_base: u32,
  v_base: u32,
  g_base: u32,
  a_base: u32,
  b_base: u32,
  r_base: u32,
  s_base: u32,
}

@group(0) @binding(0) var<storage, read> q: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> k: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> v: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> rel: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> o: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read_write> lse: array<f32>;
@group(0) @binding(6) var<uniform> params: Params;
@group(0) @binding(4) var<storage, read> dout: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read> stats: array<vec2<f32>>;
@group(0) @binding(6) var<storage, read_write> ga: array<vec4<f32>>;
@group(0) @binding(7) var<storage, read_write> gb: array<vec4<f32>>;
@group(0) @binding(8) var<uniform> params_b: Params;


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

// Two query rows per lane (rows 16*wid.x + lane and + 8): every broadcast key vec4 feeds both.
@compute @workgroup_size(8)
fn attn_fwd_sg(@builtin(workgroup_id) wid: vec3<u32>, @builtin(subgroup_invocation_id) lane: u32) {
  let Lq = params.Lq;
  let d4 = params.d4;
  let bh = wid.y;
  let relon = params.gh > 0u;
  let nrows = select(1u, params.gh, relon);
  let rowlen = select(params.Lk, params.gw, relon);
  let gwp = ceil8(params.gw);
  let rs = gwp + ceil4(params.gh);
  let kbh = bh * params.Lk;
  let iqA = wid.x * 16u + lane;
  let iqB = iqA + 8u;
  let rowA = bh * Lq + min(iqA, Lq - 1u);
  let rowB = bh * Lq + min(iqB, Lq - 1u);
  let rrA = params.r_base * 4u + rowA * rs;
  let rrB = params.r_base * 4u + rowB * rs;
  var qA: array<vec4<f32>, 16>;
  var qB: array<vec4<f32>, 16>;
  var oA: array<vec4<f32>, 16>;
  var oB: array<vec4<f32>, 16>;
  for (var c = 0u; c < d4; c++) {
    qA[c] = q[params.q_base + rowA * d4 + c] * params.scale;
    qB[c] = q[params.q_base + rowB * d4 + c] * params.scale;
    oA[c] = vec4<f32>(0.0);
    oB[c] = vec4<f32>(0.0);
  }
  var bA = Block(vec4<f32>(0.0), vec4<f32>(0.0), 1.0, NEG, 0.0);
  var bB = bA;
  for (var ky = 0u; ky < nrows; ky++) {
    var rhA = 0.0;
    var rhB = 0.0;
    if (relon) {
      let eA = rrA + gwp + ky;
      let eB = rrB + gwp + ky;
      rhA = rel[eA / 4u][eA % 4u];
      rhB = rel[eB / 4u][eB % 4u];
    }
    for (var kx0 = 0u; kx0 < rowlen; kx0 += 8u) {
      let nv = min(8u, rowlen - kx0);
      let jl = kbh + ky * rowlen + kx0 + min(lane, nv - 1u);
      let krow = params.k_base + jl * d4;
      let vrow = params.v_base + jl * d4;
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
        let kc = k[krow + c];
        let xA = qA[c];
        let xB = qB[c];
        let k0 = subgroupBroadcast(kc, 0u);
        a0 = fma(xA, k0, a0);
        b0 = fma(xB, k0, b0);
        let k1 = subgroupBroadcast(kc, 1u);
        a1 = fma(xA, k1, a1);
        b1 = fma(xB, k1, b1);
        let k2 = subgroupBroadcast(kc, 2u);
        a2 = fma(xA, k2, a2);
        b2 = fma(xB, k2, b2);
        let k3 = subgroupBroadcast(kc, 3u);
        a3 = fma(xA, k3, a3);
        b3 = fma(xB, k3, b3);
        let k4 = subgroupBroadcast(kc, 4u);
        a4 = fma(xA, k4, a4);
        b4 = fma(xB, k4, b4);
        let k5 = subgroupBroadcast(kc, 5u);
        a5 = fma(xA, k5, a5);
        b5 = fma(xB, k5, b5);
        let k6 = subgroupBroadcast(kc, 6u);
        a6 = fma(xA, k6, a6);
        b6 = fma(xB, k6, b6);
        let k7 = subgroupBroadcast(kc, 7u);
        a7 = fma(xA, k7, a7);
        b7 = fma(xB, k7, b7);
      }
      var wA0 = vec4<f32>(rhA);
      var wA1 = vec4<f32>(rhA);
      var wB0 = vec4<f32>(rhB);
      var wB1 = vec4<f32>(rhB);
      if (relon) {
        wA0 += rel[(rrA + kx0) / 4u];
        wA1 += rel[(rrA + kx0) / 4u + 1u];
        wB0 += rel[(rrB + kx0) / 4u];
        wB1 += rel[(rrB + kx0) / 4u + 1u];
      }
      bA = block_step(a0, a1, a2, a3, a4, a5, a6, a7, wA0, wA1, nv, bA.m, bA.l);
      bB = block_step(b0, b1, b2, b3, b4, b5, b6, b7, wB0, wB1, nv, bB.m, bB.l);
      let pA = bA.p0;
      let pA1 = bA.p1;
      let pB = bB.p0;
      let pB1 = bB.p1;
      for (var c = 0u; c < d4; c++) {
        let vc = v[vrow + c];
        var yA = oA[c] * bA.alpha;
        var yB = oB[c] * bB.alpha;
        let v0 = subgroupBroadcast(vc, 0u);
        yA = fma(vec4<f32>(pA.x), v0, yA);
        yB = fma(vec4<f32>(pB.x), v0, yB);
        let v1 = subgroupBroadcast(vc, 1u);
        yA = fma(vec4<f32>(pA.y), v1, yA);
        yB = fma(vec4<f32>(pB.y), v1, yB);
        let v2 = subgroupBroadcast(vc, 2u);
        yA = fma(vec4<f32>(pA.z), v2, yA);
        yB = fma(vec4<f32>(pB.z), v2, yB);
        let v3 = subgroupBroadcast(vc, 3u);
        yA = fma(vec4<f32>(pA.w), v3, yA);
        yB = fma(vec4<f32>(pB.w), v3, yB);
        let v4 = subgroupBroadcast(vc, 4u);
        yA = fma(vec4<f32>(pA1.x), v4, yA);
        yB = fma(vec4<f32>(pB1.x), v4, yB);
        let v5 = subgroupBroadcast(vc, 5u);
        yA = fma(vec4<f32>(pA1.y), v5, yA);
        yB = fma(vec4<f32>(pB1.y), v5, yB);
        let v6 = subgroupBroadcast(vc, 6u);
        yA = fma(vec4<f32>(pA1.z), v6, yA);
        yB = fma(vec4<f32>(pB1.z), v6, yB);
        let v7 = subgroupBroadcast(vc, 7u);
        yA = fma(vec4<f32>(pA1.w), v7, yA);
        yB = fma(vec4<f32>(pB1.w), v7, yB);
        oA[c] = yA;
        oB[c] = yB;
      }
    }
  }
  if (iqA < Lq) {
    let inv = 1.0 / bA.l;
    for (var c = 0u; c < d4; c++) {
      o[params.a_base + rowA * d4 + c] = oA[c] * inv;
    }
    lse[params.s_base + rowA] = bA.m + log(bA.l);
  }
  if (iqB < Lq) {
    let inv = 1.0 / bB.l;
    for (var c = 0u; c < d4; c++) {
      o[params.a_base + rowB * d4 + c] = oB[c] * inv;
    }
    lse[params.s_base + rowB] = bB.m + log(bB.l);
  }
}

@compute @workgroup_size(8)
fn attn_bwd_q_sg(@builtin(workgroup_id) wid: vec3<u32>, @builtin(subgroup_invocation_id) lane: u32) {
  let Lq = params_b.Lq;
  let d4 = params_b.d4;
  let bh = wid.y;
  let iq = wid.x * 8u + lane;
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
      let jl = kbh + ky * rowlen + kx0 + min(lane, nv - 1u);
      let krow = params_b.k_base + jl * d4;
      let vrow = params_b.v_base + jl * d4;
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
                let kc = k[krow + c];
        let vc = v[vrow + c];
        let qc = qr[c];
        let gc = gr[c];
        a0 = fma(qc, subgroupBroadcast(kc, 0u), a0);
        a1 = fma(qc, subgroupBroadcast(kc, 1u), a1);
        a2 = fma(qc, subgroupBroadcast(kc, 2u), a2);
        a3 = fma(qc, subgroupBroadcast(kc, 3u), a3);
        a4 = fma(qc, subgroupBroadcast(kc, 4u), a4);
        a5 = fma(qc, subgroupBroadcast(kc, 5u), a5);
        a6 = fma(qc, subgroupBroadcast(kc, 6u), a6);
        a7 = fma(qc, subgroupBroadcast(kc, 7u), a7);
        b0 = fma(gc, subgroupBroadcast(vc, 0u), b0);
        b1 = fma(gc, subgroupBroadcast(vc, 1u), b1);
        b2 = fma(gc, subgroupBroadcast(vc, 2u), b2);
        b3 = fma(gc, subgroupBroadcast(vc, 3u), b3);
        b4 = fma(gc, subgroupBroadcast(vc, 4u), b4);
        b5 = fma(gc, subgroupBroadcast(vc, 5u), b5);
        b6 = fma(gc, subgroupBroadcast(vc, 6u), b6);
        b7 = fma(gc, subgroupBroadcast(vc, 7u), b7);
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
        let kc = k[krow + c];
        var dc = acc[c];
        dc = fma(vec4<f32>(ds0), subgroupBroadcast(kc, 0u), dc);
        dc = fma(vec4<f32>(ds1), subgroupBroadcast(kc, 1u), dc);
        dc = fma(vec4<f32>(ds2), subgroupBroadcast(kc, 2u), dc);
        dc = fma(vec4<f32>(ds3), subgroupBroadcast(kc, 3u), dc);
        dc = fma(vec4<f32>(ds4), subgroupBroadcast(kc, 4u), dc);
        dc = fma(vec4<f32>(ds5), subgroupBroadcast(kc, 5u), dc);
        dc = fma(vec4<f32>(ds6), subgroupBroadcast(kc, 6u), dc);
        dc = fma(vec4<f32>(ds7), subgroupBroadcast(kc, 7u), dc);
        acc[c] = dc;
      }
      if (relon) {
        let d0 = vec4<f32>(ds0, ds1, ds2, ds3);
        let d1 = vec4<f32>(ds4, ds5, ds6, ds7);
        dh += hsum(d0) + hsum(d1);
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

@compute @workgroup_size(8)
fn attn_bwd_kv_sg(@builtin(workgroup_id) wid: vec3<u32>, @builtin(subgroup_invocation_id) lane: u32) {
  let Lq = params_b.Lq;
  let Lk = params_b.Lk;
  let d4 = params_b.d4;
  let bh = wid.y;
  let jk = wid.x * 8u + lane;
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
  let ew = j % gw;
  let eh = gwp + j / gw;
  let scale = params_b.scale;
  for (var i0 = 0u; i0 < Lq; i0 += 8u) {
    let nv = min(8u, Lq - i0);
    // This lane's query row of the block (clamped); queries past Lq get p = 0 below.
    let qi = bh * Lq + i0 + min(lane, nv - 1u);
    let qrow = params_b.q_base + qi * d4;
    let grow = params_b.g_base + qi * d4;
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
            let qc = q[qrow + c];
      let gc = dout[grow + c];
      let kc = kr[c];
      let vc = vr[c];
      a0 = fma(kc, subgroupBroadcast(qc, 0u), a0);
      a1 = fma(kc, subgroupBroadcast(qc, 1u), a1);
      a2 = fma(kc, subgroupBroadcast(qc, 2u), a2);
      a3 = fma(kc, subgroupBroadcast(qc, 3u), a3);
      a4 = fma(kc, subgroupBroadcast(qc, 4u), a4);
      a5 = fma(kc, subgroupBroadcast(qc, 5u), a5);
      a6 = fma(kc, subgroupBroadcast(qc, 6u), a6);
      a7 = fma(kc, subgroupBroadcast(qc, 7u), a7);
      b0 = fma(vc, subgroupBroadcast(gc, 0u), b0);
      b1 = fma(vc, subgroupBroadcast(gc, 1u), b1);
      b2 = fma(vc, subgroupBroadcast(gc, 2u), b2);
      b3 = fma(vc, subgroupBroadcast(gc, 3u), b3);
      b4 = fma(vc, subgroupBroadcast(gc, 4u), b4);
      b5 = fma(vc, subgroupBroadcast(gc, 5u), b5);
      b6 = fma(vc, subgroupBroadcast(gc, 6u), b6);
      b7 = fma(vc, subgroupBroadcast(gc, 7u), b7);
    }
    let st = stats[params_b.s_base + qi];
    let t0 = subgroupBroadcast(st, 0u);
    let t1 = subgroupBroadcast(st, 1u);
    let t2 = subgroupBroadcast(st, 2u);
    let t3 = subgroupBroadcast(st, 3u);
    let t4 = subgroupBroadcast(st, 4u);
    let t5 = subgroupBroadcast(st, 5u);
    let t6 = subgroupBroadcast(st, 6u);
    let t7 = subgroupBroadcast(st, 7u);
    var w0 = vec4<f32>(0.0);
    var w1 = vec4<f32>(0.0);
    if (relon) {
      let rb = params_b.r_base * 4u + (bh * Lq + i0) * rs;
      let rl = (nv - 1u) * rs;
      w0 = vec4<f32>(relat(rb, ew, eh), relat(rb + min(rs, rl), ew, eh),
                     relat(rb + min(2u * rs, rl), ew, eh), relat(rb + min(3u * rs, rl), ew, eh));
      w1 = vec4<f32>(relat(rb + min(4u * rs, rl), ew, eh), relat(rb + min(5u * rs, rl), ew, eh),
                     relat(rb + min(6u * rs, rl), ew, eh), relat(rb + min(7u * rs, rl), ew, eh));
    }
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
            let qc = q[qrow + c];
      let gc = dout[grow + c];
      var xk = dk[c];
      var xv = dv[c];
      xk = fma(vec4<f32>(ds0), subgroupBroadcast(qc, 0u), xk);
      xv = fma(vec4<f32>(p0), subgroupBroadcast(gc, 0u), xv);
      xk = fma(vec4<f32>(ds1), subgroupBroadcast(qc, 1u), xk);
      xv = fma(vec4<f32>(p1), subgroupBroadcast(gc, 1u), xv);
      xk = fma(vec4<f32>(ds2), subgroupBroadcast(qc, 2u), xk);
      xv = fma(vec4<f32>(p2), subgroupBroadcast(gc, 2u), xv);
      xk = fma(vec4<f32>(ds3), subgroupBroadcast(qc, 3u), xk);
      xv = fma(vec4<f32>(p3), subgroupBroadcast(gc, 3u), xv);
      xk = fma(vec4<f32>(ds4), subgroupBroadcast(qc, 4u), xk);
      xv = fma(vec4<f32>(p4), subgroupBroadcast(gc, 4u), xv);
      xk = fma(vec4<f32>(ds5), subgroupBroadcast(qc, 5u), xk);
      xv = fma(vec4<f32>(p5), subgroupBroadcast(gc, 5u), xv);
      xk = fma(vec4<f32>(ds6), subgroupBroadcast(qc, 6u), xk);
      xv = fma(vec4<f32>(p6), subgroupBroadcast(gc, 6u), xv);
      xk = fma(vec4<f32>(ds7), subgroupBroadcast(qc, 7u), xk);
      xv = fma(vec4<f32>(p7), subgroupBroadcast(gc, 7u), xv);
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

// Rel-pos bias of one (query row starting at float e0, this lane's key) pair.
fn relat(e0: u32, ew: u32, eh: u32) -> f32 {
  let a = e0 + ew;
  let b = e0 + eh;
  return rel[a / 4u][a % 4u] + rel[b / 4u][b % 4u];
}
