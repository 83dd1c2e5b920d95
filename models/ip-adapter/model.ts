/** One IP-Adapter attached to a UNet: the projection (`image_proj.*`) that makes context tokens from image or face
 * features, and the decoupled cross-attention (`ip_adapter.{i}.to_k_ip/to_v_ip`). Face embedders and the CLIP image
 * encoder are inputs, not parts: the adapter takes the embedding vectors and hidden states as tensors. */
import { zeros, type Tensor } from '../../compiler/index';
import { ParamRegistry, type CrossAttentionHook, type RegistryOptions } from '../nn/index';
import type { LoraAdapter } from '../nn/lora';
import type { ClipVisionModel } from '../clip/index';
import type { UNet2DConditionModel } from '../unet/index';
import { attentionProcessors, IpAttention, type AttentionProcessor, type IpScale } from './attention';
import { ipTokenCount, type IpAdapterConfig } from './config';
import { IpAdapterConfigError, IpAdapterInputError } from './errors';
import { FaceMlpProj, ImageProjModel, ProjPlusModel, Resampler } from './proj';

/** What each kind takes (shapes per sample batch B):
 * - plain: `imageEmbeds` [B, imageEmbedDim] (CLIPVisionModelWithProjection's image_embeds, not normalized)
 * - plus: `clipHidden` [B, N, embeddingDim] (the CLIP vision tower's penultimate hidden states, hidden_states[-2])
 * - faceid: `faceEmbeds` [B, faceDim]; portrait: [B, faces, faceDim]
 * - faceid-plus: `faceEmbeds` [B, faceDim] and `clipHidden` [B, N, clipHiddenDim] of the aligned face crop;
 *   `shortcut` (V2: true) and `sScale`. */
export interface IpAdapterInputs {
  imageEmbeds?: Tensor;
  clipHidden?: Tensor;
  faceEmbeds?: Tensor;
  shortcut?: boolean;
  sScale?: number | Tensor;
}

const need = <T>(v: T | undefined, what: string, kind: string): T => {
  if (v === undefined) throw new IpAdapterConfigError(`IP-Adapter config (${kind}) needs ${what}`);
  return v;
};

export class IpAdapter {
  readonly registry: ParamRegistry;
  readonly processors: AttentionProcessor[];
  readonly attention: IpAttention;
  readonly imageProj?: ImageProjModel;
  readonly resampler?: Resampler;
  readonly faceProj?: FaceMlpProj;
  readonly projPlus?: ProjPlusModel;
  readonly contextDim: number;
  /** FaceID's LoRA on the UNet's attention, once loadIpAdapter (or attachFaceIdLora) attached it; `lora.detach()`
   * takes it off, `lora.setScale(store, s)` is the reference's lora_scale. */
  lora?: LoraAdapter;

  /** Key prefix of every parameter (e.g. `ip1.` for a second adapter sharing a store); checkpoint keys stay unprefixed. */
  readonly prefix: string;
  constructor(readonly config: IpAdapterConfig, readonly unet: UNet2DConditionModel, opts: RegistryOptions & { registry?: ParamRegistry; prefix?: string } = {}) {
    const c = config, k = c.kind, C = unet.config.crossAttentionDim;
    this.contextDim = C;
    this.registry = opts.registry ?? new ParamRegistry({ trainable: true, ...opts });
    this.prefix = opts.prefix ?? '';
    const s = this.registry.scope(`${this.prefix}image_proj`);
    if (k === 'plain') this.imageProj = new ImageProjModel(s, need(c.imageEmbedDim, 'imageEmbedDim', k), C, c.tokens);
    else if (k === 'plus') {
      const r = need(c.resampler, 'resampler', k);
      if (r.queries !== c.tokens) throw new IpAdapterConfigError(`IP-Adapter plus: resampler.queries ${r.queries} must equal tokens ${c.tokens}`);
      this.resampler = new Resampler(s, { ...r, outputDim: C });
    } else if (k === 'faceid' || k === 'portrait') this.faceProj = new FaceMlpProj(s, need(c.faceDim, 'faceDim', k), C, c.tokens);
    else {
      const hd = c.headDim ?? 64;
      if (C % hd) throw new IpAdapterConfigError(`IP-Adapter faceid-plus: context width ${C} is not a multiple of headDim ${hd} (the reference hard-codes 64; set headDim for small widths)`);
      this.projPlus = new ProjPlusModel(s, need(c.faceDim, 'faceDim', k), need(c.clipHiddenDim, 'clipHiddenDim', k), C, c.tokens, hd);
    }
    this.processors = attentionProcessors(unet);
    this.attention = new IpAttention(this.registry.scope(`${this.prefix}ip_adapter`), this.processors, C);
  }

  /** Context tokens per sample. */
  get tokens(): number { return ipTokenCount(this.config); }
  paramCount(): number { return this.registry.count(); }

  private checkWidth(t: Tensor | undefined, name: string, rank: number, width: number, what: string): Tensor {
    const k = this.config.kind;
    if (!t) throw new IpAdapterInputError(`IP-Adapter ${k}: input ${name} is required (${what})`);
    if (t.rank !== rank || t.shape[rank - 1] !== width) {
      throw new IpAdapterInputError(`IP-Adapter ${k}: ${name} has shape [${t.shape}], expected rank ${rank} with last dimension ${width} (${what})`);
    }
    return t;
  }

  private faceEmbeds(i: IpAdapterInputs): Tensor {
    const c = this.config, F = c.faceDim!;
    const what = `a ${F}-d face embedding${F === 512 ? ': insightface buffalo_l normed_embedding for the official checkpoints' : ''}`;
    if (c.kind !== 'portrait') return this.checkWidth(i.faceEmbeds, 'faceEmbeds', 2, F, what);
    const t = this.checkWidth(i.faceEmbeds, 'faceEmbeds', 3, F, `[B, faces, ${F}], ${what}`);
    if (t.shape[1] !== (c.faces ?? 1)) throw new IpAdapterInputError(`IP-Adapter portrait: faceEmbeds has ${t.shape[1]} faces per sample, the config stacks ${c.faces ?? 1}`);
    return t;
  }

  /** The context tokens [B, tokens, contextDim]. */
  imageTokens(i: IpAdapterInputs): Tensor {
    const c = this.config;
    switch (c.kind) {
      case 'plain': return this.imageProj!.forward(this.checkWidth(i.imageEmbeds, 'imageEmbeds', 2, c.imageEmbedDim!, 'the CLIP image embedding'));
      case 'plus': return this.resampler!.forward(this.checkWidth(i.clipHidden, 'clipHidden', 3, c.resampler!.embeddingDim, 'CLIP-vision penultimate hidden states'));
      case 'faceid': return this.faceProj!.forward(this.faceEmbeds(i));
      case 'portrait': {
        const f = this.faceEmbeds(i), [b, n, F] = f.shape;
        return this.faceProj!.forward(f.reshape([b * n, F])).reshape([b, n * c.tokens, this.contextDim]);
      }
      case 'faceid-plus':
        return this.projPlus!.forward(this.faceEmbeds(i), this.checkWidth(i.clipHidden, 'clipHidden', 3, c.clipHiddenDim!, 'CLIP-vision penultimate hidden states of the face crop'),
          { shortcut: i.shortcut, sScale: i.sScale });
    }
  }

  /** The unconditional tokens, as the reference makes them: plain, faceid, portrait project zero embeddings; plus and
   * faceid-plus run the CLIP encoder on an all-zero image (`clip` and the pixel size are then required) and, for
   * faceid-plus, a zero face embedding. */
  unconditionalTokens(batch: number, o: { clip?: ClipVisionModel; shortcut?: boolean; sScale?: number | Tensor } = {}): Tensor {
    const c = this.config, z = (shape: number[]) => zeros(shape) as Tensor;
    const zeroHidden = () => {
      if (!o.clip) throw new IpAdapterInputError(`IP-Adapter ${c.kind}: the unconditional branch runs the CLIP vision encoder on an all-zero image; pass { clip }`);
      const S = o.clip.config.imageSize;
      return penultimateHidden(o.clip, z([batch, 3, S, S]));
    };
    switch (c.kind) {
      case 'plain': return this.imageTokens({ imageEmbeds: z([batch, c.imageEmbedDim!]) });
      case 'faceid': return this.imageTokens({ faceEmbeds: z([batch, c.faceDim!]) });
      case 'portrait': return this.imageTokens({ faceEmbeds: z([batch, c.faces ?? 1, c.faceDim!]) });
      case 'plus': return this.imageTokens({ clipHidden: zeroHidden() });
      case 'faceid-plus': return this.imageTokens({ faceEmbeds: z([batch, c.faceDim!]), clipHidden: zeroHidden(), shortcut: o.shortcut, sScale: o.sScale });
    }
  }

  /** The UNet hook that adds the decoupled attention for these tokens. */
  hook(tokens: Tensor, o: { scale?: IpScale; mask?: Tensor } = {}): CrossAttentionHook {
    return this.attention.hook({ tokens, scale: o.scale, mask: o.mask });
  }
}

/** transformers' `hidden_states[-2]` of a CLIP vision tower: the input to its last layer. */
export function penultimateHidden(clip: ClipVisionModel, pixels: Tensor): Tensor {
  return clip.forward(pixels, { hiddenStates: [-2] }).hidden[0];
}
