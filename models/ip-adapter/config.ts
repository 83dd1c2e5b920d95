/** IP-Adapter family configurations (tencent-ailab/IP-Adapter @62e4af9): which projection turns the image or face
 * features into extra context tokens, and how many. Widths of the SDXL checkpoints are given as presets; tiny ones
 * are for tests. The UNet's own widths (context width, per-layer hidden sizes) come from the UNet it is attached to. */

/** plain: ImageProjModel over a CLIP image embedding; plus: Perceiver Resampler over CLIP-vision penultimate hidden
 * states; faceid: MLPProjModel over a 512-d face embedding (+ LoRA on every attention); faceid-plus: ProjPlusModel
 * (face embedding + CLIP hidden states; V2 adds the shortcut with s_scale); portrait: faceid's MLP over several
 * faces, tokens stacked, no LoRA. */
export type IpAdapterKind = 'plain' | 'plus' | 'faceid' | 'faceid-plus' | 'portrait';
export const IP_ADAPTER_KINDS: readonly IpAdapterKind[] = ['plain', 'plus', 'faceid', 'faceid-plus', 'portrait'];

/** resampler.py's Resampler (IP-Adapter-Plus): `queries` learned latents attend to proj_in(hidden) through
 * `depth` PerceiverAttention + FeedForward layers; inner attention width = heads · headDim (need not equal dim). */
export interface ResamplerConfig {
  dim: number;
  depth: number;
  headDim: number;
  heads: number;
  queries: number;
  /** Width of the CLIP hidden states fed in (ViT-H: 1280). */
  embeddingDim: number;
  ffMult: number;
}

export interface IpAdapterConfig {
  kind: IpAdapterKind;
  /** Context tokens per image (per face for portrait): plain 4, plus 16, faceid 4, faceid-plus 4, portrait 16. */
  tokens: number;
  /** plain: width of the CLIP image embedding (image_embeds; ViT-bigG 1280, ViT-H 1024). */
  imageEmbedDim?: number;
  /** plus: the resampler. */
  resampler?: ResamplerConfig;
  /** faceid, faceid-plus, portrait: width of the face embedding (insightface buffalo_l: 512). */
  faceDim?: number;
  /** faceid-plus: width of the CLIP hidden states (ViT-H: 1280). */
  clipHiddenDim?: number;
  /** faceid-plus: the perceiver's head size. The reference hard-codes 64 (heads = width / 64), which cannot be built
   * below width 64; this option is what makes tiny test configs possible. Default 64. */
  headDim?: number;
  /** portrait: faces per sample (the reference's n_cond). Default 1. */
  faces?: number;
  /** faceid, faceid-plus: rank of the LoRA the checkpoint carries on every attention processor (128). */
  loraRank?: number;
}

/** The official SDXL checkpoints' shapes (context width 2048 comes from the UNet). */
export const sdxlIpAdapterConfigs = {
  /** ip-adapter_sdxl (OpenCLIP ViT-bigG image embeds 1280); ip-adapter_sdxl_vit-h uses imageEmbedDim 1024. */
  plain: { kind: 'plain', tokens: 4, imageEmbedDim: 1280 },
  /** ip-adapter-plus_sdxl_vit-h / ip-adapter-plus-face_sdxl_vit-h: IPAdapterPlusXL's Resampler. */
  plus: { kind: 'plus', tokens: 16, resampler: { dim: 1280, depth: 4, headDim: 64, heads: 20, queries: 16, embeddingDim: 1280, ffMult: 4 } },
  /** ip-adapter-faceid_sdxl: MLPProjModel(2048, 512, 4 tokens), LoRA rank 128. */
  faceid: { kind: 'faceid', tokens: 4, faceDim: 512, loraRank: 128 },
  /** ip-adapter-faceid-plusv2_sdxl: ProjPlusModel(2048, 512, ViT-H 1280, 4 tokens), LoRA rank 128, shortcut. */
  faceidPlus: { kind: 'faceid-plus', tokens: 4, faceDim: 512, clipHiddenDim: 1280, headDim: 64, loraRank: 128 },
  /** ip-adapter-faceid-portrait_sdxl: ip_adapter_faceid_separate.py's IPAdapterFaceID(num_tokens=16, n_cond=5). */
  portrait: { kind: 'portrait', tokens: 16, faceDim: 512, faces: 5 },
} satisfies Record<string, IpAdapterConfig>;

/** Tiny widths matching test/fixtures/ip-adapter/generate.py (context width 16). */
export const tinyIpAdapterConfigs = {
  plain: { kind: 'plain', tokens: 4, imageEmbedDim: 8 },
  plus: { kind: 'plus', tokens: 6, resampler: { dim: 16, depth: 2, headDim: 4, heads: 3, queries: 6, embeddingDim: 12, ffMult: 4 } },
  faceid: { kind: 'faceid', tokens: 4, faceDim: 8, loraRank: 4 },
  faceidPlus: { kind: 'faceid-plus', tokens: 4, faceDim: 8, clipHiddenDim: 12, headDim: 8, loraRank: 4 },
  portrait: { kind: 'portrait', tokens: 4, faceDim: 8, faces: 3 },
} satisfies Record<string, IpAdapterConfig>;

/** Context tokens the adapter adds per sample. */
export const ipTokenCount = (c: IpAdapterConfig): number => c.tokens * (c.kind === 'portrait' ? c.faces ?? 1 : 1);
