/**
 * Loader for TensorFlow.js weight manifests (`*-weights_manifest.json`, as shipped by face-api).
 *
 * A manifest is an array of groups `{paths, weights}`. A group's shard files, concatenated in `paths`
 * order, hold its weights back to back in `weights` order with no padding. A weight takes
 * prod(shape) × size(quantization.dtype ?? dtype) bytes. Decoding follows tfjs-core's io.decodeWeights
 * exactly: uint8/uint16 quantized values become `v * scale + min` (computed in float64, stored as float32;
 * rounded with M.round for int32 weights), float16 quantized values are widened exactly.
 *
 * Shards are read with positioned reads, one weight at a time, never concatenated in memory.
 */
import fs from 'node:fs';
import path from 'node:path';
import { f16ArrayToF32 } from './halfFloat';
// Globals are bound once per module: every global lookup is slow inside jest's vm contexts.
const M = Math;

export type TfjsDtype = 'float32' | 'int32' | 'bool';
export type TfjsQuantDtype = 'uint8' | 'uint16' | 'float16';

export interface TfjsWeight {
  readonly shape: number[];
  /** Values as float32 whatever the stored dtype (int32 and bool weights are exact small integers here). */
  readonly data: Float32Array;
  /** The weight's declared dtype. */
  readonly dtype: TfjsDtype;
}

export class TfjsWeightsError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}
/** The manifest is unreadable, not JSON, or not shaped like a manifest (or repeats a weight name). */
export class TfjsManifestError extends TfjsWeightsError {}
/** A shard named in `paths` does not exist or cannot be read. */
export class TfjsShardMissingError extends TfjsWeightsError {}
/** A group's shards do not add up to the bytes its weights need. */
export class TfjsSizeMismatchError extends TfjsWeightsError {}
/** A weight's dtype or quantization dtype is not one tfjs defines for weights. */
export class TfjsDtypeError extends TfjsWeightsError {}

const DTYPE_SIZE: { readonly [K in TfjsDtype | TfjsQuantDtype]: number } = {
  float32: 4,
  int32: 4,
  bool: 1,
  uint8: 1,
  uint16: 2,
  float16: 2,
};

interface Quantization {
  readonly dtype: TfjsQuantDtype;
  readonly scale: number;
  readonly min: number;
}

interface WeightSpec {
  readonly name: string;
  readonly shape: number[];
  readonly dtype: TfjsDtype;
  readonly quantization?: Quantization;
}

/** The shards of one group seen as one byte range. */
class ShardReader {
  private readonly shards: { file: string; fd: number; size: number }[] = [];
  readonly size: number;

  constructor(files: string[]) {
    let total = 0;
    try {
      for (const file of files) {
        let fd: number;
        try {
          fd = fs.openSync(file, 'r');
        } catch (err) {
          throw new TfjsShardMissingError(`weight shard ${file} cannot be opened (${(err as NodeJS.ErrnoException).code ?? err})`, { cause: err });
        }
        const size = fs.fstatSync(fd).size;
        this.shards.push({ file, fd, size });
        total += size;
      }
    } catch (err) {
      this.close();
      throw err;
    }
    this.size = total;
  }

  /** Copies bytes [offset, offset + length) of the concatenation into a fresh buffer. */
  read(offset: number, length: number): ArrayBuffer {
    const out = new Uint8Array(length);
    let done = 0;
    let base = 0;
    for (const s of this.shards) {
      while (done < length && offset + done < base + s.size) {
        const pos = offset + done - base;
        const n = fs.readSync(s.fd, out, done, M.min(length - done, s.size - pos), pos);
        if (n === 0) throw new TfjsSizeMismatchError(`weight shard ${s.file} shrank while being read`);
        done += n;
      }
      base += s.size;
    }
    return out.buffer;
  }

  close(): void {
    for (const s of this.shards) fs.closeSync(s.fd);
    this.shards.length = 0;
  }
}

function parseManifest(manifestPath: string): { paths: string[]; weights: WeightSpec[] }[] {
  let json: unknown;
  try {
    json = JSON.parse(fs.readFileSync(manifestPath, 'utf8'));
  } catch (err) {
    throw new TfjsManifestError(`${manifestPath}: cannot read manifest (${(err as Error).message})`, { cause: err });
  }
  const bad = (what: string): never => {
    throw new TfjsManifestError(`${manifestPath}: ${what}`);
  };
  if (!Array.isArray(json)) bad('manifest is not an array of groups');
  return (json as unknown[]).map((g, gi) => {
    const group = g as { paths?: unknown; weights?: unknown };
    if (!Array.isArray(group.paths) || !group.paths.every((p) => typeof p === 'string')) bad(`group ${gi}: "paths" is not a list of strings`);
    if (!Array.isArray(group.weights)) bad(`group ${gi}: "weights" is not a list`);
    const weights = (group.weights as unknown[]).map((w) => checkSpec(manifestPath, w, bad));
    return { paths: group.paths as string[], weights };
  });
}

function checkSpec(manifestPath: string, w: unknown, bad: (what: string) => never): WeightSpec {
  const spec = w as Partial<Record<keyof WeightSpec, unknown>>;
  if (typeof spec.name !== 'string') bad(`weight ${JSON.stringify(w)} has no name`);
  const name = spec.name as string;
  if (!Array.isArray(spec.shape) || !spec.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) bad(`weight "${name}": bad shape ${JSON.stringify(spec.shape)}`);
  if (spec.dtype !== 'float32' && spec.dtype !== 'int32' && spec.dtype !== 'bool') {
    throw new TfjsDtypeError(`${manifestPath}: weight "${name}": unsupported dtype ${JSON.stringify(spec.dtype)} (float32, int32, bool)`);
  }
  const q = spec.quantization as Partial<Quantization> | undefined;
  if (q !== undefined) {
    if (q.dtype !== 'uint8' && q.dtype !== 'uint16' && q.dtype !== 'float16') {
      throw new TfjsDtypeError(`${manifestPath}: weight "${name}": unknown quantization dtype ${JSON.stringify(q.dtype)} (uint8, uint16, float16)`);
    }
    if (q.dtype === 'float16' ? spec.dtype !== 'float32' : spec.dtype === 'bool') {
      throw new TfjsDtypeError(`${manifestPath}: weight "${name}": ${spec.dtype} weights cannot be ${q.dtype}-quantized`);
    }
    if (q.dtype !== 'float16' && (typeof q.scale !== 'number' || typeof q.min !== 'number')) {
      bad(`weight "${name}": ${q.dtype} quantization needs numeric scale and min`);
    }
  }
  return spec as WeightSpec;
}

function byteLength(spec: WeightSpec): number {
  return spec.shape.reduce((a, b) => a * b, 1) * DTYPE_SIZE[spec.quantization?.dtype ?? spec.dtype];
}

function decode(spec: WeightSpec, bytes: ArrayBuffer): Float32Array {
  const q = spec.quantization;
  if (q === undefined) {
    if (spec.dtype === 'float32') return new Float32Array(bytes);
    return Float32Array.from(spec.dtype === 'int32' ? new Int32Array(bytes) : new Uint8Array(bytes));
  }
  if (q.dtype === 'float16') return f16ArrayToF32(new Uint16Array(bytes));
  const raw = q.dtype === 'uint8' ? new Uint8Array(bytes) : new Uint16Array(bytes);
  const out = new Float32Array(raw.length);
  const round = spec.dtype === 'int32';
  for (let i = 0; i < raw.length; i++) {
    const v = raw[i]! * q.scale + q.min;
    out[i] = round ? M.round(v) : v;
  }
  return out;
}

/** Loads every weight of a manifest; shard paths are relative to the manifest's folder. */
export function loadTfjsWeights(manifestPath: string): Map<string, TfjsWeight> {
  const dir = path.dirname(manifestPath);
  const out = new Map<string, TfjsWeight>();
  for (const group of parseManifest(manifestPath)) {
    const expected = group.weights.reduce((a, w) => a + byteLength(w), 0);
    const reader = new ShardReader(group.paths.map((p) => path.resolve(dir, p)));
    try {
      if (reader.size !== expected) {
        throw new TfjsSizeMismatchError(
          `${manifestPath}: shards ${group.paths.join(', ')} hold ${reader.size} bytes, but their weights need ${expected} bytes`,
        );
      }
      let offset = 0;
      for (const spec of group.weights) {
        if (out.has(spec.name)) throw new TfjsManifestError(`${manifestPath}: weight "${spec.name}" appears twice`);
        const n = byteLength(spec);
        out.set(spec.name, { shape: [...spec.shape], dtype: spec.dtype, data: decode(spec, reader.read(offset, n)) });
        offset += n;
      }
    } finally {
      reader.close();
    }
  }
  return out;
}
