/** Batched matrix multiply [..., M, K] x [..., K, N] with broadcast batch dims. */
import { broadcastShapes, fmt, numel, type Shape } from '../ir/shape';
import { broadcastOffsets } from '../reference/ndarray';
import { isFloat } from '../ir/dtype';
import { fail, type OpDef } from './entry';
import { sumTo } from './helpers';

const batchOf = (s: Shape) => s.slice(0, -2);

export const matmul: OpDef<'matmul'> = {
  arity: 2,
  infer: ([a, b]) => {
    if (a.shape.length < 2 || b.shape.length < 2) fail('matmul needs rank >= 2 on both sides');
    if (a.dtype !== b.dtype || !isFloat(a.dtype)) fail(`needs equal float dtypes, got ${a.dtype} and ${b.dtype}`);
    const [m, k] = a.shape.slice(-2), [k2, n] = b.shape.slice(-2);
    if (k !== k2) fail(`inner dims ${k} and ${k2} differ`);
    const batch = broadcastShapes(batchOf(a.shape), batchOf(b.shape)) ?? fail(`batch dims ${fmt(batchOf(a.shape))} and ${fmt(batchOf(b.shape))} do not broadcast`);
    return { shape: [...batch, m, n], dtype: a.dtype };
  },
  vjp: {
    saves: { inputs: [0, 1], output: false },
    grad: (g, { inputs: [a, b] }) => [sumTo(g.matmul(b.mT()), a.shape), sumTo(a.mT().matmul(g), b.shape)],
  },
  ref: ([a, b], _attrs, out) => {
    const batch = batchOf(out.shape);
    const [m, k] = a.shape.slice(-2), n = b.shape[b.shape.length - 1];
    const oa = broadcastOffsets(batchOf(a.shape), batch), ob = broadcastOffsets(batchOf(b.shape), batch);
    const nb = numel(batch), res = new Float64Array(nb * m * n);
    for (let t = 0; t < nb; t++) {
      const A = oa[t] * m * k, B = ob[t] * k * n, C = t * m * n;
      for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) {
        let s = 0;
        for (let p = 0; p < k; p++) s += a.data[A + i * k + p] * b.data[B + p * n + j];
        res[C + i * n + j] = s;
      }
    }
    return res;
  },
  lower: { kind: 'extern', lowPrecision: true, template: 'matmul', stridedOperands: true, flops: (c) => 2 * numel(c.outShape) * c.inShapes[0][c.inShapes[0].length - 1] },
};

