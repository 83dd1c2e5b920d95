/** The Brownian-path noise for DPM++ SDE (models/sched/brownian.ts): k-diffusion's BrownianTreeNoiseSampler
 * semantics — unit-variance increments of one path, overlapping queries correlated as Brownian motion says,
 * increments adding up exactly — checked on the numbers, plus the queries a real DPM++ SDE graph makes. */
import { input } from '../../compiler/index';
import { BrownianPath, BrownianPathError, brownianNoise, karrasSigmas, makeSampler, sdxlSchedulerConfig, type NoiseQuery } from '../../models/sched/index';

const mean = (a: ArrayLike<number>) => { let s = 0; for (let i = 0; i < a.length; i++) s += a[i]!; return s / a.length; };
const dot = (a: ArrayLike<number>, b: ArrayLike<number>) => { let s = 0; for (let i = 0; i < a.length; i++) s += a[i]! * b[i]!; return s / a.length; };
const N = 100_000;

describe('BrownianPath', () => {
  test('increments add up exactly and the path is a function of (seed, query order)', () => {
    const p = new BrownianPath(0.03, 14.6, 64, 5);
    const [a, b, c] = [14.6, 3.1, 0.5];
    const ac = p.noise(a, c), ab = p.noise(a, b), bc = p.noise(b, c);
    for (let i = 0; i < 64; i++) expect(ac[i]! * Math.sqrt(a - c)).toBeCloseTo(ab[i]! * Math.sqrt(a - b) + bc[i]! * Math.sqrt(b - c), 12);
    // reversed direction: the negative increment
    expect(Array.from(p.noise(c, a))).toEqual(Array.from(ac).map((v) => -v));
    const q = new BrownianPath(0.03, 14.6, 64, 5);
    expect(Array.from(q.noise(a, c))).toEqual(Array.from(ac));
    const other = new BrownianPath(0.03, 14.6, 64, 6).noise(a, c);
    expect(Math.max(...Array.from(other).map((v, i) => Math.abs(v - ac[i]!)))).toBeGreaterThan(0.1);
  });

  test('DPM++ SDE queries (σ, s) then (σ, σ′): unit variance, correlation √((σ − s)/(σ − σ′)) as one Brownian path', () => {
    const sig = 2.0, next = 0.5, s = Math.sqrt(sig * next); // the sampler's midpoint in log σ
    const p = new BrownianPath(0.1, 10, N, 11);
    const n1 = p.noise(sig, s), n2 = p.noise(sig, next);
    expect(Math.abs(mean(n1))).toBeLessThan(0.015);
    expect(Math.abs(dot(n1, n1) - 1)).toBeLessThan(0.02);
    expect(Math.abs(dot(n2, n2) - 1)).toBeLessThan(0.02);
    const want = Math.sqrt((sig - s) / (sig - next)); // 0.577: independent draws would give 0
    expect(Math.abs(dot(n1, n2) - want)).toBeLessThan(0.015);
    // non-overlapping steps are independent
    expect(Math.abs(dot(p.noise(sig, next), p.noise(next, 0.2)))).toBeLessThan(0.015);
  });

  test('bad ranges and queries are BrownianPathErrors', () => {
    expect(() => new BrownianPath(1, 1, 4, 0)).toThrow(BrownianPathError);
    expect(() => new BrownianPath(0, 1, 0, 0)).toThrow(BrownianPathError);
    const p = new BrownianPath(0.1, 1, 4, 0);
    expect(() => p.noise(0.5, 2)).toThrow(/outside \[0.1, 1\]/);
    expect(() => p.noise(0.5, 0.5)).toThrow(BrownianPathError);
    // an ulp past an end (σ through exp(−log σ)) is the end
    const edge = p.noise(1 + 1e-15, 0.5), end = p.noise(1, 0.5);
    edge.forEach((v, i) => expect(v).toBeCloseTo(end[i]!, 12));
  });
});

describe('brownianNoise for a DPM++ SDE graph', () => {
  test('the sampler asks 2 noises per step but the last, all inside [σ_min, σ_max]; each answer has unit variance', () => {
    const queries: NoiseQuery[] = [];
    const steps = 5;
    const sampler = makeSampler('dpmpp-sde-karras', { steps, noise: (sigma, sigmaNext, k) => { expect(k).toBe(queries.length); queries.push({ sigma, sigmaNext }); return input(`n${k}`, [2]); } });
    sampler.sample((x) => x.mul(0.1), input('x', [2]));
    expect(queries).toHaveLength(2 * (steps - 1));
    expect(sampler.sigmas).toEqual(karrasSigmas(sdxlSchedulerConfig, steps));
    const noises = brownianNoise(sampler.sigmas, queries, 20_000, 3);
    expect(noises).toHaveLength(queries.length);
    for (const n of noises) expect(Math.abs(dot(n, n) - 1)).toBeLessThan(0.04);
    // the sub-step's noise is part of the full step's
    expect(dot(noises[0]!, noises[1]!)).toBeGreaterThan(0.3);
    expect(brownianNoise(sampler.sigmas, [], 4, 0)).toEqual([]);
  });
});
