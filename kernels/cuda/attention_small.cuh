// Attention for head dims the tiled kernels do not take (not a multiple of 4): one thread per output row,
// float accumulation, probabilities recomputed; operands f32, bf16 or f16 (T), loaded into f32. Correct for any shape; meant for small heads, not speed.
// q [nb,lq,d], k [nb,lk,d], v [nb,lk,dv], dout [nb,lq,dv]; causal: key j allowed for query i iff j <= i.
#pragma once
#include <stdint.h>

#include "common.cuh"

namespace kiln {
namespace small_attn {

// Row i's max and 1/sum of exp(scale * q_i . k_j).
template <class T>
__device__ inline void row_stats(int64_t b, int64_t i, int lq, int lk, int d, const T* q, const T* k, float scale,
                                 bool causal, float* m_out, float* inv_out) {
  float m = -INFINITY;
  for (int j = 0; j < lk; ++j) {
    if (causal && j > i) break;
    float s = 0.f;
    for (int t = 0; t < d; ++t) s += to_f32(q[(b * lq + i) * d + t]) * to_f32(k[(b * lk + j) * d + t]);
    m = fmaxf(m, s * scale);
  }
  float z = 0.f;
  for (int j = 0; j < lk; ++j) {
    if (causal && j > i) break;
    float s = 0.f;
    for (int t = 0; t < d; ++t) s += to_f32(q[(b * lq + i) * d + t]) * to_f32(k[(b * lk + j) * d + t]);
    z += expf(s * scale - m);
  }
  *m_out = m;
  *inv_out = 1.f / z;
}

template <class T>
__device__ inline float prob(int64_t b, int64_t i, int64_t j, int lq, int lk, int d, const T* q, const T* k, float scale,
                             float m, float inv) {
  float s = 0.f;
  for (int t = 0; t < d; ++t) s += to_f32(q[(b * lq + i) * d + t]) * to_f32(k[(b * lk + j) * d + t]);
  return expf(s * scale - m) * inv;
}

// dP_ij = dO_i . v_j; delta_i = sum_j P_ij dP_ij.
template <class T>
__device__ inline float dprob(int64_t b, int64_t i, int64_t j, int lq, int lk, int dv, const T* v, const T* dout) {
  float s = 0.f;
  for (int t = 0; t < dv; ++t) s += to_f32(dout[(b * lq + i) * dv + t]) * to_f32(v[(b * lk + j) * dv + t]);
  return s;
}

template <class T>
__device__ inline float row_delta(int64_t b, int64_t i, int lq, int lk, int d, int dv, const T* q, const T* k, const T* v,
                                  const T* dout, float scale, bool causal, float m, float inv) {
  float s = 0.f;
  for (int j = 0; j < lk; ++j) {
    if (causal && j > i) break;
    s += prob(b, i, j, lq, lk, d, q, k, scale, m, inv) * dprob(b, i, j, lq, lk, dv, v, dout);
  }
  return s;
}

// Thread `row` of nb*lq computes out[b, i, :]; epi(b, i, t, value).
template <class T, class Epi>
__device__ void fwd_row(int64_t row, int lq, int lk, int d, int dv, const T* q, const T* k, const T* v, float scale,
                        bool causal, Epi epi) {
  const int64_t b = row / lq, i = row % lq;
  float m, inv;
  row_stats(b, i, lq, lk, d, q, k, scale, causal, &m, &inv);
  for (int t = 0; t < dv; ++t) {
    float o = 0.f;
    for (int j = 0; j < lk; ++j) {
      if (causal && j > i) break;
      o += prob(b, i, j, lq, lk, d, q, k, scale, m, inv) * to_f32(v[(b * lk + j) * dv + t]);
    }
    epi(int(b), int(i), t, o);
  }
}

// wrt 0: thread per (b, i) row of dQ; 1 / 2: thread per (b, j) row of dK / dV.
template <class T, class Epi>
__device__ void grad_row(int64_t row, int wrt, int lq, int lk, int d, int dv, const T* q, const T* k, const T* v,
                         const T* dout, float scale, bool causal, Epi epi) {
  if (wrt == 0) {
    const int64_t b = row / lq, i = row % lq;
    float m, inv;
    row_stats(b, i, lq, lk, d, q, k, scale, causal, &m, &inv);
    const float delta = row_delta(b, i, lq, lk, d, dv, q, k, v, dout, scale, causal, m, inv);
    for (int t = 0; t < d; ++t) {
      float g = 0.f;
      for (int j = 0; j < lk; ++j) {
        if (causal && j > i) break;
        const float p = prob(b, i, j, lq, lk, d, q, k, scale, m, inv);
        g += p * (dprob(b, i, j, lq, lk, dv, v, dout) - delta) * scale * to_f32(k[(b * lk + j) * d + t]);
      }
      epi(int(b), int(i), t, g);
    }
    return;
  }
  const int64_t b = row / lk, j = row % lk;
  const int width = wrt == 1 ? d : dv;
  for (int t = 0; t < width; ++t) {
    float g = 0.f;
    for (int i = 0; i < lq; ++i) {
      if (causal && j > i) continue;
      float m, inv;
      row_stats(b, i, lq, lk, d, q, k, scale, causal, &m, &inv);
      const float p = prob(b, i, j, lq, lk, d, q, k, scale, m, inv);
      if (wrt == 2) g += p * to_f32(dout[(b * lq + i) * dv + t]);
      else g += p * (dprob(b, i, j, lq, lk, dv, v, dout) - row_delta(b, i, lq, lk, d, dv, q, k, v, dout, scale, causal, m, inv)) * scale * to_f32(q[(b * lq + i) * d + t]);
    }
    epi(int(b), int(j), t, g);
  }
}

}  // namespace small_attn
}  // namespace kiln
