/**
 * What a PyTorch checkpoint (`torch.save`, `.bin`/`.pt`/`.pth`) is, independent of reading it: the storage types a
 * state dict may name, torch's dtypes, and the named errors of the reader (torchCheckpoint.ts), its restricted
 * unpickler (pickle.ts) and its zip reader (zipStore.ts).
 *
 * Two layouts exist. The zip layout (torch ≥ 1.6): `<archive>/data.pkl` (the pickled object, storages as
 * persistent ids `('storage', torch.FloatStorage, key, location, numel)`), `<archive>/data/<key>` (raw
 * little-endian storage bytes, stored uncompressed), `<archive>/byteorder`, `<archive>/version`. The legacy layout:
 * five pickles back to back (magic number, protocol version 1001, sys_info, the object, the sorted storage keys),
 * then for each key an int64 element count and the storage's raw bytes.
 */
import type { SafetensorsDtype } from './safetensorsFormat';

/** torch's storage classes (`torch.FloatStorage`, …) and the dtype each holds. */
export const STORAGE_TYPES: Readonly<Record<string, SafetensorsDtype>> = {
  DoubleStorage: 'F64',
  FloatStorage: 'F32',
  HalfStorage: 'F16',
  BFloat16Storage: 'BF16',
  LongStorage: 'I64',
  IntStorage: 'I32',
  ShortStorage: 'I16',
  CharStorage: 'I8',
  ByteStorage: 'U8',
  BoolStorage: 'BOOL',
};

/** The legacy format's first pickle. */
export const LEGACY_MAGIC = 0x1950a86a20f9469cfc6cn;
export const LEGACY_PROTOCOL = 1001;

// ---------------------------------------------------------------------------------------------- errors

/** Base of every checkpoint-reader error; `file` and (where one is at fault) `key` name the culprit. */
export class TorchCheckpointError extends Error {
  constructor(readonly file: string, readonly key: string | undefined, detail: string, options?: { cause?: unknown }) {
    super(`${file}: ${key === undefined ? '' : `"${key}": `}${detail}`, options);
    this.name = new.target.name;
  }
}

/** The pickle asks for something outside the allowlist: a global (`os.system`), REDUCE of anything but the
 * tensor/OrderedDict rebuilders, BUILD of anything but an OrderedDict, INST/OBJ/NEWOBJ, EXT*. Nothing is run. */
export class PickleSecurityError extends TorchCheckpointError {}
/** An opcode the restricted unpickler does not know (or a protocol-0 text opcode it does not accept). */
export class PickleOpcodeError extends TorchCheckpointError {}
/** The pickle is malformed: stack underflow, a missing mark or memo entry, wrong argument types for a rebuild
 * function, a limit (depth, memo, length) exceeded, no STOP. */
export class PickleStructureError extends TorchCheckpointError {}
/** The file, the pickle or a storage record ends before what it declares. */
export class TorchCheckpointTruncatedError extends TorchCheckpointError {}
/** The zip container is malformed: no end record, a bad signature, a compressed or encrypted entry, a CRC
 * mismatch, an entry outside the file, no `data.pkl`. */
export class TorchZipError extends TorchCheckpointError {}
/** A storage or tensor view is inconsistent: record size ≠ numel × itemsize, a view (offset, size, stride) reaching
 * past its storage, a missing storage record, a big-endian file. */
export class TorchStorageError extends TorchCheckpointError {}
/** Neither a zip nor a legacy torch file (or the legacy magic/protocol/sys_info is wrong). */
export class TorchFormatError extends TorchCheckpointError {}
/** A request the checkpoint cannot answer: an unknown tensor name, a closed file, an I64 beyond ±2^53 as float32. */
export class TorchCheckpointUsageError extends TorchCheckpointError {}
