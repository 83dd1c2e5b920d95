/** Scaled dot-product attention softmax(scale * q k^T [+ causal mask]) v as one primitive, so the back end can
 * map it to one flash kernel; its backward is one more primitive that recomputes the probabilities. */
import { fmt, numel, type Shape } from '../ir/shape';
import { isFloat } from '../ir/dtype';
import type { NDArray } from '../reference/ndarray';
import { fail, type OpDef, type TypeInfo } from './entry';
// Globals are bound once per module: every global lookup is slow inside jest's vm contexts.
const M = Math;

function check(q: TypeInfo, k: TypeInfo, v: TypeInfo): void {
  const r = q.shape.length;
  if (r < 2 || k.shape.length !== r || v.shape.length !== r) fail('q, k, v need the same rank >= 2: [..., L, D]');
  if (fmt(q.shape.slice(0, -2)) !== fmt(k.shape.slice(0, -2)) || fmt(k.shape.slice(0, -2)) !== fmt(v.shape.slice(0, -2))) fail('batch dims differ');
  if (q.shape[r - 1] !== k.shape[r - 1]) fail(`q and k head dims ${q.shape[r - 1]} and ${k.shape[r - 1]} differ`);
  if (k.shape[r - 2] !== v.shape[r - 2]) fail(`k and v lengths ${k.shape[r - 2]} and ${v.shape[r - 2]} differ`);
  if (![q, k, v].every((t) => t.dtype === q.dtype && isFloat(t.dtype))) fail('needs equal float dtypes');
}

interface Dims { nb: number; lq: number; lk: number; d: number; dv: number }
const dims = (q: Shape, v: Shape): Dims => {
  const r = q.length;
  return { nb: numel(q.slice(0, -2)), lq: q[r - 2], lk: v[r - 2], d: q[r - 1], dv: v[r - 1] };
};

/** Row-softmax probabilities P[b, i, j] in float64. */
function probs(q: NDArray, k: NDArray, s: Dims, scale: number, causal: boolean): Float64Array {
  const p = new Float64Array(s.nb * s.lq * s.lk);
  for (let b = 0; b < s.nb; b++) for (let i = 0; i < s.lq; i++) {
    const row = (b * s.lq + i) * s.lk;
    let mx = -Infinity;
    for (let j = 0; j < s.lk; j++) {
      let dot = 0;
      for (let t = 0; t < s.d; t++) dot += q.data[(b * s.lq + i) * s.d + t] * k.data[(b * s.lk + j) * s.d + t];
      p[row + j] = causal && j > i ? -Infinity : dot * scale;
      mx = M.max(mx, p[row + j]);
    }
    let z = 0;
    for (let j = 0; j < s.lk; j++) { p[row + j] = M.exp(p[row + j] - mx); z += p[row + j]; }
    for (let j = 0; j < s.lk; j++) p[row + j] /= z;
  }
  return p;
}

const flops = (s: Dims) => 2 * s.nb * s.lq * s.lk * (s.d + s.dv);

export const sdpa: OpDef<'sdpa'> = {
  arity: 3,
  infer: ([q, k, v]) => { check(q, k, v); return { shape: [...q.shape.slice(0, -1), v.shape[v.shape.length - 1]], dtype: q.dtype }; },
  vjp: {
    saves: { inputs: [0, 1, 2], output: false },
    grad: (g, { inputs: [q, k, v], attrs }) => ([0, 1, 2] as const).map((wrt) => q.sdpaGrad(k, v, g, { scale: attrs.scale, causal: attrs.causal, wrt })),
  },
  ref: ([q, k, v], a) => {
    const s = dims(q.shape, v.shape);
    const p = probs(q, k, s, a.scale, a.causal);
    const o = new Float64Array(s.nb * s.lq * s.dv);
    for (let b = 0; b < s.nb; b++) for (let i = 0; i < s.lq; i++) for (let j = 0; j < s.lk; j++) {
      const pij = p[(b * s.lq + i) * s.lk + j];
      for (let t = 0; t < s.dv; t++) o[(b * s.lq + i) * s.dv + t] += pij * v.data[(b * s.lk + j) * s.dv + t];
    }
    return o;
  },
  lower: { kind: 'extern', lowPrecision: true, template: 'sdpa', flops: (c) => flops(dims(c.inShapes[0], c.inShapes[2])) },
};

/** Gradient of sdpa with respect to q, k or v (inputs q, k, v, dO). */
export const sdpaGrad: OpDef<'sdpa_grad'> = {
  arity: 4,
  infer: ([q, k, v, dout], a) => {
    check(q, k, v);
    if (fmt(dout.shape) !== fmt([...q.shape.slice(0, -1), v.shape[v.shape.length - 1]])) fail(`dO ${fmt(dout.shape)} is not the attention output shape`);
    return [q, k, v][a.wrt];
  },
  vjp: { none: 'backward-only op: higher-order gradients of attention are not supported' },
  ref: ([q, k, v, dO], a) => {
    const s = dims(q.shape, v.shape);
    const p = probs(q, k, s, a.scale, a.causal);
    const out = new Float64Array([q, k, v][a.wrt].data.length);
    for (let b = 0; b < s.nb; b++) for (let i = 0; i < s.lq; i++) {
      const row = (b * s.lq + i) * s.lk;
      // dP_ij = dO_i . v_j ; dS_ij = P_ij (dP_ij - sum_j P_ij dP_ij)
      const dp = new Float64Array(s.lk);
      let dot = 0;
      for (let j = 0; j < s.lk; j++) {
        for (let t = 0; t < s.dv; t++) dp[j] += dO.data[(b * s.lq + i) * s.dv + t] * v.data[(b * s.lk + j) * s.dv + t];
        dot += p[row + j] * dp[j];
      }
      for (let j = 0; j < s.lk; j++) {
        const pij = p[row + j], ds = pij * (dp[j] - dot) * a.scale;
        if (a.wrt === 2) for (let t = 0; t < s.dv; t++) out[(b * s.lk + j) * s.dv + t] += pij * dO.data[(b * s.lq + i) * s.dv + t];
        else if (a.wrt === 0) for (let t = 0; t < s.d; t++) out[(b * s.lq + i) * s.d + t] += ds * k.data[(b * s.lk + j) * s.d + t];
        else for (let t = 0; t < s.d; t++) out[(b * s.lk + j) * s.d + t] += ds * q.data[(b * s.lq + i) * s.d + t];
      }
    }
    return out;
  },
  lower: { kind: 'extern', lowPrecision: true, template: 'sdpa_grad', flops: (c) => 2 * flops(dims(c.inShapes[0], c.inShapes[2])) },
};
