/**
 * Fuzzing parseSafetensors + decodeEntry (src/io/safetensors.ts).
 *
 * Seeds: a hand-built file with every dtype the reader knows (F32 F16 BF16 F64 I64 I32 I16 I8 U8
 * BOOL, a 0-d and an empty tensor, metadata), a writeSafetensors file, and a 24-tensor slice of
 * test/fixtures/kernels.safetensors. Mutations: generic byte mutations aimed at the 8-byte length
 * and the JSON header; the length field set to interesting values (2^60, n±1, ...); and JSON edits
 * of one tensor entry (unknown/non-string dtypes, huge/negative/fractional/overflowing shapes,
 * data_offsets past the end, reversed, overlapping or non-integer, entries that are not objects),
 * malformed __metadata__, a header that is not an object, a duplicated tensor name, deep nesting.
 * Every input must parse to self-consistent entries (each view inside the file's data region, of
 * exactly numel × itemsize bytes, decoding to numel values, no overlaps, string metadata) or fail
 * with a SafetensorsError naming the source, within 2 s, without allocating what the header
 * declares but the file does not hold.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect, test } from 'vitest';
import {
  decodeEntry,
  parseSafetensors,
  SafetensorsError,
  ST_ITEM_BYTES,
  writeSafetensors,
  type SafeTensors,
} from '../../src/io/safetensors.js';
import {
  FuzzRun,
  INTERESTING,
  stFile,
  iters,
  mutateMany,
  pick,
  rngFor,
  writeInt,
  type Mutant,
  type Rng,
  timeout,
} from './mutate.js';

const fixtures = join(import.meta.dirname, '..', 'fixtures');
/** Seeds of the mutation streams (FUZZ_SEED shifts them). */
const SEEDS = { bytes: 0x5afe01, length: 0x5afe02, json: 0x5afe03, data: 0x5afe04 };

const ITEM: Readonly<Record<string, number>> = ST_ITEM_BYTES;

function allDtypes(): Uint8Array {
  const header: Record<string, unknown> = { __metadata__: { format: 'pt', note: 'all dtypes' } };
  const parts: number[] = [];
  const add = (name: string, dtype: string, shape: number[], bytes: number[]) => {
    header[name] = { dtype, shape, data_offsets: [parts.length, parts.length + bytes.length] };
    parts.push(...bytes);
  };
  const le = (v: number, w: number) =>
    Array.from({ length: w }, (_, i) => Number((BigInt(v) >> BigInt(8 * i)) & 0xffn));
  add(
    'f32',
    'F32',
    [2, 2],
    [1, 2, 3, 4].flatMap((v) => [...new Uint8Array(Float32Array.of(v).buffer)]),
  );
  add(
    'f16',
    'F16',
    [3],
    [0x3c00, 0xc000, 0x7c00].flatMap((v) => le(v, 2)),
  );
  add(
    'bf16',
    'BF16',
    [2],
    [0x3f80, 0xbf80].flatMap((v) => le(v, 2)),
  );
  add(
    'f64',
    'F64',
    [2],
    [0.5, -2].flatMap((v) => [...new Uint8Array(Float64Array.of(v).buffer)]),
  );
  add(
    'i64',
    'I64',
    [3],
    [-1, 7, 2 ** 31 - 1].flatMap((v) => le(v, 8)),
  );
  add(
    'i32',
    'I32',
    [1, 2],
    [-5, 9].flatMap((v) => le(v, 4)),
  );
  add(
    'i16',
    'I16',
    [2],
    [-3, 300].flatMap((v) => le(v, 2)),
  );
  add('i8', 'I8', [2], [0xff, 5]);
  add('u8', 'U8', [2, 1], [200, 1]);
  add('bool', 'BOOL', [3], [1, 0, 1]);
  add('scalar', 'F32', [], [0, 0, 0x80, 0x3f]);
  add('empty', 'F32', [0, 4], []);
  return stFile(header, Uint8Array.from(parts));
}

function writerSeed(): Uint8Array {
  return writeSafetensors(
    new Map([
      [
        'model.w',
        { dtype: 'F32' as const, shape: [3, 4], data: Float32Array.from({ length: 12 }, (_, i) => i / 3) },
      ],
      ['model.n', { dtype: 'I32' as const, shape: [1], data: Int32Array.of(42) }],
      [
        'optim.m.w',
        { dtype: 'F16' as const, shape: [2, 2], data: Uint16Array.of(0x3c00, 0, 0x8001, 0x7bff) },
      ],
    ]),
    { format: 'sam-lst-webgpu/test', meta: '{"a":1}' },
  );
}

/** 24 tensors of kernels.safetensors, re-laid out (a real PyTorch-written header, smaller). */
function kernelsSeed(): Uint8Array {
  const st = parseSafetensors(new Uint8Array(readFileSync(join(fixtures, 'kernels.safetensors'))), 'kernels');
  const header: Record<string, unknown> = {};
  const parts: Uint8Array[] = [];
  let off = 0;
  for (const [name, e] of [...st.tensors].filter(([, e]) => e.bytes.length <= 4096).slice(0, 24)) {
    header[name] = { dtype: e.dtype, shape: e.shape, data_offsets: [off, off + e.bytes.length] };
    parts.push(e.bytes);
    off += e.bytes.length;
  }
  const data = new Uint8Array(off);
  let p = 0;
  for (const b of parts) {
    data.set(b, p);
    p += b.length;
  }
  return stFile(header, data);
}

function split(b: Uint8Array): { header: Record<string, unknown>; text: string; data: Uint8Array } {
  const n = Number(new DataView(b.buffer, b.byteOffset).getBigUint64(0, true));
  const text = new TextDecoder().decode(b.subarray(8, 8 + n));
  return { header: JSON.parse(text) as Record<string, unknown>, text, data: b.subarray(8 + n) };
}

const HUGE_SHAPES: unknown[][] = [
  [2 ** 31, 2 ** 31],
  [2 ** 53],
  [2 ** 53 + 2],
  [2 ** 26, 2 ** 26, 2 ** 26],
  [2 ** 32, 2 ** 32, 0],
  [-1],
  [-4, -1],
  [1.5],
  ['4'],
  [null],
  [1e308],
  [Number.MAX_SAFE_INTEGER],
  Array.from({ length: 5000 }, () => 1),
  [],
  [0],
];
const BAD_DTYPES: unknown[] = [
  'F8',
  'f32',
  '',
  'F32 ',
  'U64',
  'C64',
  'F8_E4M3',
  123,
  null,
  ['F32'],
  'I64',
  'F16',
  'BOOL',
  'toString',
  '__proto__',
];

/** One JSON-level mutation of a safetensors header (the data region is kept). */
function mutateJson(src: Uint8Array, rng: Rng): Mutant {
  const { header, text, data } = split(src);
  const names = Object.keys(header).filter((k) => k !== '__metadata__');
  const name = pick(rng, names);
  const e = { ...(header[name] as Record<string, unknown>) };
  const offs = e.data_offsets as [number, number];
  const end = data.length;
  const k = rng.int(0, 14);
  let op: string;
  let raw: string | undefined;
  if (k <= 2) {
    e.shape = pick(rng, HUGE_SHAPES);
    op = `shape=${JSON.stringify(e.shape).slice(0, 40)}`;
  } else if (k === 3) {
    e.dtype = pick(rng, BAD_DTYPES);
    op = `dtype=${JSON.stringify(e.dtype)}`;
  } else if (k <= 5) {
    const v = pick(rng, [
      [offs[0], end + 1],
      [offs[0], 2 ** 60],
      [offs[1], offs[0]],
      [offs[0] + 1, offs[1] + 1],
      [0, offs[1] - offs[0]],
      [end, end + (offs[1] - offs[0])],
      [-1, offs[1]],
      [offs[0], offs[1], 0],
      [offs[0] + 0.5, offs[1] + 0.5],
      [String(offs[0]), offs[1]],
      [2 ** 53, 2 ** 53 + (offs[1] - offs[0])],
      [Number(pick(rng, INTERESTING)), offs[1]],
    ]);
    e.data_offsets = v;
    op = `data_offsets=${JSON.stringify(v)}`;
  } else if (k === 6) {
    // shape and offsets consistent with each other but with a huge size past the end
    e.shape = [2 ** 20, 2 ** 20];
    e.data_offsets = [0, 2 ** 40 * ITEM[String(e.dtype)]!];
    op = 'consistent huge tensor';
  } else if (k === 7) {
    header[name] = pick(rng, [null, [], 'x', 1, { dtype: 'F32' }, { shape: [1] }]);
    op = `entry=${JSON.stringify(header[name])}`;
    return { op, bytes: stFileFrom(header, data) };
  } else if (k === 8) {
    header.__metadata__ = pick(rng, [{ a: 1 }, [], 'x', null, { a: { b: 'c' } }, { format: ['pt'] }, 5]);
    op = `metadata=${JSON.stringify(header.__metadata__)}`;
    return { op, bytes: stFileFrom(header, data) };
  } else if (k === 9) {
    raw = pick(rng, ['[]', '"x"', 'null', '1', '{', '{"a":', '{}', ' {} ', '{"a":{}}', '\u00ff']);
    op = `header=${raw}`;
    return { op, bytes: stFileRaw(raw, data) };
  } else if (k === 10) {
    // a tensor name repeated (JSON.parse would silently keep the last one)
    const other = { ...e, data_offsets: [0, offs[1] - offs[0]] };
    raw = text.replace(/\}\s*$/, `,${JSON.stringify(name)}:${JSON.stringify(other)}}`);
    op = `duplicate '${name}'`;
    return { op, bytes: stFileRaw(raw, data) };
  } else if (k === 11) {
    // two tensors on the same bytes
    const other = pick(rng, names);
    const o = header[other] as { data_offsets: [number, number] };
    const len = offs[1] - offs[0];
    e.data_offsets = [o.data_offsets[0], o.data_offsets[0] + len];
    op = `overlap '${name}' on '${other}'`;
  } else if (k === 12) {
    const depth = pick(rng, [1000, 100_000]);
    raw = text.replace(/\}\s*$/, `,"deep":${'['.repeat(depth)}${']'.repeat(depth)}}`);
    op = `deep nesting ${depth}`;
    return { op, bytes: stFileRaw(raw, data) };
  } else {
    // many tiny entries (the header's size is bounded, its entry count is not)
    for (let i = 0; i < 5000; i++) header[`t${i}`] = { dtype: 'U8', shape: [0], data_offsets: [0, 0] };
    op = '5000 empty entries';
    return { op, bytes: stFileFrom(header, data) };
  }
  header[name] = e;
  return { op: `json '${name}' ${op}`, bytes: stFileFrom(header, data) };
}

function stFileFrom(header: Record<string, unknown>, data: Uint8Array): Uint8Array {
  return stFile(header, data);
}
function stFileRaw(raw: string, data: Uint8Array): Uint8Array {
  return stFile(null, data, raw);
}

function mutateLength(src: Uint8Array, rng: Rng): Mutant {
  const b = src.slice();
  const n = new DataView(b.buffer).getBigUint64(0, true);
  const v = pick(rng, [
    ...INTERESTING,
    n + 1n,
    n - 1n,
    BigInt(b.length),
    BigInt(b.length - 7),
    n + 8n,
    100n * 2n ** 20n,
  ]);
  writeInt(b, 0, 8, v);
  return { op: `length=${v}`, bytes: b };
}

/** A parse result must describe only bytes the file holds, each tensor exactly, with string metadata. */
export function checkSafetensors(st: SafeTensors, file: Uint8Array): void {
  const n = Number(new DataView(file.buffer, file.byteOffset).getBigUint64(0, true));
  const lo = file.byteOffset + 8 + n;
  const hi = file.byteOffset + file.byteLength;
  const spans: [number, number][] = [];
  for (const [name, e] of st.tensors) {
    const count = e.shape.reduce((a, b) => a * b, 1);
    if (!e.shape.every((d) => Number.isSafeInteger(d) && d >= 0))
      throw new Error(`'${name}': bad shape ${e.shape}`);
    if (e.bytes.length !== count * ITEM[e.dtype]!)
      throw new Error(`'${name}': ${e.bytes.length} bytes for ${count}`);
    if (e.bytes.buffer !== file.buffer || e.bytes.byteOffset < lo || e.bytes.byteOffset + e.bytes.length > hi)
      throw new Error(`'${name}': view outside the data region`);
    if (e.bytes.length) spans.push([e.bytes.byteOffset, e.bytes.byteOffset + e.bytes.length]);
    let d: Float32Array | Int32Array;
    try {
      d = decodeEntry(e, name);
    } catch (err) {
      if (err instanceof SafetensorsError && e.dtype === 'I64' && /does not fit/.test(err.message)) continue;
      throw err;
    }
    if (d.length !== count) throw new Error(`'${name}': decoded ${d.length} values for ${count}`);
  }
  spans.sort((a, b) => a[0] - b[0]);
  for (let i = 1; i < spans.length; i++)
    if (spans[i]![0] < spans[i - 1]![1]) throw new Error('overlapping tensors');
  for (const [k, v] of Object.entries(st.metadata))
    if (typeof v !== 'string') throw new Error(`metadata '${k}' is a ${typeof v}, not a string`);
}

test(
  'safetensors: seeded mutations end in a parse or a SafetensorsError naming the file',
  async () => {
    const seeds = [allDtypes(), writerSeed(), kernelsSeed()];
    for (const s of seeds) checkSafetensors(parseSafetensors(s, 'seed'), s);
    const run = new FuzzRun('safetensors', { errors: [SafetensorsError] });
    const go = (m: Mutant) => run.one(m.op, m.bytes, (b, src) => parseSafetensors(b, src), checkSafetensors);
    const hot = (s: Uint8Array) => [0, 8 + Number(new DataView(s.buffer).getBigUint64(0, true))] as const;
    let rng = rngFor(SEEDS.bytes);
    for (let i = 0; i < iters(400); i++) {
      const s = seeds[i % seeds.length]!;
      await go(mutateMany(s, rng, hot(s)));
    }
    // mutations confined to the data region must still parse (the header is intact)
    rng = rngFor(SEEDS.data);
    let dataOk = 0;
    for (let i = 0; i < iters(60); i++) {
      const s = seeds[i % seeds.length]!;
      const b = s.slice();
      const [, h] = hot(s);
      if (b.length > h) for (let j = 0; j < 4; j++) b[rng.int(h, b.length)]! ^= 1 << rng.int(0, 8);
      if ((await go({ op: 'data bitflips', bytes: b })) === 'ok') dataOk++;
    }
    expect(dataOk).toBe(iters(60));
    rng = rngFor(SEEDS.length);
    for (let i = 0; i < iters(60); i++) await go(mutateLength(seeds[i % seeds.length]!, rng));
    rng = rngFor(SEEDS.json);
    for (let i = 0; i < iters(400); i++) await go(mutateJson(seeds[i % seeds.length]!, rng));
    run.report();
    expect(run.failures, run.describeFailures()).toEqual([]);
    expect(run.stats().ok).toBeGreaterThan(0);
    expect(run.stats().clean).toBeGreaterThan(iters(400));
  },
  timeout(120_000),
);

test('safetensors: declared sizes far beyond the file are refused before anything is allocated', () => {
  const base = writerSeed();
  const { header, data } = split(base);
  const cases: [string, Uint8Array][] = [];
  const lenHuge = base.slice();
  writeInt(lenHuge, 0, 8, 1n << 60n);
  cases.push(['header length 2^60', lenHuge]);
  const e = header['model.w'] as Record<string, unknown>;
  for (const [shape, offs] of [
    [
      [2 ** 31, 2 ** 31],
      [0, 2 ** 64],
    ],
    [
      [2 ** 20, 2 ** 20],
      [0, 2 ** 42],
    ],
    [[2 ** 28], [0, 2 ** 30]],
  ] as const)
    cases.push([
      `shape ${shape}`,
      stFile({ ...header, 'model.w': { ...e, shape, data_offsets: offs } }, data),
    ]);
  const before = process.memoryUsage();
  for (const [what, b] of cases) {
    let err: unknown;
    try {
      parseSafetensors(b, `huge-${what}.safetensors`);
    } catch (x) {
      err = x;
    }
    expect(err, what).toBeInstanceOf(SafetensorsError);
    expect((err as Error).message).toContain(`huge-${what}.safetensors`);
  }
  const after = process.memoryUsage();
  expect(after.arrayBuffers - before.arrayBuffers).toBeLessThan(64 * 2 ** 20);
  expect(after.rss - before.rss).toBeLessThan(256 * 2 ** 20);
});

test('safetensors: a tensor name given twice in the header is refused, not silently resolved', () => {
  const base = writerSeed();
  const { text, data } = split(base);
  const raw = text.replace(/\}\s*$/, `,"model.n":{"dtype":"I32","shape":[1],"data_offsets":[0,4]}}`);
  expect(() => parseSafetensors(stFile(null, data, raw), 'dup.safetensors')).toThrow(
    /dup\.safetensors: .*'model\.n'.* (twice|more than once)/,
  );
});
