// adamw.wgsl: in-place AdamW update of one flat parameter (PyTorch torch.optim.AdamW, single-tensor
// path, amsgrad=False):
//   p = p * (1 - lr*wd);  m = b1*m + (1-b1)*g;  v = b2*v + (1-b2)*g*g;
//   p = p - step_size * m / (sqrt(v) / sqrt(1 - b2^t) + eps),  step_size = lr / (1 - b1^t).
// Scalars that PyTorch forms in double on the host (1 - lr*wd, 1 - b1, 1 - b2, step_size,
// sqrt(1 - b2^t)) come in the uniform, rounded once to f32, so the f32 arithmetic matches.
//
// Bindings (group 0): 0 p (read_write)  1 g (read)  2 m (read_write)  3 v (read_write)
//   4 params: Params (uniform). Large parameters are updated in flat chunks, each bound at an
//   aligned offset (element 0 of every binding is the chunk's first element).
// Dispatch: 1-D, one element per invocation, WG per workgroup, folded into (x, y): linear index
//   = (wid.y * num_workgroups.x + wid.x) * WG + lid.x, bounds-checked against params.n.
// Numerics: f32 throughout, same operation order as PyTorch's _single_tensor_adamw.
// Override constants: WG (workgroup size).

struct Params {
  n: u32,            // elements in this chunk
  decay: f32,        // 1 - lr * weight_decay
  beta1: f32,
  beta2: f32,
  one_m_beta1: f32,  // 1 - beta1
  one_m_beta2: f32,  // 1 - beta2
  step_size: f32,    // lr / (1 - beta1^t)
  bc2_sqrt: f32,     // sqrt(1 - beta2^t)
  eps: f32,
}

@group(0) @binding(0) var<storage, read_write> p: array<f32>;
@group(0) @binding(1) var<storage, read> g: array<f32>;
@group(0) @binding(2) var<storage, read_write> m: array<f32>;
@group(0) @binding(3) var<storage, read_write> v: array<f32>;
@group(0) @binding(4) var<uniform> params: Params;

override WG: u32 = 256u;

@compute @workgroup_size(WG)
fn adamw_step(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_id) lid: vec3<u32>) {
  let i = (wid.y * nwg.x + wid.x) * WG + lid.x;
  if (i >= params.n) { return; }
  let gi = g[i];
  let pi = p[i] * params.decay;
  let mi = params.beta1 * m[i] + params.one_m_beta1 * gi;
  let vi = params.beta2 * v[i] + params.one_m_beta2 * (gi * gi);
  m[i] = mi;
  v[i] = vi;
  let denom = sqrt(vi) / params.bc2_sqrt + params.eps;
  p[i] = pi - params.step_size * (mi / denom);
}
