/** The generated C++ reads cleanly and is re-entrant: no extent-1 loops or void
 * casts of O, and no mutable globals (template epilogues get the arena through the kiln_frame their kernel passes). */
import { compile, evaluate, input, linear, softmax } from '../../compiler/index';
import { lowerProgram } from '../../compiler/compile';
import { renderProgramCpp } from '../../compiler/render/cpp';
import { relErr } from '../support/lift';

function graph() {
  const x = input('x', [1, 4, 8]), w = input('w', [6, 8]);
  const h = softmax(linear(x, w).add(1)).sum(2, true);  // GEMM with a fused epilogue, a row kernel, a reduction
  return { outputs: { h } };
}
const feeds = { x: Array.from({ length: 32 }, (_v, i) => Math.sin(i)), w: Array.from({ length: 48 }, (_v, i) => Math.cos(i * 0.3)) };

describe('generated C++', () => {
  test('has no noise: extent-1 loops, void casts', () => {
    const low = lowerProgram(graph());
    const src = renderProgramCpp(low.kernels, low.info);
    expect(src).toMatch(/kiln_gemm_f32\(/);
    expect(src).not.toMatch(/\(void\)O/);
    expect(src).not.toMatch(/; \w+ < 1; \+\+/);
  });

  test('has no mutable globals: epilogues read the arena from the kernel\'s frame', () => {
    const low = lowerProgram(graph());
    const src = renderProgramCpp(low.kernels, low.info);
    const globals = src.split('\n').filter((l) => /^static (?!const )(?!inline )[\w:<>*\s]+[=;]/.test(l));
    expect(globals).toEqual([]);
    expect(src).not.toMatch(/kiln_A|kiln_O\b/);
    expect(src).toMatch(/const kiln_frame fr = \{A, O\};/);
  });

  test('two programs loading the same library, run interleaved, each give the reference', async () => {
    const a = await compile(graph()), b = await compile(graph());
    expect(a.sourcePath).toBe(b.sourcePath);
    const want = evaluate(graph(), feeds).outputs.h.data;
    const other = { x: feeds.x.map((v) => -v), w: feeds.w };
    const wantOther = evaluate(graph(), other).outputs.h.data;
    for (let i = 0; i < 3; i++) {
      expect(relErr(a.run(feeds).h, want)).toBeLessThanOrEqual(1e-5);
      expect(relErr(b.run(other).h, wantOther)).toBeLessThanOrEqual(1e-5);
    }
  });
});
