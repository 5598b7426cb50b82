/**
 * A just-enough pickle VM for PyTorch checkpoints (protocols 0-5 as torch.save writes them).
 *
 * It never executes or imports anything: GLOBAL / STACK_GLOBAL resolve `module.name` against a
 * whitelist of callables supplied by the caller (plus collections.OrderedDict and _codecs.encode),
 * and every other global (os.system, builtins.eval, ...) is refused with an error that names it.
 * Persistent ids (torch's storage references) go to a caller-supplied `persistentLoad`.
 * Lengths are checked against the remaining bytes before anything is sliced, the stack, mark
 * stack and memo are capped, and an unknown opcode is an error naming the opcode and its offset.
 *
 * Value model: None → null, bool → boolean, int → number (bigint beyond 2^53), float → number,
 * str → string, bytes → Uint8Array, list/set → PyList, tuple → PyTuple, dict → PyDict,
 * whitelisted globals → PyGlobal, anything a whitelisted callable builds → PyObject (or a value).
 */

export class PickleError extends Error {
  override name = 'PickleError';
}

export type PyValue =
  null | boolean | number | bigint | string | Uint8Array | PyList | PyTuple | PyDict | PyGlobal | PyObject;

export class PyTuple {
  constructor(readonly items: readonly PyValue[]) {}
}

export class PyList {
  constructor(readonly items: PyValue[] = []) {}
}

/** An object produced by a whitelisted callable; `type` says what it is, `payload` holds it. */
export class PyObject {
  /** Set by BUILD (the object's pickled state). */
  state: PyValue | undefined;
  constructor(
    readonly type: string,
    readonly payload: unknown,
  ) {}
}

/** A dict / OrderedDict in insertion order. Keys must be hashable (primitives or tuples of them). */
export class PyDict {
  private readonly map = new Map<string, [PyValue, PyValue]>();
  /** Instance attributes set by BUILD (e.g. a state_dict's `_metadata`). */
  attrs: PyDict | undefined;

  get size(): number {
    return this.map.size;
  }

  set(key: PyValue, value: PyValue): void {
    this.map.set(hashKey(key), [key, value]);
  }

  get(key: PyValue): PyValue | undefined {
    return this.map.get(hashKey(key))?.[1];
  }

  has(key: PyValue): boolean {
    return this.map.has(hashKey(key));
  }

  keys(): PyValue[] {
    return [...this.map.values()].map((e) => e[0]);
  }

  entries(): [PyValue, PyValue][] {
    return [...this.map.values()];
  }
}

/** A whitelisted global; `call` implements REDUCE / NEWOBJ on it (absent: not callable). */
export class PyGlobal {
  constructor(
    readonly module: string,
    readonly name: string,
    readonly call?: (args: readonly PyValue[]) => PyValue,
    /** Free-form data for the caller (e.g. a storage class's dtype). */
    readonly info?: unknown,
  ) {}

  get qualname(): string {
    return `${this.module}.${this.name}`;
  }
}

export interface GlobalSpec {
  call?: (args: readonly PyValue[]) => PyValue;
  info?: unknown;
}

export interface UnpickleOptions {
  /** Names the data in errors, e.g. "ckpt.pth (archive/data.pkl)". */
  source: string;
  /** Whitelisted globals by "module.name", in addition to BASE_GLOBALS. */
  globals?: ReadonlyMap<string, GlobalSpec>;
  /** Handler for BINPERSID / PERSID; without one, persistent ids are an error. */
  persistentLoad?: (pid: PyValue) => PyValue;
  /** Offset of the first opcode (default 0). */
  start?: number;
  maxStack?: number;
  maxMarks?: number;
  maxMemo?: number;
}

/** Globals every pickle may use: plain data constructors that run no code. */
export const BASE_GLOBALS: ReadonlyMap<string, GlobalSpec> = new Map<string, GlobalSpec>([
  [
    'collections.OrderedDict',
    {
      call: (args) => {
        const d = new PyDict();
        const init = args[0];
        if (init instanceof PyList || init instanceof PyTuple)
          for (const kv of init.items)
            if (kv instanceof PyTuple && kv.items.length === 2) d.set(kv.items[0]!, kv.items[1]!);
            else throw new Error('OrderedDict() argument is not a sequence of pairs');
        else if (init instanceof PyDict) for (const [k, v] of init.entries()) d.set(k, v);
        else if (init !== undefined && init !== null) throw new Error('unsupported OrderedDict() argument');
        return d;
      },
    },
  ],
  [
    // protocol-2 pickles of bytes: _codecs.encode(str, 'latin1')
    '_codecs.encode',
    {
      call: (args) => {
        const [s, enc] = args;
        if (typeof s !== 'string') throw new Error('_codecs.encode expects a str');
        if (enc !== undefined && enc !== 'latin1' && enc !== 'latin-1')
          throw new Error(`_codecs.encode with encoding ${String(enc)} is not supported`);
        const b = new Uint8Array(s.length);
        for (let i = 0; i < s.length; i++) {
          const c = s.charCodeAt(i);
          if (c > 255) throw new Error('_codecs.encode: character outside latin-1');
          b[i] = c;
        }
        return b;
      },
    },
  ],
]);

const OPNAMES: Record<number, string> = {
  0x28: 'MARK',
  0x2e: 'STOP',
  0x30: 'POP',
  0x31: 'POP_MARK',
  0x32: 'DUP',
  0x46: 'FLOAT',
  0x49: 'INT',
  0x4a: 'BININT',
  0x4b: 'BININT1',
  0x4c: 'LONG',
  0x4d: 'BININT2',
  0x4e: 'NONE',
  0x50: 'PERSID',
  0x51: 'BINPERSID',
  0x52: 'REDUCE',
  0x53: 'STRING',
  0x54: 'BINSTRING',
  0x55: 'SHORT_BINSTRING',
  0x56: 'UNICODE',
  0x58: 'BINUNICODE',
  0x61: 'APPEND',
  0x62: 'BUILD',
  0x63: 'GLOBAL',
  0x64: 'DICT',
  0x7d: 'EMPTY_DICT',
  0x65: 'APPENDS',
  0x67: 'GET',
  0x68: 'BINGET',
  0x69: 'INST',
  0x6a: 'LONG_BINGET',
  0x6c: 'LIST',
  0x5d: 'EMPTY_LIST',
  0x6f: 'OBJ',
  0x70: 'PUT',
  0x71: 'BINPUT',
  0x72: 'LONG_BINPUT',
  0x73: 'SETITEM',
  0x74: 'TUPLE',
  0x29: 'EMPTY_TUPLE',
  0x75: 'SETITEMS',
  0x47: 'BINFLOAT',
  0x80: 'PROTO',
  0x81: 'NEWOBJ',
  0x82: 'EXT1',
  0x83: 'EXT2',
  0x84: 'EXT4',
  0x85: 'TUPLE1',
  0x86: 'TUPLE2',
  0x87: 'TUPLE3',
  0x88: 'NEWTRUE',
  0x89: 'NEWFALSE',
  0x8a: 'LONG1',
  0x8b: 'LONG4',
  0x42: 'BINBYTES',
  0x43: 'SHORT_BINBYTES',
  0x8c: 'SHORT_BINUNICODE',
  0x8d: 'BINUNICODE8',
  0x8e: 'BINBYTES8',
  0x8f: 'EMPTY_SET',
  0x90: 'ADDITEMS',
  0x91: 'FROZENSET',
  0x92: 'NEWOBJ_EX',
  0x93: 'STACK_GLOBAL',
  0x94: 'MEMOIZE',
  0x95: 'FRAME',
  0x96: 'BYTEARRAY8',
  0x97: 'NEXT_BUFFER',
  0x98: 'READONLY_BUFFER',
};

/** Name of a pickle opcode byte ('0xNN' when it is not one). */
export function opcodeName(op: number): string {
  return OPNAMES[op] ?? `0x${op.toString(16).padStart(2, '0')}`;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });
/** Longest LONG4 integer accepted, in bytes (CPython caps int <-> str at 4300 digits too). */
const MAX_INT_BYTES = 1 << 12;
const MAX_INT_DIGITS = 4300;
/** Deepest tuple nesting accepted in a dict key (the key is hashed recursively). */
const MAX_KEY_DEPTH = 64;

function hashKey(k: PyValue, depth = 0): string {
  if (depth > MAX_KEY_DEPTH) throw new Error(`dict key nested more than ${MAX_KEY_DEPTH} tuples deep`);
  if (k === null) return 'N';
  switch (typeof k) {
    case 'string':
      return `s${k}`;
    case 'number':
      return `n${k}`;
    case 'bigint':
      return `n${k}`;
    case 'boolean':
      return k ? 'n1' : 'n0';
  }
  if (k instanceof PyTuple) return `t(${k.items.map((x) => hashKey(x, depth + 1)).join(',')})`;
  if (k instanceof Uint8Array) return `b${Array.from(k).join(',')}`;
  if (k instanceof PyGlobal) return `g${k.qualname}`;
  throw new Error(`unhashable dict key (${describe(k)})`);
}

/** A short description of a value's type, for error messages. */
export function describe(v: PyValue | undefined): string {
  if (v === undefined) return 'nothing';
  if (v === null) return 'None';
  if (typeof v === 'string') return 'str';
  if (typeof v === 'number') return Number.isInteger(v) ? 'int' : 'float';
  if (typeof v === 'bigint') return 'int';
  if (typeof v === 'boolean') return 'bool';
  if (v instanceof Uint8Array) return 'bytes';
  if (v instanceof PyList) return 'list';
  if (v instanceof PyTuple) return 'tuple';
  if (v instanceof PyDict) return 'dict';
  if (v instanceof PyGlobal) return v.qualname;
  return v.type;
}

export interface UnpickleResult {
  value: PyValue;
  /** Offset just past the STOP opcode (the next pickle in a stream starts here). */
  end: number;
}

/** Runs one pickle from `opts.start` to its STOP opcode. */
export function unpickle(bytes: Uint8Array, opts: UnpickleOptions): UnpickleResult {
  const src = opts.source;
  const maxStack = opts.maxStack ?? 1 << 22;
  const maxMarks = opts.maxMarks ?? 1 << 16;
  const maxMemo = opts.maxMemo ?? 1 << 22;
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const n = bytes.byteLength;
  let pos = opts.start ?? 0;
  let opPos = pos;
  let op = 0;
  let stack: PyValue[] = [];
  const marks: PyValue[][] = [];
  const memo = new Map<number, PyValue>();

  const fail: (msg: string) => never = (msg) => {
    throw new PickleError(`${src}: pickle: ${msg} (${opcodeName(op)} at offset ${opPos})`);
  };
  const need = (k: number): number => {
    if (k > n - pos) fail(`needs ${k} more bytes but only ${n - pos} remain: the data is truncated`);
    const p = pos;
    pos += k;
    return p;
  };
  const u8 = (): number => bytes[need(1)]!;
  const u16 = (): number => dv.getUint16(need(2), true);
  const u32 = (): number => dv.getUint32(need(4), true);
  const u64 = (): number => {
    const v = dv.getBigUint64(need(8), true);
    if (v > BigInt(n)) fail(`length ${v} exceeds the data (${n} bytes)`);
    return Number(v);
  };
  const take = (len: number): Uint8Array => {
    const p = need(len);
    return bytes.subarray(p, p + len);
  };
  const line = (): string => {
    const nl = bytes.indexOf(0x0a, pos);
    if (nl < 0) fail('text argument has no terminating newline: the data is truncated');
    const s = latin1(bytes.subarray(pos, nl));
    pos = nl + 1;
    return s;
  };
  const str = (b: Uint8Array): string => {
    try {
      return utf8.decode(b);
    } catch {
      return fail('string is not valid UTF-8');
    }
  };
  const push = (v: PyValue): void => {
    if (stack.length >= maxStack) fail(`stack exceeds ${maxStack} items`);
    stack.push(v);
  };
  const pop = (): PyValue => {
    if (stack.length === 0) fail('stack underflow');
    return stack.pop()!;
  };
  const top = (): PyValue => {
    if (stack.length === 0) fail('stack underflow');
    return stack[stack.length - 1]!;
  };
  const popMark = (): PyValue[] => {
    const items = stack;
    const prev = marks.pop();
    if (!prev) fail('no MARK to pop to');
    stack = prev;
    return items;
  };
  const memoPut = (idx: number, v: PyValue): void => {
    if (!memo.has(idx) && memo.size >= maxMemo) fail(`memo exceeds ${maxMemo} entries`);
    memo.set(idx, v);
  };
  const memoGet = (idx: number): PyValue => {
    const v = memo.get(idx);
    if (v === undefined) return fail(`memo entry ${idx} was never stored`);
    return v;
  };
  const resolveGlobal = (module: string, name: string): PyGlobal => {
    const q = `${module}.${name}`;
    const spec = opts.globals?.get(q) ?? BASE_GLOBALS.get(q);
    if (!spec) fail(`refused global '${q}': not in the whitelist of checkpoint globals, not executed`);
    return new PyGlobal(module, name, spec.call, spec.info);
  };
  const call = (f: PyValue, args: PyValue): PyValue => {
    if (!(f instanceof PyGlobal)) return fail(`cannot call a ${describe(f)}`);
    if (!(args instanceof PyTuple))
      return fail(`arguments of ${f.qualname} are a ${describe(args)}, not a tuple`);
    if (!f.call) return fail(`${f.qualname} is not callable here`);
    try {
      return f.call(args.items);
    } catch (e) {
      if (e instanceof PickleError) throw e;
      return fail(`${f.qualname}: ${(e as Error).message}`);
    }
  };
  const setItem = (d: PyValue, k: PyValue, v: PyValue): void => {
    if (!(d instanceof PyDict)) return fail(`SETITEM on a ${describe(d)}`);
    try {
      d.set(k, v);
    } catch (e) {
      fail((e as Error).message);
    }
  };
  const listOf = (v: PyValue, what: string): PyList => {
    if (!(v instanceof PyList)) return fail(`${what} on a ${describe(v)}`);
    return v;
  };
  const int = (v: bigint): number | bigint =>
    v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;

  for (;;) {
    if (pos >= n) {
      opPos = pos;
      fail('the data ended before the STOP opcode: truncated');
    }
    opPos = pos;
    op = bytes[pos++]!;
    switch (op) {
      case 0x80: // PROTO
        if (u8() > 5) fail('unsupported pickle protocol');
        break;
      case 0x95: // FRAME
        if (u64() > n - pos) fail('frame runs past the end of the data: truncated');
        break;
      case 0x28: // MARK
        if (marks.length >= maxMarks) fail(`more than ${maxMarks} nested MARKs`);
        marks.push(stack);
        stack = [];
        break;
      case 0x2e: // STOP
        if (marks.length) fail('STOP inside an unclosed MARK');
        if (stack.length !== 1) fail(`STOP with ${stack.length} items on the stack`);
        return { value: pop(), end: pos };
      case 0x30: // POP (of the top item, or of the MARK just pushed)
        if (stack.length === 0 && marks.length) popMark();
        else pop();
        break;
      case 0x31: // POP_MARK
        popMark();
        break;
      case 0x32: // DUP
        push(top());
        break;
      case 0x4e: // NONE
        push(null);
        break;
      case 0x88: // NEWTRUE
        push(true);
        break;
      case 0x89: // NEWFALSE
        push(false);
        break;
      case 0x4a: // BININT
        push(dv.getInt32(need(4), true));
        break;
      case 0x4b: // BININT1
        push(u8());
        break;
      case 0x4d: // BININT2
        push(u16());
        break;
      case 0x8a: // LONG1
        push(int(signedLE(take(u8()))));
        break;
      case 0x8b: {
        // LONG4
        const len = dv.getInt32(need(4), true);
        if (len < 0) fail('negative LONG4 length');
        const b = take(len);
        if (len > MAX_INT_BYTES)
          fail(`a ${len}-byte integer; no checkpoint value needs more than ${MAX_INT_BYTES}`);
        push(int(signedLE(b)));
        break;
      }
      case 0x49: {
        // INT (text); "01"/"00" are protocol-0 booleans
        const s = line().trim();
        if (s.length > MAX_INT_DIGITS) fail(`a ${s.length}-character INT literal`);
        if (s === '01' || s === '00') push(s === '01');
        else if (/^[+-]?\d+$/.test(s)) push(int(BigInt(s)));
        else fail(`bad INT literal '${s.slice(0, 40)}'`);
        break;
      }
      case 0x4c: {
        // LONG (text)
        const s = line().trim().replace(/L$/, '');
        if (s.length > MAX_INT_DIGITS) fail(`a ${s.length}-character LONG literal`);
        if (!/^[+-]?\d+$/.test(s)) fail(`bad LONG literal '${s.slice(0, 40)}'`);
        push(int(BigInt(s)));
        break;
      }
      case 0x47: // BINFLOAT (big-endian)
        push(dv.getFloat64(need(8), false));
        break;
      case 0x46: {
        // FLOAT (text)
        const v = Number(line().trim());
        if (Number.isNaN(v)) fail('bad FLOAT literal');
        push(v);
        break;
      }
      case 0x58: // BINUNICODE
        push(str(take(u32())));
        break;
      case 0x8c: // SHORT_BINUNICODE
        push(str(take(u8())));
        break;
      case 0x8d: // BINUNICODE8
        push(str(take(u64())));
        break;
      case 0x56: // UNICODE (raw-unicode-escape)
        push(
          line().replace(/\\u([0-9a-fA-F]{4})|\\U([0-9a-fA-F]{8})/g, (_m, h4?: string, h8?: string) => {
            const cp = parseInt(h4 ?? h8 ?? '0', 16);
            return cp <= 0x10ffff ? String.fromCodePoint(cp) : fail(`bad code point U+${cp.toString(16)}`);
          }),
        );
        break;
      case 0x54: {
        // BINSTRING (Python 2 str, read as Latin-1)
        const len = dv.getInt32(need(4), true);
        if (len < 0) fail('negative BINSTRING length');
        push(latin1(take(len)));
        break;
      }
      case 0x55: // SHORT_BINSTRING
        push(latin1(take(u8())));
        break;
      case 0x53: // STRING (quoted repr)
        push(unquote(line(), fail));
        break;
      case 0x42: // BINBYTES
        push(new Uint8Array(take(u32())));
        break;
      case 0x43: // SHORT_BINBYTES
        push(new Uint8Array(take(u8())));
        break;
      case 0x8e: // BINBYTES8
      case 0x96: // BYTEARRAY8
        push(new Uint8Array(take(u64())));
        break;
      case 0x29: // EMPTY_TUPLE
        push(new PyTuple([]));
        break;
      case 0x85: // TUPLE1
        push(new PyTuple([pop()]));
        break;
      case 0x86: {
        // TUPLE2
        const b = pop();
        push(new PyTuple([pop(), b]));
        break;
      }
      case 0x87: {
        // TUPLE3
        const c = pop();
        const b = pop();
        push(new PyTuple([pop(), b, c]));
        break;
      }
      case 0x74: // TUPLE
        push(new PyTuple(popMark()));
        break;
      case 0x5d: // EMPTY_LIST
        push(new PyList());
        break;
      case 0x6c: // LIST
        push(new PyList(popMark()));
        break;
      case 0x7d: // EMPTY_DICT
        push(new PyDict());
        break;
      case 0x64: {
        // DICT
        const items = popMark();
        if (items.length % 2) fail('DICT with an odd number of items');
        const d = new PyDict();
        for (let i = 0; i < items.length; i += 2) setItem(d, items[i]!, items[i + 1]!);
        push(d);
        break;
      }
      case 0x8f: // EMPTY_SET (a set is kept as a list)
        push(new PyList());
        break;
      case 0x91: // FROZENSET
        push(new PyList(popMark()));
        break;
      case 0x90: {
        // ADDITEMS
        const items = popMark();
        const l = listOf(top(), 'ADDITEMS');
        for (const v of items) l.items.push(v); // no spread: a huge MARK would overflow the call stack
        break;
      }
      case 0x61: {
        // APPEND
        const v = pop();
        listOf(top(), 'APPEND').items.push(v);
        break;
      }
      case 0x65: {
        // APPENDS
        const items = popMark();
        const l = listOf(top(), 'APPENDS');
        for (const v of items) l.items.push(v);
        break;
      }
      case 0x73: {
        // SETITEM
        const v = pop();
        const k = pop();
        setItem(top(), k, v);
        break;
      }
      case 0x75: {
        // SETITEMS
        const items = popMark();
        if (items.length % 2) fail('SETITEMS with an odd number of items');
        const d = top();
        for (let i = 0; i < items.length; i += 2) setItem(d, items[i]!, items[i + 1]!);
        break;
      }
      case 0x63: {
        // GLOBAL "module\nname\n"
        const module = line();
        const name = line();
        push(resolveGlobal(module, name));
        break;
      }
      case 0x93: {
        // STACK_GLOBAL
        const name = pop();
        const module = pop();
        if (typeof module !== 'string' || typeof name !== 'string') fail('STACK_GLOBAL needs two str');
        else push(resolveGlobal(module, name));
        break;
      }
      case 0x69: {
        // INST "module\nname\n" (protocol 0/1 instances of old-style classes; torch never writes it)
        const module = line();
        const name = line();
        fail(`unsupported opcode INST (global '${module}.${name}'): refused, not executed`);
        break;
      }
      case 0x6f: {
        // OBJ: MARK cls args... OBJ
        const items = popMark();
        if (items.length === 0) fail('OBJ without a class');
        push(call(items[0]!, new PyTuple(items.slice(1))));
        break;
      }
      case 0x82: // EXT1
      case 0x83: // EXT2
      case 0x84: {
        // EXT4: a global from copyreg's extension registry, which a checkpoint never uses
        const code = op === 0x82 ? u8() : op === 0x83 ? u16() : u32();
        fail(
          `unsupported opcode ${opcodeName(op)}: extension code ${code} (copyreg registry) refused, not executed`,
        );
        break;
      }
      case 0x52: {
        // REDUCE
        const args = pop();
        push(call(pop(), args));
        break;
      }
      case 0x81: {
        // NEWOBJ: cls.__new__(cls, *args) - only for whitelisted classes
        const args = pop();
        push(call(pop(), args));
        break;
      }
      case 0x92: {
        // NEWOBJ_EX: cls, args, kwargs
        const kwargs = pop();
        const args = pop();
        if (!(kwargs instanceof PyDict) || kwargs.size) fail('NEWOBJ_EX with keyword arguments');
        push(call(pop(), args));
        break;
      }
      case 0x62: {
        // BUILD
        const state = pop();
        const obj = top();
        if (obj instanceof PyDict) {
          if (state instanceof PyDict) obj.attrs = state;
          else if (state instanceof PyTuple && state.items.length === 2 && state.items[0] instanceof PyDict)
            obj.attrs = state.items[0];
          else if (state !== null) fail(`BUILD of a dict with a ${describe(state)} state`);
        } else if (obj instanceof PyObject) {
          obj.state = state;
        } else {
          fail(`BUILD on a ${describe(obj)}`);
        }
        break;
      }
      case 0x71: // BINPUT
        memoPut(u8(), top());
        break;
      case 0x72: // LONG_BINPUT
        memoPut(u32(), top());
        break;
      case 0x70: {
        // PUT
        const s = line();
        if (!/^\d+$/.test(s)) fail('bad PUT index');
        memoPut(Number(s), top());
        break;
      }
      case 0x94: // MEMOIZE
        memoPut(memo.size, top());
        break;
      case 0x68: // BINGET
        push(memoGet(u8()));
        break;
      case 0x6a: // LONG_BINGET
        push(memoGet(u32()));
        break;
      case 0x67: {
        // GET
        const s = line();
        if (!/^\d+$/.test(s)) fail('bad GET index');
        push(memoGet(Number(s)));
        break;
      }
      case 0x51: // BINPERSID
      case 0x50: {
        // PERSID
        const pid = op === 0x51 ? pop() : line();
        const load = opts.persistentLoad;
        if (!load) fail('persistent id without a persistent_load handler');
        let v: PyValue;
        try {
          v = load(pid);
        } catch (e) {
          if (e instanceof PickleError) throw e;
          v = fail(`persistent id: ${(e as Error).message}`);
        }
        push(v);
        break;
      }
      default:
        if (op in OPNAMES) fail(`unsupported opcode ${OPNAMES[op]}`);
        opPos = pos - 1;
        throw new PickleError(
          `${src}: pickle: unknown opcode 0x${op.toString(16).padStart(2, '0')} at offset ${opPos}: ` +
            'the data is corrupt or not a pickle',
        );
    }
  }
}

function latin1(b: Uint8Array): string {
  let s = '';
  for (let i = 0; i < b.length; i += 8192) s += String.fromCharCode(...b.subarray(i, i + 8192));
  return s;
}

/** Two's-complement little-endian bytes to a bigint (linear time: through one hex string). */
function signedLE(b: Uint8Array): bigint {
  if (b.length === 0) return 0n;
  let hex = '';
  for (let i = b.length - 1; i >= 0; i--) hex += b[i]!.toString(16).padStart(2, '0');
  let v = BigInt(`0x${hex}`);
  if (b[b.length - 1]! & 0x80) v -= 1n << BigInt(8 * b.length);
  return v;
}

function unquote(s: string, fail: (m: string) => never): string {
  const q = s[0];
  if (s.length < 2 || (q !== "'" && q !== '"') || s[s.length - 1] !== q) fail('bad STRING literal');
  const body = s.slice(1, -1);
  const esc: Record<string, string> = {
    n: '\n',
    r: '\r',
    t: '\t',
    '\\': '\\',
    "'": "'",
    '"': '"',
    '0': '\0',
  };
  return body.replace(/\\(x[0-9a-fA-F]{2}|.)/g, (_m, e: string) =>
    e.length === 3 ? String.fromCharCode(parseInt(e.slice(1), 16)) : (esc[e] ?? `\\${e}`),
  );
}
