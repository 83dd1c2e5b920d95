/** diffusers' EulerDiscreteScheduler (epsilon prediction, scaled-linear betas, trailing spacing, no churn)
 * with every step written as DSL ops, so a whole sampling loop is one differentiable graph. The schedule
 * numbers (timesteps, sigmas) are host constants computed in float64. */
import { type Tensor } from '../../compiler/index';
// Globals are bound once per module: every global lookup is slow inside jest's vm contexts.
const M = Math;

export interface SchedulerConfig {
  numTrainTimesteps: number;
  betaStart: number;
  betaEnd: number;
  spacing: 'trailing' | 'leading' | 'linspace';
  /** diffusers' steps_offset (used by 'leading'). */
  stepsOffset: number;
}

/** SDXL / SDXL-Lightning. */
export const sdxlSchedulerConfig: SchedulerConfig = { numTrainTimesteps: 1000, betaStart: 0.00085, betaEnd: 0.012, spacing: 'trailing', stepsOffset: 1 };

/** Scaled-linear betas: linspace(sqrt(start), sqrt(end), N)². */
export function scaledLinearBetas(c: SchedulerConfig): Float64Array {
  const a = M.sqrt(c.betaStart), b = M.sqrt(c.betaEnd), n = c.numTrainTimesteps;
  return Float64Array.from({ length: n }, (_v, i) => (a + ((b - a) * i) / (n - 1)) ** 2);
}

export function alphasCumprod(c: SchedulerConfig): Float64Array {
  const betas = scaledLinearBetas(c);
  const out = new Float64Array(betas.length);
  let p = 1;
  betas.forEach((beta, i) => { p *= 1 - beta; out[i] = p; });
  return out;
}

/** sqrt((1 - ᾱ_t) / ᾱ_t) for every training timestep. */
export function trainSigmas(c: SchedulerConfig): Float64Array {
  return alphasCumprod(c).map((a) => M.sqrt((1 - a) / a));
}

/** A schedule asked for an impossible number of steps (or a config with an impossible number of training
 * timesteps): thrown before any loop runs, so no caller value can reach an unbounded loop or allocation. */
export class SchedulerStepsError extends RangeError {
  constructor(readonly steps: unknown, readonly max: number) {
    super(`scheduler: ${String(steps)} sampling steps; expected an integer from 1 to ${max} (the training timesteps)`);
    this.name = 'SchedulerStepsError';
  }
}

/** Throws SchedulerStepsError unless 1 ≤ steps ≤ numTrainTimesteps (both integers). */
export function checkSteps(c: SchedulerConfig, steps: number): void {
  const N = c.numTrainTimesteps;
  if (!Number.isSafeInteger(N) || N < 2) throw new SchedulerStepsError(steps, N);
  if (!Number.isSafeInteger(steps) || steps < 1 || steps > N) throw new SchedulerStepsError(steps, N);
}

/** numpy's `round`: to the nearest integer, ties to even (1000 − 3·62.5 = 812.5 → 812 at 16 trailing steps). */
export const roundHalfEven = (x: number): number => { const r = M.round(x); return r - x === 0.5 && r % 2 !== 0 ? r - 1 : r; };

/** The discrete timesteps of an n-step schedule, highest first. */
export function timesteps(c: SchedulerConfig, steps: number): number[] {
  checkSteps(c, steps);
  const N = c.numTrainTimesteps;
  if (c.spacing === 'trailing') {
    const ratio = N / steps, out: number[] = [];
    for (let t = N; t > 0; t -= ratio) out.push(roundHalfEven(t) - 1); // numpy's round, as diffusers calls it
    return out;
  }
  if (c.spacing === 'leading') {
    const ratio = M.floor(N / steps);
    return Array.from({ length: steps }, (_v, i) => (steps - 1 - i) * ratio + c.stepsOffset);
  }
  return Array.from({ length: steps }, (_v, i) => (steps === 1 ? 0 : ((N - 1) * (steps - 1 - i)) / (steps - 1)));
}

export interface EulerSchedule {
  readonly timesteps: readonly number[];
  /** One sigma per step, then a final 0. */
  readonly sigmas: readonly number[];
  /** Standard deviation of the starting noise (diffusers' init_noise_sigma: sigma_max for linspace and
   * trailing spacing, sqrt(sigma_max² + 1) otherwise). */
  readonly initNoiseSigma: number;
}

/** Sigmas at each step's timestep (linear interpolation of the training sigmas, exact at integer steps). */
export function eulerSchedule(c: SchedulerConfig, steps: number): EulerSchedule {
  const train = trainSigmas(c), ts = timesteps(c, steps);
  const interp = (t: number) => {
    const lo = M.floor(t), hi = M.min(lo + 1, train.length - 1), f = t - lo;
    return train[lo] * (1 - f) + train[hi] * f;
  };
  const sigmas = [...ts.map(interp), 0];
  const max = M.max(...sigmas);
  return { timesteps: ts, sigmas, initNoiseSigma: c.spacing === 'linspace' || c.spacing === 'trailing' ? max : M.sqrt(max * max + 1) };
}

/** scale_model_input: x / sqrt(σ² + 1). */
export const scaleModelInput = (x: Tensor, sigma: number): Tensor => x.mul(1 / M.sqrt(sigma * sigma + 1));

/** One Euler step for epsilon prediction: x0 = x − σ·ε, d = (x − x0)/σ = ε, x' = x + d·(σ_next − σ). */
export const eulerStep = (x: Tensor, eps: Tensor, sigma: number, sigmaNext: number): Tensor => x.add(eps.mul(sigmaNext - sigma));

/** The predicted clean sample x0 = x − σ·ε at a step. */
export const predictX0 = (x: Tensor, eps: Tensor, sigma: number): Tensor => x.sub(eps.mul(sigma));

/** Model: (scaled latents, timestep value, step index) → ε. */
export type EpsModel = (scaledLatents: Tensor, timestep: number, step: number) => Tensor;

/** The whole Euler loop as one graph: x = noise · init_noise_sigma, then for each step
 * x ← x + ε(x/√(σ²+1), t)·(σ_next − σ). Returns the final latents (and each step's latents). */
export function eulerSample(model: EpsModel, noise: Tensor, schedule: EulerSchedule): { latents: Tensor; trajectory: Tensor[] } {
  let x = noise.mul(schedule.initNoiseSigma);
  const trajectory = [x];
  schedule.timesteps.forEach((t, i) => {
    const s = schedule.sigmas[i], sNext = schedule.sigmas[i + 1];
    x = eulerStep(x, model(scaleModelInput(x, s), t, i), s, sNext);
    trajectory.push(x);
  });
  return { latents: x, trajectory };
}

/** Classifier-free guidance: ε_u + scale · (ε_c − ε_u). */
export const cfg = (uncond: Tensor, cond: Tensor, scale: number): Tensor => uncond.add(cond.sub(uncond).mul(scale));

/** Wraps a batched model for CFG: runs [uncond; cond] as one batch of 2B (the model sees the latents
 * duplicated) and combines; with scale 1 it runs the conditional branch only. */
export function guided(model: (x: Tensor, t: number, step: number, branch: 'batched' | 'cond') => Tensor, scale: number): EpsModel {
  return (x, t, step) => {
    if (scale === 1) return model(x, t, step, 'cond');
    const b = x.shape[0];
    const both = model(x.reshape([1, ...x.shape]).expand([2, ...x.shape]).reshape([2 * b, ...x.shape.slice(1)]), t, step, 'batched');
    return cfg(both.narrow(0, 0, b), both.narrow(0, b, b), scale);
  };
}
