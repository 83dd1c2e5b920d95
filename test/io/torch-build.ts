/** Builds torch checkpoints byte by byte for the reader's tests: pickle opcodes (Python's pickle spec, protocol 2)
 * and a stored-entry zip as torch.save writes it. Only what the tests need. */
import { crc32 } from 'node:zlib';

const u32 = (n: number) => { const b = Buffer.alloc(4); b.writeUInt32LE(n >>> 0); return b; };

/** Pickle opcodes. */
export const op = {
  proto: Buffer.from([0x80, 2]),
  stop: Buffer.from('.'),
  mark: Buffer.from('('),
  tuple: Buffer.from('t'),
  emptyTuple: Buffer.from(')'),
  emptyDict: Buffer.from('}'),
  emptyList: Buffer.from(']'),
  append: Buffer.from('a'),
  setitems: Buffer.from('u'),
  reduce: Buffer.from('R'),
  build: Buffer.from('b'),
  binpersid: Buffer.from('Q'),
  newfalse: Buffer.from([0x89]),
  none: Buffer.from('N'),
  str: (s: string) => { const b = Buffer.from(s, 'utf8'); return Buffer.concat([Buffer.from('X'), u32(b.length), b]); },
  int: (n: number) => { const b = Buffer.alloc(5); b[0] = 0x4a; b.writeInt32LE(n, 1); return b; },
  global: (module: string, name: string) => Buffer.from(`c${module}\n${name}\n`, 'latin1'),
  stackGlobal: (module: string, name: string) => Buffer.concat([op.str(module), op.str(name), Buffer.from([0x93])]),
  binput: (i: number) => Buffer.from([0x71, i]),
  binget: (i: number) => Buffer.from([0x68, i]),
};

const tuple = (...xs: Buffer[]) => Buffer.concat([op.mark, ...xs, op.tuple]);

export interface TensorSpec {
  key: string;
  storageType?: string;
  storageKey: string;
  numel: number;
  offset?: number;
  size: number[];
  stride?: number[];
}

/** An OrderedDict of `_rebuild_tensor_v2` tensors, storages as zip-layout persistent ids. */
export function statePickle(tensors: readonly TensorSpec[]): Buffer {
  const parts: Buffer[] = [op.proto, op.global('collections', 'OrderedDict'), op.emptyTuple, op.reduce, op.mark];
  for (const t of tensors) {
    const stride = t.stride ?? t.size.map((_d, i) => t.size.slice(i + 1).reduce((a, b) => a * b, 1));
    parts.push(op.str(t.key), op.global('torch._utils', '_rebuild_tensor_v2'), tuple(
      tuple(op.str('storage'), op.global('torch', t.storageType ?? 'FloatStorage'), op.str(t.storageKey), op.str('cpu'), op.int(t.numel)), op.binpersid,
      op.int(t.offset ?? 0), tuple(...t.size.map(op.int)), tuple(...stride.map(op.int)), op.newfalse,
      op.global('collections', 'OrderedDict'), op.emptyTuple, op.reduce,
    ), op.reduce);
  }
  parts.push(op.setitems, op.stop);
  return Buffer.concat(parts);
}

/** A zip of stored entries (method 8 entries are labelled compressed but hold the bytes as they are). */
export function zip(entries: readonly (readonly [string, Uint8Array])[], opts: { method?: number } = {}): Buffer {
  const locals: Buffer[] = [], central: Buffer[] = [];
  let at = 0;
  for (const [name, data] of entries) {
    const n = Buffer.from(name, 'utf8'), crc = crc32(data) >>> 0;
    const lh = Buffer.alloc(30);
    lh.writeUInt32LE(0x04034b50, 0); lh.writeUInt16LE(20, 4); lh.writeUInt16LE(opts.method ?? 0, 8);
    lh.writeUInt32LE(crc, 14); lh.writeUInt32LE(data.length, 18); lh.writeUInt32LE(data.length, 22); lh.writeUInt16LE(n.length, 26);
    const ch = Buffer.alloc(46);
    ch.writeUInt32LE(0x02014b50, 0); ch.writeUInt16LE(20, 4); ch.writeUInt16LE(20, 6); ch.writeUInt16LE(opts.method ?? 0, 10);
    ch.writeUInt32LE(crc, 16); ch.writeUInt32LE(data.length, 20); ch.writeUInt32LE(data.length, 24); ch.writeUInt16LE(n.length, 28); ch.writeUInt32LE(at, 42);
    locals.push(lh, n, Buffer.from(data));
    central.push(ch, n);
    at += 30 + n.length + data.length;
  }
  const cd = Buffer.concat(central);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0); end.writeUInt16LE(entries.length, 8); end.writeUInt16LE(entries.length, 10);
  end.writeUInt32LE(cd.length, 12); end.writeUInt32LE(at, 16);
  return Buffer.concat([...locals, cd, end]);
}

/** A torch zip checkpoint: `archive/data.pkl`, the storages, `archive/version`. */
export function torchZip(pkl: Uint8Array, storages: Readonly<Record<string, Uint8Array>>, opts: { method?: number } = {}): Buffer {
  return zip([['archive/data.pkl', pkl], ...Object.entries(storages).map(([k, v]) => [`archive/data/${k}`, v] as const), ['archive/version', Buffer.from('3\n')]], opts);
}

export const f32 = (...xs: number[]) => new Uint8Array(new Float32Array(xs).buffer);
