/** A Builder<number> that runs pointwise lowerings directly in float64: it checks every op's lowering against
 * its reference before any code generator sees it. */
import type { Builder, ScalarOp } from '../../compiler/ops/lowering';
import { castValue, type DType } from '../../compiler/ir/dtype';
import { stridesOf, type Shape } from '../../compiler/ir/shape';
import { erf, sigmoid } from '../../compiler/reference/math';
import { uniformFill } from '../../compiler/ir/philox';
// Globals are bound once per module: every global lookup is slow inside jest's vm contexts.
const M = Math;

const alu: Record<ScalarOp, (...a: number[]) => number> = {
  add: (a, b) => a + b, sub: (a, b) => a - b, mul: (a, b) => a * b, div: (a, b) => a / b,
  idiv: (a, b) => M.trunc(a / b), mod: (a, b) => a % b, pow: M.pow, max: M.max, min: M.min,
  lt: (a, b) => +(a < b), le: (a, b) => +(a <= b), eq: (a, b) => +(a === b), ne: (a, b) => +(a !== b),
  and: (a, b) => +(a && b), or: (a, b) => +(a || b), not: (a) => +!a,
  neg: (a) => -a, exp: M.exp, log: M.log, sqrt: M.sqrt, rsqrt: (a) => 1 / M.sqrt(a), recip: (a) => 1 / a,
  abs: M.abs, tanh: M.tanh, sigmoid, erf, sin: M.sin, cos: M.cos, floor: M.floor,
};

export function interpBuilder(inputs: readonly { shape: Shape; data: Float64Array }[]): Builder<number> {
  const strides = inputs.map((t) => stridesOf(t.shape));
  return {
    c: (v: number, d: DType) => castValue(v, d),
    alu: (op, ...args) => alu[op](...args),
    where: (c, a, b) => (c ? a : b),
    cast: (x, d) => castValue(x, d),
    load: (i, idx, mask) => {
      if (mask === 0) return 0;
      const t = inputs[i];
      idx.forEach((v, a) => { if (!(v >= 0 && v < t.shape[a])) throw new RangeError(`load ${i}: index ${v} out of [0,${t.shape[a]}) on axis ${a}`); });
      return t.data[idx.reduce((o, v, a) => o + v * strides[i][a], 0)];
    },
    philox: (key, counter, stream) => uniformFill(counter + 1, key, stream)[counter],
  };
}
