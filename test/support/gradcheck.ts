/** Central finite differences in float64 against Kiln's graph gradients (jax's check_grads, by hand). */
import { input, constant, grad, evaluate, type Tensor } from '../../compiler/index';
import { normalFill, uniformFill } from '../../compiler/ir/philox';
// Globals are bound once per module: every global lookup is slow inside jest's vm contexts.
const M = Math;

export type Domain = 'real' | 'positive' | 'distinct' | 'unit';
export interface GradCase {
  name: string;
  shapes: readonly (readonly number[])[];
  domains?: readonly Domain[];
  f: (...xs: Tensor[]) => Tensor;
}

/** Deterministic test values: standard normal, positive in [0.5, 2), distinct (a shuffled ramp: no ties),
 * or in (-0.9, 0.9). */
export function values(shape: readonly number[], domain: Domain, seed: number): Float64Array {
  const n = shape.reduce((a, b) => a * b, 1);
  const u = uniformFill(n, seed, 7);
  switch (domain) {
    case 'real': return normalFill(n, seed, 3);
    case 'positive': return u.map((x) => 0.5 + 1.5 * x);
    case 'unit': return u.map((x) => 1.8 * x - 0.9);
    case 'distinct': {
      const order = Array.from({ length: n }, (_v, i) => i).sort((a, b) => u[a] - u[b]);
      const out = new Float64Array(n);
      order.forEach((k, i) => { out[k] = (i - n / 2) * 0.37; });
      return out;
    }
  }
}

/** Normwise relative error ||analytic - numeric|| / ||numeric|| for every input of the case. */
export function gradcheck(c: GradCase, h = 1e-5): number[] {
  const xs = c.shapes.map((s, i) => input(`x${i}`, s));
  const y = c.f(...xs);
  const cot = constant(values(y.shape, 'real', 99), y.shape);
  const loss = y.mul(cot).sum();
  const grads = grad(loss, xs);
  const feeds: Record<string, Float64Array> = {};
  c.shapes.forEach((s, i) => { feeds[`x${i}`] = values(s, c.domains?.[i] ?? 'real', 11 + i); });
  const outs: Record<string, Tensor> = { loss };
  grads.forEach((g, i) => { outs[`g${i}`] = g; });
  const res = evaluate({ outputs: outs }, feeds);
  const lossOnly = { outputs: { loss } };
  return c.shapes.map((_s, i) => {
    const analytic = res.outputs[`g${i}`].data;
    const x = feeds[`x${i}`];
    let num2 = 0, diff2 = 0;
    for (let k = 0; k < x.length; k++) {
      const keep = x[k];
      x[k] = keep + h; const lp = evaluate(lossOnly, feeds).outputs.loss.data[0];
      x[k] = keep - h; const lm = evaluate(lossOnly, feeds).outputs.loss.data[0];
      x[k] = keep;
      const numeric = (lp - lm) / (2 * h);
      num2 += numeric * numeric;
      diff2 += (numeric - analytic[k]) ** 2;
    }
    return M.sqrt(diff2) / M.max(M.sqrt(num2), 1e-12);
  });
}
