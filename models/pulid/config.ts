/** PuLID configurations: which base models, which widths, which loss weights. `sdxlPulidConfig` is the paper's
 * shape (antelopev2 512 + EVA02-CLIP 768 = 1280 → 10 tokens × 2048); `tinyPulidConfig` has the same structure at
 * test widths over the tiny UNet / VAE / CLIP and the real 128-d face-api recognizer; `microPulidConfig` is for
 * gradient checks on the reference evaluator. */
import { microUnetConfig, sdxlUnetConfig, tinyUnetConfig, type UnetConfig } from '../unet/index';
import { sdxlVaeConfig, tinyVaeConfig, type VaeConfig } from '../vae/index';
import { clipVitL14_336Config, tinyClipVisionConfig, type ClipVisionConfig } from '../clip/index';

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
}

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
  vision: ClipVisionConfig;
  /** Which ViT hidden states feed mapping_0..4 (EVA02-CLIP-L: layers 4, 8, 12, 16, 20). */
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
}

export function idEncoderConfig(faceDim: number, clipEmbedDim: number, vitWidth: number, contextDim: number, bodyTokens = 5, cap = 1024): IdEncoderConfig {
  const n = contextDim * bodyTokens;
  return { faceDim, clipEmbedDim, vitWidth, bodyTokens, vitLayers: 5, contextDim, bodyHidden: [Math.min(n / 4, cap), Math.min(n / 2, cap)] };
}

export const sdxlPulidConfig: PulidConfig = {
  name: 'sdxl', unet: sdxlUnetConfig, vae: sdxlVaeConfig, vision: clipVitL14_336Config, vitHiddenLayers: [4, 8, 12, 16, 20],
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

export const pulidConfigs: Record<string, PulidConfig> = { tiny: tinyPulidConfig, micro: microPulidConfig, sdxl: sdxlPulidConfig };
export const idTokens = (c: IdEncoderConfig): number => c.bodyTokens + c.vitLayers;
