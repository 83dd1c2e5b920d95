// kiln scaled-dot-product attention on the CPU, flash style.
//
//   sdpa_f32:      out[b,i,:] = sum_j softmax_j(scale * q[b,i,:].k[b,j,:]) v[b,j,:]
//   sdpa_grad_f32: dQ, dK or dV of that for an upstream dout [nb, lq, dv]
// q [nb,lq,d], k [nb,lk,d], v [nb,lk,dv], dout [nb,lq,dv], all contiguous f32. causal: key j is allowed for
// query i iff j <= i (rows are never fully masked: j = 0 is always allowed).
//
// Forward: OpenMP over (b, BQ-row query tiles); per tile, keys are visited in BK blocks with an online
// softmax (running max m, running sum l, rescaled accumulator), so only a BQ x BK score block exists.
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
#include <vector>

namespace kiln {

namespace attn_cfg {
constexpr int64_t BQ = 32;  // query rows per tile
constexpr int64_t BK = 64;  // keys per block
}  // namespace attn_cfg

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

// Online-softmax pass over all keys for query rows [i0, i0+nq) of batch b. Produces the row max m, the
// row sum l, and (if acc != nullptr) the unnormalised accumulator acc[r*dv + t] = sum_j e^{s_ij - m} v_j.
static inline void forward_rows(int64_t i0, int64_t nq, int64_t lk, int64_t d, int64_t dv,
                                const float* q, const float* k, const float* v, float scale, bool causal,
                                float* m, float* l, float* acc, float* s) {
  using namespace attn_cfg;
  const float ninf = -std::numeric_limits<float>::infinity();
  for (int64_t r = 0; r < nq; ++r) { m[r] = ninf; l[r] = 0.0f; }
  if (acc) std::fill(acc, acc + nq * dv, 0.0f);
  const int64_t kend = causal ? std::min(lk, i0 + nq) : lk;
  for (int64_t j0 = 0; j0 < kend; j0 += BK) {
    const int64_t nk = std::min(BK, kend - j0);
    for (int64_t r = 0; r < nq; ++r) {
      const float* qi = q + (i0 + r) * d;  // q, k, v are already offset to batch b by the caller
      float* sr = s + r * BK;
      const int64_t jmax = causal ? std::min(nk, i0 + r - j0 + 1) : nk;  // keys allowed in this block
      float mx = m[r];
      for (int64_t j = 0; j < jmax; ++j) {
        sr[j] = scale * dot(qi, k + (j0 + j) * d, d);
        mx = std::max(mx, sr[j]);
      }
      if (jmax <= 0) continue;
      const float corr = std::exp(m[r] - mx);  // m = -inf on the first block -> 0
      float* ar = acc ? acc + r * dv : nullptr;
      if (ar && corr != 1.0f)
        for (int64_t t = 0; t < dv; ++t) ar[t] *= corr;
      float sum = 0.0f;
      for (int64_t j = 0; j < jmax; ++j) {
        const float p = std::exp(sr[j] - mx);
        sum += p;
        if (ar) axpy(ar, p, v + (j0 + j) * dv, dv);
      }
      l[r] = l[r] * corr + sum;
      m[r] = mx;
    }
  }
}

}  // namespace attn_detail

// out[b,i,t]: epi(int64_t b, int64_t i, int64_t t, float acc).
template <class Epi>
void sdpa_f32(int64_t nb, int64_t lq, int64_t lk, int64_t d, int64_t dv, const float* q, const float* k,
              const float* v, float scale, bool causal, Epi epi) {
  using namespace attn_cfg;
  const int64_t nqt = (lq + BQ - 1) / BQ;
#pragma omp parallel
  {
    std::vector<float> m(BQ), l(BQ), acc(BQ * dv), s(BQ * BK);
#pragma omp for schedule(dynamic, 1) collapse(2)
    for (int64_t b = 0; b < nb; ++b)
      for (int64_t qt = 0; qt < nqt; ++qt) {
        const int64_t i0 = qt * BQ, nq = std::min(BQ, lq - i0);
        attn_detail::forward_rows(i0, nq, lk, d, dv, q + b * lq * d, k + b * lk * d, v + b * lk * dv, scale,
                                  causal, m.data(), l.data(), acc.data(), s.data());
        for (int64_t r = 0; r < nq; ++r) {
          const float inv = l[r] > 0.0f ? 1.0f / l[r] : 0.0f;
          for (int64_t t = 0; t < dv; ++t) epi(b, i0 + r, t, acc[r * dv + t] * inv);
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
#pragma omp parallel
  {
    std::vector<float> m(BQ), l(BQ), acc(BQ * dv), s(BQ * BK);
#pragma omp for schedule(dynamic, 1) collapse(2)
    for (int64_t b = 0; b < nb; ++b)
      for (int64_t qt = 0; qt < nqt; ++qt) {
        const int64_t i0 = qt * BQ, nq = std::min(BQ, lq - i0);
        attn_detail::forward_rows(i0, nq, lk, d, dv, q + b * lq * d, k + b * lk * d, v + b * lk * dv, scale,
                                  causal, m.data(), l.data(), acc.data(), s.data());
        for (int64_t r = 0; r < nq; ++r) {
          const int64_t row = b * lq + i0 + r;
          const float inv = l[r] > 0.0f ? 1.0f / l[r] : 0.0f;
          M[row] = m[r];
          IL[row] = inv;
          DL[row] = inv * dot(dout + row * dv, acc.data() + r * dv, dv);
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
