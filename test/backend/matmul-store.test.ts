/** Compiled matmul on the C++ back end: a kernel whose epilogue is only the plain f32 store hands the library its
 * output buffer (kiln_gemm_out_f32: full tiles stored from the micro-kernel's registers, no epilogue call per tile
 * row); a fused epilogue (bias, scale) still goes through the epilogue function. Ragged sizes, a broadcast batch,
 * a transposed (strided) operand and a K deep enough for the partial-sum buffer (K > KC), against float64. */
import { compile, input } from '../../compiler/index';
import { lowerProgram } from '../../compiler/compile';
import { renderProgramCpp } from '../../compiler/render/cpp';
import { expectMatchesReference, vals } from '../support/store-check';

const calls = (spec: Parameters<typeof lowerProgram>[0]) => {
  const low = lowerProgram(spec);
  const src = renderProgramCpp(low.kernels, low.info);
  return [(src.match(/kiln_gemm_out_f32\(/g) ?? []).length, (src.match(/kiln_gemm_f32\(/g) ?? []).length];
};

test('matmul: plain outputs stored directly, fused epilogues through the epilogue function, both match', async () => {
  const spec = () => {
    const a = input('a', [65, 17]), b = input('b', [17, 63]), c = input('c', [2, 3, 7, 17]), d = input('d', [3, 9, 17]);
    const bias = input('bias', [63]), g = input('g', [33, 17]);
    return { outputs: {
      plain: a.matmul(b),
      batched: c.matmul(d.mT()),   // [2,3,7,17] x [3,17,9] (B transposed, broadcast over the first batch dim)
      fused: g.matmul(b).add(bias).mul(0.5),
    } };
  };
  expect(calls(spec())).toEqual([2, 1]);
  const feeds = { a: vals(65 * 17, 1), b: vals(17 * 63, 2), c: vals(2 * 3 * 7 * 17, 3), d: vals(3 * 9 * 17, 4),
    bias: vals(63, 7), g: vals(33 * 17, 8) };
  await expectMatchesReference(spec, feeds);
}, 240_000);

test('matmul: K past the K block (partial sums in the C buffer) stores the same bits directly and through an epilogue', async () => {
  // K = 1300 > KC + KC/8 on every path: two K blocks, the last one adds the buffered partial sums and stores.
  const spec = () => {
    // f2 holds f's values: a second, separate GEMM (one shared GEMM would store plain and scale in another kernel).
    const e = input('e', [9, 1300]), f = input('f', [1300, 50]), f2 = input('f2', [1300, 50]);
    return { outputs: { deep: e.matmul(f), twice: e.matmul(f2).mul(2) } };
  };
  expect(calls(spec())).toEqual([1, 1]);
  const feeds = { e: vals(9 * 1300, 5), f: vals(1300 * 50, 6), f2: vals(1300 * 50, 6) };
  const out = (await compile(spec())).run(feeds);
  expect(Array.from(out.twice)).toEqual(Array.from(out.deep, (x) => 2 * x));  // x2 is exact: the same GEMM bits
  // 1300-term f32 sums of |w| up to 33: measured 3.0e-5 relative to max(1, |w|) on both stores (f32 accumulation).
  await expectMatchesReference(spec, feeds, 1e-4);
}, 240_000);
