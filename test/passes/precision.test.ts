/** The precision policy as a graph pass (no native build): which values it stores in bf16 / f16, which it keeps
 * in f32, and its errors. */
import * as k from '../../compiler/index';
import { collect } from '../../compiler/ir/graph';
import type { Node } from '../../compiler/ir/node';

function smallStep() {
  const x = k.input('x', [4, 8]), y = k.input('y', [4, 6]);
  const frozen = k.param('enc.w', [16, 8], { trainable: false, init: { kind: 'normal', std: 0.3, seed: 1 } });
  const w = k.param('head.w', [6, 16], { init: { kind: 'normal', std: 0.3, seed: 2 } });
  const h = k.layerNorm(k.linear(x, frozen).silu());
  const out = k.softmax(k.linear(h, w));
  const loss = k.mseLoss(out, y);
  return { outputs: { loss, out }, updates: k.adamw([w], k.grad(loss, [w]), { lr: 0.01 }) };
}

const nodes = (spec: k.GraphSpec) => collect(spec).order;
const byOp = (ns: readonly Node[], op: string) => ns.filter((n) => n.op === op);

describe('precision pass', () => {
  test('bf16: templates read bf16, reductions f32, frozen weights bf16, masters and optimizer state f32', () => {
    const spec = smallStep();
    const out = k.applyPrecision(spec, k.precisionPolicy('bf16'));
    const ns = nodes(out);
    const mm = byOp(ns, 'matmul');
    expect(mm.length).toBeGreaterThanOrEqual(3);  // forward 2, backward dW (dX of the frozen layer is needed for none)
    for (const m of mm) { expect(m.inputs.map((i) => i.dtype)).toEqual(['bf16', 'bf16']); expect(m.dtype).toBe('bf16'); }
    const reduces = ns.filter((n) => k.OPS[n.op].lower.kind === 'reduce');
    expect(reduces.length).toBeGreaterThan(3);
    for (const r of reduces) { expect(r.inputs[0].dtype).toBe('f32'); expect(r.dtype).toBe('f32'); }
    const params = new Map(byOp(ns, 'param').map((p) => [(p.attrs as { name: string }).name, p.dtype]));
    expect(params.get('enc.w')).toBe('bf16');
    expect(params.get('head.w')).toBe('f32');
    expect(params.get('head.w.adam_m')).toBe('f32');
    expect(params.get('head.w.adam_v')).toBe('f32');
    // x is read only by a GEMM: fed in bf16 (the host rounds it); y takes part in the loss: stays f32.
    const inputs = new Map(byOp(ns, 'input').map((p) => [(p.attrs as { name: string }).name, p.dtype]));
    expect(inputs.get('x')).toBe('bf16');
    expect(inputs.get('y')).toBe('f32');
    expect(out.outputs.loss.dtype).toBe('f32');
    expect(out.outputs.out.dtype).toBe('f32');
    for (const u of out.updates ?? []) expect(u.value.dtype).toBe('f32');
  });

  test('f32 is the identity; applying a policy twice changes nothing more', () => {
    const spec = smallStep();
    const same = k.applyPrecision(spec, k.precisionPolicy('f32'));
    expect(same.outputs.loss.node).toBe(spec.outputs.loss.node);
    const once = k.applyPrecision(spec, k.precisionPolicy('f16'));
    const twice = k.applyPrecision(once, k.precisionPolicy('f16'));
    expect(twice.outputs.loss.node).toBe(once.outputs.loss.node);
    expect(byOp(nodes(once), 'matmul').every((m) => m.dtype === 'f16')).toBe(true);
  });

  test('a per-module override keeps that module in f32 (its weights and the GEMMs reading them)', () => {
    const spec = smallStep();
    const out = k.applyPrecision(spec, k.precisionPolicy({ precision: 'bf16', modules: { 'enc.': 'f32' } }));
    const ns = nodes(out);
    expect(byOp(ns, 'param').find((p) => (p.attrs as { name: string }).name === 'enc.w')!.dtype).toBe('f32');
    const mm = byOp(ns, 'matmul');
    expect(mm.filter((m) => m.dtype === 'f32').length).toBe(1);
    expect(mm.filter((m) => m.dtype === 'bf16').length).toBe(mm.length - 1);
  });

  test('an unknown precision is a KilnPrecisionError naming the value and the choices', () => {
    expect(() => k.precisionPolicy('fp8' as never, 'compile')).toThrow(k.KilnPrecisionError);
    expect(() => k.precisionPolicy('fp8' as never, 'compile')).toThrow(/compile: unknown precision "fp8" \(expected one of f32, bf16, f16\)/);
    expect(() => k.precisionPolicy({ precision: 'bf16', modules: { 'a.': 'half' as never } })).toThrow(/module 'a\.'.*"half"/);
    expect(() => k.lowerProgram(smallStep(), { precision: 'double' as never })).toThrow(k.KilnPrecisionError);
  });
});
