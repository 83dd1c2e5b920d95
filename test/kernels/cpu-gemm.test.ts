/** kiln::gemm_f32 (kernels/cpu/gemm.h) against a float64 reference (reference.ts); bound: see REL in harness.ts. */
import { buildDriver, expectClose, Rng, runDriver } from './harness';
import { gemmRef, gemmSizes, type GemmCase as Case } from './reference';

function reference(c: Case, seed: number): { ref: Float64Array; mag: Float64Array } {
  const rng = new Rng(seed);
  const sz = gemmSizes(c);
  const A = rng.fill(sz.a);
  const B = rng.fill(sz.b);
  return gemmRef(c, A, B);
}

const cases: [string, Case][] = [
  ['tiny 1x1x1', { batch: 1, M: 1, N: 1, K: 1, tA: 0, tB: 0, bcA: 0, bcB: 0 }],
  ['K = 1', { batch: 1, M: 13, N: 35, K: 1, tA: 0, tB: 0, bcA: 0, bcB: 0 }],
  ['edges, not multiples of 6x16', { batch: 1, M: 37, N: 53, K: 29, tA: 0, tB: 0, bcA: 0, bcB: 0 }],
  ['K > KC (C buffer path)', { batch: 1, M: 25, N: 40, K: 600, tA: 0, tB: 0, bcA: 0, bcB: 0 }],
  ['transposed A', { batch: 1, M: 31, N: 19, K: 70, tA: 1, tB: 0, bcA: 0, bcB: 0 }],
  ['transposed B', { batch: 1, M: 20, N: 33, K: 41, tA: 0, tB: 1, bcA: 0, bcB: 0 }],
  ['both transposed', { batch: 2, M: 17, N: 18, K: 300, tA: 1, tB: 1, bcA: 0, bcB: 0 }],
  ['batched', { batch: 3, M: 12, N: 21, K: 9, tA: 0, tB: 0, bcA: 0, bcB: 0 }],
  ['batch broadcast A (offset 0)', { batch: 4, M: 7, N: 16, K: 33, tA: 0, tB: 0, bcA: 1, bcB: 0 }],
  ['batch broadcast B, transposed', { batch: 5, M: 9, N: 11, K: 12, tA: 0, tB: 1, bcA: 0, bcB: 1 }],
  ['wide N (> NC, column split)', { batch: 1, M: 5, N: 700, K: 20, tA: 0, tB: 0, bcA: 0, bcB: 0 }],
  ['tall M (> MB row chunks), K > KC', { batch: 1, M: 2100, N: 3, K: 270, tA: 0, tB: 0, bcA: 0, bcB: 0 }],
  ['square 130, threaded', { batch: 1, M: 130, N: 130, K: 130, tA: 0, tB: 0, bcA: 0, bcB: 0 }],
];

describe('gemm_f32 (CPU)', () => {
  let bin = '';
  beforeAll(() => {
    bin = buildDriver('gemm');
  });
  it.each(cases)('%s', (_name, c) => {
    const seed = 1000 + c.M * 7 + c.N * 13 + c.K;
    const out = runDriver(bin, [c.batch, c.M, c.N, c.K, c.tA, c.tB, c.bcA, c.bcB, seed]);
    expect(out.callsOnce).toBe(true);
    const { ref, mag } = reference(c, seed);
    expectClose(out.arrays.C, ref, mag, 'C');
  });
});
