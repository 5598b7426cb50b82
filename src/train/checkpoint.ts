/**
 * Training checkpoints and the PyTorch-style state_dict export.
 *
 * A checkpoint is ONE safetensors file, written atomically (src/io/atomic.ts: temporary file in
 * the same folder, fsync, rename, folder fsync), so a kill during a save leaves the previous
 * checkpoint intact. It holds
 *   model.<state_dict key>   every trainable parameter and every buffer (BatchNorm running stats
 *                            and num_batches_tracked), f32 / i32
 *   optim.m.<param>, optim.v.<param>   AdamW moments of every parameter updated so far
 * and in `__metadata__`:
 *   format       'sam-lst-webgpu/train-checkpoint'
 *   meta         JSON: version, the run's TrainConfig, the loop state (optimizer steps done, epoch,
 *                batches done in the epoch, the epoch's sample order, the data-order and
 *                augmentation Rng states), the lr schedule, AdamW hyper-parameters and per-parameter
 *                step counts, the dataset fingerprint and `frozenHash` (sha256 of every frozen
 *                parameter: the frozen weights are rebuilt from the seed / --sam-checkpoint on resume
 *                and must hash the same)
 *   sha256       over the tensor bytes in file order, and
 *   meta_sha256  over the meta JSON; a mismatch in either (bit rot, a truncated copy, an edit)
 *                makes the load fail with a message naming the file.
 *
 * The state_dict export (`exportStateDict`) is the full model, every parameter and buffer, under the
 * reference key names (`sam.*`, `CNN_encoder.*`), loadable in PyTorch with
 * `safetensors.torch.load_file` + `load_state_dict` (num_batches_tracked is stored as int32; torch
 * copies it into its int64 buffer).
 */
import { readFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import type { SamLST } from '../nn/sam_lst.js';
import { decodeEntry, parseSafetensors, writeSafetensors, type StWriteEntry } from '../io/safetensors.js';
import { writeFileAtomic, type AtomicWriteOptions } from '../io/atomic.js';
import type { AdamW, AdamWState } from '../optim/adamw.js';
import type { LrSchedule } from '../optim/schedule.js';
import type { HostTensor } from '../tensor/host.js';
import type { TrainConfig } from './config.js';

export const CHECKPOINT_FORMAT = 'sam-lst-webgpu/train-checkpoint';
export const CHECKPOINT_VERSION = 1;
export const STATE_DICT_FORMAT = 'sam-lst-webgpu/state-dict';

export class CheckpointError extends Error {
  override name = 'CheckpointError';
}

/** Where the loop is; everything needed to continue the same run. */
export interface LoopState {
  /** Optimizer steps done. */
  step: number;
  /** Current epoch (0-based). */
  epoch: number;
  /** Batches of `epoch` done. */
  batchInEpoch: number;
  /** The current epoch's order of training-slice indices (null before the epoch drew it). */
  perm: number[] | null;
  /** Rng state of the data order (drawn once per epoch). */
  orderRng: number;
  /** Rng state of the augmentation draws (one per sample). */
  augRng: number;
  /** True once the run completed all its steps. */
  finished: boolean;
}

export interface DatasetFingerprint {
  layout: string;
  trainSize: number;
  /** sha256 of the training slice ids in order. */
  trainIds: string;
}

export interface CheckpointMeta {
  version: number;
  created: string;
  config: TrainConfig;
  state: LoopState;
  schedule: LrSchedule;
  optimizer: {
    betas: [number, number];
    eps: number;
    weightDecay: number;
    steps: Record<string, number>;
  };
  dataset: DatasetFingerprint;
  frozenHash: string;
  /** Names of the model tensors stored (trainable parameters + buffers). */
  modelKeys: string[];
}

export interface Checkpoint {
  path: string;
  meta: CheckpointMeta;
  model: Map<string, HostTensor>;
  optim: AdamWState;
}

function bytesOf(a: Float32Array | Int32Array | Uint16Array): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

/** sha256 over the tensors' data in the order writeSafetensors lays them out (sorted names). */
function tensorChecksum(
  entries: ReadonlyMap<string, { data?: Float32Array | Int32Array | Uint16Array; bytes?: Uint8Array }>,
): string {
  const h = createHash('sha256');
  for (const name of [...entries.keys()].sort()) {
    const e = entries.get(name)!;
    h.update(e.bytes ?? bytesOf(e.data!));
  }
  return h.digest('hex');
}

/** sha256 over every frozen (requiresGrad = false) parameter: names, shapes and bytes. */
export async function frozenHash(model: SamLST): Promise<string> {
  const h = createHash('sha256');
  for (const [name, t] of model.namedParameters()) {
    if (t.requiresGrad) continue;
    h.update(`|${name}|${t.shape.join(',')}|`);
    h.update(bytesOf(await t.read()));
  }
  return h.digest('hex');
}

/** The model tensors a checkpoint stores: trainable parameters, then every buffer. */
export function checkpointModelKeys(model: SamLST): string[] {
  return [...model.trainableParameters().map(([n]) => n), ...model.namedBuffers().map(([n]) => n)];
}

function entry(h: HostTensor): StWriteEntry {
  return { dtype: h.dtype === 'i32' ? 'I32' : 'F32', shape: [...h.shape], data: h.data };
}

/**
 * Serialises the model's trainable parameters and buffers, the optimizer state and `meta` (minus
 * modelKeys/optimizer steps, which are filled in here) into checkpoint bytes.
 */
export async function checkpointBytes(
  model: SamLST,
  opt: AdamW,
  meta: Omit<CheckpointMeta, 'modelKeys' | 'optimizer' | 'version' | 'created'>,
): Promise<Uint8Array> {
  const entries = new Map<string, StWriteEntry>();
  const sd = model.stateDict();
  const keys = checkpointModelKeys(model);
  for (const k of keys) entries.set(`model.${k}`, entry(await sd.get(k)!.toHost()));
  const st = await opt.exportState();
  const steps: Record<string, number> = {};
  for (const [name, s] of Object.entries(st.params)) {
    steps[name] = s.step;
    entries.set(`optim.m.${name}`, entry(s.m));
    entries.set(`optim.v.${name}`, entry(s.v));
  }
  const full: CheckpointMeta = {
    ...meta,
    version: CHECKPOINT_VERSION,
    created: new Date().toISOString(),
    optimizer: { betas: [opt.beta1, opt.beta2], eps: opt.eps, weightDecay: opt.weightDecay, steps },
    modelKeys: keys,
  };
  const metaJson = JSON.stringify(full);
  return writeSafetensors(entries, {
    format: CHECKPOINT_FORMAT,
    meta: metaJson,
    meta_sha256: createHash('sha256').update(metaJson).digest('hex'),
    sha256: tensorChecksum(entries),
  });
}

/** Writes a checkpoint atomically (see the file comment). */
export async function saveCheckpoint(
  path: string,
  model: SamLST,
  opt: AdamW,
  meta: Omit<CheckpointMeta, 'modelKeys' | 'optimizer' | 'version' | 'created'>,
  atomic: AtomicWriteOptions = {},
): Promise<void> {
  const bytes = await checkpointBytes(model, opt, meta);
  writeFileAtomic(path, bytes, atomic);
}

/** Reads and verifies a checkpoint (format, checksum, every tensor the metadata lists). */
export function readCheckpoint(path: string): Checkpoint {
  let bytes: Uint8Array;
  try {
    bytes = readFileSync(path);
  } catch (e) {
    throw new CheckpointError(`${path}: cannot read checkpoint (${(e as Error).message})`);
  }
  let st;
  try {
    st = parseSafetensors(bytes, path);
  } catch (e) {
    throw new CheckpointError(`${path}: not a readable checkpoint: ${(e as Error).message}`);
  }
  const md = st.metadata;
  if (md.format !== CHECKPOINT_FORMAT)
    throw new CheckpointError(
      `${path}: not a sam-lst-webgpu training checkpoint (format ${JSON.stringify(md.format ?? null)}; ` +
        `a state_dict export cannot be resumed)`,
    );
  const sum = tensorChecksum(st.tensors);
  if (sum !== md.sha256)
    throw new CheckpointError(
      `${path}: checksum mismatch (stored ${md.sha256}, computed ${sum}): the file is corrupt`,
    );
  // The tensor checksum does not cover the metadata; a writer that also stores meta_sha256 gets
  // the meta JSON (loop state, config, step counts) verified too.
  if (
    md.meta_sha256 !== undefined &&
    createHash('sha256')
      .update(md.meta ?? '')
      .digest('hex') !== md.meta_sha256
  )
    throw new CheckpointError(`${path}: metadata checksum mismatch (meta_sha256): the file is corrupt`);
  let parsed: unknown;
  try {
    parsed = JSON.parse(md.meta ?? '');
  } catch (e) {
    throw new CheckpointError(`${path}: metadata is not valid JSON (${(e as Error).message})`);
  }
  const meta = checkMeta(parsed, path);
  const host = (name: string): HostTensor => {
    const e = st.tensors.get(name);
    if (!e) throw new CheckpointError(`${path}: tensor '${name}' is missing`);
    let data: Float32Array | Int32Array;
    try {
      data = decodeEntry(e, `${path}: ${name}`);
    } catch (err) {
      throw new CheckpointError(`${path}: tensor '${name}': ${(err as Error).message}`);
    }
    return { shape: [...e.shape], dtype: data instanceof Int32Array ? 'i32' : 'f32', data };
  };
  const model = new Map<string, HostTensor>();
  for (const k of meta.modelKeys) model.set(k, host(`model.${k}`));
  const optim: AdamWState = { params: {} };
  for (const [name, step] of Object.entries(meta.optimizer.steps)) {
    const m = host(`optim.m.${name}`);
    const v = host(`optim.v.${name}`);
    const w = model.get(name);
    const shape = (t: HostTensor) => `[${t.shape.join(', ')}]`;
    if (m.dtype !== 'f32' || v.dtype !== 'f32' || (w && w.dtype !== 'f32'))
      throw new CheckpointError(`${path}: parameter '${name}' or its AdamW moments are not float tensors`);
    if (shape(m) !== shape(v) || (w && shape(w) !== shape(m)))
      throw new CheckpointError(
        `${path}: parameter '${name}' ${w ? shape(w) : '(not stored)'} and its AdamW moments ` +
          `m ${shape(m)} / v ${shape(v)} differ in shape`,
      );
    optim.params[name] = { step, m, v };
  }
  return { path, meta, model, optim };
}

/**
 * Checks the parts of a checkpoint's meta JSON that loading and resuming rely on (the tensors are
 * covered by the checksum, the metadata is not), naming the first field that is wrong.
 */
function checkMeta(v: unknown, path: string): CheckpointMeta {
  const bad = (m: string): never => {
    throw new CheckpointError(`${path}: checkpoint metadata: ${m}`);
  };
  const isObj = (x: unknown): x is Record<string, unknown> =>
    x !== null && typeof x === 'object' && !Array.isArray(x);
  const count = (x: unknown) => typeof x === 'number' && Number.isSafeInteger(x) && x >= 0;
  if (!isObj(v))
    return bad(
      `meta is ${v === null ? 'null' : Array.isArray(v) ? 'an array' : `a ${typeof v}`}, not a JSON object`,
    );
  if (v.version !== CHECKPOINT_VERSION)
    bad(`checkpoint version ${JSON.stringify(v.version)}, this build reads ${CHECKPOINT_VERSION}`);
  const keys = v.modelKeys;
  if (!Array.isArray(keys) || !keys.every((k) => typeof k === 'string'))
    bad('modelKeys is not a list of tensor names');
  if (new Set(keys as string[]).size !== (keys as string[]).length) bad('modelKeys names a tensor twice');
  const opt = v.optimizer;
  if (!isObj(opt) || !isObj(opt.steps)) return bad('optimizer.steps is not an object of step counts');
  for (const [name, step] of Object.entries(opt.steps))
    if (!count(step) || name === '__proto__')
      bad(`optimizer.steps['${name}'] is ${JSON.stringify(step)}, not a step count`);
  const s = v.state;
  if (!isObj(s)) return bad('state (the loop state) is not an object');
  for (const f of ['step', 'epoch', 'batchInEpoch', 'orderRng', 'augRng'])
    if (!count(s[f])) bad(`state.${f} is ${JSON.stringify(s[f])}, not a non-negative integer`);
  if (s.perm !== null && !(Array.isArray(s.perm) && s.perm.every(count)))
    bad('state.perm is neither null nor a list of indices');
  if (typeof s.finished !== 'boolean') bad('state.finished is not a boolean');
  if (!isObj(v.config)) bad('config is not an object');
  if (!isObj(v.schedule)) bad('schedule is not an object');
  const d = v.dataset;
  if (!isObj(d) || typeof d.layout !== 'string' || !count(d.trainSize) || typeof d.trainIds !== 'string')
    bad('dataset is not a {layout, trainSize, trainIds} fingerprint');
  if (typeof v.frozenHash !== 'string') bad('frozenHash is not a string');
  return v as unknown as CheckpointMeta;
}

/**
 * Loads a checkpoint's model tensors and optimizer state into `model` / `opt` (built from the same
 * configuration). The stored keys must be exactly the model's trainable parameters and buffers,
 * and the model's frozen weights must hash to the checkpoint's `frozenHash`.
 */
export async function restoreCheckpoint(model: SamLST, opt: AdamW, ck: Checkpoint): Promise<void> {
  const want = checkpointModelKeys(model);
  const have = ck.meta.modelKeys;
  const missing = want.filter((k) => !ck.model.has(k));
  const extra = have.filter((k) => !want.includes(k));
  if (missing.length || extra.length)
    throw new CheckpointError(
      `${ck.path}: does not match the model's trainable set` +
        (missing.length
          ? `; missing ${missing.slice(0, 5).join(', ')}${missing.length > 5 ? ', ...' : ''}`
          : '') +
        (extra.length
          ? `; unexpected ${extra.slice(0, 5).join(', ')}${extra.length > 5 ? ', ...' : ''}`
          : ''),
    );
  const fh = await frozenHash(model);
  if (fh !== ck.meta.frozenHash)
    throw new CheckpointError(
      `${ck.path}: the frozen weights differ from the checkpoint's run (frozen hash ${fh.slice(0, 12)} != ` +
        `${ck.meta.frozenHash.slice(0, 12)}): was --sam-checkpoint / --resnet-checkpoint / --seed changed?`,
    );
  const report = model.loadStateDict(ck.model, { strict: false, source: ck.path });
  if (report.wrongShape.length)
    throw new CheckpointError(`${ck.path}: wrong shapes: ${report.wrongShape.map((w) => w.key).join(', ')}`);
  opt.importState(ck.optim);
}

/** The full model (every parameter and buffer) as PyTorch-style safetensors bytes. */
export async function stateDictBytes(
  model: SamLST,
  extraMeta: Record<string, string> = {},
): Promise<Uint8Array> {
  const entries = new Map<string, StWriteEntry>();
  for (const [k, t] of model.stateDict()) entries.set(k, entry(await t.toHost()));
  return writeSafetensors(entries, {
    format: STATE_DICT_FORMAT,
    keys: 'PyTorch SAM_LST state_dict names (sam.*, CNN_encoder.*); num_batches_tracked stored as int32',
    sha256: tensorChecksum(entries),
    ...extraMeta,
  });
}

/** Writes the full state_dict export atomically. */
export async function exportStateDict(
  model: SamLST,
  path: string,
  extraMeta: Record<string, string> = {},
): Promise<void> {
  writeFileAtomic(path, await stateDictBytes(model, extraMeta));
}

/** sha256 of the training slice ids, for checking that --resume sees the same data. */
export function datasetFingerprint(layout: string, ids: readonly string[]): DatasetFingerprint {
  return {
    layout,
    trainSize: ids.length,
    trainIds: createHash('sha256').update(ids.join('\n')).digest('hex'),
  };
}
