/** The micro UNet training step at any batch, with per-sample data keyed by a global sample index, so that N ranks
 * with batch b (rank r takes samples s·N·b + r·b + j) see exactly the samples one process with batch N·b sees. */
import * as k from '../../compiler/index';
import type { Feed } from '../../compiler/index';
import { UNet2DConditionModel, microUnetConfig, pooledTextDim } from '../../models/unet/index';
const M = Math;

export const DP_LR = 1e-3;
const L = 8;

export function microUnetBatch(B: number): { loss: k.Tensor; params: k.Tensor[]; feeds(keys: readonly number[]): Record<string, Feed> } {
  const c = microUnetConfig, S = c.sampleSize;
  const unet = new UNet2DConditionModel(c, { seed: 13, trainable: true });
  const inp = { sample: k.input('sample', [B, 4, S, S]), timestep: k.input('t', [B]), encoderHiddenStates: k.input('ctx', [B, L, c.crossAttentionDim]),
    textEmbeds: k.input('pooled', [B, pooledTextDim(c)]), timeIds: k.input('timeIds', [B, 6]) };
  const loss = unet.forward(inp).sub(k.input('target', [B, 4, S, S])).square().mean();
  const params = k.trainableParams(loss);
  const fill = (n: number, key: number, seed: number) => Array.from({ length: n }, (_, i) => M.sin(i * 0.37 + key * 1.91 + seed));
  const cat = (f: (key: number) => number[]) => (keys: readonly number[]) => Float64Array.from(keys.flatMap(f));
  return {
    loss, params,
    feeds: (keys) => ({
      sample: cat((q) => fill(4 * S * S, q, 1))(keys), t: Float64Array.from(keys, (q) => (q * 137) % 1000),
      ctx: cat((q) => fill(L * c.crossAttentionDim, q, 2))(keys), pooled: cat((q) => fill(pooledTextDim(c), q, 3))(keys),
      timeIds: cat(() => [64, 64, 0, 0, 64, 64])(keys), target: cat((q) => fill(4 * S * S, q, 4).map((v) => 0.5 * v))(keys),
    }),
  };
}

/** Sample keys of optimizer step `s` for `rank` of `ranks`, each with batch `b`. */
export const shardKeys = (s: number, rank: number, ranks: number, b: number): number[] => Array.from({ length: b }, (_v, j) => s * ranks * b + rank * b + j);
