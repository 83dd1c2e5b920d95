import { evaluate, input } from '../../compiler/index';
import { alphasCumprod, cfg, eulerSample, eulerSchedule, scaledLinearBetas, SchedulerStepsError, sdxlSchedulerConfig, timesteps } from '../../models/sched/index';

describe('Euler discrete scheduler (diffusers formulas)', () => {
  const c = sdxlSchedulerConfig;
  test('betas, timesteps and sigmas', () => {
    const b = scaledLinearBetas(c);
    expect(b[0]).toBeCloseTo(0.00085, 15);
    expect(b[999]).toBeCloseTo(0.012, 15);
    // numpy float64: cumprod(1 - linspace(sqrt(.00085), sqrt(.012), 1000)**2)
    expect(alphasCumprod(c)[999]).toBeCloseTo(0.004660098513077238, 14);
    expect(timesteps(c, 4)).toEqual([999, 749, 499, 249]);
    expect(timesteps(c, 1)).toEqual([999]);
    expect(timesteps(c, 8)).toEqual([999, 874, 749, 624, 499, 374, 249, 124]);
    const s = eulerSchedule(c, 4);
    // sqrt((1 - ᾱ_t)/ᾱ_t) at 999, 749, 499, 249 (numpy float64; diffusers' float32 agrees to ~1e-6 relative:
    // 14.614655, 4.0817323, 1.6128867, 0.69320506), then 0.
    const expected = [14.614641229333639, 4.081729363724308, 1.612886194303876, 0.6932048996386885, 0];
    s.sigmas.forEach((v, i) => expect(v).toBeCloseTo(expected[i], 12));
    expect(s.initNoiseSigma).toBeCloseTo(14.614641229333639, 12);
  });

  test('impossible step counts are a SchedulerStepsError before any loop (steps -1 once looped until V8 ran out of memory)', () => {
    for (const steps of [-1, 0, 0.5, Number.NaN, Infinity, 1001]) {
      expect(() => eulerSchedule(c, steps)).toThrow(SchedulerStepsError);
      for (const spacing of ['trailing', 'leading', 'linspace'] as const) expect(() => timesteps({ ...c, spacing }, steps)).toThrow(/expected an integer from 1 to 1000/);
    }
    expect(() => timesteps({ ...c, numTrainTimesteps: -5 }, 4)).toThrow(SchedulerStepsError);
    expect(timesteps({ ...c, spacing: 'linspace' }, 1)).toEqual([0]); // numpy linspace(0, 999, 1)[::-1], as diffusers
    expect(eulerSchedule(c, 1000).timesteps.length).toBe(1000);
  });

  test('the sampler graph: scale_model_input, ε steps and CFG by hand', () => {
    const s = eulerSchedule(c, 4);
    const noise = input('noise', [2]);
    const seen: number[][] = [];
    // ε(x, t) = 0.1·x + t/1000, so every step is checkable by hand.
    const { latents, trajectory } = eulerSample((x, t) => x.mul(0.1).add(t / 1000), noise, s);
    const r = evaluate({ outputs: { z: latents, x1: trajectory[1] } }, { noise: [0.5, -1] }).outputs;
    for (const n of [0.5, -1]) {
      let x = n * s.sigmas[0];
      s.timesteps.forEach((t, i) => {
        const eps = 0.1 * (x / Math.sqrt(s.sigmas[i] ** 2 + 1)) + t / 1000;
        x = x + eps * (s.sigmas[i + 1] - s.sigmas[i]);
      });
      seen.push([x]);
    }
    expect(r.z.data[0]).toBeCloseTo(seen[0][0], 12);
    expect(r.z.data[1]).toBeCloseTo(seen[1][0], 12);
    const u = input('u', [2]), k = input('k', [2]);
    expect(Array.from(evaluate({ outputs: { g: cfg(u, k, 1.2) } }, { u: [1, 2], k: [3, 5] }).outputs.g.data)).toEqual([1 + 1.2 * 2, 2 + 1.2 * 3].map((v) => expect.closeTo(v, 12)));
  });
});
