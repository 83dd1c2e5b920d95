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
// Ragged sizes (1, 7, 17, 63, 65, 1000) around the vector widths (4, 8, 16 lanes) and the 256-key forward
// block: one block with a padded tail, several blocks with the online rescaling, causal rows whose later blocks
// are fully masked. The last two: several 64-key blocks and 64-query tiles in the backward with a causal
// diagonal in every batch, and a call large enough to run its parallel regions on more than one thread.
const ragged: [string, Case][] = [
  ['lq 1, lk 1000 (4 key blocks), d 7, dv 17', { nb: 1, lq: 1, lk: 1000, d: 7, dv: 17, causal: 0 }],
  ['lq 65, lk 63, d 17, dv 65', { nb: 2, lq: 65, lk: 63, d: 17, dv: 65, causal: 0 }],
  ['lq 63, lk 65, d 65, dv 7', { nb: 1, lq: 63, lk: 65, d: 65, dv: 7, causal: 0 }],
  ['causal, lq = lk = 300 (2 key blocks), d 17, dv 1', { nb: 1, lq: 300, lk: 300, d: 17, dv: 1, causal: 1 }],
  ['lq 1000, lk 7, d 1, dv 63', { nb: 1, lq: 1000, lk: 7, d: 1, dv: 63, causal: 0 }],
  ['causal, nb 3, lq = lk = 130 (3 backward key blocks and query tiles), d 24, dv 40', { nb: 3, lq: 130, lk: 130, d: 24, dv: 40, causal: 1 }],
  ['lq 200, lk 190, d 48, dv 56 (over PAR_MIN_MACS: threaded)', { nb: 2, lq: 200, lk: 190, d: 48, dv: 56, causal: 0 }],
];
shapes.push(...ragged);
const which: [string, number][] = [['forward', -1], ['dQ', 0], ['dK', 1], ['dV', 2]];
const cases = shapes.flatMap(([s, c]) => which.map(([w, wrt]) => [`${w}: ${s}`, c, wrt] as [string, Case, number]));

/** The forward's vector width is the compile target's (the library is built with -march=native): the driver
 * is also built for AVX2 (x86-64-v3, 8 lanes) and for baseline x86-64 (SSE2, 4 lanes); -march=native is AVX-512
 * (16 lanes) on the machines this runs on, and on an AVX2 machine the native build is the 8-lane one again. */
const MARCHES = ['x86-64-v3', 'x86-64'];

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

describe('sdpa (CPU) at every vector width', () => {
  const cases2 = [...shapes.slice(0, 3), ...ragged].flatMap(([s, c]) => MARCHES.flatMap((m) => which.map(([w, wrt]) => [`${m} ${w}: ${s}`, m, c, wrt] as [string, string, Case, number])));
  it.each(cases2)('%s', (_name, march, c, wrt) => {
    const bin = buildDriver('attention', march);
    const seed = 999 + c.lq * 31 + c.lk * 7 + c.d + wrt;
    const out = runDriver(bin, [c.nb, c.lq, c.lk, c.d, c.dv, c.causal, wrt, seed]);
    expect(out.callsOnce).toBe(true);
    const { ref, mag } = reference(c, wrt, seed);
    expectClose(out.arrays.out, ref, mag, 'out');
  });
});

describe('sdpa (CPU) special values', () => {
  it.each([['native'], ...MARCHES.map((m) => [m])])('a NaN in one query row makes that output row NaN and no other (%s)', (march) => {
    const c: Case = { nb: 2, lq: 17, lk: 300, d: 7, dv: 9, causal: 0 };
    const seed = 4242, nanRow = 5;
    const out = runDriver(buildDriver('attention', march), [c.nb, c.lq, c.lk, c.d, c.dv, c.causal, -1, seed, nanRow]).arrays.out;
    const { ref, mag } = reference(c, -1, seed);
    const inRow = (i: number) => i >= nanRow * c.dv && i < (nanRow + 1) * c.dv;
    for (let i = 0; i < out.length; i++) if (inRow(i)) expect(out[i]).toBeNaN();
    const keep = (a: Float64Array) => a.filter((_x, i) => !inRow(i));
    expectClose(keep(out), keep(ref), keep(mag), 'out');
  });
});
