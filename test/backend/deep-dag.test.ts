/** Hash-consing and code generation are linear in the size of the expression DAG: keys are interned ids, not
 * concatenations of the children's keys (which grew exponentially with shared subexpressions: the max-pool
 * 4x4-with-padding gradient died with `RangeError: Invalid string length` in codegen/expr.ts). */
import { compile, evaluate, grad, input, maxPool2d } from '../../compiler/index';
import { lowerProgram } from '../../compiler/compile';
import { renderProgramCpp } from '../../compiler/render/cpp';
import * as E from '../../compiler/codegen/expr';
import type { Expr, Kernel } from '../../compiler/codegen/kir';
import { ExprPrinter } from '../../compiler/render/cstyle';
import { cppLang } from '../../compiler/render/cpp';
import { relErr } from '../support/lift';
import { fullTest } from '../support/full';

/** Every expression node a kernel holds (each once). */
function nodesOf(k: Kernel): Expr[] {
  const seen = new Map<string, Expr>();
  const walk = (e: Expr) => {
    if (seen.has(e.key)) return;
    seen.set(e.key, e);
    if (e.k === 'alu' || e.k === 'where') e.args.forEach(walk);
    else if (e.k === 'cast') walk(e.x);
    else if (e.k === 'load') { walk(e.off); if (e.mask) walk(e.mask); }
    else if (e.k === 'philox') { walk(e.key_); walk(e.ctr); }
  };
  if (k.kind !== 'commit') for (const s of k.stores) { walk(s.value); walk(s.off); }
  if (k.kind === 'reduce') walk(k.value);
  if (k.kind === 'row') k.reductions.forEach((r) => walk(r.value));
  return [...seen.values()];
}

const poolGrad = (shape: [number, number, number, number], k: number, pad: number) => {
  const x = input('x', shape);
  const y = maxPool2d(x, k, 1, pad);
  return { x, g: grad(y.mul(y).sum(), [x])[0] };
};

describe('expression DAGs with shared subexpressions', () => {
  test('a chain of 300 self-sharing levels builds, keys stay short, and it renders one line per node', () => {
    let x = E.load(0, E.variable('i0', 8), 'f32');
    for (let i = 0; i < 300; i++) x = E.alu('add', E.alu('mul', x, x), x);  // string keys would be ~3^300 long
    expect(x.key.length).toBeLessThan(12);
    const p = new ExprPrinter(cppLang, (b) => `b${b}`);
    p.print(x);
    expect(p.lines.length).toBe(1 + 2 * 300);  // the load, then one mul and one add per level
  });

  // g++ takes about 25 s on its 100 kB kernel: full run only
  fullTest('max-pool 4x4 with padding: the gradient compiles on C++ and matches the reference', async () => {
    const { g } = poolGrad([1, 2, 7, 7], 4, 1);
    const prog = await compile({ outputs: { g } });
    const feeds = { x: Array.from({ length: 98 }, (_v, i) => Math.sin(i * 1.7) * 3) };  // distinct values: no ties
    const e = relErr(prog.run(feeds).g, evaluate({ outputs: { g } }, feeds).outputs.g.data);
    expect(e).toBeLessThanOrEqual(1e-5);
  });

  test('max-pool 7x7 backward lowers and renders in bounded time with short keys', () => {
    const { g } = poolGrad([1, 2, 12, 12], 7, 3);
    const t0 = performance.now();
    const low = lowerProgram({ outputs: { g } });
    const src = renderProgramCpp(low.kernels, low.info);
    const ms = performance.now() - t0;
    const nodes = low.kernels.flatMap(nodesOf);
    expect(Math.max(...nodes.map((n) => n.key.length))).toBeLessThan(12);
    // each distinct value node prints at most one line: the source is linear in the DAG
    expect(src.split('\n').length).toBeLessThan(nodes.length + 200);
    expect(ms).toBeLessThan(60000);  // about 3 s on 2 busy cores; string keys never finished
  });

  test('sums of index terms have one canonical order (by structure, not by build order)', () => {
    const v = E.variable('i0', 100), w = E.variable('i1', 100);
    const q = E.alu('idiv', E.alu('add', E.alu('mul', v, E.idx(7)), w), E.idx(3)), m = E.alu('mod', w, E.idx(5));
    const a = E.alu('add', E.alu('add', q, m), v), b = E.alu('add', v, E.alu('add', m, q));
    expect(a.key).toBe(b.key);
    expect(a.h).toBe(b.h);
  });
});
