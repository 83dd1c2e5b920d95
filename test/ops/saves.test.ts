/** A VJP rule's `saves` is true: the gradient graph it builds reads exactly the forward values it declares
 * (inputs by position, the output) — no undeclared one, and every declared one is used. `docs/ops.md` lists
 * the declarations; a memory planner can rely on them. */
import { input, Tensor } from '../../compiler/index';
import { topoSort } from '../../compiler/ir/graph';
import { OPS } from '../../compiler/ops/registry';
import { isDifferentiable } from '../../compiler/ops/entry';
import { isFreeLeaf } from '../../compiler/ops/views';
import type { Op } from '../../compiler/ops/attrs';
import { primitiveGradCases } from './grad-cases';

test('every differentiable primitive reads exactly the forward values its VJP declares', () => {
  const bad: string[] = [];
  for (const [op, c] of Object.entries(primitiveGradCases)) {
    const rule = OPS[op as Op].vjp;
    if (!c || !isDifferentiable(rule)) continue;
    const y = c.f(...c.shapes.map((s, i) => input(`${op}_${i}`, s)));
    const n = topoSort([y.node]).reverse().find((m) => m.op === op);
    if (!n) { bad.push(`${op}: its grad case builds no ${op} node`); continue; }
    const ins = n.inputs.map((i) => new Tensor(i)), out = new Tensor(n);
    const gs = (rule.grad as (g: Tensor, ctx: unknown) => readonly (Tensor | null)[])(input(`${op}_g`, n.shape, n.dtype), { inputs: ins, out, attrs: n.attrs });
    // Walk the gradient graph, stopping at forward values: those are what the rule keeps alive.
    const forward = new Set(topoSort([n]).map((m) => m.id));
    const used = new Set<number>(), seen = new Set<number>();
    const walk = (m: typeof n) => {
      if (seen.has(m.id)) return;
      seen.add(m.id);
      if (forward.has(m.id)) { if (!isFreeLeaf(m)) used.add(m.id); return; }  // constants are rebuilt, not kept
      m.inputs.forEach(walk);
    };
    gs.forEach((g) => g && walk(g.node));
    for (const id of used) if (id !== n.id && !n.inputs.some((i) => i.id === id)) bad.push(`${op}: reads a forward value deeper than its inputs (#${id})`);
    const declared = new Set([...rule.saves.inputs.map((i) => n.inputs[i].id), ...(rule.saves.output ? [n.id] : [])]);
    const values = [...n.inputs.map((v, i) => [`in${i}`, v] as const), ['out', n] as const];
    for (const [name, v] of values) {
      if (used.has(v.id) && !declared.has(v.id)) bad.push(`${op}: reads ${name} but does not declare it`);
      if (!used.has(v.id) && declared.has(v.id) && !values.some(([other, w]) => other !== name && w.id === v.id && used.has(w.id))) bad.push(`${op}: declares ${name} but does not read it`);
    }
  }
  expect(bad).toEqual([]);
});
