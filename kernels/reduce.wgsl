// reduce.wgsl: sums over the middle axis of a tensor viewed as (A, R, I) -> (A, I), scaled.
//
// Bindings (group 0): 0 x (read), 1 out (read_write), 2 params: Params (uniform).
// Entries:
//   sum_mid:  one invocation per output element (A*I of them); loops over R with four partial
//             accumulators (no barriers). For many outputs and any R (bias grads, channel sums).
//   sum_wide: one workgroup of WG invocations per output element; each invocation strides over R,
//             then a shared-memory tree reduction (log2(WG) barriers). For few outputs and large R
//             (scalar losses, per-class sums).
//   sum_wide4: sum_wide for contiguous rows (I = 1) read as vec4: needs R % 4 = 0 and x_base % 4 = 0
//             (binding 0 is then viewed as x4: array<vec4<f32>>, its size a multiple of 16 bytes).
// Dispatch: sum_mid: 1-D over ceil(A*I/WG) workgroups folded into (x, y); sum_wide/sum_wide4: one
//   workgroup per output, folded the same way. WG is chosen per adapter by the host: CPU drivers
//   run each barrier as a switch between the SIMD groups of a workgroup, so there the wide entries
//   use one SIMD group (WG = 8); GPUs use 256.
// Splitting: x_base / out_base are element offsets of the first element within the bound ranges, so
//   a tensor over the binding limit is reduced in pieces (a range of A, or of R for one a); with
//   accumulate = 1 a piece adds its sum to what `out` holds (the R pieces after the first).
// Numerics: f32 accumulation; sum_mid keeps 4 interleaved partial sums; sum_wide sums blocks of
//   CHUNK values per lane (sum_wide4: CHUNK vec4s, four partial sums per lane), groups of CHUNK
//   blocks, then lane totals, then a pairwise tree across lanes, so long sums stay near f32
//   rounding.

struct Params {
  A: u32,
  R: u32,
  I: u32,
  scale: f32,       // out = scale * sum (+ out when accumulate = 1)
  x_base: u32,      // element of x where this piece's (a=0, r=0, i=0) lies
  out_base: u32,    // element of out where this piece's (a=0, i=0) lies
  accumulate: u32,  // 1: add to out, 0: overwrite
}

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(0) var<storage, read> x4: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<uniform> params: Params;

override WG: u32 = 256u;
override CHUNK: u32 = 64u;

var<workgroup> partial: array<f32, WG>;

@compute @workgroup_size(WG)
fn sum_mid(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_id) lid: vec3<u32>) {
  let o = (wid.y * nwg.x + wid.x) * WG + lid.x;
  if (o >= params.A * params.I) { return; }
  let a = o / params.I;
  let i = o % params.I;
  let R = params.R;
  let I = params.I;
  var base = params.x_base + a * R * I + i;
  var s0 = 0.0; var s1 = 0.0; var s2 = 0.0; var s3 = 0.0;
  var r = 0u;
  for (; r + 4u <= R; r = r + 4u) {
    s0 = s0 + x[base];
    s1 = s1 + x[base + I];
    s2 = s2 + x[base + 2u * I];
    s3 = s3 + x[base + 3u * I];
    base = base + 4u * I;
  }
  for (; r < R; r = r + 1u) {
    s0 = s0 + x[base];
    base = base + I;
  }
  var v = params.scale * ((s0 + s1) + (s2 + s3));
  if (params.accumulate == 1u) { v = v + out[params.out_base + o]; }
  out[params.out_base + o] = v;
}

// The wide entries' end: the lanes' sums meet in a pairwise tree over `partial` (log2(WG)
// barriers); lane 0 writes output o, scaled (and accumulated when asked).
fn finish_wide(lane: u32, s: f32, o: u32, valid: bool) {
  partial[lane] = s;
  workgroupBarrier();
  for (var stride = WG / 2u; stride > 0u; stride = stride / 2u) {
    if (lane < stride) {
      partial[lane] = partial[lane] + partial[lane + stride];
    }
    workgroupBarrier();
  }
  if (valid && lane == 0u) {
    var v = params.scale * partial[0];
    if (params.accumulate == 1u) { v = v + out[params.out_base + o]; }
    out[params.out_base + o] = v;
  }
}

@compute @workgroup_size(WG)
fn sum_wide(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_id) lid: vec3<u32>) {
  let o = wid.y * nwg.x + wid.x;
  let valid = o < params.A * params.I;
  var s = 0.0;
  if (valid) {
    let a = o / params.I;
    let i = o % params.I;
    let base = params.x_base + a * params.R * params.I + i;
    // Blocked lane sum: sums of CHUNK values are summed in groups of CHUNK, whose sums are added
    // to the lane total, so no accumulator takes more than max(CHUNK, R/(WG*CHUNK^2)) additions.
    // (Compensated summation is not used: drivers that treat float math as reassociable, e.g.
    // Mesa's NIR, erase it.)
    let step = WG * CHUNK;
    for (var r00 = lid.x; r00 < params.R; r00 = r00 + step * CHUNK) {
      var m = 0.0;
      let r01 = min(r00 + step * CHUNK, params.R);
      for (var r0 = r00; r0 < r01; r0 = r0 + step) {
        var c = 0.0;
        let r1 = min(r0 + step, params.R);
        for (var r = r0; r < r1; r = r + WG) {
          c = c + x[base + r * params.I];
        }
        m = m + c;
      }
      s = s + m;
    }
  }
  finish_wide(lid.x, s, o, valid);
}

@compute @workgroup_size(WG)
fn sum_wide4(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
             @builtin(local_invocation_id) lid: vec3<u32>) {
  let o = wid.y * nwg.x + wid.x;
  let valid = o < params.A;
  var s = vec4<f32>(0.0);
  if (valid) {
    let R4 = params.R / 4u;
    let base = (params.x_base + o * params.R) / 4u;
    let step = WG * CHUNK;
    for (var r00 = lid.x; r00 < R4; r00 = r00 + step * CHUNK) {
      var m = vec4<f32>(0.0);
      let r01 = min(r00 + step * CHUNK, R4);
      for (var r0 = r00; r0 < r01; r0 = r0 + step) {
        var c = vec4<f32>(0.0);
        let r1 = min(r0 + step, R4);
        for (var r = r0; r < r1; r = r + WG) {
          c = c + x4[base + r];
        }
        m = m + c;
      }
      s = s + m;
    }
  }
  finish_wide(lid.x, (s.x + s.y) + (s.z + s.w), o, valid);
}
