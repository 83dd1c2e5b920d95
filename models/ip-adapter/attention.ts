/** Decoupled cross-attention (IPAttnProcessor2_0, attention_processor.py @62e4af9) through the UNet's
 * cross-attention hook, the same hook PuLID's ID attention uses (models/pulid/id-attention.ts): per attn2 layer
 * `to_k_ip` / `to_v_ip` (no bias, context width → layer width) make K′, V′ from the image tokens, and the layer's
 * attention output (before heads-merge and to_out.0) becomes
 *     out + s · mask · Attn(Q, K′, V′)
 * where s is the layer's scale (one number, or per block: InstantStyle) and mask an optional spatial mask.
 *
 * Processor numbering (the checkpoint's `ip_adapter.{i}`): the reference loads `ModuleList(unet.attn_processors
 * .values())`, which lists EVERY attention processor of the UNet, self-attention included, in diffusers' module
 * order: down blocks, up blocks, then the mid block, and within each transformer block attn1 before attn2. So
 * attn2 layers have the odd indices (plain, Plus, portrait keys are only on odd indices) and FaceID's self-attention
 * LoRA sits on the even ones. `attentionProcessors(unet)` gives that list. */
import { avgPool2d, linear, type Tensor } from '../../compiler/index';
import { Linear, type CrossAttentionContext, type CrossAttentionHook, type ParamScope } from '../nn/index';
import type { UNet2DConditionModel } from '../unet/index';
import { IpAdapterInputError } from './errors';

export interface AttentionProcessor {
  /** diffusers' processor index (the `{i}` of `ip_adapter.{i}.*`). */
  index: number;
  /** The attention module's key prefix, e.g. `down_blocks.1.attentions.0.transformer_blocks.0.attn2`. */
  layer: string;
  kind: 'self' | 'cross';
  /** Hidden size (heads · headDim). */
  width: number;
  /** Input width of to_k / to_v: the layer width (self) or the UNet's context width (cross). */
  kvInput: number;
}

/** Every attention processor of the UNet in diffusers' `attn_processors` order (down, up, mid; attn1, attn2). */
export function attentionProcessors(unet: UNet2DConditionModel): AttentionProcessor[] {
  const out: AttentionProcessor[] = [];
  const ctx = unet.config.crossAttentionDim;
  const visit = (ts: readonly { blocks: readonly { attn1: { layer: string; heads: number; headDim: number }; attn2: { layer: string; heads: number; headDim: number } }[] }[]) => {
    for (const t of ts) for (const b of t.blocks) {
      const w = b.attn1.heads * b.attn1.headDim;
      out.push({ index: out.length, layer: b.attn1.layer, kind: 'self', width: w, kvInput: w });
      out.push({ index: out.length, layer: b.attn2.layer, kind: 'cross', width: b.attn2.heads * b.attn2.headDim, kvInput: ctx });
    }
  };
  for (const st of unet.down) visit(st.attentions);
  for (const st of unet.up) visit(st.attentions);
  visit([unet.mid.attention]);
  return out;
}

/** Per-layer IP scale: one value for every layer, or per block. In the block form, a layer takes the value of the
 * longest key that prefixes its name (`up_blocks.0.attentions.1` covers that block's transformer layers) and
 * `default` (0, as diffusers' set_ip_adapter_scale does for unnamed blocks) otherwise. Tensors make the scale a
 * run-time value (no recompilation to change it). */
export type IpScale = number | Tensor | { default?: number | Tensor; blocks: Readonly<Record<string, number | Tensor>> };

/** diffusers' nested per-block form (`{ down: { block_2: [0, 1] }, up: { block_0: [0, 1, 0] }, mid: 0 }`, one value
 * per transformer of the block) converted to IpScale's block form. */
export function blockScales(spec: { down?: Record<string, readonly number[] | number>; up?: Record<string, readonly number[] | number>; mid?: number }): IpScale {
  const blocks: Record<string, number> = {};
  for (const side of ['down', 'up'] as const) for (const [name, v] of Object.entries(spec[side] ?? {})) {
    const m = /^block_(\d+)$/.exec(name);
    if (!m) throw new IpAdapterInputError(`blockScales: '${side}.${name}' is not block_<n> (expected e.g. { up: { block_0: [0, 1, 0] } })`);
    if (typeof v === 'number') blocks[`${side}_blocks.${m[1]}.`] = v;
    else v.forEach((s, j) => { blocks[`${side}_blocks.${m[1]}.attentions.${j}.`] = s; });
  }
  if (spec.mid !== undefined) blocks['mid_block.'] = spec.mid;
  return { default: 0, blocks };
}

/** InstantStyle's SDXL presets: style only (up_blocks.0.attentions.1), or style and layout (+ down_blocks.2.attentions.1). */
export function instantStyle(which: 'style' | 'style+layout', s = 1): IpScale {
  return blockScales(which === 'style' ? { up: { block_0: [0, s, 0] } } : { up: { block_0: [0, s, 0] }, down: { block_2: [0, s] } });
}

/** The layer's scale. Layer names may carry a model key prefix (`unet.down_blocks…`); block keys are matched from
 * the first `down_blocks` / `up_blocks` / `mid_block` component on. */
export function layerScale(scale: IpScale, layer: string): number | Tensor {
  if (typeof scale === 'number' || !('blocks' in scale)) return scale as number | Tensor;
  const at = /(?:^|\.)((?:down_blocks|up_blocks|mid_block)\..*)$/.exec(layer);
  const name = `${at ? at[1] : layer}.`;
  let best = -1, v: number | Tensor = scale.default ?? 0;
  for (const [k, s] of Object.entries(scale.blocks)) {
    const key = k.endsWith('.') ? k : `${k}.`;
    if (name.startsWith(key) && key.length > best) { best = key.length; v = s; }
  }
  return v;
}

/** A spatial mask [B, 1, H, W] (1: the image prompt applies there) brought to a layer with Lq = h·w queries by average
 * pooling over f×f cells, f = √(H·W / Lq): [B, 1, Lq, 1]. */
export function maskForLayer(mask: Tensor, lq: number, layer: string): Tensor {
  const [b, c, h, w] = mask.shape;
  const f = Math.round(Math.sqrt((h * w) / lq));
  if (c !== 1 || f < 1 || (h / f) * (w / f) !== lq || h % f || w % f) {
    throw new IpAdapterInputError(`IP-Adapter mask [${mask.shape}] does not fit layer ${layer} with ${lq} queries: expected [B, 1, H, W] with H·W = ${lq}·f² for an integer f dividing H and W (the latent size works for every layer)`);
  }
  const m = f === 1 ? mask : avgPool2d(mask, f);
  return m.reshape([b, 1, lq, 1]);
}

export interface IpAttentionHookOptions {
  /** The image tokens [B, T, contextDim]. */
  tokens: Tensor;
  scale?: IpScale;
  mask?: Tensor;
  /** Called once per layer with the hook's context (tests, attention maps). */
  observe?: (c: CrossAttentionContext) => void;
}

/** to_k_ip / to_v_ip of every cross-attention processor, under `ip_adapter.{i}` with diffusers' odd indices. */
export class IpAttention {
  readonly layers: { processor: AttentionProcessor; toK: Linear; toV: Linear }[] = [];
  private byLayer = new Map<string, { toK: Linear; toV: Linear }>();
  /** `scope` is normally `registry.scope('ip_adapter')`. */
  constructor(s: ParamScope, readonly processors: readonly AttentionProcessor[], readonly contextDim: number) {
    for (const p of processors) {
      if (p.kind !== 'cross') continue;
      const toK = new Linear(s.child(`${p.index}.to_k_ip`), contextDim, p.width, { bias: false });
      const toV = new Linear(s.child(`${p.index}.to_v_ip`), contextDim, p.width, { bias: false });
      this.layers.push({ processor: p, toK, toV });
      this.byLayer.set(p.layer, { toK, toV });
    }
  }

  /** The IP term of one layer, head-split [B, h, Lq, d], before scale and mask. */
  static term(c: CrossAttentionContext, tokens: Tensor, toK: Tensor, toV: Tensor): Tensor {
    return c.attend(c.splitHeads(linear(tokens, toK)), c.splitHeads(linear(tokens, toV)));
  }

  hook(o: IpAttentionHookOptions): CrossAttentionHook {
    const [, , w] = o.tokens.shape;
    if (w !== this.contextDim) throw new IpAdapterInputError(`IP-Adapter tokens have width ${w}; the UNet's context width is ${this.contextDim}`);
    return (c: CrossAttentionContext) => {
      o.observe?.(c);
      const p = this.byLayer.get(c.layer);
      if (!p) throw new IpAdapterInputError(`IP-Adapter: no to_k_ip/to_v_ip for layer ${c.layer} (built for another UNet?)`);
      const s = layerScale(o.scale ?? 1, c.layer);
      if (s === 0) return undefined;
      let ip = IpAttention.term(c, o.tokens, p.toK.weight, p.toV.weight);
      if (o.mask) ip = ip.mul(maskForLayer(o.mask, c.q.shape[2], c.layer) as never) as Tensor;
      return c.out.add(s === 1 ? ip : (ip.mul(s as never) as never));
    };
  }
}

/** Several adapters at once (two IP-Adapters, an IP-Adapter and PuLID's ID attention): each hook sees the output the
 * previous ones made as `out` and adds its own term, so the terms sum (diffusers' multi-IP-Adapter behaviour). */
export function composeCrossAttentionHooks(...hooks: readonly CrossAttentionHook[]): CrossAttentionHook {
  return (c: CrossAttentionContext) => {
    let out = c.out;
    for (const h of hooks) {
      const r = h({ ...c, out });
      if (r) out = r;
    }
    return out === c.out ? undefined : out;
  };
}
