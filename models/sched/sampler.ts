/** One interface over every sampler: `makeSampler(name, { steps })` gives the schedule (σs, starting noise scale,
 * network evaluations) and `sample(model, noise)`, which builds the whole loop as one graph from the same ε-model
 * (scaled latents, timestep, evaluation index) → ε.
 *
 * | name | what | reference |
 * | --- | --- | --- |
 * | `euler` | Euler, trailing timesteps | diffusers EulerDiscreteScheduler (SDXL-Lightning) |
 * | `dpmpp-2m` | DPM++ 2M, trailing timesteps | diffusers 0.25.1 DPMSolverMultistepScheduler, as PuLID v1 |
 * | `dpmpp-2m-karras` | DPM++ 2M, Karras σs | PuLID v1.1 `sampler='dpmpp_2m'` |
 * | `dpmpp-sde-karras` | DPM++ SDE, Karras σs (2 evaluations per step but the last) | PuLID v1.1's default |
 */
import type { Tensor } from '../../compiler/index';
import { dpmpp2mSample, dpmpp2mSchedule, denoiser, karrasSigmas, kDpmpp2mSample, kDpmppSdeSample, type NoiseSampler } from './dpmpp';
import { checkSteps, eulerSample, eulerSchedule, sdxlSchedulerConfig, type EpsModel, type SchedulerConfig } from './euler';

export const SAMPLERS = ['euler', 'dpmpp-2m', 'dpmpp-2m-karras', 'dpmpp-sde-karras'] as const;
export type SamplerName = (typeof SAMPLERS)[number];

export interface SamplerOptions {
  steps: number;
  /** Betas and spacing (default SDXL's, trailing). The Karras samplers use the betas only. */
  config?: SchedulerConfig;
  /** dpmpp-sde-karras: unit-variance noise for each SDE sub-step (required). */
  noise?: NoiseSampler;
  /** dpmpp-sde-karras: η (default 1) and the noise multiplier s_noise (default 1). */
  eta?: number;
  sNoise?: number;
  /** Karras ρ (default 7). */
  rho?: number;
}

export interface SampleResult {
  latents: Tensor;
  /** x after each step (the first is the starting latents). */
  trajectory: Tensor[];
  /** The timestep of each network evaluation, in order. */
  timesteps: number[];
}

export interface Sampler {
  readonly name: SamplerName;
  /** σ at each step, then the final σ. */
  readonly sigmas: readonly number[];
  /** x_T = noise · initNoiseSigma. */
  readonly initNoiseSigma: number;
  /** Network evaluations per sample. */
  readonly evaluations: number;
  sample(model: EpsModel, noise: Tensor): SampleResult;
}

/** A sampler name or option the samplers cannot take; thrown before any graph is built. */
export class SamplerOptionError extends RangeError {
  constructor(message: string) { super(`sampler: ${message}`); this.name = 'SamplerOptionError'; }
}

export function makeSampler(name: SamplerName, opts: SamplerOptions): Sampler {
  const c = opts.config ?? sdxlSchedulerConfig;
  if (!(SAMPLERS as readonly string[]).includes(name)) throw new SamplerOptionError(`unknown sampler '${String(name)}' (one of ${SAMPLERS.join(', ')})`);
  checkSteps(c, opts.steps);
  for (const [k, v] of [['eta', opts.eta], ['sNoise', opts.sNoise], ['rho', opts.rho]] as const) {
    if (v !== undefined && !(Number.isFinite(v) && v >= 0 && (k !== 'rho' || v > 0))) throw new SamplerOptionError(`${k} = ${v}; expected a finite number ≥ 0${k === 'rho' ? ' (> 0)' : ''}`);
  }
  switch (name) {
    case 'euler': {
      const s = eulerSchedule(c, opts.steps);
      return { name, sigmas: s.sigmas, initNoiseSigma: s.initNoiseSigma, evaluations: s.timesteps.length,
        sample: (model, noise) => ({ ...eulerSample(model, noise, s), timesteps: [...s.timesteps] }) };
    }
    case 'dpmpp-2m': {
      const s = dpmpp2mSchedule(c, opts.steps);
      return { name, sigmas: s.sigmas, initNoiseSigma: 1, evaluations: s.timesteps.length,
        sample: (model, noise) => ({ ...dpmpp2mSample(model, noise, s), timesteps: [...s.timesteps] }) };
    }
    case 'dpmpp-2m-karras':
    case 'dpmpp-sde-karras': {
      const sigmas = karrasSigmas(c, opts.steps, opts.rho);
      const sde = name === 'dpmpp-sde-karras';
      const noiseSampler = opts.noise;
      if (sde && !noiseSampler) throw new SamplerOptionError(`${name} needs a noise sampler (options.noise)`);
      return { name, sigmas, initNoiseSigma: sigmas[0]!, evaluations: sde ? 2 * opts.steps - 1 : opts.steps,
        sample: (model, noise) => {
          const { denoise, calls } = denoiser(model, c);
          const x = noise.mul(sigmas[0]!);
          const r = sde ? kDpmppSdeSample(denoise, x, sigmas, noiseSampler!, { eta: opts.eta, sNoise: opts.sNoise }) : kDpmpp2mSample(denoise, x, sigmas);
          return { ...r, timesteps: calls };
        } };
    }
  }
}
