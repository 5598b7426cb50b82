// gemm.wgsl: C[z] = act(alpha * sum_{t<kb} op(A[z,t]) . op(B[z,t]) + bias + beta * C[z]), f32.
// Two entries that need no optional feature (the subgroup variant for lavapipe is gemm_sg.wgsl):
//   gemm_plain: register tiles, no shared memory, no barriers (CPU adapters without subgroups).
//   gemm_tiled: 64x64 workgroup tiles staged through shared memory (real GPUs).
//
// Bindings (group 0): 0 a: array<vec4<f32>> (read), 1 b: array<vec4<f32>> (read),
//   2 bias: array<f32> (read; any buffer when has_bias = 0), 3 c: array<f32> (read_write),
//   4 params: Params (uniform).
//   Element (m, k) of op(A[z,t]) is a[a_off + z*a_bs + t*a_ts + m*lda + k] (TRANS_A: k*lda + m);
//   element (k, n) of op(B[z,t]) is b[b_off + z*b_bs + t*b_ts + k*ldb + n] (TRANS_B: n*ldb + k);
//   element (m, n) of C[z] is c[c_off + z*c_bs + m*ldc + n]. Scalar element i of a vec4 binding is
//   a[i/4][i%4].
//   Output batch z is workgroup_id.z; kb > 1 sums kb products into each output (the backward of a
//   batch-broadcast operand); a batch stride of 0 broadcasts an operand.
// Dispatch: gemm_plain: workgroup 8x8 (64 invocations), grid (ceil(N/32), ceil(M/64), batch);
//   invocation (x, y) owns rows [m0 + 8y, m0 + 8y + 8) and columns [n0 + 4x, n0 + 4x + 4).
//   gemm_tiled: workgroup 256, grid (ceil(N/64), ceil(M/64), batch); invocation l owns rows
//   [m0 + 4(l/16), +4) and columns [n0 + 4(l%16), +4); k advances in steps of 16 through two
//   64x16 shared tiles (one vec4 global load per invocation and operand per step, two barriers,
//   shared memory written and read as whole vec4s).
// Variants (override constants): TRANS_A, TRANS_B; VEC = true needs every vec4 load aligned
//   (K%4 = 0, lda/ldb/offsets/batch strides %4 = 0, N%4 = 0 unless TRANS_B, M%4 = 0 if TRANS_A) and
//   loads whole vec4s; VEC = false gathers scalars (any shape). Rows/columns past M/N are clamped on
//   load and never stored; k >= K is zeroed.
// Numerics: f32 accumulation as chains of fma, k in increasing order. act: 0 none, 1 relu, 2 gelu
//   (erf, Numerical Recipes erfc, ~1.2e-7 relative).

struct Params {
  M: u32,
  N: u32,
  K: u32,
  kb: u32,        // products summed into each output (1: plain batched GEMM)
  a_off: u32,     // element offsets of this dispatch's first item within each binding
  b_off: u32,
  c_off: u32,
  bias_off: u32,
  a_bs: u32,      // element strides per output batch z (0 broadcasts the operand)
  b_bs: u32,
  c_bs: u32,
  a_ts: u32,      // element strides per summed item t (see kb)
  b_ts: u32,
  lda: u32,       // row strides in elements
  ldb: u32,
  ldc: u32,
  alpha: f32,
  beta: f32,      // 0: overwrite C; 1: accumulate into C (split-K chunks)
  has_bias: u32,
  act: u32,
}

@group(0) @binding(0) var<storage, read> a: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> b: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> bias: array<f32>;
@group(0) @binding(3) var<storage, read_write> c: array<f32>;
@group(0) @binding(4) var<uniform> params: Params;

override TRANS_A: bool = false;
override TRANS_B: bool = false;
override VEC: bool = true;

const INV_SQRT2: f32 = 0.70710678118654752;

fn erf_f32(x: f32) -> f32 {
  let z = abs(x);
  let t = 1.0 / (1.0 + 0.5 * z);
  let p = -z * z - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (-0.18628806 +
          t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277))))))));
  let r = 1.0 - t * exp(p);
  return select(-r, r, x >= 0.0);
}

fn epilogue(v: f32, n: u32, ci: u32) -> f32 {
  var r = params.alpha * v;
  if (params.has_bias != 0u) { r += bias[params.bias_off + n]; }
  if (params.beta != 0.0) { r += params.beta * c[ci]; }
  switch params.act {
    case 1u: { r = max(r, 0.0); }
    case 2u: { r = 0.5 * r * (1.0 + erf_f32(r * INV_SQRT2)); }
    default: {}
  }
  return r;
}

// Row m, columns n..n+3 of C[z] (bounds-checked: rows >= M and columns >= N are not stored).
fn store_row(cbase: u32, m: u32, n: u32, v: vec4<f32>) {
  if (m >= params.M) { return; }
  let ci = cbase + m * params.ldc + n;
  if (n < params.N) { c[ci] = epilogue(v.x, n, ci); }
  if (n + 1u < params.N) { c[ci + 1u] = epilogue(v.y, n + 1u, ci + 1u); }
  if (n + 2u < params.N) { c[ci + 2u] = epilogue(v.z, n + 2u, ci + 2u); }
  if (n + 3u < params.N) { c[ci + 3u] = epilogue(v.w, n + 3u, ci + 3u); }
}

fn a1(i: u32) -> f32 { return a[i >> 2u][i & 3u]; }
fn b1(i: u32) -> f32 { return b[i >> 2u][i & 3u]; }

// Four consecutive elements starting at i; `valid` masks each. VEC loads are masked as a whole by
// valid.x: with the VEC alignment rules a quad lies wholly inside or outside the valid range.
fn a4(i: u32, valid: vec4<bool>) -> vec4<f32> {
  if (VEC) { return select(vec4<f32>(0.0), a[i >> 2u], valid.x); }
  return select(vec4<f32>(0.0), vec4<f32>(a1(i), a1(i + 1u), a1(i + 2u), a1(i + 3u)), valid);
}
fn b4(i: u32, valid: vec4<bool>) -> vec4<f32> {
  if (VEC) { return select(vec4<f32>(0.0), b[i >> 2u], valid.x); }
  return select(vec4<f32>(0.0), vec4<f32>(b1(i), b1(i + 1u), b1(i + 2u), b1(i + 3u)), valid);
}

fn lt4(base: u32, lim: u32) -> vec4<bool> {
  return vec4<u32>(base) + vec4<u32>(0u, 1u, 2u, 3u) < vec4<u32>(lim);
}

// acc + a.x*b0 + a.y*b1 + a.z*b2 + a.w*b3 as a chain of fma.
fn fma4(acc: vec4<f32>, av: vec4<f32>, b0: vec4<f32>, b1: vec4<f32>, b2: vec4<f32>,
        b3: vec4<f32>) -> vec4<f32> {
  let s = fma(vec4<f32>(av.x), b0, acc);
  return fma(vec4<f32>(av.w), b3, fma(vec4<f32>(av.z), b2, fma(vec4<f32>(av.y), b1, s)));
}

// The 4x4 block of op(A) at rows m..m+3 (m clamped by the caller), k..k+3, as rows (vec4 along k).
fn a_block(abase: u32, m: u32, k: u32) -> array<vec4<f32>, 4> {
  let p = params;
  let kv = lt4(k, p.K);
  var r: array<vec4<f32>, 4>;
  if (!TRANS_A) {
    let ml = p.M - 1u;
    r[0] = a4(abase + min(m, ml) * p.lda + k, kv);
    r[1] = a4(abase + min(m + 1u, ml) * p.lda + k, kv);
    r[2] = a4(abase + min(m + 2u, ml) * p.lda + k, kv);
    r[3] = a4(abase + min(m + 3u, ml) * p.lda + k, kv);
  } else {
    // Columns of A^T: vec4 along m at each k; then transpose in registers.
    let mv = lt4(m, p.M);
    let q0 = a4(abase + k * p.lda + m, mv & vec4<bool>(kv.x));
    let q1 = a4(abase + (k + 1u) * p.lda + m, mv & vec4<bool>(kv.y));
    let q2 = a4(abase + (k + 2u) * p.lda + m, mv & vec4<bool>(kv.z));
    let q3 = a4(abase + (k + 3u) * p.lda + m, mv & vec4<bool>(kv.w));
    r[0] = vec4<f32>(q0.x, q1.x, q2.x, q3.x);
    r[1] = vec4<f32>(q0.y, q1.y, q2.y, q3.y);
    r[2] = vec4<f32>(q0.z, q1.z, q2.z, q3.z);
    r[3] = vec4<f32>(q0.w, q1.w, q2.w, q3.w);
  }
  return r;
}

// The 4x4 block of op(B) at rows k..k+3, columns n..n+3, as rows (vec4 along n).
fn b_block(bbase: u32, k: u32, n: u32) -> array<vec4<f32>, 4> {
  let p = params;
  let kv = lt4(k, p.K);
  var r: array<vec4<f32>, 4>;
  if (!TRANS_B) {
    let nv = lt4(n, p.N);
    r[0] = b4(bbase + k * p.ldb + n, nv & vec4<bool>(kv.x));
    r[1] = b4(bbase + (k + 1u) * p.ldb + n, nv & vec4<bool>(kv.y));
    r[2] = b4(bbase + (k + 2u) * p.ldb + n, nv & vec4<bool>(kv.z));
    r[3] = b4(bbase + (k + 3u) * p.ldb + n, nv & vec4<bool>(kv.w));
  } else {
    let nl = p.N - 1u;
    let c0 = b4(bbase + min(n, nl) * p.ldb + k, kv);
    let c1 = b4(bbase + min(n + 1u, nl) * p.ldb + k, kv);
    let c2 = b4(bbase + min(n + 2u, nl) * p.ldb + k, kv);
    let c3 = b4(bbase + min(n + 3u, nl) * p.ldb + k, kv);
    r[0] = vec4<f32>(c0.x, c1.x, c2.x, c3.x);
    r[1] = vec4<f32>(c0.y, c1.y, c2.y, c3.y);
    r[2] = vec4<f32>(c0.z, c1.z, c2.z, c3.z);
    r[3] = vec4<f32>(c0.w, c1.w, c2.w, c3.w);
  }
  return r;
}

// ------------------------------------------------------------------------------------ gemm_plain

@compute @workgroup_size(8, 8)
fn gemm_plain(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let p = params;
  let m = wid.y * 64u + lid.y * 8u;
  let n = wid.x * 32u + lid.x * 4u;
  var acc0: vec4<f32>; var acc1: vec4<f32>; var acc2: vec4<f32>; var acc3: vec4<f32>;
  var acc4: vec4<f32>; var acc5: vec4<f32>; var acc6: vec4<f32>; var acc7: vec4<f32>;
  for (var t = 0u; t < p.kb; t++) {
    let abase = p.a_off + wid.z * p.a_bs + t * p.a_ts;
    let bbase = p.b_off + wid.z * p.b_bs + t * p.b_ts;
    for (var k = 0u; k < p.K; k += 4u) {
      let bb = b_block(bbase, k, n);
      let x = a_block(abase, m, k);
      acc0 = fma4(acc0, x[0], bb[0], bb[1], bb[2], bb[3]);
      acc1 = fma4(acc1, x[1], bb[0], bb[1], bb[2], bb[3]);
      acc2 = fma4(acc2, x[2], bb[0], bb[1], bb[2], bb[3]);
      acc3 = fma4(acc3, x[3], bb[0], bb[1], bb[2], bb[3]);
      let y = a_block(abase, m + 4u, k);
      acc4 = fma4(acc4, y[0], bb[0], bb[1], bb[2], bb[3]);
      acc5 = fma4(acc5, y[1], bb[0], bb[1], bb[2], bb[3]);
      acc6 = fma4(acc6, y[2], bb[0], bb[1], bb[2], bb[3]);
      acc7 = fma4(acc7, y[3], bb[0], bb[1], bb[2], bb[3]);
    }
  }
  let cbase = p.c_off + wid.z * p.c_bs;
  store_row(cbase, m, n, acc0);
  store_row(cbase, m + 1u, n, acc1);
  store_row(cbase, m + 2u, n, acc2);
  store_row(cbase, m + 3u, n, acc3);
  store_row(cbase, m + 4u, n, acc4);
  store_row(cbase, m + 5u, n, acc5);
  store_row(cbase, m + 6u, n, acc6);
  store_row(cbase, m + 7u, n, acc7);
}

// ------------------------------------------------------------------------------------ gemm_tiled

const TB: u32 = 64u;    // tile rows and columns
const TK: u32 = 16u;    // tile depth
// Shared tiles of 256 vec4, written and read as whole vec4s. A: row-major with vec4 along k
// (as_[r*4 + kq], rows r of the tile, k quads kq) or, when TRANS_A, k-major with vec4 along m
// (as_[kk*16 + mq]). B: k-major with vec4 along n (bs_[kk*16 + nq]) or, when TRANS_B, column-major
// with vec4 along k (bs_[c*4 + kq]).
var<workgroup> as_: array<vec4<f32>, 256>;
var<workgroup> bs_: array<vec4<f32>, 256>;

@compute @workgroup_size(256)
fn gemm_tiled(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let p = params;
  let m0 = wid.y * TB;
  let n0 = wid.x * TB;
  let tx = li % 16u;
  let ty = li / 16u;
  var acc0: vec4<f32>; var acc1: vec4<f32>; var acc2: vec4<f32>; var acc3: vec4<f32>;
  for (var t = 0u; t < p.kb; t++) {
    let abase = p.a_off + wid.z * p.a_bs + t * p.a_ts;
    let bbase = p.b_off + wid.z * p.b_bs + t * p.b_ts;
    for (var k0 = 0u; k0 < p.K; k0 += TK) {
      // Stage one vec4 of A and one of B per invocation.
      if (!TRANS_A) {
        let m = min(m0 + li / 4u, p.M - 1u);
        let k = k0 + (li % 4u) * 4u;
        as_[li] = a4(abase + m * p.lda + k, lt4(k, p.K));
      } else {
        let k = k0 + li / 16u;
        let m = m0 + (li % 16u) * 4u;
        as_[li] = a4(abase + k * p.lda + m, lt4(m, p.M) & vec4<bool>(k < p.K));
      }
      if (!TRANS_B) {
        let k = k0 + li / 16u;
        let n = n0 + (li % 16u) * 4u;
        bs_[li] = b4(bbase + k * p.ldb + n, lt4(n, p.N) & vec4<bool>(k < p.K));
      } else {
        let n = min(n0 + li / 4u, p.N - 1u);
        let k = k0 + (li % 4u) * 4u;
        bs_[li] = b4(bbase + n * p.ldb + k, lt4(k, p.K));
      }
      workgroupBarrier();
      for (var kq = 0u; kq < TK / 4u; kq++) {
        // Rows ty*4+i of the A tile and rows 4kq+j of the B tile, each as vec4 (k resp. n).
        var ar: array<vec4<f32>, 4>;
        if (!TRANS_A) {
          ar[0] = as_[(ty * 4u) * 4u + kq];
          ar[1] = as_[(ty * 4u + 1u) * 4u + kq];
          ar[2] = as_[(ty * 4u + 2u) * 4u + kq];
          ar[3] = as_[(ty * 4u + 3u) * 4u + kq];
        } else {
          let q0 = as_[(kq * 4u) * 16u + ty];
          let q1 = as_[(kq * 4u + 1u) * 16u + ty];
          let q2 = as_[(kq * 4u + 2u) * 16u + ty];
          let q3 = as_[(kq * 4u + 3u) * 16u + ty];
          ar[0] = vec4<f32>(q0.x, q1.x, q2.x, q3.x);
          ar[1] = vec4<f32>(q0.y, q1.y, q2.y, q3.y);
          ar[2] = vec4<f32>(q0.z, q1.z, q2.z, q3.z);
          ar[3] = vec4<f32>(q0.w, q1.w, q2.w, q3.w);
        }
        var br: array<vec4<f32>, 4>;
        if (!TRANS_B) {
          br[0] = bs_[(kq * 4u) * 16u + tx];
          br[1] = bs_[(kq * 4u + 1u) * 16u + tx];
          br[2] = bs_[(kq * 4u + 2u) * 16u + tx];
          br[3] = bs_[(kq * 4u + 3u) * 16u + tx];
        } else {
          let c0 = bs_[(tx * 4u) * 4u + kq];
          let c1 = bs_[(tx * 4u + 1u) * 4u + kq];
          let c2 = bs_[(tx * 4u + 2u) * 4u + kq];
          let c3 = bs_[(tx * 4u + 3u) * 4u + kq];
          br[0] = vec4<f32>(c0.x, c1.x, c2.x, c3.x);
          br[1] = vec4<f32>(c0.y, c1.y, c2.y, c3.y);
          br[2] = vec4<f32>(c0.z, c1.z, c2.z, c3.z);
          br[3] = vec4<f32>(c0.w, c1.w, c2.w, c3.w);
        }
        acc0 = fma4(acc0, ar[0], br[0], br[1], br[2], br[3]);
        acc1 = fma4(acc1, ar[1], br[0], br[1], br[2], br[3]);
        acc2 = fma4(acc2, ar[2], br[0], br[1], br[2], br[3]);
        acc3 = fma4(acc3, ar[3], br[0], br[1], br[2], br[3]);
      }
      workgroupBarrier();
    }
  }
  let cbase = p.c_off + wid.z * p.c_bs;
  let m = m0 + ty * 4u;
  let n = n0 + tx * 4u;
  store_row(cbase, m, n, acc0);
  store_row(cbase, m + 1u, n, acc1);
  store_row(cbase, m + 2u, n, acc2);
  store_row(cbase, m + 3u, n, acc3);
}
