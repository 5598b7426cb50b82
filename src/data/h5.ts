/**
 * HDF5 test volumes (`test_vol_h5/<case>.npy.h5`, datasets `image` and `label`, each (D, H, W))
 * via h5wasm's Node build (host filesystem access, imported lazily so browser bundles that never
 * call this do not pull it in). Errors name the file and the failing HDF5 step.
 */
import type * as H5 from 'h5wasm/node';
import { existsSync, openSync, readSync, closeSync, statSync } from 'node:fs';

export class H5Error extends Error {
  override name = 'H5Error';
}

type H5Module = typeof H5;
type H5Dataset = InstanceType<H5Module['Dataset']>;

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

function toNumeric(v: unknown, path: string, name: string): H5Array['data'] {
  if (
    v instanceof Float32Array ||
    v instanceof Float64Array ||
    v instanceof Int32Array ||
    v instanceof Uint8Array ||
    v instanceof Int16Array ||
    v instanceof Uint16Array ||
    v instanceof Int8Array ||
    v instanceof Uint32Array
  )
    return v;
  if (v instanceof BigInt64Array || v instanceof BigUint64Array) {
    const out = new Float64Array(v.length);
    for (let i = 0; i < v.length; i++) out[i] = Number(v[i]!);
    return out;
  }
  throw new H5Error(`${path}: dataset '${name}' is not a numeric array`);
}

/** Shapes/dtypes of the named datasets (metadata only), or their data too when `read` is true. */
export async function readH5Datasets(
  path: string,
  names: readonly string[],
  read = true,
): Promise<Map<string, H5Array>> {
  checkH5File(path);
  const mod = await h5();
  let f: InstanceType<H5Module['File']>;
  try {
    f = new mod.File(path, 'r');
  } catch (e) {
    throw new H5Error(`${path}: cannot open HDF5 file: ${h5Reason(e)}`);
  }
  try {
    const out = new Map<string, H5Array>();
    const keys = f.keys();
    for (const name of names) {
      if (!keys.includes(name))
        throw new H5Error(`${path}: no dataset '${name}' (found: ${keys.join(', ') || 'nothing'})`);
      const ds = f.get(name);
      if (!(ds instanceof mod.Dataset)) throw new H5Error(`${path}: '${name}' is not a dataset`);
      const d = ds as H5Dataset;
      const shape = d.shape ?? [];
      const meta = d.metadata;
      if (meta.type !== 0 && meta.type !== 1)
        throw new H5Error(`${path}: dataset '${name}' has a non-numeric HDF5 type (class ${meta.type})`);
      let data: H5Array['data'] = new Float32Array(0);
      if (read) {
        try {
          data = toNumeric(d.value, path, name);
        } catch (e) {
          if (e instanceof H5Error) throw e;
          throw new H5Error(`${path}: cannot read dataset '${name}': ${h5Reason(e)}`);
        }
        const n = shape.reduce((a, b) => a * b, 1);
        if (data.length !== n)
          throw new H5Error(
            `${path}: dataset '${name}' has ${data.length} values for shape (${shape.join(', ')})`,
          );
      }
      out.set(name, { shape, dtype: String(d.dtype), data });
    }
    return out;
  } catch (e) {
    if (e instanceof H5Error) throw e;
    throw new H5Error(`${path}: ${h5Reason(e)}`);
  } finally {
    try {
      f.close();
    } catch {
      // closing a half-broken file: nothing more to report
    }
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
