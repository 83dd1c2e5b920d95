/** The precision policy as a graph pass (no native build): which values it stores in bf16 / f16, which it keeps
 * in f32, and its errors. */
import * as k from '../../compiler/index';
import { collect } from '../../compiler/ir/graph';
import type { Node } from '../../compiler/ir/node';
import { isBackward } from '../../compiler/ir/segment';

function smallStep() {
  const x = k.input('x', [4, 8]), y = k.input('y', [4, 6]);
  const frozen = k.param('enc.w', [16, 8], { trainable: false, init: { kind: 'normal', std: 0.3, seed: 1 } });
  const w = k.param('head.w', [6, 16], { init: { kind: 'normal', std: 0.3, seed: 2 } });
  const h = k.layerNorm(k.linear(x, frozen).silu());
  const out = k.softmax(k.linear(h, w));
  const loss = k.mseLoss(out, y);
  return { outputs: { loss, out }, updates: k.adamw([w], k.grad(loss, [w]), { lr: 0.01 }) };
}

/** A trainable adapter in front of a frozen body (PuLID's shape: the ID adapter before the frozen UNet), so the
 * backward pass runs through group norm, SiLU, layer norm and softmax; the loss compares two softmax heads (no
 * fed target: only the loss rule keeps its values f32). */
function frozenBodyStep() {
  const init = (seed: number) => ({ init: { kind: 'normal' as const, std: 0.4, seed } });
  const frozen = (name: string, shape: number[], seed: number) => k.param(name, shape as never, { trainable: false, ...init(seed) });
  const x = k.input('x', [4, 8]);
  const w0 = k.param('adapter.w', [10, 8], init(1));
  const h = k.linear(k.linear(x, w0), frozen('body.w1', [32, 10], 2));
  const a = k.groupNorm(h, 4, frozen('body.gn.w', [32], 3), frozen('body.gn.b', [32], 4)).silu();
  const b = k.layerNorm(k.linear(a, frozen('body.w2', [12, 32], 5)));
  const pa = k.softmax(k.linear(b, frozen('head.a', [6, 12], 6))), pb = k.softmax(k.linear(b, frozen('head.b', [6, 12], 7)));
  const loss = k.mseLoss(pa, pb);
  return { outputs: { loss }, updates: k.adamw([w0], k.grad(loss, [w0]), { lr: 0.01 }) };
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

  test('bf16 low stores: norm / SiLU / softmax activations stored bf16, statistics and the loss f32, rounding only where a kernel stores', () => {
    const low = k.lowerProgram(frozenBodyStep(), { precision: 'bf16' });
    const roots = low.fusion.groups.map((g) => g.root);
    const kind = (n: Node) => k.OPS[n.op].lower.kind;
    const isStat = (n: Node) => n.shape[n.shape.length - 1] === 1;  // per-row / per-group statistics: [4, 1], [4, 4, 1]
    // Every forward activation the body stores (group norm, SiLU, layer norm, softmax outputs: [4, 32], [4, 4, 8],
    // [4, 12]) is bf16; the statistics stay f32.
    const body = roots.filter((n) => !isBackward(n) && [128, 48].includes(n.shape.reduce((p, q) => p * q, 1)));
    expect(body.filter((n) => kind(n) === 'pointwise').length).toBeGreaterThanOrEqual(4);
    expect(body.filter((n) => n.dtype !== 'bf16').map((n) => `${n.op}#${n.id} ${n.dtype} [${n.shape}] (${n.src})`)).toEqual([]);
    const stats = roots.filter((n) => isStat(n) && n.dtype === 'f32' && !isBackward(n));
    expect(stats.length).toBeGreaterThanOrEqual(4);
    expect(roots.filter((n) => isStat(n) && n.dtype !== 'f32')).toEqual([]);
    // The loss side: the difference of the two softmax heads ([4, 6]) is stored f32 (a loss and what it reduces).
    const lossSide = roots.filter((n) => !isBackward(n) && kind(n) === 'pointwise' && n.shape.join() === '4,6');
    expect(lossSide.length).toBeGreaterThanOrEqual(1);
    for (const n of lossSide) expect(n.dtype).toBe('f32');
    // No value is rounded inside a kernel: a cast to bf16 of a computed value is always what its kernel stores.
    for (const g of low.fusion.groups) {
      const inner = g.region.filter((n) => n !== g.root && n.op === 'cast' && n.dtype === 'bf16' && kind(n.inputs[0]) !== 'source' && n.inputs[0].inputs.length > 0);
      expect(inner.map((n) => `${n.op}#${n.id} in the kernel of ${g.root.op}#${g.root.id}`)).toEqual([]);
    }
  });

  test('rewritten nodes keep their marks: checkpoint segments and gradients survive the bf16 pass', () => {
    const x = k.input('x', [4, 8]);
    const w0 = k.param('a.w', [8, 8], { init: { kind: 'normal', std: 0.3, seed: 1 } });
    const body = k.checkpoint((h: k.Tensor) => k.layerNorm(k.linear(h, k.param('b.w', [8, 8], { trainable: false, init: { kind: 'normal', std: 0.3, seed: 2 } }))).silu());
    const loss = body(k.linear(x, w0)).square().mean();
    const step = { outputs: { loss }, updates: k.sgd([w0], k.grad(loss, [w0]), { lr: 0.1 }) };
    for (const precision of ['f32', 'bf16'] as const) {
      const bufs = k.lowerProgram(step, { precision }).plan.buffers;
      expect([precision, bufs.some((b) => b.segment !== undefined)]).toEqual([precision, true]);
      expect([precision, bufs.some((b) => b.role === 'gradient')]).toEqual([precision, true]);
    }
  });

  test('an unknown precision is a KilnPrecisionError naming the value and the choices', () => {
    expect(() => k.precisionPolicy('fp8' as never, 'compile')).toThrow(k.KilnPrecisionError);
    expect(() => k.precisionPolicy('fp8' as never, 'compile')).toThrow(/compile: unknown precision "fp8" \(expected one of f32, bf16, f16\)/);
    expect(() => k.precisionPolicy({ precision: 'bf16', modules: { 'a.': 'half' as never } })).toThrow(/module 'a\.'.*"half"/);
    expect(() => k.lowerProgram(smallStep(), { precision: 'double' as never })).toThrow(k.KilnPrecisionError);
  });
});
