/**
 * PyTorch checkpoint reader (host-side): `torch.save` files in
 *   (a) the zip format (torch >= 1.6): `<folder>/data.pkl` + `<folder>/data/<key>` raw storages;
 *       the folder name varies (torch names it after the file: `tiny_sam_lst/`, `archive/`, ...);
 *   (b) the legacy format (`_use_new_zipfile_serialization=False`, torch < 1.6): a stream of
 *       pickles (magic number, protocol version, sys_info, the object with persistent storage ids,
 *       the list of storage keys) followed by each storage as an int64 element count + raw bytes.
 * Tensors are rebuilt from (storage, storage offset, sizes, strides) and materialised as
 * contiguous row-major arrays: f32 for float32/float16/bfloat16/float64 storages, i32 for integer
 * and bool storages (int64 values are range-checked). 0-d tensors have shape [].
 *
 * The pickle VM (pickle.ts) resolves only the torch globals whitelisted here; anything else in the
 * file (os.system, builtins.eval, a pickled nn.Module class, argparse.Namespace...) is refused.
 * Errors name the file and what is wrong.
 */
import { fmt, numel } from '../util/shape.js';
import type { HostTensor } from '../tensor/host.js';
import {
  describe,
  PickleError,
  PyDict,
  PyGlobal,
  PyList,
  PyObject,
  PyTuple,
  unpickle,
  type GlobalSpec,
  type PyValue,
} from './pickle.js';
import { looksLikeZip, ZipArchive, ZipError } from './zip.js';

export type TorchDType =
  'float32' | 'float16' | 'bfloat16' | 'float64' | 'int64' | 'int32' | 'int16' | 'int8' | 'uint8' | 'bool';

const ITEMSIZE: Record<TorchDType, number> = {
  float32: 4,
  float16: 2,
  bfloat16: 2,
  float64: 8,
  int64: 8,
  int32: 4,
  int16: 2,
  int8: 1,
  uint8: 1,
  bool: 1,
};

const STORAGE_CLASSES: Record<string, TorchDType> = {
  FloatStorage: 'float32',
  HalfStorage: 'float16',
  BFloat16Storage: 'bfloat16',
  DoubleStorage: 'float64',
  LongStorage: 'int64',
  IntStorage: 'int32',
  ShortStorage: 'int16',
  CharStorage: 'int8',
  ByteStorage: 'uint8',
  BoolStorage: 'bool',
};

/** A tensor read from a checkpoint: a HostTensor plus the dtype it was stored with. */
export interface PthTensor extends HostTensor {
  torchDtype: TorchDType;
}

export interface ReadPthOptions {
  /**
   * Where the state_dict sits inside a wrapping dict: a key ('state_dict') or a path of keys
   * (['checkpoint', 'model']). Without it the top-level object must be the state_dict, unless
   * `unwrap` finds one.
   */
  stateDictKey?: string | readonly string[];
  /**
   * Look for the state_dict under the first of these top-level keys that holds a dict
   * (true: DEFAULT_WRAPPER_KEYS). Used only when the top-level dict is not itself a state_dict.
   */
  unwrap?: boolean | readonly string[];
  /** Verify zip CRC-32s (default true). */
  checkCrc?: boolean;
}

export const DEFAULT_WRAPPER_KEYS: readonly string[] = [
  'state_dict',
  'model',
  'model_state_dict',
  'net',
  'network',
  'module',
];

export class PthError extends Error {
  override name = 'PthError';
}

/** A storage reference from a persistent id (a legacy storage view has an element offset). */
interface StorageRef {
  key: string;
  dtype: TorchDType;
  /** Elements visible through this reference. */
  numel: number;
  /** Element offset into the root storage (legacy views; 0 otherwise). */
  offset: number;
}

/** What `_rebuild_tensor_v2` returns before any data is touched. */
export interface TensorRef {
  storage: StorageRef;
  storageOffset: number;
  shape: number[];
  stride: number[];
}

const TENSOR = 'torch.Tensor';
const STORAGE = 'torch.Storage';

function isTensor(v: PyValue | undefined): v is PyObject {
  return v instanceof PyObject && v.type === TENSOR;
}

function intList(v: PyValue | undefined, what: string): number[] {
  if (!(v instanceof PyTuple) && !(v instanceof PyList)) throw new Error(`${what} is a ${describe(v)}`);
  return v.items.map((x) => {
    if (typeof x !== 'number' || !Number.isSafeInteger(x) || x < 0)
      throw new Error(`${what} holds ${String(x)}, not a non-negative integer`);
    return x;
  });
}

function rebuildTensor(args: readonly PyValue[]): PyObject {
  const [storage, offset, size, stride] = args;
  if (!(storage instanceof PyObject) || storage.type !== STORAGE)
    throw new Error(`first argument is a ${describe(storage)}, not a storage`);
  if (typeof offset !== 'number' || !Number.isSafeInteger(offset) || offset < 0)
    throw new Error(`bad storage offset ${String(offset)}`);
  const shape = intList(size, 'size');
  const strides = intList(stride, 'stride');
  if (strides.length !== shape.length)
    throw new Error(`size ${fmt(shape)} and stride ${fmt(strides)} differ in rank`);
  const ref: TensorRef = {
    storage: storage.payload as StorageRef,
    storageOffset: offset,
    shape,
    stride: strides,
  };
  return new PyObject(TENSOR, ref);
}

function rebuildParameter(args: readonly PyValue[]): PyValue {
  const data = args[0];
  if (!isTensor(data)) throw new Error(`data is a ${describe(data)}, not a tensor`);
  return data;
}

/** The torch globals a state_dict checkpoint may reference (plus pickle.ts's BASE_GLOBALS). */
export const TORCH_GLOBALS: ReadonlyMap<string, GlobalSpec> = new Map<string, GlobalSpec>([
  ['torch._utils._rebuild_tensor_v2', { call: rebuildTensor }],
  ['torch._utils._rebuild_tensor', { call: rebuildTensor }],
  ['torch._utils._rebuild_parameter', { call: rebuildParameter }],
  ['torch._utils._rebuild_parameter_with_state', { call: rebuildParameter }],
  ...Object.entries(STORAGE_CLASSES).map(([cls, dtype]): [string, GlobalSpec] => [
    `torch.${cls}`,
    { info: dtype },
  ]),
]);

function storageDtype(v: PyValue | undefined): TorchDType {
  if (!(v instanceof PyGlobal) || typeof v.info !== 'string')
    throw new Error(`storage type is a ${describe(v)}, not a torch storage class`);
  return v.info as TorchDType;
}

function count(v: PyValue | undefined, what: string): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0)
    throw new Error(`${what} is ${String(v)}, not a non-negative integer`);
  return v;
}

function keyOf(v: PyValue | undefined, what: string): string {
  if (typeof v === 'string') return v;
  if (typeof v === 'number') return String(v);
  throw new Error(`${what} is a ${describe(v)}`);
}

// ------------------------------------------------------------------ reading

/** Raw bytes of each storage, by key (little-endian, as torch writes them). */
type StorageSource = (ref: StorageRef, tensorName: string) => Uint8Array;

interface Parsed {
  root: PyValue;
  storage: StorageSource;
  format: 'zip' | 'legacy';
}

const LEGACY_MAGIC = 0x1950a86a20f9469cfc6cn;
const LEGACY_PROTOCOL = 1001;

function parsePth(bytes: Uint8Array, file: string, opts: ReadPthOptions): Parsed {
  const fail = (m: string): never => {
    throw new PthError(`${file}: ${m}`);
  };
  if (bytes.byteLength === 0) fail('the file is empty');
  try {
    if (looksLikeZip(bytes)) return parseZip(bytes, file, opts);
    if (bytes[0] === 0x80) return parseLegacy(bytes, file);
  } catch (e) {
    if (e instanceof PickleError || e instanceof ZipError) throw new PthError(e.message, { cause: e });
    throw e;
  }
  if (bytes.byteLength > 262 && latin1(bytes.subarray(257, 262)) === 'ustar')
    fail('this is a tar-based torch checkpoint (torch < 0.4), which is not supported');
  return fail('not a PyTorch checkpoint (neither a zip archive nor a legacy pickle stream)');
}

function parseZip(bytes: Uint8Array, file: string, opts: ReadPthOptions): Parsed {
  const fail = (m: string): never => {
    throw new PthError(`${file}: ${m}`);
  };
  const zip = new ZipArchive(bytes, file, { checkCrc: opts.checkCrc ?? true });
  const pkls = zip.names().filter((n) => /^([^/]+\/)?data\.pkl$/.test(n));
  if (pkls.length === 0)
    fail(
      `zip archive has no data.pkl record: not a torch.save checkpoint (entries: ${zip.names().slice(0, 5).join(', ')})`,
    );
  if (pkls.length > 1) fail(`zip archive has several data.pkl records (${pkls.join(', ')})`);
  const pklName = pkls[0]!;
  const prefix = pklName.slice(0, pklName.length - 'data.pkl'.length);
  const bo = `${prefix}byteorder`;
  if (zip.has(bo)) {
    const order = latin1(zip.read(bo)).trim();
    if (order !== 'little') fail(`storages are stored ${order}-endian; only little-endian is supported`);
  }
  const declared = new Map<string, StorageRef>();
  const persistentLoad = (pid: PyValue): PyValue => {
    if (!(pid instanceof PyTuple) || pid.items[0] !== 'storage')
      throw new Error(
        `unsupported persistent id (${describe(pid)}${pid instanceof PyTuple ? ` '${String(pid.items[0])}'` : ''})`,
      );
    const [, cls, key, , n] = pid.items;
    const ref: StorageRef = {
      key: keyOf(key, 'storage key'),
      dtype: storageDtype(cls),
      numel: count(n, 'storage size'),
      offset: 0,
    };
    const prev = declared.get(ref.key);
    if (prev && (prev.dtype !== ref.dtype || prev.numel !== ref.numel))
      throw new Error(`storage '${ref.key}' is declared twice with different types/sizes`);
    declared.set(ref.key, ref);
    return new PyObject(STORAGE, ref);
  };
  const { value } = unpickle(zip.read(pklName), {
    source: `${file} (${pklName})`,
    globals: TORCH_GLOBALS,
    persistentLoad,
  });
  const cache = new Map<string, Uint8Array>();
  const storage: StorageSource = (ref, tensorName) => {
    let data = cache.get(ref.key);
    if (!data) {
      const name = `${prefix}data/${ref.key}`;
      if (!zip.has(name))
        fail(`tensor '${tensorName}': storage record '${name}' is missing from the archive`);
      data = zip.read(name);
      const want = ref.numel * ITEMSIZE[ref.dtype];
      if (data.byteLength !== want)
        fail(
          `tensor '${tensorName}': storage record '${name}' has ${data.byteLength} bytes, ` +
            `a ${ref.dtype} storage of ${ref.numel} elements needs ${want}`,
        );
      cache.set(ref.key, data);
    }
    return data;
  };
  return { root: value, storage, format: 'zip' };
}

function parseLegacy(bytes: Uint8Array, file: string): Parsed {
  const fail = (m: string): never => {
    throw new PthError(`${file}: ${m}`);
  };
  const src = `${file} (legacy format)`;
  const magic = unpickle(bytes, { source: `${src} magic number` });
  if (magic.value !== LEGACY_MAGIC)
    fail('not a PyTorch checkpoint: a pickle without the torch magic number (invalid magic number)');
  const proto = unpickle(bytes, { source: `${src} protocol version`, start: magic.end });
  if (proto.value !== LEGACY_PROTOCOL) fail(`unsupported legacy protocol version ${String(proto.value)}`);
  const sysInfo = unpickle(bytes, { source: `${src} sys_info`, start: proto.end });
  if (sysInfo.value instanceof PyDict && sysInfo.value.get('little_endian') === false)
    fail('the checkpoint was written on a big-endian machine; only little-endian is supported');
  // Root storages by key; legacy views (view_metadata) reference a slice of one.
  const roots = new Map<string, { dtype: TorchDType; numel: number }>();
  const persistentLoad = (pid: PyValue): PyValue => {
    if (!(pid instanceof PyTuple)) throw new Error(`unsupported persistent id (${describe(pid)})`);
    const kind = pid.items[0];
    if (kind === 'module') throw new Error('the checkpoint pickles a whole nn.Module; save its state_dict()');
    if (kind !== 'storage') throw new Error(`unsupported persistent id '${String(kind)}'`);
    const [, cls, rootKey, , n, view] = pid.items;
    const dtype = storageDtype(cls);
    const key = keyOf(rootKey, 'storage key');
    const total = count(n, 'storage size');
    const prev = roots.get(key);
    if (prev && (prev.dtype !== dtype || prev.numel !== total))
      throw new Error(`storage '${key}' is declared twice with different types/sizes`);
    roots.set(key, { dtype, numel: total });
    let ref: StorageRef = { key, dtype, numel: total, offset: 0 };
    if (view !== undefined && view !== null) {
      if (!(view instanceof PyTuple) || view.items.length !== 3) throw new Error('bad storage view metadata');
      const off = count(view.items[1], 'view offset');
      const size = count(view.items[2], 'view size');
      if (off + size > total)
        throw new Error(`storage view [${off}, ${off + size}) exceeds storage '${key}' (${total})`);
      ref = { key, dtype, numel: size, offset: off };
    }
    return new PyObject(STORAGE, ref);
  };
  const main = unpickle(bytes, { source: src, start: sysInfo.end, globals: TORCH_GLOBALS, persistentLoad });
  const keys = unpickle(bytes, { source: `${src} storage key list`, start: main.end });
  if (!(keys.value instanceof PyList)) fail('the storage key list is missing or malformed');
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const located = new Map<string, Uint8Array>();
  let p = keys.end;
  for (const k of (keys.value as PyList).items) {
    const key = typeof k === 'string' ? k : fail(`storage key list holds a ${describe(k)}`);
    const root = roots.get(key) ?? fail(`storage '${key}' is listed but no tensor references it`);
    if (p + 8 > bytes.byteLength)
      fail(
        `storage '${key}': its size field at offset ${p} runs past the end of the file (${bytes.byteLength} bytes): truncated`,
      );
    const n = dv.getBigInt64(p, true);
    if (n !== BigInt(root.numel))
      fail(`storage '${key}': the file stores ${n} elements, the pickle declares ${root.numel}: corrupt`);
    const start = p + 8;
    const end = start + root.numel * ITEMSIZE[root.dtype];
    if (end > bytes.byteLength)
      fail(
        `storage '${key}': data [${start}, ${end}) runs past the end of the file (${bytes.byteLength} bytes): truncated`,
      );
    located.set(key, bytes.subarray(start, end));
    p = end;
  }
  for (const key of roots.keys())
    if (!located.has(key)) fail(`storage '${key}' is referenced but missing from the storage key list`);
  const storage: StorageSource = (ref) => located.get(ref.key)!;
  return { root: main.value, storage, format: 'legacy' };
}

// ------------------------------------------------------------------ tensors

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
let f16Table: Float32Array | undefined;

function halfTable(): Float32Array {
  if (!f16Table) {
    f16Table = new Float32Array(65536);
    for (let h = 0; h < 65536; h++) {
      const s = h & 0x8000 ? -1 : 1;
      const e = (h >> 10) & 0x1f;
      const m = h & 0x3ff;
      f16Table[h] =
        e === 0 ? s * m * 2 ** -24 : e === 31 ? (m ? NaN : s * Infinity) : s * (1 + m / 1024) * 2 ** (e - 15);
    }
  }
  return f16Table;
}

/**
 * Row-major walk over a view: calls `row(start, step, count, outPos)` for each run along the last
 * dimension (start/step in storage elements). A contiguous view is one run.
 */
function forEachRun(
  shape: readonly number[],
  stride: readonly number[],
  offset: number,
  row: (start: number, step: number, count: number, outPos: number) => void,
): void {
  const n = numel(shape);
  let acc = 1;
  let contiguous = true;
  for (let d = shape.length - 1; d >= 0; d--) {
    if (shape[d] !== 1 && stride[d] !== acc) contiguous = false;
    acc *= shape[d]!;
  }
  if (contiguous || shape.length === 0) {
    row(offset, 1, n, 0);
    return;
  }
  const r = shape.length;
  const inner = shape[r - 1]!;
  const step = stride[r - 1]!;
  const ctr = new Array<number>(r - 1).fill(0);
  let cur = offset;
  for (let o = 0; o < n; o += inner) {
    row(cur, step, inner, o);
    for (let d = r - 2; d >= 0; d--) {
      ctr[d]!++;
      cur += stride[d]!;
      if (ctr[d]! < shape[d]!) break;
      cur -= stride[d]! * shape[d]!;
      ctr[d] = 0;
    }
  }
}

/** Largest element count of a view whose storage holds fewer elements (stride-0 expansions). */
const MAX_EXPANDED_ELEMENTS = 1 << 24;

/** Decodes a tensor view of a raw storage to a contiguous f32/i32 array. */
function materialize(ref: TensorRef, raw: Uint8Array, name: string, file: string): PthTensor {
  const fail = (m: string): never => {
    throw new PthError(`${file}: tensor '${name}': ${m}`);
  };
  const { storage, shape, stride } = ref;
  const n = numel(shape);
  if (!Number.isSafeInteger(n)) fail(`shape ${fmt(shape)} is too large`);
  const dtype = storage.dtype;
  const isFloat = dtype === 'float32' || dtype === 'float16' || dtype === 'bfloat16' || dtype === 'float64';
  // Validate the view against the storage before allocating anything for it.
  if (n > 0) {
    let last = ref.storageOffset;
    for (let d = 0; d < shape.length; d++) last += (shape[d]! - 1) * stride[d]!;
    if (!(last < storage.numel))
      fail(
        `view (offset ${ref.storageOffset}, size ${fmt(shape)}, stride ${fmt(stride)}) reaches element ${last} ` +
          `of a storage with ${storage.numel} elements: the file is corrupt`,
      );
  }
  // Only zero or overlapping strides make a view larger than its storage (an expand()ed tensor);
  // such a view may not blow a small storage up into more memory than the reader will allocate.
  if (n > storage.numel && n > MAX_EXPANDED_ELEMENTS)
    fail(
      `view of size ${fmt(shape)} (stride ${fmt(stride)}) repeats a storage of ${storage.numel} elements ` +
        `into ${n} elements, more than the ${MAX_EXPANDED_ELEMENTS} accepted for an expanded view`,
    );
  const out = isFloat ? new Float32Array(n) : new Int32Array(n);
  const tensor: PthTensor = {
    shape: [...shape],
    dtype: isFloat ? 'f32' : 'i32',
    data: out,
    torchDtype: dtype,
  };
  if (n === 0) return tensor;
  if (!LITTLE_ENDIAN) fail('reading checkpoints needs a little-endian host');
  const item = ITEMSIZE[dtype];
  // Elements of this reference (legacy views start `storage.offset` elements into the root).
  let bytes = raw.subarray(storage.offset * item, (storage.offset + storage.numel) * item);
  if (bytes.byteOffset % item !== 0) bytes = new Uint8Array(bytes); // aligned copy (Buffer.slice would not copy)
  const buf = bytes.buffer;
  const bo = bytes.byteOffset;
  const m = storage.numel;
  const walk = (row: (start: number, step: number, count: number, o: number) => void) =>
    forEachRun(shape, stride, ref.storageOffset, row);
  /** Plain numeric copy (the typed-array assignment converts f64 → f32 and narrows nothing else). */
  const copy = (s: Float32Array | Float64Array | Int32Array | Int16Array | Int8Array | Uint8Array) =>
    walk((start, step, count, o) => {
      if (step === 1 && s.constructor === out.constructor) out.set(s.subarray(start, start + count), o);
      else for (let j = 0; j < count; j++) out[o + j] = s[start + j * step]!;
    });
  switch (dtype) {
    case 'float32':
      copy(new Float32Array(buf, bo, m));
      break;
    case 'float64':
      copy(new Float64Array(buf, bo, m));
      break;
    case 'int32':
      copy(new Int32Array(buf, bo, m));
      break;
    case 'int16':
      copy(new Int16Array(buf, bo, m));
      break;
    case 'int8':
      copy(new Int8Array(buf, bo, m));
      break;
    case 'uint8':
    case 'bool':
      copy(new Uint8Array(buf, bo, m));
      break;
    case 'float16': {
      const s = new Uint16Array(buf, bo, m);
      const t = halfTable();
      walk((start, step, count, o) => {
        for (let j = 0; j < count; j++) out[o + j] = t[s[start + j * step]!]!;
      });
      break;
    }
    case 'bfloat16': {
      const s = new Uint16Array(buf, bo, m);
      const u = new Uint32Array(out.buffer);
      walk((start, step, count, o) => {
        for (let j = 0; j < count; j++) u[o + j] = s[start + j * step]! << 16;
      });
      break;
    }
    case 'int64': {
      const s = new Int32Array(buf, bo, m * 2);
      walk((start, step, count, o) => {
        for (let j = 0; j < count; j++) {
          const k = (start + j * step) * 2;
          const lo = s[k]!;
          const hi = s[k + 1]!;
          if (hi !== lo >> 31) {
            const v = (BigInt(hi) << 32n) | BigInt(lo >>> 0);
            fail(`int64 value ${v} (element ${o + j}) does not fit in int32`);
          }
          out[o + j] = lo;
        }
      });
      break;
    }
  }
  return tensor;
}

// ------------------------------------------------------------------ API

/** The checkpoint's top-level object, with tensors left as unread references. */
export interface PthObject {
  format: 'zip' | 'legacy';
  root: PyValue;
  /** Reads one tensor value found in `root` (a PyObject of type 'torch.Tensor'). */
  tensor(v: PyValue, name: string): PthTensor;
}

/** Parses a checkpoint without reading any tensor data (to inspect wrappers, metadata...). */
export function readPthObject(bytes: Uint8Array, fileName: string, opts: ReadPthOptions = {}): PthObject {
  const parsed = parsePth(bytes, fileName, opts);
  return {
    format: parsed.format,
    root: parsed.root,
    tensor: (v, name) => {
      if (!isTensor(v)) throw new PthError(`${fileName}: '${name}' is a ${describe(v)}, not a tensor`);
      const ref = v.payload as TensorRef;
      let raw: Uint8Array;
      try {
        raw = parsed.storage(ref.storage, name);
      } catch (e) {
        if (e instanceof ZipError) throw new PthError(`${e.message} (tensor '${name}')`, { cause: e });
        throw e;
      }
      return materialize(ref, raw, name, fileName);
    },
  };
}

function isStateDict(d: PyDict): boolean {
  return d.entries().every(([k, v]) => typeof k === 'string' && isTensor(v));
}

function summary(d: PyDict): string {
  const parts = d.entries().map(([k, v]) => `${String(k)}: ${describe(v)}`);
  return parts.slice(0, 6).join(', ') + (parts.length > 6 ? `, ... (${parts.length} entries)` : '');
}

/**
 * Reads a state_dict checkpoint: name → tensor, in file order. Handles the zip and legacy
 * formats, tensor views, and (with `stateDictKey` / `unwrap`) checkpoints that wrap the
 * state_dict in a dict with other entries.
 */
export function readPth(
  bytes: Uint8Array,
  fileName: string,
  opts: ReadPthOptions = {},
): Map<string, PthTensor> {
  const fail = (m: string): never => {
    throw new PthError(`${fileName}: ${m}`);
  };
  const obj = readPthObject(bytes, fileName, opts);
  let d = obj.root;
  if (!(d instanceof PyDict)) return fail(`the checkpoint holds a ${describe(d)}, not a dict of tensors`);
  let where = 'top level';
  if (opts.stateDictKey !== undefined) {
    const path = typeof opts.stateDictKey === 'string' ? [opts.stateDictKey] : opts.stateDictKey;
    for (const k of path) {
      if (!(d instanceof PyDict)) return fail(`'${where}' is a ${describe(d)}, not a dict`);
      const next = d.get(k);
      if (next === undefined) return fail(`no key '${k}' at ${where} (entries: ${summary(d)})`);
      d = next;
      where = `'${k}'`;
    }
    if (!(d instanceof PyDict)) return fail(`${where} is a ${describe(d)}, not a state_dict`);
  } else if (!isStateDict(d) && opts.unwrap) {
    const keys = opts.unwrap === true ? DEFAULT_WRAPPER_KEYS : opts.unwrap;
    const top = d;
    const k = keys.find((c) => top.get(c) instanceof PyDict);
    if (k === undefined)
      return fail(`no state_dict under any of the keys ${keys.join(', ')} (entries: ${summary(top)})`);
    d = top.get(k) as PyDict;
    where = `'${k}'`;
  }
  const sd = d;
  const out = new Map<string, PthTensor>();
  for (const [k, v] of sd.entries()) {
    if (typeof k !== 'string') fail(`${where} has a ${describe(k)} key; a state_dict has str keys`);
    const name = k as string;
    if (!isTensor(v))
      fail(
        `${where === 'top level' ? 'the top-level dict' : where} is not a state_dict: '${name}' is a ${describe(v)}` +
          ` (entries: ${summary(sd)}); pass stateDictKey or unwrap to select the state_dict inside a wrapper`,
      );
    out.set(name, obj.tensor(v, name));
  }
  return out;
}

function latin1(b: Uint8Array): string {
  return String.fromCharCode(...b.subarray(0, 64));
}
