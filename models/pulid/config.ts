/** PuLID configurations: which base models, which widths, which loss weights. `sdxlPulidConfig` is the paper's
 * shape (antelopev2 512 + EVA02-CLIP 768 = 1280 → 10 tokens × 2048); `tinyPulidConfig` has the same structure at
 * test widths over the tiny UNet / VAE / CLIP and the real 128-d face-api recognizer; `microPulidConfig` is for
 * gradient checks on the reference evaluator. */
import { microUnetConfig, sdxlUnetConfig, tinyUnetConfig, type UnetConfig } from '../unet/index';
import { sdxlVaeConfig, tinyVaeConfig, type VaeConfig } from '../vae/index';
import { eva02ClipL14_336Config, tinyClipVisionConfig, tinyEvaVisionConfig, type ClipVisionConfig, type EvaVisionConfig } from '../clip/index';
import type { SamplerName } from '../sched/index';

export interface IdEncoderConfig {
  /** Face embedding width (face-api recognizer: 128; antelopev2: 512). */
  faceDim: number;
  /** CLIP-vision class-embedding width (EVA02-CLIP-L: 768). id_cond = faceDim + clipEmbedDim. */
  clipEmbedDim: number;
  /** ViT hidden width (1024). The mapping MLPs are vitWidth → vitWidth → vitWidth → contextDim. */
  vitWidth: number;
  /** Tokens from `body` (5) and ViT hidden states mapped (5): 10 ID tokens. */
  bodyTokens: number;
  vitLayers: number;
  /** UNet context width (2048). */
  contextDim: number;
  /** body hidden widths; PuLID: min(contextDim·bodyTokens/4, 1024), min(contextDim·bodyTokens/2, 1024). */
  bodyHidden: readonly [number, number];
  /** Set: PuLID v1.1's IDFormer (id-former.ts) instead of v1's MLP encoder; its output is `former.numQueries` tokens. */
  former?: IdFormerConfig;
}

export interface IdFormerConfig {
  /** Width of the latents (dim, 1024). */
  dim: number;
  /** Total layers (10); a multiple of 5 (one group per ViT scale). */
  depth: number;
  heads: number;
  dimHead: number;
  /** Learned queries (32): the output tokens. */
  numQueries: number;
  /** Hidden width of id_embedding_mapping and the mapping_<i> MLPs (1024 in the reference, hard-coded there). */
  mappingHidden: number;
  ffMult: number;
}

/** The reference's defaults (IDFormer()). */
export const idFormerV11: IdFormerConfig = { dim: 1024, depth: 10, heads: 16, dimHead: 64, numQueries: 32, mappingHidden: 1024, ffMult: 4 };


export interface LossWeights {
  /** λ_id (paper: 1.0). */
  id: number;
  /** λ_align-sem (paper: 0.6). */
  sem: number;
  /** λ_align-layout (paper: 0.1). */
  layout: number;
}
export const paperLossWeights: LossWeights = { id: 1.0, sem: 0.6, layout: 0.1 };

export interface PulidConfig {
  name: string;
  unet: UnetConfig;
  vae: VaeConfig;
  /** The frozen vision tower: EVA02-CLIP (`kind: 'eva02'`, what PuLID uses) or an OpenAI-CLIP ViT. */
  vision: ClipVisionConfig | EvaVisionConfig;
  /** Which ViT hidden states feed mapping_0..4 (EVA02-CLIP-L: the inputs of blocks 4, 8, 12, 16, 20). */
  vitHiddenLayers: readonly number[];
  idEncoder: IdEncoderConfig;
  /** Text tokens per prompt (77 for SDXL, 16 for the tiny tokenizer). */
  textLength: number;
  /** Lightning steps of the T2I branch (4) and how many of the last ones carry gradients (paper: up to 4). */
  lightningSteps: number;
  gradSteps: number;
  lambdas: LossWeights;
  /** Default id_scale at inference. */
  idScale: number;
  /** Inference defaults where they differ from v1's Lightning setup (Euler, no ortho, no zero tokens, CFG 1,
   * `lightningSteps`): the v1.1 app's ortho v2, NUM_ZERO 20, DPM++ SDE Karras, CFG 2, 5 steps. */
  generation?: GenerationDefaults;
}

export interface GenerationDefaults {
  ortho: 'off' | 'v1' | 'v2';
  numZero: number;
  sampler: SamplerName;
  cfg: number;
  steps: number;
}

export function idEncoderConfig(faceDim: number, clipEmbedDim: number, vitWidth: number, contextDim: number, bodyTokens = 5, cap = 1024): IdEncoderConfig {
  const n = contextDim * bodyTokens;
  return { faceDim, clipEmbedDim, vitWidth, bodyTokens, vitLayers: 5, contextDim, bodyHidden: [Math.min(n / 4, cap), Math.min(n / 2, cap)] };
}

export const sdxlPulidConfig: PulidConfig = {
  name: 'sdxl', unet: sdxlUnetConfig, vae: sdxlVaeConfig, vision: eva02ClipL14_336Config, vitHiddenLayers: [4, 8, 12, 16, 20],
  idEncoder: idEncoderConfig(512, 768, 1024, 2048), textLength: 77, lightningSteps: 4, gradSteps: 4, lambdas: paperLossWeights, idScale: 0.8,
};

/** Tiny: the default of the examples. The 128-d face-api recognizer + the tiny CLIP vision tower (16 wide, 3 layers,
 * projection 8) → id_cond 136; ID tokens 10 × 32 (the tiny UNet's context width); 128×128 images (16×16 latents);
 * gradients through all 4 Lightning steps, as SDXL. */
export const tinyPulidConfig: PulidConfig = {
  name: 'tiny', unet: tinyUnetConfig, vae: tinyVaeConfig, vision: tinyClipVisionConfig, vitHiddenLayers: [1, 1, 2, 2, 3],
  idEncoder: idEncoderConfig(128, tinyClipVisionConfig.projectionDim, tinyClipVisionConfig.hiddenSize, tinyUnetConfig.crossAttentionDim),
  textLength: 16, lightningSteps: 4, gradSteps: 4, lambdas: paperLossWeights, idScale: 1.0,
};

/** Micro: tests and float64 gradient checks (8-wide UNet on 8×8 latents, 64×64 images; the ID encoder sees the
 * first 8 of the 128 descriptor values, the ID loss all 128). Gradients through the last Lightning step only
 * (gradSteps 1, the paper's cheapest row) keep the tests' training steps small. */
export const microPulidConfig: PulidConfig = {
  name: 'micro', unet: microUnetConfig, vae: tinyVaeConfig, vision: { ...tinyClipVisionConfig, layers: 2 }, vitHiddenLayers: [1, 1, 2, 2, 2],
  idEncoder: idEncoderConfig(8, tinyClipVisionConfig.projectionDim, tinyClipVisionConfig.hiddenSize, microUnetConfig.crossAttentionDim),
  textLength: 8, lightningSteps: 4, gradSteps: 1, lambdas: paperLossWeights, idScale: 1.0,
};

/** PuLID v1.1 (pipeline_v1_1.py): the IDFormer encoder (32 queries × 2048) and the v1.1 app's inference defaults
 * (base: an SDXL-Lightning model such as dreamshaper-xl-lightning, loaded with `--weights`). */
export const v11Generation: GenerationDefaults = { ortho: 'v2', numZero: 20, sampler: 'dpmpp-sde-karras', cfg: 2, steps: 5 };
export const sdxlPulidV11Config: PulidConfig = {
  ...sdxlPulidConfig, name: 'sdxl-v1.1', idEncoder: { ...sdxlPulidConfig.idEncoder, former: idFormerV11 }, generation: v11Generation,
};
/** v1.1 at test widths: a 16-wide IDFormer (10 layers, 2 heads of 4, 8 queries) over the micro/tiny bases, with the
 * tiny EVA02 tower (16 wide, 21 blocks: the same 17 × 16 hidden states and 8-d embedding as the tiny OpenAI-CLIP). */
const testFormer: IdFormerConfig = { dim: 16, depth: 10, heads: 2, dimHead: 4, numQueries: 8, mappingHidden: 16, ffMult: 2 };
export const tinyPulidV11Config: PulidConfig = {
  ...tinyPulidConfig, name: 'tiny-v1.1', vision: tinyEvaVisionConfig, vitHiddenLayers: [4, 8, 12, 16, 20], idEncoder: { ...tinyPulidConfig.idEncoder, former: testFormer }, generation: v11Generation,
};
export const microPulidV11Config: PulidConfig = {
  ...microPulidConfig, name: 'micro-v1.1', vision: tinyEvaVisionConfig, vitHiddenLayers: [4, 8, 12, 16, 20], idEncoder: { ...microPulidConfig.idEncoder, former: testFormer }, generation: { ...v11Generation, steps: 2 },
};

export const pulidConfigs: Record<string, PulidConfig> = {
  tiny: tinyPulidConfig, micro: microPulidConfig, sdxl: sdxlPulidConfig,
  'tiny-v1.1': tinyPulidV11Config, 'micro-v1.1': microPulidV11Config, 'sdxl-v1.1': sdxlPulidV11Config,
};
export const idTokens = (c: IdEncoderConfig): number => (c.former ? c.former.numQueries : c.bodyTokens + c.vitLayers);
