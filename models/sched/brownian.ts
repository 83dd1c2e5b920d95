/** Noise for DPM++ SDE with k-diffusion's BrownianTreeNoiseSampler semantics, without torchsde.
 *
 * k-diffusion (and PuLID v1.1's pulid/utils.py) draws the SDE noise from one Brownian motion W over
 * [σ_min, σ_max] (W(σ_min) = 0) and returns, for a step from σ to σ′, the scaled increment
 *   noise(σ, σ′) = (W(σ′) − W(σ)) / √|σ′ − σ|,
 * so every call has unit variance and overlapping calls are correlated as the path dictates: DPM++ SDE asks for
 * (σ_i, s_i) and then (σ_i, σ_{i+1}) with s_i between them, and the second noise contains the first. Independent
 * draws per call would change the sampler's law; a fixed path does not.
 *
 * `BrownianPath` is that path, sampled lazily and exactly: the ends first, then each new point from the Brownian
 * bridge between its known neighbours (mean the linear interpolation, variance (t − l)(r − t)/(r − l)), which is
 * what torchsde's BrownianTree does. The numbers are not torchsde's (its own PRNG and interval tree; torchsde is not
 * an npm package), but the joint distribution of every set of queries is the same, the path is a pure function of
 * (seed, query order), and increments add up exactly: noise(a, c)·√|c − a| = noise(a, b)·√|b − a| + noise(b, c)·√|c − b|.
 * One path per sample of the batch; the draws come from Kiln's Philox (`normalFill`). */
import { normalFill } from '../../compiler/ir/philox';

const M = Math;
const STREAM0 = 1 << 16;

export class BrownianPathError extends RangeError {
  constructor(message: string) { super(`BrownianPath: ${message}`); this.name = 'BrownianPathError'; }
}

export class BrownianPath {
  /** Known points, sorted by t, and W there (`size` values each). */
  private readonly ts: number[];
  private readonly ws: Float64Array[];
  private draws = 0;

  /** A path over [t0, t1] (t0 < t1, both finite, ≥ 0), `size` independent coordinates, seeded. */
  constructor(readonly t0: number, readonly t1: number, readonly size: number, readonly seed: number) {
    if (!(Number.isFinite(t0) && Number.isFinite(t1) && t0 >= 0 && t1 > t0)) throw new BrownianPathError(`need 0 ≤ t0 < t1 (finite), not [${t0}, ${t1}]`);
    if (!Number.isInteger(size) || size < 1) throw new BrownianPathError(`size must be a whole number ≥ 1, not ${size}`);
    this.ts = [t0, t1];
    this.ws = [new Float64Array(size), this.gauss().map((z) => z * M.sqrt(t1 - t0))];
  }

  /** Draw k is Philox stream STREAM0 + k under the seed: never stream 0, which the pipelines use for x_T. */
  private gauss(): Float64Array { return normalFill(this.size, this.seed, STREAM0 + this.draws++); }

  /** W(t) for t in [t0, t1] (computed once, then kept). */
  at(t: number): Float64Array {
    // σ = exp(−(−log σ)) as the samplers compute it can land an ulp outside the ends: those are the ends.
    const slack = 1e-12 * this.t1;
    if (t < this.t0 && t >= this.t0 - slack) t = this.t0;
    if (t > this.t1 && t <= this.t1 + slack) t = this.t1;
    if (!(t >= this.t0 && t <= this.t1)) throw new BrownianPathError(`t = ${t} is outside [${this.t0}, ${this.t1}]`);
    let hi = 0;
    while (this.ts[hi]! < t) hi++;
    if (this.ts[hi] === t) return this.ws[hi]!;
    const l = this.ts[hi - 1]!, r = this.ts[hi]!, wl = this.ws[hi - 1]!, wr = this.ws[hi]!;
    const a = (t - l) / (r - l), sd = M.sqrt(((t - l) * (r - t)) / (r - l)), z = this.gauss();
    const w = wl.map((v, i) => v + a * (wr[i]! - v) + sd * z[i]!);
    this.ts.splice(hi, 0, t);
    this.ws.splice(hi, 0, w);
    return w;
  }

  /** k-diffusion's noise_sampler(σ, σ′): (W(σ′) − W(σ)) / √|σ′ − σ|, unit variance. */
  noise(sigma: number, sigmaNext: number): Float64Array {
    if (sigma === sigmaNext) throw new BrownianPathError(`an empty step (σ = σ′ = ${sigma})`);
    const a = this.at(sigma), b = this.at(sigmaNext), s = 1 / M.sqrt(M.abs(sigmaNext - sigma));
    return b.map((v, i) => (v - a[i]!) * s);
  }
}

/** The noise a sampler graph asks for, in call order: one (σ, σ′) per `sde_noise_<k>` input. */
export interface NoiseQuery { sigma: number; sigmaNext: number }

/** One path over [min positive σ, max σ] of the schedule (as sample_dpmpp_sde sets it up), answering `queries`
 * in order; → one unit-variance array of `size` values per query. */
export function brownianNoise(sigmas: readonly number[], queries: readonly NoiseQuery[], size: number, seed: number): Float64Array[] {
  if (queries.length === 0) return [];
  const pos = sigmas.filter((s) => s > 0);
  const path = new BrownianPath(M.min(...pos), M.max(...pos), size, seed);
  return queries.map((q) => path.noise(q.sigma, q.sigmaNext));
}
