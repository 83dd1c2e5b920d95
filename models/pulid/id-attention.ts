/** PuLID's ID attention through the UNet's cross-attention hook (IP-Adapter style, ToTheBeginning/PuLID
 * `pulid/attention_processor.py`): per attn2 layer, `id_to_k` / `id_to_v` (no bias, contextDim → layer width)
 * make K′, V′ from the ID tokens, and the layer's attention output (before heads-merge and to_out.0) becomes
 *   plain:    out + s · Attn(Q, K′, V′)
 *   ortho:    out + s · (id − proj),           proj = Σ_L(out·id) / Σ_L(out·out) · out   (per channel, over tokens)
 *   ortho_v2: out + s · (id + (m − 1) · proj), m = Σ_{j<5} mean_heads softmax(Q K′ᵀ)_j  (unscaled logits, as there)
 * `numZero` (the reference's NUM_ZERO) appends that many all-zero ID tokens before id_to_k / id_to_v: zero keys and
 * values (no bias) that take softmax mass from the real tokens, so the ID term weakens (and ortho_v2's m shrinks).
 * Keys follow the reference checkpoint: `id_adapter_attn_layers.<i>.id_to_k.weight`, where <i> indexes diffusers'
 * `unet.attn_processors` (down blocks, up blocks, then mid block; attn1 and attn2 alternate, so attn2 layers have the
 * odd indices 1, 3, 5, …). */
import { concat, linear, sdpa, softmax, zeros, type Tensor } from '../../compiler/index';
import { Linear, type CrossAttentionContext, type CrossAttentionHook, type ParamScope } from '../nn/index';
import type { UNet2DConditionModel } from '../unet/index';

export type IdAttentionMode = 'plain' | 'ortho' | 'ortho_v2';
export const ID_ATTENTION_MODES: readonly IdAttentionMode[] = ['plain', 'ortho', 'ortho_v2'];

/** The UNet's attn2 layers in diffusers' attn_processors order (down, up, mid). */
export function crossAttentionLayers(unet: UNet2DConditionModel): { layer: string; width: number }[] {
  const out: { layer: string; width: number }[] = [];
  const visit = (ts: { blocks: { attn2: { layer: string; heads: number; headDim: number } }[] }[]) => {
    for (const t of ts) for (const b of t.blocks) out.push({ layer: b.attn2.layer, width: b.attn2.heads * b.attn2.headDim });
  };
  for (const st of unet.down) visit(st.attentions);
  for (const st of unet.up) visit(st.attentions);
  visit([unet.mid.attention]);
  return out;
}

/** The ID-attention term, in head-split layout: `out` the text attention [B, h, Lq, d], `q` [B, h, Lq, d],
 * `kId`, `vId` [B, h, T, d]. Returns the new attention output. */
export function idAttentionOutput(out: Tensor, q: Tensor, kId: Tensor, vId: Tensor, scale: number, mode: IdAttentionMode, idScale: number | Tensor,
  bodyTokens = 5): Tensor {
  const idOut = sdpa(q, kId, vId, { scale });
  if (mode === 'plain') return out.add(idOut.mul(idScale as never) as never);
  const proj = out.mul(idOut as never).sum(2, true).div(out.square().sum(2, true) as never).mul(out as never) as Tensor;
  if (mode === 'ortho') return out.add(idOut.sub(proj as never).mul(idScale as never) as never);
  const attn = softmax(q.matmul(kId.mT() as never) as Tensor, -1).mean(1, true); // [B, 1, Lq, T]
  const mass = attn.narrow(3, 0, Math.min(bodyTokens, attn.shape[3])).sum(3, true); // [B, 1, Lq, 1]
  return out.add(idOut.add(proj.mul(mass.sub(1) as never) as never).mul(idScale as never) as never);
}

/** [B, T, D] → [B, T + n, D] with n zero tokens (NUM_ZERO). */
export function padZeroTokens(tokens: Tensor, n: number): Tensor {
  if (!Number.isInteger(n) || n < 0) throw new RangeError(`numZero: a whole number ≥ 0, not ${n}`);
  if (n === 0) return tokens;
  const [b, , d] = tokens.shape;
  return concat([tokens, zeros([b, n, d]) as Tensor], 1);
}

/** One layer's ID attention (IDAttnProcessor2_0 after the text attention): K′, V′ from the ID tokens (plus
 * `numZero` zero tokens), then `idAttentionOutput`. */
export function idAttentionLayer(c: CrossAttentionContext, toK: Linear, toV: Linear, o: IdAttentionHookOptions & { idTokens: Tensor }, bodyTokens = 5): Tensor {
  const tokens = padZeroTokens(o.idTokens, o.numZero ?? 0);
  const kId = c.splitHeads(linear(tokens, toK.weight)), vId = c.splitHeads(linear(tokens, toV.weight));
  return idAttentionOutput(c.out, c.q, kId, vId, c.scale, o.mode ?? 'plain', o.idScale ?? 1, bodyTokens);
}

export interface RecordedAttention { layer: string; q: Tensor; k: Tensor }

export interface IdAttentionHookOptions {
  /** [B, T, contextDim]; absent: the layer is left unchanged (text-only path), but q/k are still recorded. */
  idTokens?: Tensor;
  mode?: IdAttentionMode;
  idScale?: number | Tensor;
  /** Zero tokens appended to the ID tokens (the reference's NUM_ZERO; default 0). */
  numZero?: number;
  /** Receives every layer's Q and text K (for the alignment losses). */
  record?: RecordedAttention[];
}

export class IdAttention {
  readonly layers: { layer: string; index: number; toK: Linear; toV: Linear }[] = [];
  private byLayer = new Map<string, { toK: Linear; toV: Linear }>();
  /** `scope` is normally `registry.scope('id_adapter_attn_layers')`. */
  constructor(s: ParamScope, unet: UNet2DConditionModel, readonly bodyTokens = 5) {
    const ctx = unet.config.crossAttentionDim;
    crossAttentionLayers(unet).forEach(({ layer, width }, j) => {
      const index = 2 * j + 1;
      const toK = new Linear(s.child(`${index}.id_to_k`), ctx, width, { bias: false });
      const toV = new Linear(s.child(`${index}.id_to_v`), ctx, width, { bias: false });
      this.layers.push({ layer, index, toK, toV });
      this.byLayer.set(layer, { toK, toV });
    });
  }

  /** The cross-attention hook for one UNet evaluation. */
  hook(o: IdAttentionHookOptions): CrossAttentionHook {
    return (c: CrossAttentionContext) => {
      o.record?.push({ layer: c.layer, q: c.q, k: c.k });
      if (!o.idTokens) return undefined;
      const p = this.byLayer.get(c.layer);
      if (!p) throw new Error(`IdAttention: no id_to_k/id_to_v for layer ${c.layer}`);
      return idAttentionLayer(c, p.toK, p.toV, { ...o, idTokens: o.idTokens }, this.bodyTokens);
    };
  }
}
