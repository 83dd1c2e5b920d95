/** DPM-Solver++ samplers as the PuLID reference apps run them, each step written as DSL ops (one graph per loop,
 * like eulerSample), the schedule numbers as float64 host constants.
 *
 * - `dpmpp2mSchedule` / `dpmpp2mSample`: diffusers 0.25.1's DPMSolverMultistepScheduler as PuLID v1 configures it
 *   (SDXL's scaled-linear betas, timestep_spacing 'trailing', dpmsolver++, midpoint, solver_order 2,
 *   lower_order_final: first order on the first step and, under 15 steps, on the last). Variance-preserving: the
 *   model sees the sample unscaled, the starting noise has σ 1, and the last step goes to σ(t = 0), not 0.
 * - `karrasSigmas`, `sigmaTimestep`, `kDpmpp2mSample`, `kDpmppSdeSample`: PuLID v1.1's k-diffusion-style loop
 *   (pipeline_v1_1.py with pulid/utils.py): Karras sigmas (ρ = 7) between the ends of the pipeline's float32 sigma
 *   table, the network evaluated at the table timestep nearest in log σ, the ODE variables x with σ-scaled noise.
 *   The SDE sampler takes its noise from a caller's `NoiseSampler` (the reference uses torchsde's Brownian tree). */
import type { Tensor } from '../../compiler/index';
import { alphasCumprod, timesteps, trainSigmas, type EpsModel, type SchedulerConfig } from './euler';
const M = Math;

export interface DpmSchedule {
  readonly timesteps: readonly number[];
  /** One σ per step, then σ(t = 0) (diffusers 0.25.1 has no final σ of 0). */
  readonly sigmas: readonly number[];
  readonly initNoiseSigma: 1;
  /** lower_order_final: the last step is first order when there are fewer than 15 steps. */
  readonly lowerOrderFinal: boolean;
}

/** diffusers' DPMSolverMultistepScheduler.set_timesteps (no Karras, no Lu lambdas, no λ clipping). */
export function dpmpp2mSchedule(c: SchedulerConfig, steps: number): DpmSchedule {
  const table = trainSigmas(c), ts = timesteps(c, steps);
  return { timesteps: ts, sigmas: [...ts.map((t) => table[t]!), table[0]!], initNoiseSigma: 1, lowerOrderFinal: ts.length < 15 };
}

/** (α_t, σ_t) of a VP sample with noise level σ: α = 1/√(σ²+1), σ_t = σ·α; λ = log α − log σ_t. */
const vp = (sigma: number) => { const a = 1 / M.sqrt(sigma * sigma + 1), s = sigma * a; return { a, s, lambda: M.log(a) - M.log(s) }; };

/** The whole DPM++ 2M loop as one graph (diffusers' `step` for epsilon prediction). */
export function dpmpp2mSample(model: EpsModel, noise: Tensor, sched: DpmSchedule): { latents: Tensor; trajectory: Tensor[] } {
  let x = noise.mul(sched.initNoiseSigma);
  const trajectory = [x], n = sched.timesteps.length;
  let prev: Tensor | undefined;
  sched.timesteps.forEach((t, i) => {
    const s0 = vp(sched.sigmas[i]!), st = vp(sched.sigmas[i + 1]!);
    const x0 = x.sub(model(x, t, i).mul(s0.s)).mul(1 / s0.a); // convert_model_output: the predicted clean sample
    const h = st.lambda - s0.lambda, phi = st.a * M.expm1(-h);
    if (prev === undefined || (sched.lowerOrderFinal && i === n - 1)) {
      x = x.mul(st.s / s0.s).sub(x0.mul(phi));
    } else {
      const r0 = (s0.lambda - vp(sched.sigmas[i - 1]!).lambda) / h;
      const d1 = x0.sub(prev).mul(1 / r0);
      x = x.mul(st.s / s0.s).sub(x0.mul(phi)).sub(d1.mul(0.5 * phi)); // midpoint
    }
    prev = x0;
    trajectory.push(x);
  });
  return { latents: x, trajectory };
}

// ------------------------------------------------------------------------------------- k-diffusion (PuLID v1.1)

const f = M.fround;

/** PuLID v1.1's sigma table: ᾱ rounded to float32, then √((1 − ᾱ)/ᾱ) in float32 arithmetic, as the pipeline
 * computes it (pipeline_v1_1.py `self.sigmas`). */
export function float32SigmaTable(c: SchedulerConfig): Float64Array {
  return alphasCumprod(c).map((a64) => { const a = f(a64); return f(M.sqrt(f(f(1 - a) / a))); });
}

/** Karras et al.'s schedule: (σ_max^(1/ρ) + i/(n−1)·(σ_min^(1/ρ) − σ_max^(1/ρ)))^ρ for i < n, then 0; the ends
 * are the table's first and last σ. */
export function karrasSigmas(c: SchedulerConfig, steps: number, rho = 7): number[] {
  timesteps(c, steps); // the same step-count check (SchedulerStepsError)
  const table = float32SigmaTable(c);
  const lo = table[0]! ** (1 / rho), hi = table[table.length - 1]! ** (1 / rho);
  const ramp = (i: number) => (steps === 1 ? 0 : i / (steps - 1));
  return [...Array.from({ length: steps }, (_v, i) => (hi + ramp(i) * (lo - hi)) ** rho), 0];
}

/** The training timestep whose table σ is nearest in log σ (the pipeline's `timestep(sigma)`; the first on a tie). */
export function sigmaTimestep(table: ArrayLike<number>, sigma: number): number {
  const l = M.log(sigma);
  let best = 0, dist = Infinity;
  for (let i = 0; i < table.length; i++) {
    const d = M.abs(l - M.log(table[i]!));
    if (d < dist) { dist = d; best = i; }
  }
  return best;
}

/** The denoiser the k-diffusion loops call: D(x, σ) = x − σ·ε(x/√(σ²+1), t(σ)); `call` counts evaluations. */
export type Denoiser = (x: Tensor, sigma: number) => Tensor;
export function denoiser(model: EpsModel, c: SchedulerConfig): { denoise: Denoiser; calls: number[] } {
  const table = float32SigmaTable(c), calls: number[] = [];
  const denoise = (x: Tensor, sigma: number) => {
    const t = sigmaTimestep(table, sigma);
    calls.push(t);
    return x.sub(model(x.mul(1 / M.sqrt(sigma * sigma + 1)), t, calls.length - 1).mul(sigma));
  };
  return { denoise, calls };
}

const sigmaFn = (t: number) => M.exp(-t), tFn = (sigma: number) => -M.log(sigma);

/** DPM-Solver++(2M) (utils.py sample_dpmpp_2m); x starts as noise · σ_0. */
export function kDpmpp2mSample(denoise: Denoiser, x: Tensor, sigmas: readonly number[]): { latents: Tensor; trajectory: Tensor[] } {
  const trajectory = [x];
  let old: Tensor | undefined;
  for (let i = 0; i + 1 < sigmas.length; i++) {
    const d = denoise(x, sigmas[i]!);
    const t = tFn(sigmas[i]!), tNext = tFn(sigmas[i + 1]!), h = tNext - t;
    const ratio = sigmaFn(tNext) / sigmaFn(t), phi = M.expm1(-h);
    if (old === undefined || sigmas[i + 1] === 0) x = x.mul(ratio).sub(d.mul(phi));
    else {
      const r = (t - tFn(sigmas[i - 1]!)) / h;
      x = x.mul(ratio).sub(d.mul(1 + 1 / (2 * r)).sub(old.mul(1 / (2 * r))).mul(phi));
    }
    old = d;
    trajectory.push(x);
  }
  return { latents: x, trajectory };
}

/** Noise for one SDE sub-step between two noise levels (unit variance); `call` counts from 0. */
export type NoiseSampler = (sigma: number, sigmaNext: number, call: number) => Tensor;

/** k-diffusion's get_ancestral_step: the σ to step down to and the noise to add. */
export function ancestralStep(from: number, to: number, eta = 1): { down: number; up: number } {
  if (!eta) return { down: to, up: 0 };
  const up = M.min(to, eta * M.sqrt((to * to * (from * from - to * to)) / (from * from)));
  return { down: M.sqrt(to * to - up * up), up };
}

/** DPM-Solver++ (stochastic) (utils.py sample_dpmpp_sde): two network evaluations per step (at σ and at the
 * midpoint in log σ), Euler on a last step to σ = 0. */
export function kDpmppSdeSample(denoise: Denoiser, x: Tensor, sigmas: readonly number[], noise: NoiseSampler,
  opts: { eta?: number; sNoise?: number; r?: number } = {}): { latents: Tensor; trajectory: Tensor[] } {
  const eta = opts.eta ?? 1, sNoise = opts.sNoise ?? 1, r = opts.r ?? 0.5;
  const trajectory = [x];
  let calls = 0;
  for (let i = 0; i + 1 < sigmas.length; i++) {
    const sigma = sigmas[i]!, next = sigmas[i + 1]!;
    const d = denoise(x, sigma);
    if (next === 0) {
      x = x.add(x.sub(d).mul(1 / sigma).mul(next - sigma));
    } else {
      const t = tFn(sigma), tNext = tFn(next), h = tNext - t, s = t + h * r, fac = 1 / (2 * r);
      const a1 = ancestralStep(sigmaFn(t), sigmaFn(s), eta), s_ = tFn(a1.down);
      let x2 = x.mul(sigmaFn(s_) / sigmaFn(t)).sub(d.mul(M.expm1(t - s_)));
      x2 = x2.add(noise(sigmaFn(t), sigmaFn(s), calls++).mul(sNoise * a1.up));
      const d2 = denoise(x2, sigmaFn(s));
      const a2 = ancestralStep(sigmaFn(t), sigmaFn(tNext), eta), tNext_ = tFn(a2.down);
      const dd = d.mul(1 - fac).add(d2.mul(fac));
      x = x.mul(sigmaFn(tNext_) / sigmaFn(t)).sub(dd.mul(M.expm1(t - tNext_)));
      x = x.add(noise(sigmaFn(t), sigmaFn(tNext), calls++).mul(sNoise * a2.up));
    }
    trajectory.push(x);
  }
  return { latents: x, trajectory };
}
