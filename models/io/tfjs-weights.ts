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
import { arr, check, describe, int, num, obj, optional, parseJson, SchemaError, str, type Infer } from './schema';
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

/** The largest float32 (a dequantized value beyond it would be Infinity). */
const F32_MAX = 3.4028234663852886e38;
/** Rank and element-count bounds of one weight (a manifest is not allowed to ask for more). */
const MAX_RANK = 8;

const quantizationSchema = obj({
  dtype: (v, at) => {
    if (v === 'uint8' || v === 'uint16' || v === 'float16') return v as TfjsQuantDtype;
    throw new SchemaError(at, 'a quantization dtype (uint8, uint16, float16)', v);
  },
  scale: optional(num({ min: 0 })),
  min: optional(num()),
});

const weightSchema = obj({
  name: str,
  shape: arr(int({ min: 0 }), { max: MAX_RANK }),
  dtype: (v, at) => {
    if (v === 'float32' || v === 'int32' || v === 'bool') return v as TfjsDtype;
    throw new SchemaError(at, 'a weight dtype (float32, int32, bool)', v);
  },
  quantization: optional(quantizationSchema),
  group: optional(str),
});

const manifestSchema = arr(obj({ paths: arr(str), weights: arr(weightSchema) }));

function parseManifest(manifestPath: string): { paths: string[]; weights: WeightSpec[] }[] {
  let text: string;
  try {
    text = fs.readFileSync(manifestPath, 'utf8');
  } catch (err) {
    throw new TfjsManifestError(`${manifestPath}: cannot read manifest (${(err as NodeJS.ErrnoException).code ?? err})`, { cause: err });
  }
  let groups: Infer<typeof manifestSchema>;
  let raw: unknown;
  try {
    raw = parseJson(text, (v) => v);
    groups = check(manifestSchema, raw);
  } catch (err) {
    if (!(err instanceof SchemaError)) throw err;
    const m = /^\[(\d+)\]\.weights\[(\d+)\]/.exec(err.at);
    const name = m ? (raw as { weights?: { name?: unknown }[] }[])[Number(m[1])]?.weights?.[Number(m[2])]?.name : undefined;
    const weight = typeof name === 'string' ? `weight "${name}" at ` : '';
    if (/dtype$/.test(err.at)) {
      const what = err.at.endsWith('quantization.dtype') ? 'unknown quantization dtype' : 'unsupported dtype';
      throw new TfjsDtypeError(`${manifestPath}: ${weight}${err.at}: ${what} ${describe(err.found)} (${err.expected.replace(/^.*\(/, '')}`, { cause: err });
    }
    throw new TfjsManifestError(`${manifestPath}: not a tfjs weights manifest: ${weight}${err.message}`, { cause: err });
  }
  return groups.map((g, gi) => ({ paths: g.paths, weights: g.weights.map((w, wi) => checkSpec(manifestPath, w, `[${gi}].weights[${wi}]`)) }));
}

/** What the schema cannot say: dtype/quantization pairs, scale and min present and finite over the whole
 * quantized range, an element count that fits in memory. */
function checkSpec(manifestPath: string, w: Infer<typeof weightSchema>, at: string): WeightSpec {
  const where = `${manifestPath}: weight "${w.name}" (${at})`;
  if (!Number.isSafeInteger(w.shape.reduce((a, b) => a * b, 1) * 4)) throw new TfjsManifestError(`${where}: shape [${w.shape}] is too large`);
  const q = w.quantization;
  if (q === undefined) return { name: w.name, shape: w.shape, dtype: w.dtype };
  if (q.dtype === 'float16' ? w.dtype !== 'float32' : w.dtype === 'bool') {
    throw new TfjsDtypeError(`${where}: ${w.dtype} weights cannot be ${q.dtype}-quantized`);
  }
  if (q.dtype === 'float16') return { name: w.name, shape: w.shape, dtype: w.dtype, quantization: { dtype: 'float16', scale: 1, min: 0 } };
  if (q.scale === undefined || q.min === undefined) throw new TfjsManifestError(`${where}: ${q.dtype} quantization needs a finite "scale" ≥ 0 and "min"`);
  const top = q.min + q.scale * (q.dtype === 'uint8' ? 255 : 65535);
  if (!(M.abs(q.min) <= F32_MAX && M.abs(top) <= F32_MAX)) {
    throw new TfjsManifestError(`${where}: quantization range [${q.min}, ${top}] (min + scale × ${q.dtype === 'uint8' ? 255 : 65535}) is not finite in float32`);
  }
  return { name: w.name, shape: w.shape, dtype: w.dtype, quantization: { dtype: q.dtype, scale: q.scale, min: q.min } };
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
