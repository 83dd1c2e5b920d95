/**
 * A restricted unpickler: reads the subset of Python's pickle format (protocols 2–5) that a state dict needs and
 * nothing else. Values are plain data (None, bools, ints, floats, str, bytes, lists, tuples, dicts); GLOBAL and
 * STACK_GLOBAL resolve only names the caller allowlists (`globals`), REDUCE calls only the caller's `reducers`
 * (plain TypeScript functions that build data), BUILD only sets an OrderedDict's attribute dict, and persistent ids
 * go to the caller's `persistentLoad`. INST, OBJ, NEWOBJ, EXT* and any other global are a PickleSecurityError naming
 * what was asked for: nothing from the file is ever executed or looked up by name outside the allowlist.
 *
 * Bounded: the parser never recurses; every length is checked against the bytes left before anything is
 * allocated; the memo, the stack and the mark stack each hold at most one entry per opcode read; a long integer is
 * at most 4096 bytes. Errors carry the file name and the byte offset of the opcode at fault.
 */
import { PickleOpcodeError, PickleSecurityError, PickleStructureError, TorchCheckpointTruncatedError } from './torchFormat';

/** A Python tuple (lists are JS arrays). */
export class PTuple {
  constructor(readonly items: readonly PValue[]) {}
}
/** A Python dict or collections.OrderedDict; `state` is what BUILD set (an OrderedDict's `_metadata`, say). */
export class PDict {
  readonly entries = new Map<PKey, PValue>();
  state: PValue = null;
  constructor(readonly ordered: boolean) {}
}
/** An allowlisted global (`module.name`), as a value: a storage type, a dtype, a rebuild function. */
export class PGlobal {
  constructor(readonly module: string, readonly name: string) {}
  get qualified(): string { return `${this.module}.${this.name}`; }
}
export type PKey = string | number | bigint | boolean | null;
/** A value of the pickle, or a host value made by a reducer or persistentLoad (`object`). */
export type PValue = PKey | Uint8Array | PValue[] | PTuple | PDict | PGlobal | object;

export interface UnpickleOptions {
  /** For error messages. */
  file: string;
  /** `module.name` of the globals that may appear as values (storage types, dtypes). */
  globals: ReadonlySet<string>;
  /** `module.name` → function applied by REDUCE to the argument tuple. */
  reducers: ReadonlyMap<string, (args: readonly PValue[], at: number) => PValue>;
  /** BINPERSID: the persistent id → the value it stands for (e.g. a storage). */
  persistentLoad?: (pid: PValue, at: number) => PValue;
}

const MARK = Symbol('mark');
const MAX_LONG_BYTES = 4096;

/** Opcodes refused for what they would do, not because they are unknown. */
const UNSAFE: Readonly<Record<number, string>> = {
  0x69: 'INST', 0x6f: 'OBJ', 0x81: 'NEWOBJ', 0x92: 'NEWOBJ_EX', 0x82: 'EXT1', 0x83: 'EXT2', 0x84: 'EXT4',
};

/** Unpickles one object starting at `start`; returns it and the offset just past its STOP. */
export function unpickle(bytes: Uint8Array, opts: UnpickleOptions, start = 0): { value: PValue; end: number } {
  const { file } = opts;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const stack: (PValue | typeof MARK)[] = [];
  const marks: number[] = [];
  const memo = new Map<number, PValue>();
  let pos = start, at = start;

  const structure = (what: string): never => { throw new PickleStructureError(file, undefined, `pickle byte ${at}: ${what}`); };
  const need = (n: number): number => {
    if (n < 0 || pos + n > bytes.length) {
      throw new TorchCheckpointTruncatedError(file, undefined, `pickle byte ${at}: needs ${n} more bytes at ${pos}, ${bytes.length - pos} left`);
    }
    const p = pos;
    pos += n;
    return p;
  };
  const u8 = () => bytes[need(1)]!;
  const u16 = () => view.getUint16(need(2), true);
  const u32 = () => view.getUint32(need(4), true);
  const u64 = (): number => {
    const v = view.getBigUint64(need(8), true);
    if (v > BigInt(bytes.length)) throw new TorchCheckpointTruncatedError(file, undefined, `pickle byte ${at}: length ${v} exceeds the ${bytes.length} bytes of the pickle`);
    return Number(v);
  };
  const raw = (n: number) => bytes.subarray(need(n), pos);
  const line = (): string => {
    const end = bytes.indexOf(0x0a, pos);
    if (end < 0) throw new TorchCheckpointTruncatedError(file, undefined, `pickle byte ${at}: no end of line`);
    const s = Buffer.from(bytes.buffer, bytes.byteOffset + pos, end - pos).toString('latin1');
    pos = end + 1;
    return s;
  };
  const utf8 = (n: number): string => {
    try {
      return new TextDecoder('utf-8', { fatal: true }).decode(raw(n));
    } catch (e) {
      if (e instanceof TorchCheckpointTruncatedError) throw e;
      return structure('string is not valid UTF-8');
    }
  };
  const pop = (): PValue => {
    if (stack.length === 0) structure('stack underflow');
    const v = stack.pop()!;
    if (v === MARK) structure('stack underflow');
    return v as PValue;
  };
  const top = (): PValue => {
    const v = stack[stack.length - 1];
    if (v === undefined || v === MARK) return structure('stack underflow');
    return v;
  };
  const popMark = (): PValue[] => {
    const m = marks.pop();
    if (m === undefined) return structure('no MARK');
    const items = stack.splice(m + 1) as PValue[];
    stack.pop(); // the MARK
    return items;
  };
  const key = (k: PValue): PKey => {
    if (k === null || ['string', 'number', 'bigint', 'boolean'].includes(typeof k)) return k as PKey;
    return structure('dict key is not a str, int, bool or None');
  };
  const setItems = (d: PValue, kv: readonly PValue[]) => {
    if (!(d instanceof PDict)) structure('SETITEM(S) on something that is not a dict');
    if (kv.length % 2) structure('SETITEMS with an odd number of items');
    for (let i = 0; i < kv.length; i += 2) (d as PDict).entries.set(key(kv[i]!), kv[i + 1]!);
  };
  const append = (l: PValue, xs: readonly PValue[]) => {
    if (!Array.isArray(l)) structure('APPEND(S) on something that is not a list');
    for (const x of xs) (l as PValue[]).push(x);
  };
  const global = (module: string, name: string): PGlobal => {
    const q = `${module}.${name}`;
    if (!opts.globals.has(q) && !opts.reducers.has(q)) {
      throw new PickleSecurityError(file, q, `pickle byte ${at}: global ${q} is not allowed (a state dict needs only ${[...opts.reducers.keys()].join(', ')} and the torch.*Storage types)`);
    }
    return new PGlobal(module, name);
  };
  const long = (b: Uint8Array): number | bigint => {
    if (b.length > MAX_LONG_BYTES) structure(`integer of ${b.length} bytes`);
    let v = 0n;
    for (let i = b.length - 1; i >= 0; i--) v = (v << 8n) | BigInt(b[i]!);
    if (b.length && b[b.length - 1]! & 0x80) v -= 1n << BigInt(8 * b.length);
    return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
  };
  const put = (i: number) => memo.set(i, top());
  const get = (i: number) => {
    if (!memo.has(i)) structure(`memo entry ${i} was never stored`);
    stack.push(memo.get(i)!);
  };
  const decimal = (): number => {
    const s = line();
    if (!/^\d{1,10}$/.test(s)) structure(`'${s.slice(0, 20)}' is not a memo index`);
    return Number(s);
  };

  for (;;) {
    at = pos;
    const op = u8();
    switch (op) {
      case 0x80: { const p = u8(); if (p > 5) structure(`protocol ${p}`); break; } // PROTO
      case 0x95: need(8); break; // FRAME: framing is only a hint for buffered readers
      case 0x2e: { // STOP
        if (stack.length !== 1 || marks.length) structure(`STOP with ${stack.length} values on the stack`);
        return { value: pop(), end: pos };
      }
      case 0x28: marks.push(stack.length); stack.push(MARK); break; // MARK
      case 0x30: pop(); break; // POP
      case 0x31: popMark(); break; // POP_MARK
      case 0x32: stack.push(top()); break; // DUP
      case 0x4e: stack.push(null); break; // NONE
      case 0x88: stack.push(true); break; // NEWTRUE
      case 0x89: stack.push(false); break; // NEWFALSE
      case 0x4a: stack.push(view.getInt32(need(4), true)); break; // BININT
      case 0x4b: stack.push(u8()); break; // BININT1
      case 0x4d: stack.push(u16()); break; // BININT2
      case 0x8a: stack.push(long(raw(u8()))); break; // LONG1
      case 0x8b: { const n = view.getInt32(need(4), true); if (n < 0) structure('negative LONG4 length'); stack.push(long(raw(n))); break; }
      case 0x47: stack.push(view.getFloat64(need(8), false)); break; // BINFLOAT (big-endian)
      case 0x58: stack.push(utf8(u32())); break; // BINUNICODE
      case 0x8c: stack.push(utf8(u8())); break; // SHORT_BINUNICODE
      case 0x8d: stack.push(utf8(u64())); break; // BINUNICODE8
      case 0x54: case 0x55: { // BINSTRING, SHORT_BINSTRING: Python 2 str, read as latin-1
        const n = op === 0x55 ? u8() : view.getInt32(need(4), true);
        if (n < 0) structure('negative BINSTRING length');
        stack.push(Buffer.from(raw(n)).toString('latin1'));
        break;
      }
      case 0x42: stack.push(raw(u32()).slice()); break; // BINBYTES
      case 0x43: stack.push(raw(u8()).slice()); break; // SHORT_BINBYTES
      case 0x8e: stack.push(raw(u64()).slice()); break; // BINBYTES8
      case 0x29: stack.push(new PTuple([])); break; // EMPTY_TUPLE
      case 0x85: stack.push(new PTuple([pop()])); break; // TUPLE1
      case 0x86: { const b = pop(), a = pop(); stack.push(new PTuple([a, b])); break; } // TUPLE2
      case 0x87: { const c = pop(), b = pop(), a = pop(); stack.push(new PTuple([a, b, c])); break; } // TUPLE3
      case 0x74: { const xs = popMark(); stack.push(new PTuple(xs)); break; } // TUPLE
      case 0x5d: stack.push([]); break; // EMPTY_LIST
      case 0x6c: { const xs = popMark(); stack.push(xs); break; } // LIST
      case 0x61: { const x = pop(); append(top(), [x]); break; } // APPEND
      case 0x65: { const xs = popMark(); append(top(), xs); break; } // APPENDS
      case 0x7d: stack.push(new PDict(false)); break; // EMPTY_DICT
      case 0x64: { const kv = popMark(); const d = new PDict(false); setItems(d, kv); stack.push(d); break; } // DICT
      case 0x73: { const v = pop(), k = pop(); setItems(top(), [k, v]); break; } // SETITEM
      case 0x75: { const kv = popMark(); setItems(top(), kv); break; } // SETITEMS
      case 0x71: put(u8()); break; // BINPUT
      case 0x72: put(u32()); break; // LONG_BINPUT
      case 0x94: put(memo.size); break; // MEMOIZE
      case 0x68: get(u8()); break; // BINGET
      case 0x6a: get(u32()); break; // LONG_BINGET
      case 0x70: put(decimal()); break; // PUT (protocol 0)
      case 0x67: get(decimal()); break; // GET (protocol 0)
      case 0x63: { const m = line(); stack.push(global(m, line())); break; } // GLOBAL
      case 0x93: { // STACK_GLOBAL
        const name = pop(), module = pop();
        if (typeof name !== 'string' || typeof module !== 'string') structure('STACK_GLOBAL of non-strings');
        stack.push(global(module as string, name as string));
        break;
      }
      case 0x52: { // REDUCE
        const args = pop(), f = pop();
        const q = f instanceof PGlobal ? f.qualified : undefined;
        const reducer = q === undefined ? undefined : opts.reducers.get(q);
        if (reducer === undefined) throw new PickleSecurityError(file, q, `pickle byte ${at}: REDUCE of ${q ?? 'a value that is not a global'} is not allowed`);
        if (!(args instanceof PTuple)) return structure(`REDUCE of ${q} with arguments that are not a tuple`);
        stack.push(reducer(args.items, at));
        break;
      }
      case 0x62: { // BUILD: only an OrderedDict's attribute dict (state_dict()._metadata)
        const state = pop(), obj = top();
        if (!(obj instanceof PDict) || !(state instanceof PDict || state === null)) {
          throw new PickleSecurityError(file, undefined, `pickle byte ${at}: BUILD of ${describe(obj)} is not allowed (only an OrderedDict's attributes)`);
        }
        obj.state = state;
        break;
      }
      case 0x51: { // BINPERSID
        const pid = pop();
        if (!opts.persistentLoad) structure('persistent id in a pickle that takes none');
        stack.push(opts.persistentLoad!(pid, at));
        break;
      }
      default: {
        const unsafe = UNSAFE[op];
        if (unsafe) throw new PickleSecurityError(file, unsafe, `pickle byte ${at}: opcode ${unsafe} (0x${op.toString(16)}) builds arbitrary objects and is not allowed`);
        throw new PickleOpcodeError(file, undefined, `pickle byte ${at}: opcode 0x${op.toString(16).padStart(2, '0')} ('${String.fromCharCode(op)}') is not one a state dict uses`);
      }
    }
  }
}

/** A short description of a value for error messages. */
export function describe(v: PValue | undefined): string {
  if (v === null) return 'None';
  if (v === undefined) return 'nothing';
  if (Array.isArray(v)) return `a list of ${v.length}`;
  if (v instanceof PTuple) return `a tuple of ${v.items.length}`;
  if (v instanceof PDict) return v.ordered ? 'an OrderedDict' : 'a dict';
  if (v instanceof PGlobal) return v.qualified;
  if (v instanceof Uint8Array) return `${v.length} bytes`;
  if (typeof v === 'object') return (v as object).constructor?.name ?? 'an object';
  return `${typeof v} ${JSON.stringify(typeof v === 'bigint' ? String(v) : v)?.slice(0, 40)}`;
}
