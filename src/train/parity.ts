/**
 * Parity with the PyTorch oracle: runs a fixture case exactly as test/oracle/make_fixtures.py
 * made it and compares every stored tensor. Shared by test/model/parity.test.ts and the
 * `npm run parity` CLI (src/cli/parity.ts, which only parses arguments and reads files).
 *
 * The run (model built from the manifest's `config`, weights from its state_dict file):
 *   input.*      uploaded and read back (round trip)
 *   eval.*       eval mode (BatchNorm running stats), no gradient: cnn.layer3, fused,
 *                low_res_logits, masks, and pred = argmax over classes of the masks
 *   act.*        train-mode forward with a Capture of every intermediate
 *   loss.*       0.2 CE + 0.8 Dice of act.low_res_logits vs input.low_res_label
 *   grad.*       backward of loss.total: every parameter that gets a gradient
 *   actgrad.*    gradients of the captured activations on the gradient path
 *   bn_after.*   BatchNorm running stats after that ONE train-mode forward
 *   train2.*     two AdamW steps (lr 1e-3, betas .9/.999, eps 1e-8, wd 0.1) on the same batch from
 *                the loaded weights: losses before step 1, before step 2, after step 2; params after
 * Tolerances come from the manifest (`f32_maxabs` = torch float32's own deviation from the float64
 * truth, `ref_maxabs`): atol = max(factor * f32_maxabs, 1e-5 * ref_maxabs, 1e-6), factor 4 unless
 * TOLERANCE_RULES gives a (justified) larger one.
 */
import { argmaxChannels } from '../eval/inference.js';
import { backward, noGrad } from '../autograd/tape.js';
import type { Gpu } from '../gpu/device.js';
import { readPth } from '../io/pth.js';
import { decodeEntry, parseSafetensors } from '../io/safetensors.js';
import { Capture } from '../nn/capture.js';
import { SamLstConfig } from '../nn/config.js';
import { BatchNorm2d } from '../nn/layers.js';
import { SamLST } from '../nn/sam_lst.js';
import { ceDiceLoss } from '../ops/loss.js';
import { AdamW, SAM_LST_ADAMW } from '../optim/adamw.js';
import type { HostTensor } from '../tensor/host.js';
import { tidy } from '../tensor/scope.js';
import { Tensor } from '../tensor/tensor.js';
import { fmt, numel } from '../util/shape.js';

export interface ManifestEntry {
  shape: number[];
  dtype: string;
  f32_maxabs?: number;
  ref_maxabs?: number;
  layout?: string;
  desc?: string;
}

/** The parts of an oracle manifest (tiny_case.json) the parity run uses. */
export interface ParityManifest {
  config: Record<string, unknown>;
  files: { state_dict: string; tensors: string };
  params_with_grad?: string[];
  tensors: Record<string, ManifestEntry>;
}

export interface ParityCase {
  manifest: ParityManifest;
  /** The case's state_dict (as read from its .pth). */
  checkpoint: ReadonlyMap<string, HostTensor>;
  /** Reference tensor by name. */
  tensor(name: string): HostTensor;
}

/** A consistency check that is not a tensor comparison (load report, trainable set, counters). */
export interface ParityCheck {
  name: string;
  ok: boolean;
  detail: string;
}

export interface ParityRun {
  /** Our value for every tensor name of the manifest we produce. */
  actual: Map<string, Float32Array | Int32Array>;
  checks: ParityCheck[];
}

export interface ParityRow {
  name: string;
  shape: number[];
  /** max |ours - ref|. */
  maxAbs: number;
  /** maxAbs / max |ref| (0 when both are all zeros); for I32 tensors the fraction of differing elements. */
  maxRel: number;
  atol: number;
  factor: number;
  ok: boolean;
  note: string;
}

/** Builds a ParityCase from the bytes of the manifest's two files. */
export function parityCaseFromBytes(
  manifest: ParityManifest,
  stateDict: { bytes: Uint8Array; name: string },
  tensors: { bytes: Uint8Array; name: string },
): ParityCase {
  if (!manifest.config || !manifest.files || !manifest.tensors)
    throw new Error('parity: the manifest needs `config`, `files` and `tensors`');
  const checkpoint = readPth(stateDict.bytes, stateDict.name);
  const st = parseSafetensors(tensors.bytes, tensors.name);
  return {
    manifest,
    checkpoint,
    tensor(name) {
      const e = st.tensors.get(name);
      if (!e) throw new Error(`parity: tensor '${name}' is not in ${tensors.name}`);
      const data = decodeEntry(e, name);
      return { shape: [...e.shape], dtype: data instanceof Int32Array ? 'i32' : 'f32', data };
    },
  };
}

// ------------------------------------------------------------------------------ tolerances

/**
 * Group rules. `floor: 'group'` raises the atol of every tensor of the group to at least the largest
 * f32_maxabs in that group (torch float32's own worst deviation there). The first match wins.
 */
export const TOLERANCE_RULES: readonly { pattern: RegExp; factor: number; floor?: 'group'; why: string }[] = [
  {
    // AdamW divides each gradient element by its own running RMS, so a parameter's update depends
    // on the RELATIVE accuracy of its gradient: where the gradient is small or the two steps'
    // gradients nearly cancel in the first moment, a ~1e-5 relative gradient difference (another
    // float32 summation order) moves the update by a visible fraction of lr. torch's float32 run
    // shows the same effect: its deviation from the float64 truth reaches 2.1e-5 on
    // train2.param.CNN_encoder.layer3.0.conv1.weight (1% of the largest 2-step move, 2 lr = 2e-3)
    // while other tensors of the group happen to stay at 1e-7. The per-tensor f32_maxabs is one
    // sample of that noise, so each tensor of the group gets at least the group's worst f32_maxabs.
    pattern: /^train2\.param\./,
    factor: 4,
    floor: 'group',
    why: 'AdamW normalises by |g|: group-wide float32 floor',
  },
];

/** atol = max(factor * f32_maxabs, 1e-5 * ref_maxabs, 1e-6[, group floor]) for a manifest tensor. */
export function tolerance(
  name: string,
  e: ManifestEntry,
  all?: Readonly<Record<string, ManifestEntry>>,
): { atol: number; factor: number; why: string } {
  const rule = TOLERANCE_RULES.find((r) => r.pattern.test(name));
  const factor = rule?.factor ?? 4;
  let floor = 0;
  if (rule?.floor === 'group' && all)
    for (const [n, x] of Object.entries(all))
      if (rule.pattern.test(n)) floor = Math.max(floor, x.f32_maxabs ?? 0);
  const atol = Math.max(factor * (e.f32_maxabs ?? 0), 1e-5 * (e.ref_maxabs ?? 0), 1e-6, floor);
  return { atol, factor, why: rule?.why ?? '' };
}

// ------------------------------------------------------------------------------ the run

/**
 * One SAM-LST training step inside tidy(): forward, 0.2 CE + 0.8 Dice on the low-res logits,
 * zeroGrad, backward, AdamW step. Returns the loss (shape [1]; the caller disposes it). Nothing
 * else outlives the step except the parameters' `.grad` and the optimizer state.
 */
export function samLstTrainStep(
  model: SamLST,
  opt: AdamW,
  image: Tensor,
  lowResLabels: Tensor,
  opts: { lr?: number; embedding?: Tensor } = {},
): Tensor {
  return tidy(() => {
    const out = opts.embedding ? model.forwardFromEmbedding(image, opts.embedding) : model.forward(image);
    const loss = ceDiceLoss(out.lowResLogits, lowResLabels, {
      lambda: 0.8,
      classes: model.cfg.numMaskTokens,
    });
    opt.zeroGrad();
    backward(loss.total);
    opt.step(opts.lr);
    return loss.total;
  });
}

/** Runs the case (see the file comment) on `gpu`; frees everything it made. */
export async function runParityCase(
  gpu: Gpu,
  c: ParityCase,
  opts: { log?: (line: string) => void } = {},
): Promise<ParityRun> {
  const log = opts.log ?? (() => {});
  const actual = new Map<string, Float32Array | Int32Array>();
  const checks: ParityCheck[] = [];
  const cfg = SamLstConfig.fromJson(c.manifest.config);
  const model = SamLST.fromCheckpoint(gpu, cfg, c.checkpoint, c.manifest.files.state_dict);
  checks.push({ name: 'load', ok: true, detail: `${c.checkpoint.size} keys loaded strictly` });
  const owned: { dispose(): void }[] = [model];
  try {
    const N = cfg.numMaskTokens;
    const hImage = c.tensor('input.image');
    const hLow = c.tensor('input.low_res_label');
    const image = Tensor.fromHost(gpu, hImage).keep();
    const lowLabels = Tensor.fromHost(gpu, hLow).keep();
    owned.push(image, lowLabels);
    actual.set('input.image', await image.read());
    actual.set('input.low_res_label', await lowLabels.read());
    if (c.manifest.tensors['input.label']) {
      const lab = Tensor.fromHost(gpu, c.tensor('input.label'));
      actual.set('input.label', await lab.read());
      lab.dispose();
    }

    // ---- eval mode (running statistics), no gradient
    log('eval-mode forward');
    model.eval();
    const evalNames = ['cnn.layer3', 'fused', 'low_res_logits', 'masks'];
    const ecap = new Capture({ filter: (n) => evalNames.includes(n) });
    owned.push(ecap);
    tidy(() => {
      noGrad(() => model.forward(image, ecap));
    });
    for (const n of evalNames) actual.set(`eval.${n}`, await ecap.act(n).readFloat());
    const masks = ecap.act('masks');
    actual.set(
      'eval.pred',
      argmaxChannels(
        actual.get('eval.masks') as Float32Array,
        masks.shape[0]!,
        masks.shape[1]!,
        masks.shape[2]! * masks.shape[3]!,
      ),
    );
    ecap.dispose();

    // ---- train mode: forward with capture, loss, backward
    log('train-mode forward + backward');
    model.train();
    const bns = model.namedModules().filter((e): e is [string, BatchNorm2d] => e[1] instanceof BatchNorm2d);
    const counts0 = bns.map(([, m]) => m.numBatchesTracked);
    const cap = new Capture({ grads: true });
    owned.push(cap);
    const loss = tidy(() => {
      const out = model.forward(image, cap);
      const l = ceDiceLoss(out.lowResLogits, lowLabels, { lambda: 0.8, classes: N });
      backward(l.total);
      return { total: l.total, ce: l.ce, dice: l.dice, invalid: l.invalidLabels };
    });
    owned.push(loss.total, loss.ce, loss.dice, loss.invalid);
    for (const [k, v] of cap.acts) actual.set(`act.${k}`, await v.read());
    actual.set('loss.total', await loss.total.read());
    actual.set('loss.ce', await loss.ce.read());
    actual.set('loss.dice', await loss.dice.read());
    const withGrad: string[] = [];
    for (const [n, p] of model.namedParameters()) {
      if (!p.grad) continue;
      withGrad.push(n);
      actual.set(`grad.${n}`, await p.grad.read());
    }
    for (const [k, v] of cap.grads) actual.set(`actgrad.${k}`, await v.read());
    for (const [n, b] of model.namedBuffers())
      if (n.includes('running')) actual.set(`bn_after.${n}`, await b.read());
    cap.dispose();

    const expectGrad = c.manifest.params_with_grad;
    if (expectGrad) {
      const a = new Set(withGrad);
      const missing = expectGrad.filter((n) => !a.has(n));
      const extra = withGrad.filter((n) => !expectGrad.includes(n));
      checks.push({
        name: 'params_with_grad',
        ok: missing.length === 0 && extra.length === 0,
        detail:
          `${withGrad.length} parameters got a gradient` +
          (missing.length ? `; missing: ${missing.join(', ')}` : '') +
          (extra.length ? `; unexpected: ${extra.join(', ')}` : ''),
      });
    }
    const counts1: number[] = [];
    for (const [n] of bns) {
      const t = model.stateDict().get(`${n}.num_batches_tracked`)!;
      counts1.push((await t.read())[0]!);
    }
    const used = counts1.filter((n, i) => n !== counts0[i]).length;
    const badCount = bns.filter(([n], i) => {
      const inForward = !n.startsWith('CNN_encoder.layer4');
      return counts1[i] !== counts0[i]! + (inForward ? 1 : 0);
    });
    checks.push({
      name: 'num_batches_tracked',
      ok: badCount.length === 0,
      detail:
        `${used} BatchNorm counters +1 after one train-mode forward (layer4 untouched)` +
        (badCount.length ? `; wrong: ${badCount.map(([n]) => n).join(', ')}` : ''),
    });

    // ---- two AdamW steps on the same batch, from the loaded weights
    log('two AdamW steps');
    for (const [, p] of model.namedParameters()) {
      p.grad?.dispose();
      p.grad = null;
    }
    const opt = new AdamW(
      model.trainableParameters().map(([name, tensor]) => ({ name, tensor })),
      { ...SAM_LST_ADAMW, lr: 1e-3 },
    );
    owned.push(opt);
    const losses: number[] = [];
    for (let s = 0; s < 2; s++) {
      const l = samLstTrainStep(model, opt, image, lowLabels, { lr: 1e-3 });
      losses.push((await l.readFloat())[0]!);
      l.dispose();
    }
    const l3 = tidy(() =>
      noGrad(() => {
        const out = model.forward(image);
        return ceDiceLoss(out.lowResLogits, lowLabels, { lambda: 0.8, classes: N }).total;
      }),
    );
    losses.push((await l3.readFloat())[0]!);
    l3.dispose();
    actual.set('train2.losses', Float32Array.from(losses));
    const params = new Map(model.namedParameters());
    for (const n of withGrad) actual.set(`train2.param.${n}`, await params.get(n)!.read());
    await gpu.sync();
    return { actual, checks };
  } finally {
    for (const o of owned.reverse()) o.dispose();
  }
}

// ------------------------------------------------------------------------------ comparison

/** Compares our value of `name` with the reference; eval.pred allows flips only at near-ties. */
export function compareTensor(
  name: string,
  ours: Float32Array | Int32Array | undefined,
  c: ParityCase,
): ParityRow {
  const e = c.manifest.tensors[name];
  if (!e) throw new Error(`parity: '${name}' is not in the manifest`);
  const row: ParityRow = {
    name,
    shape: e.shape,
    maxAbs: 0,
    maxRel: 0,
    atol: 0,
    factor: 0,
    ok: false,
    note: '',
  };
  if (!ours) {
    row.maxAbs = row.maxRel = Infinity;
    row.note = 'not produced by the run';
    return row;
  }
  const ref = c.tensor(name).data;
  if (ours.length !== ref.length || ref.length !== numel(e.shape)) {
    row.maxAbs = row.maxRel = Infinity;
    row.note = `${ours.length} values, reference ${fmt(e.shape)} has ${ref.length}`;
    return row;
  }
  if (ref instanceof Int32Array) {
    let diff = 0;
    let excused = 0;
    let maxAbs = 0;
    // eval.pred is an argmax: a flip is acceptable where the reference's two best logits are
    // closer than the masks tolerance (float32 may order a near-tie either way).
    const masks = name === 'eval.pred' ? c.tensor('eval.masks').data : null;
    const mtol = masks
      ? tolerance('eval.masks', c.manifest.tensors['eval.masks']!, c.manifest.tensors).atol
      : 0;
    const [B, H, W] = e.shape as [number, number, number];
    const C = masks ? masks.length / (B * H * W) : 0;
    for (let i = 0; i < ref.length; i++) {
      if (ours[i] === ref[i]) continue;
      diff++;
      maxAbs = Math.max(maxAbs, Math.abs(ours[i]! - ref[i]!));
      if (masks) {
        const b = Math.floor(i / (H * W));
        const p = i % (H * W);
        const at = (k: number) => masks[(b * C + k) * H * W + p]!;
        if (Math.abs(at(ours[i]!) - at(ref[i]!)) <= 2 * mtol) excused++;
      }
    }
    row.maxAbs = maxAbs;
    row.maxRel = diff / Math.max(1, ref.length);
    row.ok = diff === excused;
    row.note = diff ? `${diff} differing element(s)${masks ? `, ${excused} at near-ties` : ''}` : 'exact';
    return row;
  }
  const { atol, factor, why } = tolerance(name, e, c.manifest.tensors);
  let maxAbs = 0;
  let refMax = 0;
  let bad = 0;
  for (let i = 0; i < ref.length; i++) {
    const a = ours[i]!;
    const r = ref[i]!;
    const d = Number.isNaN(a) || Number.isNaN(r) ? Infinity : Math.abs(a - r);
    if (d > maxAbs) maxAbs = d;
    if (Math.abs(r) > refMax) refMax = Math.abs(r);
    if (d > atol) bad++;
  }
  row.maxAbs = maxAbs;
  row.maxRel = refMax > 0 ? maxAbs / refMax : maxAbs > 0 ? Infinity : 0;
  row.atol = atol;
  row.factor = factor;
  row.ok = bad === 0;
  row.note =
    (bad ? `${bad}/${ref.length} over tolerance` : '') +
    (why ? `${bad ? '; ' : ''}factor ${factor}: ${why}` : '');
  return row;
}

/** Every tensor of the manifest, compared. */
export function compareAll(run: ParityRun, c: ParityCase): ParityRow[] {
  return Object.keys(c.manifest.tensors).map((n) => compareTensor(n, run.actual.get(n), c));
}

const FORWARD = /^(input|act|eval|loss|bn_after)\./;

/**
 * When every forward tensor matches and only gradient-derived ones fail, the usual cause is a kink:
 * a ReLU (or max-pool tie) input within float32 rounding of zero takes the other branch than in
 * float64, which moves a few gradient elements by O(their size) and everything upstream of them.
 */
export function kinkHint(rows: readonly ParityRow[]): string {
  const bad = rows.filter((r) => !r.ok);
  if (!bad.length || bad.some((r) => FORWARD.test(r.name))) return '';
  const first = bad.find((r) => r.name.startsWith('actgrad.')) ?? bad[0]!;
  return (
    `note: the forward pass matches and only gradients fail (first: ${first.name}, ${first.note}); ` +
    'this is typical of a ReLU input or max-pool tie within float32 rounding of 0 taking the other ' +
    'branch than in float64 (check the pre-activations just downstream of that tensor)'
  );
}

export function formatParityTable(rows: readonly ParityRow[], checks: readonly ParityCheck[] = []): string {
  const w = Math.max(...rows.map((r) => r.name.length), 10);
  const lines = [
    `${'tensor'.padEnd(w)}  ${'max abs'.padStart(10)}  ${'max rel'.padStart(10)}  ${'atol'.padStart(10)}  status`,
  ];
  const e = (v: number) => (Number.isFinite(v) ? v.toExponential(2) : String(v)).padStart(10);
  for (const r of rows)
    lines.push(
      `${r.name.padEnd(w)}  ${e(r.maxAbs)}  ${e(r.maxRel)}  ${r.atol ? e(r.atol) : '     exact'}  ${r.ok ? 'ok' : 'FAIL'}${r.note ? `  (${r.note})` : ''}`,
    );
  for (const ch of checks) lines.push(`check ${ch.name}: ${ch.ok ? 'ok' : 'FAIL'} (${ch.detail})`);
  const bad = rows.filter((r) => !r.ok).length + checks.filter((ch) => !ch.ok).length;
  const hint = kinkHint(rows);
  if (hint) lines.push(hint);
  lines.push(
    bad
      ? `${bad} of ${rows.length + checks.length} failed`
      : `all ${rows.length} tensors and ${checks.length} checks within tolerance`,
  );
  return lines.join('\n');
}
