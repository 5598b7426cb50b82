/**
 * HDF5 test volumes (`test_vol_h5/<case>.npy.h5`, datasets `image` and `label`, each (D, H, W))
 * via h5wasm's Node build (host filesystem access, imported lazily so browser bundles that never
 * call this do not pull it in). Errors name the file and the failing HDF5 step.
 *
 * Hostile files: the superblock signature is checked first; a dataset's declared size is checked
 * against the file (and a 1 GiB cap) before anything is allocated for it; and HDF5 runs in an
 * instance that is replaced after any failure (see `live` below), so one corrupt file cannot
 * leave the library broken for the rest of the process.
 */
import type * as H5 from 'h5wasm/node';
import { existsSync, openSync, readSync, closeSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

export class H5Error extends Error {
  override name = 'H5Error';
}

type H5Module = typeof H5;

let ready: Promise<H5Module> | null = null;

/** The h5wasm module, initialised once, with HDF5 errors thrown instead of printed. */
export function h5(): Promise<H5Module> {
  ready ??= import('h5wasm/node').then(async (mod) => {
    const m = await mod.ready;
    m.activate_throwing_error_handler();
    return mod;
  });
  return ready;
}

/** The most specific line of an HDF5 error stack ("file signature not found", ...). */
function h5Reason(e: unknown): string {
  const msg = e instanceof Error ? e.message : String(e);
  const lines = msg
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => /^#\d+:/.test(l));
  const last = lines[lines.length - 1];
  if (!last) return msg.split('\n')[0] ?? msg;
  const m = /\):\s*(.*)$/.exec(last);
  return m?.[1] ?? last;
}

const HDF5_SIG = [0x89, 0x48, 0x44, 0x46, 0x0d, 0x0a, 0x1a, 0x0a];

/** Cheap pre-check: the file exists, is non-empty, and has an HDF5 superblock signature. */
export function checkH5File(path: string): void {
  if (!existsSync(path)) throw new H5Error(`${path}: file not found`);
  const size = statSync(path).size;
  if (size === 0) throw new H5Error(`${path}: file is empty`);
  const fd = openSync(path, 'r');
  try {
    // The superblock may sit at 0, 512, 1024, 2048, … (user block).
    for (let off = 0; off < size; off = off === 0 ? 512 : off * 2) {
      const b = new Uint8Array(8);
      if (readSync(fd, b, 0, 8, off) < 8) break;
      if (HDF5_SIG.every((v, i) => b[i] === v)) return;
      if (off > 1 << 20) break;
    }
  } finally {
    closeSync(fd);
  }
  throw new H5Error(`${path}: not an HDF5 file (no superblock signature)`);
}

export interface H5Array {
  shape: number[];
  dtype: string;
  data:
    | Float32Array
    | Float64Array
    | Int32Array
    | Uint8Array
    | Int16Array
    | Uint16Array
    | Int8Array
    | Uint32Array;
}

/** Largest dataset read, in bytes (h5wasm's WebAssembly heap is capped at 2 GiB and never shrinks). */
const MAX_DATASET_BYTES = 2 ** 30;
/** Bound on how much larger than the file a dataset's data can be through deflate/shuffle/... */
const MAX_FILTER_RATIO = 1100;
/** HDF5 filters that cannot expand data more than DEFLATE can (deflate, shuffle, fletcher32, nbit). */
const BOUNDED_FILTERS = new Set([1, 2, 3, 5]);

/**
 * Refuses a dataset whose declared size the file cannot hold, before h5wasm allocates it: HDF5
 * reads an unwritten chunk as fill values, so a 10 kB file can declare gigabytes, and h5wasm
 * grows its heap (permanently) to the declared size before the read fails or returns zeros.
 */
function checkDeclaredSize(
  path: string,
  name: string,
  shape: number[],
  itemSize: number,
  filters: readonly { id: number }[],
): number {
  const fileBytes = statSync(path).size;
  const bytes = shape.reduce((a, b) => a * b, 1) * itemSize;
  const what = `dataset '${name}' declares ${bytes} bytes (shape (${shape.join(', ')}) of ${itemSize}-byte items)`;
  if (!Number.isSafeInteger(bytes) || bytes > MAX_DATASET_BYTES)
    throw new H5Error(`${path}: ${what}, more than the ${MAX_DATASET_BYTES}-byte limit of the HDF5 reader`);
  const bounded = filters.every((f) => BOUNDED_FILTERS.has(f.id));
  const ratio = filters.length === 0 ? 1 : bounded ? MAX_FILTER_RATIO : Infinity;
  if (bytes > fileBytes * ratio + 4096)
    throw new H5Error(
      `${path}: ${what}, more than the ${fileBytes}-byte file can hold` +
        `${filters.length ? ' even compressed' : ''}: the file is corrupt or truncated`,
    );
  return bytes;
}

// ------------------------------------------------------------------ reading, isolated

/** The low-level h5wasm (Emscripten) module: the calls readH5Datasets makes. */
interface RawH5 {
  open(path: string, mode: number, trackOrder: boolean, libverLow: number, libverHigh: number): bigint;
  close_file(id: bigint): number;
  get_names(id: bigint, path: string, recursive: boolean): string[];
  get_type(id: bigint, path: string): number;
  get_dataset_metadata(id: bigint, path: string): RawMeta;
  get_dataset_filters(id: bigint, path: string): { id: number; name: string }[];
  get_dataset_data(id: bigint, path: string, c: null, o: null, s: null, ptr: bigint): number;
  activate_throwing_error_handler(): void;
  _malloc(n: number): number;
  _free(p: number): void;
  HEAPU8: Uint8Array;
  H5F_ACC_RDONLY: number;
  H5G_DATASET: number;
}

interface RawMeta {
  type: number;
  size: number;
  signed: boolean;
  littleEndian: boolean;
  vlen: boolean;
  shape: number[] | null;
}

type Factory = (arg: Record<string, unknown>) => Promise<RawH5>;

/**
 * readH5Datasets runs HDF5 in an h5wasm instance of its own, and replaces it after any HDF5
 * failure. h5wasm turns HDF5 errors into JavaScript exceptions thrown out of the middle of the C
 * library, which leaves objects open and internal state half-updated: in a long fuzzing run the
 * heap grew by ~25 kB per corrupt file, files that had failed once stayed open (so a fixed file
 * at the same path kept failing), and after ~2,000 corrupt files the library aborted
 * ("Aborted(native code called abort())"), after which every HDF5 call in the process failed. A
 * fresh instance after each failure costs tens of milliseconds (the compiled WebAssembly module is
 * reused); an instance whose heap grew past RECYCLE_BYTES is replaced too, since a WebAssembly
 * heap never shrinks.
 */
let live: Promise<RawH5> | null = null;
let compiled: WebAssembly.Module | undefined;
const RECYCLE_BYTES = 256 * 2 ** 20;
/** Heap growth allowed for HDF5's metadata work on one file, beyond twice the file's size. */
const META_HEAP_BYTES = 16 * 2 ** 20;
/** HDF5's own messages (printed by the library rather than thrown), for error reports. */
const printed: string[] = [];

/** URL of h5wasm's Emscripten module factory (import.meta.resolve needs Node >= 20.6). */
function utilUrl(): string {
  const meta = import.meta as { resolve?: (s: string) => string };
  if (meta.resolve) return new URL('./hdf5_util.js', meta.resolve('h5wasm/node')).href;
  for (const dir of createRequire(import.meta.url).resolve.paths('h5wasm') ?? []) {
    const p = join(dir, 'h5wasm', 'dist', 'node', 'hdf5_util.js');
    if (existsSync(p)) return pathToFileURL(p).href;
  }
  throw new H5Error('cannot locate the h5wasm package (npm install h5wasm)');
}

/**
 * Largest size the HDF5 heap may grow to during the current step (bytes). HDF5 trusts size fields
 * in a file's metadata: a 2 kB file with a damaged object-header length made it allocate (and
 * touch) ~2 GiB over ~20 s before failing. Every heap growth goes through the
 * `emscripten_resize_heap` import, so a growth past this budget is refused there: the allocation
 * fails at once and HDF5 reports it as an error.
 */
let heapBudget = Infinity;

/** Routes the instance's heap growth through `heapBudget`. */
function limitGrowth(imports: WebAssembly.Imports): void {
  const env = imports.env as Record<string, unknown> | undefined;
  const grow = env?.emscripten_resize_heap;
  if (!env || typeof grow !== 'function') return;
  env.emscripten_resize_heap = (requested: number) =>
    requested >>> 0 > heapBudget ? false : (grow as (n: number) => boolean)(requested);
}

async function newInstance(): Promise<RawH5> {
  const { default: factory } = (await import(utilUrl())) as { default: Factory };
  const sink = (line: string) => {
    printed.push(line);
    if (printed.length > 20) printed.shift();
  };
  const arg: Record<string, unknown> = { noInitialRun: true, print: sink, printErr: sink };
  let m: RawH5;
  const c = compiled;
  if (c) {
    arg.instantiateWasm = (
      imports: WebAssembly.Imports,
      receive: (i: WebAssembly.Instance, m: WebAssembly.Module) => void,
    ) => {
      limitGrowth(imports);
      void WebAssembly.instantiate(c, imports).then((inst) => receive(inst, c));
      return {};
    };
    m = await factory(arg);
  } else {
    // First instance: keep the compiled module that Emscripten's own instantiate call produces.
    const wa = WebAssembly as { instantiate: (...a: unknown[]) => Promise<unknown> };
    const orig = wa.instantiate;
    wa.instantiate = async (...a: unknown[]) => {
      if (a[1]) limitGrowth(a[1] as WebAssembly.Imports);
      const r = await orig.apply(WebAssembly, a);
      const mod = (r as { module?: unknown }).module;
      if (mod instanceof WebAssembly.Module) compiled ??= mod;
      return r;
    };
    try {
      m = await factory(arg);
    } finally {
      wa.instantiate = orig;
    }
  }
  m.activate_throwing_error_handler();
  return m;
}

async function instance(): Promise<RawH5> {
  live ??= newInstance();
  try {
    return await live;
  } catch (e) {
    live = null;
    throw new H5Error(`cannot load the HDF5 library (h5wasm): ${(e as Error).message}`);
  }
}

/** Numeric HDF5 type classes (H5T_INTEGER, H5T_FLOAT). */
const H5T_INTEGER = 0;
const H5T_FLOAT = 1;

function dtypeString(m: RawMeta): string {
  const order = m.littleEndian ? '<' : '>';
  if (m.type === H5T_FLOAT)
    return `${order}${({ 2: 'e', 4: 'f', 8: 'd' } as Record<number, string>)[m.size] ?? `f${m.size}`}`;
  const f = ({ 1: 'b', 2: 'h', 4: 'i', 8: 'q' } as Record<number, string>)[m.size] ?? `i${m.size}`;
  return order + (m.signed ? f : f.toUpperCase());
}

/** Typed array over `bytes` for a numeric dataset (HDF5 converts to the native byte order). */
function typed(bytes: Uint8Array, m: RawMeta, path: string, name: string): H5Array['data'] {
  const b = bytes.buffer as ArrayBuffer;
  if (m.type === H5T_FLOAT) {
    if (m.size === 4) return new Float32Array(b);
    if (m.size === 8) return new Float64Array(b);
  } else if (m.type === H5T_INTEGER) {
    if (m.size === 1) return m.signed ? new Int8Array(b) : new Uint8Array(b);
    if (m.size === 2) return m.signed ? new Int16Array(b) : new Uint16Array(b);
    if (m.size === 4) return m.signed ? new Int32Array(b) : new Uint32Array(b);
    if (m.size === 8) {
      const src = m.signed ? new BigInt64Array(b) : new BigUint64Array(b);
      const out = new Float64Array(src.length);
      for (let i = 0; i < src.length; i++) {
        const v = Number(src[i]!);
        if (!Number.isSafeInteger(v))
          throw new H5Error(
            `${path}: dataset '${name}': int64 value ${src[i]} at index ${i} does not fit a double exactly`,
          );
        out[i] = v;
      }
      return out;
    }
  }
  throw new H5Error(
    `${path}: dataset '${name}' has an unsupported ${m.size}-byte ${m.type === H5T_FLOAT ? 'float' : 'integer'} type`,
  );
}

/** Shapes/dtypes of the named datasets (metadata only), or their data too when `read` is true. */
export async function readH5Datasets(
  path: string,
  names: readonly string[],
  read = true,
): Promise<Map<string, H5Array>> {
  checkH5File(path);
  const M = await instance();
  let tainted = false;
  /** One HDF5 call: an exception from it means the library state can no longer be trusted. */
  const call = <T>(what: string, f: () => T): T => {
    printed.length = 0;
    try {
      return f();
    } catch (e) {
      tainted = true;
      const why = h5Reason(e);
      const hint = printed.find((l) => /memory|abort/i.test(l));
      throw new H5Error(`${path}: ${what}: ${why}${hint && !why.includes(hint) ? ` (${hint})` : ''}`);
    }
  };
  let fid: bigint | undefined;
  const fileBytes = statSync(path).size;
  /** Metadata steps: HDF5's metadata cannot need much more memory than the file holds. */
  const metadataBudget = () => M.HEAPU8.length + META_HEAP_BYTES + 2 * fileBytes;
  heapBudget = metadataBudget();
  try {
    fid = call('cannot open HDF5 file', () => M.open(path, M.H5F_ACC_RDONLY, false, -1, -1));
    const id = fid;
    const keys = call('cannot list its datasets', () => M.get_names(id, '/', false));
    const out = new Map<string, H5Array>();
    for (const name of names) {
      if (!keys.includes(name))
        throw new H5Error(`${path}: no dataset '${name}' (found: ${keys.join(', ') || 'nothing'})`);
      const p = `/${name}`;
      if (call(`cannot inspect '${name}'`, () => M.get_type(id, p)) !== M.H5G_DATASET)
        throw new H5Error(`${path}: '${name}' is not a dataset`);
      const meta = call(`cannot read dataset '${name}'`, () => M.get_dataset_metadata(id, p));
      if ((meta.type !== H5T_INTEGER && meta.type !== H5T_FLOAT) || meta.vlen)
        throw new H5Error(`${path}: dataset '${name}' has a non-numeric HDF5 type (class ${meta.type})`);
      const shape = meta.shape ?? [];
      let data: H5Array['data'] = new Float32Array(0);
      if (read) {
        const filters = call(`cannot read the filters of '${name}'`, () => M.get_dataset_filters(id, p));
        const nbytes = checkDeclaredSize(path, name, shape, meta.size, filters);
        // The output buffer, plus room for the chunk cache and filter buffers.
        heapBudget = metadataBudget() + nbytes + (filters.length ? nbytes : 0);
        const ptr = nbytes > 0 ? M._malloc(nbytes) : 0;
        if (nbytes > 0 && ptr === 0)
          throw new H5Error(`${path}: dataset '${name}': cannot allocate ${nbytes} bytes in the HDF5 heap`);
        try {
          if (nbytes > 0)
            call(`cannot read dataset '${name}'`, () =>
              M.get_dataset_data(id, p, null, null, null, BigInt(ptr)),
            );
          data = typed(M.HEAPU8.slice(ptr, ptr + nbytes), meta, path, name);
        } finally {
          if (ptr) M._free(ptr);
          heapBudget = metadataBudget();
        }
      }
      out.set(name, { shape, dtype: dtypeString(meta), data });
    }
    return out;
  } catch (e) {
    if (e instanceof H5Error) throw e;
    tainted = true;
    throw new H5Error(`${path}: ${h5Reason(e)}`);
  } finally {
    if (fid !== undefined) {
      const id = fid;
      try {
        if (M.close_file(id) < 0) tainted = true;
      } catch {
        tainted = true; // closing a half-broken file: nothing more to report
      }
    }
    if (tainted || M.HEAPU8.length > RECYCLE_BYTES) live = null;
    heapBudget = Infinity;
  }
}

/** Write datasets (float32 / int32 / uint8 / float64) into a new HDF5 file (tests and tools). */
export async function writeH5(
  path: string,
  datasets: Record<string, { data: Float32Array | Int32Array | Uint8Array | Float64Array; shape: number[] }>,
): Promise<void> {
  const mod = await h5();
  const f = new mod.File(path, 'w');
  try {
    for (const [name, d] of Object.entries(datasets))
      f.create_dataset({ name, data: d.data, shape: d.shape });
  } finally {
    f.close();
  }
}
