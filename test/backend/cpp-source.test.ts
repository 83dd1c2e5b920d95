/** The generated C++ reads cleanly and is re-entrant: no extent-1 loops or void
 * casts of O, and no mutable globals (template epilogues get the arena through the kiln_frame their kernel passes). */
import { compile, evaluate, input, linear, logSoftmax, softmax } from '../../compiler/index';
import { lowerProgram } from '../../compiler/compile';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { repoRoot } from '../../compiler/ir/source';
import { PAR_MIN_ELEMS, renderProgramCpp } from '../../compiler/render/cpp';
import { relErr } from '../support/lift';

function graph() {
  const x = input('x', [1, 4, 8]), w = input('w', [6, 8]);
  const h = softmax(linear(x, w).add(1)).sum(2, true);  // GEMM with a fused epilogue, a row kernel, a reduction
  return { outputs: { h } };
}
const feeds = { x: Array.from({ length: 32 }, (_v, i) => Math.sin(i)), w: Array.from({ length: 48 }, (_v, i) => Math.cos(i * 0.3)) };

describe('generated C++', () => {
  test('asks kernels/cpu/parallel.h whether a loop goes parallel, whose default the renderer shares', () => {
    const header = readFileSync(path.join(repoRoot, 'kernels/cpu/parallel.h'), 'utf8');
    expect(Number(/#define KILN_PAR_MIN_ELEMS (\d+)/.exec(header)?.[1])).toBe(PAR_MIN_ELEMS);
    const x = input('x', [300, 1000]);
    const low = lowerProgram({ outputs: { y: x.mul(2).add(1) } });
    expect(renderProgramCpp(low.kernels, low.info)).toMatch(/#pragma omp parallel for schedule\(static\) if\(kiln::par_elems\(300000\)\)/);
  });

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

  // render/cpp.ts nextRowPrefetch: rows of 4 KiB to 64 KiB prefetch the next row's first-stage loads in the second
  // stage, one per 64-byte line; shorter and longer rows do not. Prefetches change no value: the rows of 1024 and
  // 1030 (a ragged tail) against the float64 evaluator.
  test('row kernels of 4-64 KiB rows prefetch the next row; others do not', async () => {
    const src = (spec: { outputs: Record<string, ReturnType<typeof input>> }) => { const low = lowerProgram(spec); return renderProgramCpp(low.kernels, low.info); };
    const rows = (n: number, log = false) => { const x = input('x', [3, n]); return { outputs: { y: log ? logSoftmax(x) : softmax(x) } }; };
    const pf = src(rows(1024)).split('\n').filter((l) => l.includes('__builtin_prefetch'));
    expect(pf.map((l) => l.trim())).toEqual([0, 16, 32, 48].map((q) => `__builtin_prefetch(&b0[(((o0 + 1) * 1024) + (r0_b + ${q}))]);`));
    expect(src(rows(1000))).not.toMatch(/__builtin_prefetch/);
    expect(src(rows(20000))).not.toMatch(/__builtin_prefetch/);
    for (const [n, log] of [[1024, false], [1030, true]] as const) {
      const xs = Float64Array.from({ length: 3 * n }, (_v, i) => 4 * Math.sin(i * 0.37));
      const got = (await compile(rows(n, log))).run({ x: xs }).y, want = evaluate(rows(n, log), { x: xs }).outputs.y.data;
      expect(relErr(got, want)).toBeLessThanOrEqual(1e-5);
    }
  }, 120_000);

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
