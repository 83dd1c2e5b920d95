/** The UNet training-step graph both UNet step benchmarks time (bench/peers/unet-step.ts on the CPU beside PyTorch,
 * bench/gpu/unet-step.ts on CUDA): batch 1, UNet forward, MSE against a `target` input, gradients of every
 * parameter, AdamW. Inputs: sample [1,4,S,S], t [1], ctx [1,tokens,crossAttentionDim], pooled, timeIds [1,6], target. */
import { adamw, grad, input, trainableParams } from '../compiler/index';
import { UNet2DConditionModel, pooledTextDim, type UnetConfig } from '../models/unet/index';

export function unetTrainGraph(c: UnetConfig, tokens: number, lr: number) {
  const S = c.sampleSize;
  const unet = new UNet2DConditionModel(c, { seed: 13, trainable: true });
  const shapes: Record<string, number[]> = { sample: [1, 4, S, S], t: [1], ctx: [1, tokens, c.crossAttentionDim], pooled: [1, pooledTextDim(c)], timeIds: [1, 6], target: [1, 4, S, S] };
  const x = Object.fromEntries(Object.entries(shapes).map(([k, s]) => [k, input(k, s)]));
  const pred = unet.forward({ sample: x.sample, timestep: x.t, encoderHiddenStates: x.ctx, textEmbeds: x.pooled, timeIds: x.timeIds });
  const loss = pred.sub(x.target).square().mean();
  const params = trainableParams(loss);
  return { unet, shapes, pred, loss, params, updates: adamw(params, grad(loss, params), { lr }) };
}
