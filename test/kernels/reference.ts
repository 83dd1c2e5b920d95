/** Float64 references shared by the CPU (cpu-*.test.ts) and emulated CUDA (cuda-emu-*.test.ts) kernel tests.
 * Each returns the result and, per element, `mag`: the float64 sum of |terms| that produce it, for the
 * bound in harness.ts (REL). Inputs are passed in, so a test can round them (bf16 / f16) first. */

export interface RefOut { ref: Float64Array; mag: Float64Array }

// ---- GEMM: A stored [nA][M][K] ([nA][K][M] when tA), B [nB][K][N] ([nB][N][K] when tB), nX = bcX ? 1 : batch ----
export interface GemmCase { batch: number; M: number; N: number; K: number; tA: 0 | 1; tB: 0 | 1; bcA: 0 | 1; bcB: 0 | 1 }

export const gemmSizes = (c: GemmCase) => ({ a: (c.bcA ? 1 : c.batch) * c.M * c.K, b: (c.bcB ? 1 : c.batch) * c.K * c.N });

export function gemmRef(c: GemmCase, A: Float64Array, B: Float64Array): RefOut {
  const { batch, M, N, K } = c;
  const ref = new Float64Array(batch * M * N);
  const mag = new Float64Array(batch * M * N);
  for (let b = 0; b < batch; b++) {
    const a0 = c.bcA ? 0 : b * M * K;
    const b0 = c.bcB ? 0 : b * K * N;
    for (let i = 0; i < M; i++)
      for (let j = 0; j < N; j++) {
        let s = 0;
        let m = 0;
        for (let k = 0; k < K; k++) {
          const t = A[a0 + (c.tA ? k * M + i : i * K + k)] * B[b0 + (c.tB ? j * K + k : k * N + j)];
          s += t;
          m += Math.abs(t);
        }
        ref[(b * M + i) * N + j] = s;
        mag[(b * M + i) * N + j] = m;
      }
  }
  return { ref, mag };
}

// ---- conv2d: NCHW x, OIHW w, [N, C, H, W, O, KH, KW, sh, sw, pt, pb, pl, pr, dh, dw, G] ----
export type Conv = [number, number, number, number, number, number, number, number, number, number, number, number, number, number, number, number];

export function convDims(p: Conv) {
  const [N, C, H, W, O, KH, KW, sh, sw, pt, pb, pl, pr, dh, dw, G] = p;
  const Ho = Math.floor((H + pt + pb - dh * (KH - 1) - 1) / sh) + 1;
  const Wo = Math.floor((W + pl + pr - dw * (KW - 1) - 1) / sw) + 1;
  return { x: N * C * H * W, w: O * (C / G) * KH * KW, y: N * O * Ho * Wo, Ho, Wo };
}

/** mode 0: y from (x, w); 1: dx from (dy, w); 2: dw from (x, dy). One loop over every tap. */
export function convRef(p: Conv, mode: number, x: Float64Array, w: Float64Array, dy: Float64Array): RefOut {
  const [N, C, H, W, O, KH, KW, sh, sw, pt, , pl, , dh, dw, G] = p;
  const { Ho, Wo } = convDims(p);
  const Cg = C / G;
  const Og = O / G;
  const size = mode === 0 ? N * O * Ho * Wo : mode === 1 ? N * C * H * W : O * Cg * KH * KW;
  const ref = new Float64Array(size);
  const mag = new Float64Array(size);
  for (let n = 0; n < N; n++)
    for (let o = 0; o < O; o++) {
      const g = Math.floor(o / Og);
      for (let oh = 0; oh < Ho; oh++)
        for (let ow = 0; ow < Wo; ow++)
          for (let ci = 0; ci < Cg; ci++)
            for (let kh = 0; kh < KH; kh++)
              for (let kw = 0; kw < KW; kw++) {
                const ih = oh * sh - pt + kh * dh;
                const iw = ow * sw - pl + kw * dw;
                if (ih < 0 || ih >= H || iw < 0 || iw >= W) continue;
                const xi = ((n * C + g * Cg + ci) * H + ih) * W + iw;
                const wi = ((o * Cg + ci) * KH + kh) * KW + kw;
                const yi = ((n * O + o) * Ho + oh) * Wo + ow;
                const [e, t] = mode === 0 ? [yi, x[xi] * w[wi]] : mode === 1 ? [xi, dy[yi] * w[wi]] : [wi, dy[yi] * x[xi]];
                ref[e] += t;
                mag[e] += Math.abs(t);
              }
    }
  return { ref, mag };
}

// ---- attention: q [nb,lq,d], k [nb,lk,d], v [nb,lk,dv], dO [nb,lq,dv]; causal: key j allowed iff j <= i ----
export interface AttnCase { nb: number; lq: number; lk: number; d: number; dv: number; causal: 0 | 1 }

export interface AttnRef {
  out: RefOut; dq: RefOut; dk: RefOut; dv: RefOut;
  /** Natural-log logsumexp of the scaled scores per row; mag bounds its absolute error (see below). */
  lse: RefOut;
  /** delta_i = sum_j P_ij dP_ij = dO_i . O_i. */
  delta: RefOut;
}

/** Builds the full softmax matrix. dP_ij (a dot product) and delta_i count with the sum of |terms| they are
 * made of. lse's mag is |lse| + the largest sum of |scaled products| of a score (its rounding error scale). */
export function attnRef(c: AttnCase, q: Float64Array, k: Float64Array, v: Float64Array, dO: Float64Array, scale: number): AttnRef {
  const { nb, lq, lk, d, dv } = c;
  const make = (n: number): RefOut => ({ ref: new Float64Array(n), mag: new Float64Array(n) });
  const r: AttnRef = { out: make(nb * lq * dv), dq: make(nb * lq * d), dk: make(nb * lk * d), dv: make(nb * lk * dv), lse: make(nb * lq), delta: make(nb * lq) };
  const P = new Float64Array(lq * lk);
  const dP = new Float64Array(lq * lk); // dO_i . v_j
  const aP = new Float64Array(lq * lk); // sum_t |dO_it v_jt|
  const D = new Float64Array(lq);
  const aD = new Float64Array(lq);
  for (let b = 0; b < nb; b++) {
    for (let i = 0; i < lq; i++) {
      let mx = -Infinity;
      let aS = 0;
      for (let j = 0; j < lk; j++) {
        let s = -Infinity;
        if (!c.causal || j <= i) {
          s = 0;
          let as = 0;
          for (let t = 0; t < d; t++) {
            const x = q[(b * lq + i) * d + t] * k[(b * lk + j) * d + t];
            s += x;
            as += Math.abs(x);
          }
          s *= scale;
          aS = Math.max(aS, as * scale);
        }
        P[i * lk + j] = s;
        mx = Math.max(mx, s);
      }
      let sum = 0;
      for (let j = 0; j < lk; j++) sum += P[i * lk + j] = Math.exp(P[i * lk + j] - mx);
      const lse = mx + Math.log(sum);
      r.lse.ref[b * lq + i] = lse;
      r.lse.mag[b * lq + i] = Math.abs(lse) + aS;
      D[i] = 0;
      aD[i] = 0;
      for (let j = 0; j < lk; j++) {
        P[i * lk + j] /= sum;
        let dp = 0;
        let ap = 0;
        for (let t = 0; t < dv; t++) {
          const x = dO[(b * lq + i) * dv + t] * v[(b * lk + j) * dv + t];
          dp += x;
          ap += Math.abs(x);
        }
        dP[i * lk + j] = dp;
        aP[i * lk + j] = ap;
        D[i] += P[i * lk + j] * dp;
        aD[i] += P[i * lk + j] * ap;
      }
      r.delta.ref[b * lq + i] = D[i];
      r.delta.mag[b * lq + i] = aD[i];
    }
    const put = (o: RefOut, rows: number, width: number, row: number, t: number, x: number, m: number) => {
      o.ref[(b * rows + row) * width + t] += x;
      o.mag[(b * rows + row) * width + t] += m;
    };
    for (let i = 0; i < lq; i++)
      for (let j = 0; j < lk; j++) {
        const p = P[i * lk + j];
        if (p === 0) continue;
        const ds = p * (dP[i * lk + j] - D[i]);
        const ads = p * (aP[i * lk + j] + aD[i]);
        for (let t = 0; t < dv; t++) {
          const vv = v[(b * lk + j) * dv + t];
          const oo = dO[(b * lq + i) * dv + t];
          put(r.out, lq, dv, i, t, p * vv, p * Math.abs(vv));
          put(r.dv, lk, dv, j, t, p * oo, p * Math.abs(oo));
        }
        for (let t = 0; t < d; t++) {
          const kk = k[(b * lk + j) * d + t];
          const qq = q[(b * lq + i) * d + t];
          put(r.dq, lq, d, i, t, scale * ds * kk, scale * ads * Math.abs(kk));
          put(r.dk, lk, d, j, t, scale * ds * qq, scale * ads * Math.abs(qq));
        }
      }
  }
  return r;
}
