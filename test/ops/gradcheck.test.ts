import { gradcheck } from '../support/gradcheck';
import { compositeGradCases, primitiveGradCases } from './grad-cases';

const TOL = 1e-6;

describe('VJP vs central finite differences (float64, relative error <= 1e-6)', () => {
  for (const [op, c] of Object.entries(primitiveGradCases)) {
    test(`${op}: ${c!.name}`, () => {
      for (const e of gradcheck(c!)) expect(e).toBeLessThanOrEqual(TOL);
    });
  }
  for (const c of compositeGradCases) {
    test(`composite: ${c.name}`, () => {
      for (const e of gradcheck(c)) expect(e).toBeLessThanOrEqual(TOL);
    });
  }
});
