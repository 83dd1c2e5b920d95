/** Loads an IP-Adapter checkpoint in the reference layout (safetensors, or the released `.bin` torch files whose
 * `{'image_proj': …, 'ip_adapter': …}` dicts flatten to the same dotted keys):
 *   image_proj.*                                      the projection model's state dict
 *   ip_adapter.{i}.to_k_ip.weight / to_v_ip.weight    cross-attention processors, i odd (see attention.ts)
 *   ip_adapter.{i}.to_{q,k,v,out}_lora.{down,up}.weight   FaceID / FaceID-Plus: LoRA on every processor, i even and odd
 * Every file key is accounted for: loaded, applied as FaceID's LoRA (lora.ts; returned as entries too), or reported. Problems (missing keys, unmatched
 * keys, shapes of another UNet or adapter width, IP keys on a self-attention index, LoRA of the wrong rank) are all
 * collected and thrown together as one IpAdapterCheckpointError that lists what was expected. */
import type { ParamStore } from '../../compiler/index';
import { openTensorFile, type TensorFile } from '../io/tensorFile';
import { materialize, saveParams } from '../weights';
import type { LoraAdapter } from '../nn/lora';
import type { AttentionProcessor } from './attention';
import { IpAdapterCheckpointError } from './errors';
import { attachFaceIdLora, type FaceIdLoraOptions } from './lora';
import type { IpAdapter } from './model';

export type LoraModule = 'to_q' | 'to_k' | 'to_v' | 'to_out.0';

/** One LoRA pair of a FaceID checkpoint, named by the attention module it adapts: y = W x + up(down(x)) (the
 * reference's LoRALinearLayer with network_alpha None: scale 1, times the processor's lora_scale, 1 by default). */
export interface FaceIdLoraEntry {
  index: number;
  /** e.g. `down_blocks.1.attentions.0.transformer_blocks.0.attn1` */
  layer: string;
  module: LoraModule;
  rank: number;
  down: { shape: readonly number[]; data: Float64Array };
  up: { shape: readonly number[]; data: Float64Array };
}

export interface IpAdapterLoadReport {
  loaded: string[];
  /** FaceID's LoRA, validated against the UNet (empty for a checkpoint without one). */
  lora: FaceIdLoraEntry[];
  /** The LoRA attached to the adapter's UNet (also `adapter.lora`), when the checkpoint has one and `lora` is not false. */
  loraAdapter?: LoraAdapter;
  /** Filled instead of throwing when strict is false. */
  problems: string[];
}

const LORA_KEY = /^ip_adapter\.(\d+)\.(to_q|to_k|to_v|to_out)_lora\.(down|up)\.weight$/;
const IP_KEY = /^ip_adapter\.(\d+)\.(to_k_ip|to_v_ip)\.weight$/;
const fmt = (s: readonly number[]) => `[${s.join(', ')}]`;
const same = (a: readonly number[], b: readonly number[]) => a.length === b.length && a.every((d, i) => d === b[i]);

function loraShapes(p: AttentionProcessor, module: LoraModule, rank: number): { down: number[]; up: number[] } {
  const inF = module === 'to_k' || module === 'to_v' ? p.kvInput : p.width;
  return { down: [rank, inF], up: [p.width, rank] };
}

export interface IpAdapterLoadOptions {
  /** Throw on any problem (default true); false fills `report.problems` instead. */
  strict?: boolean;
  /** FaceID's LoRA: attached to the adapter's UNet with its values in `store` (default), with these options (the
   * reference's `lora_scale` is `scale`), or not applied (false: the entries are still validated and returned). */
  lora?: boolean | FaceIdLoraOptions;
}

export function loadIpAdapter(store: ParamStore, file: string | TensorFile, adapter: IpAdapter, opts: IpAdapterLoadOptions = {}): IpAdapterLoadReport {
  const f = typeof file === 'string' ? openTensorFile(file) : file;
  const params = adapter.registry.params, procs = adapter.processors, cfg = adapter.config;
  const report: IpAdapterLoadReport = { loaded: [], lora: [], problems: [] };
  const unexpected: string[] = [], widthProblems: string[] = [];
  const read = (name: string) => Float64Array.from(f.header.get(name)!.dtype === 'F64' ? (f.read(name).data as Float64Array) : f.readAsFloat32(name));
  const loraParts = new Map<string, Partial<Record<'down' | 'up', { shape: readonly number[]; data: Float64Array }>>>();
  try {
    for (const name of f.names()) {
      const shape = f.header.get(name)!.shape;
      const t = params.get(adapter.prefix + name);
      if (t) {
        if (!same(shape, t.shape)) {
          const ip = IP_KEY.exec(name), p = ip ? procs[Number(ip[1])] : undefined;
          widthProblems.push(p
            ? `${name} has shape ${fmt(shape)}, this UNet's processor ${p.index} (${p.layer}, width ${p.width}, context ${adapter.contextDim}) expects ${fmt(t.shape)}: a checkpoint for another UNet width`
            : `${name} has shape ${fmt(shape)}, the ${cfg.kind} adapter expects ${fmt(t.shape)}: a checkpoint for another adapter or context width`);
          continue;
        }
        store.set(adapter.prefix + name, read(name));
        report.loaded.push(adapter.prefix + name);
        continue;
      }
      const ip = IP_KEY.exec(name);
      if (ip) {
        const p = procs[Number(ip[1])];
        widthProblems.push(p
          ? `${name} is on processor ${p.index} (${p.layer}), a self-attention: IP keys belong to the cross-attention processors, the odd indices 1, 3, … (diffusers counts attn1 and attn2 of every block, down → up → mid)`
          : `${name}: this UNet has ${procs.length} attention processors (indices 0–${procs.length - 1}); a checkpoint for a UNet with more transformer layers`);
        continue;
      }
      const lm = LORA_KEY.exec(name);
      if (lm) {
        const index = Number(lm[1]), module = (lm[2] === 'to_out' ? 'to_out.0' : lm[2]) as LoraModule, part = lm[3] as 'down' | 'up', p = procs[index];
        if (!p) { widthProblems.push(`${name}: this UNet has ${procs.length} attention processors (indices 0–${procs.length - 1})`); continue; }
        if (cfg.loraRank === undefined) { unexpected.push(`${name} (LoRA keys, but the ${cfg.kind} config has no loraRank)`); continue; }
        const want = loraShapes(p, module, cfg.loraRank)[part];
        if (!same(shape, want)) {
          widthProblems.push(`${name} has shape ${fmt(shape)}, processor ${index} (${p.layer}, width ${p.width}) with LoRA rank ${cfg.loraRank} expects ${fmt(want)}`);
          continue;
        }
        const key = `${index}:${module}`;
        loraParts.set(key, { ...loraParts.get(key), [part]: { shape, data: read(name) } });
        continue;
      }
      unexpected.push(name);
    }
  } finally {
    if (typeof file === 'string') f.close();
  }
  const loaded = new Set(report.loaded);
  const missing = [...params.keys()].filter((k) => !loaded.has(k)).map((k) => k.slice(adapter.prefix.length)).filter((k) => !widthProblems.some((w) => w.startsWith(`${k} `)));
  if (cfg.loraRank !== undefined) {
    for (const p of procs) for (const module of ['to_q', 'to_k', 'to_v', 'to_out.0'] as LoraModule[]) for (const part of ['down', 'up'] as const) {
      const got = loraParts.get(`${p.index}:${module}`)?.[part];
      const name = `ip_adapter.${p.index}.${module === 'to_out.0' ? 'to_out' : module}_lora.${part}.weight`;
      if (!got && !widthProblems.some((w) => w.startsWith(`${name} `))) missing.push(name);
    }
    for (const [key, v] of loraParts) {
      if (!v.down || !v.up) continue;
      const [i, module] = key.split(':'), p = procs[Number(i)];
      report.lora.push({ index: p.index, layer: p.layer, module: module as LoraModule, rank: v.down.shape[0], down: v.down, up: v.up });
    }
    report.lora.sort((a, b) => a.index - b.index || a.module.localeCompare(b.module));
  }
  const list = (xs: string[]) => xs.slice(0, 12).join(', ') + (xs.length > 12 ? `, … (${xs.length} in all)` : '');
  if (missing.length) report.problems.push(`missing ${missing.length}: ${list(missing)}`);
  if (unexpected.length) report.problems.push(`unmatched ${unexpected.length}: ${list(unexpected)}`);
  report.problems.push(...widthProblems.slice(0, 12));
  if (widthProblems.length > 12) report.problems.push(`… ${widthProblems.length} shape or index problems in all`);
  if ((opts.strict ?? true) && report.problems.length) throw new IpAdapterCheckpointError(f.path, report.problems);
  // a LoRA of an earlier load belongs to that checkpoint: replaced (or removed), never added to
  adapter.lora?.detach();
  adapter.lora = undefined;
  if (report.lora.length && opts.lora !== false) {
    adapter.lora = report.loraAdapter = attachFaceIdLora(adapter.unet, store, report.lora, { name: `${adapter.prefix}faceid_lora`, ...(typeof opts.lora === 'object' ? opts.lora : {}) });
  }
  return report;
}

/** FaceID's LoRA entries as a diffusers-format LoRA state dict, `<layer>.<module>.lora.down.weight` / `.lora.up.weight`
 * (alpha absent = scale 1, the reference's network_alpha None), e.g. to save them with the LoRA file tools.
 * loadIpAdapter applies them itself (attachFaceIdLora). */
export function faceIdLoraAsDiffusers(entries: readonly FaceIdLoraEntry[]): Map<string, { shape: readonly number[]; data: Float64Array }> {
  const out = new Map<string, { shape: readonly number[]; data: Float64Array }>();
  for (const e of entries) {
    out.set(`${e.layer}.${e.module}.lora.down.weight`, e.down);
    out.set(`${e.layer}.${e.module}.lora.up.weight`, e.up);
  }
  return out;
}

/** Writes the adapter's values from `store` (initial values where absent) in the reference layout: `image_proj.*`,
 * `ip_adapter.{i}.*`, without the adapter's key prefix, so `loadIpAdapter` (and the reference) read it back. */
export function saveIpAdapter(file: string, store: ParamStore, adapter: IpAdapter, opts: { dtype?: 'F32' | 'F64' | 'F16' | 'BF16' } = {}): void {
  materialize(store, adapter.registry);
  const n = adapter.prefix.length;
  const params = new Map([...adapter.registry.params].map(([k, t]) => [k.slice(n), t]));
  const values = new Map([...adapter.registry.params.keys()].map((k) => [k.slice(n), store.get(k)!]));
  saveParams(file, values, params, { dtype: opts.dtype, metadata: { format: 'ip-adapter', kind: adapter.config.kind } });
}
