// loss.wgsl: SAM-LST training loss (spec §10) on logits x (B, C, H, W) and integer labels (B, H, W):
//   total = (1-lambda)*CE + lambda*Dice, CE = mean over B*H*W of -log softmax(x)[label],
//   Dice = mean_c (1 - D_c), D_c = (2*sum p_c t_c + s) / (sum p_c^2 + sum t_c^2 + s), p = softmax
//   over channels, t_c = one-hot(label), sums over the whole batch and all pixels jointly.
//
// Entries and bindings (group 0; the uniform `Params` follows the storage bindings):
//   loss_stats: 0 x (read)  1 labels (read, i32)  2 partials (read_write)
//     Per pixel: max-subtracted softmax; each invocation accumulates one row of ROW = 2 + 3*CLASSES
//     sums over its pixels: [CE sum, invalid-label count, inter_c (sum p_c t_c), psq_c (sum p_c^2),
//     cnt_c (sum t_c^2)]. The workgroup stores the rows in shared memory (one barrier) and lanes
//     j < ROW each sum column j over the WG rows in a fixed order, writing partials[(part_base +
//     block)*ROW + j]. No atomics: the result does not depend on scheduling.
//   loss_final: 0 parts_in (read)  1 total  2 ce  3 dice  4 coef  5 nbad (all read_write)
//     One workgroup. Lane j < ROW sums column j of the n_parts partial rows (blocks of 64 rows,
//     then block totals); lane 0 forms CE, Dice, total; lanes c < CLASSES write the Dice-gradient
//     coefficients coef[c] = -(lambda/C)*2/den_c and coef[C+c] = (lambda/C)*2*(2*inter_c+s)/den_c^2
//     (den_c = psq_c + cnt_c + s), so dLoss_dice/dp_c = coef[c]*t_c + coef[C+c]*p_c.
//     Any label outside [0, CLASSES) makes total, ce, dice and every coef NaN and nbad > 0.
//   loss_grad: 0 x (read)  1 labels (read)  2 coef (read)  3 gup (read, 1 elem: upstream grad of
//     total)  4 dx (read_write). dx_c = gup * ((1-lambda)/N*(p_c - t_c) + p_c*(u_c - sum_k p_k u_k)),
//     u_k = coef[k]*t_k + coef[C+k]*p_k (softmax Jacobian through both terms).
// Dispatch: loss_stats and loss_grad: 1-D over blocks of WG*PPT pixels (pixel = block*WG*PPT +
//   k*WG + lane, k < PPT), folded into (x, y); loss_grad loads the 2*CLASSES coefficients once per
//   invocation. loss_final: 1 workgroup.
//   Batches over the binding limit are split by the host: each dispatch covers whole images, and
//   x_base / l_base / d_base are element offsets of that chunk inside the (aligned) bindings.
// Numerics: f32; softmax and log-sum-exp subtract the per-pixel max; CE = log(sum e) - (x_l - max).
// Override constants: WG (workgroup size, >= ROW), PPT (pixels per invocation),
//   CLASSES (class count C <= MAXC; specialising it unrolls the per-class loops so the per-pixel
//   values and the ROW accumulators stay in registers).

struct Params {
  hw: u32,          // H*W
  pixels: u32,      // pixels covered by this dispatch
  x_base: u32,      // element offset of the chunk in the x binding
  l_base: u32,      // element offset in the labels binding
  d_base: u32,      // element offset in the dx binding
  part_base: u32,   // first partial row written by this dispatch (loss_stats)
  n_parts: u32,     // number of partial rows (loss_final)
  inv_count: f32,   // 1 / (B*H*W)
  lambda: f32,      // Dice weight
  smoothing: f32,   // Dice smoothing
}

override WG: u32 = 64u;
override PPT: u32 = 16u;
override CLASSES: u32 = 9u;
override ROW: u32 = 2u + 3u * CLASSES;
const MAXC: u32 = 16u;
const MAXROW: u32 = 50u; // 2 + 3*MAXC

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> labels: array<i32>;
@group(0) @binding(2) var<storage, read_write> partials: array<f32>;
@group(0) @binding(3) var<uniform> params: Params;

@group(0) @binding(0) var<storage, read> parts_in: array<f32>;
@group(0) @binding(1) var<storage, read_write> total: array<f32>;
@group(0) @binding(2) var<storage, read_write> ce: array<f32>;
@group(0) @binding(3) var<storage, read_write> dice: array<f32>;
@group(0) @binding(4) var<storage, read_write> coef: array<f32>;
@group(0) @binding(5) var<storage, read_write> nbad: array<f32>;
@group(0) @binding(6) var<uniform> params_f: Params;

@group(0) @binding(2) var<storage, read> coef_in: array<f32>;
@group(0) @binding(3) var<storage, read> gup: array<f32>;
@group(0) @binding(4) var<storage, read_write> dx: array<f32>;
@group(0) @binding(5) var<uniform> params_g: Params;

var<workgroup> red: array<f32, WG * ROW>;

// A quiet NaN. `k` is any runtime value: WGSL rejects NaN in constant expressions.
fn nan_f32(k: u32) -> f32 {
  return bitcast<f32>(0x7fc00000u | (k & 0u));
}

@compute @workgroup_size(WG)
fn loss_stats(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_id) lid: vec3<u32>) {
  let blk = wid.y * nwg.x + wid.x;
  let hw = params.hw;
  var acc: array<f32, MAXROW>;
  for (var j = 0u; j < ROW; j = j + 1u) { acc[j] = 0.0; }
  for (var k = 0u; k < PPT; k = k + 1u) {
    let q = blk * WG * PPT + k * WG + lid.x;
    if (q < params.pixels) {
      let img = q / hw;
      let pix = q - img * hw;
      let base = params.x_base + img * CLASSES * hw + pix;
      var d: array<f32, MAXC>;
      for (var c = 0u; c < CLASSES; c = c + 1u) { d[c] = x[base + c * hw]; }
      var m = d[0];
      for (var c = 1u; c < CLASSES; c = c + 1u) { m = max(m, d[c]); }
      var e: array<f32, MAXC>;
      var s = 0.0;
      for (var c = 0u; c < CLASSES; c = c + 1u) {
        d[c] = d[c] - m;
        e[c] = exp(d[c]);
        s = s + e[c];
      }
      let inv = 1.0 / s;
      let ls = log(s);
      let lab = labels[params.l_base + q];
      let valid = lab >= 0 && lab < i32(CLASSES);
      acc[1] = acc[1] + select(1.0, 0.0, valid);
      for (var c = 0u; c < CLASSES; c = c + 1u) {
        let p = e[c] * inv;
        acc[2u + CLASSES + c] = acc[2u + CLASSES + c] + p * p;
        if (i32(c) == lab) {
          acc[0] = acc[0] + (ls - d[c]);
          acc[2u + c] = acc[2u + c] + p;
          acc[2u + 2u * CLASSES + c] = acc[2u + 2u * CLASSES + c] + 1.0;
        }
      }
    }
  }
  for (var j = 0u; j < ROW; j = j + 1u) { red[lid.x * ROW + j] = acc[j]; }
  workgroupBarrier();
  if (lid.x < ROW && blk * WG * PPT < params.pixels) {
    var s0 = 0.0; var s1 = 0.0; var s2 = 0.0; var s3 = 0.0;
    var t = 0u;
    for (; t + 4u <= WG; t = t + 4u) {
      s0 = s0 + red[t * ROW + lid.x];
      s1 = s1 + red[(t + 1u) * ROW + lid.x];
      s2 = s2 + red[(t + 2u) * ROW + lid.x];
      s3 = s3 + red[(t + 3u) * ROW + lid.x];
    }
    for (; t < WG; t = t + 1u) { s0 = s0 + red[t * ROW + lid.x]; }
    partials[(params.part_base + blk) * ROW + lid.x] = (s0 + s1) + (s2 + s3);
  }
}

@compute @workgroup_size(WG)
fn loss_final(@builtin(local_invocation_id) lid: vec3<u32>) {
  let j = lid.x;
  if (j < ROW) {
    var tot = 0.0;
    for (var r0 = 0u; r0 < params_f.n_parts; r0 = r0 + 64u) {
      var blk = 0.0;
      let r1 = min(r0 + 64u, params_f.n_parts);
      for (var r = r0; r < r1; r = r + 1u) { blk = blk + parts_in[r * ROW + j]; }
      tot = tot + blk;
    }
    red[j] = tot;
  }
  workgroupBarrier();
  let s = params_f.smoothing;
  let lam = params_f.lambda;
  let bad = red[1] > 0.0;
  let kc = lam / f32(CLASSES);
  if (j < CLASSES) {
    let inter = red[2u + j];
    let den = red[2u + CLASSES + j] + red[2u + 2u * CLASSES + j] + s;
    coef[j] = select(-kc * 2.0 / den, nan_f32(params_f.n_parts), bad);
    coef[CLASSES + j] = select(kc * 2.0 * (2.0 * inter + s) / (den * den), nan_f32(params_f.n_parts), bad);
  }
  if (j == 0u) {
    var dsum = 0.0;
    for (var c = 0u; c < CLASSES; c = c + 1u) {
      let inter = red[2u + c];
      let den = red[2u + CLASSES + c] + red[2u + 2u * CLASSES + c] + s;
      dsum = dsum + (1.0 - (2.0 * inter + s) / den);
    }
    let ce_v = red[0] * params_f.inv_count;
    let dice_v = dsum / f32(CLASSES);
    ce[0] = select(ce_v, nan_f32(params_f.n_parts), bad);
    dice[0] = select(dice_v, nan_f32(params_f.n_parts), bad);
    total[0] = select((1.0 - lam) * ce_v + lam * dice_v, nan_f32(params_f.n_parts), bad);
    nbad[0] = red[1];
  }
}

@compute @workgroup_size(WG)
fn loss_grad(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
             @builtin(local_invocation_id) lid: vec3<u32>) {
  let blk = wid.y * nwg.x + wid.x;
  let P = params_g;
  if (blk * WG * PPT >= P.pixels) { return; }
  // Per-invocation copies of the coefficients: loaded once, used for PPT pixels.
  var ca: array<f32, MAXC>;
  var cb: array<f32, MAXC>;
  for (var c = 0u; c < CLASSES; c = c + 1u) {
    ca[c] = coef_in[c];
    cb[c] = coef_in[CLASSES + c];
  }
  let g = gup[0];
  let w = (1.0 - P.lambda) * P.inv_count;
  let hw = P.hw;
  for (var k = 0u; k < PPT; k = k + 1u) {
    let q = blk * WG * PPT + k * WG + lid.x;
    if (q < P.pixels) {
      let img = q / hw;
      let pix = q - img * hw;
      let off = img * CLASSES * hw + pix;
      let xb = P.x_base + off;
      let db = P.d_base + off;
      var p: array<f32, MAXC>;
      for (var c = 0u; c < CLASSES; c = c + 1u) { p[c] = x[xb + c * hw]; }
      var m = p[0];
      for (var c = 1u; c < CLASSES; c = c + 1u) { m = max(m, p[c]); }
      var s = 0.0;
      for (var c = 0u; c < CLASSES; c = c + 1u) {
        p[c] = exp(p[c] - m);
        s = s + p[c];
      }
      let inv = 1.0 / s;
      let lab = labels[P.l_base + q];
      var u: array<f32, MAXC>;
      var su = 0.0;
      for (var c = 0u; c < CLASSES; c = c + 1u) {
        p[c] = p[c] * inv;
        let t = select(0.0, 1.0, i32(c) == lab);
        u[c] = ca[c] * t + cb[c] * p[c];
        su = su + p[c] * u[c];
      }
      for (var c = 0u; c < CLASSES; c = c + 1u) {
        let t = select(0.0, 1.0, i32(c) == lab);
        dx[db + c * hw] = g * (w * (p[c] - t) + p[c] * (u[c] - su));
      }
    }
  }
}
