/** UNet2DConditionModel configurations: SDXL base (diffusers' config.json values) and a tiny one with the
 * same structure for tests. */
export interface UnetConfig {
  inChannels: number;
  outChannels: number;
  /** Latent height and width the model is built for (64×64 in tests would be slow: tiny uses 16). */
  sampleSize: number;
  blockOutChannels: readonly number[];
  /** Per down block: does it carry cross-attention transformers? (SDXL: Down, CrossAttnDown, CrossAttnDown.) */
  crossAttnDown: readonly boolean[];
  layersPerBlock: number;
  /** Transformer layers per down block (reversed for the up blocks); the mid block uses the last entry. */
  transformerLayersPerBlock: readonly number[];
  /** Heads per down block (diffusers' `attention_head_dim`, which SDXL uses as the head count). */
  heads: readonly number[];
  crossAttentionDim: number;
  normGroups: number;
  /** Sinusoidal width of each of the 6 added time ids. */
  additionTimeEmbedDim: number;
  /** Pooled text embedding width + 6 · additionTimeEmbedDim. */
  projectionClassEmbeddingsInputDim: number;
  /** Number of micro-conditioning ids (SDXL: original size 2, crop 2, target size 2). */
  timeIds: number;
}

export const sdxlUnetConfig: UnetConfig = {
  inChannels: 4, outChannels: 4, sampleSize: 128,
  blockOutChannels: [320, 640, 1280],
  crossAttnDown: [false, true, true],
  layersPerBlock: 2,
  transformerLayersPerBlock: [1, 2, 10],
  heads: [5, 10, 20],
  crossAttentionDim: 2048,
  normGroups: 32,
  additionTimeEmbedDim: 256,
  projectionClassEmbeddingsInputDim: 2816,
  timeIds: 6,
};

/** Same block structure, small widths: 2 heads of 16/32, context width 32, pooled text width 32. */
export const tinyUnetConfig: UnetConfig = {
  inChannels: 4, outChannels: 4, sampleSize: 16,
  blockOutChannels: [32, 64, 64],
  crossAttnDown: [false, true, true],
  layersPerBlock: 2,
  transformerLayersPerBlock: [1, 1, 1],
  heads: [2, 2, 2],
  crossAttentionDim: 32,
  normGroups: 8,
  additionTimeEmbedDim: 8,
  projectionClassEmbeddingsInputDim: 32 + 6 * 8,
  timeIds: 6,
};

/** Smallest config with the full structure, for gradient checks through several UNet evaluations. */
export const microUnetConfig: UnetConfig = {
  inChannels: 4, outChannels: 4, sampleSize: 8,
  blockOutChannels: [8, 16, 16],
  crossAttnDown: [false, true, true],
  layersPerBlock: 1,
  transformerLayersPerBlock: [1, 1, 1],
  heads: [1, 2, 2],
  crossAttentionDim: 8,
  normGroups: 4,
  additionTimeEmbedDim: 4,
  projectionClassEmbeddingsInputDim: 8 + 6 * 4,
  timeIds: 6,
};

/** Width of the pooled text embedding the added conditioning expects. */
export const pooledTextDim = (c: UnetConfig): number => c.projectionClassEmbeddingsInputDim - c.timeIds * c.additionTimeEmbedDim;
