/** CPU row kernels (softmax, log-softmax, LayerNorm, GroupNorm + SiLU, forward and backward) against the float64
 * reference evaluator at ragged row lengths, on a transposed (non-contiguous) input, and on rows too long for
 * the row-stage cache (compiler/render/row-cache.ts), plus what the renderer emits: softmax's sum stage keeps its
 * exp in a row buffer that the store stage reads, cheap shared values are not cached, row-invariant values
 * (log of the sum) are computed before the store loop, and a row over the cache budget recomputes. */
import { compile, constant, evaluate, grad, groupNorm, input, layerNorm, logSoftmax, softmax, type Tensor } from '../../compiler/index';
import { lowerProgram } from '../../compiler/compile';
import { renderProgramCpp } from '../../compiler/render/cpp';
import { planRowCache } from '../../compiler/render/row-cache';
import type { RowKernel } from '../../compiler/codegen/kir';

const LENGTHS = [1, 7, 17, 63, 65, 1000];
const R = 3;

const values = (n: number, seed: number, scale = 3): Float64Array =>
  Float64Array.from({ length: n }, (_v, i) => scale * Math.sin(i * 0.37 + seed) + 0.5 * Math.cos(i * 1.3 * seed));

/** Every row op of one length L, forward or gradient (of Σ c ∘ f(x)), contiguous and through a transpose. The
 * forward ops get their own program: beside the backward, fusion splits softmax's forward differently (the
 * backward reads its exp), and the forward alone is the row kernel that caches exp. */
function graph(L: number, part: 'fwd' | 'bwd') {
  const g = input('g', [L]), b = input('b', [L]);
  const x4 = input('x4', [2, 4, L]), g4 = input('g4', [4]), b4 = input('b4', [4]);
  const cot = (t: Tensor) => constant(values(t.shape.reduce((a, d) => a * d, 1), 7, 1), t.shape);
  const outputs: Record<string, Tensor> = {};
  const fs: Record<string, (v: Tensor) => Tensor> = {
    softmax: (v) => softmax(v), logsm: (v) => logSoftmax(v), ln: (v) => layerNorm(v, g, b),
  };
  for (const [name, f] of Object.entries(fs)) {
    // Inputs of their own per op: softmax and log-softmax of one x would share max(x), a kernel of its own.
    const x = input(`x_${name}`, [R, L]), xt = input(`xt_${name}`, [L, R]);
    for (const [tag, v, leaf] of [['', x, x], ['_t', xt.mT(), xt]] as const) {
      const y = f(v);
      if (part === 'fwd') outputs[name + tag] = y;
      else [outputs[`${name}${tag}_dx`]] = grad(y.mul(cot(y)).sum(), [leaf]);
    }
  }
  const gn = groupNorm(x4, 2, g4, b4).silu();
  if (part === 'fwd') outputs.gn = gn;
  else [outputs.gn_dx, outputs.gn_dg, outputs.gn_db] = grad(gn.mul(cot(gn)).sum(), [x4, g4, b4]);
  return { outputs };
}
const feedsOf = (L: number) => ({
  ...Object.fromEntries(['softmax', 'logsm', 'ln'].flatMap((n, i) => [[`x_${n}`, values(R * L, 1 + i)], [`xt_${n}`, values(L * R, 11 + i)]])),
  g: values(L, 3, 0.5).map((v) => 1 + v), b: values(L, 4, 0.2),
  x4: values(8 * L, 5), g4: values(4, 6, 0.5).map((v) => 1 + v), b4: values(4, 7, 0.2),
});

/** Per element: |got − want| ≤ tol · max(1, max |want| of that output). */
function maxErr(got: ArrayLike<number>, want: ArrayLike<number>): number {
  let scale = 1, e = 0;
  for (let i = 0; i < want.length; i++) scale = Math.max(scale, Math.abs(want[i]));
  for (let i = 0; i < want.length; i++) e = Math.max(e, Math.abs(got[i] - want[i]));
  return Number.isNaN(e) ? Infinity : e / scale;
}

describe('CPU row kernels against the float64 reference', () => {
  test.each(LENGTHS.flatMap((L) => [[L, 'fwd'], [L, 'bwd']] as const))('row length %i, %s: contiguous and transposed', async (L, part) => {
    if (part === 'fwd' && L > 1) {  // the forward program runs the row-stage cache (a row of 1 is no row kernel)
      const low = lowerProgram(graph(L, part));
      expect(renderProgramCpp(low.kernels, low.info)).toMatch(/kiln_row0\[r0\] = /);
    }
    const prog = await compile(graph(L, part));
    const feeds = feedsOf(L);
    const got = prog.run(feeds), want = evaluate(graph(L, part), feeds).outputs;
    expect(Object.keys(got).sort()).toEqual(Object.keys(want).sort());
    for (const [name, w] of Object.entries(want)) expect(got[name]).toHaveLength(w.data.length);
    // Every output within bound (the failing ones listed by name with their error).
    const bad = Object.entries(want).map(([name, w]) => [name, maxErr(got[name], w.data)] as const).filter(([, e]) => !(e <= 1e-5));
    expect(bad).toEqual([]);
  }, 240_000);

  test('a row over two axes of a permuted input: the row buffer is indexed by the flat position in the row', async () => {
    const spec = () => {
      const xt = input('x', [4, 5, 6]).transpose(1, 2);
      const e = xt.sub(xt.max([1, 2], true).stopGradient()).exp();
      return { outputs: { y: e.div(e.sum([1, 2], true)) } };
    };
    const low = lowerProgram(spec());
    expect(renderProgramCpp(low.kernels, low.info)).toMatch(/kiln_row0\[r0 \* 5 \+ r1\] = /);
    const feeds = { x: values(120, 8) };
    expect(maxErr((await compile(spec())).run(feeds).y, evaluate(spec(), feeds).outputs.y.data)).toBeLessThanOrEqual(1e-5);
  }, 240_000);

  test('a row longer than the cache budget recomputes and still matches', async () => {
    const L = 17000;  // 68 000 bytes of exp per row > 64 KiB; 8 rows, so the rows (not the reduction) run in parallel
    const spec = () => { const x = input('x', [8, L]); return { outputs: { y: softmax(x) } }; };
    const low = lowerProgram(spec());
    expect(renderProgramCpp(low.kernels, low.info)).not.toMatch(/kiln_row\d/);
    const feeds = { x: values(8 * L, 9) };
    const got = (await compile(spec())).run(feeds).y;
    expect(maxErr(got, evaluate(spec(), feeds).outputs.y.data)).toBeLessThanOrEqual(1e-5);
  }, 240_000);
});

describe('row-stage cache and row-invariant values in the generated C++', () => {
  const rowKernel = (spec: { outputs: Record<string, Tensor> }): { k: RowKernel; src: string } => {
    const low = lowerProgram(spec);
    const k = low.kernels.find((x) => x.kind === 'row') as RowKernel;
    return { k, src: renderProgramCpp(low.kernels, low.info) };
  };

  test('softmax: the sum stage writes exp to a row buffer, the store stage reads it and computes no exp', () => {
    const { k, src } = rowKernel({ outputs: { y: softmax(input('x', [64, 1000])) } });
    const plan = planRowCache(k, 65536);
    expect(plan.buffers.map((b) => [b.writer, b.node.k === 'alu' && b.node.op])).toEqual([[1, 'exp']]);
    expect(plan.reads).toEqual([[], [], [0]]);
    expect(src).toMatch(/alignas\(64\) float kiln_row0\[1000\];/);
    expect(src).toMatch(/kiln_row0\[r0\] = t1_\d+;/);
    const store = src.slice(src.lastIndexOf('#pragma omp simd'));
    expect(store).toMatch(/kiln_row0\[r0\] \/ acc1/);
    expect(store).not.toMatch(/kiln_expf/);
    expect(planRowCache(k, 3999).buffers).toEqual([]);  // over budget: recompute
  });

  test('LayerNorm: x - mean is shared but cheap, so nothing is cached; rstd is computed once per row', () => {
    const { k, src } = rowKernel({ outputs: { y: layerNorm(input('x', [64, 320]), input('g', [320]), input('b', [320])) } });
    expect(planRowCache(k, 65536).buffers).toEqual([]);
    expect(src).toMatch(/const float e\d+ = \(1\.0f \/ sqrtf\(e\d+\)\);\n\s*#pragma omp simd\n/);
  });

  test('log-softmax: the log of the sum is computed once per row, before the store loop', () => {
    const { src } = rowKernel({ outputs: { y: logSoftmax(input('x', [64, 1000])) } });
    expect(src).toMatch(/const float e\d+ = logf\(acc1\);\n\s*#pragma omp simd\n/);
  });
});

describe('CPU row kernels: NaN and ±Inf in rows long enough for the lane-split reductions', () => {
  // Rows of 65 and 1000 (over the 64 partial accumulators of render/cpp.ts, with a ragged tail): a NaN in a
  // row makes the row NaN (at the start, in the 64-lane blocks, in the tail), -Inf entries get softmax weight 0
  // (exp(-Inf) = 0), +Inf gives Inf - Inf = NaN; the other rows are untouched.
  const special = (L: number): Float64Array => {
    const x = values(5 * L, 21);
    x[0 * L + 0] = NaN;  // row 0: NaN first
    x[1 * L + L - 1] = NaN;  // row 1: NaN in the tail (or the last block)
    for (const j of [0, 3, 64, L - 1]) x[2 * L + j] = -Infinity;  // row 2: -Inf entries
    x[3 * L + (L >> 1)] = Infinity;  // row 3: +Inf
    return x;  // row 4: finite
  };
  const same = (got: ArrayLike<number>, want: ArrayLike<number>): string[] => {
    const bad: string[] = [];
    for (let i = 0; i < want.length; i++) {
      const w = want[i], g = got[i];
      const ok = Number.isNaN(w) ? Number.isNaN(g) : !Number.isFinite(w) ? g === w : Math.abs(g - w) <= 1e-5 * Math.max(1, Math.abs(w));
      if (!ok && bad.length < 5) bad.push(`[${i}] ${g} vs ${w}`);
    }
    return bad;
  };
  test.each([65, 1000])('softmax, log-softmax, LayerNorm, rows of %i', async (L) => {
    const spec = () => {
      const a = input('a', [5, L]), b = input('b', [5, L]), c = input('c', [5, L]);
      return { outputs: { sm: softmax(a), lsm: logSoftmax(b), ln: layerNorm(c, input('g', [L]), input('bb', [L])) } };
    };
    const feeds = { a: special(L), b: special(L), c: special(L), g: values(L, 3, 0.5).map((v) => 1 + v), bb: values(L, 4, 0.2) };
    const got = (await compile(spec())).run(feeds), want = evaluate(spec(), feeds).outputs;
    expect(Number.isNaN(want.sm.data[0]) && want.sm.data[2 * L] === 0 && Number.isNaN(want.sm.data[3 * L])).toBe(true);
    for (const name of ['sm', 'lsm', 'ln']) expect([name, same(got[name], want[name].data)]).toEqual([name, []]);
  }, 240_000);

  test('GroupNorm + SiLU with a NaN in one group (split store loop, lane-split sums)', async () => {
    const spec = () => ({ outputs: { y: groupNorm(input('x', [1, 4, 8, 9]), 2, input('g', [4]), input('b', [4])).silu() } });
    const x = values(288, 5);
    x[200] = NaN;  // group 1 only
    const feeds = { x, g: values(4, 6, 0.5).map((v) => 1 + v), b: values(4, 7, 0.2) };
    const low = lowerProgram(spec());
    expect(renderProgramCpp(low.kernels, low.info)).toMatch(/const int64_t r0 = r0_q \* 72 \+ r0_w;/);
    const got = (await compile(spec())).run(feeds).y, want = evaluate(spec(), feeds).outputs.y.data;
    expect(Array.from(want.slice(144), Number.isNaN).every(Boolean)).toBe(true);
    expect(same(got, want)).toEqual([]);
  }, 240_000);
});
