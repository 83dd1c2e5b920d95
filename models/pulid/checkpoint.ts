/**
 * PuLID training checkpoints: a safetensors file (F32 tensors) whose metadata carries the Kiln checkpoint format
 * version, the stage counters, the full PulidConfig, the trainer settings and a SHA-256 over those and the tensors.
 *
 * Reading one back checks everything before the trainer sees a value: the metadata against a schema, the format
 * version, the checksum, the config (a different one is refused unless the caller allows converting), the
 * tensor names against the layout the training program has (missing and extra ones listed), every shape in full,
 * and every value finite. Each failure is a named `CheckpointError` subclass that names the file.
 */
import { createHash } from 'node:crypto';
import { readSafetensors, writeSafetensors, type TensorInput } from '../io/safetensors';
import { check, int, num, obj, record, SchemaError, str, type Schema } from '../io/schema';
import type { PulidConfig } from './config';
import type { Stage } from './model';

/** Bump when the layout or the metadata changes; older checkpoints are refused with this number in the message. */
export const CHECKPOINT_FORMAT = 'kiln-pulid-2';

export class CheckpointError extends Error {
  constructor(
    readonly file: string,
    detail: string,
    options?: { cause?: unknown },
  ) {
    super(`checkpoint ${file}: ${detail}`, options);
    this.name = new.target.name;
  }
}
/** Not a readable safetensors file, metadata missing or ill-typed, another format version, or a checksum mismatch. */
export class CheckpointFormatError extends CheckpointError {}
/** The checkpoint was written for another model config or incompatible trainer settings. */
export class CheckpointConfigError extends CheckpointError {}
/** Tensors missing, extra, of another shape or dtype than the training program's. */
export class CheckpointTensorsError extends CheckpointError {}
/** A tensor holds NaN or ±Infinity. */
export class CheckpointValuesError extends CheckpointError {}

/** Trainer settings that define the training program: a checkpoint resumes only into the same ones. */
export interface ProgramSettings {
  batch: number;
  accumulation: number;
  mode: string;
}

/** What the checkpoint records about the run (the first three must match on resume, the rest are informative). */
export interface TrainerSettings extends ProgramSettings {
  seed: number;
  lr: number;
  steps: Record<Stage, number>;
}

export interface CheckpointContents {
  stage: Stage;
  done: Record<Stage, number>;
  config: PulidConfig;
  trainer: TrainerSettings;
  /** name → values, every one of `layout`. */
  tensors: Map<string, Float32Array>;
}

/** The tensors a training program keeps, by name and shape: each trainable parameter, its AdamW moments
 * (`.adam_m`, `.adam_v`), the AdamW step `adamw.step` and, when accumulating gradients, `.grad_acc`. This mirrors
 * trainStepGraph (model.ts); the trainer checks the two agree whenever it compiles a program. */
export function checkpointLayout(trainable: ReadonlyMap<string, { shape: readonly number[] }>, accumulation: number): Map<string, readonly number[]> {
  const out = new Map<string, readonly number[]>([['adamw.step', []]]);
  for (const [name, t] of trainable) {
    out.set(name, t.shape);
    out.set(`${name}.adam_m`, t.shape);
    out.set(`${name}.adam_v`, t.shape);
    if (accumulation > 1) out.set(`${name}.grad_acc`, t.shape);
  }
  return out;
}

/** The metadata fields the checksum covers (as stored: strings). */
export const CHECKSUMMED_METADATA = ['stage', 'done', 'config', 'trainer'] as const;

/** SHA-256 over the checksummed metadata fields, then the tensors in name order: name, shape and the float32
 * bytes of each. */
export function contentChecksum(tensors: ReadonlyMap<string, { shape: readonly number[]; data: Float32Array }>, metadata: Readonly<Record<string, string | undefined>>): string {
  const h = createHash('sha256');
  for (const k of CHECKSUMMED_METADATA) h.update(`${k}\0${metadata[k] ?? ''}\0`);
  for (const name of [...tensors.keys()].sort()) {
    const t = tensors.get(name)!;
    h.update(`${name}\0${t.shape.join(',')}\0`);
    h.update(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength));
  }
  return `sha256:${h.digest('hex')}`;
}

/** The index and value of the first non-finite entry, or undefined. */
function firstNonFinite(data: Float32Array): [number, number] | undefined {
  for (let i = 0; i < data.length; i++) if (!Number.isFinite(data[i])) return [i, data[i]!];
  return undefined;
}

/** Writes a checkpoint atomically, each tensor with its `layout` shape. Refuses (nothing written) a tensor set
 * that is not exactly the layout, or non-finite values: a checkpoint on disk is always one training can resume from. */
export function writeCheckpoint(file: string, c: CheckpointContents, layout: ReadonlyMap<string, readonly number[]>): void {
  const missing = [...layout.keys()].filter((k) => !c.tensors.has(k)), extra = [...c.tensors.keys()].filter((k) => !layout.has(k));
  if (missing.length || extra.length) throw new CheckpointTensorsError(file, `not written: missing [${missing.join(', ')}], extra [${extra.join(', ')}]`);
  const tensors = new Map<string, { shape: readonly number[]; data: Float32Array }>();
  const inputs: Record<string, TensorInput> = {};
  for (const [name, data] of c.tensors) {
    const bad = firstNonFinite(data);
    if (bad) throw new CheckpointValuesError(file, `not written: tensor "${name}" holds ${bad[1]} at index ${bad[0]}`);
    const shape = layout.get(name)!;
    tensors.set(name, { shape, data });
    inputs[name] = { dtype: 'F32', shape, data };
  }
  const metadata = { stage: String(c.stage), done: JSON.stringify(c.done), config: JSON.stringify(c.config), trainer: JSON.stringify(c.trainer) };
  writeSafetensors(file, inputs, { format: CHECKPOINT_FORMAT, ...metadata, checksum: contentChecksum(tensors, metadata) });
}

const fail = (at: string, expected: string, v: unknown): never => {
  throw new SchemaError(at, expected, v);
};
const stageSchema: Schema<Stage> = (v, at) => {
  const n = typeof v === 'string' && /^[123]$/.test(v) ? Number(v) : v;
  if (n === 1 || n === 2 || n === 3) return n;
  return fail(at, 'a stage 1, 2 or 3', v);
};
const countsSchema = obj({ 1: int({ min: 0 }), 2: int({ min: 0 }), 3: int({ min: 0 }) }) as unknown as Schema<Record<Stage, number>>;
const trainerSchema = obj({
  batch: int({ min: 1 }), accumulation: int({ min: 1 }), mode: str, seed: int(), lr: num(), steps: countsSchema,
}) as Schema<TrainerSettings>;
/** A JSON-encoded metadata field checked by `inner`. */
const jsonField = <T>(inner: Schema<T>): Schema<T> => (v, at) => {
  const text = str(v, at);
  let x: unknown;
  try {
    x = JSON.parse(text);
  } catch {
    return fail(at, 'JSON text', text);
  }
  return inner(x, at);
};
const metadataSchema = obj({
  format: str,
  stage: stageSchema,
  done: jsonField(countsSchema),
  config: jsonField(record((x) => x)),
  trainer: jsonField(trainerSchema),
  checksum: (v, at) => (typeof v === 'string' && /^sha256:[0-9a-f]{64}$/.test(v) ? v : fail(at, '"sha256:" and 64 hex digits', v)),
});

export interface ReadCheckpointOptions {
  /** The model config the trainer was built with. */
  config: PulidConfig;
  /** The resuming trainer's settings; omitted (e.g. to read the weights for generation), any are accepted. */
  settings?: ProgramSettings;
  /** The tensors the training program keeps (checkpointLayout), or a function of the checkpoint's settings. */
  layout: ReadonlyMap<string, readonly number[]> | ((written: TrainerSettings) => ReadonlyMap<string, readonly number[]>);
  /** Accept a checkpoint written for another config or other program settings, as long as every tensor matches
   * the layout exactly (e.g. the same adapter trained at another resolution). */
  allowConfigChange?: boolean;
}

/** Reads and validates a checkpoint for resuming (see the file comment for what is checked). */
export function readCheckpoint(file: string, o: ReadCheckpointOptions): CheckpointContents {
  let st: ReturnType<typeof readSafetensors>;
  try {
    st = readSafetensors(file);
  } catch (err) {
    throw new CheckpointFormatError(file, `cannot be read (${(err as Error).message})`, { cause: err });
  }
  if (st.metadata.format !== CHECKPOINT_FORMAT) {
    throw new CheckpointFormatError(file, `format ${JSON.stringify(st.metadata.format ?? null)}, this Kiln reads ${CHECKPOINT_FORMAT}` +
      (st.metadata.format === 'kiln-pulid-1' ? ' (kiln-pulid-1 checkpoints carry no checksum or config; retrain or convert)' : ''));
  }
  let meta: ReturnType<typeof metadataSchema>;
  try {
    meta = check(metadataSchema, st.metadata);
  } catch (err) {
    if (!(err instanceof SchemaError)) throw err;
    throw new CheckpointFormatError(file, `metadata${err.message}`, { cause: err });
  }
  const tensors = new Map<string, Float32Array>();
  const forSum = new Map<string, { shape: readonly number[]; data: Float32Array }>();
  for (const [name, t] of st.tensors) {
    if (t.dtype !== 'F32') throw new CheckpointTensorsError(file, `tensor "${name}" is ${t.dtype}; checkpoints hold F32`);
    const data = t.data as Float32Array;
    tensors.set(name, data);
    forSum.set(name, { shape: t.shape, data });
  }
  const sum = contentChecksum(forSum, st.metadata);
  if (sum !== meta.checksum) throw new CheckpointFormatError(file, `content checksum ${sum} does not match the recorded ${meta.checksum} (corrupted)`);

  if (!o.allowConfigChange) {
    const diffs = [...diffJson(JSON.parse(JSON.stringify(o.config)), meta.config, 'config'),
      ...(o.settings ? diffJson(o.settings, pick(meta.trainer, Object.keys(o.settings)), 'trainer') : [])];
    if (diffs.length) {
      throw new CheckpointConfigError(file, `written for another configuration (${diffs.slice(0, 8).join('; ')}${diffs.length > 8 ? `; … ${diffs.length} differences` : ''}); ` +
        'resume with the same config and settings, or allow converting');
    }
  }
  const layout = typeof o.layout === 'function' ? o.layout(meta.trainer) : o.layout;
  const missing = [...layout.keys()].filter((k) => !tensors.has(k));
  const extra = [...tensors.keys()].filter((k) => !layout.has(k));
  const shapes = [...layout].filter(([k]) => st.tensors.has(k)).flatMap(([k, s]) => {
    const found = st.tensors.get(k)!.shape;
    return found.length === s.length && found.every((d, i) => d === s[i]) ? [] : [`${k} expected [${s}] found [${found}]`];
  });
  if (missing.length || extra.length || shapes.length) {
    const list = (xs: string[]) => xs.slice(0, 12).join(', ') + (xs.length > 12 ? `, … (${xs.length} in all)` : '');
    throw new CheckpointTensorsError(file, [missing.length ? `missing ${missing.length}: ${list(missing)}` : '', extra.length ? `extra ${extra.length}: ${list(extra)}` : '',
      shapes.length ? `other shapes ${shapes.length}: ${list(shapes)}` : ''].filter(Boolean).join('; '));
  }
  for (const [name, data] of tensors) {
    const bad = firstNonFinite(data);
    if (bad) throw new CheckpointValuesError(file, `tensor "${name}" holds ${bad[1]} at index ${bad[0]}; refusing to resume from non-finite values`);
  }
  return { stage: meta.stage, done: meta.done, config: meta.config as unknown as PulidConfig, trainer: meta.trainer, tensors };
}

function pick(o: object, keys: string[]): Record<string, unknown> {
  return Object.fromEntries(keys.map((k) => [k, (o as Record<string, unknown>)[k]]));
}

/** Paths where two JSON-like values differ (`config.unet.blockOutChannels: [8,16] vs [16,32]`). */
export function diffJson(want: unknown, got: unknown, at: string): string[] {
  if (typeof want === 'object' && want !== null && typeof got === 'object' && got !== null && Array.isArray(want) === Array.isArray(got)) {
    const keys = new Set([...Object.keys(want), ...Object.keys(got)]);
    return [...keys].flatMap((k) => diffJson((want as Record<string, unknown>)[k], (got as Record<string, unknown>)[k], `${at}.${k}`));
  }
  return JSON.stringify(want) === JSON.stringify(got) ? [] : [`${at}: this run ${JSON.stringify(want) ?? 'nothing'}, checkpoint ${JSON.stringify(got) ?? 'nothing'}`];
}

/** The trained adapter weights of a checkpoint (validated as for resuming: format, checksum, the model's config,
 * complete layout, finite values), as float64 parameter values by name, for generation. */
export function readAdapterWeights(file: string, config: PulidConfig, trainable: ReadonlyMap<string, { shape: readonly number[] }>): Map<string, Float64Array> {
  const ck = readCheckpoint(file, { config, layout: (w) => checkpointLayout(trainable, w.accumulation) });
  return new Map([...trainable.keys()].map((k) => [k, Float64Array.from(ck.tensors.get(k)!)]));
}
