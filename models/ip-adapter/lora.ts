/** FaceID's LoRA, applied (attention_processor_faceid.py @62e4af9, LoRAAttnProcessor / LoRAIPAttnProcessor): every
 * attention processor adds `lora_scale · up(down(x))` to to_q, to_k, to_v (on the text context only: the IP tokens
 * go through to_k_ip / to_v_ip unadapted) and to_out.0. diffusers v0.25.1's LoRALinearLayer with network_alpha None
 * scales by 1, which is the compiler-level LoRA's α = r; `lora_scale` (1 by default) is the LoRA adapter's run-time
 * scale (models/nn/lora.ts), so changing it, or setting it per block, never recompiles. */
import type { ParamStore } from '../../compiler/index';
import { attachLora, findLayers, keyOf, type LoraAdapter } from '../nn/lora';
import type { FaceIdLoraEntry } from './checkpoint';
import { IpAdapterCheckpointError } from './errors';

export interface FaceIdLoraOptions {
  /** The LoRA adapter's name, the prefix of its parameter keys (default 'faceid_lora'). */
  name?: string;
  /** The reference's `lora_scale` (default 1; 0 is FaceID without its LoRA). */
  scale?: number;
  /** Per block group overrides of the scale (`{ 'up_blocks.0': 0 }`, see LoraAdapter.scaleValues). */
  blocks?: Readonly<Record<string, number>>;
  mode?: 'operand' | 'epilogue';
}

const fmt = (s: readonly number[]) => `[${s.join(', ')}]`;

/** Attaches `entries` (loadIpAdapter's `report.lora`, or any entries naming attention modules of `model`) as one
 * frozen LoRA adapter, with each module's rank from its tensors, and puts their values and the scale into `store`.
 * The model's key prefix (`unet.` in the pipelines) is taken from the layer names, so block groups read
 * `down_blocks.1` … `mid_block`. A layer `model` does not have, or tensors of another shape, throw
 * IpAdapterCheckpointError naming the module and what it expects. */
export function attachFaceIdLora(model: object, store: ParamStore, entries: readonly FaceIdLoraEntry[], o: FaceIdLoraOptions = {}): LoraAdapter {
  const at = /^(.*?)(?:down_blocks|up_blocks|mid_block)\./.exec(entries[0]?.layer ?? '');
  const prefix = at ? at[1] : '';
  const pathOf = (e: FaceIdLoraEntry) => `${e.layer}.${e.module}`.slice(prefix.length);
  const layers = findLayers(model, prefix), ranks = new Map<string, number>(), problems: string[] = [];
  for (const e of entries) {
    const p = pathOf(e);
    if (!`${e.layer}.`.startsWith(prefix) || !layers.has(p)) problems.push(`LoRA for ${e.layer}.${e.module} (processor ${e.index}): the model has no such Linear (e.g. ${[...layers.keys()].filter((k) => /\.attn[12]\.to_q$/.test(k)).slice(0, 3).join(', ')})`);
    else if (ranks.has(p)) problems.push(`LoRA for ${p} given twice`);
    else ranks.set(p, e.down.shape[0]);
  }
  if (!entries.length) problems.push('no LoRA entries');
  if (problems.length) throw new IpAdapterCheckpointError('FaceID LoRA', problems);
  const lora = attachLora(model, {
    name: o.name ?? 'faceid_lora', rank: entries[0].rank, ranks, targets: (p) => ranks.has(p), stripPrefix: prefix, trainable: false, mode: o.mode,
  });
  for (const e of entries) {
    const l = lora.layers.get(pathOf(e))!;
    for (const [part, t, want] of [['down', e.down, l.down], ['up', e.up, l.up]] as const) {
      if (t.shape.join() !== want.shape.join() || t.data.length !== want.shape.reduce((a, b) => a * b, 1)) {
        problems.push(`LoRA ${part} of ${l.path} (processor ${e.index}) has shape ${fmt(t.shape)}, the layer ${fmt(l.layer.weight.shape)} with rank ${l.rank} expects ${fmt(want.shape)}`);
      } else store.set(keyOf(want), t.data);
    }
  }
  if (problems.length) {
    lora.detach();
    throw new IpAdapterCheckpointError('FaceID LoRA', problems);
  }
  lora.setScale(store, o.scale ?? 1, o.blocks ?? {});
  return lora;
}
