/** kiln::scatter_add_f32 (kernels/cpu/scatter_add.h) against a float64 reference; bound: see REL in
 * harness.ts (mag = sum of |upd| landing on the element). */
import { buildDriver, expectClose, Rng, runDriver } from './harness';

const cases: [string, number, number, number, number][] = [
  // name, outer, n_idx, inner, size
  ['embedding-style rows', 1, 50, 8, 10],
  ['outer split, duplicates', 3, 40, 5, 4],
  ['wide inner, outer 1 (inner split)', 1, 30, 1000, 7],
  ['inner 1', 4, 100, 1, 13],
  ['large, threaded', 2, 300, 96, 64],
];

describe('scatter_add_f32 (CPU)', () => {
  let bin = '';
  beforeAll(() => {
    bin = buildDriver('scatter_add');
  });
  it.each(cases)('%s', (_name, outer, nIdx, inner, size) => {
    const seed = 4242 + outer + nIdx + inner;
    const out = runDriver(bin, [outer, nIdx, inner, size, seed]);
    const rng = new Rng(seed);
    const idx = Array.from({ length: nIdx }, () => rng.next() % size);
    const upd = rng.fill(outer * nIdx * inner);
    const ref = new Float64Array(outer * size * inner);
    const mag = new Float64Array(outer * size * inner);
    for (let o = 0; o < outer; o++)
      for (let n = 0; n < nIdx; n++)
        for (let t = 0; t < inner; t++) {
          const e = (o * size + idx[n]) * inner + t;
          const u = upd[(o * nIdx + n) * inner + t];
          ref[e] += u;
          mag[e] += Math.abs(u);
        }
    expectClose(out.arrays.out, ref, mag, 'out');
  });
});
