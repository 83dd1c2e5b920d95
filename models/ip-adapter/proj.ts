/** The IP-Adapter projection models (tencent-ailab/IP-Adapter @62e4af9), with the reference state-dict keys under
 * the scope they are given (normally `image_proj`):
 * - ImageProjModel (ip_adapter.py): Linear(embed → tokens·C) → reshape → LayerNorm.        keys proj, norm
 * - Resampler (resampler.py): latents [1, Q, dim]; proj_in; depth × (PerceiverAttention, FeedForward); proj_out;
 *   norm_out.  keys latents, proj_in, proj_out, norm_out, layers.{i}.0.{norm1,norm2,to_q,to_kv,to_out},
 *   layers.{i}.1.{0 (LayerNorm), 1, 3 (Linear, no bias)}
 * - MLPProjModel (ip_adapter_faceid.py): Linear(F → 2F), GELU, Linear(2F → tokens·C) → reshape → LayerNorm.
 *   keys proj.0, proj.2, norm
 * - ProjPlusModel: MLPProjModel's tokens x, then FacePerceiverResampler(x as latents, CLIP hidden states);
 *   shortcut: x + s_scale · out.  keys proj.0, proj.2, norm, perceiver_resampler.{proj_in, proj_out, norm_out, layers}
 * PerceiverAttention scales q and k by headDim^-1/4 each before their product; that is softmax(q kᵀ / √headDim),
 * which is what sdpa computes here (equal up to rounding). */
import { concat, gelu, sdpa, type Tensor } from '../../compiler/index';
import { LayerNorm, Linear, type ParamScope } from '../nn/index';

export class PerceiverAttention {
  readonly norm1: LayerNorm; readonly norm2: LayerNorm; readonly toQ: Linear; readonly toKv: Linear; readonly toOut: Linear;
  readonly inner: number;
  constructor(s: ParamScope, dim: number, readonly heads: number, readonly headDim: number) {
    this.inner = heads * headDim;
    this.norm1 = new LayerNorm(s.child('norm1'), dim);
    this.norm2 = new LayerNorm(s.child('norm2'), dim);
    this.toQ = new Linear(s.child('to_q'), dim, this.inner, { bias: false });
    this.toKv = new Linear(s.child('to_kv'), dim, 2 * this.inner, { bias: false });
    this.toOut = new Linear(s.child('to_out'), this.inner, dim, { bias: false });
  }
  /** x: image features [B, N, dim]; latents [B, L, dim] → [B, L, dim]. */
  forward(x: Tensor, latents: Tensor): Tensor {
    const xn = this.norm1.forward(x), ln = this.norm2.forward(latents);
    const [b, l] = ln.shape, n = xn.shape[1] + l, h = this.heads, d = this.headDim, inner = this.inner;
    const split = (t: Tensor, len: number) => t.reshape([b, len, h, d]).permute([0, 2, 1, 3]);
    const kv = this.toKv.forward(concat([xn, ln], 1));
    const out = sdpa(split(this.toQ.forward(ln), l), split(kv.narrow(2, 0, inner), n), split(kv.narrow(2, inner, inner), n), { scale: 1 / Math.sqrt(d) });
    return this.toOut.forward(out.permute([0, 2, 1, 3]).reshape([b, l, inner]));
  }
}

/** resampler.py's FeedForward: LayerNorm, Linear (no bias), GELU, Linear (no bias) at indices 0, 1, 3. */
export class PerceiverFeedForward {
  readonly norm: LayerNorm; readonly fc1: Linear; readonly fc2: Linear;
  constructor(s: ParamScope, dim: number, mult: number) {
    this.norm = new LayerNorm(s.child('0'), dim);
    this.fc1 = new Linear(s.child('1'), dim, dim * mult, { bias: false });
    this.fc2 = new Linear(s.child('3'), dim * mult, dim, { bias: false });
  }
  forward(x: Tensor): Tensor { return this.fc2.forward(gelu(this.fc1.forward(this.norm.forward(x)))); }
}

/** The layers shared by Resampler and FacePerceiverResampler: proj_in, depth × (attention, ff), proj_out, norm_out. */
class PerceiverStack {
  readonly projIn: Linear; readonly projOut: Linear; readonly normOut: LayerNorm;
  readonly layers: { attn: PerceiverAttention; ff: PerceiverFeedForward }[] = [];
  constructor(s: ParamScope, o: { dim: number; depth: number; heads: number; headDim: number; embeddingDim: number; outputDim: number; ffMult: number }) {
    this.projIn = new Linear(s.child('proj_in'), o.embeddingDim, o.dim);
    this.projOut = new Linear(s.child('proj_out'), o.dim, o.outputDim);
    this.normOut = new LayerNorm(s.child('norm_out'), o.outputDim);
    for (let i = 0; i < o.depth; i++) {
      const l = s.child(`layers.${i}`);
      this.layers.push({ attn: new PerceiverAttention(l.child('0'), o.dim, o.heads, o.headDim), ff: new PerceiverFeedForward(l.child('1'), o.dim, o.ffMult) });
    }
  }
  forward(latents: Tensor, features: Tensor): Tensor {
    const x = this.projIn.forward(features);
    let h = latents;
    for (const { attn, ff } of this.layers) {
      h = attn.forward(x, h).add(h);
      h = ff.forward(h).add(h);
    }
    return this.normOut.forward(this.projOut.forward(h));
  }
}

/** IP-Adapter-Plus' Resampler (no positional embedding, no mean-pooled latents: the released checkpoints use neither). */
export class Resampler {
  readonly latents: Tensor;
  readonly stack: PerceiverStack;
  constructor(s: ParamScope, readonly o: { dim: number; depth: number; heads: number; headDim: number; queries: number; embeddingDim: number; outputDim: number; ffMult: number }) {
    this.latents = s.param('latents', [1, o.queries, o.dim], { kind: 'normal', std: o.dim ** -0.5 });
    this.stack = new PerceiverStack(s, o);
  }
  /** CLIP hidden states [B, N, embeddingDim] → [B, queries, outputDim]. */
  forward(hidden: Tensor): Tensor {
    const b = hidden.shape[0];
    return this.stack.forward(this.latents.expand([b, this.o.queries, this.o.dim]), hidden);
  }
}

/** Plain IP-Adapter's ImageProjModel. */
export class ImageProjModel {
  readonly proj: Linear; readonly norm: LayerNorm;
  constructor(s: ParamScope, embedDim: number, readonly contextDim: number, readonly tokens: number) {
    this.proj = new Linear(s.child('proj'), embedDim, tokens * contextDim);
    this.norm = new LayerNorm(s.child('norm'), contextDim);
  }
  /** [B, embedDim] → [B, tokens, contextDim]. */
  forward(embeds: Tensor): Tensor {
    return this.norm.forward(this.proj.forward(embeds).reshape([embeds.shape[0], this.tokens, this.contextDim]));
  }
}

/** FaceID's MLPProjModel (ip_adapter_faceid.py; the name clashes with ip_adapter.py's unrelated MLPProjModel). */
export class FaceMlpProj {
  readonly fc1: Linear; readonly fc2: Linear; readonly norm: LayerNorm;
  constructor(s: ParamScope, faceDim: number, readonly contextDim: number, readonly tokens: number) {
    this.fc1 = new Linear(s.child('proj.0'), faceDim, 2 * faceDim);
    this.fc2 = new Linear(s.child('proj.2'), 2 * faceDim, tokens * contextDim);
    this.norm = new LayerNorm(s.child('norm'), contextDim);
  }
  /** [N, faceDim] → [N, tokens, contextDim]. */
  forward(face: Tensor): Tensor {
    return this.norm.forward(this.fc2.forward(gelu(this.fc1.forward(face))).reshape([face.shape[0], this.tokens, this.contextDim]));
  }
}

/** FaceID-Plus' ProjPlusModel: the face tokens x = MLP(face) are the perceiver's latents over the CLIP hidden
 * states; shortcut (V2): x + sScale · out. The perceiver has depth 4, ff_mult 4, heads = contextDim / headDim. */
export class ProjPlusModel {
  readonly mlp: FaceMlpProj;
  readonly perceiver: PerceiverStack;
  constructor(s: ParamScope, faceDim: number, clipHiddenDim: number, contextDim: number, tokens: number, headDim: number) {
    this.mlp = new FaceMlpProj(s, faceDim, contextDim, tokens);
    this.perceiver = new PerceiverStack(s.child('perceiver_resampler'), {
      dim: contextDim, depth: 4, heads: contextDim / headDim, headDim, embeddingDim: clipHiddenDim, outputDim: contextDim, ffMult: 4,
    });
  }
  forward(face: Tensor, clipHidden: Tensor, o: { shortcut?: boolean; sScale?: number | Tensor } = {}): Tensor {
    const x = this.mlp.forward(face);
    const out = this.perceiver.forward(x, clipHidden);
    return o.shortcut ? x.add(out.mul((o.sScale ?? 1) as never) as never) : out;
  }
}
