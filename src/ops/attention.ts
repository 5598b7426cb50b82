/**
 * Attention ops: row softmax, the fused attention core (optionally with SAM's decomposed relative
 * position bias), SAM ViT attention (windowed or global) and the SAM mask-decoder Attention.
 * Each is differentiable; the core's backward runs from the saved logsumexp (no P matrix kept).
 *
 * Intermediates of the compositions (vitAttention, decoderAttention) are freed eagerly when no
 * gradient is being recorded (frozen encoder under noGrad); otherwise they belong to the caller's
 * tidy() scope, since backward rules of the ops they feed may read them.
 */
import { isGradEnabled, record, type GradNode } from '../autograd/tape.js';
import {
  MAX_HEAD_DIM,
  relRowStride,
  runAttentionBackward,
  runAttentionForward,
  runRelposBackwardDq,
  runRelposBackwardTable,
  runRelposForward,
  type AttentionShape,
  type Operand,
  type RelGeometry,
} from '../kernels/attention.js';
import { runSoftmax, runSoftmaxBackward } from '../kernels/softmax.js';
import { Tensor } from '../tensor/tensor.js';
import { fmt, ShapeError, type Shape } from '../util/shape.js';
import { add } from './elementwise.js';
import { linear } from './linear.js';
import { pad, permute, reshape, slice } from './reshape.js';

type SavedRule = (grad: Tensor, needs: readonly boolean[], saved: readonly Tensor[]) => (Tensor | null)[];

/**
 * record() whose rule receives the retained handles of `save` (so it never touches tensors the
 * caller may have disposed since the forward).
 */
function recordSaved(
  op: string,
  out: Tensor,
  inputs: readonly Tensor[],
  save: readonly Tensor[],
  rule: SavedRule,
) {
  let node: GradNode | null = null;
  record(op, out, inputs, save, (g, needs) => rule(g, needs, node!.saved));
  node = (out.gradFn as GradNode | null) ?? null;
  return out;
}

function checkF32(op: string, what: string, t: Tensor): void {
  if (t.dtype !== 'f32') throw new ShapeError(`${op}: ${what} must be f32, got ${t.dtype} ${fmt(t.shape)}`);
}

// ------------------------------------------------------------------------------ softmax

/** Softmax over the last axis (max-subtracted). */
export function softmax(x: Tensor): Tensor {
  checkF32('softmax', 'x', x);
  if (x.shape.length === 0) throw new ShapeError(`softmax: x must have rank >= 1, got shape ${fmt(x.shape)}`);
  const cols = x.shape[x.shape.length - 1]!;
  const rows = cols === 0 ? 0 : x.size / cols;
  const y = Tensor.empty(x.gpu, x.shape);
  runSoftmax(x, y, rows, cols);
  return recordSaved('softmax', y, [x], [y], (g, _n, [ys]) => {
    const dx = Tensor.empty(x.gpu, x.shape);
    runSoftmaxBackward(ys!, g, dx, rows, cols);
    return [dx];
  });
}

// ------------------------------------------------------------------------------ attention core

/**
 * Decomposed relative position bias: for query (qy, qx) and key (ky, kx) on a gridH x gridW grid,
 * logit += q.relH[qy - ky + gridH - 1] + q.relW[qx - kx + gridW - 1] with the unscaled q.
 * relH: (2*gridH - 1, d), relW: (2*gridW - 1, d) (SAM's rel_pos_h / rel_pos_w).
 */
export interface RelPos {
  relH: Tensor;
  relW: Tensor;
  gridH: number;
  gridW: number;
}

export interface AttentionOptions {
  /** Multiplies q.k only (SAM: head_dim^-0.5); the rel-pos terms use the unscaled q. */
  scale: number;
  relPos?: RelPos | undefined;
}

function checkCore(op: string, q: Tensor, k: Tensor, v: Tensor, o: AttentionOptions): void {
  for (const [n, t] of [
    ['q', q],
    ['k', k],
    ['v', v],
  ] as const) {
    checkF32(op, n, t);
    if (t.shape.length !== 3)
      throw new ShapeError(`${op}: ${n} must be (BH, L, d), got shape ${fmt(t.shape)}`);
  }
  const [BH, Lq, d] = q.shape as [number, number, number];
  if (k.shape[0] !== BH || k.shape[2] !== d)
    throw new ShapeError(`${op}: q ${fmt(q.shape)} and k ${fmt(k.shape)} differ in batch*heads or head dim`);
  if (v.shape[0] !== BH || v.shape[1] !== k.shape[1] || v.shape[2] !== d)
    throw new ShapeError(`${op}: v ${fmt(v.shape)} does not match k ${fmt(k.shape)} (q ${fmt(q.shape)})`);
  if (BH === 0 || Lq === 0 || k.shape[1] === 0 || d === 0)
    throw new ShapeError(`${op}: empty q ${fmt(q.shape)} / k ${fmt(k.shape)}`);
  if (d > MAX_HEAD_DIM)
    throw new ShapeError(`${op}: head dim ${d} of q ${fmt(q.shape)} exceeds ${MAX_HEAD_DIM}`);
  if (!Number.isFinite(o.scale)) throw new ShapeError(`${op}: scale ${o.scale} is not finite`);
  const r = o.relPos;
  if (r) {
    const { gridH: gh, gridW: gw } = r;
    if (
      !(gh > 0 && gw > 0 && Number.isInteger(gh) && Number.isInteger(gw)) ||
      gh * gw !== Lq ||
      Lq !== k.shape[1]
    )
      throw new ShapeError(
        `${op}: rel-pos grid ${gh}x${gw} needs q ${fmt(q.shape)} and k ${fmt(k.shape)} with ${gh * gw} tokens each`,
      );
    checkF32(op, 'relH', r.relH);
    checkF32(op, 'relW', r.relW);
    if (r.relH.shape.length !== 2 || r.relH.shape[0] !== 2 * gh - 1 || r.relH.shape[1] !== d)
      throw new ShapeError(`${op}: relH has shape ${fmt(r.relH.shape)}, expected [${2 * gh - 1}, ${d}]`);
    if (r.relW.shape.length !== 2 || r.relW.shape[0] !== 2 * gw - 1 || r.relW.shape[1] !== d)
      throw new ShapeError(`${op}: relW has shape ${fmt(r.relW.shape)}, expected [${2 * gw - 1}, ${d}]`);
  }
}

/**
 * Fused attention on (q, k, v) operands that may share one buffer. `inputs` are the tensors the
 * gradient flows to: the three operands' tensors, then relH, relW when rel-pos is on. The rule
 * gets (dq, dk, dv) and hands them to `pack`, which turns them into the gradients of `inputs`
 * before the tables (taking ownership of dq, dk, dv).
 */
function fusedAttention(
  op: string,
  shape: AttentionShape,
  ops: readonly [Operand, Operand, Operand],
  inputs: readonly Tensor[],
  relPos: RelPos | undefined,
  pack: (d: [Tensor | null, Tensor | null, Tensor | null], needs: readonly boolean[]) => (Tensor | null)[],
): Tensor {
  const { BH, Lq, d, gh, gw } = shape;
  const gpu = ops[0].t.gpu;
  const out = Tensor.empty(gpu, [BH, Lq, d]);
  const lse = Tensor.empty(gpu, [BH, Lq]);
  const geo: RelGeometry = { BH, gh, gw, d };
  let rel: Tensor | null = null;
  if (relPos) {
    rel = Tensor.empty(gpu, [BH * Lq * relRowStride(gh, gw)]);
    runRelposForward(geo, ops[0], relPos.relH, relPos.relW, rel);
  }
  runAttentionForward(shape, { q: ops[0], k: ops[1], v: ops[2], rel, out, lse });
  const owners = [...new Set(ops.map((o) => o.t))];
  const save = [...owners, out, lse, ...(rel && relPos ? [rel, relPos.relH, relPos.relW] : [])];
  const offsets = ops.map((o) => [owners.indexOf(o.t), o.offset ?? 0] as const);
  const nIn = inputs.length - (relPos ? 2 : 0);
  recordSaved(op, out, inputs, save, (g, needs, sv) => {
    const opsS = offsets.map(([i, off]) => ({ t: sv[i]!, offset: off })) as [Operand, Operand, Operand];
    const [outS, lseS, relS, rhS, rwS] = sv.slice(owners.length) as Tensor[];
    const needsTables = relPos ? needs[nIn]! || needs[nIn + 1]! : false;
    const needsX = needs.slice(0, nIn);
    // Which of dq/dk/dv `pack` needs: an operand is needed if the input owning it is.
    const want = offsets.map(([i]) => needsX[inputs.indexOf(owners[i]!)] ?? false);
    const dq = want[0] || needsTables ? Tensor.empty(gpu, [BH, Lq, d]) : null;
    const dk = want[1] ? Tensor.empty(gpu, [BH, shape.Lk, d]) : null;
    const dv = want[2] ? Tensor.empty(gpu, [BH, shape.Lk, d]) : null;
    const drel = relS && (dq || needsTables) ? Tensor.empty(gpu, [relS.size]) : null;
    runAttentionBackward(shape, {
      q: opsS[0],
      k: opsS[1],
      v: opsS[2],
      rel: relS ?? null,
      out: outS!,
      lse: lseS!,
      dout: g,
      dq,
      dk,
      dv,
      drel,
    });
    let dRh: Tensor | null = null;
    let dRw: Tensor | null = null;
    if (drel && rhS && rwS) {
      if (want[0] && dq) runRelposBackwardDq(geo, drel, rhS, rwS, dq);
      if (needsTables) {
        dRh = Tensor.empty(gpu, rhS.shape);
        dRw = Tensor.empty(gpu, rwS.shape);
        runRelposBackwardTable(geo, drel, opsS[0], dRh, dRw);
      }
      drel.dispose();
    }
    const grads = pack([want[0] ? dq : (dq?.dispose(), null), dk, dv], needsX);
    return relPos ? [...grads, dRh, dRw] : grads;
  });
  lse.dispose();
  rel?.dispose();
  return out;
}

/**
 * out = softmax(scale * q.k^T [+ rel-pos bias]) . v for q (BH, Lq, d), k and v (BH, Lk, d).
 * Differentiable in q, k, v and the rel-pos tables. Head dims that are not a multiple of 4 are
 * zero-padded to one (this does not change the result).
 */
export function attentionCore(q: Tensor, k: Tensor, v: Tensor, opts: AttentionOptions): Tensor {
  checkCore('attentionCore', q, k, v, opts);
  const [BH, Lq, d] = q.shape as [number, number, number];
  const Lk = k.shape[1]!;
  const r = opts.relPos;
  if (d % 4 !== 0) return paddedCore(q, k, v, opts);
  const shape: AttentionShape = { BH, Lq, Lk, d, scale: opts.scale, gh: r?.gridH ?? 0, gw: r?.gridW ?? 0 };
  const inputs = r ? [q, k, v, r.relH, r.relW] : [q, k, v];
  return fusedAttention('attentionCore', shape, [{ t: q }, { t: k }, { t: v }], inputs, r, (ds) => ds);
}

function paddedCore(q: Tensor, k: Tensor, v: Tensor, opts: AttentionOptions): Tensor {
  const d = q.shape[2]!;
  const extra = Math.ceil(d / 4) * 4 - d;
  const p3 = (t: Tensor) =>
    pad(t, [
      [0, 0],
      [0, 0],
      [0, extra],
    ]);
  const p2 = (t: Tensor) =>
    pad(t, [
      [0, 0],
      [0, extra],
    ]);
  const tmp = [p3(q), p3(k), p3(v)];
  const r = opts.relPos;
  const rel = r ? { ...r, relH: p2(r.relH), relW: p2(r.relW) } : undefined;
  if (rel) tmp.push(rel.relH, rel.relW);
  const o = attentionCore(tmp[0]!, tmp[1]!, tmp[2]!, { scale: opts.scale, relPos: rel });
  const out = slice(o, [0, 0, 0], [q.shape[0]!, q.shape[1]!, d]);
  // pad/slice/attention rules read only their saved handles and shapes, so these can go now.
  for (const t of [...tmp, o]) t.dispose();
  return out;
}

/**
 * Attention over q, k, v packed as qkv (3, BH, L, d) (contiguous): the three operands are bound
 * from one buffer, and the gradient comes back packed the same way.
 */
function packedAttention(qkv: Tensor, scale: number, relPos: RelPos | undefined): Tensor {
  const [, BH, L, d] = qkv.shape as [number, number, number, number];
  const n = BH * L * d;
  const gpu = qkv.gpu;
  const shape: AttentionShape = {
    BH,
    Lq: L,
    Lk: L,
    d,
    scale,
    gh: relPos?.gridH ?? 0,
    gw: relPos?.gridW ?? 0,
  };
  const inputs = relPos ? [qkv, relPos.relH, relPos.relW] : [qkv];
  const ops: [Operand, Operand, Operand] = [
    { t: qkv, offset: 0 },
    { t: qkv, offset: n },
    { t: qkv, offset: 2 * n },
  ];
  return fusedAttention('vitAttention.core', shape, ops, inputs, relPos, (ds, needs) => {
    if (!needs[0]) {
      for (const t of ds) t?.dispose();
      return [null];
    }
    const g = Tensor.empty(gpu, qkv.shape);
    ds.forEach((t, i) => {
      if (t) gpu.copy(t.buffer, 0, g.buffer, i * n * 4, n * 4);
      else gpu.clear(g.buffer, i * n * 4, n * 4);
      t?.dispose();
    });
    return [g];
  });
}

// ------------------------------------------------------------------------------ compositions

/** Frees intermediates when nothing is being recorded; otherwise leaves them to tidy(). */
function dropper(inputs: readonly Tensor[]): (...ts: Tensor[]) => void {
  const eager = !isGradEnabled() || !inputs.some((t) => t.requiresGrad);
  return (...ts) => {
    if (eager) for (const t of ts) t.dispose();
  };
}

/** SAM ViT attention parameters (state_dict: qkv.weight, qkv.bias, proj.weight, proj.bias, rel_pos_h, rel_pos_w). */
export interface VitAttentionParams {
  qkvWeight: Tensor;
  qkvBias: Tensor;
  projWeight: Tensor;
  projBias: Tensor;
  relPosH: Tensor;
  relPosW: Tensor;
}

/**
 * SAM ViT attention block part on x (B, H, W, C) NHWC: with window > 0 the grid is zero-padded at
 * the bottom/right to a multiple of the window and split into windows (padded tokens are not
 * masked; their q/k/v are the qkv bias), then qkv linear, heads, fused attention with decomposed
 * rel-pos (tables of 2*window-1 rows, or 2H-1 / 2W-1 for global attention), head merge, proj,
 * and the windows are merged and cropped back to (B, H, W, C). Both linears are per token, so
 * they run on the H*W real tokens only: qkv before the padding (the padded rows get the bias),
 * proj after the crop.
 */
export function vitAttention(
  x: Tensor,
  p: VitAttentionParams,
  opts: { heads: number; window: number },
): Tensor {
  const op = 'vitAttention';
  checkF32(op, 'x', x);
  if (x.shape.length !== 4) throw new ShapeError(`${op}: x must be (B, H, W, C), got shape ${fmt(x.shape)}`);
  const [B, H, W, C] = x.shape as [number, number, number, number];
  const { heads, window } = opts;
  if (!(heads > 0 && Number.isInteger(heads)) || C % heads !== 0)
    throw new ShapeError(`${op}: ${heads} heads do not divide C = ${C} of x ${fmt(x.shape)}`);
  if (!(window >= 0 && Number.isInteger(window)))
    throw new ShapeError(`${op}: window ${window} must be a non-negative integer (x ${fmt(x.shape)})`);
  const hd = C / heads;
  const gh = window > 0 ? window : H;
  const gw = window > 0 ? window : W;
  const want = (name: string, t: Tensor, s: Shape) => {
    if (t.shape.length !== s.length || t.shape.some((d, i) => d !== s[i]))
      throw new ShapeError(
        `${op}: ${name} has shape ${fmt(t.shape)}, expected ${fmt(s)} for x ${fmt(x.shape)}`,
      );
  };
  want('qkvWeight', p.qkvWeight, [3 * C, C]);
  want('qkvBias', p.qkvBias, [3 * C]);
  want('projWeight', p.projWeight, [C, C]);
  want('projBias', p.projBias, [C]);
  want('relPosH', p.relPosH, [2 * gh - 1, hd]);
  want('relPosW', p.relPosW, [2 * gw - 1, hd]);
  const drop = dropper([x, p.qkvWeight, p.qkvBias, p.projWeight, p.projBias, p.relPosH, p.relPosW]);

  // Window partition: (B, H, W, C) -> (B*nh*nw, ws, ws, C), of x or (when the grid needs padding)
  // of its qkv projection.
  const Hp = window > 0 ? Math.ceil(H / window) * window : H;
  const Wp = window > 0 ? Math.ceil(W / window) * window : W;
  const padded = Hp !== H || Wp !== W;
  const partition = (t: Tensor): Tensor => {
    const D = t.shape[3]!;
    const v6 = reshape(t, [B, Hp / window, window, Wp / window, window, D]);
    const t6 = permute(v6, [0, 1, 3, 2, 4, 5]);
    const w = reshape(t6, [-1, window, window, D]);
    drop(v6, t6);
    return w;
  };
  let qkv: Tensor;
  let xw = x;
  if (!padded) {
    if (window > 0) xw = partition(x);
    qkv = linear(xw, p.qkvWeight, p.qkvBias);
  } else {
    // A padded token is a zero row, so its q/k/v are the qkv bias alone: project the H*W real
    // tokens, pad the projection with zeros and add the bias everywhere. Each value is the one
    // projecting the padded grid gives (the same fma chain, then + bias), for H*W rows instead of
    // Hp*Wp (1024 instead of 1764 at 512 input).
    const q0 = linear(x, p.qkvWeight, null);
    const qp = pad(q0, [
      [0, 0],
      [0, Hp - H],
      [0, Wp - W],
      [0, 0],
    ]);
    drop(q0);
    const qb = add(qp, p.qkvBias);
    drop(qp);
    qkv = partition(qb);
    drop(qb);
  }
  const Bw = qkv.shape[0]!;
  const L = gh * gw;
  const q5 = reshape(qkv, [Bw, L, 3, heads, hd]);
  const t5 = permute(q5, [2, 0, 3, 1, 4]);
  const rel: RelPos = { relH: p.relPosH, relW: p.relPosW, gridH: gh, gridW: gw };
  let o: Tensor;
  if (hd % 4 === 0 && hd <= MAX_HEAD_DIM) {
    const packed = reshape(t5, [3, Bw * heads, L, hd]);
    o = packedAttention(packed, hd ** -0.5, rel);
    drop(packed);
  } else {
    const part = (i: number) => {
      const s = slice(t5, [i, 0, 0, 0, 0], [1, Bw, heads, L, hd]);
      const r = reshape(s, [Bw * heads, L, hd]);
      drop(s);
      return r;
    };
    const [qh, kh, vh] = [part(0), part(1), part(2)];
    o = attentionCore(qh, kh, vh, { scale: hd ** -0.5, relPos: rel });
    drop(qh, kh, vh);
  }
  const o4 = reshape(o, [Bw, heads, L, hd]);
  const m4 = permute(o4, [0, 2, 1, 3]);
  const merged = reshape(m4, [Bw, gh, gw, C]);
  drop(...(xw === x ? [] : [xw]), qkv, q5, t5, o, o4, m4);
  if (window === 0) {
    const y = linear(merged, p.projWeight, p.projBias);
    drop(merged);
    return y;
  }

  // Window merge: (B*nh*nw, ws, ws, C) -> (B, Hp, Wp, C), crop to (B, H, W, C), then proj (per
  // token, so the padded tokens it would project are dropped first).
  const y6 = reshape(merged, [B, Hp / window, Wp / window, window, window, C]);
  const u6 = permute(y6, [0, 1, 3, 2, 4, 5]);
  const full = reshape(u6, [B, Hp, Wp, C]);
  const cropped = padded ? slice(full, [0, 0, 0, 0], [B, H, W, C]) : full;
  const out = linear(cropped, p.projWeight, p.projBias);
  drop(merged, y6, u6, full, ...(cropped !== full ? [cropped] : []));
  return out;
}

/** SAM mask-decoder Attention parameters (q_proj, k_proj, v_proj: (inner, C); out_proj: (C, inner)). */
export interface DecoderAttentionParams {
  qProjWeight: Tensor;
  qProjBias: Tensor;
  kProjWeight: Tensor;
  kProjBias: Tensor;
  vProjWeight: Tensor;
  vProjBias: Tensor;
  outProjWeight: Tensor;
  outProjBias: Tensor;
}

/**
 * SAM decoder Attention: q (B, Nq, C), k and v (B, Nk, C) -> (B, Nq, C). Projections to the
 * internal dim (256 self-attention, 128 cross-attention), `heads` heads,
 * softmax(q.k^T / sqrt(d_head)) v, heads merged, out projection.
 */
export function decoderAttention(
  q: Tensor,
  k: Tensor,
  v: Tensor,
  p: DecoderAttentionParams,
  opts: { heads: number },
): Tensor {
  const op = 'decoderAttention';
  for (const [n, t] of [
    ['q', q],
    ['k', k],
    ['v', v],
  ] as const) {
    checkF32(op, n, t);
    if (t.shape.length !== 3)
      throw new ShapeError(`${op}: ${n} must be (B, N, C), got shape ${fmt(t.shape)}`);
  }
  const [B, Nq, C] = q.shape as [number, number, number];
  const Nk = k.shape[1]!;
  if (k.shape[0] !== B || v.shape[0] !== B || k.shape[2] !== C || v.shape[2] !== C || v.shape[1] !== Nk)
    throw new ShapeError(
      `${op}: q ${fmt(q.shape)}, k ${fmt(k.shape)} and v ${fmt(v.shape)} must share batch and channels (and k, v tokens)`,
    );
  const inner = p.qProjWeight.shape[0] ?? 0;
  const heads = opts.heads;
  if (!(heads > 0 && Number.isInteger(heads)) || inner % heads !== 0)
    throw new ShapeError(`${op}: ${heads} heads do not divide the internal dim ${inner}`);
  const want = (name: string, t: Tensor, s: Shape) => {
    if (t.shape.length !== s.length || t.shape.some((d, i) => d !== s[i]))
      throw new ShapeError(
        `${op}: ${name} has shape ${fmt(t.shape)}, expected ${fmt(s)} (q ${fmt(q.shape)})`,
      );
  };
  want('qProjWeight', p.qProjWeight, [inner, C]);
  want('kProjWeight', p.kProjWeight, [inner, C]);
  want('vProjWeight', p.vProjWeight, [inner, C]);
  want('qProjBias', p.qProjBias, [inner]);
  want('kProjBias', p.kProjBias, [inner]);
  want('vProjBias', p.vProjBias, [inner]);
  want('outProjWeight', p.outProjWeight, [C, inner]);
  want('outProjBias', p.outProjBias, [C]);
  const drop = dropper([
    q,
    k,
    v,
    p.qProjWeight,
    p.qProjBias,
    p.kProjWeight,
    p.kProjBias,
    p.vProjWeight,
    p.vProjBias,
    p.outProjWeight,
    p.outProjBias,
  ]);
  const dh = inner / heads;
  const split = (x: Tensor, w: Tensor, b: Tensor, n: number) => {
    const y = linear(x, w, b);
    const y4 = reshape(y, [B, n, heads, dh]);
    const t = permute(y4, [0, 2, 1, 3]);
    const r = reshape(t, [B * heads, n, dh]);
    drop(y, y4, t);
    return r;
  };
  const qh = split(q, p.qProjWeight, p.qProjBias, Nq);
  const kh = split(k, p.kProjWeight, p.kProjBias, Nk);
  const vh = split(v, p.vProjWeight, p.vProjBias, Nk);
  const o = attentionCore(qh, kh, vh, { scale: 1 / Math.sqrt(dh) });
  const o4 = reshape(o, [B, heads, Nq, dh]);
  const m4 = permute(o4, [0, 2, 1, 3]);
  const merged = reshape(m4, [B, Nq, inner]);
  const y = linear(merged, p.outProjWeight, p.outProjBias);
  drop(qh, kh, vh, o, o4, m4, merged);
  return y;
}
