/** CLIP ViT vision tower (transformers' CLIPVisionModelWithProjection keys: `vision_model.*`,
 * `visual_projection`), pre-LN, returning the class embedding and chosen intermediate hidden states.
 * PuLID's EVA02-CLIP-L/14-336 has this shape (577 tokens × 1024) but other blocks (rotary embeddings, SwiGLU,
 * sub-LN): that tower is eva.ts. This is a standard CLIP ViT, so real CLIP vision checkpoints load by key. */
import { concat, normalize, type Tensor } from '../../compiler/index';
import { LayerNorm, Linear, ParamRegistry, type RegistryOptions } from '../nn/index';
import { ClipEncoder, type ClipEncoderConfig } from './encoder';

export interface ClipVisionConfig extends ClipEncoderConfig {
  imageSize: number;
  patchSize: number;
  projectionDim: number;
}

/** ViT-L/14 at 336 px: 24×24 patches + class = 577 tokens of 1024, projection 768. */
export const clipVitL14_336Config: ClipVisionConfig = {
  hiddenSize: 1024, layers: 24, heads: 16, intermediateSize: 4096, act: 'quick_gelu', eps: 1e-5, imageSize: 336, patchSize: 14, projectionDim: 768,
};
export const tinyClipVisionConfig: ClipVisionConfig = {
  hiddenSize: 16, layers: 3, heads: 2, intermediateSize: 32, act: 'quick_gelu', eps: 1e-5, imageSize: 16, patchSize: 4, projectionDim: 8,
};

export interface ClipVisionOutput {
  /** visual_projection(post_layernorm(class token)), L2-normalized when asked. [B, projectionDim] */
  imageEmbeds: Tensor;
  /** The requested hidden_states (index 0: after pre_layrnorm; i: after layer i). Each [B, tokens, D]. */
  hidden: Tensor[];
}

export class ClipVisionModel {
  readonly registry: ParamRegistry;
  readonly classEmbedding: Tensor;
  readonly patchEmbedding: Tensor;
  readonly positionEmbedding: Tensor;
  readonly preLayerNorm: LayerNorm;
  readonly encoder: ClipEncoder;
  readonly postLayerNorm: LayerNorm;
  readonly projection: Linear;
  constructor(readonly config: ClipVisionConfig, opts: RegistryOptions = {}) {
    const c = config, d = c.hiddenSize, g = c.imageSize / c.patchSize;
    this.registry = new ParamRegistry(opts);
    const root = this.registry.scope(), s = root.child('vision_model'), e = s.child('embeddings');
    this.classEmbedding = e.param('class_embedding', [d], { kind: 'normal', std: d ** -0.5 });
    this.patchEmbedding = e.param('patch_embedding.weight', [d, 3, c.patchSize, c.patchSize], { kind: 'fanIn', fanIn: 3 * c.patchSize ** 2 });
    this.positionEmbedding = e.param('position_embedding.weight', [g * g + 1, d], { kind: 'normal', std: 0.02 });
    this.preLayerNorm = new LayerNorm(s.child('pre_layrnorm'), d, c.eps);
    this.encoder = new ClipEncoder(s.child('encoder'), c);
    this.postLayerNorm = new LayerNorm(s.child('post_layernorm'), d, c.eps);
    this.projection = new Linear(root.child('visual_projection'), d, c.projectionDim, { bias: false });
  }
  get tokens(): number { return (this.config.imageSize / this.config.patchSize) ** 2 + 1; }
  paramCount(): number { return this.registry.count(); }

  /** pixels [B, 3, S, S] (CLIP-normalized). */
  forward(pixels: Tensor, opts: { hiddenStates?: readonly number[]; normalize?: boolean } = {}): ClipVisionOutput {
    const b = pixels.shape[0], d = this.config.hiddenSize, p = this.config.patchSize;
    const patches = pixels.conv2d(this.patchEmbedding, { stride: [p, p], padding: [0, 0, 0, 0], dilation: [1, 1], groups: 1 });
    const tokens = patches.reshape([b, d, -1]).permute([0, 2, 1]);
    const cls = this.classEmbedding.reshape([1, 1, d]).expand([b, 1, d]);
    const x = this.preLayerNorm.forward(concat([cls, tokens], 1).add(this.positionEmbedding));
    const states = this.encoder.forward(x, false);
    const last = states[states.length - 1];
    let imageEmbeds = this.projection.forward(this.postLayerNorm.forward(last.narrow(1, 0, 1).reshape([b, d])));
    if (opts.normalize) imageEmbeds = normalize(imageEmbeds, -1);
    return { imageEmbeds, hidden: (opts.hiddenStates ?? []).map((i) => states[i < 0 ? states.length + i : i]) };
  }
}
