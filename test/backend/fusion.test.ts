/** Pass tests: small graphs and the kernels they must become. */
import { compile, input, param, softmax, layerNorm, groupNorm, linear, evaluate, grad, maxPool2d } from '../../compiler/index';
import { normalFill } from '../../compiler/ir/philox';
import { relErr } from '../support/lift';

const feedsFor = (shapes: Record<string, number[]>) => Object.fromEntries(Object.entries(shapes).map(([k, s], i) => [k, normalFill(s.reduce((a, b) => a * b, 1), 40 + i)]));

async function check(outputs: Record<string, ReturnType<typeof input>>, shapes: Record<string, number[]>) {
  const prog = await compile({ outputs });
  const feeds = feedsFor(shapes);
  const got = prog.run(feeds), want = evaluate({ outputs }, feeds).outputs;
  for (const k of Object.keys(outputs)) expect(relErr(got[k], want[k].data)).toBeLessThan(1e-5);
  return prog;
}

describe('fusion', () => {
  test('softmax over the last axis is one row kernel (max, sum, normalize)', async () => {
    const x = input('x', [6, 40]);
    const prog = await check({ y: softmax(x) as never }, { x: [6, 40] });
    expect(prog.kernels.map((k) => k.kind)).toEqual(['row']);
  });

  test('layer norm with affine is one row kernel', async () => {
    const x = input('x', [5, 32]);
    const prog = await check({ y: layerNorm(x, param('w', [32], { init: { kind: 'normal', std: 1, seed: 1 } }), param('b', [32])) as never }, { x: [5, 32] });
    expect(prog.kernels.length).toBe(1);
  });

  test('group norm + SiLU on NCHW is one row kernel over [N, groups] rows', async () => {
    const x = input('x', [2, 8, 4, 4]);
    const prog = await check({ y: groupNorm(x, 4, param('g', [8], { init: { kind: 'ones' } }), param('b', [8])).silu() as never }, { x: [2, 8, 4, 4] });
    expect(prog.kernels.length).toBe(1);
    const k = prog.kernels[0];
    expect(k.kind === 'row' && k.outer.join() === '2,4' && k.reductions.length === 2).toBe(true);
  });

  test('a chain of elementwise ops with broadcasts is one kernel; matmul + bias + GELU-ish epilogue fuse into the GEMM', async () => {
    const x = input('x', [8, 16]), w = param('w', [12, 16], { init: { kind: 'normal', std: 0.3, seed: 2 } }), b = param('b', [12], { init: { kind: 'normal', std: 0.3, seed: 3 } });
    const prog = await check({ y: linear(x, w, b).silu().mul(2).add(1) as never }, { x: [8, 16] });
    expect(prog.kernels.length).toBe(1);
    expect(prog.kernels[0].kind).toBe('extern');
  });

  test('regression: the gradient of leakyRelu(layerNorm(linear(x))) compiles and matches (a row-kernel candidate read by two kernels)', async () => {
    const x = input('x', [3, 4]), w = param('w', [10, 4], { init: { kind: 'normal', std: 0.5, seed: 5 } }), b = param('b', [10]);
    const y = layerNorm(linear(x, w, b)).leakyRelu(0.1).sum();
    const [gw] = grad(y, [w]);
    await check({ y: y as never, gw: gw as never }, { x: [3, 4] });
  });

  test('a statistic that something else needs is kept in memory (no row kernel), and results still match', async () => {
    const x = input('x', [4, 16]);
    const m = x.mean(1, true);
    await check({ y: x.sub(m) as never, m: m as never }, { x: [4, 16] });
  });
});

/** Fusion step 2b: a value one kernel reads at several index maps is evaluated once per map. A max-pool's backward
 * (a chain of `maximum` over 9 strided windows, each window's gradient needing the maxima before it) inlined the
 * whole chain at each of the 9 windows an input element falls in: 530 operations per element in the face network's
 * pool, its costliest kernel. Such values are realized when cost x maps exceeds the bound; the results are the
 * float64 reference's either way, and cheap stencils stay fused. */
describe('fusion: values recomputed at many index maps', () => {
  const loadsOf = (k: { kind: string }): number => {
    const seen = new Set<string>();
    let loads = 0;
    const walk = (e: { k: string; key: string; args?: readonly unknown[]; x?: unknown; off?: unknown; mask?: unknown }) => {
      if (seen.has(e.key)) return;
      seen.add(e.key);
      if (e.k === 'load') loads++;
      for (const c of [...(e.args ?? []), e.x, e.off, e.mask]) if (c) walk(c as never);
    };
    for (const s of (k as { stores?: readonly { value: never }[] }).stores ?? []) walk(s.value);
    return loads;
  };

  test('max-pool 3x3/2 backward: the window maxima are realized, not recomputed per window; gradient matches', async () => {
    const x = input('x', [2, 3, 11, 11]);
    const w = input('w', [2, 3, 5, 5]);
    const y = maxPool2d(x.relu(), 3, 2).mul(w).sum();
    const [gx] = grad(y, [x]);
    const prog = await check({ y: y as never, gx: gx as never }, { x: [2, 3, 11, 11], w: [2, 3, 5, 5] });
    const codes = prog.parts.fusion.reasons.filter((r) => r.code === 'recompute-multiplied');
    expect(codes.length).toBeGreaterThan(0);
    expect(codes.every((r) => /index maps in the kernel of/.test(r.text))).toBe(true);
    // The kernel storing gx reads each window's values once: 9 windows x a few buffers, not the 9 x 9 chain.
    const gxKernel = prog.kernels.filter((k) => k.kind === 'pointwise' && loadsOf(k) > 0).sort((a, b) => loadsOf(b) - loadsOf(a))[0];
    expect(loadsOf(gxKernel)).toBeLessThan(60);
  });

  test('a cheap two-tap stencil stays one kernel', async () => {
    const x = input('x', [4, 33]);
    const d = x.slice([0, 1], [4, 33]).sub(x.slice([0, 0], [4, 32])).mul(0.5);
    const prog = await check({ d: d as never }, { x: [4, 33] });
    expect(prog.kernels.length).toBe(1);
    expect(prog.parts.fusion.reasons.filter((r) => r.code === 'recompute-multiplied')).toHaveLength(0);
  });
});
