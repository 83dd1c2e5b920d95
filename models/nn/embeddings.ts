/** Sinusoidal timestep embedding (diffusers' get_timestep_embedding) and TimestepEmbedding (linear_1, SiLU,
 * linear_2). */
import { concat, constant, type Tensor } from '../../compiler/index';
import { Linear } from './layers';
import type { ParamScope } from './module';
// Globals are bound once per module: every global lookup is slow inside jest's vm contexts.
const M = Math;

/** The frequencies exp(-ln(maxPeriod) · i / (half - shift)), i < half. */
export function timestepFrequencies(dim: number, shift = 0, maxPeriod = 10000): Float64Array {
  const half = M.floor(dim / 2);
  return Float64Array.from({ length: half }, (_v, i) => M.exp((-M.log(maxPeriod) * i) / (half - shift)));
}

/** t [N] (float) → [N, dim]: [cos, sin] of t·freq when flipSinToCos (SDXL), else [sin, cos]; an odd dim is
 * padded with one zero column. */
export function timestepEmbedding(t: Tensor, dim: number, opts: { flipSinToCos?: boolean; shift?: number; maxPeriod?: number } = {}): Tensor {
  const freqs = timestepFrequencies(dim, opts.shift ?? 0, opts.maxPeriod ?? 10000);
  const half = freqs.length;
  const arg = t.reshape([t.size, 1]).mul(constant(freqs, [1, half]));
  const [sin, cos] = [arg.sin(), arg.cos()];
  let emb = (opts.flipSinToCos ?? true) ? concat([cos, sin], 1) : concat([sin, cos], 1);
  if (dim % 2) emb = emb.pad([[0, 0], [0, 1]]);
  return emb;
}

export class TimestepEmbedding {
  readonly linear1: Linear;
  readonly linear2: Linear;
  constructor(s: ParamScope, inDim: number, dim: number) {
    this.linear1 = new Linear(s.child('linear_1'), inDim, dim);
    this.linear2 = new Linear(s.child('linear_2'), dim, dim);
  }
  forward(x: Tensor): Tensor { return this.linear2.forward(this.linear1.forward(x).silu()); }
}
