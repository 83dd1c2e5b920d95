/** PuLID v1.1's IDFormer (ToTheBeginning/PuLID `pulid/encoders_transformer.py`), keys as in pulid_v1.1.safetensors
 * under `id_adapter.`: a perceiver-resampler over `numQueries` learned queries (`latents`) joined by the ID tokens
 * that `id_embedding_mapping` makes from id_cond (5 per photo); for each of the 5 ViT scales `mapping_<i>` maps that
 * hidden state (every token) to the former's width, and `layersPerScale` (depth / 5) layers of
 *   latents += PerceiverAttention(ctx = [id tokens, mapped ViT tokens], latents);  latents += FeedForward(latents)
 * run; the first `numQueries` latents times `proj_out` are the output ([B, numQueries, contextDim]: 32 × 2048).
 * PerceiverAttention: norm1(ctx), norm2(latents), q from the latents, k and v (`to_kv`, chunked) from
 * [norm1(ctx), norm2(latents)], q and k each scaled by dim_head^-¼ before the product, softmax, `to_out`; no biases.
 * FeedForward: LayerNorm, Linear (×ff_mult, no bias), GELU (erf), Linear (no bias) — indices 0, 1, 3.
 * Several photos are encoded jointly: id_cond stacked [B, R, ·] gives 5·R ID tokens and each scale's hidden states
 * are concatenated on the token axis (pipeline_v1_1.py get_id_embedding). */
import { concat, gelu, sdpa, zeros, type Tensor } from '../../compiler/index';
import { LayerNorm, Linear, type ParamScope } from '../nn/index';
import { Mlp3, type IdFeatures } from './id-encoder';
import type { IdEncoderConfig, IdFormerConfig } from './config';
export { idFormerV11, type IdFormerConfig } from './config';

export class IdFormerShapeError extends RangeError {
  constructor(message: string) { super(`IDFormer: ${message}`); this.name = 'IdFormerShapeError'; }
}

class PerceiverAttention {
  readonly norm1: LayerNorm; readonly norm2: LayerNorm; readonly toQ: Linear; readonly toKv: Linear; readonly toOut: Linear;
  constructor(s: ParamScope, readonly dim: number, readonly heads: number, readonly dimHead: number) {
    const inner = heads * dimHead;
    this.norm1 = new LayerNorm(s.child('norm1'), dim);
    this.norm2 = new LayerNorm(s.child('norm2'), dim);
    this.toQ = new Linear(s.child('to_q'), dim, inner, { bias: false });
    this.toKv = new Linear(s.child('to_kv'), dim, 2 * inner, { bias: false });
    this.toOut = new Linear(s.child('to_out'), inner, dim, { bias: false });
  }
  private split(x: Tensor): Tensor {
    const [b, l] = x.shape;
    return x.reshape([b, l, this.heads, this.dimHead]).permute([0, 2, 1, 3]);
  }
  forward(ctx: Tensor, latents: Tensor): Tensor {
    const x = this.norm1.forward(ctx), lat = this.norm2.forward(latents);
    const [b, n] = lat.shape, inner = this.heads * this.dimHead;
    const kv = this.toKv.forward(concat([x, lat], 1));
    const s = this.dimHead ** -0.25;
    const q = this.split(this.toQ.forward(lat)).mul(s);
    const k = this.split(kv.narrow(2, 0, inner)).mul(s), v = this.split(kv.narrow(2, inner, inner));
    const out = sdpa(q, k, v, { scale: 1 });
    return this.toOut.forward(out.permute([0, 2, 1, 3]).reshape([b, n, inner]));
  }
}

class FeedForward {
  readonly norm: LayerNorm; readonly l1: Linear; readonly l3: Linear;
  constructor(s: ParamScope, dim: number, mult: number) {
    this.norm = new LayerNorm(s.child('0'), dim);
    this.l1 = new Linear(s.child('1'), dim, dim * mult, { bias: false });
    this.l3 = new Linear(s.child('3'), dim * mult, dim, { bias: false });
  }
  forward(x: Tensor): Tensor { return this.l3.forward(gelu(this.l1.forward(this.norm.forward(x)))); }
}

export class IdFormer {
  readonly latents: Tensor;
  readonly projOut: Tensor;
  readonly layers: { attn: PerceiverAttention; ff: FeedForward }[] = [];
  readonly mapping: Mlp3[] = [];
  readonly idEmbeddingMapping: Mlp3;
  readonly former: IdFormerConfig;
  /** `scope` is normally `registry.scope('id_adapter')`; `config.former` must be set. */
  constructor(s: ParamScope, readonly config: IdEncoderConfig) {
    const f = config.former;
    if (!f) throw new IdFormerShapeError('the ID-encoder config has no `former` section');
    if (f.depth % 5 !== 0 || f.depth < 5) throw new IdFormerShapeError(`depth ${f.depth} is not a positive multiple of 5`);
    if (config.vitLayers !== 5) throw new IdFormerShapeError(`it reads 5 ViT scales, not ${config.vitLayers}`);
    this.former = f;
    const d = f.dim, h = f.mappingHidden, scale = d ** -0.5;
    this.latents = s.param('latents', [1, f.numQueries, d], { kind: 'normal', std: scale });
    this.projOut = s.param('proj_out', [d, config.contextDim], { kind: 'normal', std: scale });
    for (let i = 0; i < f.depth; i++) {
      this.layers.push({ attn: new PerceiverAttention(s.child(`layers.${i}.0`), d, f.heads, f.dimHead), ff: new FeedForward(s.child(`layers.${i}.1`), d, f.ffMult) });
    }
    for (let i = 0; i < 5; i++) this.mapping.push(new Mlp3(s.child(`mapping_${i}`), config.vitWidth, h, h, d));
    this.idEmbeddingMapping = new Mlp3(s.child('id_embedding_mapping'), config.faceDim + config.clipEmbedDim, h, h, d * config.bodyTokens);
  }
  /** Output tokens (32). */
  get tokens(): number { return this.former.numQueries; }

  /** idCond [B, C] (one photo) or [B, R, C] (R photos); vitHidden: 5 × [B, R·N, vitWidth] → [B, numQueries, contextDim]. */
  encode(idCond: Tensor, vitHidden: readonly Tensor[]): Tensor {
    const f = this.former, c = this.config, b = idCond.shape[0];
    if (vitHidden.length !== 5) throw new IdFormerShapeError(`expected 5 ViT hidden states, got ${vitHidden.length}`);
    const photos = idCond.rank === 3 ? idCond.shape[1] : 1;
    const x = this.idEmbeddingMapping.forward(idCond).reshape([b, c.bodyTokens * photos, f.dim]);
    const per = f.depth / 5;
    let latents = concat([this.latents.expand([b, f.numQueries, f.dim]), x], 1);
    for (let i = 0; i < 5; i++) {
      const ctx = concat([x, this.mapping[i]!.forward(vitHidden[i]!)], 1);
      for (const { attn, ff } of this.layers.slice(i * per, (i + 1) * per)) {
        latents = attn.forward(ctx, latents).add(latents);
        latents = ff.forward(latents).add(latents);
      }
    }
    return latents.narrow(1, 0, f.numQueries).matmul(this.projOut);
  }

  /** One photo's ID tokens. */
  forward(feat: IdFeatures): Tensor { return this.encode(feat.idCond, feat.vitHidden); }

  /** Several photos encoded jointly (v1.1); `idMix` does not apply. */
  tokensFor(refs: readonly IdFeatures[], _opts: { idMix?: boolean } = {}): Tensor {
    if (refs.length === 1) return this.forward(refs[0]!);
    const b = refs[0]!.idCond.shape[0];
    const idCond = concat(refs.map((r) => r.idCond.reshape([b, 1, r.idCond.shape[1]!])), 1);
    return this.encode(idCond, Array.from({ length: 5 }, (_v, i) => concat(refs.map((r) => r.vitHidden[i]!), 1)));
  }

  /** The encoder on zeros, shaped as one photo whatever the number of references (pipeline_v1_1.py). */
  unconditional(batch: number, vitTokens: number, _opts: { references?: number; idMix?: boolean } = {}): Tensor {
    const c = this.config, zero = (shape: number[]) => zeros(shape) as Tensor;
    return this.encode(zero([batch, c.faceDim + c.clipEmbedDim]), Array.from({ length: 5 }, () => zero([batch, vitTokens, c.vitWidth])));
  }
}

/** The ID-token encoder a config selects: v1's MLP IDEncoder or v1.1's IDFormer. */
export type IdTokenEncoder = {
  readonly tokens: number;
  forward(f: IdFeatures): Tensor;
  tokensFor(refs: readonly IdFeatures[], opts?: { idMix?: boolean }): Tensor;
  unconditional(batch: number, vitTokens: number, opts?: { references?: number; idMix?: boolean }): Tensor;
};
