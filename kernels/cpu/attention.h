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
// Backward: a stats pass (same loop) gives per-row m, l and delta_i = rowsum(dP o P) = dO_i . O_i; then
//   dQ tile (over key blocks):  dQ_i = scale * sum_j P_ij (dP_ij - delta_i) K_j
//   dK/dV tile (over query blocks, per key block): dV_j = sum_i P_ij dO_i,  dK_j = scale * sum_i dS_ij Q_i
// with P recomputed from (m, l). epi(b, row, t, acc) is called once per output element.
#pragma once

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <type_traits>
#include <vector>

#include "mathfun.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

namespace kiln {

namespace attn_cfg {
constexpr int64_t BQ = 32;   // query rows per task
constexpr int64_t BK = 64;   // keys per block (backward)
constexpr int64_t BKF = 256; // keys per block (forward): a row of up to 256 scores is one block, one pass
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
}  // namespace attn_simd

namespace attn_detail {

static inline float dot(const float* __restrict__ a, const float* __restrict__ b, int64_t n) {
  float s = 0.0f;
#pragma omp simd reduction(+ : s)
  for (int64_t t = 0; t < n; ++t) s += a[t] * b[t];
  return s;
}

static inline void axpy(float* __restrict__ y, float a, const float* __restrict__ x, int64_t n) {
#pragma omp simd
  for (int64_t t = 0; t < n; ++t) y[t] += a * x[t];
}

// K and V of every batch in the layouts the register tiles read: kt[b][t][j] (keys along a row, padded with
// zeros to lkp) and vp[b][j][t] (rows padded with zeros to dvp).
struct Packed {
  int64_t lkp, dvp;
  std::vector<float> kt, vp;
};

static inline void pack_kv(Packed& pk, int64_t nb, int64_t lk, int64_t d, int64_t dv, const float* k, const float* v) {
  using attn_simd::padded;
  pk.lkp = padded(lk);
  pk.dvp = padded(dv);
  pk.kt.assign(nb * d * pk.lkp, 0.0f);
  pk.vp.assign(nb * lk * pk.dvp, 0.0f);
  const int64_t lkp = pk.lkp, dvp = pk.dvp;
  float* kt = pk.kt.data();
  float* vp = pk.vp.data();
#pragma omp parallel for schedule(static)
  for (int64_t b = 0; b < nb; ++b) {
    for (int64_t j = 0; j < lk; ++j)
      for (int64_t t = 0; t < d; ++t) kt[(b * d + t) * lkp + j] = k[(b * lk + j) * d + t];
    for (int64_t j = 0; j < lk; ++j)
      std::copy(v + (b * lk + j) * dv, v + (b * lk + j + 1) * dv, vp + (b * lk + j) * dvp);
  }
}

// Online softmax over all keys for query rows [i0, i0+nq) of one batch (q, kt, vp already offset to it):
// the row max m, the row sum l, and o[r*dvp + t] = sum_j e^{s_ij - m} v_jt (unnormalised). Keys come in
// blocks of BKF; a row of at most BKF keys (cross attention: 77) is one block: scores, max, exp and sum in
// one pass over an L1-resident score row, no rescaling. s holds nq x (BKF rounded up to W) scores.
static inline void forward_tile(int64_t i0, int64_t nq, int64_t lk, int64_t d, const Packed& pk, const float* q,
                                const float* kt, const float* vp, float scale, bool causal, float* m, float* l,
                                float* o, float* s) {
  using namespace attn_simd;
  const int64_t lkp = pk.lkp, dvp = pk.dvp, lds = padded(attn_cfg::BKF);
  const float ninf = -std::numeric_limits<float>::infinity();
  for (int64_t r = 0; r < nq; ++r) { m[r] = ninf; l[r] = 0.0f; }
  std::fill(o, o + nq * dvp, 0.0f);
  const int64_t kend = causal ? std::min(lk, i0 + nq) : lk;
  const vf lane = lanes();
  for (int64_t j0 = 0; j0 < kend; j0 += attn_cfg::BKF) {
    const int64_t nk = std::min(attn_cfg::BKF, kend - j0), nkp = padded(nk);
    over_rows(nq, [&](auto RR, int64_t r0) {
      over_cols(nkp, [&](auto NV, int64_t c) {
        qk_tile<decltype(RR)::value, decltype(NV)::value>(q + (i0 + r0) * d, d, kt + j0 + c, lkp, s + r0 * lds + c, lds, scale);
      });
    });
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
      if (corr != 1.0f)
        for (int64_t t = 0; t < dvp; ++t) o[r * dvp + t] *= corr;
      l[r] = l[r] * corr + sum;
      m[r] = mx;
    }
    over_rows(nq, [&](auto RR, int64_t r0) {
      over_cols(dvp, [&](auto NV, int64_t c) {
        pv_tile<decltype(RR)::value, decltype(NV)::value>(s + r0 * lds, lds, nk, vp + j0 * dvp + c, dvp, o + r0 * dvp + c, dvp);
      });
    });
  }
}

}  // namespace attn_detail

// out[b,i,t]: epi(int64_t b, int64_t i, int64_t t, float acc).
template <class Epi>
void sdpa_f32(int64_t nb, int64_t lq, int64_t lk, int64_t d, int64_t dv, const float* q, const float* k,
              const float* v, float scale, bool causal, Epi epi) {
  using namespace attn_cfg;
  attn_detail::Packed pk;
  attn_detail::pack_kv(pk, nb, lk, d, dv, k, v);
  const int64_t nqt = (lq + BQ - 1) / BQ;
#pragma omp parallel
  {
    std::vector<float> m(BQ), l(BQ), o(BQ * pk.dvp), s(BQ * attn_simd::padded(BKF));
#pragma omp for schedule(dynamic, 1) collapse(2)
    for (int64_t b = 0; b < nb; ++b)
      for (int64_t qt = 0; qt < nqt; ++qt) {
        const int64_t i0 = qt * BQ, nq = std::min(BQ, lq - i0);
        attn_detail::forward_tile(i0, nq, lk, d, pk, q + b * lq * d, pk.kt.data() + b * d * pk.lkp,
                                  pk.vp.data() + b * lk * pk.dvp, scale, causal, m.data(), l.data(), o.data(), s.data());
        for (int64_t r = 0; r < nq; ++r) {
          const float inv = l[r] > 0.0f ? 1.0f / l[r] : 0.0f;
          for (int64_t t = 0; t < dv; ++t) epi(b, i0 + r, t, o[r * pk.dvp + t] * inv);
        }
      }
  }
}

// wrt = 0: dQ [nb,lq,d]; 1: dK [nb,lk,d]; 2: dV [nb,lk,dv]. epi(int64_t b, int64_t row, int64_t t, float acc).
template <class Epi>
void sdpa_grad_f32(int64_t nb, int64_t lq, int64_t lk, int64_t d, int64_t dv, const float* q, const float* k,
                   const float* v, const float* dout, float scale, bool causal, int wrt, Epi epi) {
  using namespace attn_cfg;
  using attn_detail::dot;
  using attn_detail::axpy;
  const int64_t nqt = (lq + BQ - 1) / BQ;
  // Per-row stats: m, 1/l, delta = dO . O.
  std::vector<float> M(nb * lq), IL(nb * lq), DL(nb * lq);
  attn_detail::Packed pk;
  attn_detail::pack_kv(pk, nb, lk, d, dv, k, v);
#pragma omp parallel
  {
    std::vector<float> m(BQ), l(BQ), acc(BQ * pk.dvp), s(BQ * attn_simd::padded(BKF));
#pragma omp for schedule(dynamic, 1) collapse(2)
    for (int64_t b = 0; b < nb; ++b)
      for (int64_t qt = 0; qt < nqt; ++qt) {
        const int64_t i0 = qt * BQ, nq = std::min(BQ, lq - i0);
        attn_detail::forward_tile(i0, nq, lk, d, pk, q + b * lq * d, pk.kt.data() + b * d * pk.lkp,
                                  pk.vp.data() + b * lk * pk.dvp, scale, causal, m.data(), l.data(), acc.data(), s.data());
        for (int64_t r = 0; r < nq; ++r) {
          const int64_t row = b * lq + i0 + r;
          const float inv = l[r] > 0.0f ? 1.0f / l[r] : 0.0f;
          M[row] = m[r];
          IL[row] = inv;
          DL[row] = inv * dot(dout + row * dv, acc.data() + r * pk.dvp, dv);
        }
      }
  }
  if (wrt == 0) {
#pragma omp parallel
    {
      std::vector<float> x(d);
#pragma omp for schedule(dynamic, 4) collapse(2)
      for (int64_t b = 0; b < nb; ++b)
        for (int64_t i = 0; i < lq; ++i) {
          const int64_t row = b * lq + i;
          const float* qi = q + row * d;
          const float* doi = dout + row * dv;
          std::fill(x.begin(), x.end(), 0.0f);
          const int64_t kend = causal ? std::min(lk, i + 1) : lk;
          for (int64_t j = 0; j < kend; ++j) {
            const float* kj = k + (b * lk + j) * d;
            const float p = std::exp(scale * dot(qi, kj, d) - M[row]) * IL[row];
            const float dp = dot(doi, v + (b * lk + j) * dv, dv);
            axpy(x.data(), p * (dp - DL[row]), kj, d);
          }
          for (int64_t t = 0; t < d; ++t) epi(b, i, t, scale * x[t]);
        }
    }
    return;
  }
  // dK or dV: one task per (b, block of BK keys); loop over query rows.
  const int64_t nkt = (lk + BK - 1) / BK;
  const int64_t width = wrt == 1 ? d : dv;
#pragma omp parallel
  {
    std::vector<float> acc(BK * width);
#pragma omp for schedule(dynamic, 1) collapse(2)
    for (int64_t b = 0; b < nb; ++b)
      for (int64_t kt = 0; kt < nkt; ++kt) {
        const int64_t j0 = kt * BK, nk = std::min(BK, lk - j0);
        std::fill(acc.begin(), acc.end(), 0.0f);
        for (int64_t i = causal ? j0 : 0; i < lq; ++i) {
          const int64_t row = b * lq + i;
          const float* qi = q + row * d;
          const float* doi = dout + row * dv;
          const int64_t jmax = causal ? std::min(nk, i - j0 + 1) : nk;
          for (int64_t jj = 0; jj < jmax; ++jj) {
            const int64_t j = j0 + jj;
            const float p = std::exp(scale * dot(qi, k + (b * lk + j) * d, d) - M[row]) * IL[row];
            if (wrt == 2) {
              axpy(acc.data() + jj * dv, p, doi, dv);
            } else {
              const float dp = dot(doi, v + (b * lk + j) * dv, dv);
              axpy(acc.data() + jj * d, p * (dp - DL[row]), qi, d);
            }
          }
        }
        const float f = wrt == 1 ? scale : 1.0f;
        for (int64_t jj = 0; jj < nk; ++jj)
          for (int64_t t = 0; t < width; ++t) epi(b, j0 + jj, t, f * acc[jj * width + t]);
      }
  }
}

}  // namespace kiln
