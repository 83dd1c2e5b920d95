// kiln scaled-dot-product attention on the CPU, flash style.
//
//   sdpa_f32:      out[b,i,:] = sum_j softmax_j(scale * q[b,i,:].k[b,j,:]) v[b,j,:]
//   sdpa_grad_f32: dQ, dK or dV of that for an upstream dout [nb, lq, dv]
// q [nb,lq,d], k [nb,lk,d], v [nb,lk,dv], dout [nb,lq,dv], all contiguous f32. causal: key j is allowed for
// query i iff j <= i (rows are never fully masked: j = 0 is always allowed).
//
// Forward: K and V are first packed per batch (K transposed, rows padded to whole vectors); then OpenMP over
// (b, BQ-row query tiles); per tile, keys are visited in blocks of BKF = 256 with an online softmax (running
// max m, running sum l, rescaled accumulator), so only a BQ x BKF score block exists. Scores (Q K^T) and P V
// are register-tiled micro-GEMMs on GCC vectors, max / exp / sum run on whole vectors (kiln_expv). A key row
// of up to 256 (cross attention: 77 text tokens) is a single block: one pass, no rescaling, no flash overhead.
// Backward: a stats pass (the forward's tile loop) gives per-row m, 1/l and delta_i = rowsum(dP o P) = dO_i . O_i;
// then, with P recomputed from (m, 1/l) and dS = P o (dP - delta), the same micro-GEMMs on blocks:
//   dQ (per b, BQ-row query tile, over BK-key blocks): S = scale Q K^T, dP = dO V^T, dQ += dS K; dQ *= scale.
//   dK / dV (per b, BK-key block, over BQT-query tiles): the transposed blocks directly, so every product is
//   again (rows) x (packed, transposed columns): S^T = scale K Q^T, dV += P^T dO; for dK dP^T = V dO^T,
//   dK += dS^T Q, dK *= scale. P^T's column i needs m_i, 1/l_i, delta_i: vector loads along the row.
// Each operand a tile reads as columns is packed once per call: transposed, rows padded to whole vectors with
// zeros (K^T, V^T, Q^T, dO^T); each one it reads as whole-vector rows likewise (V, K, Q, dO rows padded).
// A call with little work (the tiny UNet's attention) runs on the calling thread: see parallel_worth.
// epi(b, row, t, acc) is called once per output element.
#pragma once

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <memory>
#include <type_traits>
#include <vector>

#include "mathfun.h"
#include "parallel.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

namespace kiln {

namespace attn_cfg {
constexpr int64_t BQ = 32;   // query rows per task (forward, stats, dQ)
constexpr int64_t BK = 64;   // keys per block (dQ) and per task (dK / dV)
constexpr int64_t BQT = 64;  // queries per block (dK / dV): the columns of S^T, 4 AVX-512 vectors
constexpr int64_t BKF = 256; // keys per block (forward): a row of up to 256 scores is one block, one pass
// One parallel region per call, and only for work that pays for waking the second thread (parallel.h par_macs):
// nb*lq*lk*(d+dv) multiply-adds of the forward (~60 us of forward, 100-230 us of backward on one core at 4e6;
// measured on a 2-core VM with other load: two threads no faster at 4.2e6, 1.3x at 1.7e7).
static inline bool parallel_worth(int64_t nb, int64_t lq, int64_t lk, int64_t d, int64_t dv) {
  return par_macs(double(nb) * double(lq) * double(lk) * double(d + dv));
}
}  // namespace attn_cfg

// Vector width of the compile target (the library is built with -march=native): GCC vector extensions, so
// one source gives zmm, ymm or xmm code. The register tiles are R query rows x NV vectors of keys (Q K^T) or
// of value columns (P V): 4 x 4 with 32 vector registers (4 x 6 when that covers the row), 4 x 2 with 16.
namespace attn_simd {
#if defined(__AVX512F__)
constexpr int W = 16, NVMAX = 4, NONE = 6;
#elif defined(__AVX__)
constexpr int W = 8, NVMAX = 2, NONE = 2;
#else
constexpr int W = 4, NVMAX = 2, NONE = 2;
#endif
constexpr int R = 4;
typedef float vf __attribute__((vector_size(W * 4)));
typedef float vfu __attribute__((vector_size(W * 4), aligned(4)));
static inline vf load(const float* p) { return *reinterpret_cast<const vfu*>(p); }
static inline void store(float* p, vf x) { *reinterpret_cast<vfu*>(p) = x; }
// Not vf{} + x: 0 + x is an add (it turns -0 into +0), one more op before every broadcast.
static inline vf bcast(float x) {
#if defined(__AVX512F__)
  return (vf)_mm512_set1_ps(x);
#elif defined(__AVX__)
  return (vf)_mm256_set1_ps(x);
#elif defined(__SSE__)
  return (vf)_mm_set1_ps(x);
#else
  vf v;
  for (int u = 0; u < W; ++u) v[u] = x;
  return v;
#endif
}
// 0, 1, ..., W-1: lane j of a vector at column c is column c + j.
static inline vf lanes() {
  vf x;
  for (int u = 0; u < W; ++u) x[u] = float(u);
  return x;
}
// Keeps a loaded vector in a register: otherwise g++ folds the load into every FMA that uses it (RR loads of the
// same vector per step instead of one; the tiles were load-bound: 20 loads per 16 FMAs).
static inline vf in_register(vf x) {
#if defined(__x86_64__) || defined(__i386__)
  __asm__("" : "+v"(x));
#endif
  return x;
}
static inline int64_t padded(int64_t n) { return (n + W - 1) / W * W; }

// s[r][j] = scale * sum_t q[r][t] kt[t][j] for RR rows and NV*W columns; kt rows have stride ldk.
template <int RR, int NV>
static inline void qk_tile(const float* q, int64_t d, const float* kt, int64_t ldk, float* s, int64_t lds, float scale) {
  vf acc[RR][NV];
  for (int r = 0; r < RR; ++r)
    for (int v = 0; v < NV; ++v) acc[r][v] = vf{};
  for (int64_t t = 0; t < d; ++t) {
    vf kv[NV];
    for (int v = 0; v < NV; ++v) kv[v] = in_register(load(kt + t * ldk + v * W));
    for (int r = 0; r < RR; ++r) {
      const vf qb = bcast(q[r * d + t]);
      for (int v = 0; v < NV; ++v) acc[r][v] += qb * kv[v];
    }
  }
  for (int r = 0; r < RR; ++r)
    for (int v = 0; v < NV; ++v) store(s + r * lds + v * W, acc[r][v] * scale);
}

// o[r][:] += sum_j p[r][j] vp[j][:] for RR rows and NV*W columns; vp rows have stride ldv.
template <int RR, int NV>
static inline void pv_tile(const float* p, int64_t ldp, int64_t nk, const float* vp, int64_t ldv, float* o, int64_t ldo) {
  vf acc[RR][NV];
  for (int r = 0; r < RR; ++r)
    for (int v = 0; v < NV; ++v) acc[r][v] = load(o + r * ldo + v * W);
  for (int64_t j = 0; j < nk; ++j) {
    vf vv[NV];
    for (int v = 0; v < NV; ++v) vv[v] = in_register(load(vp + j * ldv + v * W));
    for (int r = 0; r < RR; ++r) {
      const vf pb = bcast(p[r * ldp + j]);
      for (int v = 0; v < NV; ++v) acc[r][v] += pb * vv[v];
    }
  }
  for (int r = 0; r < RR; ++r)
    for (int v = 0; v < NV; ++v) store(o + r * ldo + v * W, acc[r][v]);
}

// Runs f(NV, c) over `cols` columns (a multiple of W), NV an integral_constant so the tiles keep
// compile-time bounds: a row of up to NONE vectors (77 keys, 64 value columns) is one tile; a longer one
// goes in chunks of NVMAX vectors and then the rest.
template <int N, class F>
static inline bool one_tile(int64_t nv, int64_t c, F& f) {
  if constexpr (N == 0) {
    return false;
  } else {
    if (nv == N) return f(std::integral_constant<int, N>{}, c), true;
    return one_tile<N - 1>(nv, c, f);
  }
}
template <class F>
static inline void over_cols(int64_t cols, F f) {
  int64_t c = 0;
  if (one_tile<NONE>(cols / W, c, f)) return;
  for (; c + NVMAX * W <= cols; c += NVMAX * W) f(std::integral_constant<int, NVMAX>{}, c);
  one_tile<NVMAX - 1>((cols - c) / W, c, f);
}

// Runs g(RR-constant, r0) over `rows` rows in chunks of R, then the rest.
template <class G>
static inline void over_rows(int64_t rows, G g) {
  int64_t r = 0;
  for (; r + R <= rows; r += R) g(std::integral_constant<int, R>{}, r);
  switch (rows - r) {
    case 3: g(std::integral_constant<int, 3>{}, r); break;
    case 2: g(std::integral_constant<int, 2>{}, r); break;
    case 1: g(std::integral_constant<int, 1>{}, r); break;
    default: break;
  }
}

// s[r][c] = scale * a[r,:] . bt[:,c] for `rows` rows of a (row stride n) and `cols` columns (a multiple of W)
// of bt (n rows of stride ldb): register tiles over the whole block.
static inline void scores(const float* a, int64_t rows, int64_t n, const float* bt, int64_t ldb, int64_t cols,
                          float* s, int64_t lds, float scale) {
  over_rows(rows, [&](auto RR, int64_t r0) {
    over_cols(cols, [&](auto NV, int64_t c) {
      qk_tile<decltype(RR)::value, decltype(NV)::value>(a + r0 * n, n, bt + c, ldb, s + r0 * lds + c, lds, scale);
    });
  });
}

// o[r][c] += sum_{j < nk} p[r][j] b[j][c] for `rows` rows and `cols` columns (a multiple of W); b rows have
// stride ldb, p rows ldp, o rows ldo.
static inline void accumulate(const float* p, int64_t ldp, int64_t rows, int64_t nk, const float* b, int64_t ldb,
                              int64_t cols, float* o, int64_t ldo) {
  over_rows(rows, [&](auto RR, int64_t r0) {
    over_cols(cols, [&](auto NV, int64_t c) {
      pv_tile<decltype(RR)::value, decltype(NV)::value>(p + r0 * ldp, ldp, nk, b + c, ldb, o + r0 * ldo + c, ldo);
    });
  });
}
}  // namespace attn_simd

namespace attn_detail {

static inline float dot(const float* __restrict__ a, const float* __restrict__ b, int64_t n) {
  float s = 0.0f;
#pragma omp simd reduction(+ : s)
  for (int64_t t = 0; t < n; ++t) s += a[t] * b[t];
  return s;
}

// One operand [nb][n][w] of every batch in a layout the register tiles read, padded with zeros. Transposed
// (the columns of a score block): x[b][c][j], rows of ld = padded(n), plus 16 floats where that is a multiple
// of 32 (an even number of 64 B lines): a score tile loads the same columns of all w rows, and rows an even
// number of lines apart share a part of the L1 sets (lk = 1024: 4 KiB apart, all in one set; the tile ran from
// L2). Rows (the right-hand side of an accumulate): x[b][j][c], rows of ld = padded(w), read one after another.
struct Pack {
  const float* src = nullptr;
  int64_t n = 0, w = 0, ld = 0;
  bool trans = false;
  std::unique_ptr<float[]> x;
  void init(const float* src_, int64_t nb, int64_t n_, int64_t w_, bool trans_) {
    src = src_, n = n_, w = w_, trans = trans_;
    ld = attn_simd::padded(trans ? n : w);
    if (trans && ld % 32 == 0) ld += 16;
    x.reset(new float[nb * (trans ? w : n) * ld]);
  }
  const float* at(int64_t b) const { return x.get() + b * (trans ? w : n) * ld; }
  void fill(int64_t b) {
    const float* a = src + b * n * w;
    float* o = x.get() + b * (trans ? w : n) * ld;
    if (trans) {
      for (int64_t j = 0; j < n; ++j)
        for (int64_t c = 0; c < w; ++c) o[c * ld + j] = a[j * w + c];
      for (int64_t c = 0; c < w; ++c) std::fill(o + c * ld + n, o + (c + 1) * ld, 0.0f);
    } else {
      for (int64_t j = 0; j < n; ++j) {
        std::copy(a + j * w, a + (j + 1) * w, o + j * ld);
        std::fill(o + j * ld + w, o + (j + 1) * ld, 0.0f);
      }
    }
  }
};

// Fills the np packs, one (pack, batch) per iteration of a worksharing loop: called inside the caller's
// parallel region (or, outside one, serially); the loop's barrier makes them visible to every thread.
static inline void fill_packs(Pack* const* ps, int64_t np, int64_t nb) {
#pragma omp for schedule(dynamic, 1) collapse(2)
  for (int64_t p = 0; p < np; ++p)
    for (int64_t b = 0; b < nb; ++b) ps[p]->fill(b);
}

// The row stride of forward_tile's score block: a key block, no longer than the keys (the per-call scratch
// stays small for short rows: freed and reallocated on every call, it is page faults when the heap is trimmed).
static inline int64_t score_ld(int64_t lk) { return attn_simd::padded(std::min(attn_cfg::BKF, lk)); }

// Online softmax over all keys for query rows [i0, i0+nq) of one batch (q, kt, vp already offset to it; kt rows
// of lkp, vp rows of dvp): the row max m, the row sum l, and o[r*dvp + t] = sum_j e^{s_ij - m} v_jt
// (unnormalised; only m and l when vp is null). Keys come in blocks of BKF; a row of at most BKF keys (cross
// attention: 77) is one block: scores, max, exp and sum in one pass over an L1-resident score row, no
// rescaling. s holds nq rows of lds = score_ld(lk) scores.
static inline void forward_tile(int64_t i0, int64_t nq, int64_t lk, int64_t d, const float* q, const float* kt,
                                int64_t lkp, const float* vp, int64_t dvp, float scale, bool causal, float* m,
                                float* l, float* o, float* s) {
  using namespace attn_simd;
  const int64_t lds = score_ld(lk);
  const float ninf = -std::numeric_limits<float>::infinity();
  for (int64_t r = 0; r < nq; ++r) { m[r] = ninf; l[r] = 0.0f; }
  if (vp) std::fill(o, o + nq * dvp, 0.0f);
  const int64_t kend = causal ? std::min(lk, i0 + nq) : lk;
  const vf lane = lanes();
  for (int64_t j0 = 0; j0 < kend; j0 += attn_cfg::BKF) {
    const int64_t nk = std::min(attn_cfg::BKF, kend - j0), nkp = padded(nk);
    scores(q + i0 * d, nq, d, kt + j0, lkp, nkp, s, lds, scale);
    for (int64_t r = 0; r < nq; ++r) {
      float* sr = s + r * lds;
      const int64_t jmax = causal ? std::max<int64_t>(0, std::min(nk, i0 + r - j0 + 1)) : nk;
      // Max, then exp and sum, over whole vectors of the padded row (no scalar tail); keys past jmax (masked,
      // padding) count as -inf and get p = 0.
      const vf ninf = bcast(-INFINITY);
      vf vmx = bcast(m[r]);
      for (int64_t j = 0; j < nkp; j += W) {
        const vf x = lane + float(j) < float(jmax) ? load(sr + j) : ninf;
        vmx = x > vmx ? x : vmx;
      }
      float mx = vmx[0];
      for (int u = 1; u < W; ++u) mx = vmx[u] > mx ? vmx[u] : mx;
      const float corr = jmax > 0 ? kiln_expf(m[r] - mx) : 1.0f;  // m = -inf on the first block -> 0
      vf vsum = vf{};
      for (int64_t j = 0; j < nkp; j += W) {
        const vf p = lane + float(j) < float(jmax) ? kiln_expv(load(sr + j) - mx) : vf{};
        store(sr + j, p);
        vsum += p;
      }
      float sum = 0.0f;
      for (int u = 0; u < W; ++u) sum += vsum[u];
      if (vp && corr != 1.0f)
        for (int64_t t = 0; t < dvp; ++t) o[r * dvp + t] *= corr;
      l[r] = l[r] * corr + sum;
      m[r] = mx;
    }
    if (vp) accumulate(s, lds, nq, nk, vp + j0 * dvp, dvp, dvp, o, dvp);
  }
}

// dQ rows [i0, i0+nq) of one batch, unscaled, into dq (rows of padded(d)): over key blocks of BK,
// S = scale Q K^T, dP = dO V^T, dS = P o (dP - delta) with P = e^{S - m} / l (0 where masked or padding),
// dQ += dS K. q, dout, kT (K^T), vT (V^T), kR (K rows) and the stats M / IL / DL are offset to the batch.
static inline void dq_tile(int64_t i0, int64_t nq, int64_t lk, int64_t d, int64_t dv, const float* q,
                           const float* dout, const Pack& kT, const Pack& vT, const Pack& kR, int64_t b,
                           const float* M, const float* IL, const float* DL, float scale, bool causal, float* s,
                           float* dp, float* dq) {
  using namespace attn_simd;
  const int64_t lds = padded(std::min(attn_cfg::BK, lk)), ldq = kR.ld;
  std::fill(dq, dq + nq * ldq, 0.0f);
  const int64_t kend = causal ? std::min(lk, i0 + nq) : lk;
  const vf lane = lanes();
  for (int64_t j0 = 0; j0 < kend; j0 += attn_cfg::BK) {
    const int64_t nk = std::min(attn_cfg::BK, kend - j0), nkp = padded(nk);
    scores(q + i0 * d, nq, d, kT.at(b) + j0, kT.ld, nkp, s, lds, scale);
    scores(dout + i0 * dv, nq, dv, vT.at(b) + j0, vT.ld, nkp, dp, lds, 1.0f);
    for (int64_t r = 0; r < nq; ++r) {
      const int64_t i = i0 + r, jmax = causal ? std::max<int64_t>(0, std::min(nk, i - j0 + 1)) : nk;
      const vf m = bcast(M[i]), il = bcast(IL[i]), dl = bcast(DL[i]);
      for (int64_t j = 0; j < nkp; j += W) {
        const vf p = lane + float(j) < float(jmax) ? kiln_expv(load(s + r * lds + j) - m) * il : vf{};
        store(s + r * lds + j, p * (load(dp + r * lds + j) - dl));
      }
    }
    accumulate(s, lds, nq, nk, kR.at(b) + j0 * ldq, ldq, ldq, dq, ldq);
  }
}

// dK (wrt 1, unscaled) or dV (wrt 2) rows [j0, j0+nk) of one batch into acc (rows of the ld of qR / doR): over
// query tiles of BQT, S^T = scale K Q^T, P^T = e^{S^T - m} / l per column (0 where masked or padding), then
// dV += P^T dO, or dP^T = V dO^T, dS^T = P^T o (dP^T - delta), dK += dS^T Q. k and v are offset to the batch;
// qT (Q^T), qR (Q rows), doT (dO^T), doR (dO rows) are the packs this wrt uses; M / IL / DL rows of lqp.
static inline void dkv_tile(int wrt, int64_t j0, int64_t nk, int64_t lq, int64_t d, int64_t dv, const float* k,
                            const float* v, const Pack& qT, const Pack& qR, const Pack& doT, const Pack& doR,
                            int64_t b, const float* M, const float* IL, const float* DL, float scale, bool causal,
                            float* s, float* dp, float* acc) {
  using namespace attn_simd;
  const int64_t lds = padded(std::min(attn_cfg::BQT, lq));
  const Pack& rhs = wrt == 1 ? qR : doR;
  std::fill(acc, acc + nk * rhs.ld, 0.0f);
  const vf lane = lanes();
  // Causal: no query before j0 sees a key of the block (j0 is a multiple of W, so every tile starts on one).
  for (int64_t i0 = causal ? j0 : 0; i0 < lq; i0 += attn_cfg::BQT) {
    const int64_t nq = std::min(attn_cfg::BQT, lq - i0), nqp = padded(nq);
    scores(k + j0 * d, nk, d, qT.at(b) + i0, qT.ld, nqp, s, lds, scale);
    if (wrt == 1) scores(v + j0 * dv, nk, dv, doT.at(b) + i0, doT.ld, nqp, dp, lds, 1.0f);
    for (int64_t r = 0; r < nk; ++r) {
      // Query columns [lo, nq) see key j0 + r.
      const float lo = causal ? float(j0 + r - i0) : 0.0f;
      for (int64_t c = 0; c < nqp; c += W) {
        const vf x = lane + float(c);
        const int64_t i = i0 + c;
        const vf e = kiln_expv(load(s + r * lds + c) - load(M + i)) * load(IL + i);
        const vf p = (x >= lo) & (x < float(nq)) ? e : vf{};
        store(s + r * lds + c, wrt == 1 ? p * (load(dp + r * lds + c) - load(DL + i)) : p);
      }
    }
    accumulate(s, lds, nk, nq, rhs.at(b) + i0 * rhs.ld, rhs.ld, rhs.ld, acc, rhs.ld);
  }
}

}  // namespace attn_detail

// out[b,i,t]: epi(int64_t b, int64_t i, int64_t t, float acc).
template <class Epi>
void sdpa_f32(int64_t nb, int64_t lq, int64_t lk, int64_t d, int64_t dv, const float* q, const float* k,
              const float* v, float scale, bool causal, Epi epi) {
  using namespace attn_cfg;
  attn_detail::Pack kT, vR;
  kT.init(k, nb, lk, d, true);
  vR.init(v, nb, lk, dv, false);
  attn_detail::Pack* const packs[] = {&kT, &vR};
  const int64_t nqt = (lq + BQ - 1) / BQ;
#pragma omp parallel if (parallel_worth(nb, lq, lk, d, dv))
  {
    attn_detail::fill_packs(packs, 2, nb);
    std::vector<float> m(BQ), l(BQ), o(BQ * vR.ld), s(BQ * attn_detail::score_ld(lk));
#pragma omp for schedule(dynamic, 1) collapse(2)
    for (int64_t b = 0; b < nb; ++b)
      for (int64_t t = 0; t < nqt; ++t) {
        const int64_t i0 = t * BQ, nq = std::min(BQ, lq - i0);
        attn_detail::forward_tile(i0, nq, lk, d, q + b * lq * d, kT.at(b), kT.ld, vR.at(b), vR.ld, scale, causal,
                                  m.data(), l.data(), o.data(), s.data());
        for (int64_t r = 0; r < nq; ++r) {
          const float inv = l[r] > 0.0f ? 1.0f / l[r] : 0.0f;
          for (int64_t c = 0; c < dv; ++c) epi(b, i0 + r, c, o[r * vR.ld + c] * inv);
        }
      }
  }
}

// wrt = 0: dQ [nb,lq,d]; 1: dK [nb,lk,d]; 2: dV [nb,lk,dv]. epi(int64_t b, int64_t row, int64_t t, float acc).
template <class Epi>
void sdpa_grad_f32(int64_t nb, int64_t lq, int64_t lk, int64_t d, int64_t dv, const float* q, const float* k,
                   const float* v, const float* dout, float scale, bool causal, int wrt, Epi epi) {
  using namespace attn_cfg;
  using attn_detail::Pack;
  // kT for the stats pass, vR too where it needs O (delta: dQ and dK); then dQ: V^T, K rows; dK: Q^T, Q rows,
  // dO^T; dV: Q^T, dO rows.
  const bool need_o = wrt != 2;
  Pack kT, vR, vT, kR, qT, qR, doT, doR;
  Pack* packs[5] = {&kT};
  int np = 1;
  kT.init(k, nb, lk, d, true);
  if (need_o) vR.init(v, nb, lk, dv, false), packs[np++] = &vR;
  if (wrt == 0) {
    vT.init(v, nb, lk, dv, true), packs[np++] = &vT;
    kR.init(k, nb, lk, d, false), packs[np++] = &kR;
  } else {
    qT.init(q, nb, lq, d, true), packs[np++] = &qT;
    if (wrt == 1) {
      qR.init(q, nb, lq, d, false), packs[np++] = &qR;
      doT.init(dout, nb, lq, dv, true), packs[np++] = &doT;
    } else {
      doR.init(dout, nb, lq, dv, false), packs[np++] = &doR;
    }
  }
  // Per-row stats m, 1/l, delta = dO . O (dQ, dK); rows of lqp so that dK / dV load them as whole vectors.
  const int64_t lqp = attn_simd::padded(lq), nqt = (lq + BQ - 1) / BQ, nkt = (lk + BK - 1) / BK;
  std::vector<float> M(nb * lqp), IL(nb * lqp), DL(nb * lqp);
#pragma omp parallel if (parallel_worth(nb, lq, lk, d, dv))
  {
    attn_detail::fill_packs(packs, np, nb);
    // The stats pass's score block, then two score blocks of the gradient: BQ x BK (dQ) or BK x BQT (dK / dV),
    // row lengths cut to the keys / queries there are; acc holds O, then a dQ, dK or dV block.
    const int64_t blk = wrt == 0 ? BQ * attn_simd::padded(std::min(BK, lk))
                                 : std::min(BK, lk) * attn_simd::padded(std::min(BQT, lq));
    std::vector<float> m(BQ), l(BQ), acc(BQ * vR.ld), s(std::max(BQ * attn_detail::score_ld(lk), 2 * blk));
    float *sb = s.data(), *dp = sb + blk;
#pragma omp for schedule(dynamic, 1) collapse(2)
    for (int64_t b = 0; b < nb; ++b)
      for (int64_t t = 0; t < nqt; ++t) {
        const int64_t i0 = t * BQ, nq = std::min(BQ, lq - i0);
        attn_detail::forward_tile(i0, nq, lk, d, q + b * lq * d, kT.at(b), kT.ld, need_o ? vR.at(b) : nullptr,
                                  vR.ld, scale, causal, m.data(), l.data(), acc.data(), s.data());
        for (int64_t r = 0; r < nq; ++r) {
          const int64_t row = b * lqp + i0 + r;
          const float inv = l[r] > 0.0f ? 1.0f / l[r] : 0.0f;
          M[row] = m[r];
          IL[row] = inv;
          if (need_o) DL[row] = inv * attn_detail::dot(dout + (b * lq + i0 + r) * dv, acc.data() + r * vR.ld, dv);
        }
      }
    if (wrt == 0) {
      acc.resize(BQ * kR.ld);
#pragma omp for schedule(dynamic, 1) collapse(2)
      for (int64_t b = 0; b < nb; ++b)
        for (int64_t t = 0; t < nqt; ++t) {
          const int64_t i0 = t * BQ, nq = std::min(BQ, lq - i0), o = b * lqp;
          attn_detail::dq_tile(i0, nq, lk, d, dv, q + b * lq * d, dout + b * lq * dv, kT, vT, kR, b, M.data() + o,
                               IL.data() + o, DL.data() + o, scale, causal, sb, dp, acc.data());
          for (int64_t r = 0; r < nq; ++r)
            for (int64_t c = 0; c < d; ++c) epi(b, i0 + r, c, scale * acc[r * kR.ld + c]);
        }
    } else {
      const Pack& rhs = wrt == 1 ? qR : doR;
      const int64_t width = wrt == 1 ? d : dv;
      const float f = wrt == 1 ? scale : 1.0f;
      acc.resize(BK * rhs.ld);
#pragma omp for schedule(dynamic, 1) collapse(2)
      for (int64_t b = 0; b < nb; ++b)
        for (int64_t t = 0; t < nkt; ++t) {
          const int64_t j0 = t * BK, nk = std::min(BK, lk - j0), o = b * lqp;
          attn_detail::dkv_tile(wrt, j0, nk, lq, d, dv, k + b * lk * d, v + b * lk * dv, qT, qR, doT, doR, b,
                                M.data() + o, IL.data() + o, DL.data() + o, scale, causal, sb, dp,
                                acc.data());
          for (int64_t r = 0; r < nk; ++r)
            for (int64_t c = 0; c < width; ++c) epi(b, j0 + r, c, f * acc[r * rhs.ld + c]);
        }
    }
  }
}

}  // namespace kiln
