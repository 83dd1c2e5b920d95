/** CLIP text encoders as SDXL uses them: CLIPTextModel (CLIP ViT-L/14, 768) and CLIPTextModelWithProjection
 * (OpenCLIP ViT-bigG/14, 1280, text_projection), keys as in transformers (`text_model.*`). */
import { concat, iota, type Tensor } from '../../compiler/index';
import { LayerNorm, Linear, ParamRegistry, type RegistryOptions } from '../nn/index';
import { ClipEncoder, type ClipEncoderConfig } from './encoder';

export interface ClipTextConfig extends ClipEncoderConfig {
  vocabSize: number;
  maxPositions: number;
  /** text_projection width (bigG: 1280), or null for no projection (CLIP-L). */
  projectionDim: number | null;
  /** The end-of-text token id; the pooled output is taken at its first occurrence. */
  eosTokenId: number;
}

export const clipLTextConfig: ClipTextConfig = {
  hiddenSize: 768, layers: 12, heads: 12, intermediateSize: 3072, act: 'quick_gelu', eps: 1e-5,
  vocabSize: 49408, maxPositions: 77, projectionDim: null, eosTokenId: 49407,
};
export const clipBigGTextConfig: ClipTextConfig = {
  hiddenSize: 1280, layers: 32, heads: 20, intermediateSize: 5120, act: 'gelu', eps: 1e-5,
  vocabSize: 49408, maxPositions: 77, projectionDim: 1280, eosTokenId: 49407,
};
/** For tests: the built-in tokenizer's vocabulary (see tokenizer.ts), 16 positions. */
export const tinyClipTextConfig = (vocabSize: number, eosTokenId: number, projectionDim: number | null = 16): ClipTextConfig => ({
  hiddenSize: 16, layers: 2, heads: 2, intermediateSize: 32, act: 'gelu', eps: 1e-5, vocabSize, maxPositions: 16, projectionDim, eosTokenId,
});

export interface ClipTextOutput {
  /** hidden_states[-2] (the penultimate layer's output, no final norm): SDXL's context. [B, L, D] */
  penultimate: Tensor;
  /** final_layer_norm(last layer)  [B, L, D] */
  last: Tensor;
  /** last at the EOS token [B, D]; projected by text_projection when the config has one. */
  pooled: Tensor;
}

export class ClipTextModel {
  readonly registry: ParamRegistry;
  readonly tokenEmbedding: Tensor;
  readonly positionEmbedding: Tensor;
  readonly encoder: ClipEncoder;
  readonly finalLayerNorm: LayerNorm;
  readonly projection?: Linear;
  constructor(readonly config: ClipTextConfig, opts: RegistryOptions & { registry?: ParamRegistry; prefix?: string } = {}) {
    const c = config;
    this.registry = opts.registry ?? new ParamRegistry(opts);
    const root = this.registry.scope(opts.prefix ?? ''), s = root.child('text_model');
    this.tokenEmbedding = s.param('embeddings.token_embedding.weight', [c.vocabSize, c.hiddenSize], { kind: 'normal', std: 0.02 });
    this.positionEmbedding = s.param('embeddings.position_embedding.weight', [c.maxPositions, c.hiddenSize], { kind: 'normal', std: 0.01 });
    this.encoder = new ClipEncoder(s.child('encoder'), c);
    this.finalLayerNorm = new LayerNorm(s.child('final_layer_norm'), c.hiddenSize, c.eps);
    if (c.projectionDim !== null) this.projection = new Linear(root.child('text_projection'), c.hiddenSize, c.projectionDim, { bias: false });
  }
  paramCount(): number { return this.registry.count(); }

  /** ids: [B, L] i32 token ids (L ≤ maxPositions). */
  forward(ids: Tensor): ClipTextOutput {
    const [b, l] = ids.shape;
    const x = this.tokenEmbedding.gather(ids, 0).add(this.positionEmbedding.narrow(0, 0, l));
    const states = this.encoder.forward(x, true);
    const last = this.finalLayerNorm.forward(states[states.length - 1]);
    // One-hot of the first EOS position: pos == min over {pos : ids[pos] == eos} (L when there is none).
    const pos = iota([b, l], 1, 'f32');
    const first = ids.eq(this.config.eosTokenId).select(pos, l).min(1, true);
    const onehot = pos.eq(first as never).cast('f32');
    let pooled = last.mul(onehot.reshape([b, l, 1]) as never).sum(1);
    if (this.projection) pooled = this.projection.forward(pooled);
    return { penultimate: states[states.length - 2], last, pooled };
  }
}

/** SDXL's conditioning from two encoders: context = concat(penultimate₁, penultimate₂) on the channel axis
 * [B, L, 768 + 1280], pooled = encoder 2's projected pooled output [B, 1280]. */
export function sdxlTextConditioning(enc1: ClipTextModel, enc2: ClipTextModel, ids1: Tensor, ids2: Tensor): { context: Tensor; pooled: Tensor } {
  const a = enc1.forward(ids1), b = enc2.forward(ids2);
  return { context: concat([a.penultimate, b.penultimate], -1), pooled: b.pooled };
}
