// gemm_sg.wgsl: C[z] = act(alpha * sum_{t<kb} op(A[z,t]) . op(B[z,t]) + bias + beta * C[z]), f32,
// for CPU adapters with subgroups of at least 8 lanes (lavapipe). Shares Params with gemm.wgsl.
//
// Bindings (group 0): 0 a: array<vec4<f32>> (read), 1 b: array<vec4<f32>> (read),
//   2 bias: array<f32> (read; any buffer when has_bias = 0), 3 c: array<f32> (read_write; entry
//   gemm_sg_c4 binds the same buffer as c4: array<vec4<f32>>), 4 params: Params (uniform).
//   Element (m, k) of op(A[z,t]) is a[a_off + z*a_bs + t*a_ts + m*lda + k] (TRANS_A: k*lda + m);
//   element (k, n) of op(B[z,t]) is b[b_off + z*b_bs + t*b_ts + k*ldb + n] (TRANS_B: n*ldb + k);
//   element (m, n) of C[z] is c[c_off + z*c_bs + m*ldc + n]. Scalar element i of a vec4 binding is
//   a[i/4][i%4].
// Dispatch: workgroup of 8 invocations = one subgroup (lane = subgroup_invocation_id); grid
//   (ceil(N/32), ceil(M/TM), batch). Workgroup (x, y, z) computes rows [y*TM, y*TM+TM) and columns [x*32, x*32+32) of C[z].
// Tiling: lane l owns TM rows x 4 columns (one vec4 per row, TM vec4 accumulators); TM = 24, 32 or
//   40 (override; the host picks it per problem, see gemm.ts). Per k-step of 4, the workgroup's
//   TMx4 block of op(A) is loaded once (TM/8 vec4 loads per lane) and each row is handed to every
//   lane by subgroupBroadcast (a register permute); each lane loads its 4x4 block of op(B) as 4
//   vec4. No shared memory, no barriers. Rows past M and columns past N are clamped on load and
//   never stored. Taller tiles load less per multiply-add and spill more accumulators: on lavapipe
//   24, 32 and 40 rows measured the same time per row, 48 slower, so the host picks the height
//   that pads M least.
// Entries: gemm_sg stores C one float at a time (any layout); gemm_sg_c4 stores one vec4 per row and
//   lane (c_off, ldc, c_bs and N multiples of 4): each scalar store is a per-lane loop in lavapipe.
// Variants (override constants): TRANS_A, TRANS_B; VEC = true needs every vec4 load aligned
//   (K%4 = 0, lda/ldb/offsets/batch strides %4 = 0, N%4 = 0 unless TRANS_B, M%4 = 0 if TRANS_A) and
//   loads whole vec4s; VEC = false gathers scalars and zeroes k >= K (any shape).
// Numerics: f32 accumulation as chains of fma (lavapipe emits mul+add; chains keep them pipelined),
//   k in increasing order. act: 0 none, 1 relu, 2 gelu (erf, Numerical Recipes erfc, ~1.2e-7 rel).

enable subgroups;

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

// gemm_sg_c4 binds C as vec4 (binding 3 as well; no entry point uses both).
@group(0) @binding(3) var<storage, read_write> c4: array<vec4<f32>>;

override TRANS_A: bool = false;
override TRANS_B: bool = false;
override VEC: bool = true;
// Rows per tile: 24, 32 or 40 (any other value computes wrong rows; the host never sets one).
override TM: u32 = 24u;

// Accumulator arrays are sized for the tallest tile; rows past TM stay zero and unused.
const TM_MAX: u32 = 40u;
const LANES: u32 = 8u;
const INV_SQRT2: f32 = 0.70710678118654752;

fn erf4(x: vec4<f32>) -> vec4<f32> {
  let z = abs(x);
  let t = 1.0 / (1.0 + 0.5 * z);
  let p = -z * z - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (-0.18628806 +
          t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277))))))));
  let r = 1.0 - t * exp(p);
  return select(-r, r, x >= vec4<f32>(0.0));
}

// act(alpha * v + bias + beta * prev) for the four columns of one row (prev: C before the call).
fn epilogue(v: vec4<f32>, bv: vec4<f32>, prev: vec4<f32>) -> vec4<f32> {
  var r = params.alpha * v + bv;
  if (params.beta != 0.0) { r += params.beta * prev; }
  switch params.act {
    case 1u: { r = max(r, vec4<f32>(0.0)); }
    case 2u: { r = 0.5 * r * (1.0 + erf4(r * INV_SQRT2)); }
    default: {}
  }
  return r;
}

fn a1(i: u32) -> f32 { return a[i >> 2u][i & 3u]; }
fn b1(i: u32) -> f32 { return b[i >> 2u][i & 3u]; }

// Four consecutive elements of `a` starting at i; `valid` masks each (scalar path only).
fn a4(i: u32, valid: vec4<bool>) -> vec4<f32> {
  if (VEC) { return a[i >> 2u]; }
  return select(vec4<f32>(0.0), vec4<f32>(a1(i), a1(i + 1u), a1(i + 2u), a1(i + 3u)), valid);
}
fn b4(i: u32, valid: vec4<bool>) -> vec4<f32> {
  if (VEC) { return b[i >> 2u]; }
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

// Rows r..r+7 of the tile, row r+i held by lane i as x (depths k..k+3): acc[r+i] += row i . B.
fn rows8(acc: ptr<function, array<vec4<f32>, TM_MAX>>, r: u32, x: vec4<f32>, b0: vec4<f32>,
         b1: vec4<f32>, b2: vec4<f32>, b3: vec4<f32>) {
  (*acc)[r] = fma4((*acc)[r], subgroupBroadcast(x, 0u), b0, b1, b2, b3);
  (*acc)[r + 1u] = fma4((*acc)[r + 1u], subgroupBroadcast(x, 1u), b0, b1, b2, b3);
  (*acc)[r + 2u] = fma4((*acc)[r + 2u], subgroupBroadcast(x, 2u), b0, b1, b2, b3);
  (*acc)[r + 3u] = fma4((*acc)[r + 3u], subgroupBroadcast(x, 3u), b0, b1, b2, b3);
  (*acc)[r + 4u] = fma4((*acc)[r + 4u], subgroupBroadcast(x, 4u), b0, b1, b2, b3);
  (*acc)[r + 5u] = fma4((*acc)[r + 5u], subgroupBroadcast(x, 5u), b0, b1, b2, b3);
  (*acc)[r + 6u] = fma4((*acc)[r + 6u], subgroupBroadcast(x, 6u), b0, b1, b2, b3);
  (*acc)[r + 7u] = fma4((*acc)[r + 7u], subgroupBroadcast(x, 7u), b0, b1, b2, b3);
}

// Rows r..r+3 of the tile from four columns q_j (rows r..r+3 at depth k+j): acc[r+i] += row i . B.
fn quad(acc: ptr<function, array<vec4<f32>, TM_MAX>>, r: u32, q0: vec4<f32>, q1: vec4<f32>, q2: vec4<f32>,
        q3: vec4<f32>, b0: vec4<f32>, b1: vec4<f32>, b2: vec4<f32>, b3: vec4<f32>) {
  (*acc)[r] = fma4((*acc)[r], vec4<f32>(q0.x, q1.x, q2.x, q3.x), b0, b1, b2, b3);
  (*acc)[r + 1u] = fma4((*acc)[r + 1u], vec4<f32>(q0.y, q1.y, q2.y, q3.y), b0, b1, b2, b3);
  (*acc)[r + 2u] = fma4((*acc)[r + 2u], vec4<f32>(q0.z, q1.z, q2.z, q3.z), b0, b1, b2, b3);
  (*acc)[r + 3u] = fma4((*acc)[r + 3u], vec4<f32>(q0.w, q1.w, q2.w, q3.w), b0, b1, b2, b3);
}

// The tile of workgroup wid for lane `lane`: acc[i] = rows m0+i, columns n..n+3 of the sum.
fn accumulate(acc: ptr<function, array<vec4<f32>, TM_MAX>>, wid: vec3<u32>, lane: u32) {
  let p = params;
  let m0 = wid.y * TM;
  let n = wid.x * (LANES * 4u) + lane * 4u;   // this lane's first column
  let mlast = p.M - 1u;
  // Column clamps: rows of B^T are separate, so TRANS_B clamps each column; otherwise a whole vec4.
  let nv = min(n, select(p.N - 1u, ((p.N + 3u) / 4u - 1u) * 4u, !TRANS_B));
  let nc = min(vec4<u32>(n) + vec4<u32>(0u, 1u, 2u, 3u), vec4<u32>(p.N - 1u));

  // Rows of op(A) this lane loads, slot s = 0 .. TM/8-1 (slots past TM/8 are never loaded).
  // Not transposed: row m0+lane+8s (vec4 along k). Transposed: slot q = lane + 8s of the
  // 4(k) x TM/4 (quads of rows) block, depth q / (TM/4), vec4 along m.
  var arow: vec4<u32>;
  var arow4: u32;
  var acol: vec4<u32>;   // TRANS_A: depth offset of each slot
  var acol4: u32;
  if (!TRANS_A) {
    arow = min(vec4<u32>(m0 + lane) + vec4<u32>(0u, 8u, 16u, 24u), vec4<u32>(mlast));
    arow4 = min(m0 + lane + 32u, mlast);
  } else {
    let nq = TM / 4u;
    let q = vec4<u32>(lane) + vec4<u32>(0u, 8u, 16u, 24u);
    let q4 = lane + 32u;
    acol = q / vec4<u32>(nq);                       // k offset 0..3 (more: slot past the tile)
    acol4 = q4 / nq;
    let mq = vec4<u32>(m0) + (q % vec4<u32>(nq)) * 4u;   // first row of the quad
    let mq4 = m0 + (q4 % nq) * 4u;
    // VEC: M%4 = 0, so a quad is wholly in or out; clamp it to the last one. Scalar: masked below.
    arow = select(mq, min(mq, vec4<u32>(p.M - 4u)), VEC);
    arow4 = select(mq4, min(mq4, p.M - 4u), VEC);
  }

  for (var t = 0u; t < p.kb; t++) {
    let abase = p.a_off + wid.z * p.a_bs + t * p.a_ts;
    let bbase = p.b_off + wid.z * p.b_bs + t * p.b_ts;
    for (var k = 0u; k < p.K; k += 4u) {
      let kv = vec4<u32>(k, k + 1u, k + 2u, k + 3u) < vec4<u32>(p.K);
      // ---- op(B) block: bj = row k+j of op(B), columns n..n+3.
      var b0: vec4<f32>; var b1v: vec4<f32>; var b2: vec4<f32>; var b3: vec4<f32>;
      if (!TRANS_B) {
        b0 = b4(bbase + k * p.ldb + nv, vec4<bool>(kv.x));
        b1v = b4(bbase + (k + 1u) * p.ldb + nv, vec4<bool>(kv.y));
        b2 = b4(bbase + (k + 2u) * p.ldb + nv, vec4<bool>(kv.z));
        b3 = b4(bbase + (k + 3u) * p.ldb + nv, vec4<bool>(kv.w));
      } else {
        let c0 = b4(bbase + nc.x * p.ldb + k, kv);
        let c1 = b4(bbase + nc.y * p.ldb + k, kv);
        let c2 = b4(bbase + nc.z * p.ldb + k, kv);
        let c3 = b4(bbase + nc.w * p.ldb + k, kv);
        b0 = vec4<f32>(c0.x, c1.x, c2.x, c3.x);
        b1v = vec4<f32>(c0.y, c1.y, c2.y, c3.y);
        b2 = vec4<f32>(c0.z, c1.z, c2.z, c3.z);
        b3 = vec4<f32>(c0.w, c1.w, c2.w, c3.w);
      }
      if (!TRANS_A) {
        // All loads first: each is a loop over lanes in lavapipe, and FMAs placed between them
        // split the accumulators' live ranges across blocks (measured ~10 % slower).
        let x0 = a4(abase + arow.x * p.lda + k, kv);
        let x1 = a4(abase + arow.y * p.lda + k, kv);
        let x2 = a4(abase + arow.z * p.lda + k, kv);
        var x3 = vec4<f32>(0.0);
        var x4 = vec4<f32>(0.0);
        if (TM > 24u) { x3 = a4(abase + arow.w * p.lda + k, kv); }
        if (TM > 32u) { x4 = a4(abase + arow4 * p.lda + k, kv); }
        rows8(acc, 0u, x0, b0, b1v, b2, b3);
        rows8(acc, 8u, x1, b0, b1v, b2, b3);
        rows8(acc, 16u, x2, b0, b1v, b2, b3);
        if (TM > 24u) { rows8(acc, 24u, x3, b0, b1v, b2, b3); }
        if (TM > 32u) { rows8(acc, 32u, x4, b0, b1v, b2, b3); }
      } else {
        // Slot q holds rows 4*(q%(TM/4))..+3 at depth k + q/(TM/4) and lives in register q/8 of
        // lane q%8; row quad d gathers slots d, TM/4+d, TM/2+d, 3TM/4+d (depths k..k+3).
        let x0 = a4(abase + (k + acol.x) * p.lda + arow.x, vec4<bool>(k + acol.x < p.K) & lt4(arow.x, p.M));
        let x1 = a4(abase + (k + acol.y) * p.lda + arow.y, vec4<bool>(k + acol.y < p.K) & lt4(arow.y, p.M));
        let x2 = a4(abase + (k + acol.z) * p.lda + arow.z, vec4<bool>(k + acol.z < p.K) & lt4(arow.z, p.M));
        var x3 = vec4<f32>(0.0);
        var x4 = vec4<f32>(0.0);
        if (TM > 24u) {
          x3 = a4(abase + (k + acol.w) * p.lda + arow.w, vec4<bool>(k + acol.w < p.K) & lt4(arow.w, p.M));
        }
        if (TM > 32u) {
          x4 = a4(abase + (k + acol4) * p.lda + arow4, vec4<bool>(k + acol4 < p.K) & lt4(arow4, p.M));
        }
        if (TM == 24u) {
          quad(acc, 0u, subgroupBroadcast(x0, 0u), subgroupBroadcast(x0, 6u),
               subgroupBroadcast(x1, 4u), subgroupBroadcast(x2, 2u), b0, b1v, b2, b3);
          quad(acc, 4u, subgroupBroadcast(x0, 1u), subgroupBroadcast(x0, 7u),
               subgroupBroadcast(x1, 5u), subgroupBroadcast(x2, 3u), b0, b1v, b2, b3);
          quad(acc, 8u, subgroupBroadcast(x0, 2u), subgroupBroadcast(x1, 0u),
               subgroupBroadcast(x1, 6u), subgroupBroadcast(x2, 4u), b0, b1v, b2, b3);
          quad(acc, 12u, subgroupBroadcast(x0, 3u), subgroupBroadcast(x1, 1u),
               subgroupBroadcast(x1, 7u), subgroupBroadcast(x2, 5u), b0, b1v, b2, b3);
          quad(acc, 16u, subgroupBroadcast(x0, 4u), subgroupBroadcast(x1, 2u),
               subgroupBroadcast(x2, 0u), subgroupBroadcast(x2, 6u), b0, b1v, b2, b3);
          quad(acc, 20u, subgroupBroadcast(x0, 5u), subgroupBroadcast(x1, 3u),
               subgroupBroadcast(x2, 1u), subgroupBroadcast(x2, 7u), b0, b1v, b2, b3);
        } else if (TM == 32u) {
          quad(acc, 0u, subgroupBroadcast(x0, 0u), subgroupBroadcast(x1, 0u),
               subgroupBroadcast(x2, 0u), subgroupBroadcast(x3, 0u), b0, b1v, b2, b3);
          quad(acc, 4u, subgroupBroadcast(x0, 1u), subgroupBroadcast(x1, 1u),
               subgroupBroadcast(x2, 1u), subgroupBroadcast(x3, 1u), b0, b1v, b2, b3);
          quad(acc, 8u, subgroupBroadcast(x0, 2u), subgroupBroadcast(x1, 2u),
               subgroupBroadcast(x2, 2u), subgroupBroadcast(x3, 2u), b0, b1v, b2, b3);
          quad(acc, 12u, subgroupBroadcast(x0, 3u), subgroupBroadcast(x1, 3u),
               subgroupBroadcast(x2, 3u), subgroupBroadcast(x3, 3u), b0, b1v, b2, b3);
          quad(acc, 16u, subgroupBroadcast(x0, 4u), subgroupBroadcast(x1, 4u),
               subgroupBroadcast(x2, 4u), subgroupBroadcast(x3, 4u), b0, b1v, b2, b3);
          quad(acc, 20u, subgroupBroadcast(x0, 5u), subgroupBroadcast(x1, 5u),
               subgroupBroadcast(x2, 5u), subgroupBroadcast(x3, 5u), b0, b1v, b2, b3);
          quad(acc, 24u, subgroupBroadcast(x0, 6u), subgroupBroadcast(x1, 6u),
               subgroupBroadcast(x2, 6u), subgroupBroadcast(x3, 6u), b0, b1v, b2, b3);
          quad(acc, 28u, subgroupBroadcast(x0, 7u), subgroupBroadcast(x1, 7u),
               subgroupBroadcast(x2, 7u), subgroupBroadcast(x3, 7u), b0, b1v, b2, b3);
        } else {
          quad(acc, 0u, subgroupBroadcast(x0, 0u), subgroupBroadcast(x1, 2u),
               subgroupBroadcast(x2, 4u), subgroupBroadcast(x3, 6u), b0, b1v, b2, b3);
          quad(acc, 4u, subgroupBroadcast(x0, 1u), subgroupBroadcast(x1, 3u),
               subgroupBroadcast(x2, 5u), subgroupBroadcast(x3, 7u), b0, b1v, b2, b3);
          quad(acc, 8u, subgroupBroadcast(x0, 2u), subgroupBroadcast(x1, 4u),
               subgroupBroadcast(x2, 6u), subgroupBroadcast(x4, 0u), b0, b1v, b2, b3);
          quad(acc, 12u, subgroupBroadcast(x0, 3u), subgroupBroadcast(x1, 5u),
               subgroupBroadcast(x2, 7u), subgroupBroadcast(x4, 1u), b0, b1v, b2, b3);
          quad(acc, 16u, subgroupBroadcast(x0, 4u), subgroupBroadcast(x1, 6u),
               subgroupBroadcast(x3, 0u), subgroupBroadcast(x4, 2u), b0, b1v, b2, b3);
          quad(acc, 20u, subgroupBroadcast(x0, 5u), subgroupBroadcast(x1, 7u),
               subgroupBroadcast(x3, 1u), subgroupBroadcast(x4, 3u), b0, b1v, b2, b3);
          quad(acc, 24u, subgroupBroadcast(x0, 6u), subgroupBroadcast(x2, 0u),
               subgroupBroadcast(x3, 2u), subgroupBroadcast(x4, 4u), b0, b1v, b2, b3);
          quad(acc, 28u, subgroupBroadcast(x0, 7u), subgroupBroadcast(x2, 1u),
               subgroupBroadcast(x3, 3u), subgroupBroadcast(x4, 5u), b0, b1v, b2, b3);
          quad(acc, 32u, subgroupBroadcast(x1, 0u), subgroupBroadcast(x2, 2u),
               subgroupBroadcast(x3, 4u), subgroupBroadcast(x4, 6u), b0, b1v, b2, b3);
          quad(acc, 36u, subgroupBroadcast(x1, 1u), subgroupBroadcast(x2, 3u),
               subgroupBroadcast(x3, 5u), subgroupBroadcast(x4, 7u), b0, b1v, b2, b3);
        }
      }
    }
  }
}

// What both entries store: the tile's sums in an array the store loop indexes (a copy, so the
// accumulators keep constant indices, and registers, in the k loop), and where they go.
struct Tile {
  o: array<vec4<f32>, TM_MAX>,
  m0: u32,          // first row
  n: u32,           // this lane's first column
  bv: vec4<f32>,    // this lane's four bias values (zeros without bias)
  cbase: u32,       // element offset of C[z]
}

fn tile(wid: vec3<u32>, lane: u32) -> Tile {
  var acc: array<vec4<f32>, TM_MAX>;
  accumulate(&acc, wid, lane);
  let n = wid.x * (LANES * 4u) + lane * 4u;
  var bv = vec4<f32>(0.0);
  if (params.has_bias != 0u) {
    for (var j = 0u; j < 4u; j++) { bv[j] = bias[params.bias_off + min(n + j, params.N - 1u)]; }
  }
  return Tile(acc, wid.y * TM, n, bv, params.c_off + wid.z * params.c_bs);
}

@compute @workgroup_size(8)
fn gemm_sg(@builtin(workgroup_id) wid: vec3<u32>, @builtin(subgroup_invocation_id) lane: u32) {
  let t = tile(wid, lane);
  let p = params;
  for (var i = 0u; i < TM; i++) {
    let m = t.m0 + i;
    if (m >= p.M) { break; }
    let ci = t.cbase + m * p.ldc + t.n;
    var prev = vec4<f32>(0.0);
    if (p.beta != 0.0) {
      for (var j = 0u; j < 4u; j++) { if (t.n + j < p.N) { prev[j] = c[ci + j]; } }
    }
    let r = epilogue(t.o[i], t.bv, prev);
    for (var j = 0u; j < 4u; j++) {
      if (t.n + j < p.N) { c[ci + j] = r[j]; }
    }
  }
}

// gemm_sg with one vec4 store per row: needs c_off, ldc, c_bs and N all multiples of 4, so each
// lane's four columns are one aligned vec4, wholly inside or outside C.
@compute @workgroup_size(8)
fn gemm_sg_c4(@builtin(workgroup_id) wid: vec3<u32>, @builtin(subgroup_invocation_id) lane: u32) {
  let t = tile(wid, lane);
  let p = params;
  if (t.n >= p.N) { return; }
  for (var i = 0u; i < TM; i++) {
    let m = t.m0 + i;
    if (m >= p.M) { break; }
    let ci = (t.cbase + m * p.ldc + t.n) >> 2u;
    var prev = vec4<f32>(0.0);
    if (p.beta != 0.0) { prev = c4[ci]; }
    c4[ci] = epilogue(t.o[i], t.bv, prev);
  }
}
