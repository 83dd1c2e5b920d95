/** NaN, ±Inf, -0 and denormals through the float64 reference, the compiled C++ back end and the CUDA back end on
 * the emulator (one program for all cases each): every back end must say what the reference says. */
import { compile, evaluate, type Tensor } from '../../compiler/index';
import { compileCudaSource, lowerProgram } from '../../compiler/compile';
import { nvccAvailable } from '../../runtime/cuda';
import { renderProgramCuda } from '../../compiler/render/cuda';
import { renderProgramCpp } from '../../compiler/render/cpp';
import { ieeeMismatch, specialCases } from '../ops/special-cases';
import { liftConstants } from '../support/lift';

/** Finite values: f32 against float64 (each expected value is exact or well-conditioned). */
const TOL = 2e-6;

function allCases(): { outputs: Record<string, Tensor>; feeds: Record<string, Float64Array> } {
  const outputs: Record<string, Tensor> = {};
  let feeds: Record<string, Float64Array> = {};
  for (const [name, c] of Object.entries(specialCases)) {
    const lifted = liftConstants({ [name]: c.build() }, name);
    Object.assign(outputs, lifted.outputs);
    feeds = { ...feeds, ...lifted.feeds };
  }
  return { outputs, feeds };
}

describe('IEEE special values', () => {
  test('the float64 reference gives the IEEE values', () => {
    const bad: string[] = [];
    for (const [name, c] of Object.entries(specialCases)) {
      const m = ieeeMismatch(evaluate({ outputs: { y: c.build() } }).outputs.y.data, c.expected, 1e-12);
      if (m) bad.push(`${name}: ${m}`);
    }
    expect(bad).toEqual([]);
  });

  test('the compiled C++ back end gives the same values', async () => {
    const { outputs, feeds } = allCases();
    const got = (await compile({ outputs })).run(feeds);
    const bad = Object.entries(specialCases).map(([name, c]) => [name, ieeeMismatch(got[name], c.expected, TOL)]).filter(([, m]) => m);
    expect(bad).toEqual([]);
  });

  test('the CUDA back end (on the emulator, checked) gives the same values', async () => {
    const { outputs, feeds } = allCases();
    const got = (await compile({ outputs }, { backend: 'cuda-emu', checks: true })).run(feeds);
    const bad = Object.entries(specialCases).map(([name, c]) => [name, ieeeMismatch(got[name], c.expected, TOL)]).filter(([, m]) => m);
    expect(bad).toEqual([]);
  });

  test('max reductions propagate NaN in the generated source of both renderers', () => {
    const { outputs } = allCases();
    const low = lowerProgram({ outputs });
    expect(low.kernels.some((k) => (k.kind === 'reduce' || k.kind === 'row') && (k.kind === 'reduce' ? k.combine === 'max' : k.reductions.some((r) => r.combine === 'max')))).toBe(true);
    const cu = renderProgramCuda(low.kernels, low.info, 0).source;
    const cpp = renderProgramCpp(low.kernels, low.info);
    for (const src of [cu, cpp]) {
      // fmaxf/fminf drop a NaN operand; a select `v > acc ? v : acc` drops a NaN element
      expect(src).not.toMatch(/\bfmaxf\(|\bfminf\(|> acc \?/);
      expect(src).toMatch(/acc\d* = kiln_maxf\(acc\d*, /);
    }
    expect(cpp).toMatch(/reduction\(kiln_max:acc/);
  });

  // With nvcc, the CUDA source (with kiln_maxf in the prelude's warp reduction) must compile.
  (nvccAvailable() ? test : test.skip)('the CUDA source compiles with nvcc', async () => {
    const { outputs } = allCases();
    await compileCudaSource({ outputs });
  });
});
