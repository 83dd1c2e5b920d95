import { OPS, OP_NAMES, evaluate } from '../../compiler/index';
import { isDifferentiable } from '../../compiler/ops/entry';
import { forEachIndex } from '../../compiler/reference/ndarray';
import { forwardCases } from './forward-cases';
import { primitiveGradCases } from './grad-cases';
import { interpBuilder } from '../support/interp';

describe('op registry', () => {
  test('every op has all four parts: shape rule, VJP (or a reason it has none), reference, lowering', () => {
    expect(OP_NAMES.length).toBeGreaterThanOrEqual(50);
    for (const op of OP_NAMES) {
      const d = OPS[op];
      expect(typeof d.infer).toBe('function');
      expect(typeof d.ref).toBe('function');
      expect(['source', 'pointwise', 'reduce', 'extern']).toContain(d.lower.kind);
      if (isDifferentiable(d.vjp)) {
        expect(typeof d.vjp.grad).toBe('function');
        expect(Array.isArray(d.vjp.saves.inputs)).toBe(true);
      } else expect((d.vjp as { none: string }).none.length).toBeGreaterThan(10);
    }
  });

  test('every op has a hand-checked forward case, every differentiable op a finite-difference case', () => {
    for (const op of OP_NAMES) {
      expect(forwardCases).toHaveProperty(op);
      // stop_gradient is differentiable by definition (zero) but disagrees with finite differences on purpose.
      if (isDifferentiable(OPS[op].vjp) && op !== 'stop_gradient') expect(primitiveGradCases).toHaveProperty(op);
    }
  });

  describe('pointwise lowerings agree with the float64 reference (interpreted)', () => {
    for (const op of OP_NAMES.filter((o) => OPS[o].lower.kind === 'pointwise')) {
      test(op, () => {
        const c = forwardCases[op];
        const y = c.build();
        const { values } = evaluate({ outputs: { y } }, c.feeds ?? {});
        const ins = y.node.inputs.map((n) => values.get(n.id)!);
        const lower = OPS[op].lower;
        if (lower.kind !== 'pointwise') throw new Error('unreachable');
        const b = interpBuilder(ins);
        const ctx = { attrs: y.node.attrs, inShapes: ins.map((t) => t.shape), inDtypes: y.node.inputs.map((n) => n.dtype), outShape: y.shape, outDtype: y.dtype };
        const want = values.get(y.node.id)!.data;
        forEachIndex(y.shape, (k, idx) => {
          expect((lower.emit as (b: unknown, o: number[], c: unknown) => number)(b, [...idx], ctx)).toBeCloseTo(want[k], 12);
        });
      });
    }
  });
});
