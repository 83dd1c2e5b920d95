/**
 * safetensors reader (streamed from a file descriptor) and atomic writer.
 *
 * Reader: `openSafetensors` reads and validates only the 8-byte length and the header; each tensor's bytes
 * are read on demand with positioned reads into a fresh, aligned buffer. The whole file is never loaded,
 * so multi-gigabyte checkpoints cost only the tensors asked for. Validation at open, in this order, each
 * failure a named error (see safetensorsFormat.ts): file length, header length, header JSON, then per
 * tensor dtype → offsets → byte count → within the file, then no two byte ranges overlap. Gaps between
 * tensors are accepted (the reference writer never leaves any, but nothing is ambiguous about them).
 *
 * Writer: header keys sorted (`__metadata__` first), padded with spaces to a multiple of 8 bytes as the
 * reference implementation does; data laid out by descending element size, then name, so every tensor
 * starts at an offset aligned to its element size (the reference orders by alignment too).
 */
import fs from 'node:fs';
import { bf16ArrayToF32, f16ArrayToF32, f32ArrayToBf16, f32ArrayToF16 } from './halfFloat';
import { writeAll, writeFileAtomic } from './atomicWrite';
import {
  DTYPES,
  MAX_HEADER_BYTES,
  SafetensorsDtypeError,
  SafetensorsError,
  SafetensorsHeaderJsonError,
  SafetensorsHeaderLengthError,
  SafetensorsOffsetError,
  SafetensorsOverlapError,
  SafetensorsSizeMismatchError,
  SafetensorsTruncatedError,
  SafetensorsUsageError,
  elementCount,
  isDtype,
  isValidShape,
  type DtypeArrays,
  type SafetensorsDtype,
  type TensorArray,
} from './safetensorsFormat';
// Globals are bound once per module: every global lookup is slow inside jest's vm contexts.
const M = Math;

export * from './safetensorsFormat';

export interface TensorInfo {
  readonly dtype: SafetensorsDtype;
  readonly shape: readonly number[];
  /** [begin, end) in bytes, relative to the start of the data section. */
  readonly offsets: readonly [number, number];
}

export interface Tensor<D extends SafetensorsDtype = SafetensorsDtype> {
  readonly dtype: D;
  readonly shape: readonly number[];
  readonly data: DtypeArrays[D];
}

export interface SafetensorsFile {
  readonly path: string;
  readonly header: ReadonlyMap<string, TensorInfo>;
  readonly metadata: Readonly<Record<string, string>>;
  /** Tensor names in header order. */
  names(): string[];
  read(name: string): Tensor;
  /** F32 as is; F16/BF16/F64 and integer dtypes converted (I64/U64 beyond ±2^53 throw SafetensorsUsageError). */
  readAsFloat32(name: string): Float32Array;
  close(): void;
}

const READ_CHUNK = 1 << 30;

/** Reads exactly `length` bytes at `position` into `into`, or throws SafetensorsTruncatedError. */
function readExactly(fd: number, into: Uint8Array, position: number, file: string, tensor?: string): void {
  let done = 0;
  while (done < into.byteLength) {
    const n = fs.readSync(fd, into, done, M.min(READ_CHUNK, into.byteLength - done), position + done);
    if (n === 0) {
      throw new SafetensorsTruncatedError(file, tensor, `file ends after ${position + done} bytes, ${into.byteLength - done} more expected`);
    }
    done += n;
  }
}

function parseHeader(file: string, text: string): { header: Map<string, TensorInfo>; metadata: Record<string, string> } {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new SafetensorsHeaderJsonError(file, undefined, `header is not valid JSON (${(err as Error).message})`, { cause: err });
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    throw new SafetensorsHeaderJsonError(file, undefined, 'header JSON is not an object');
  }
  const metadata: Record<string, string> = Object.create(null);
  const header = new Map<string, TensorInfo>();
  for (const [name, entry] of Object.entries(json as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) {
        throw new SafetensorsHeaderJsonError(file, undefined, '__metadata__ is not an object');
      }
      for (const [k, v] of Object.entries(entry)) {
        if (typeof v !== 'string') throw new SafetensorsHeaderJsonError(file, undefined, `__metadata__["${k}"] is not a string`);
        metadata[k] = v;
      }
      continue;
    }
    header.set(name, parseEntry(file, name, entry));
  }
  return { header, metadata };
}

function parseEntry(file: string, name: string, entry: unknown): TensorInfo {
  if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) {
    throw new SafetensorsHeaderJsonError(file, name, 'header entry is not an object');
  }
  const { dtype, shape, data_offsets: offsets } = entry as Record<string, unknown>;
  if (typeof dtype !== 'string') throw new SafetensorsHeaderJsonError(file, name, 'dtype is missing or not a string');
  if (!isValidShape(shape)) throw new SafetensorsHeaderJsonError(file, name, `shape ${JSON.stringify(shape)} is not a list of non-negative integers`);
  if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every((o) => typeof o === 'number')) {
    throw new SafetensorsHeaderJsonError(file, name, `data_offsets ${JSON.stringify(offsets)} is not a pair of numbers`);
  }
  if (!isDtype(dtype)) throw new SafetensorsDtypeError(file, name, `unknown dtype "${dtype}" (known: ${Object.keys(DTYPES).join(', ')})`);
  const [begin, end] = offsets as [number, number];
  if (!Number.isSafeInteger(begin) || !Number.isSafeInteger(end) || begin < 0 || end < 0) {
    throw new SafetensorsOffsetError(file, name, `data_offsets [${begin}, ${end}] are not non-negative integers`);
  }
  if (begin > end) throw new SafetensorsOffsetError(file, name, `data_offsets begin ${begin} > end ${end}`);
  const expected = elementCount(shape) * DTYPES[dtype].size;
  if (expected !== end - begin) {
    throw new SafetensorsSizeMismatchError(file, name, `${end - begin} bytes, but shape [${shape.join(', ')}] × ${dtype} needs ${expected}`);
  }
  return { dtype, shape, offsets: [begin, end] };
}

function checkRanges(file: string, header: ReadonlyMap<string, TensorInfo>, dataBytes: number): void {
  const ranges: [string, number, number][] = [];
  for (const [name, { offsets }] of header) {
    if (offsets[1] > dataBytes) {
      throw new SafetensorsTruncatedError(file, name, `data [${offsets[0]}, ${offsets[1]}) runs past the end of the file (data section is ${dataBytes} bytes)`);
    }
    if (offsets[1] > offsets[0]) ranges.push([name, offsets[0], offsets[1]]);
  }
  ranges.sort((a, b) => a[1] - b[1] || a[2] - b[2]);
  for (let i = 1; i < ranges.length; i++) {
    const [prevName, prevBegin, prevEnd] = ranges[i - 1]!;
    const [name, begin, end] = ranges[i]!;
    if (begin < prevEnd) {
      throw new SafetensorsOverlapError(file, name, `bytes [${begin}, ${end}) overlap tensor "${prevName}" [${prevBegin}, ${prevEnd})`);
    }
  }
}

/** Opens and validates a safetensors file; the caller must `close()` it. */
export function openSafetensors(path: string): SafetensorsFile {
  const fd = fs.openSync(path, 'r');
  try {
    return openFd(path, fd);
  } catch (err) {
    fs.closeSync(fd);
    throw err;
  }
}

function openFd(path: string, fd: number): SafetensorsFile {
  const size = fs.fstatSync(fd).size;
  if (size < 8) throw new SafetensorsTruncatedError(path, undefined, `file is ${size} bytes, shorter than the 8-byte header length`);
  const lenBytes = Buffer.alloc(8);
  readExactly(fd, lenBytes, 0, path);
  const headerLen64 = lenBytes.readBigUInt64LE(0);
  if (headerLen64 === 0n) throw new SafetensorsHeaderLengthError(path, undefined, 'header length is 0');
  if (headerLen64 > BigInt(MAX_HEADER_BYTES)) {
    throw new SafetensorsHeaderLengthError(path, undefined, `header length ${headerLen64} exceeds the ${MAX_HEADER_BYTES}-byte limit`);
  }
  const headerLen = Number(headerLen64);
  if (headerLen > size) throw new SafetensorsHeaderLengthError(path, undefined, `header length ${headerLen} exceeds the file size ${size}`);
  if (8 + headerLen > size) {
    throw new SafetensorsTruncatedError(path, undefined, `header of ${headerLen} bytes runs past the end of the file (${size} bytes)`);
  }
  const headerBytes = Buffer.alloc(headerLen);
  readExactly(fd, headerBytes, 8, path);
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(headerBytes);
  } catch (err) {
    throw new SafetensorsHeaderJsonError(path, undefined, 'header is not valid UTF-8', { cause: err });
  }
  const { header, metadata } = parseHeader(path, text);
  const dataStart = 8 + headerLen;
  checkRanges(path, header, size - dataStart);

  let open = true;
  const info = (name: string): TensorInfo => {
    if (!open) throw new SafetensorsUsageError(path, name, 'file is closed');
    const t = header.get(name);
    if (t === undefined) throw new SafetensorsUsageError(path, name, 'no such tensor');
    return t;
  };
  const read = (name: string): Tensor => {
    const { dtype, shape, offsets } = info(name);
    const buffer = new ArrayBuffer(offsets[1] - offsets[0]);
    readExactly(fd, new Uint8Array(buffer), dataStart + offsets[0], path, name);
    return { dtype, shape, data: DTYPES[dtype].view(buffer) };
  };
  return {
    path,
    header,
    metadata,
    names: () => [...header.keys()],
    read,
    readAsFloat32: (name) => toFloat32(path, name, read(name)),
    close: () => {
      if (open) fs.closeSync(fd);
      open = false;
    },
  };
}

function toFloat32(path: string, name: string, t: Tensor): Float32Array {
  switch (t.dtype) {
    case 'F32':
      return t.data as Float32Array;
    case 'F16':
      return f16ArrayToF32(t.data as Uint16Array);
    case 'BF16':
      return bf16ArrayToF32(t.data as Uint16Array);
    case 'I64':
    case 'U64': {
      const src = t.data as BigInt64Array | BigUint64Array;
      const out = new Float32Array(src.length);
      for (let i = 0; i < src.length; i++) {
        const v = Number(src[i]!);
        if (!Number.isSafeInteger(v)) throw new SafetensorsUsageError(path, name, `element ${i} = ${src[i]} is beyond ±2^53, refusing a lossy float32 conversion`);
        out[i] = v;
      }
      return out;
    }
    default:
      return Float32Array.from(t.data as Exclude<TensorArray, BigInt64Array | BigUint64Array>);
  }
}

/** Reads every tensor of a file at once (convenience for small files and tests). */
export function readSafetensors(path: string): { tensors: Map<string, Tensor>; metadata: Record<string, string> } {
  const f = openSafetensors(path);
  try {
    return { tensors: new Map(f.names().map((n) => [n, f.read(n)])), metadata: { ...f.metadata } };
  } finally {
    f.close();
  }
}

// ---------------------------------------------------------------------------------------------- writer

export interface TensorInput {
  readonly dtype: SafetensorsDtype;
  readonly shape: readonly number[];
  /** The dtype's array (see DtypeArrays); F16 and BF16 also accept a Float32Array, rounded to nearest even. */
  readonly data: ArrayBufferView;
}

function encodeTensor(path: string, name: string, t: TensorInput): Uint8Array {
  if (!isDtype(t.dtype)) throw new SafetensorsDtypeError(path, name, `unknown dtype "${String(t.dtype)}"`);
  if (!isValidShape(t.shape)) throw new SafetensorsHeaderJsonError(path, name, `shape ${JSON.stringify(t.shape)} is not a list of non-negative integers`);
  let data = t.data;
  if ((t.dtype === 'F16' || t.dtype === 'BF16') && data instanceof Float32Array) {
    data = t.dtype === 'F16' ? f32ArrayToF16(data) : f32ArrayToBf16(data);
  }
  const rule = DTYPES[t.dtype];
  if (!rule.isArray(data)) {
    throw new SafetensorsDtypeError(path, name, `dtype ${t.dtype} needs a ${rule.arrayName}, got ${data.constructor.name}`);
  }
  const expected = elementCount(t.shape) * rule.size;
  if (data.byteLength !== expected) {
    throw new SafetensorsSizeMismatchError(path, name, `${data.byteLength} bytes of data, but shape [${t.shape.join(', ')}] × ${t.dtype} needs ${expected}`);
  }
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

/**
 * Writes `tensors` to `path` atomically (temp file, fsync, rename). Everything is validated before the
 * temporary file is created; an I/O failure removes the temporary file and leaves any old `path` intact.
 */
export function writeSafetensors(path: string, tensors: Readonly<Record<string, TensorInput>>, metadata?: Readonly<Record<string, string>>): void {
  const names = Object.keys(tensors).sort();
  const bytes = new Map<string, Uint8Array>();
  for (const name of names) {
    if (name === '__metadata__' || name === '') throw new SafetensorsHeaderJsonError(path, name, 'reserved or empty tensor name');
    bytes.set(name, encodeTensor(path, name, tensors[name]!));
  }
  for (const [k, v] of Object.entries(metadata ?? {})) {
    if (typeof v !== 'string') throw new SafetensorsHeaderJsonError(path, undefined, `metadata["${k}"] is not a string`);
  }
  const order = [...names].sort((a, b) => DTYPES[tensors[b]!.dtype].size - DTYPES[tensors[a]!.dtype].size || (a < b ? -1 : 1));
  const offsets = new Map<string, [number, number]>();
  let at = 0;
  for (const name of order) {
    const n = bytes.get(name)!.byteLength;
    offsets.set(name, [at, at + n]);
    at += n;
  }
  const json: Record<string, unknown> = Object.create(null);
  if (metadata !== undefined) json['__metadata__'] = Object.fromEntries(Object.keys(metadata).sort().map((k) => [k, metadata[k]]));
  for (const name of names) {
    const t = tensors[name]!;
    json[name] = { dtype: t.dtype, shape: [...t.shape], data_offsets: offsets.get(name) };
  }
  const headerText = Buffer.from(JSON.stringify(json), 'utf8');
  const padded = Buffer.alloc(M.ceil(headerText.byteLength / 8) * 8, 0x20);
  headerText.copy(padded);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(padded.byteLength));
  writeFileAtomic(path, (fd) => {
    writeAll(fd, len);
    writeAll(fd, padded);
    for (const name of order) writeAll(fd, bytes.get(name)!);
  });
}
