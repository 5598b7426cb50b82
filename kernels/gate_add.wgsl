// gate_add.wgsl: fused sigmoid gate out = g*a + (1-g)*b, g = sigmoid(alpha[0]) read on the GPU
// (no host round trip), and its fused backward d_b = (1-g)*dy, d_a = g*dy (optional: the SAM
// embedding a is frozen), d_alpha = g(1-g) * sum(dy*(a-b)) via per-workgroup partial sums.
//
// Bindings (group 0), per entry (the uniform `params: Params` always follows the storage):
//   gate_fwd[4]:      0 alpha (read, 1 elem)  1 a  2 b  3 out (read_write)
//   gate_bwd[4]:      0 alpha  1 dy  2 a  3 b  4 db (read_write)  5 partials (read_write)
//   gate_bwd_da[4]:   as gate_bwd plus 6 da (read_write)
//   gate_dalpha:      0 alpha  1 partials (read)  2 dalpha (read_write, 1 elem)
// The `4` entries view a, b, dy, out, da, db as array<vec4<f32>> (n % 4 == 0 only; params.n counts
// vec4s). Flat tensors larger than one binding are processed in chunks by the host; each chunk is
// bound at an aligned offset, so element 0 of every binding is the chunk's first element.
// Dispatch: fwd: 1-D, one element (vec4) per invocation, workgroups folded into (x, y) (linear id =
//   (wid.y * nwg.x + wid.x) * WG + lid.x). bwd: 1-D over blocks of WG*ITEMS elements (vec4s); each
//   invocation handles ITEMS of them strided by WG and accumulates dy*(a-b) in f32. Partial sums:
//   TREE = 1 (GPUs): a shared-memory tree per workgroup (log2(WG) barriers), lane 0 writes
//   partials[p_base + block]; TREE = 0 (CPU adapters, where a barrier is a coroutine switch): no
//   barriers, lane l writes partials[p_base + block*WG + l]. gate_dalpha: one workgroup; lane l sums
//   partials l, l+WG, ... in order, then a pairwise tree. Deterministic (no atomics): the result
//   does not depend on scheduling.
// Numerics: f32; sigmoid evaluated on -|alpha| (no overflow); out uses g*a + (1-g)*b like PyTorch.
// Override constants: WG (workgroup size, power of two), ITEMS (elements per invocation in bwd),
//   TREE (partial-sum mode of the bwd entries, see above).

struct Params {
  n: u32,        // elements (or vec4s for the *4 entries) in this chunk; gate_dalpha: partial count
  p_base: u32,   // bwd: index of this chunk's first partial sum
}

override WG: u32 = 256u;
override ITEMS: u32 = 8u;
override TREE: u32 = 1u;

@group(0) @binding(0) var<storage, read> alpha: array<f32>;

// gate_fwd
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
@group(0) @binding(4) var<uniform> params: Params;
// gate_fwd4
@group(0) @binding(1) var<storage, read> a4: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> b4: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> out4: array<vec4<f32>>;

// gate_bwd / gate_bwd_da
@group(0) @binding(1) var<storage, read> dy: array<f32>;
@group(0) @binding(2) var<storage, read> ga: array<f32>;
@group(0) @binding(3) var<storage, read> gb: array<f32>;
@group(0) @binding(4) var<storage, read_write> db: array<f32>;
@group(0) @binding(5) var<storage, read_write> partials: array<f32>;
@group(0) @binding(6) var<storage, read_write> da: array<f32>;
@group(0) @binding(6) var<uniform> params_b: Params;
@group(0) @binding(7) var<uniform> params_ba: Params;
// gate_bwd4 / gate_bwd_da4
@group(0) @binding(1) var<storage, read> dy4: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> ga4: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> gb4: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> db4: array<vec4<f32>>;
@group(0) @binding(6) var<storage, read_write> da4: array<vec4<f32>>;

// gate_dalpha
@group(0) @binding(1) var<storage, read> parts_in: array<f32>;
@group(0) @binding(2) var<storage, read_write> dalpha: array<f32>;
@group(0) @binding(3) var<uniform> params_d: Params;

var<workgroup> red: array<f32, WG>;

fn sigmoid_f32(v: f32) -> f32 {
  let e = exp(-abs(v));
  return select(e / (1.0 + e), 1.0 / (1.0 + e), v >= 0.0);
}

fn linear_id(wid: vec3<u32>, nwg: vec3<u32>, lid: vec3<u32>) -> u32 {
  return (wid.y * nwg.x + wid.x) * WG + lid.x;
}

@compute @workgroup_size(WG)
fn gate_fwd(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_id) lid: vec3<u32>) {
  let i = linear_id(wid, nwg, lid);
  if (i >= params.n) { return; }
  let g = sigmoid_f32(alpha[0]);
  out[i] = g * a[i] + (1.0 - g) * b[i];
}

@compute @workgroup_size(WG)
fn gate_fwd4(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
             @builtin(local_invocation_id) lid: vec3<u32>) {
  let i = linear_id(wid, nwg, lid);
  if (i >= params.n) { return; }
  let g = sigmoid_f32(alpha[0]);
  out4[i] = g * a4[i] + (1.0 - g) * b4[i];
}

// Stores this invocation's share of sum(dy*(a-b)) for block `blk` of a chunk of n items.
// TREE == 1: the workgroup tree-reduces (log2(WG) barriers) and lane 0 writes partials[p_base + blk].
// TREE == 0: no barriers; every lane writes partials[p_base + blk*WG + lane] (WG partials per block).
// Only blocks that hold at least one item write (folded grids may have extra workgroups).
fn store_partial(s: f32, l: u32, blk: u32, n: u32, p_base: u32) {
  let live = blk * WG * ITEMS < n;
  if (TREE == 0u) {
    if (live) { partials[p_base + blk * WG + l] = s; }
    return;
  }
  red[l] = s;
  workgroupBarrier();
  for (var st = WG / 2u; st > 0u; st = st / 2u) {
    if (l < st) { red[l] = red[l] + red[l + st]; }
    workgroupBarrier();
  }
  if (l == 0u && live) { partials[p_base + blk] = red[0]; }
}

@compute @workgroup_size(WG)
fn gate_bwd(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_id) lid: vec3<u32>) {
  let blk = wid.y * nwg.x + wid.x;
  let g = sigmoid_f32(alpha[0]);
  let h = 1.0 - g;
  let n = params_b.n;
  let i0 = blk * WG * ITEMS + lid.x;
  var s = 0.0;
  for (var k = 0u; k < ITEMS; k = k + 1u) {
    let i = i0 + k * WG;
    if (i < n) {
      let d = dy[i];
      let av = ga[i];
      let bv = gb[i];
      db[i] = h * d;
      s = s + d * (av - bv);
    }
  }
  store_partial(s, lid.x, blk, n, params_b.p_base);
}

@compute @workgroup_size(WG)
fn gate_bwd_da(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_id) lid: vec3<u32>) {
  let blk = wid.y * nwg.x + wid.x;
  let g = sigmoid_f32(alpha[0]);
  let h = 1.0 - g;
  let n = params_ba.n;
  let i0 = blk * WG * ITEMS + lid.x;
  var s = 0.0;
  for (var k = 0u; k < ITEMS; k = k + 1u) {
    let i = i0 + k * WG;
    if (i < n) {
      let d = dy[i];
      let av = ga[i];
      let bv = gb[i];
      db[i] = h * d;
      da[i] = g * d;
      s = s + d * (av - bv);
    }
  }
  store_partial(s, lid.x, blk, n, params_ba.p_base);
}

fn hsum(v: vec4<f32>) -> f32 {
  return (v.x + v.y) + (v.z + v.w);
}

@compute @workgroup_size(WG)
fn gate_bwd4(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
             @builtin(local_invocation_id) lid: vec3<u32>) {
  let blk = wid.y * nwg.x + wid.x;
  let g = sigmoid_f32(alpha[0]);
  let h = 1.0 - g;
  let n = params_b.n;
  let i0 = blk * WG * ITEMS + lid.x;
  var s = vec4<f32>(0.0);
  for (var k = 0u; k < ITEMS; k = k + 1u) {
    let i = i0 + k * WG;
    if (i < n) {
      let d = dy4[i];
      let av = ga4[i];
      let bv = gb4[i];
      db4[i] = h * d;
      s = s + d * (av - bv);
    }
  }
  store_partial(hsum(s), lid.x, blk, n, params_b.p_base);
}

@compute @workgroup_size(WG)
fn gate_bwd_da4(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_id) lid: vec3<u32>) {
  let blk = wid.y * nwg.x + wid.x;
  let g = sigmoid_f32(alpha[0]);
  let h = 1.0 - g;
  let n = params_ba.n;
  let i0 = blk * WG * ITEMS + lid.x;
  var s = vec4<f32>(0.0);
  for (var k = 0u; k < ITEMS; k = k + 1u) {
    let i = i0 + k * WG;
    if (i < n) {
      let d = dy4[i];
      let av = ga4[i];
      let bv = gb4[i];
      db4[i] = h * d;
      da4[i] = g * d;
      s = s + d * (av - bv);
    }
  }
  store_partial(hsum(s), lid.x, blk, n, params_ba.p_base);
}

// dalpha[0] = g(1-g) * sum(partials[0..n)); one workgroup.
@compute @workgroup_size(WG)
fn gate_dalpha(@builtin(local_invocation_id) lid: vec3<u32>) {
  var s = 0.0;
  for (var i = lid.x; i < params_d.n; i = i + WG) {
    s = s + parts_in[i];
  }
  red[lid.x] = s;
  workgroupBarrier();
  for (var st = WG / 2u; st > 0u; st = st / 2u) {
    if (lid.x < st) { red[lid.x] = red[lid.x] + red[lid.x + st]; }
    workgroupBarrier();
  }
  if (lid.x == 0u) {
    let g = sigmoid_f32(alpha[0]);
    dalpha[0] = g * (1.0 - g) * red[0];
  }
}
