/** What every checkpoint reader gives the loaders (models/weights.ts): tensors by name with dtype and shape, read on
 * demand. A safetensors file and a torch checkpoint both are one; `openTensorFile` picks the reader by content. */
import fs from 'node:fs';
import { openSafetensors, type Tensor } from './safetensors';
import type { SafetensorsDtype } from './safetensorsFormat';
import { isTorchCheckpoint, openTorchCheckpoint } from './torchCheckpoint';

export interface TensorFileEntry {
  readonly dtype: SafetensorsDtype;
  readonly shape: readonly number[];
}

export interface TensorFile {
  readonly path: string;
  readonly header: ReadonlyMap<string, TensorFileEntry>;
  names(): string[];
  /** The tensor's elements, row-major, in its own dtype (F16/BF16 as bit patterns). */
  read(name: string): Tensor;
  readAsFloat32(name: string): Float32Array;
  close(): void;
}

/** A torch checkpoint (zip or legacy, recognized by its first bytes) or else a safetensors file. */
export function openTensorFile(path: string): TensorFile {
  const fd = fs.openSync(path, 'r');
  const head = Buffer.alloc(4);
  try {
    fs.readSync(fd, head, 0, 4, 0);
  } finally {
    fs.closeSync(fd);
  }
  return isTorchCheckpoint(head) && !path.endsWith('.safetensors') ? openTorchCheckpoint(path) : openSafetensors(path);
}
