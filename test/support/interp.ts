/** A Builder<number> that runs pointwise lowerings directly in float64: it checks every op's lowering against
 * its reference before any code generator sees it. */
import type { Builder, ScalarOp } from '../../compiler/ops/lowering';
import { castValue, type DType } from '../../compiler/ir/dtype';
import { stridesOf, type Shape } from '../../compiler/ir/shape';
import { SCALAR_SEMANTICS } from '../../compiler/ops/scalar';
import { uniformFill } from '../../compiler/ir/philox';

const alu = SCALAR_SEMANTICS;

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
