import { evaluate } from '../../compiler/index';
import { forwardCases } from './forward-cases';

describe('forward: every primitive against hand-checked values (float64 reference)', () => {
  for (const [op, c] of Object.entries(forwardCases)) {
    test(op, () => {
      const y = c.build();
      expect(y.node.op).toBe(op);
      expect([...y.shape]).toEqual([...c.shape]);
      const out = evaluate({ outputs: { y } }, c.feeds ?? {}).outputs.y;
      expect(out.data.length).toBe(c.expected.length);
      out.data.forEach((v, i) => expect(v).toBeCloseTo(c.expected[i], 12));
    });
  }
});
