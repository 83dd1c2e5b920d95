/** DreamBooth's training objective (Ruiz et al. 2023) as diffusers v0.25.1's train_dreambooth_lora_sdxl.py
 * documents it, with the two defects of that script's loss block fixed (docs/dreambooth.md):
 *
 * - a batch is the instance half (rare-token prompt, "a photo of sks person") followed by the class half (class
 *   prompt, images the base model generated), each latent with **its own** half's conditioning: the
 *   conditioning rows are repeated per half (`repeat_interleave`), where the script's `.repeat(bsz // 2)` tiles
 *   [inst, class, inst, class] and pairs latents with the wrong prompt as soon as a half has 2 images;
 * - Min-SNR-γ weights (Hang et al. 2023) come from the **instance half's own** timesteps, min(SNR, γ)/SNR (+1 for
 *   v-prediction), where the script multiplies the instance losses by the weights of the whole batch (a silent
 *   mis-weighting at 1 instance image, a shape error at 2 or more); the prior half is plain MSE, as in the script
 *   and in diffusers' later fix.
 *
 * loss = mean_i∈inst(w_i · MSE_i) + λ · mean_j∈class(MSE_j), MSE per sample over (C, H, W). ε or v targets;
 * x_t = √ᾱ_t·x0 + √(1−ᾱ_t)·ε, v = √ᾱ_t·ε − √(1−ᾱ_t)·x0 (DDPMScheduler.add_noise / get_velocity). */
import { concat, input, type Tensor } from '../../compiler/index';
// Globals are bound once per module: every global lookup is slow inside jest's vm contexts.
const M = Math;

export type Prediction = 'epsilon' | 'v_prediction';

export interface DreamBoothLossOptions {
  /** Prior preservation: the second half of the batch is class images (default true). */
  prior?: boolean;
  /** λ, the prior loss weight (default 1). */
  priorWeight?: number;
  /** Min-SNR γ (off when absent; 5 is the paper's value). */
  snrGamma?: number;
  prediction?: Prediction;
}

/** √ᾱ_t and √(1−ᾱ_t) for each timestep (host side; fed as inputs). */
export function noiseCoefficients(timesteps: readonly number[], alphasCumprod: ArrayLike<number>): { a: Float64Array; s: Float64Array } {
  const a = Float64Array.from(timesteps, (t) => M.sqrt(alphasCumprod[t]!));
  const s = Float64Array.from(timesteps, (t) => M.sqrt(1 - alphasCumprod[t]!));
  return { a, s };
}

/** The per-sample loss weights of a batch: Min-SNR-γ on the instance half (its own timesteps), 1 on the class half
 * and everywhere when γ is absent. */
export function lossWeights(timesteps: readonly number[], alphasCumprod: ArrayLike<number>, o: DreamBoothLossOptions = {}): Float64Array {
  const b = timesteps.length, n = instanceCount(b, o);
  const w = new Float64Array(b).fill(1);
  if (o.snrGamma === undefined) return w;
  for (let i = 0; i < n; i++) {
    const ac = alphasCumprod[timesteps[i]!]!, snr = ac / (1 - ac);
    w[i] = M.min(snr, o.snrGamma) / snr + (o.prediction === 'v_prediction' ? 1 : 0);
  }
  return w;
}

export class DreamBoothBatchError extends Error {
  constructor(message: string) { super(message); this.name = 'DreamBoothBatchError'; }
}

/** Instance images in a batch of `b`: half with prior preservation (b must be even), else all. */
export function instanceCount(b: number, o: DreamBoothLossOptions): number {
  if (!(o.prior ?? true)) return b;
  if (b % 2) throw new DreamBoothBatchError(`DreamBooth with prior preservation needs an even batch (instance half + class half), got ${b}`);
  return b / 2;
}

/** Which conditioning row each latent of the batch uses: 0 for the instance half, 1 for the class half
 * (repeat_interleave), as the script documents. */
export function conditioningRows(b: number, o: DreamBoothLossOptions): number[] {
  const n = instanceCount(b, o);
  return Array.from({ length: b }, (_v, i) => (i < n ? 0 : 1));
}

/** Per-row conditioning [rows, ...] → [b, ...] by conditioningRows. */
export function pairConditioning(rows: Tensor, b: number, o: DreamBoothLossOptions): Tensor {
  const idx = conditioningRows(b, o);
  const parts = idx.map((r) => rows.narrow(0, r, 1));
  return parts.length === 1 ? parts[0]! : concat(parts, 0);
}

/** x_t from x0 [B, C, H, W], ε and the per-sample coefficients a, s [B]. */
export function noisyLatents(x0: Tensor, noise: Tensor, a: Tensor, s: Tensor): Tensor {
  const col = (t: Tensor) => t.reshape([t.size, 1, 1, 1]);
  return x0.mul(col(a)).add(noise.mul(col(s)));
}

/** ε, or v = a·ε − s·x0. */
export function diffusionTarget(x0: Tensor, noise: Tensor, a: Tensor, s: Tensor, prediction: Prediction = 'epsilon'): Tensor {
  if (prediction === 'epsilon') return noise;
  const col = (t: Tensor) => t.reshape([t.size, 1, 1, 1]);
  return noise.mul(col(a)).sub(x0.mul(col(s)));
}

/** The loss from the prediction, the target and per-sample weights [B] (lossWeights). */
export function dreamboothLoss(pred: Tensor, target: Tensor, weights: Tensor, o: DreamBoothLossOptions = {}): { loss: Tensor; instance: Tensor; prior?: Tensor } {
  const b = pred.shape[0]!, n = instanceCount(b, o);
  const perSample = pred.sub(target).square().mean([1, 2, 3]);
  const instance = perSample.narrow(0, 0, n).mul(weights.narrow(0, 0, n)).mean();
  if (!(o.prior ?? true)) return { loss: instance, instance };
  const prior = perSample.narrow(0, n, b - n).mean();
  return { loss: instance.add(prior.mul(o.priorWeight ?? 1)), instance, prior };
}

/** The step's per-sample inputs: `db_a`, `db_s` (noise coefficients) and `db_w` (loss weights), each [B]. */
export function stepInputs(b: number): { a: Tensor; s: Tensor; w: Tensor } {
  return { a: input('db_a', [b]), s: input('db_s', [b]), w: input('db_w', [b]) };
}
