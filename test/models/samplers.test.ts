/** Kiln's samplers against trajectories of the reference code (test/fixtures/sched/generate.py, run once): diffusers
 * 0.25.1's DPMSolverMultistepScheduler as PuLID v1 configures it, and PuLID v1.1's Karras schedule with
 * pulid/utils.py's sample_dpmpp_2m / sample_dpmpp_sde (@1aa2fc7). The network is a toy ε(x, t) = 0.1·x + t/1000,
 * run by Kiln's float64 evaluator; the SDE noise is a fixed function of the call index on both sides. */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { compile, constant, evaluate, input, type Tensor } from '../../compiler/index';
import { readSafetensors } from '../../models/io/safetensors';
import {
  dpmpp2mSample, dpmpp2mSchedule, denoiser, eulerSample, eulerSchedule, karrasSigmas, kDpmpp2mSample, kDpmppSdeSample, makeSampler,
  SamplerOptionError, SchedulerStepsError, sdxlSchedulerConfig as c, timesteps, type EpsModel, type NoiseSampler,
} from '../../models/sched/index';

const ref = readSafetensors(path.join(path.dirname(fileURLToPath(import.meta.url)), '../fixtures/sched/reference.safetensors')).tensors;
const get = (k: string): number[] => { const t = ref.get(k); if (!t) throw new Error(`no ${k} in the fixture`); return Array.from(t.data as Float64Array); };
const noise = () => input('noise', [2, 3]);
const feeds = { noise: get('noise') };
const eps: EpsModel = (x, t) => x.mul(0.1).add(t / 1000);
const noiseSampler: NoiseSampler = (_s, _n, k) => constant(Array.from({ length: 6 }, (_v, j) => Math.sin(1 + 0.7 * k + 1.3 * j)), [2, 3]);
const run = (latents: Tensor): number[] => Array.from(evaluate({ outputs: { z: latents } }, feeds).outputs.z.data);
/** max |a − b| / max |b|. */
const relErr = (a: readonly number[], b: readonly number[]) => {
  expect(a.length).toBe(b.length);
  const scale = Math.max(...b.map(Math.abs));
  return Math.max(...a.map((v, i) => Math.abs(v - b[i]!))) / scale;
};

describe('DPM++ 2M, trailing timesteps (PuLID v1: diffusers 0.25.1 DPMSolverMultistepScheduler)', () => {
  test.each([1, 4, 8, 16, 20])('%i steps: timesteps exact, σs to 1e-6 (float64 vs the reference float32), the loop to 1e-12', (steps) => {
    const s = dpmpp2mSchedule(c, steps);
    expect(s.timesteps).toEqual(get(`v1.dpmpp2m.${steps}.timesteps`));
    const refSigmas = get(`v1.dpmpp2m.${steps}.sigmas`);
    expect(relErr(s.sigmas, refSigmas)).toBeLessThan(1e-6);
    expect(s.sigmas.at(-1)).toBeGreaterThan(0.029); // 0.25.1 ends at σ(t = 0), not 0
    const want = get(`v1.dpmpp2m.${steps}.x`);
    // The reference's own (float32) σs through Kiln's loop: the step arithmetic alone.
    expect(relErr(run(dpmpp2mSample(eps, noise(), { ...s, sigmas: refSigmas }).latents), want)).toBeLessThan(1e-12);
    // Kiln's schedule end to end.
    expect(relErr(run(dpmpp2mSample(eps, noise(), s).latents), want)).toBeLessThan(1e-6);
  });

  test('first order on the first step and (under 15 steps) the last: 2 steps are two DDIM steps', () => {
    const s = dpmpp2mSchedule(c, 2);
    const a = (sg: number) => 1 / Math.sqrt(sg * sg + 1);
    let x = [0.3];
    s.timesteps.forEach((t, i) => {
      const [s0, s1] = [s.sigmas[i]!, s.sigmas[i + 1]!];
      const x0 = x.map((v) => (v - s0 * a(s0) * (0.1 * v + t / 1000)) / a(s0));
      // DDIM in VP form: x' = α'·x0 + σ'α'·ε̂ with ε̂ = (x − α x0)/(σα)
      x = x.map((v, k) => a(s1) * x0[k]! + (s1 * a(s1)) * ((v - a(s0) * x0[k]!) / (s0 * a(s0))));
    });
    const z = evaluate({ outputs: { z: dpmpp2mSample(eps, input('n', [1]), s).latents } }, { n: [0.3] }).outputs.z.data[0]!;
    expect(z).toBeCloseTo(x[0]!, 12);
  });
});

describe('PuLID v1.1: Karras σs, DPM++ 2M and DPM++ SDE (pulid/utils.py)', () => {
  test.each([4, 8])('%i steps', (steps) => {
    const refSigmas = get(`v11.karras.${steps}.sigmas`);
    const sig = karrasSigmas(c, steps);
    expect(sig.at(-1)).toBe(0);
    expect(relErr(sig, refSigmas)).toBeLessThan(1e-6);

    const m2 = denoiser(eps, c);
    const x2 = run(kDpmpp2mSample(m2.denoise, noise().mul(refSigmas[0]!), refSigmas).latents);
    expect(m2.calls).toEqual(get(`v11.dpmpp2m.${steps}.calls`));
    expect(relErr(x2, get(`v11.dpmpp2m.${steps}.x`))).toBeLessThan(1e-12);

    const ms = denoiser(eps, c);
    let noiseCalls = 0;
    const counted: NoiseSampler = (a, b, k) => { noiseCalls++; return noiseSampler(a, b, k); };
    const xs = run(kDpmppSdeSample(ms.denoise, noise().mul(refSigmas[0]!), refSigmas, counted).latents);
    expect(ms.calls).toEqual(get(`v11.dpmppsde.${steps}.calls`));
    expect(noiseCalls).toBe(get(`v11.dpmppsde.${steps}.noisecalls`)[0]);
    expect(relErr(xs, get(`v11.dpmppsde.${steps}.x`))).toBeLessThan(1e-12);

    // Kiln's own Karras σs through the one sampler interface.
    const viaSampler = makeSampler('dpmpp-sde-karras', { steps, noise: noiseSampler }).sample(eps, noise());
    expect(viaSampler.timesteps).toEqual(get(`v11.dpmppsde.${steps}.calls`));
    expect(relErr(run(viaSampler.latents), get(`v11.dpmppsde.${steps}.x`))).toBeLessThan(1e-5);
    expect(relErr(run(makeSampler('dpmpp-2m-karras', { steps }).sample(eps, noise()).latents), get(`v11.dpmpp2m.${steps}.x`))).toBeLessThan(1e-5);
  });
});

describe('compiled (C++ back end, f32)', () => {
  test('all four samplers in one program agree with the references to 1e-4', async () => {
    const outputs = Object.fromEntries((['euler', 'dpmpp-2m', 'dpmpp-2m-karras', 'dpmpp-sde-karras'] as const).map((name) =>
      [name.replace(/-/g, '_'), makeSampler(name, { steps: 4, noise: noiseSampler }).sample(eps, noise()).latents]));
    const got = (await compile({ outputs })).run(feeds);
    const want = {
      euler: run(outputs.euler!), dpmpp_2m: get('v1.dpmpp2m.4.x'), dpmpp_2m_karras: get('v11.dpmpp2m.4.x'), dpmpp_sde_karras: get('v11.dpmppsde.4.x'),
    };
    for (const [k, w] of Object.entries(want)) expect({ k, err: relErr(Array.from(got[k]!), w) < 1e-4 }).toEqual({ k, err: true });
  }, 120_000);
});

describe('one sampler interface', () => {
  test('every sampler: σs, starting noise, evaluations; euler is eulerSample', () => {
    const want = { euler: [4, 14.6146], 'dpmpp-2m': [4, 1], 'dpmpp-2m-karras': [4, 14.6146], 'dpmpp-sde-karras': [7, 14.6146] } as const;
    for (const [name, [evals, init]] of Object.entries(want)) {
      const s = makeSampler(name as keyof typeof want, { steps: 4, noise: noiseSampler });
      expect({ name, evals: s.evaluations }).toEqual({ name, evals });
      expect(s.initNoiseSigma).toBeCloseTo(init, 3);
      expect(s.sample(eps, noise()).timesteps).toHaveLength(evals);
    }
    const e = makeSampler('euler', { steps: 4 }).sample(eps, noise());
    expect(run(e.latents)).toEqual(run(eulerSample(eps, noise(), eulerSchedule(c, 4)).latents));
  });

  test('bad options are named errors before any graph is built', () => {
    expect(() => makeSampler('dpmpp-sde-karras', { steps: 4 })).toThrow(/needs a noise sampler/);
    expect(() => makeSampler('dpmpp-2m', { steps: 0 })).toThrow(SchedulerStepsError);
    expect(() => makeSampler('dpmpp-2m-karras', { steps: 4, rho: 0 })).toThrow(SamplerOptionError);
    expect(() => makeSampler('dpmpp-sde-karras', { steps: 4, noise: noiseSampler, eta: Number.NaN })).toThrow(SamplerOptionError);
    expect(() => makeSampler('ddim' as never, { steps: 4 })).toThrow(/unknown sampler 'ddim'/);
  });

  test('trailing timesteps round as numpy does (ties to even): 16 steps match diffusers', () => {
    expect(timesteps(c, 16)).toEqual(get('v1.dpmpp2m.16.timesteps'));
    expect(timesteps(c, 16)[3]).toBe(811); // 1000 − 3·62.5 = 812.5 → 812 − 1
  });
});
