/** Attention (diffusers' `Attention`: to_q, to_k, to_v, to_out.0), the GEGLU feed-forward, the transformer
 * block and Transformer2DModel with linear projections (SDXL), plus the cross-attention hook point. */
import { geglu, sdpa, type Tensor } from '../../compiler/index';
import { GroupNorm, LayerNorm, Linear } from './layers';
import type { ParamScope } from './module';
// Globals are bound once per module: every global lookup is slow inside jest's vm contexts.
const M = Math;

/** What a cross-attention hook sees, at one attn2 layer for one UNet evaluation. All head-split tensors
 * are laid out [B, heads, L, headDim]. */
export interface CrossAttentionContext {
  /** The attention module's key prefix, e.g. `down_blocks.1.attentions.0.transformer_blocks.0.attn2`
   * (unique per layer: use it to name per-layer parameters such as `<layer>.id_to_k.weight`). */
  readonly layer: string;
  /** The normed image tokens fed to to_q: [B, Lq, queryDim]. */
  readonly hidden: Tensor;
  /** The encoder hidden states (text context) fed to to_k / to_v: [B, Lk, crossDim]. */
  readonly context: Tensor;
  /** Query after to_q, key and value after to_k / to_v, head-split. */
  readonly q: Tensor;
  readonly k: Tensor;
  readonly v: Tensor;
  readonly heads: number;
  readonly headDim: number;
  /** The softmax scale, 1/sqrt(headDim). */
  readonly scale: number;
  /** `sdpa(q, k, v)`, the layer's text attention before heads are merged and to_out is applied. */
  readonly out: Tensor;
  /** [B, L, heads*headDim] → [B, heads, L, headDim]. */
  splitHeads(x: Tensor): Tensor;
  /** [B, heads, L, headDim] → [B, L, heads*headDim]. */
  mergeHeads(x: Tensor): Tensor;
  /** `sdpa(q, k, v, {scale})` with this layer's query against other keys and values (head-split). */
  attend(k: Tensor, v: Tensor): Tensor;
}

/** Returns the attention output to use instead of `ctx.out` (same shape [B, heads, Lq, headDim]), or
 * nothing to keep it. Whatever it returns goes through heads-merge and to_out.0, so PuLID's
 * `out + idScale * attend(K_id, V_id)` lands exactly where IP-Adapter-style attention puts it. */
export type CrossAttentionHook = (ctx: CrossAttentionContext) => Tensor | void;

export interface AttentionHooks {
  crossAttention?: CrossAttentionHook;
  /** Wraps each unit of the network (a transformer layer here, a resnet block in the UNet), e.g. to make it a
   * checkpoint segment (models/pulid/losses.ts); the identity when absent. */
  unit?: (body: () => Tensor, inputs: readonly Tensor[]) => Tensor;
}

export interface AttentionOptions {
  queryDim: number;
  /** Width of the context for cross-attention; absent for self-attention. */
  crossDim?: number;
  heads: number;
  headDim: number;
  /** to_q/to_k/to_v biases (the VAE's attention has them; the UNet's do not). */
  qkvBias?: boolean;
}

export class Attention {
  readonly toQ: Linear;
  readonly toK: Linear;
  readonly toV: Linear;
  readonly toOut: Linear;
  readonly heads: number;
  readonly headDim: number;
  readonly isCross: boolean;
  readonly layer: string;
  constructor(s: ParamScope, o: AttentionOptions) {
    const inner = o.heads * o.headDim, bias = o.qkvBias ?? false;
    this.heads = o.heads;
    this.headDim = o.headDim;
    this.isCross = o.crossDim !== undefined;
    this.layer = s.prefix;
    this.toQ = new Linear(s.child('to_q'), o.queryDim, inner, { bias });
    this.toK = new Linear(s.child('to_k'), o.crossDim ?? o.queryDim, inner, { bias });
    this.toV = new Linear(s.child('to_v'), o.crossDim ?? o.queryDim, inner, { bias });
    this.toOut = new Linear(s.child('to_out.0'), inner, o.queryDim);
  }

  splitHeads(x: Tensor): Tensor {
    const [b, l] = x.shape;
    return x.reshape([b, l, this.heads, this.headDim]).permute([0, 2, 1, 3]);
  }
  mergeHeads(x: Tensor): Tensor {
    const [b, , l] = x.shape;
    return x.permute([0, 2, 1, 3]).reshape([b, l, this.heads * this.headDim]);
  }

  /** x [B, Lq, queryDim]; context [B, Lk, crossDim] for cross-attention (self-attention when absent). */
  forward(x: Tensor, context?: Tensor, hooks?: AttentionHooks): Tensor {
    const ctxIn = context ?? x;
    const scale = 1 / M.sqrt(this.headDim);
    const q = this.splitHeads(this.toQ.forward(x));
    const k = this.splitHeads(this.toK.forward(ctxIn));
    const v = this.splitHeads(this.toV.forward(ctxIn));
    let out = sdpa(q, k, v, { scale });
    const hook = this.isCross ? hooks?.crossAttention : undefined;
    if (hook) {
      const replaced = hook({
        layer: this.layer, hidden: x, context: ctxIn, q, k, v, heads: this.heads, headDim: this.headDim, scale, out,
        splitHeads: (t) => this.splitHeads(t), mergeHeads: (t) => this.mergeHeads(t), attend: (kk, vv) => sdpa(q, kk, vv, { scale }),
      });
      if (replaced) {
        if (replaced.shape.join() !== out.shape.join()) throw new Error(`crossAttention hook at ${this.layer}: returned [${replaced.shape}], expected [${out.shape}]`);
        out = replaced;
      }
    }
    return this.toOut.forward(this.mergeHeads(out));
  }
}

/** diffusers FeedForward with GEGLU: ff.net.0.proj (dim → 2·inner), GEGLU, ff.net.2 (inner → dim). */
export class FeedForward {
  readonly proj: Linear;
  readonly out: Linear;
  constructor(s: ParamScope, dim: number, mult = 4) {
    this.proj = new Linear(s.child('net.0.proj'), dim, dim * mult * 2);
    this.out = new Linear(s.child('net.2'), dim * mult, dim);
  }
  forward(x: Tensor): Tensor { return this.out.forward(geglu(this.proj.forward(x))); }
}

/** norm1 → attn1 (self) → norm2 → attn2 (cross, hooked) → norm3 → ff, each with a residual. */
export class BasicTransformerBlock {
  readonly norm1: LayerNorm; readonly attn1: Attention;
  readonly norm2: LayerNorm; readonly attn2: Attention;
  readonly norm3: LayerNorm; readonly ff: FeedForward;
  constructor(s: ParamScope, dim: number, heads: number, headDim: number, crossDim: number) {
    this.norm1 = new LayerNorm(s.child('norm1'), dim);
    this.attn1 = new Attention(s.child('attn1'), { queryDim: dim, heads, headDim });
    this.norm2 = new LayerNorm(s.child('norm2'), dim);
    this.attn2 = new Attention(s.child('attn2'), { queryDim: dim, crossDim, heads, headDim });
    this.norm3 = new LayerNorm(s.child('norm3'), dim);
    this.ff = new FeedForward(s.child('ff'), dim);
  }
  forward(x: Tensor, context: Tensor, hooks?: AttentionHooks): Tensor {
    let h = x.add(this.attn1.forward(this.norm1.forward(x)));
    h = h.add(this.attn2.forward(this.norm2.forward(h), context, hooks));
    return h.add(this.ff.forward(this.norm3.forward(h)));
  }
}

export interface Transformer2DOptions { channels: number; heads: number; headDim: number; crossDim: number; layers: number; groups: number }

/** Transformer2DModel, use_linear_projection=True: norm (GroupNorm, eps 1e-6) → [B, HW, C] → proj_in →
 * transformer_blocks → proj_out → back to NCHW, plus the input (residual). */
export class Transformer2DModel {
  readonly norm: GroupNorm;
  readonly projIn: Linear;
  readonly blocks: BasicTransformerBlock[];
  readonly projOut: Linear;
  constructor(s: ParamScope, o: Transformer2DOptions) {
    const inner = o.heads * o.headDim;
    this.norm = new GroupNorm(s.child('norm'), o.groups, o.channels, 1e-6);
    this.projIn = new Linear(s.child('proj_in'), o.channels, inner);
    this.blocks = Array.from({ length: o.layers }, (_v, i) => new BasicTransformerBlock(s.child(`transformer_blocks.${i}`), inner, o.heads, o.headDim, o.crossDim));
    this.projOut = new Linear(s.child('proj_out'), inner, o.channels);
  }
  forward(x: Tensor, context: Tensor, hooks?: AttentionHooks): Tensor {
    const [b, c, h, w] = x.shape;
    let t = this.norm.forward(x).reshape([b, c, h * w]).permute([0, 2, 1]);
    t = this.projIn.forward(t);
    const unit = hooks?.unit;
    for (const blk of this.blocks) { const x0 = t; t = unit ? unit(() => blk.forward(x0, context, hooks), [x0]) : blk.forward(x0, context, hooks); }
    t = this.projOut.forward(t);
    return t.permute([0, 2, 1]).reshape([b, c, h, w]).add(x);
  }
}
