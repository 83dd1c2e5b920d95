/** The C++ back end's vectorizable exp, tanh, erf and x^2 / x^3 (kernels/cpu/mathfun.h, render/cpp.ts cppOps)
 * against float64: tanh, erf and powers at 4001 points over [-10, 10] plus small and special values, within 4e-7
 * relative (about 3 ulp; measured worst 1.3 ulp for tanh, 2.4 for erf); exp over its whole float range, the top
 * (88.38, 88.72] and the subnormal results below -87.34 included, within 2 ulp of the float nearest double exp;
 * -0, ±Inf and NaN as IEEE says; and the generated source calls none of libm's expf / tanhf / erff / powf for them. */
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

// exp at 12001 points over [-105, 90] plus the edges: the largest float below ln(FLT_MAX) (finite) and the next
// one (+Inf), the top of the old clamp (88.3763), the subnormal boundary (-87.3365), the smallest subnormal's
// neighbourhood (-103.28, -103.97) and the 0 / ±Inf / NaN lanes, inside the array so they run in the vector body.
const ex = [...Array.from({ length: 12001 }, (_v, i) => -105 + i * 0.01625 + 1e-4 * Math.sin(i)),
  0, -0, Infinity, -Infinity, NaN, 1e30, -1e30, 88.3763, 88.5, 88.7, 88.72283172607422, 88.72283935546875, -87.3365, -87.7,
  -90, -95, -100, -103.28, -103.9, -103.97, -104, -110, ...Array.from({ length: 64 }, (_v, i) => 88.37 + i * 0.0055)];

/** ulp of the f32 nearest v (the subnormal spacing below 2^-126). */
const ulp32 = (v: number) => Math.max(2 ** -149, 2 ** (Math.floor(Math.log2(Math.abs(v))) - 23));

test('exp within 2 ulp of float64 over the whole range, subnormals and the overflow edge included', async () => {
  const sx = () => { const x = input('x', [ex.length]); return { outputs: { y: x.exp() } }; };
  const low = lowerProgram(sx());
  const src = renderProgramCpp(low.kernels, low.info);
  expect(src).toMatch(/kiln_expf\(/);
  expect(src).not.toMatch(/\bexpf\(/);
  const got = (await compile(sx())).run({ x: Float64Array.from(ex) }).y;
  const bad: Record<string, string[]> = { 'subnormal (x < -87.34)': [], 'top (x > 88.37)': [], rest: [] };
  for (let i = 0; i < ex.length; i++) {
    const x = Math.fround(ex[i]), want = Math.exp(x), w32 = Math.fround(want);
    const ok = Number.isNaN(x) ? Number.isNaN(got[i]) : !Number.isFinite(w32) || want === 0 ? got[i] === w32 : Math.abs(got[i] - want) <= 2 * ulp32(w32);
    const list = bad[x < -87.34 ? 'subnormal (x < -87.34)' : x > 88.37 ? 'top (x > 88.37)' : 'rest'];
    if (!ok && list.length < 3) list.push(`x=${x}: ${got[i]} vs ${want}`);
  }
  expect(bad).toEqual({ 'subnormal (x < -87.34)': [], 'top (x > 88.37)': [], rest: [] });
}, 240_000);

test('special values: -0 keeps its sign, ±Inf saturates, NaN stays NaN', async () => {
  const sx = () => { const x = input('x', [4]); return { outputs: { tanh: x.tanh(), erf: x.erf(), cube: x.pow(3) } }; };
  const got = (await compile(sx())).run({ x: Float64Array.from([-0, Infinity, -Infinity, NaN]) });
  expect(Array.from(got.tanh)).toEqual([-0, 1, -1, NaN]);
  expect(Array.from(got.erf)).toEqual([-0, 1, -1, NaN]);
  expect(Array.from(got.cube)).toEqual([-0, Infinity, -Infinity, NaN]);
}, 240_000);
