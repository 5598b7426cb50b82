/**
 * Fuzzing the PyTorch checkpoint reader: src/io/pth.ts (readPth / readPthObject) over the zip
 * container (src/io/zip.ts) and the legacy (pre-1.6) pickle stream, and the pickle VM
 * (src/io/pickle.ts) on its own.
 *
 * Seeds (test/fixtures/pth, made by test/oracle/make_pth_variants.py with torch 1.13, and
 * test/fixtures/tiny_sam_lst.pth): zip checkpoints in protocol 2 and 4, STORED and DEFLATE,
 * every storage dtype, a wrapped state_dict, a DataParallel one; the legacy format; CPython's
 * pickles of a rich value in protocols 0-5 (expected.json).
 * Mutations: generic bytes aimed at the pickle and the zip directory (with and without CRC
 * checks, so that corrupt bytes also reach the pickle VM and the tensor rebuild); structural zip
 * edits (sizes, offsets, counts, ZIP64 fields, duplicated and overlapping entries, renamed
 * entries, truncated directories); opcode-level pickle edits re-zipped with a valid CRC (huge,
 * negative and big-int storage sizes / offsets / shapes / strides, renamed and injected globals,
 * dropped, duplicated, swapped and injected opcodes, moved memo indices); the same on each of the
 * legacy stream's pickles and its per-storage element counts.
 * Each input ends in tensors that match their shapes or in a PthError / PickleError naming the
 * file, within 2 s. A separate test feeds the VM malicious pickles (os.system, builtins.eval,
 * STACK_GLOBAL, INST, OBJ, NEWOBJ, NEWOBJ_EX, EXT1/2/4, odd persistent ids) and checks that each
 * is refused with the global named and that the payload never ran.
 */
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { zipSync } from 'fflate';
import { expect, test } from 'vitest';
import { PickleError, unpickle } from '../../src/io/pickle.js';
import { PthError, readPth, readPthObject, TORCH_GLOBALS, type PthTensor } from '../../src/io/pth.js';
import { ZipArchive, ZipError } from '../../src/io/zip.js';
import {
  assemble,
  concatBytes,
  disassemble,
  FuzzRun,
  globalOp,
  INTERESTING,
  intOp,
  iters,
  mutateMany,
  mutatePickle,
  mutateZipDir,
  pick,
  rngFor,
  strOp,
  writeInt,
  zipLayout,
  type Mutant,
  type PickleOp,
  type Rng,
  timeout,
} from './mutate.js';

const SEEDS = {
  zipBytes: 0x9a7401,
  zipNoCrc: 0x9a7402,
  zipDir: 0x9a7403,
  zipPickle: 0x9a7404,
  legacyBytes: 0x9a7405,
  legacyPickle: 0x9a7406,
  vm: 0x9a7407,
  big: 0x9a7408,
};
const fixtures = join(import.meta.dirname, '..', 'fixtures');
const read = (n: string) => new Uint8Array(readFileSync(join(fixtures, 'pth', n)));

const ZIP_SEEDS = [
  'dtypes_zip.pth',
  'dtypes_zip_p4.pth',
  'dtypes_deflate.pth',
  'wrapped_state_dict.pth',
  'resnet_small.pth',
];

function checkTensors(m: Map<string, PthTensor>): void {
  for (const [k, t] of m) {
    if (!t.shape.every((d) => Number.isSafeInteger(d) && d >= 0))
      throw new Error(`'${k}': shape [${t.shape}]`);
    const n = t.shape.reduce((a, b) => a * b, 1);
    if (t.data.length !== n) throw new Error(`'${k}': ${t.data.length} values for [${t.shape}]`);
    if ((t.dtype === 'f32') !== t.data instanceof Float32Array) throw new Error(`'${k}': dtype ${t.dtype}`);
  }
}

const readAll = (b: Uint8Array, src: string, checkCrc = true) => readPth(b, src, { unwrap: true, checkCrc });
const ERRORS = [PthError, PickleError];

/** The entries of a well-formed zip, in order. */
function entriesOf(b: Uint8Array): [string, Uint8Array][] {
  const z = new ZipArchive(b, 'seed');
  return z.names().map((n) => [n, z.read(n)]);
}

/** Mutates data.pkl at the opcode level and re-zips (valid CRCs), so the VM sees the edit. */
function mutateZipPickle(src: Uint8Array, rng: Rng): Mutant {
  const entries = entriesOf(src);
  const i = entries.findIndex(([n]) => n.endsWith('data.pkl'));
  const m = mutatePickle(entries[i]![1], rng);
  entries[i] = [entries[i]![0], m.bytes];
  const level = rng.next() < 0.3 ? 6 : 0;
  return {
    op: `${m.op}${level ? ' (deflated)' : ''}`,
    bytes: zipSync(Object.fromEntries(entries), { level }),
  };
}

/** Offsets of the pickles in a legacy stream: magic, protocol, sys_info, object, storage keys. */
function legacyPickles(b: Uint8Array): { starts: number[]; dataStart: number } {
  const starts: number[] = [];
  let p = 0;
  for (let i = 0; i < 5; i++) {
    starts.push(p);
    p = disassemble(b, p).end;
  }
  return { starts, dataStart: p };
}

function mutateLegacy(src: Uint8Array, rng: Rng): Mutant {
  const { starts, dataStart } = legacyPickles(src);
  const k = rng.int(0, 10);
  if (k < 7) {
    const which = k < 5 ? 3 : pick(rng, [0, 1, 2, 4]);
    const m = mutatePickle(src, rng, starts[which]!);
    return { op: `legacy pickle#${which} ${m.op}`, bytes: m.bytes };
  }
  // the first storage's int64 element count
  const b = src.slice();
  writeInt(b, dataStart, 8, pick(rng, INTERESTING) * (rng.next() < 0.2 ? -1n : 1n));
  return { op: 'legacy storage count', bytes: b };
}

test(
  'pth zip: mutated checkpoints end in tensors or a PthError naming the file',
  async () => {
    const seeds = ZIP_SEEDS.map(read);
    for (const s of seeds) checkTensors(readAll(s, 'seed'));
    const run = new FuzzRun('pth-zip', { errors: ERRORS });
    const hot = (s: Uint8Array): [number, number] => {
      const L = zipLayout(s);
      return [Math.max(0, L.cdOffset - 600), s.length];
    };
    let rng = rngFor(SEEDS.zipBytes);
    for (let i = 0; i < iters(200); i++) {
      const s = seeds[i % seeds.length]!;
      const m = mutateMany(s, rng, rng.next() < 0.5 ? hot(s) : [0, 1200]);
      await run.one(m.op, m.bytes, (b, src) => readAll(b, src), checkTensors);
    }
    // without CRC checks, corrupt bytes reach the pickle VM and the tensor rebuild
    rng = rngFor(SEEDS.zipNoCrc);
    for (let i = 0; i < iters(200); i++) {
      const s = seeds[i % seeds.length]!;
      const m = mutateMany(s, rng, [0, 1200]);
      await run.one(`nocrc ${m.op}`, m.bytes, (b, src) => readAll(b, src, false), checkTensors);
    }
    rng = rngFor(SEEDS.zipDir);
    for (let i = 0; i < iters(250); i++) {
      const m = mutateZipDir(seeds[i % seeds.length]!, rng);
      await run.one(m.op, m.bytes, (b, src) => readAll(b, src), checkTensors);
    }
    rng = rngFor(SEEDS.zipPickle);
    for (let i = 0; i < iters(350); i++) {
      const m = mutateZipPickle(seeds[i % seeds.length]!, rng);
      await run.one(m.op, m.bytes, (b, src) => readAll(b, src), checkTensors);
    }
    run.report();
    expect(run.failures, run.describeFailures()).toEqual([]);
    expect(run.stats().ok).toBeGreaterThan(0);
  },
  timeout(120_000),
);

test(
  'pth: the full tiny SAM-LST checkpoint under mutation (1.4 MB, 300+ tensors)',
  async () => {
    const seed = new Uint8Array(readFileSync(join(fixtures, 'tiny_sam_lst.pth')));
    const run = new FuzzRun('pth-tiny-sam-lst', { errors: ERRORS });
    const rng = rngFor(SEEDS.big);
    for (let i = 0; i < iters(50); i++) {
      const m = i % 2 ? mutateZipDir(seed, rng) : mutateZipPickle(seed, rng);
      await run.one(m.op, m.bytes, (b, src) => readAll(b, src), checkTensors);
    }
    run.report();
    expect(run.failures, run.describeFailures()).toEqual([]);
  },
  timeout(120_000),
);

test(
  'pth legacy: mutated streams end in tensors or a PthError naming the file',
  async () => {
    const seed = read('legacy.pth');
    checkTensors(readAll(seed, 'seed'));
    const run = new FuzzRun('pth-legacy', { errors: ERRORS });
    let rng = rngFor(SEEDS.legacyBytes);
    const { dataStart } = legacyPickles(seed);
    for (let i = 0; i < iters(250); i++) {
      const m = mutateMany(seed, rng, [0, dataStart + 16]);
      await run.one(m.op, m.bytes, (b, src) => readAll(b, src), checkTensors);
    }
    rng = rngFor(SEEDS.legacyPickle);
    for (let i = 0; i < iters(350); i++) {
      const m = mutateLegacy(seed, rng);
      await run.one(m.op, m.bytes, (b, src) => readAll(b, src), checkTensors);
    }
    run.report();
    expect(run.failures, run.describeFailures()).toEqual([]);
    expect(run.stats().ok).toBeGreaterThan(0);
  },
  timeout(120_000),
);

interface Expected {
  pickles: { protocol: number; hex: string }[];
}

test(
  'pickle VM: mutated CPython pickles (protocols 0-5) end in a value or a PickleError',
  async () => {
    const exp = JSON.parse(readFileSync(join(fixtures, 'pth', 'expected.json'), 'utf8')) as Expected;
    const seeds = exp.pickles.map((p) => Uint8Array.from(Buffer.from(p.hex, 'hex')));
    const run = new FuzzRun('pickle', { errors: [PickleError] });
    const rng = rngFor(SEEDS.vm);
    const vm = (b: Uint8Array, src: string) => unpickle(b, { source: src, globals: TORCH_GLOBALS }).value;
    for (let i = 0; i < iters(500); i++) {
      const s = seeds[i % seeds.length]!;
      const m = rng.next() < 0.5 ? mutatePickle(s, rng, 0, 3) : mutateMany(s, rng);
      await run.one(m.op, m.bytes, vm);
    }
    run.report();
    expect(run.failures, run.describeFailures()).toEqual([]);
  },
  timeout(120_000),
);

// ------------------------------------------------------------------ malicious pickles

const marker = join(tmpdir(), `sam-lst-pwned-${process.pid}`);
const cmd = `touch ${marker}`;
const op = (code: number, arg: Uint8Array = new Uint8Array(0)): PickleOp => ({ op: code, arg });
const PROTO = (v: number) => op(0x80, Uint8Array.of(v));
const STOP = op(0x2e);
const MARK = op(0x28);
const TUPLE1 = op(0x85);
const REDUCE = op(0x52);
const enc = new TextEncoder();

/** A pickle of `fn(arg)` made with the given call form. */
const MALICIOUS: [string, string, PickleOp[]][] = [
  [
    'GLOBAL os.system + REDUCE',
    'os.system',
    [PROTO(2), globalOp('os', 'system'), strOp(cmd), TUPLE1, REDUCE, STOP],
  ],
  [
    'GLOBAL posix.system (protocol 0)',
    'posix.system',
    [globalOp('posix', 'system'), MARK, op(0x56, enc.encode(`${cmd}\n`)), op(0x74), REDUCE, STOP],
  ],
  [
    'GLOBAL builtins.eval',
    'builtins.eval',
    [
      PROTO(2),
      globalOp('builtins', 'eval'),
      strOp(`__import__('os').system('${cmd}')`),
      TUPLE1,
      REDUCE,
      STOP,
    ],
  ],
  [
    'GLOBAL builtins.exec',
    'builtins.exec',
    [PROTO(2), globalOp('builtins', 'exec'), strOp('import os'), TUPLE1, REDUCE, STOP],
  ],
  [
    'GLOBAL __builtin__.eval (py2)',
    '__builtin__.eval',
    [globalOp('__builtin__', 'eval'), strOp('1'), TUPLE1, REDUCE, STOP],
  ],
  [
    'STACK_GLOBAL builtins.eval',
    'builtins.eval',
    [PROTO(4), strOp('builtins'), strOp('eval'), op(0x93), strOp('1'), TUPLE1, REDUCE, STOP],
  ],
  [
    'STACK_GLOBAL subprocess.Popen',
    'subprocess.Popen',
    [PROTO(4), strOp('subprocess'), strOp('Popen'), op(0x93), strOp(cmd), TUPLE1, REDUCE, STOP],
  ],
  ['INST os.system', 'os.system', [MARK, strOp(cmd), op(0x69, enc.encode('os\nsystem\n')), STOP]],
  ['OBJ os.system', 'os.system', [MARK, globalOp('os', 'system'), strOp(cmd), op(0x6f), STOP]],
  [
    'NEWOBJ subprocess.Popen',
    'subprocess.Popen',
    [PROTO(2), globalOp('subprocess', 'Popen'), strOp(cmd), TUPLE1, op(0x81), STOP],
  ],
  [
    'NEWOBJ_EX os.system',
    'os.system',
    [PROTO(4), globalOp('os', 'system'), strOp(cmd), TUPLE1, op(0x7d), op(0x92), STOP],
  ],
  [
    'BUILD with a __setstate__ payload',
    'os.system',
    [
      PROTO(2),
      globalOp('collections', 'OrderedDict'),
      op(0x29),
      REDUCE,
      globalOp('os', 'system'),
      op(0x62),
      STOP,
    ],
  ],
  [
    'REDUCE on torch.load',
    'torch.load',
    [PROTO(2), globalOp('torch', 'load'), strOp('/etc/passwd'), TUPLE1, REDUCE, STOP],
  ],
  [
    'numpy reconstruct',
    'numpy.core.multiarray._reconstruct',
    [PROTO(2), globalOp('numpy.core.multiarray', '_reconstruct'), op(0x29), REDUCE, STOP],
  ],
  [
    'nn.Module class',
    'torch.nn.modules.linear.Linear',
    [PROTO(2), globalOp('torch.nn.modules.linear', 'Linear'), op(0x29), op(0x81), STOP],
  ],
  ['EXT1 code 1', 'extension code 1', [PROTO(2), op(0x82, Uint8Array.of(1)), op(0x29), REDUCE, STOP]],
  ['EXT2 code 0x1234', 'extension code 4660', [PROTO(2), op(0x83, Uint8Array.of(0x34, 0x12)), STOP]],
  [
    'EXT4 code',
    'extension code 305419896',
    [PROTO(2), op(0x84, Uint8Array.of(0x78, 0x56, 0x34, 0x12)), STOP],
  ],
];

test('pickle: malicious pickles are refused, the error names the global, and nothing runs', () => {
  rmSync(marker, { force: true });
  for (const [what, global, ops] of MALICIOUS) {
    const bytes = assemble(ops);
    let err: unknown;
    try {
      unpickle(bytes, { source: `evil-${what}.pkl`, globals: TORCH_GLOBALS });
    } catch (e) {
      err = e;
    }
    expect(err, what).toBeInstanceOf(PickleError);
    const msg = (err as Error).message;
    expect(msg, what).toContain(`evil-${what}.pkl`);
    expect(msg, what).toContain(global);
    expect(msg, what).toMatch(/refused|not in the whitelist|not supported/);
    // the same payload as a torch checkpoint (zip and legacy-style first pickle)
    const zip = zipSync({ 'evil/data.pkl': bytes, 'evil/version': enc.encode('3\n') }, { level: 0 });
    expect(() => readPthObject(zip, `evil-${what}.pth`), what).toThrow(PthError);
    expect(() => readPthObject(zip, `evil-${what}.pth`), what).toThrow(global);
  }
  // the committed malicious fixtures (made by torch/pickle in make_pth_variants.py)
  expect(() => readPth(read('malicious_os_system.pth'), 'm1.pth')).toThrow(/m1\.pth.*os\.system/);
  expect(() => readPth(read('malicious_eval_p4.pth'), 'm2.pth')).toThrow(/m2\.pth.*builtins\.eval/);
  expect(existsSync(marker), 'the payload must never run').toBe(false);
});

test('pickle: persistent ids of unexpected forms are refused by the checkpoint reader', () => {
  const pid = (items: PickleOp[]) =>
    zipSync(
      {
        'a/data.pkl': assemble([
          PROTO(2),
          op(0x7d),
          strOp('w'),
          MARK,
          ...items,
          op(0x74),
          op(0x51),
          op(0x73),
          STOP,
        ]),
      },
      { level: 0 },
    );
  const cases: [string, PickleOp[], RegExp][] = [
    ['module', [strOp('module'), globalOp('torch.nn', 'Linear')], /persistent id.*module|Linear/],
    ['unknown kind', [strOp('cuda_graph'), intOp(1n)], /persistent id.*cuda_graph/],
    [
      'storage of a non-storage class',
      [strOp('storage'), globalOp('collections', 'OrderedDict'), strOp('0'), strOp('cpu'), intOp(4n)],
      /storage type/,
    ],
    [
      'negative size',
      [strOp('storage'), globalOp('torch', 'FloatStorage'), strOp('0'), strOp('cpu'), intOp(-4n)],
      /storage size/,
    ],
    [
      '2^62 elements',
      [strOp('storage'), globalOp('torch', 'FloatStorage'), strOp('0'), strOp('cpu'), intOp(1n << 62n)],
      /storage size|exceeds|not a/,
    ],
  ];
  for (const [what, items, re] of cases) {
    let err: unknown;
    try {
      readPth(pid(items), `pid-${what}.pth`);
    } catch (e) {
      err = e;
    }
    expect(err, what).toBeInstanceOf(PthError);
    expect((err as Error).message, what).toContain(`pid-${what}.pth`);
    expect((err as Error).message, what).toMatch(re);
  }
  // a bare string persistent id (PERSID, protocol 0) without a handler
  expect(() =>
    unpickle(concatBytes(enc.encode('Pfoo\n'), Uint8Array.of(0x2e)), { source: 'p0.pkl' }),
  ).toThrow(/p0\.pkl.*persistent id/);
});

test('pth: huge declared storage sizes and shapes are refused before anything is allocated', () => {
  const seed = read('dtypes_zip.pth');
  const entries = entriesOf(seed);
  const pi = entries.findIndex(([n]) => n.endsWith('data.pkl'));
  const { ops } = disassemble(entries[pi]![1]);
  // replace every int that equals a storage element count or a shape with a huge value
  const ints = ops.flatMap((o, j) => (o.op === 0x4b || o.op === 0x4a || o.op === 0x4d ? [j] : []));
  const before = process.memoryUsage();
  let refused = 0;
  for (const v of [1n << 31n, 1n << 40n, (1n << 53n) - 1n, 1n << 62n]) {
    for (const j of ints.slice(0, 40)) {
      const edited = ops.slice();
      edited[j] = intOp(v);
      const e2 = entries.slice();
      e2[pi] = [entries[pi]![0], assemble(edited)];
      const src = `huge-${v}-${j}.pth`;
      try {
        checkTensors(readPth(zipSync(Object.fromEntries(e2), { level: 0 }), src));
      } catch (e) {
        expect(e instanceof PthError || e instanceof PickleError, String(e)).toBe(true);
        expect((e as Error).message).toContain(src);
        refused++;
      }
    }
  }
  const after = process.memoryUsage();
  expect(refused).toBeGreaterThan(0);
  expect(after.arrayBuffers - before.arrayBuffers).toBeLessThan(128 * 2 ** 20);
  expect(after.rss - before.rss).toBeLessThan(512 * 2 ** 20);
});

test('pth: a stride-0 view cannot expand a tiny storage into gigabytes', () => {
  // one float storage of 1 element viewed as (2^20, 2^20) with strides (0, 0)
  const pkl = assemble([
    PROTO(2),
    op(0x7d),
    strOp('w'),
    globalOp('torch._utils', '_rebuild_tensor_v2'),
    MARK,
    MARK,
    strOp('storage'),
    globalOp('torch', 'FloatStorage'),
    strOp('0'),
    strOp('cpu'),
    intOp(1n),
    op(0x74),
    op(0x51),
    intOp(0n),
    intOp(1n << 20n),
    intOp(1n << 20n),
    op(0x86),
    intOp(0n),
    intOp(0n),
    op(0x86),
    op(0x89),
    globalOp('collections', 'OrderedDict'),
    op(0x29),
    REDUCE,
    op(0x74),
    REDUCE,
    op(0x73),
    STOP,
  ]);
  const zip = zipSync({ 'a/data.pkl': pkl, 'a/data/0': new Uint8Array(4) }, { level: 0 });
  const obj = readPthObject(zip, 'expand.pth');
  expect(obj.format).toBe('zip');
  const before = process.memoryUsage();
  expect(() => readPth(zip, 'expand.pth')).toThrow(PthError);
  expect(() => readPth(zip, 'expand.pth')).toThrow(/expand\.pth.*'w'/);
  expect(process.memoryUsage().arrayBuffers - before.arrayBuffers).toBeLessThan(64 * 2 ** 20);
});

test('zip: ZipError is always wrapped (readPth throws PthError only)', () => {
  const seed = read('dtypes_zip.pth');
  const L = zipLayout(seed);
  const b = seed.slice();
  writeInt(b, L.entries[0]!.cd + 20, 4, 1n << 31n);
  let err: unknown;
  try {
    readPth(b, 'wrap.pth');
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(PthError);
  expect((err as PthError).cause).toBeInstanceOf(ZipError);
});

test('pickle VM: adversarial sizes and nesting fail cleanly and fast', () => {
  const timed = (what: string, b: Uint8Array, expectOk: boolean) => {
    const t0 = performance.now();
    let err: unknown;
    try {
      unpickle(b, { source: `adv-${what}.pkl` });
    } catch (e) {
      err = e;
    }
    const ms = performance.now() - t0;
    expect(ms, what).toBeLessThan(2000);
    if (expectOk) expect(err, `${what}: ${String(err)}`).toBeUndefined();
    else {
      expect(err, what).toBeInstanceOf(PickleError);
      expect((err as Error).message, what).toContain(`adv-${what}.pkl`);
    }
  };
  // ADDITEMS of 300k items (a spread into push() overflowed the call stack)
  const many = new Uint8Array(300_000).fill(0x4e);
  timed('additems', concatBytes(Uint8Array.of(0x80, 4, 0x8f, 0x28), many, Uint8Array.of(0x90, 0x2e)), true);
  timed('appends', concatBytes(Uint8Array.of(0x80, 4, 0x5d, 0x28), many, Uint8Array.of(0x65, 0x2e)), true);
  // LONG4 integers: 4 KiB is accepted quickly, 1 MiB is refused (bigint building was quadratic)
  const long4 = (n: number) => {
    const b = new Uint8Array(1 + 4 + n + 1).fill(0x7f);
    b[0] = 0x8b;
    new DataView(b.buffer).setUint32(1, n, true);
    b[b.length - 1] = 0x2e;
    return b;
  };
  timed('long4-4k', long4(4096), true);
  timed('long4-1m', long4(1 << 20), false);
  timed('int-text', concatBytes(enc.encode(`I${'9'.repeat(200_000)}\n`), Uint8Array.of(0x2e)), false);
  // a dict key of 100k nested tuples (hashing it recursed until the stack overflowed)
  const deep = concatBytes(
    Uint8Array.of(0x80, 2, 0x7d, 0x4e),
    new Uint8Array(100_000).fill(0x85),
    Uint8Array.of(0x4e, 0x73, 0x2e),
  );
  timed('deep-key', deep, false);
  // 65k nested lists stay under the MARK cap; deeper is refused
  timed('marks', concatBytes(new Uint8Array(70_000).fill(0x28), Uint8Array.of(0x2e)), false);
});

test('pth: a state_dict pickled with a repeated key reads as torch.load does (the last value wins)', () => {
  const tensor = (key: string, n: number): PickleOp[] => [
    globalOp('torch._utils', '_rebuild_tensor_v2'),
    MARK,
    MARK,
    strOp('storage'),
    globalOp('torch', 'FloatStorage'),
    strOp(key),
    strOp('cpu'),
    intOp(BigInt(n)),
    op(0x74),
    op(0x51),
    intOp(0n),
    intOp(BigInt(n)),
    TUPLE1,
    intOp(1n),
    TUPLE1,
    op(0x89),
    globalOp('collections', 'OrderedDict'),
    op(0x29),
    REDUCE,
    op(0x74),
    REDUCE,
  ];
  const pkl = assemble([
    PROTO(2),
    op(0x7d),
    MARK,
    strOp('w'),
    ...tensor('0', 2),
    strOp('b'),
    ...tensor('1', 1),
    strOp('w'),
    ...tensor('2', 3),
    op(0x75),
    STOP,
  ]);
  const f32 = (...v: number[]) => new Uint8Array(Float32Array.from(v).buffer);
  const zip = zipSync(
    { 'a/data.pkl': pkl, 'a/data/0': f32(1, 2), 'a/data/1': f32(5), 'a/data/2': f32(7, 8, 9) },
    { level: 0 },
  );
  const m = readPth(zip, 'dupkey.pth');
  expect([...m.keys()]).toEqual(['w', 'b']);
  expect(Array.from(m.get('w')!.data)).toEqual([7, 8, 9]);
  expect(m.get('w')!.shape).toEqual([3]);
});
