/** Parameters by state-dict key: collect a model's parameters, load diffusers / transformers safetensors (or a
 * PyTorch `.bin`/`.pt` checkpoint, through the safe reader of models/io/torchCheckpoint.ts) into a ParamStore by key (reporting missing, unexpected and mismatched keys by name), save a store atomically. */
import type { Node } from '../compiler/ir/node';
import { collect } from '../compiler/ir/graph';
import { initValues } from '../compiler/ir/init';
import { Tensor, type ParamStore } from '../compiler/index';
import { writeSafetensors, type TensorInput } from './io/safetensors';
import { openTensorFile, type TensorFile } from './io/tensorFile';
import type { ParamRegistry } from './nn/module';

/** Anything that holds parameters by key: a registry, a model with one, or a plain map. */
export type ParamSource = ParamRegistry | { registry: ParamRegistry } | ReadonlyMap<string, Tensor>;

/** name → parameter tensor. */
export function paramsOf(src: ParamSource): ReadonlyMap<string, Tensor> {
  if (src instanceof Map) return src;
  const reg = 'registry' in (src as object) ? (src as { registry: ParamRegistry }).registry : (src as ParamRegistry);
  return reg.params;
}

/** name → shape. */
export const paramShapes = (src: ParamSource): Map<string, readonly number[]> => new Map([...paramsOf(src)].map(([k, t]) => [k, t.shape]));

/** The parameters a graph's outputs actually use, by name (a subset of the model's when, say, only the
 * decoder is run). */
export function graphParams(outputs: Readonly<Record<string, Tensor>>): Map<string, Tensor> {
  const { params } = collect({ outputs });
  return new Map(params.map((n) => [n.attrs.name, new Tensor(n)]));
}

export const countParams = (src: ParamSource): number => { let n = 0; for (const t of paramsOf(src).values()) n += t.size; return n; };

export interface LoadReport {
  loaded: string[];
  /** Model keys the file lacks (left at their current / initial values). */
  missing: string[];
  /** File keys the model does not have. */
  unexpected: string[];
  /** Keys present in both with different shapes (not loaded). */
  mismatched: { key: string; expected: readonly number[]; found: readonly number[] }[];
}

export class WeightLoadError extends Error {
  constructor(readonly file: string, readonly report: LoadReport) {
    const parts: string[] = [];
    const list = (xs: string[]) => xs.slice(0, 20).join(', ') + (xs.length > 20 ? `, … (${xs.length} in all)` : '');
    if (report.missing.length) parts.push(`missing ${report.missing.length}: ${list(report.missing)}`);
    if (report.unexpected.length) parts.push(`unexpected ${report.unexpected.length}: ${list(report.unexpected)}`);
    if (report.mismatched.length) parts.push(`shape mismatches ${report.mismatched.length}: ${list(report.mismatched.map((m) => `${m.key} expected [${m.expected}] found [${m.found}]`))}`);
    super(`loading ${file}: ${parts.join('; ')}`);
    this.name = 'WeightLoadError';
  }
}

export interface LoadOptions {
  /** Throw a WeightLoadError when anything is missing, unexpected or mismatched (default true). */
  strict?: boolean;
  /** Prefix stripped from file keys before matching (e.g. 'unet.' or 'first_stage_model.'); keys without it
   * count as unexpected. */
  stripPrefix?: string;
  /** Prefix added to (stripped) file keys to form model keys, for models built under a prefix so that several
   * share one store (e.g. 'text_encoder_2.' for a second text encoder whose file keys are 'text_model.*'). */
  addPrefix?: string;
}

/** Reads every matching tensor of a safetensors file or a torch checkpoint (recognized by content; any float or int
 * dtype, converted; nested torch dicts flattened with dots, so `{'state_dict': …}` takes `stripPrefix: 'state_dict.'`)
 * into `store`. */
export function loadWeightsInto(store: ParamStore, file: string | TensorFile, params: ParamSource, opts: LoadOptions = {}): LoadReport {
  const f = typeof file === 'string' ? openTensorFile(file) : file;
  const model = paramsOf(params);
  const report: LoadReport = { loaded: [], missing: [], unexpected: [], mismatched: [] };
  try {
    const fileKeys = new Map<string, string>();
    for (const name of f.names()) {
      const stripped = opts.stripPrefix ? (name.startsWith(opts.stripPrefix) ? name.slice(opts.stripPrefix.length) : null) : name;
      const key = stripped === null ? null : (opts.addPrefix ?? '') + stripped;
      if (key === null || !model.has(key)) report.unexpected.push(name);
      else fileKeys.set(key, name);
    }
    for (const [key, t] of model) {
      const name = fileKeys.get(key);
      if (name === undefined) { report.missing.push(key); continue; }
      const found = f.header.get(name)!.shape;
      if (found.length !== t.shape.length || found.some((d, i) => d !== t.shape[i])) {
        report.mismatched.push({ key, expected: t.shape, found });
        continue;
      }
      store.set(key, Float64Array.from(f.header.get(name)!.dtype === 'F64' ? (f.read(name).data as Float64Array) : f.readAsFloat32(name)));
      report.loaded.push(key);
    }
  } finally {
    if (typeof file === 'string') f.close();
  }
  if ((opts.strict ?? true) && (report.missing.length || report.unexpected.length || report.mismatched.length)) {
    throw new WeightLoadError(f.path, report);
  }
  return report;
}

/** The same loader under its first name (it has read torch checkpoints too since they were supported). */
export const loadSafetensorsInto = loadWeightsInto;

/** The store's value for each parameter, initializing (from its declared init) those not yet there. */
export function materialize(store: ParamStore, params: ParamSource): ParamStore {
  for (const [key, t] of paramsOf(params)) {
    if (store.has(key)) continue;
    const a = (t.node as Node<'param'>).attrs;
    store.set(key, initValues(a.init, t.size));
  }
  return store;
}

/** Writes the parameters' values (from `store`, initializing missing ones) atomically, as F32 by default
 * (F64 keeps the reference evaluator's values bit-exact; F16/BF16 round to nearest even). */
export function saveParams(path: string, store: ParamStore, params: ParamSource, opts: { dtype?: 'F32' | 'F64' | 'F16' | 'BF16'; metadata?: Record<string, string> } = {}): void {
  materialize(store, params);
  const dtype = opts.dtype ?? 'F32';
  const tensors: Record<string, TensorInput> = {};
  for (const [key, t] of paramsOf(params)) {
    const v = store.get(key)!;
    tensors[key] = { dtype, shape: t.shape, data: dtype === 'F64' ? v : Float32Array.from(v) };
  }
  writeSafetensors(path, tensors, opts.metadata);
}
