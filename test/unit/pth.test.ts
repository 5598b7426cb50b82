/**
 * Checkpoint reader (no GPU): zip.ts, pickle.ts, pth.ts against
 *  - test/fixtures/tiny_sam_lst.pth (every tensor: key order, shape and dtype vs tiny_case.json,
 *    exact values via hashes from test/fixtures/pth/expected.json, and cross-checks against
 *    values in tiny_case.safetensors);
 *  - the variants in test/fixtures/pth (make_pth_variants.py): legacy format, protocol 4,
 *    DEFLATE, dtypes, views, wrappers, and the files that must be rejected;
 *  - CPython's pickles of a rich value in protocols 0-5 (stored as hex in expected.json);
 *  - hand-made zips and pickles for ZIP64, lying headers, refused globals and VM limits.
 * No python at test time: everything was generated once and committed.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { deflateSync } from 'fflate';
import { describe, expect, test } from 'vitest';
import {
  PickleError,
  PyDict,
  PyList,
  PyObject,
  PyTuple,
  unpickle,
  type PyValue,
} from '../../src/io/pickle.js';
import { PthError, readPth, readPthObject, type PthTensor } from '../../src/io/pth.js';
import { decodeEntry, parseSafetensors } from '../../src/io/safetensors.js';
import { crc32, looksLikeZip, ZipArchive, ZipError } from '../../src/io/zip.js';

const fixtures = join(dirname(fileURLToPath(import.meta.url)), '..', 'fixtures');
const pthDir = join(fixtures, 'pth');
const read = (name: string) => new Uint8Array(readFileSync(join(pthDir, name)));

interface ExpTensor {
  shape: number[];
  torch_dtype: string;
  dtype: 'f32' | 'i32';
  sha256_16: string;
  values?: number[];
}
interface ExpFile {
  format: 'zip' | 'legacy';
  tensors: Record<string, ExpTensor>;
  wrapper_key?: string;
  zip_folder?: string;
  raw_keys?: string[];
}
interface Expected {
  files: Record<string, ExpFile>;
  errors: Record<string, string>;
  pickles: { protocol: number; hex: string; value: unknown }[];
}
const expected = JSON.parse(readFileSync(join(pthDir, 'expected.json'), 'utf8')) as Expected;

function sha16(t: PthTensor): string {
  const b = Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength);
  return createHash('sha256').update(b).digest('hex').slice(0, 16);
}

/** Every tensor of `got` against the generator's record: same keys in the same order, exact data. */
function expectTensors(got: Map<string, PthTensor>, want: Record<string, ExpTensor>): void {
  expect([...got.keys()]).toEqual(Object.keys(want));
  for (const [k, w] of Object.entries(want)) {
    const t = got.get(k)!;
    expect({ k, shape: t.shape, dtype: t.dtype, torch: t.torchDtype }).toEqual({
      k,
      shape: w.shape,
      dtype: w.dtype,
      torch: w.torch_dtype,
    });
    expect(t.data).toBeInstanceOf(w.dtype === 'f32' ? Float32Array : Int32Array);
    expect(t.data.length).toBe(w.shape.reduce((a, b) => a * b, 1));
    if (w.values) expect({ k, v: Array.from(t.data) }).toEqual({ k, v: w.values });
    expect({ k, sha: sha16(t) }).toEqual({ k, sha: w.sha256_16 });
  }
}

function expectError(fn: () => unknown, ...fragments: string[]): Error {
  let err: unknown;
  try {
    fn();
  } catch (e) {
    err = e;
  }
  expect(err, `expected an error containing ${fragments.join(' & ')}`).toBeInstanceOf(Error);
  for (const f of fragments) expect((err as Error).message).toContain(f);
  return err as Error;
}

// ------------------------------------------------------------------ the main fixture

describe('tiny_sam_lst.pth', () => {
  const bytes = new Uint8Array(readFileSync(join(fixtures, 'tiny_sam_lst.pth')));
  const sd = readPth(bytes, 'tiny_sam_lst.pth');
  const tinyCase = JSON.parse(readFileSync(join(fixtures, 'tiny_case.json'), 'utf8')) as {
    state_dict_keys: Record<string, { shape: number[]; dtype: string }>;
  };
  const st = parseSafetensors(
    new Uint8Array(readFileSync(join(fixtures, 'tiny_case.safetensors'))),
    'tiny_case',
  );
  const ref = (name: string) => {
    const e = st.tensors.get(name);
    if (!e) throw new Error(`tiny_case has no ${name}`);
    return { shape: e.shape, data: decodeEntry(e, name) as Float32Array };
  };
  const get = (k: string) => {
    const t = sd.get(k);
    if (!t) throw new Error(`no ${k}`);
    return t;
  };

  test('is a zip archive under the folder tiny_sam_lst/ with 355 storages', () => {
    const zip = new ZipArchive(bytes, 'tiny_sam_lst.pth');
    expect(zip.entries.size).toBe(357);
    expect(zip.has('tiny_sam_lst/data.pkl')).toBe(true);
    expect(zip.has('tiny_sam_lst/version')).toBe(true);
    expect(readPthObject(bytes, 'tiny_sam_lst.pth').format).toBe('zip');
  });

  test('every key, in order, with the shape and dtype of tiny_case.json state_dict_keys', () => {
    const want = tinyCase.state_dict_keys;
    expect([...sd.keys()]).toEqual(Object.keys(want));
    for (const [k, w] of Object.entries(want)) {
      const t = get(k);
      expect({ k, shape: t.shape, torch: t.torchDtype }).toEqual({ k, shape: w.shape, torch: w.dtype });
      expect({ k, dtype: t.dtype }).toEqual({ k, dtype: w.dtype === 'int64' ? 'i32' : 'f32' });
    }
  });

  test('every value equals what torch.load reads (hashes recorded by the generator)', () => {
    expectTensors(sd, expected.files['../tiny_sam_lst.pth']!.tensors);
  });

  test('values cross-checked against tiny_case.safetensors', () => {
    // sam.alpha = -0.25 (oracle README); gate = sigmoid(alpha)
    expect(Array.from(get('sam.alpha').data)).toEqual([-0.25]);
    expect(ref('act.gate').data[0]).toBeCloseTo(1 / (1 + Math.exp(0.25)), 6);
    // num_batches_tracked: int64 0-d tensors, saved before any training step
    const nbt = get('CNN_encoder.bn1.num_batches_tracked');
    expect(nbt.shape).toEqual([]);
    expect(Array.from(nbt.data)).toEqual([0]);
    // dense no-mask embedding = no_mask_embed broadcast over (1, C, T, T): exact
    const nme = get('sam.prompt_encoder.no_mask_embed.weight').data;
    const dense = ref('act.prompt.dense_no_mask');
    const [, C, T] = dense.shape as [number, number, number, number];
    for (let c = 0; c < C; c++)
      for (let p = 0; p < T * T; p++) expect(dense.data[c * T * T + p]).toBe(nme[c]);
    // decoder tokens (B, 10, C) = [iou_token; mask_tokens] per batch item: exact
    const iou = get('sam.mask_decoder.iou_token.weight').data;
    const masks = get('sam.mask_decoder.mask_tokens.weight').data;
    const tok = ref('act.dec.tokens');
    const [B, L] = tok.shape as [number, number, number];
    for (let b = 0; b < B; b++)
      for (let l = 0; l < L; l++)
        for (let c = 0; c < C; c++)
          expect(tok.data[(b * L + l) * C + c]).toBe(l === 0 ? iou[c] : masks[(l - 1) * C + c]);
    // pos_embed = pos_added - patch_embed (up to f32 rounding of the sum)
    const pe = get('sam.image_encoder.pos_embed').data;
    const added = ref('act.enc.pos_added').data;
    const patch = ref('act.enc.patch_embed').data;
    for (let i = 0; i < added.length; i++)
      expect(Math.abs(added[i]! - patch[i]! - pe[i % pe.length]!)).toBeLessThan(4e-7);
    // layer4 is never run: its BN running stats after one forward are the saved ones, exactly
    for (const s of ['running_mean', 'running_var'])
      expect(Array.from(get(`CNN_encoder.layer4.1.bn2.${s}`).data)).toEqual(
        Array.from(ref(`bn_after.CNN_encoder.layer4.1.bn2.${s}`).data),
      );
    // bn1 after one train-mode forward: 0.9 * saved + 0.1 * batch statistic of act.cnn.conv1
    const x = ref('act.cnn.conv1');
    const [N, Ch, H, W] = x.shape as [number, number, number, number];
    const rm = get('CNN_encoder.bn1.running_mean').data;
    const rv = get('CNN_encoder.bn1.running_var').data;
    const m = N * H * W;
    for (let c = 0; c < Ch; c++) {
      let s = 0;
      let s2 = 0;
      for (let n = 0; n < N; n++)
        for (let i = 0; i < H * W; i++) {
          const v = x.data[(n * Ch + c) * H * W + i]!;
          s += v;
          s2 += v * v;
        }
      const mean = s / m;
      const varU = (s2 - m * mean * mean) / (m - 1);
      expect(ref('bn_after.CNN_encoder.bn1.running_mean').data[c]).toBeCloseTo(0.9 * rm[c]! + 0.1 * mean, 6);
      expect(ref('bn_after.CNN_encoder.bn1.running_var').data[c]).toBeCloseTo(0.9 * rv[c]! + 0.1 * varU, 5);
    }
  });

  test('any truncation is an error naming the file', () => {
    for (const cut of [
      0,
      1,
      21,
      100,
      4096,
      65536,
      bytes.length >> 1,
      bytes.length - 100,
      bytes.length - 23,
      bytes.length - 1,
    ])
      expectError(() => readPth(bytes.subarray(0, cut), 'cut.pth'), 'cut.pth');
    // the end records intact but 1000 bytes of storage data removed: offsets no longer fit
    const spliced = new Uint8Array(bytes.length - 1000);
    spliced.set(bytes.subarray(0, 200_000));
    spliced.set(bytes.subarray(201_000), 200_000);
    expectError(() => readPth(spliced, 'spliced.pth'), 'spliced.pth');
  });
});

// ------------------------------------------------------------------ variants

describe('checkpoint variants (test/fixtures/pth)', () => {
  const accepted = Object.entries(expected.files).filter(([n]) => !n.startsWith('..'));

  test.each(accepted)('%s reads with the recorded keys, shapes, dtypes and values', (name, want) => {
    const opts = want.wrapper_key ? { stateDictKey: want.wrapper_key } : {};
    const got = readPth(read(name), name, opts);
    if (want.raw_keys) expect([...got.keys()]).toEqual(want.raw_keys);
    else expectTensors(got, want.tensors);
    expect(readPthObject(read(name), name).format).toBe(want.format);
  });

  test('dataparallel.pth: module. keys, and the sam_encoder alias shares the image encoder storages', () => {
    const got = readPth(read('dataparallel.pth'), 'dataparallel.pth');
    const want = expected.files['dataparallel.pth']!.tensors;
    for (const [k, w] of Object.entries(want))
      expect({ k, sha: sha16(got.get(`module.${k}`)!) }).toEqual({ k, sha: w.sha256_16 });
    const alias = [...got.keys()].filter((k) => k.startsWith('module.sam_encoder.'));
    expect(alias.length).toBeGreaterThan(0);
    for (const k of alias)
      expect(got.get(k)!.data).toEqual(
        got.get(k.replace('module.sam_encoder.', 'module.sam.image_encoder.'))!.data,
      );
  });

  test('views: transpose, offset, step-2 and stride-0 views materialise row-major', () => {
    for (const name of ['legacy.pth', 'dtypes_zip.pth']) {
      const m = readPth(read(name), name);
      const base = m.get('base')!;
      const bt = m.get('base_t')!;
      expect(bt.shape).toEqual([4, 3]);
      for (let i = 0; i < 3; i++)
        for (let j = 0; j < 4; j++) expect(bt.data[j * 3 + i]).toBe(base.data[i * 4 + j]);
      const ex = m.get('expanded')!;
      expect(ex.shape).toEqual([3, 4]);
      for (let i = 0; i < 3; i++) for (let j = 0; j < 4; j++) expect(ex.data[i * 4 + j]).toBe(ex.data[i * 4]);
      expect(m.get('nbt')!.shape).toEqual([]);
      expect(Array.from(m.get('nbt')!.data)).toEqual([7]);
      expect(m.get('scalar_f32')!.shape).toEqual([]);
      expect(m.get('empty')!.shape).toEqual([0, 3]);
      expect(m.get('empty')!.data.length).toBe(0);
      expect(Array.from(m.get('i64')!.data)).toEqual([-3, 2 ** 31 - 1, -(2 ** 31), 0]);
      expect(Array.from(m.get('f16_special')!.data)).toEqual([65504, -(2 ** -24), 2 ** -14, 0, -0, 1.5]);
      expect(Array.from(m.get('bool')!.data)).toEqual([1, 0, 1]);
    }
  });

  test('wrapped checkpoints need stateDictKey or unwrap, and say so', () => {
    const err = expectError(
      () => readPth(read('wrapped_state_dict.pth'), 'wrapped_state_dict.pth'),
      'wrapped_state_dict.pth',
      "'epoch' is a int",
      'stateDictKey',
    );
    expect(err).toBeInstanceOf(PthError);
    const a = readPth(read('wrapped_state_dict.pth'), 'w.pth', { unwrap: true });
    expectTensors(a, expected.files['wrapped_state_dict.pth']!.tensors);
    const b = readPth(read('wrapped_model_opt.pth'), 'w.pth', { unwrap: ['model'] });
    expectTensors(b, expected.files['wrapped_model_opt.pth']!.tensors);
    expectError(
      () => readPth(read('wrapped_model_opt.pth'), 'w.pth', { stateDictKey: 'nope' }),
      "no key 'nope'",
      'optimizer: dict',
    );
    expectError(
      () => readPth(read('wrapped_model_opt.pth'), 'w.pth', { unwrap: ['x', 'y'] }),
      'no state_dict under any of the keys x, y',
    );
    expectError(
      () => readPth(read('wrapped_model_opt.pth'), 'w.pth', { stateDictKey: 'optimizer' }),
      "'state' is a dict",
    );
  });

  test('a wrapper is inspectable without reading tensors: optimizer state, ints, tuples, floats', () => {
    const obj = readPthObject(read('wrapped_model_opt.pth'), 'w.pth');
    const root = obj.root as PyDict;
    expect(root.get('iter')).toBe(7);
    const opt = root.get('optimizer') as PyDict;
    const group = (opt.get('param_groups') as PyList).items[0] as PyDict;
    expect(group.get('lr')).toBe(0.001);
    expect((group.get('betas') as PyTuple).items).toEqual([0.9, 0.999]);
    const state = opt.get('state') as PyDict;
    const s0 = state.get(0) as PyDict; // int keys
    const avg = obj.tensor(s0.get('exp_avg')!, 'state.0.exp_avg');
    expect(avg.shape).toEqual([2, 3]);
    expect(avg.dtype).toBe('f32');
    expectError(() => obj.tensor(root.get('iter')!, 'iter'), "'iter' is a int, not a tensor");
  });

  test.each(Object.entries(expected.errors))(
    '%s is rejected: the message names the file and the problem',
    (name, fragment) => {
      const err = expectError(() => readPth(read(name), name, { unwrap: true }), name, fragment);
      expect(err).toBeInstanceOf(PthError);
    },
  );

  test('refused globals are named and nothing runs', () => {
    expectError(
      () => readPth(read('malicious_os_system.pth'), 'm.pth'),
      "refused global 'os.system'",
      'GLOBAL at offset 2',
    );
    expectError(
      () => readPth(read('malicious_eval_p4.pth'), 'm.pth'),
      "refused global 'builtins.eval'",
      'STACK_GLOBAL',
    );
  });

  test('other inputs that are not checkpoints', () => {
    expectError(() => readPth(new Uint8Array(0), 'empty.pth'), 'empty.pth', 'empty');
    expectError(
      () => readPth(new TextEncoder().encode('hello world, not a checkpoint'), 'txt.pth'),
      'txt.pth',
      'not a PyTorch checkpoint',
    );
    // a plain pickle (protocol 2) of the int 5: no torch magic number
    expectError(() => readPth(Uint8Array.of(0x80, 2, 0x4b, 5, 0x2e), 'p.pth'), 'p.pth', 'magic number');
    const tar = new Uint8Array(1024);
    tar.set(new TextEncoder().encode('ustar'), 257);
    expectError(() => readPth(tar, 'old.tar'), 'old.tar', 'tar-based');
    // a zip without data.pkl
    expectError(
      () => readPth(makeZip([{ name: 'x/readme', data: Uint8Array.of(1) }]), 'z.pth'),
      'z.pth',
      'no data.pkl',
    );
  });

  test('legacy format by hand: storage views (view_metadata), storage order, lying sizes', () => {
    const X = (s: string) => [0x58, ...u32le(s.length), ...Array.from(s, (c) => c.charCodeAt(0))];
    const magic = pk(0x80, 2, 0x8a, 10, [0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19], '.');
    const proto = pk(0x80, 2, 'M', [0xe9, 0x03], '.');
    const sysInfo = pk(0x80, 2, '}', X('little_endian'), 0x88, 's.');
    // {'a': tensor over a view [2, 5) of root storage '7' (6 floats), offset 1, size (2,), stride (1,)}
    const main = (viewSize: number) =>
      pk(
        0x80,
        2,
        '}(',
        X('a'),
        'ctorch._utils\n_rebuild_tensor_v2\n',
        '((',
        X('storage'),
        'ctorch\nFloatStorage\n',
        X('7'),
        X('cpu'),
        'K',
        6,
        '(',
        X('v'),
        'K',
        2,
        'K',
        viewSize,
        'tt',
        'Q',
        'K',
        1,
        'K',
        2,
        0x85,
        'K',
        1,
        0x85,
        0x89,
        '}tRu.',
      );
    const keys = pk(0x80, 2, '](', X('7'), 'e.');
    const storage = (count: number, values: number[]) => {
      const b = new Uint8Array(8 + 4 * values.length);
      const dv = new DataView(b.buffer);
      dv.setBigInt64(0, BigInt(count), true);
      values.forEach((v, i) => dv.setFloat32(8 + 4 * i, v, true));
      return b;
    };
    const file = (...parts: Uint8Array[]) => Uint8Array.from(parts.flatMap((p) => Array.from(p)));
    const ok = file(magic, proto, sysInfo, main(3), keys, storage(6, [0, 1, 2, 3, 4, 5]));
    const m = readPth(ok, 'hand.pth');
    expect(Array.from(m.get('a')!.data)).toEqual([3, 4]);
    expect(readPthObject(ok, 'hand.pth').format).toBe('legacy');
    expectError(
      () => readPth(file(magic, proto, sysInfo, main(5), keys, storage(6, [0, 1, 2, 3, 4, 5])), 'v.pth'),
      'v.pth',
      'exceeds storage',
    );
    expectError(
      () => readPth(file(magic, proto, sysInfo, main(3), keys, storage(7, [0, 1, 2, 3, 4, 5])), 'n.pth'),
      'n.pth',
      "storage '7'",
      'stores 7 elements',
    );
    expectError(
      () => readPth(file(magic, proto, sysInfo, main(3), keys, storage(6, [0, 1, 2])), 't.pth'),
      't.pth',
      'runs past the end of the file',
    );
    expectError(() => readPth(file(magic, proto, sysInfo, main(3)), 'k.pth'), 'k.pth', 'storage key list');
    const bigEndian = pk(0x80, 2, '}', X('little_endian'), 0x89, 's.');
    expectError(
      () => readPth(file(magic, proto, bigEndian, main(3), keys, storage(6, [0, 1, 2, 3, 4, 5])), 'be.pth'),
      'be.pth',
      'big-endian',
    );
    expectError(
      () => readPth(file(magic, pk(0x80, 2, 'M', [0xea, 0x03], '.')), 'p.pth'),
      'p.pth',
      'protocol version 1002',
    );
  });

  test('a zip whose storage record is corrupt, missing or has the wrong size', () => {
    const src = new ZipArchive(read('dtypes_zip.pth'), 'dtypes_zip.pth');
    const flipped = read('dtypes_zip.pth').slice();
    flipped[src.entries.get('dtypes_zip/data/0')!.dataOffset + 3]! ^= 0x40;
    const crcErr = expectError(
      () => readPth(flipped, 'f.pth'),
      'f.pth',
      'CRC-32 mismatch',
      "(tensor 'base')",
    );
    expect(crcErr).toBeInstanceOf(PthError);
    const all = src.names().map((name) => ({ name, data: src.read(name) }));
    const missing = all.filter((e) => e.name !== 'dtypes_zip/data/0');
    expectError(
      () => readPth(makeZip(missing), 'm.pth'),
      'm.pth',
      "storage record 'dtypes_zip/data/0' is missing",
    );
    const short = all.map((e) => (e.name === 'dtypes_zip/data/0' ? { ...e, data: e.data.subarray(4) } : e));
    expectError(() => readPth(makeZip(short), 's.pth'), 's.pth', "storage record 'dtypes_zip/data/0' has");
    const big = all.map((e) =>
      e.name.endsWith('byteorder')
        ? e
        : e.name === 'dtypes_zip/version'
          ? { name: 'dtypes_zip/byteorder', data: new TextEncoder().encode('big') }
          : e,
    );
    expectError(() => readPth(makeZip(big), 'b.pth'), 'b.pth', 'big-endian');
  });
});

// ------------------------------------------------------------------ zip

interface ZipSpec {
  name: string;
  data: Uint8Array;
  method?: 0 | 8 | 12;
  /** Override the sizes written in the headers (to make lying archives). */
  declSize?: number;
  declCompressed?: number;
  flags?: number;
}

/** A small zip writer for tests: STORED/DEFLATE, optional ZIP64 extra fields and ZIP64 EOCD. */
function makeZip(entries: ZipSpec[], opts: { zip64?: boolean; comment?: string } = {}): Uint8Array {
  const parts: Uint8Array[] = [];
  const central: Uint8Array[] = [];
  let off = 0;
  const enc = new TextEncoder();
  for (const e of entries) {
    const method = e.method ?? 0;
    const body = method === 8 ? deflateSync(e.data) : e.data;
    const name = enc.encode(e.name);
    const size = e.declSize ?? e.data.length;
    const csize = e.declCompressed ?? body.length;
    const crc = crc32(e.data);
    const z64 = opts.zip64 ?? false;
    const lx = z64 ? 20 : 0;
    const local = new DataView(new ArrayBuffer(30 + name.length + lx));
    local.setUint32(0, 0x04034b50, true);
    local.setUint16(4, z64 ? 45 : 20, true);
    local.setUint16(6, e.flags ?? 0, true);
    local.setUint16(8, method, true);
    local.setUint32(14, crc, true);
    local.setUint32(18, z64 ? 0xffffffff : csize, true);
    local.setUint32(22, z64 ? 0xffffffff : size, true);
    local.setUint16(26, name.length, true);
    local.setUint16(28, lx, true);
    new Uint8Array(local.buffer).set(name, 30);
    if (z64) {
      local.setUint16(30 + name.length, 1, true);
      local.setUint16(32 + name.length, 16, true);
      local.setBigUint64(34 + name.length, BigInt(size), true);
      local.setBigUint64(42 + name.length, BigInt(csize), true);
    }
    const cx = z64 ? 28 : 0;
    const c = new DataView(new ArrayBuffer(46 + name.length + cx));
    c.setUint32(0, 0x02014b50, true);
    c.setUint16(4, 45, true);
    c.setUint16(6, z64 ? 45 : 20, true);
    c.setUint16(8, e.flags ?? 0, true);
    c.setUint16(10, method, true);
    c.setUint32(16, crc, true);
    c.setUint32(20, z64 ? 0xffffffff : csize, true);
    c.setUint32(24, z64 ? 0xffffffff : size, true);
    c.setUint16(28, name.length, true);
    c.setUint16(30, cx, true);
    c.setUint32(42, z64 ? 0xffffffff : off, true);
    new Uint8Array(c.buffer).set(name, 46);
    if (z64) {
      const x = 46 + name.length;
      c.setUint16(x, 1, true);
      c.setUint16(x + 2, 24, true);
      c.setBigUint64(x + 4, BigInt(size), true);
      c.setBigUint64(x + 12, BigInt(csize), true);
      c.setBigUint64(x + 20, BigInt(off), true);
    }
    parts.push(new Uint8Array(local.buffer), body);
    central.push(new Uint8Array(c.buffer));
    off += local.byteLength + body.length;
  }
  const cdOff = off;
  const cdSize = central.reduce((a, b) => a + b.length, 0);
  parts.push(...central);
  off += cdSize;
  const comment = enc.encode(opts.comment ?? '');
  if (opts.zip64) {
    const e64 = new DataView(new ArrayBuffer(56));
    e64.setUint32(0, 0x06064b50, true);
    e64.setBigUint64(4, 44n, true);
    e64.setBigUint64(24, BigInt(entries.length), true);
    e64.setBigUint64(32, BigInt(entries.length), true);
    e64.setBigUint64(40, BigInt(cdSize), true);
    e64.setBigUint64(48, BigInt(cdOff), true);
    const loc = new DataView(new ArrayBuffer(20));
    loc.setUint32(0, 0x07064b50, true);
    loc.setBigUint64(8, BigInt(off), true);
    loc.setUint32(16, 1, true);
    parts.push(new Uint8Array(e64.buffer), new Uint8Array(loc.buffer));
  }
  const eocd = new DataView(new ArrayBuffer(22 + comment.length));
  eocd.setUint32(0, 0x06054b50, true);
  eocd.setUint16(8, opts.zip64 ? 0xffff : entries.length, true);
  eocd.setUint16(10, opts.zip64 ? 0xffff : entries.length, true);
  eocd.setUint32(12, opts.zip64 ? 0xffffffff : cdSize, true);
  eocd.setUint32(16, opts.zip64 ? 0xffffffff : cdOff, true);
  eocd.setUint16(20, comment.length, true);
  new Uint8Array(eocd.buffer).set(comment, 22);
  parts.push(new Uint8Array(eocd.buffer));
  const out = new Uint8Array(parts.reduce((a, b) => a + b.length, 0));
  let p = 0;
  for (const b of parts) {
    out.set(b, p);
    p += b.length;
  }
  return out;
}

describe('zip reader', () => {
  const text = new TextEncoder().encode('the quick brown fox '.repeat(50));
  const bin = Uint8Array.from({ length: 300 }, (_, i) => (i * 37) & 0xff);

  test('crc32 of "123456789" is 0xcbf43926', () => {
    expect(crc32(new TextEncoder().encode('123456789'))).toBe(0xcbf43926);
  });

  test.each([
    ['plain', {}],
    ['ZIP64 extra fields + ZIP64 end record', { zip64: true }],
    ['an archive comment', { comment: 'made by a test' }],
  ])('STORED and DEFLATE entries round-trip (%s)', (_label, opts) => {
    const z = new ZipArchive(
      makeZip(
        [
          { name: 'a/text', data: text, method: 8 },
          { name: 'a/bin', data: bin },
          { name: 'a/empty', data: new Uint8Array(0) },
        ],
        opts,
      ),
      'rt.zip',
    );
    expect(z.names()).toEqual(['a/text', 'a/bin', 'a/empty']);
    expect(z.read('a/text')).toEqual(text);
    expect(z.entries.get('a/text')!.compressedSize).toBeLessThan(text.length);
    expect(z.read('a/bin')).toEqual(bin);
    expect(z.read('a/empty').length).toBe(0);
    expectError(() => z.read('nope'), 'rt.zip', "no entry 'nope'");
  });

  test('a torch checkpoint re-packed with ZIP64 extra fields reads the same', () => {
    const src = new ZipArchive(read('dtypes_zip.pth'), 'dtypes_zip.pth');
    const z = makeZip(
      src.names().map((name) => ({ name, data: src.read(name) })),
      { zip64: true },
    );
    expect(looksLikeZip(z)).toBe(true);
    expectTensors(readPth(z, 'z64.pth'), expected.files['dtypes_zip.pth']!.tensors);
  });

  test('headers that declare absent data fail before any allocation', () => {
    const big = 4e9;
    // a 4 GB DEFLATE claim from a few hundred bytes
    expectError(
      () =>
        new ZipArchive(
          makeZip([{ name: 'x', data: text, method: 8, declSize: big }], { zip64: true }),
          'bomb.zip',
        ),
      'bomb.zip',
      "entry 'x'",
      'more than DEFLATE can expand',
    );
    // 4 GB of STORED data in a 1 KB file
    expectError(
      () =>
        new ZipArchive(
          makeZip([{ name: 'x', data: bin, declSize: 2 ** 40, declCompressed: 2 ** 40 }], { zip64: true }),
          'lie.zip',
        ),
      'lie.zip',
      'more than the',
    );
    expectError(
      () =>
        new ZipArchive(makeZip([{ name: 'x', data: bin, declSize: 1e6, declCompressed: 1e6 }]), 'lie.zip'),
      'lie.zip',
      'runs past the entry data region',
    );
    expectError(
      () => new ZipArchive(makeZip([{ name: 'x', data: bin, declSize: 10 }]), 'lie.zip'),
      'lie.zip',
      'STORED but declares 10 bytes',
    );
    expectError(
      () => new ZipArchive(makeZip([{ name: 'x', data: bin }]), 'cap.zip', { maxEntryBytes: 100 }),
      'cap.zip',
      'more than the 100-byte limit',
    );
  });

  test('lying or damaged structures are errors naming the file and the problem', () => {
    const good = makeZip([
      { name: 'a', data: bin },
      { name: 'b', data: text, method: 8 },
    ]);
    const patch = (at: number, ...b: number[]) => {
      const c = good.slice();
      c.set(b, at);
      return c;
    };
    const sigErr = expectError(
      () => new ZipArchive(patch(0, 0, 0, 0, 0), 'sig.zip'),
      'sig.zip',
      'no local header at offset 0',
    );
    expect(sigErr).toBeInstanceOf(ZipError);
    // central directory offset pointing past the end
    const eocd = good.length - 22;
    expectError(
      () => new ZipArchive(patch(eocd + 16, 0xff, 0xff, 0xff, 0x00), 'cd.zip'),
      'cd.zip',
      'central directory',
    );
    // more entries than the directory can hold
    expectError(() => new ZipArchive(patch(eocd + 10, 0xff, 0x00), 'n.zip'), 'n.zip', 'entries cannot fit');
    // flip a byte of the STORED data: CRC
    expectError(
      () => new ZipArchive(patch(40, bin[9]! ^ 1), 'crc.zip').read('a'),
      'crc.zip',
      "entry 'a'",
      'CRC-32 mismatch',
    );
    expect(() =>
      new ZipArchive(patch(40, bin[9]! ^ 1), 'crc.zip', { checkCrc: false }).read('a'),
    ).not.toThrow();
    // corrupt DEFLATE stream
    const deflated = makeZip([{ name: 'b', data: text, method: 8 }]);
    const broken = deflated.slice();
    for (let i = 31; i < 45; i++) broken[i] = 0xff;
    expectError(() => new ZipArchive(broken, 'inf.zip').read('b'), 'inf.zip', "entry 'b'");
    expectError(
      () => new ZipArchive(makeZip([{ name: 'a', data: bin, method: 12 }]), 'm.zip'),
      'm.zip',
      'compression method 12',
    );
    expectError(
      () => new ZipArchive(makeZip([{ name: 'a', data: bin, flags: 1 }]), 'e.zip'),
      'e.zip',
      'encrypted',
    );
    expectError(
      () =>
        new ZipArchive(
          makeZip([
            { name: 'a', data: bin },
            { name: 'a', data: bin },
          ]),
          'd.zip',
        ),
      'd.zip',
      "entry 'a' appears twice",
    );
    // local header naming another entry
    const renamed = good.slice();
    renamed[30] = 'z'.charCodeAt(0);
    expectError(() => new ZipArchive(renamed, 'n.zip'), 'n.zip', 'local header names a different entry');
    expectError(() => new ZipArchive(good.subarray(0, 21), 'short.zip'), 'short.zip', 'too short');
  });
});

// ------------------------------------------------------------------ pickle VM

/** JSON form of a value, matching the generator's encoding. */
function toJson(v: PyValue): unknown {
  if (typeof v === 'bigint') return { int: v.toString() };
  if (v instanceof Uint8Array) return { bytes: Buffer.from(v).toString('hex') };
  if (v instanceof PyTuple) return { tuple: v.items.map(toJson) };
  if (v instanceof PyList) return v.items.map(toJson);
  if (v instanceof PyDict) return { dict: v.entries().map(([k, x]) => [toJson(k), toJson(x)]) };
  if (v instanceof PyObject) return { object: v.type };
  if (v !== null && typeof v === 'object') return { global: v.qualname };
  return v;
}

/** Bytes from numbers (opcodes/bytes) and strings (Latin-1 text). */
function pk(...parts: (number | string | number[])[]): Uint8Array {
  const out: number[] = [];
  for (const p of parts)
    if (typeof p === 'number') out.push(p);
    else if (typeof p === 'string') for (const ch of p) out.push(ch.charCodeAt(0));
    else out.push(...p);
  return Uint8Array.from(out);
}

const u32le = (v: number) => [v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, v >>> 24];

describe('pickle VM', () => {
  test.each(expected.pickles.map((c) => [c.protocol, c] as const))(
    "CPython's protocol %i pickle of a rich value decodes exactly",
    (_p, c) => {
      const { value, end } = unpickle(Uint8Array.from(Buffer.from(c.hex, 'hex')), { source: 'py' });
      expect(end).toBe(c.hex.length / 2);
      expect(toJson(value)).toEqual(c.value);
      // memoised references stay shared
      const shared = (value as PyDict).get('shared') as PyList;
      expect(shared.items[0]).toBe(shared.items[1]);
    },
  );

  test('refuses every global outside the whitelist, naming it, without running anything', () => {
    const cases: [Uint8Array, string][] = [
      [pk(0x80, 2, 'cos\nsystem\n', 0x58, u32le(2), 'ls', 0x85, 'R.'), 'os.system'],
      [pk(0x80, 2, 'c__builtin__\ngetattr\n', ')R.'), '__builtin__.getattr'],
      [pk(0x80, 4, 0x8c, 8, 'builtins', 0x8c, 4, 'exec', 0x93, ')R.'), 'builtins.exec'],
      [pk('csubprocess\nPopen\n.'), 'subprocess.Popen'],
      [pk(0x80, 2, 'ctorch.nn.modules.conv\nConv2d\n', ')', 0x81, '.'), 'torch.nn.modules.conv.Conv2d'],
    ];
    for (const [bytes, name] of cases) {
      const err = expectError(
        () => unpickle(bytes, { source: 'evil' }),
        'evil: pickle',
        `refused global '${name}'`,
      );
      expect(err).toBeInstanceOf(PickleError);
    }
  });

  test('unknown and unsupported opcodes name the opcode and offset', () => {
    expectError(
      () => unpickle(pk(0x80, 2, 0x4b, 1, 0xfe), { source: 's' }),
      'unknown opcode 0xfe at offset 4',
    );
    expectError(
      () => unpickle(pk(0x80, 2, '(i__main__\nX\n.'), { source: 's' }),
      'unsupported opcode INST',
      'offset 3',
    );
    expectError(() => unpickle(pk(0x80, 2, 0x82, 1, '.'), { source: 's' }), 'unsupported opcode EXT1');
    expectError(() => unpickle(pk(0x80, 5, 0x97, '.'), { source: 's' }), 'unsupported opcode NEXT_BUFFER');
  });

  test('declared lengths beyond the data fail without allocating', () => {
    expectError(
      () => unpickle(pk(0x58, u32le(0xfffffff0), 'abc.'), { source: 's' }),
      'truncated',
      'BINUNICODE at offset 0',
    );
    expectError(
      () => unpickle(pk(0x8d, [0, 0, 0, 0, 0, 0, 0, 0x10], '.'), { source: 's' }),
      'exceeds the data',
    );
    expectError(() => unpickle(pk(0x8b, u32le(0x7fffffff), '.'), { source: 's' }), 'truncated');
    expectError(
      () => unpickle(pk(0x95, [0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0], 'N.'), { source: 's' }),
      'exceeds the data',
      'FRAME at offset 0',
    );
    expectError(() => unpickle(pk(0x80, 2, 0x4b, 1), { source: 's' }), 'ended before the STOP opcode');
  });

  test('stack, mark and memo caps; malformed structure', () => {
    expectError(() => unpickle(pk('('.repeat(70_000)), { source: 's' }), 'nested MARKs');
    expectError(
      () => unpickle(pk('N'.repeat(20), '.'), { source: 's', maxStack: 10 }),
      'stack exceeds 10 items',
    );
    expectError(
      () =>
        unpickle(pk('N', ...Array.from({ length: 20 }, (_, i) => [0x71, i]).flat(), '.'), {
          source: 's',
          maxMemo: 5,
        }),
      'memo exceeds 5',
    );
    expectError(() => unpickle(pk(0x68, 3, '.'), { source: 's' }), 'memo entry 3 was never stored');
    expectError(() => unpickle(pk('.'), { source: 's' }), 'STOP with 0 items');
    expectError(() => unpickle(pk('NN.'), { source: 's' }), 'STOP with 2 items');
    expectError(() => unpickle(pk('t.'), { source: 's' }), 'no MARK');
    expectError(() => unpickle(pk('NNa.'), { source: 's' }), 'APPEND on a None');
    expectError(() => unpickle(pk('}]]s.'), { source: 's' }), 'unhashable');
    expectError(
      () => unpickle(pk('NQ.'), { source: 's' }),
      'persistent id without a persistent_load handler',
    );
    expectError(() => unpickle(pk('N)R.'), { source: 's' }), 'cannot call a None');
    expectError(() => unpickle(pk(0x80, 9, 'N.'), { source: 's' }), 'unsupported pickle protocol');
  });

  test('pickles in a stream: `start` and `end`', () => {
    const two = pk(0x80, 2, 0x4b, 7, '.', 0x80, 2, 0x58, u32le(2), 'hi.');
    const a = unpickle(two, { source: 's' });
    expect(a).toEqual({ value: 7, end: 5 });
    expect(unpickle(two, { source: 's', start: a.end }).value).toBe('hi');
  });

  test('OrderedDict, BUILD state, persistent ids and caller whitelists', () => {
    const bytes = pk(
      0x80,
      2,
      'ccollections\nOrderedDict\n',
      ')R',
      '(',
      0x58,
      u32le(1),
      'k',
      'ctorch\nFloatStorage\n', // a bare storage class: whitelisted by the caller, not callable
      0x85,
      'Q',
      'u',
      '}', // BUILD state {'_metadata': 1}
      0x58,
      u32le(9),
      '_metadata',
      0x4b,
      1,
      's',
      'b.',
    );
    const seen: PyValue[] = [];
    const { value } = unpickle(bytes, {
      source: 's',
      globals: new Map([['torch.FloatStorage', { info: 'float32' }]]),
      persistentLoad: (pid) => {
        seen.push(pid);
        return new PyObject('ref', null);
      },
    });
    const d = value as PyDict;
    expect(d.keys()).toEqual(['k']);
    expect(d.get('k')).toBeInstanceOf(PyObject);
    expect(d.attrs?.get('_metadata')).toBe(1);
    expect(toJson(seen[0]!)).toEqual({ tuple: [{ global: 'torch.FloatStorage' }] });
    expectError(
      () =>
        unpickle(pk('ctorch\nFloatStorage\n)R.'), {
          source: 's',
          globals: new Map([['torch.FloatStorage', {}]]),
        }),
      'is not callable',
    );
  });
});
