/** The C++ back end's vectorizable tanh, erf and x^2 / x^3 (kernels/cpu/mathfun.h, render/cpp.ts cppOps) against
 * the float64 evaluator at 4001 points over [-10, 10] plus small and special values: within 4e-7 relative (about
 * 3 ulp; measured worst 1.3 ulp for tanh, 2.4 for erf), -0, ±Inf and NaN as IEEE says; and the generated source
 * calls none of libm's tanhf / erff / powf for them. */
import { compile, evaluate, gelu, input } from '../../compiler/index';
import { lowerProgram } from '../../compiler/compile';
import { renderProgramCpp } from '../../compiler/render/cpp';

const xs = [...Array.from({ length: 4001 }, (_v, i) => -10 + i * 0.005 + 1e-4 * Math.sin(i)), 1e-30, -1e-30, 1e-3, -0.62, 0.625, 0.874, 0.876, 3.99, 4.01, 40, -40];
const spec = () => {
  const x = input('x', [xs.length]);
  return { outputs: { tanh: x.tanh(), erf: x.erf(), sq: x.pow(2), cube: x.pow(3), gelu: gelu(x), geluTanh: gelu(x, 'tanh') } };
};

test('tanh, erf, x^2, x^3 and both GELUs against float64', async () => {
  const low = lowerProgram(spec());
  const src = renderProgramCpp(low.kernels, low.info);
  expect(src).toMatch(/kiln_tanhf\(/);
  expect(src).toMatch(/kiln_erff\(/);
  expect(src).not.toMatch(/\b(tanhf|erff|powf)\(/);
  const feeds = { x: Float64Array.from(xs) };
  const got = (await compile(spec())).run(feeds), want = evaluate(spec(), feeds).outputs;
  for (const name of Object.keys(want)) {
    const w = want[name].data, g = got[name];
    const bad: string[] = [];
    // GELU is 0.5 x (1 + erf(x / sqrt 2)): 1 + erf rounds to f32 first (an absolute 6e-8), so |x| scales its bound.
    const abs = name.startsWith('gelu') ? 1e-7 : 0;
    for (let i = 0; i < w.length; i++) if (!(Math.abs(g[i] - w[i]) <= 4e-7 * Math.abs(w[i]) + abs * Math.abs(xs[i]) + 1e-37) && bad.length < 3) bad.push(`x=${xs[i]}: ${g[i]} vs ${w[i]}`);
    expect([name, bad]).toEqual([name, []]);
  }
}, 240_000);

test('special values: -0 keeps its sign, ±Inf saturates, NaN stays NaN', async () => {
  const sx = () => { const x = input('x', [4]); return { outputs: { tanh: x.tanh(), erf: x.erf(), cube: x.pow(3) } }; };
  const got = (await compile(sx())).run({ x: Float64Array.from([-0, Infinity, -Infinity, NaN]) });
  expect(Array.from(got.tanh)).toEqual([-0, 1, -1, NaN]);
  expect(Array.from(got.erf)).toEqual([-0, 1, -1, NaN]);
  expect(Array.from(got.cube)).toEqual([-0, Infinity, -Infinity, NaN]);
}, 240_000);
