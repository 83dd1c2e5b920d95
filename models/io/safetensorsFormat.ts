/**
 * What the safetensors format is, independent of reading or writing it: the dtype table and the named
 * errors. Format (https://github.com/huggingface/safetensors): an 8-byte little-endian u64 N, N bytes of
 * UTF-8 JSON header `{"__metadata__"?: {str: str}, name: {dtype, shape, data_offsets: [begin, end]}}`,
 * then the data section; offsets are relative to the start of the data section; values are little-endian.
 */
import os from 'node:os';

export type SafetensorsDtype = 'F64' | 'F32' | 'F16' | 'BF16' | 'I64' | 'I32' | 'I16' | 'I8' | 'U64' | 'U32' | 'U16' | 'U8' | 'BOOL';

/** The typed array `read()` returns for each dtype. F16 and BF16 come back as raw bit patterns. */
export interface DtypeArrays {
  F64: Float64Array;
  F32: Float32Array;
  F16: Uint16Array;
  BF16: Uint16Array;
  I64: BigInt64Array;
  I32: Int32Array;
  I16: Int16Array;
  I8: Int8Array;
  U64: BigUint64Array;
  U32: Uint32Array;
  U16: Uint16Array;
  U8: Uint8Array;
  BOOL: Uint8Array;
}

export type TensorArray = DtypeArrays[SafetensorsDtype];

interface DtypeRule<K extends SafetensorsDtype> {
  readonly size: number;
  /** Views `length` elements of a fresh, aligned buffer. */
  readonly view: (buffer: ArrayBuffer) => DtypeArrays[K];
  readonly arrayName: string;
  readonly isArray: (data: ArrayBufferView) => boolean;
}

function rule<K extends SafetensorsDtype>(
  size: number,
  ctor: { new (b: ArrayBuffer): DtypeArrays[K]; readonly name: string },
): DtypeRule<K> {
  return { size, view: (b) => new ctor(b), arrayName: ctor.name, isArray: (d) => d instanceof ctor };
}

/** One row per dtype; `tsc` rejects a missing one. */
export const DTYPES: { readonly [K in SafetensorsDtype]: DtypeRule<K> } = {
  F64: rule(8, Float64Array),
  F32: rule(4, Float32Array),
  F16: rule(2, Uint16Array),
  BF16: rule(2, Uint16Array),
  I64: rule(8, BigInt64Array),
  I32: rule(4, Int32Array),
  I16: rule(2, Int16Array),
  I8: rule(1, Int8Array),
  U64: rule(8, BigUint64Array),
  U32: rule(4, Uint32Array),
  U16: rule(2, Uint16Array),
  U8: rule(1, Uint8Array),
  BOOL: rule(1, Uint8Array),
};

export function isDtype(s: unknown): s is SafetensorsDtype {
  return typeof s === 'string' && Object.prototype.hasOwnProperty.call(DTYPES, s);
}

/** The reference implementation refuses headers above 100 MB; so do we. */
export const MAX_HEADER_BYTES = 100_000_000;

if (os.endianness() !== 'LE') {
  throw new Error('models/io/safetensors: big-endian hosts are not supported (safetensors data is little-endian)');
}

/** prod(shape), or NaN when it is not a safe integer. */
export function elementCount(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return Number.isSafeInteger(n) ? n : Number.NaN;
}

export function isValidShape(shape: unknown): shape is number[] {
  return Array.isArray(shape) && shape.every((d) => Number.isSafeInteger(d) && d >= 0);
}

// ---------------------------------------------------------------------------------------------- errors

/** Base of every safetensors error; `file` and (where one is at fault) `tensor` name the culprit. */
export class SafetensorsError extends Error {
  constructor(
    readonly file: string,
    readonly tensor: string | undefined,
    detail: string,
    options?: { cause?: unknown },
  ) {
    super(`${file}: ${tensor === undefined ? '' : `tensor "${tensor}": `}${detail}`, options);
    this.name = new.target.name;
  }
}

/** The file is shorter than 8 bytes, or the header or a tensor's data runs past the end of the file. */
export class SafetensorsTruncatedError extends SafetensorsError {}
/** The header length is 0, above MAX_HEADER_BYTES, or larger than the whole file. */
export class SafetensorsHeaderLengthError extends SafetensorsError {}
/** The header is not UTF-8 JSON, not an object, or an entry has missing or ill-typed fields. */
export class SafetensorsHeaderJsonError extends SafetensorsError {}
/** data_offsets are not two non-negative integers, or begin > end. (Offsets past the end of the file are truncation.) */
export class SafetensorsOffsetError extends SafetensorsError {}
/** Two tensors' byte ranges overlap. */
export class SafetensorsOverlapError extends SafetensorsError {}
/** An unknown dtype string, or (writer) a data array that does not fit the dtype. */
export class SafetensorsDtypeError extends SafetensorsError {}
/** A tensor's byte count is not prod(shape) × dtype size. */
export class SafetensorsSizeMismatchError extends SafetensorsError {}
/** A value cannot be converted as asked (an I64 beyond ±2^53 to float32, an unknown name, a closed file). */
export class SafetensorsUsageError extends SafetensorsError {}
