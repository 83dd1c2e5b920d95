/**
 * A safe reader for PyTorch checkpoints (`torch.save` files: `.bin`, `.pt`, `.pth`), zip or legacy layout (see
 * torchFormat.ts). The pickled object goes through the restricted unpickler (pickle.ts) with an allowlist of
 * exactly what a state dict needs: `collections.OrderedDict`, `torch._utils._rebuild_tensor(_v2)`,
 * `torch._utils._rebuild_parameter(_with_state)`, the `torch.*Storage` types and `torch.serialization._get_layout`
 * / `torch.strided`; anything else is a PickleSecurityError naming the global, and nothing is executed.
 *
 * Open reads and checks the structure only: the pickle, every storage record's byte size against numel ×
 * itemsize, every tensor view (offset, size, stride) against its storage. Tensor bytes are read on demand with
 * positioned reads (zip entries CRC-checked) and materialized contiguous (row-major), whatever the strides, so a
 * transposed tensor or two tensors sharing one storage come out as independent arrays. Nested dicts and lists are
 * flattened with dots (`{'state_dict': {'w': t}}` → `state_dict.w`); leaves that are not tensors (an epoch count, a
 * config string) are listed in `skipped`.
 *
 * The result has the same shape as a safetensors file (`header`, `names`, `read`, `readAsFloat32`), so
 * models/weights.ts loads it into a ParamStore by key with the same options.
 */
import fs from 'node:fs';
import { bf16ArrayToF32, f16ArrayToF32 } from './halfFloat';
import { describe, PDict, PGlobal, PTuple, unpickle, type PValue, type UnpickleOptions } from './pickle';
import { DTYPES, elementCount, type SafetensorsDtype, type TensorArray } from './safetensorsFormat';
import type { TensorFile, TensorFileEntry } from './tensorFile';
import {
  LEGACY_MAGIC, LEGACY_PROTOCOL, PickleStructureError, STORAGE_TYPES, TorchCheckpointTruncatedError, TorchCheckpointUsageError,
  TorchFormatError, TorchStorageError, TorchZipError,
} from './torchFormat';
import { readAt, readZipDirectory, readZipEntry, type ZipEntry } from './zipStore';

export * from './torchFormat';

/** A storage as the pickle names it. */
class StorageRef {
  constructor(readonly key: string, readonly dtype: SafetensorsDtype, readonly numel: number) {}
}
/** A tensor view as `_rebuild_tensor_v2` describes it (element units). */
class TensorRef {
  constructor(readonly storage: StorageRef, readonly offset: number, readonly shape: readonly number[], readonly stride: readonly number[]) {}
}

export interface TorchTensorInfo extends TensorFileEntry {
  readonly storage: string;
  /** In elements. */
  readonly storageOffset: number;
  /** In elements; materialized as row-major on read. */
  readonly stride: readonly number[];
}

export interface TorchCheckpoint extends TensorFile {
  readonly format: 'zip' | 'legacy';
  readonly header: ReadonlyMap<string, TorchTensorInfo>;
  /** Flattened keys of leaves that are not tensors (ignored). */
  readonly skipped: readonly string[];
}

/** Where a storage's bytes are: an absolute offset and length, and for zip entries the CRC to check. */
interface StorageRecord { readonly offset: number; readonly bytes: number; readonly zip?: ZipEntry }

const MAX_DEPTH = 64;

/** True when the first bytes are a torch checkpoint's (zip local header, or the legacy magic number's pickle). */
export function isTorchCheckpoint(head: Uint8Array): boolean {
  return (head[0] === 0x50 && head[1] === 0x4b && head[2] === 0x03 && head[3] === 0x04) || (head[0] === 0x80 && head[1]! >= 2 && head[1]! <= 5 && head[2] === 0x8a);
}

/** Opens and validates a torch checkpoint; the caller must `close()` it. */
export function openTorchCheckpoint(path: string): TorchCheckpoint {
  const fd = fs.openSync(path, 'r');
  try {
    return openFd(path, fd);
  } catch (err) {
    fs.closeSync(fd);
    throw err;
  }
}

function unpickleOptions(file: string, storages: Map<string, StorageRef>, legacy: boolean): UnpickleOptions {
  const bad = (at: number, what: string): never => { throw new PickleStructureError(file, undefined, `pickle byte ${at}: ${what}`); };
  const ints = (v: PValue, at: number, what: string): number[] => {
    if (!(v instanceof PTuple) || !v.items.every((x) => Number.isSafeInteger(x) && (x as number) >= 0)) return bad(at, `${what} is ${describe(v)}, not a tuple of non-negative ints`);
    return v.items as number[];
  };
  const rebuild = (a: readonly PValue[], at: number, n: readonly number[]): TensorRef => {
    if (!n.includes(a.length)) bad(at, `tensor rebuild with ${a.length} arguments`);
    const [storage, offset, size, stride] = a;
    if (!(storage instanceof StorageRef)) return bad(at, `tensor storage is ${describe(storage)}`);
    if (!Number.isSafeInteger(offset) || (offset as number) < 0) return bad(at, `storage offset is ${describe(offset)}`);
    const shape = ints(size!, at, 'size'), strides = ints(stride!, at, 'stride');
    if (shape.length !== strides.length) bad(at, `size has ${shape.length} dims, stride ${strides.length}`);
    return new TensorRef(storage, offset as number, shape, strides);
  };
  const parameter = (a: readonly PValue[], at: number, n: number): TensorRef => {
    if (a.length !== n || !(a[0] instanceof TensorRef)) return bad(at, `parameter rebuild of ${describe(a[0])} with ${a.length} arguments`);
    return a[0];
  };
  const reducers = new Map<string, (a: readonly PValue[], at: number) => PValue>([
    ['collections.OrderedDict', (a, at) => {
      const d = new PDict(true);
      if (a.length > 1) bad(at, `OrderedDict with ${a.length} arguments`);
      for (const kv of (a[0] ?? []) as PValue[]) {
        if (!Array.isArray(a[0]) || !(kv instanceof PTuple) || kv.items.length !== 2 || (typeof kv.items[0] !== 'string' && typeof kv.items[0] !== 'number')) return bad(at, 'OrderedDict argument is not a list of (key, value) pairs');
        d.entries.set(kv.items[0] as string, kv.items[1]!);
      }
      return d;
    }],
    ['torch._utils._rebuild_tensor', (a, at) => rebuild(a, at, [4])],
    ['torch._utils._rebuild_tensor_v2', (a, at) => rebuild(a, at, [6, 7])],
    ['torch._utils._rebuild_parameter', (a, at) => parameter(a, at, 3)],
    ['torch._utils._rebuild_parameter_with_state', (a, at) => parameter(a, at, 4)],
    ['torch.serialization._get_layout', (a, at) => a.length === 1 && a[0] === 'torch.strided' ? new PGlobal('torch', 'strided') : bad(at, `layout ${describe(a[0])}`)],
  ]);
  const globals = new Set(['torch.strided', ...Object.keys(STORAGE_TYPES).map((s) => `torch.${s}`)]);
  const persistentLoad = (pid: PValue, at: number): PValue => {
    const it = pid instanceof PTuple ? pid.items : [];
    const [tag, type, key, location, numel] = it;
    if (it.length !== (legacy ? 6 : 5) || tag !== 'storage' || !(type instanceof PGlobal) || typeof key !== 'string' || typeof location !== 'string' || !Number.isSafeInteger(numel) || (numel as number) < 0) {
      return bad(at, `persistent id ${describe(pid)} is not ('storage', type, key, location, numel${legacy ? ', view' : ''})`);
    }
    if (legacy && it[5] !== null) bad(at, `storage "${key}" is a view of another storage (torch < 1.0 files are not supported)`);
    const dtype = STORAGE_TYPES[type.name];
    if (type.module !== 'torch' || dtype === undefined) return bad(at, `${type.qualified} is not a storage type`);
    const prev = storages.get(key);
    if (prev && (prev.dtype !== dtype || prev.numel !== numel)) bad(at, `storage "${key}" is named both ${prev.numel} × ${prev.dtype} and ${numel} × ${dtype}`);
    const s = prev ?? new StorageRef(key, dtype, numel as number);
    storages.set(key, s);
    return s;
  };
  return { file, globals, reducers, persistentLoad };
}

/** Tensors of the unpickled object by flattened key. */
function flatten(file: string, root: PValue, pickleBytes: number): { tensors: Map<string, TensorRef>; skipped: string[] } {
  const tensors = new Map<string, TensorRef>(), skipped: string[] = [];
  const onPath = new Set<object>();
  // Containers shared through the memo could expand exponentially ([a, a] of [b, b] of …): bound the walk by the
  // pickle's size.
  let budget = 16 * pickleBytes + 1024;
  const walk = (v: PValue, key: string, depth: number) => {
    if (--budget < 0) throw new PickleStructureError(file, key, `expands to more than ${16 * pickleBytes + 1024} entries (containers shared over and over)`);
    if (v instanceof TensorRef) {
      if (tensors.has(key)) throw new TorchFormatError(file, key, 'two tensors flatten to the same key');
      tensors.set(key, v);
      return;
    }
    const children = v instanceof PDict ? [...v.entries] : Array.isArray(v) ? v.map((x, i) => [i, x] as const) : v instanceof PTuple ? v.items.map((x, i) => [i, x] as const) : undefined;
    if (children === undefined) { skipped.push(key); return; }
    if (depth > MAX_DEPTH) throw new PickleStructureError(file, key, `nested deeper than ${MAX_DEPTH} levels`);
    if (onPath.has(v as object)) throw new PickleStructureError(file, key, 'contains itself');
    onPath.add(v as object);
    for (const [k, c] of children) walk(c, key === '' ? String(k) : `${key}.${String(k)}`, depth + 1);
    onPath.delete(v as object);
  };
  if (root instanceof TensorRef) throw new TorchFormatError(file, undefined, 'holds a single tensor, not a state dict');
  walk(root, '', 0);
  return { tensors, skipped };
}

function openFd(path: string, fd: number): TorchCheckpoint {
  const size = fs.fstatSync(fd).size;
  const head = readAt(fd, 0, Math.min(size, 4), path);
  if (size < 4 || !isTorchCheckpoint(head)) {
    throw new TorchFormatError(path, undefined, size < 4 ? `file is ${size} bytes` : 'neither a zip nor a legacy torch.save file (torch < 0.4 tar files are not supported)');
  }
  const storages = new Map<string, StorageRef>();
  const records = new Map<string, StorageRecord>();
  let root: PValue, pickleBytes: number;
  let format: 'zip' | 'legacy';
  if (head[0] === 0x50) {
    format = 'zip';
    const entries = readZipDirectory(fd, size, path);
    const pkls = [...entries.keys()].filter((n) => /^[^/]+\/data\.pkl$/.test(n));
    if (pkls.length !== 1) throw new TorchZipError(path, undefined, `expected one <archive>/data.pkl, found ${pkls.length ? pkls.join(', ') : 'none'}`);
    const prefix = pkls[0]!.slice(0, -'data.pkl'.length);
    const order = entries.get(`${prefix}byteorder`);
    if (order) {
      const text = readZipEntry(fd, order, path).toString('latin1');
      if (text !== 'little') throw new TorchStorageError(path, undefined, `byteorder is '${text.slice(0, 20)}', only 'little' is supported`);
    }
    const pkl = readZipEntry(fd, entries.get(pkls[0]!)!, path);
    pickleBytes = pkl.length;
    root = unpickle(pkl, unpickleOptions(path, storages, false)).value;
    for (const [key, s] of storages) {
      const e = entries.get(`${prefix}data/${key}`);
      if (!e) throw new TorchStorageError(path, key, `storage record ${prefix}data/${key} is missing`);
      records.set(key, { offset: e.offset, bytes: e.size, zip: e });
      const need = s.numel * DTYPES[s.dtype].size;
      if (e.size !== need) throw new TorchStorageError(path, key, `storage record is ${e.size} bytes, but ${s.numel} × ${s.dtype} needs ${need}`);
    }
  } else {
    format = 'legacy';
    ({ root, pickleBytes } = readLegacy(path, fd, size, storages, records));
  }
  const { tensors, skipped } = flatten(path, root, pickleBytes);
  const header = new Map<string, TorchTensorInfo>();
  for (const [key, t] of tensors) {
    const n = elementCount(t.shape);
    if (!Number.isSafeInteger(n * DTYPES[t.storage.dtype].size)) throw new TorchStorageError(path, key, `shape [${t.shape}] is too large`);
    let last = t.offset;
    for (let i = 0; i < t.shape.length; i++) last += (t.shape[i]! - 1) * t.stride[i]!;
    if (n > 0 && last >= t.storage.numel) {
      throw new TorchStorageError(path, key, `view (offset ${t.offset}, size [${t.shape}], stride [${t.stride}]) reaches element ${last}, but storage "${t.storage.key}" holds ${t.storage.numel}`);
    }
    header.set(key, { dtype: t.storage.dtype, shape: t.shape, storage: t.storage.key, storageOffset: t.offset, stride: t.stride });
  }

  let open = true;
  let cached: { key: string; bytes: Buffer } | undefined; // the last zip record read (tensors sharing a storage are often adjacent)
  const info = (name: string): TorchTensorInfo => {
    if (!open) throw new TorchCheckpointUsageError(path, name, 'file is closed');
    const t = header.get(name);
    if (t === undefined) throw new TorchCheckpointUsageError(path, name, 'no such tensor');
    return t;
  };
  const read = (name: string) => {
    const t = info(name);
    const item = DTYPES[t.dtype].size, n = elementCount(t.shape);
    const rec = records.get(t.storage)!;
    let src: Uint8Array, base: number;
    if (n === 0) { src = new Uint8Array(0); base = 0; }
    else if (rec.zip) {
      // The whole record, so that its CRC is checked.
      if (cached?.key !== t.storage) cached = { key: t.storage, bytes: readZipEntry(fd, rec.zip, path) };
      src = cached.bytes;
      base = t.storageOffset;
    } else {
      let last = t.storageOffset;
      for (let i = 0; i < t.shape.length; i++) last += (t.shape[i]! - 1) * t.stride[i]!;
      src = readAt(fd, rec.offset + t.storageOffset * item, (last - t.storageOffset + 1) * item, path, name);
      base = 0;
    }
    const out = new ArrayBuffer(n * item);
    gather(new Uint8Array(out), src, base, t.shape, t.stride, item);
    return { dtype: t.dtype, shape: t.shape, data: DTYPES[t.dtype].view(out) };
  };
  return {
    path,
    format,
    header,
    skipped,
    names: () => [...header.keys()],
    read,
    readAsFloat32: (name) => toFloat32(path, name, read(name)),
    close: () => {
      if (open) fs.closeSync(fd);
      open = false;
      cached = undefined;
    },
  };
}

/** Copies a strided view (element units; `base` is the first element in `src`) into row-major `out`. */
function gather(out: Uint8Array, src: Uint8Array, base: number, shape: readonly number[], stride: readonly number[], item: number): void {
  const n = out.length / item;
  if (n === 0) return;
  let contiguous = true;
  for (let i = shape.length - 1, s = 1; i >= 0; i--) {
    if (shape[i] !== 1 && stride[i] !== s) contiguous = false;
    s *= shape[i]!;
  }
  if (contiguous) { out.set(src.subarray(base * item, (base + n) * item)); return; }
  // Element copies through word views (both buffers are fresh allocations, so aligned): 8-byte items as two words.
  const unit = item >= 4 ? 4 : item, words = item / unit;
  const view = (b: Uint8Array) => unit === 4 ? new Uint32Array(b.buffer, b.byteOffset, b.byteLength >> 2) : unit === 2 ? new Uint16Array(b.buffer, b.byteOffset, b.byteLength >> 1) : b;
  const o8 = view(out), s8 = view(src);
  const idx = new Array<number>(shape.length).fill(0);
  let at = base;
  for (let o = 0; o < n; o++) {
    for (let w = 0; w < words; w++) o8[o * words + w] = s8[at * words + w]!;
    for (let d = shape.length - 1; d >= 0; d--) {
      if (++idx[d]! < shape[d]!) { at += stride[d]!; break; }
      at -= (shape[d]! - 1) * stride[d]!;
      idx[d] = 0;
    }
  }
}

/** The legacy layout: magic, protocol, sys_info, the object, the storage keys, then each storage's int64 element
 * count and bytes. The pickles are read from a head of the file that doubles until they fit. */
function readLegacy(path: string, fd: number, size: number, storages: Map<string, StorageRef>, records: Map<string, StorageRecord>): { root: PValue; pickleBytes: number } {
  const plain: UnpickleOptions = { file: path, globals: new Set(), reducers: new Map() };
  for (let len = Math.min(size, 1 << 20); ; len = Math.min(size, len * 2)) {
    const head = readAt(fd, 0, len, path);
    try {
      const magic = unpickle(head, plain);
      if (magic.value !== LEGACY_MAGIC) throw new TorchFormatError(path, undefined, `legacy magic number is ${describe(magic.value)}`);
      const proto = unpickle(head, plain, magic.end);
      if (proto.value !== LEGACY_PROTOCOL) throw new TorchFormatError(path, undefined, `legacy protocol version is ${describe(proto.value)}, expected ${LEGACY_PROTOCOL}`);
      const sys = unpickle(head, plain, proto.end);
      if (!(sys.value instanceof PDict)) throw new TorchFormatError(path, undefined, `sys_info is ${describe(sys.value)}`);
      if (sys.value.entries.get('little_endian') !== true) throw new TorchStorageError(path, undefined, 'written on a big-endian machine; only little-endian files are supported');
      storages.clear();
      const obj = unpickle(head, unpickleOptions(path, storages, true), sys.end);
      const keys = unpickle(head, plain, obj.end);
      if (!Array.isArray(keys.value) || !keys.value.every((k) => typeof k === 'string')) throw new TorchFormatError(path, undefined, `storage key list is ${describe(keys.value)}`);
      let at = keys.end;
      for (const key of keys.value as string[]) {
        const s = storages.get(key);
        if (!s) throw new TorchStorageError(path, key, 'storage is listed but no tensor uses it');
        if (records.has(key)) throw new TorchStorageError(path, key, 'storage is listed twice');
        const count = readAt(fd, at, 8, path, key).readBigInt64LE(0);
        if (count !== BigInt(s.numel)) throw new TorchStorageError(path, key, `storage record holds ${count} elements, the pickle says ${s.numel} × ${s.dtype}`);
        const bytes = s.numel * DTYPES[s.dtype].size;
        if (at + 8 + bytes > size) throw new TorchCheckpointTruncatedError(path, key, `storage bytes [${at + 8}, ${at + 8 + bytes}) run past the end of the file (${size} bytes)`);
        records.set(key, { offset: at + 8, bytes });
        at += 8 + bytes;
      }
      for (const key of storages.keys()) if (!records.has(key)) throw new TorchStorageError(path, key, 'storage record is missing');
      return { root: obj.value, pickleBytes: obj.end - sys.end };
    } catch (e) {
      if (!(e instanceof TorchCheckpointTruncatedError) || len >= size || e.key !== undefined) throw e;
    }
  }
}

function toFloat32(path: string, name: string, t: { dtype: SafetensorsDtype; data: TensorArray }): Float32Array {
  switch (t.dtype) {
    case 'F32': return t.data as Float32Array;
    case 'F16': return f16ArrayToF32(t.data as Uint16Array);
    case 'BF16': return bf16ArrayToF32(t.data as Uint16Array);
    case 'I64': case 'U64': {
      const src = t.data as BigInt64Array | BigUint64Array, out = new Float32Array(src.length);
      for (let i = 0; i < src.length; i++) {
        const v = Number(src[i]!);
        if (!Number.isSafeInteger(v)) throw new TorchCheckpointUsageError(path, name, `element ${i} = ${src[i]} is beyond ±2^53, refusing a lossy float32 conversion`);
        out[i] = v;
      }
      return out;
    }
    default: return Float32Array.from(t.data as Exclude<TensorArray, BigInt64Array | BigUint64Array>);
  }
}
