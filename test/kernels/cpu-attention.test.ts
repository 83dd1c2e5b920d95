/** kiln::sdpa_f32 / sdpa_grad_f32 (kernels/cpu/attention.h) against a float64 reference that builds the
 * full softmax matrix. Bound: see REL in harness.ts; mag is the sum of |terms| of the last contraction,
 * with every dP_ij (a dot product) and delta_i counted by the sum of |terms| they are made of. */
import { buildDriver, expectClose, Rng, runDriver } from './harness';

interface Case { nb: number; lq: number; lk: number; d: number; dv: number; causal: 0 | 1 }

function reference(c: Case, wrt: number, seed: number): { ref: Float64Array; mag: Float64Array } {
  const { nb, lq, lk, d, dv } = c;
  const rng = new Rng(seed);
  const q = rng.fill(nb * lq * d);
  const k = rng.fill(nb * lk * d);
  const v = rng.fill(nb * lk * dv);
  const dO = rng.fill(nb * lq * dv);
  const scale = Math.fround(1 / Math.sqrt(d));
  const rows = wrt <= 0 ? lq : lk;
  const width = wrt === 0 || wrt === 1 ? d : dv;
  const ref = new Float64Array(nb * rows * width);
  const mag = new Float64Array(nb * rows * width);
  const P = new Float64Array(lq * lk);
  const dP = new Float64Array(lq * lk); // dO_i . v_j
  const aP = new Float64Array(lq * lk); // sum_t |dO_it v_jt|
  const D = new Float64Array(lq);
  const aD = new Float64Array(lq);
  for (let b = 0; b < nb; b++) {
    for (let i = 0; i < lq; i++) {
      let mx = -Infinity;
      for (let j = 0; j < lk; j++) {
        let s = -Infinity;
        if (!c.causal || j <= i) {
          s = 0;
          for (let t = 0; t < d; t++) s += q[(b * lq + i) * d + t] * k[(b * lk + j) * d + t];
          s *= scale;
        }
        P[i * lk + j] = s;
        mx = Math.max(mx, s);
      }
      let sum = 0;
      for (let j = 0; j < lk; j++) sum += P[i * lk + j] = Math.exp(P[i * lk + j] - mx);
      D[i] = 0;
      aD[i] = 0;
      for (let j = 0; j < lk; j++) {
        P[i * lk + j] /= sum;
        let dp = 0;
        let ap = 0;
        for (let t = 0; t < dv; t++) {
          const x = dO[(b * lq + i) * dv + t] * v[(b * lk + j) * dv + t];
          dp += x;
          ap += Math.abs(x);
        }
        dP[i * lk + j] = dp;
        aP[i * lk + j] = ap;
        D[i] += P[i * lk + j] * dp;
        aD[i] += P[i * lk + j] * ap;
      }
    }
    const put = (r: number, t: number, x: number, m: number) => {
      ref[(b * rows + r) * width + t] += x;
      mag[(b * rows + r) * width + t] += m;
    };
    for (let i = 0; i < lq; i++)
      for (let j = 0; j < lk; j++) {
        const p = P[i * lk + j];
        if (p === 0) continue;
        const ds = p * (dP[i * lk + j] - D[i]);
        const ads = p * (aP[i * lk + j] + aD[i]);
        if (wrt === -1) for (let t = 0; t < dv; t++) put(i, t, p * v[(b * lk + j) * dv + t], p * Math.abs(v[(b * lk + j) * dv + t]));
        if (wrt === 2) for (let t = 0; t < dv; t++) put(j, t, p * dO[(b * lq + i) * dv + t], p * Math.abs(dO[(b * lq + i) * dv + t]));
        if (wrt === 0)
          for (let t = 0; t < d; t++) {
            const kk = k[(b * lk + j) * d + t];
            put(i, t, scale * ds * kk, scale * ads * Math.abs(kk));
          }
        if (wrt === 1)
          for (let t = 0; t < d; t++) {
            const qq = q[(b * lq + i) * d + t];
            put(j, t, scale * ds * qq, scale * ads * Math.abs(qq));
          }
      }
  }
  return { ref, mag };
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
