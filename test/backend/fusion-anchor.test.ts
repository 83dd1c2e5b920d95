/** Fusion decides, lowering follows: fusion asks codegen's canAnchor before it builds a kernel around a
 * reduction or template, so an epilogue that reads the anchor at another element (a rotation here) is refused
 * up front with a recorded reason instead of lowering throwing and fusion running again. */
import { compile, concat, evaluate, input, softmax } from '../../compiler/index';
import { canAnchor } from '../../compiler/codegen/lower';
import { fuse } from '../../compiler/schedule/fusion';
import { collect } from '../../compiler/ir/graph';
import { lowerProgram } from '../../compiler/compile';
import { relErr } from '../support/lift';

const x = input('x', [4, 5]);
const rotated = () => { const r = x.sum(1); return concat([r.narrow(0, 1, 3), r.narrow(0, 0, 1)], 0).mul(2); };
const feeds = { x: Array.from({ length: 20 }, (_v, i) => i * 0.5 - 3) };

describe('canAnchor', () => {
  test('an epilogue reading its reduction at another element is not fused, and says why', async () => {
    const y = rotated();
    const low = lowerProgram({ outputs: { y } });
    expect(low.fusion.whyNot.some((w) => /^sum#\d+ .*: an epilogue reads it at another index than the element it computes$/.test(w))).toBe(true);
    // structured: the node and a reason code tests can assert
    expect(low.fusion.reasons.map((r) => [r.node.op, r.code])).toEqual([['sum', 'anchor-misread']]);
    expect(low.kernels.map((k) => k.kind)).toEqual(['reduce', 'pointwise']);
    const prog = await compile({ outputs: { y } });
    expect(relErr(prog.run(feeds).y, evaluate({ outputs: { y } }, feeds).outputs.y.data)).toBeLessThanOrEqual(1e-6);
  });

  test('an epilogue reading it in place fuses into one kernel', () => {
    const low = lowerProgram({ outputs: { y: x.sum(1).mul(2).exp() } });
    expect(low.kernels.map((k) => k.kind)).toEqual(['reduce']);
    expect(low.fusion.whyNot).toEqual([]);
  });

  test('the predicate itself: every group fusion forms fits; the rotated epilogue does not', () => {
    const z = softmax(x).mul(3).add(x.max(1, true));
    const { order } = collect({ outputs: { z } });
    const f = fuse(order, [z.node], new Set());
    expect(f.groups.some((g) => g.rows.length > 0)).toBe(true);  // softmax's reductions run as row stages
    for (const g of f.groups) expect(canAnchor(g)).toBe(true);
    const y = rotated();
    const nodes = collect({ outputs: { y } }).order;
    const sum = nodes.find((n) => n.op === 'sum')!;
    const region = nodes.filter((n) => n.op !== 'input');  // the sum and everything after it, inlined
    expect(canAnchor({ root: y.node, anchor: sum, rows: [], region })).toBe(false);
  });
});
