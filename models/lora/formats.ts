/** LoRA files in the three layouts in use, read into one form (module path → down, up, α) and written back with
 * every key as it was:
 *
 * | format | keys per module | α |
 * | --- | --- | --- |
 * | `kohya` | `lora_unet_<SGM path, _>.lora_down.weight`, `.lora_up.weight`, `.alpha` | the `.alpha` scalar; absent → rank |
 * | `diffusers` | `unet.<path>.lora.down.weight`, `.lora.up.weight` (optional `unet.<path>.alpha`) | absent → rank (network_alpha None) |
 * | `diffusers-old` | `unet.<attention>.processor.to_q_lora.down.weight` … `to_out_lora` (attention processors only) | as diffusers |
 * | `peft` | `base_model.model.<path>.lora_A.weight`, `.lora_B.weight` (or `unet.` / no prefix) | `lora_alpha` of adapter_config.json: `opts.alpha` / `opts.alphas`, or the `lora_alphas` metadata Kiln writes; else an error |
 *
 * Every key must land on a module of the model: keys that match none, down/up of different ranks, shapes that
 * differ from the module and a missing α are `LoraError`s naming what was expected. */
import { readSafetensors, writeSafetensors, type TensorInput } from '../io/safetensors';
import type { ParamStore } from '../../compiler/index';
import { attachLora, findLayers, keyOf, LoraError, type LoraAdapter, type LoraOptions, type LoraTarget } from '../nn/lora';
import { Conv2d } from '../nn/layers';
import { kohyaName } from './sgm-names';
import type { UnetConfig } from '../unet/config';

export type LoraFormat = 'kohya' | 'diffusers' | 'diffusers-old' | 'peft';

export interface LoraModuleWeights {
  down: Float64Array; downShape: number[];
  up: Float64Array; upShape: number[];
  alpha: number;
  /** Whether the file held an α for this module (so a save writes one back exactly where one was). */
  alphaStored: boolean;
  /** The key stem the module had in the file (kohya: its lora name; others: prefix + path). */
  stem: string;
}

export interface LoraWeights {
  format: LoraFormat;
  /** The prefix before module paths (diffusers / PEFT: 'unet.', 'base_model.model.' or ''). */
  prefix: string;
  modules: Map<string, LoraModuleWeights>;
  metadata: Record<string, string>;
  /** Keys set aside by `skipKeys`. */
  skipped: string[];
}

export interface LoraReadOptions {
  /** PEFT's `lora_alpha` (adapter_config.json), for every module. */
  alpha?: number;
  /** Per-module α by module path (PEFT's alpha_pattern resolved). */
  alphas?: ReadonlyMap<string, number>;
  /** The model's key prefix to strip from module paths (e.g. 'unet.'). */
  stripPrefix?: string;
  /** Keys meant for another model (e.g. /^lora_te[12]?_/ when loading a kohya SDXL file into the UNet alone):
   * set aside and listed in `skipped`, never silently dropped. */
  skipKeys?: RegExp;
}

type Raw = ReadonlyMap<string, { shape: readonly number[]; data: ArrayLike<number> }>;

const OLD_PROC: Record<string, string> = { to_q_lora: 'to_q', to_k_lora: 'to_k', to_v_lora: 'to_v', to_out_lora: 'to_out.0' };
const OLD_PROC_BACK: Record<string, string> = { to_q: 'to_q_lora', to_k: 'to_k_lora', to_v: 'to_v_lora', 'to_out.0': 'to_out_lora' };

/** The UNet config when `model` is a UNet (it carries `config.layersPerBlock`), for kohya's SGM names. */
function unetConfigOf(model: object): UnetConfig | undefined {
  const c = (model as { config?: UnetConfig }).config;
  return c && typeof c.layersPerBlock === 'number' ? c : undefined;
}

/** Sort a file's keys into modules; throws LoraError for keys matching no module, rank or shape mismatches and
 * missing α. */
export function parseLora(raw: Raw, model: object, opts: LoraReadOptions = {}, metadata: Record<string, string> = {}): LoraWeights {
  const layers = findLayers(model, opts.stripPrefix);
  const cfg = unetConfigOf(model);
  const kohya = new Map([...layers.keys()].map((p) => [kohyaName(p, cfg), p]));
  const skipped = opts.skipKeys ? [...raw.keys()].filter((k) => opts.skipKeys!.test(k)) : [];
  const keys = [...raw.keys()].filter((k) => !skipped.includes(k));
  const format = detectFormat(keys);
  const parts = new Map<string, { down?: string; up?: string; alpha?: string; stem: string }>();
  const unmatched: string[] = [];
  let prefix = '';
  const slot = (path: string, stem: string) => { let s = parts.get(path); if (!s) parts.set(path, s = { stem }); return s; };
  const splitPrefix = (full: string): [string, string] | undefined => {
    for (const pre of ['base_model.model.', 'unet.', '']) if (full.startsWith(pre) && layers.has(full.slice(pre.length))) return [pre, full.slice(pre.length)];
    return undefined;
  };
  for (const k of keys) {
    let m: RegExpExecArray | null;
    if (format === 'kohya' && (m = /^(lora_[a-z0-9]+_.+)\.(lora_down\.weight|lora_up\.weight|alpha)$/.exec(k))) {
      const path = kohya.get(m[1]!);
      if (!path) { unmatched.push(k); continue; }
      const s = slot(path, m[1]!);
      if (m[2] === 'alpha') s.alpha = k; else if (m[2] === 'lora_down.weight') s.down = k; else s.up = k;
    } else if (format === 'diffusers-old' && (m = /^(.*)\.processor\.(to_q_lora|to_k_lora|to_v_lora|to_out_lora)\.(down\.weight|up\.weight|alpha)$/.exec(k))) {
      const sp = splitPrefix(`${m[1]}.${OLD_PROC[m[2]!]}`);
      if (!sp) { unmatched.push(k); continue; }
      prefix = sp[0];
      const s = slot(sp[1], `${m[1]}.processor.${m[2]}`);
      if (m[3] === 'alpha') s.alpha = k; else if (m[3] === 'down.weight') s.down = k; else s.up = k;
    } else if (format === 'diffusers' && (m = /^(.*)\.(lora\.down\.weight|lora\.up\.weight|alpha)$/.exec(k))) {
      const sp = splitPrefix(m[1]!);
      if (!sp) { unmatched.push(k); continue; }
      prefix = sp[0];
      const s = slot(sp[1], m[1]!);
      if (m[2] === 'alpha') s.alpha = k; else if (m[2] === 'lora.down.weight') s.down = k; else s.up = k;
    } else if (format === 'peft' && (m = /^(.*)\.(lora_A\.weight|lora_B\.weight)$/.exec(k))) {
      const sp = splitPrefix(m[1]!);
      if (!sp) { unmatched.push(k); continue; }
      prefix = sp[0];
      const s = slot(sp[1], m[1]!);
      if (m[2] === 'lora_A.weight') s.down = k; else s.up = k;
    } else unmatched.push(k);
  }
  if (unmatched.length) {
    const examples = [...layers.keys()].slice(0, 3).map((p) => exampleKey(format, p, cfg)).join(', ');
    throw new LoraError(`LoRA (${format}): ${unmatched.length} key(s) match no Linear or Conv2d of the model: ${unmatched.slice(0, 8).join(', ')}${unmatched.length > 8 ? ', …' : ''}; expected keys such as ${examples} (${layers.size} modules)`, 'unmatched-keys');
  }
  const metaAlphas = metadata.lora_alphas ? new Map(Object.entries(JSON.parse(metadata.lora_alphas) as Record<string, number>)) : undefined;
  const modules = new Map<string, LoraModuleWeights>();
  const noAlpha: string[] = [];
  for (const [path, s] of parts) {
    if (!s.down || !s.up) throw new LoraError(`LoRA (${format}): ${path} has ${s.down ? 'a down' : 'an up'} weight but no ${s.down ? 'up' : 'down'} weight (expected both ${s.stem} down and up)`, 'rank-mismatch');
    const d = raw.get(s.down)!, u = raw.get(s.up)!;
    const layer = layers.get(path)!;
    checkShapes(path, layer, d.shape, u.shape);
    const rank = d.shape[0]!;
    let alpha: number | undefined;
    if (s.alpha) alpha = Number(raw.get(s.alpha)!.data[0]);
    else if (format === 'peft') alpha = opts.alphas?.get(path) ?? opts.alpha ?? metaAlphas?.get(path);
    else alpha = rank; // kohya: default = rank; diffusers: network_alpha None (factor 1)
    if (alpha === undefined) { noAlpha.push(path); continue; }
    modules.set(path, { down: Float64Array.from(d.data), downShape: [...d.shape], up: Float64Array.from(u.data), upShape: [...u.shape], alpha, alphaStored: !!s.alpha, stem: s.stem });
  }
  if (noAlpha.length) throw new LoraError(`LoRA (peft): no α for ${noAlpha.length} module(s) (${noAlpha.slice(0, 4).join(', ')}${noAlpha.length > 4 ? ', …' : ''}): PEFT keeps lora_alpha in adapter_config.json; pass { alpha: lora_alpha } (or alphas by module path)`, 'alpha-missing');
  return { format, prefix, modules, metadata, skipped };
}

function detectFormat(keys: readonly string[]): LoraFormat {
  if (keys.some((k) => k.endsWith('.lora_down.weight') || k.endsWith('.lora_up.weight'))) return 'kohya';
  if (keys.some((k) => k.endsWith('.lora_A.weight') || k.endsWith('.lora_B.weight'))) return 'peft';
  if (keys.some((k) => /\.processor\.to_(q|k|v|out)_lora\./.test(k))) return 'diffusers-old';
  if (keys.some((k) => k.endsWith('.lora.down.weight') || k.endsWith('.lora.up.weight'))) return 'diffusers';
  throw new LoraError(`LoRA: no key of a known layout (kohya '.lora_down.weight', diffusers '.lora.down.weight' or '.processor.to_q_lora.down.weight', PEFT '.lora_A.weight'); the file has e.g. ${keys.slice(0, 4).join(', ')}`, 'format');
}

function exampleKey(format: LoraFormat, path: string, cfg?: UnetConfig): string {
  switch (format) {
    case 'kohya': return `${kohyaName(path, cfg)}.lora_down.weight`;
    case 'peft': return `${path}.lora_A.weight`;
    case 'diffusers-old': return `<attention>.processor.to_q_lora.down.weight`;
    default: return `unet.${path}.lora.down.weight`;
  }
}

function checkShapes(path: string, layer: LoraTarget, d: readonly number[], u: readonly number[]): void {
  const w = layer.weight.shape, conv = layer instanceof Conv2d;
  const want = conv ? `down [r, ${w[1]}, ${w[2]}, ${w[3]}], up [${w[0]}, r, 1, 1]` : `down [r, ${w[1]}], up [${w[0]}, r]`;
  if (d[0] !== u[1]) throw new LoraError(`LoRA: ${path}: down has rank ${d[0]} ([${d}]), up has rank ${u[1]} ([${u}]); expected ${want} with one r`, 'rank-mismatch');
  const ok = conv
    ? d.length === 4 && u.length === 4 && d[1] === w[1] && d[2] === w[2] && d[3] === w[3] && u[0] === w[0] && u[2] === 1 && u[3] === 1
    : d.length === 2 && u.length === 2 && d[1] === w[1] && u[0] === w[0];
  if (!ok) throw new LoraError(`LoRA: ${path}: down [${d}], up [${u}] do not fit the module's weight [${w}]; expected ${want}`, 'shape-mismatch');
}

/** The keys and values of `w` in its format (the inverse of parseLora). */
export function serializeLora(w: LoraWeights): Record<string, TensorInput> {
  const out: Record<string, TensorInput> = {};
  const put = (k: string, shape: number[], data: Float64Array) => { out[k] = { dtype: 'F32', shape, data: Float32Array.from(data) }; };
  for (const [, m] of w.modules) {
    const [dk, uk, ak] = keysOf(w.format, m.stem);
    put(dk, m.downShape, m.down);
    put(uk, m.upShape, m.up);
    if (m.alphaStored) put(ak, [], Float64Array.of(m.alpha));
  }
  return out;
}

function keysOf(format: LoraFormat, stem: string): [string, string, string] {
  switch (format) {
    case 'kohya': return [`${stem}.lora_down.weight`, `${stem}.lora_up.weight`, `${stem}.alpha`];
    case 'peft': return [`${stem}.lora_A.weight`, `${stem}.lora_B.weight`, `${stem}.alpha`];
    case 'diffusers-old': return [`${stem}.down.weight`, `${stem}.up.weight`, `${stem}.alpha`];
    default: return [`${stem}.lora.down.weight`, `${stem}.lora.up.weight`, `${stem}.alpha`];
  }
}

/** Reads a LoRA file (any of the four layouts) against `model`. */
export function readLora(file: string, model: object, opts: LoraReadOptions = {}): LoraWeights {
  const f = readSafetensors(file);
  const raw = new Map([...f.tensors].map(([k, t]) => [k, { shape: t.shape, data: t.data as ArrayLike<number> }]));
  return parseLora(raw, model, opts, f.metadata);
}

/** Attaches the file's LoRA to `model` as one adapter (ranks and α per module) and puts its values into `store`. */
export function loadLora(file: string | LoraWeights, model: object, store: ParamStore, opts: LoraReadOptions & Omit<LoraOptions, 'rank' | 'targets'> = {}): { adapter: LoraAdapter; weights: LoraWeights } {
  const weights = typeof file === 'string' ? readLora(file, model, opts) : file;
  const paths = [...weights.modules.keys()];
  const adapter = attachLora(model, {
    ...opts, rank: 1, targets: (p) => weights.modules.has(p),
    ranks: new Map(paths.map((p) => [p, weights.modules.get(p)!.downShape[0]!])),
    alphas: new Map(paths.map((p) => [p, weights.modules.get(p)!.alpha])),
  });
  for (const [p, m] of weights.modules) {
    const l = adapter.layers.get(p)!;
    store.set(keyOf(l.down), m.down);
    store.set(keyOf(l.up), m.up);
  }
  adapter.setScale(store, 1);
  return { adapter, weights };
}

export interface LoraSaveOptions {
  format: LoraFormat;
  /** diffusers / PEFT key prefix (default 'unet.' for diffusers, 'base_model.model.' for PEFT). */
  prefix?: string;
  /** Write α keys (kohya always does; default true for kohya, and for the others where α ≠ rank). */
  alphaKeys?: boolean;
}

/** The adapter's current values in a LoraWeights of the given format (model = what it is attached to). */
export function adapterWeights(adapter: LoraAdapter, store: ParamStore, model: object, o: LoraSaveOptions): LoraWeights {
  const cfg = unetConfigOf(model);
  const prefix = o.prefix ?? (o.format === 'peft' ? 'base_model.model.' : o.format === 'kohya' ? '' : 'unet.');
  const modules = new Map<string, LoraModuleWeights>();
  const alphas: Record<string, number> = {};
  for (const [p, l] of adapter.layers) {
    const down = store.get(keyOf(l.down)), up = store.get(keyOf(l.up));
    if (!down || !up) throw new LoraError(`saveLora: no values for ${keyOf(l.down)} / ${keyOf(l.up)} in the store`, 'format');
    let stem: string;
    if (o.format === 'kohya') stem = kohyaName(p, cfg);
    else if (o.format === 'diffusers-old') {
      const m = /^(.*)\.(to_q|to_k|to_v|to_out\.0)$/.exec(p);
      if (!m) throw new LoraError(`saveLora (diffusers-old): ${p} is not an attention projection; that layout holds only to_q/to_k/to_v/to_out.0 (use 'diffusers')`, 'format');
      stem = `${prefix}${m[1]}.processor.${OLD_PROC_BACK[m[2]!]}`;
    } else stem = prefix + p;
    const alphaStored = o.format === 'peft' ? false : (o.alphaKeys ?? (o.format === 'kohya' || l.alpha !== l.rank));
    alphas[p] = l.alpha;
    modules.set(p, { down, downShape: [...l.down.shape], up, upShape: [...l.up.shape], alpha: l.alpha, alphaStored, stem });
  }
  return { format: o.format, prefix, modules, metadata: o.format === 'peft' ? { lora_alphas: JSON.stringify(alphas) } : {}, skipped: [] };
}

/** Writes the adapter as a LoRA file (atomic). PEFT's α goes to the metadata (`lora_alphas`, by module path). */
export function saveLora(file: string, adapter: LoraAdapter, store: ParamStore, model: object, o: LoraSaveOptions): void {
  const w = adapterWeights(adapter, store, model, o);
  writeSafetensors(file, serializeLora(w), w.metadata);
}
