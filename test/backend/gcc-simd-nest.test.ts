/** A regression test for a g++ 12 miscompile that the C++ renderer works around (render/cpp.ts, parallelFor): with
 * -O3 and 512-bit vectors, a plain loop nest with an inner `omp simd reduction` — here the sum of a [2, 8, 8]
 * tensor over axis 0 stored transposed — produced zeros. The generated nest sits inside an OpenMP region (serial
 * by its `if` clause), which g++ compiles correctly. On a machine without AVX-512 this passes either way. */
import { compile, evaluate, input } from '../../compiler/index';

test('sum over axis 0 into a transposed output (the shape g++ 12 miscompiled as a plain nest)', async () => {
  const x = input('x', [2, 8, 8]);
  const y = x.sum(0).transpose(0, 1).mul(1.5);
  const feeds = { x: Float64Array.from({ length: 128 }, (_, i) => i) };
  const got = (await compile({ outputs: { y } })).run(feeds).y;
  expect(Array.from(got)).toEqual(Array.from(evaluate({ outputs: { y } }, feeds).outputs.y.data, (v) => Math.fround(v)));
});
