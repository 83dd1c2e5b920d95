/** kiln::sdpa_f32 / sdpa_grad_f32 (kernels/cpu/attention.h) against the float64 reference of reference.ts,
 * which builds the full softmax matrix. Bound: see REL in harness.ts; mag is the sum of |terms| of the last
 * contraction, with every dP_ij (a dot product) and delta_i counted by the sum of |terms| they are made of. */
import { buildDriver, expectClose, Rng, runDriver } from './harness';
import { attnRef, type AttnCase as Case } from './reference';

function reference(c: Case, wrt: number, seed: number): { ref: Float64Array; mag: Float64Array } {
  const { nb, lq, lk, d, dv } = c;
  const rng = new Rng(seed);
  const q = rng.fill(nb * lq * d);
  const k = rng.fill(nb * lk * d);
  const v = rng.fill(nb * lk * dv);
  const dO = rng.fill(nb * lq * dv);
  const r = attnRef(c, q, k, v, dO, Math.fround(1 / Math.sqrt(d)));
  return [r.dq, r.dk, r.dv][wrt] ?? r.out;
}

const shapes: [string, Case][] = [
  ['lq = lk = 40, d 16', { nb: 2, lq: 40, lk: 40, d: 16, dv: 16, causal: 0 }],
  ['causal, lq = lk = 70', { nb: 1, lq: 70, lk: 70, d: 8, dv: 12, causal: 1 }],
  ['lk = 77 != lq = 33, dv != d', { nb: 3, lq: 33, lk: 77, d: 20, dv: 9, causal: 0 }],
  ['causal, lk = 77 > lq = 50', { nb: 2, lq: 50, lk: 77, d: 16, dv: 16, causal: 1 }],
  ['causal, lq = 77 > lk = 20', { nb: 1, lq: 77, lk: 20, d: 64, dv: 64, causal: 1 }],
  ['single key', { nb: 2, lq: 5, lk: 1, d: 4, dv: 3, causal: 0 }],
];
const which: [string, number][] = [['forward', -1], ['dQ', 0], ['dK', 1], ['dV', 2]];
const cases = shapes.flatMap(([s, c]) => which.map(([w, wrt]) => [`${w}: ${s}`, c, wrt] as [string, Case, number]));

describe('sdpa (CPU)', () => {
  let bin = '';
  beforeAll(() => {
    bin = buildDriver('attention');
  });
  it.each(cases)('%s', (_name, c, wrt) => {
    const seed = 999 + c.lq * 31 + c.lk * 7 + c.d + wrt;
    const out = runDriver(bin, [c.nb, c.lq, c.lk, c.d, c.dv, c.causal, wrt, seed]);
    expect(out.callsOnce).toBe(true);
    const { ref, mag } = reference(c, wrt, seed);
    expectClose(out.arrays.out, ref, mag, 'out');
  });
});
