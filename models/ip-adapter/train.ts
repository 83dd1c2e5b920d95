/** IP-Adapter training (tutorial_train*.py @62e4af9): the UNet (and CLIP image encoder, when the kind uses one) frozen,
 * the adapter's image_proj.* and ip_adapter.* trained with the ε-prediction MSE
 *     x_t = α·x₀ + σ·ε,   loss = mean((ε̂(x_t, t, text, image tokens) − ε)²)
 * and the reference's condition dropout, drawn once per sample from one uniform u:
 *     u < image → drop the image;  < image + text → drop the text;  < image + text + both → drop both.
 * A dropped image zeroes the adapter's raw input (plain, faceid: the embedding; plus, faceid-plus: the pixels before
 * the CLIP encoder, as the reference zeroes clip_images), so training sees exactly the unconditional branch
 * inference uses. A dropped text takes the empty prompt's context and pooled embedding (fed as inputs). */
import { adamw, grad, input, type Tensor, type Update } from '../../compiler/index';
import type { ClipVisionModel } from '../clip/index';
import type { UNet2DConditionModel } from '../unet/index';
import { pooledTextDim } from '../unet/index';
import { IpAdapterConfigError } from './errors';
import { penultimateHidden, type IpAdapter, type IpAdapterInputs } from './model';

export interface ConditionDropRates { image: number; text: number; both: number }
/** The reference's defaults (i_drop_rate, t_drop_rate, ti_drop_rate). */
export const REFERENCE_DROP_RATES: ConditionDropRates = { image: 0.05, text: 0.05, both: 0.05 };

/** The reference's rule for one sample and one uniform draw u ∈ [0, 1). */
export function conditionDrop(u: number, r: ConditionDropRates = REFERENCE_DROP_RATES): { image: boolean; text: boolean } {
  if (u < r.image) return { image: true, text: false };
  if (u < r.image + r.text) return { image: false, text: true };
  if (u < r.image + r.text + r.both) return { image: true, text: true };
  return { image: false, text: false };
}

export interface IpTrainStepOptions {
  batch: number;
  /** Text context length (tokens). */
  textLength: number;
  /** plus, faceid-plus: the frozen CLIP vision tower the pixels go through (its hidden_states[-2]). */
  clip?: ClipVisionModel;
  /** portrait: faces per sample come from the config; faceid-plus: V2's shortcut and s_scale. */
  shortcut?: boolean;
  sScale?: number;
  weightDecay?: number;
}

export interface IpTrainStep {
  outputs: { loss: Tensor; eps: Tensor };
  updates: Update[];
  /** d loss / d parameter, in `params` order. */
  grads: Tensor[];
  params: string[];
  /** Input names and shapes the step is fed. */
  inputs: Record<string, readonly number[]>;
}

/** The training step graph: every input an `input()` named as in `inputs`. `drop_image`, `drop_text` are [B] 0/1. */
export function ipAdapterTrainStep(adapter: IpAdapter, unet: UNet2DConditionModel, o: IpTrainStepOptions): IpTrainStep {
  const B = o.batch, c = adapter.config, u = unet.config, S = u.sampleSize, C = u.crossAttentionDim;
  const shapes: Record<string, readonly number[]> = {
    latents: [B, u.inChannels, S, S], noise: [B, u.inChannels, S, S], alpha: [B], sigma: [B], timestep: [B],
    context: [B, o.textLength, C], pooled: [B, pooledTextDim(u)], empty_context: [1, o.textLength, C], empty_pooled: [1, pooledTextDim(u)],
    time_ids: [B, u.timeIds], drop_image: [B], drop_text: [B], lr: [],
  };
  const needClip = c.kind === 'plus' || c.kind === 'faceid-plus';
  if (needClip && !o.clip) throw new IpAdapterConfigError(`IP-Adapter ${c.kind} training needs the CLIP vision tower ({ clip }): a dropped image is an all-zero image through it`);
  if (c.kind === 'plain') shapes.image_embeds = [B, c.imageEmbedDim!];
  if (c.kind === 'faceid' || c.kind === 'faceid-plus') shapes.face_embeds = [B, c.faceDim!];
  if (c.kind === 'portrait') shapes.face_embeds = [B, c.faces ?? 1, c.faceDim!];
  if (needClip) shapes.pixels = [B, 3, o.clip!.config.imageSize, o.clip!.config.imageSize];
  const t = Object.fromEntries(Object.entries(shapes).map(([k, s]) => [k, input(k, [...s])])) as Record<string, Tensor>;

  const keep = (x: Tensor, flags: Tensor) => x.mul(flags.neg().add(1).reshape([B, ...x.shape.slice(1).map(() => 1)]) as never) as Tensor;
  const mix = (x: Tensor, empty: Tensor, flags: Tensor) => {
    const f = flags.reshape([B, ...x.shape.slice(1).map(() => 1)]);
    return x.add(empty.expand(x.shape).sub(x).mul(f as never) as never) as Tensor;
  };
  const ii: IpAdapterInputs = { shortcut: o.shortcut, sScale: o.sScale };
  if (t.image_embeds) ii.imageEmbeds = keep(t.image_embeds, t.drop_image);
  if (t.face_embeds) ii.faceEmbeds = keep(t.face_embeds, t.drop_image);
  if (t.pixels) ii.clipHidden = penultimateHidden(o.clip!, keep(t.pixels, t.drop_image));
  const tokens = adapter.imageTokens(ii);

  const r4 = (x: Tensor) => x.reshape([B, 1, 1, 1]);
  const noisy = t.latents.mul(r4(t.alpha) as never).add(t.noise.mul(r4(t.sigma) as never) as never) as Tensor;
  const eps = unet.forward({
    sample: noisy, timestep: t.timestep, encoderHiddenStates: mix(t.context, t.empty_context, t.drop_text), textEmbeds: mix(t.pooled, t.empty_pooled, t.drop_text),
    timeIds: t.time_ids, hooks: { crossAttention: adapter.hook(tokens) },
  });
  const loss = eps.sub(t.noise as never).square().mean() as Tensor;
  const entries = [...adapter.registry.params];
  const grads = grad(loss, entries.map(([, p]) => p));
  const updates = adamw(entries.map(([, p]) => p), grads, { lr: t.lr, weightDecay: o.weightDecay ?? 0.01, name: 'ip_adapter_adamw' });
  return { outputs: { loss, eps }, updates, grads, params: entries.map(([k]) => k), inputs: shapes };
}
