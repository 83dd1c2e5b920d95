/** Independent float64 formulas in plain JavaScript (no Kiln ops) for the model tests. Arrays are flat,
 * row-major. */
export type Arr = Float64Array;

export function matmulJS(a: Arr, b: Arr, m: number, k: number, n: number): Arr {
  const c = new Float64Array(m * n);
  for (let i = 0; i < m; i++) for (let p = 0; p < k; p++) { const x = a[i * k + p]; for (let j = 0; j < n; j++) c[i * n + j] += x * b[p * n + j]; }
  return c;
}

/** x [rows, in] · W[out, in]^T + b. */
export function linearJS(x: Arr, w: Arr, b: Arr | undefined, rows: number, inF: number, outF: number): Arr {
  const y = new Float64Array(rows * outF);
  for (let r = 0; r < rows; r++) for (let o = 0; o < outF; o++) {
    let s = b ? b[o] : 0;
    for (let i = 0; i < inF; i++) s += x[r * inF + i] * w[o * inF + i];
    y[r * outF + o] = s;
  }
  return y;
}

/** Direct NCHW conv, square kernel, symmetric padding. */
export function conv2dJS(x: Arr, w: Arr, b: Arr | undefined, n: number, c: number, h: number, wd: number, o: number, k: number, stride: number, pad: number): { y: Arr; ho: number; wo: number } {
  const ho = Math.floor((h + 2 * pad - k) / stride) + 1, wo = Math.floor((wd + 2 * pad - k) / stride) + 1;
  const y = new Float64Array(n * o * ho * wo);
  for (let bi = 0; bi < n; bi++) for (let oc = 0; oc < o; oc++) for (let i = 0; i < ho; i++) for (let j = 0; j < wo; j++) {
    let s = b ? b[oc] : 0;
    for (let ci = 0; ci < c; ci++) for (let p = 0; p < k; p++) for (let q = 0; q < k; q++) {
      const ih = i * stride - pad + p, iw = j * stride - pad + q;
      if (ih >= 0 && ih < h && iw >= 0 && iw < wd) s += x[((bi * c + ci) * h + ih) * wd + iw] * w[((oc * c + ci) * k + p) * k + q];
    }
    y[((bi * o + oc) * ho + i) * wo + j] = s;
  }
  return { y, ho, wo };
}

export function groupNormJS(x: Arr, n: number, c: number, hw: number, groups: number, w: Arr, b: Arr, eps: number): Arr {
  const y = new Float64Array(x.length), cg = c / groups;
  for (let bi = 0; bi < n; bi++) for (let g = 0; g < groups; g++) {
    const start = (bi * c + g * cg) * hw, len = cg * hw;
    let mean = 0; for (let i = 0; i < len; i++) mean += x[start + i]; mean /= len;
    let v = 0; for (let i = 0; i < len; i++) v += (x[start + i] - mean) ** 2; v /= len;
    for (let i = 0; i < len; i++) { const ch = g * cg + Math.floor(i / hw); y[start + i] = ((x[start + i] - mean) / Math.sqrt(v + eps)) * w[ch] + b[ch]; }
  }
  return y;
}

export function layerNormJS(x: Arr, rows: number, d: number, w: Arr, b: Arr, eps: number): Arr {
  const y = new Float64Array(x.length);
  for (let r = 0; r < rows; r++) {
    let mean = 0; for (let i = 0; i < d; i++) mean += x[r * d + i]; mean /= d;
    let v = 0; for (let i = 0; i < d; i++) v += (x[r * d + i] - mean) ** 2; v /= d;
    for (let i = 0; i < d; i++) y[r * d + i] = ((x[r * d + i] - mean) / Math.sqrt(v + eps)) * w[i] + b[i];
  }
  return y;
}

export const siluJS = (x: Arr): Arr => x.map((v) => v / (1 + Math.exp(-v)));

/** erf by its Maclaurin series (|x| < 3 here), accurate to ~1e-13. */
export function erfJS(x: number): number {
  let term = x, sum = x;
  for (let n = 1; n < 200; n++) { term *= (-x * x) / n; const t = term / (2 * n + 1); sum += t; if (Math.abs(t) < 1e-17) break; }
  return (2 / Math.sqrt(Math.PI)) * sum;
}
export const geluJS = (v: number): number => 0.5 * v * (1 + erfJS(v / Math.SQRT2));

/** Multi-head attention by its formula: per batch and head, softmax(q k^T / sqrt(d)) v, with x [B, Lq, C],
 * ctx [B, Lk, Cc], weights in PyTorch layout;
 * wo null returns the merged heads before the output projection. */
export function attentionJS(x: Arr, ctx: Arr, B: number, Lq: number, Lk: number, C: number, Cc: number, heads: number, hd: number,
  wq: Arr, wk: Arr, wv: Arr, wo: Arr | null, bo: Arr | null): Arr {
  const inner = heads * hd;
  const q = linearJS(x, wq, undefined, B * Lq, C, inner), k = linearJS(ctx, wk, undefined, B * Lk, Cc, inner), v = linearJS(ctx, wv, undefined, B * Lk, Cc, inner);
  const o = new Float64Array(B * Lq * inner);
  for (let b = 0; b < B; b++) for (let h = 0; h < heads; h++) for (let i = 0; i < Lq; i++) {
    const s = new Float64Array(Lk);
    for (let j = 0; j < Lk; j++) { let d = 0; for (let t = 0; t < hd; t++) d += q[(b * Lq + i) * inner + h * hd + t] * k[(b * Lk + j) * inner + h * hd + t]; s[j] = d / Math.sqrt(hd); }
    const mx = Math.max(...s); let z = 0;
    for (let j = 0; j < Lk; j++) { s[j] = Math.exp(s[j] - mx); z += s[j]; }
    for (let j = 0; j < Lk; j++) for (let t = 0; t < hd; t++) o[(b * Lq + i) * inner + h * hd + t] += (s[j] / z) * v[(b * Lk + j) * inner + h * hd + t];
  }
  return wo ? linearJS(o, wo, bo ?? undefined, B * Lq, inner, C) : o;
}

export function maxRelErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} vs ${b.length}`);
  let num = 0, den = 0;
  for (let i = 0; i < a.length; i++) { num = Math.max(num, Math.abs(a[i] - b[i])); den = Math.max(den, Math.abs(b[i])); }
  return num / Math.max(den, 1e-300);
}

/** Parameter values without Philox: under jest's ESM vm the Philox init runs ~100× slower than under tsx
 * (10 s per million values), so model tests fill stores with this cheap deterministic generator instead,
 * honouring each parameter's declared init kind and range. */
export function quickStore(params: ReadonlyMap<string, { node: unknown; size: number }>, seed = 1): Map<string, Float64Array> {
  const store = new Map<string, Float64Array>();
  let s = (seed * 2654435761) >>> 0 || 1;
  const next = () => { s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0; return s / 4294967296; };
  for (const [k, t] of params) {
    const init = (t.node as { attrs: { init: { kind: string; low?: number; high?: number; std?: number; value?: number } } }).attrs.init;
    const v = new Float64Array(t.size);
    for (let i = 0; i < v.length; i++) {
      switch (init.kind) {
        case 'ones': v[i] = 1; break;
        case 'zeros': v[i] = 0; break;
        case 'constant': v[i] = init.value!; break;
        case 'uniform': v[i] = init.low! + (init.high! - init.low!) * next(); break;
        default: v[i] = (init.std ?? 0.02) * Math.sqrt(3) * (2 * next() - 1);
      }
    }
    store.set(k, v);
  }
  return store;
}
