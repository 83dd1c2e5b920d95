// kiln flash attention for CUDA (SIMT f32 math; q/k/v/dout may be float, bf16 or half).
//   q [nb, lq, D], k [nb, lk, D], v [nb, lk, DV], dout [nb, lq, DV], contiguous; nb = batch * heads.
//   causal: key j allowed for query i iff j <= i. Any lq, lk; D, DV multiples of 4 (64 and 128 tested).
//
// Tiles of BQ = 64 query rows x BKV = 64 keys, 256 threads: thread t owns row t/4 of its tile and the
// 4-way slice t%4 of the key block (keys t%4 + 4c) and of the output columns (t%4 + 4c); row max / sum are
// reduced across the 4 lanes of a row with shuffles. Scores never leave the block (online softmax).
//
// Launch contract (all: block = AttnTile<D,DV>::THREADS, dynamic shared memory as named, which exceeds
// 48 KiB, so set CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES first):
//   attn_fwd_tile        grid = (ceil(lq/BQ), nb)    smem_fwd     epi(b, i, t, o) ; optional lse [nb*lq]
//   attn_bwd_stats_tile  grid = (ceil(lq/BQ), nb)    smem_fwd     writes lse, delta [nb*lq] (workspace)
//   attn_bwd_dq_tile     grid = (ceil(lq/BQ), nb)    smem_dq      epi(b, i, t, dq)   (needs lse, delta)
//   attn_bwd_dkdv_tile   grid = (ceil(lk/BKV), nb)   smem_dkdv    epi_dk(b, j, t, dk), epi_dv(b, j, t, dv)
// lse is natural-log logsumexp of the scaled scores; delta_i = rowsum(dP o P) = dO_i . O_i.
#pragma once

#include <math_constants.h>

#include "common.cuh"

namespace kiln {

template <int D, int DV>
struct AttnTile {
  static_assert(D % 4 == 0 && DV % 4 == 0, "head dims must be multiples of 4");
  static constexpr int BQ = 64, BKV = 64, THREADS = 256, TPR = 4;
  static constexpr int LD = D + 4, LDV = DV + 4, LP = BKV + 4, LPQ = BQ + 4;  // padded pitches (floats)
  static constexpr int smem_fwd = (BQ * LD + BKV * LD + BKV * LDV + BQ * LP) * 4;
  static constexpr int smem_dq = (BQ * LD + BQ * LDV + BKV * LD + BKV * LDV + BQ * LP + 2 * BQ) * 4;
  static constexpr int smem_dkdv = (BKV * LD + BKV * LDV + BQ * LD + BQ * LDV + 2 * BKV * LPQ + 2 * BQ) * 4;
};

namespace attn_detail {

constexpr float LOG2E = 1.4426950408889634f;

// rows x W tile from src (row stride W) into smem dst (pitch LDS), scaled, zero past `valid` rows.
template <int THREADS, int W, int LDS, class T>
__device__ __forceinline__ void load_tile(float* dst, const T* __restrict__ src, int rows, int valid, float mul) {
  for (int e = threadIdx.x; e < rows * W; e += THREADS) {
    const int r = e / W, c = e % W;
    dst[r * LDS + c] = r < valid ? to_f32(src[int64_t(r) * W + c]) * mul : 0.0f;
  }
}

// The forward loop shared by attn_fwd_tile and attn_bwd_stats_tile: on return each thread holds the
// unnormalised output columns p + 4c of its row in o[], and the row's running max m (log2 units) and sum l.
template <int D, int DV, class T>
__device__ __forceinline__ void fwd_core(int qt, int b, int lq, int lk, const T* __restrict__ q,
                                         const T* __restrict__ k, const T* __restrict__ v, float scale, bool causal,
                                         float (&o)[DV / 4], float& m, float& l) {
  using C = AttnTile<D, DV>;
  float* Qs = reinterpret_cast<float*>(kiln_smem);
  float* Ks = Qs + C::BQ * C::LD;
  float* Vs = Ks + C::BKV * C::LD;
  float* Ps = Vs + C::BKV * C::LDV;
  const int r = threadIdx.x / C::TPR, p = threadIdx.x % C::TPR;
  const int q0 = qt * C::BQ, row = q0 + r;
  // Scores in log2 units: fold scale * log2(e) into Q once.
  load_tile<C::THREADS, D, C::LD>(Qs, q + (int64_t(b) * lq + q0) * D, C::BQ, min(C::BQ, lq - q0), scale * LOG2E);
#pragma unroll
  for (int c = 0; c < DV / 4; ++c) o[c] = 0.0f;
  m = -CUDART_INF_F;
  l = 0.0f;
  const int kend = causal ? min(lk, q0 + C::BQ) : lk;
  for (int k0 = 0; k0 < kend; k0 += C::BKV) {
    __syncthreads();  // previous K/V/P tiles fully consumed (and Q stored, on the first pass)
    const int nk = min(C::BKV, lk - k0);
    load_tile<C::THREADS, D, C::LD>(Ks, k + (int64_t(b) * lk + k0) * D, C::BKV, nk, 1.0f);
    load_tile<C::THREADS, DV, C::LDV>(Vs, v + (int64_t(b) * lk + k0) * DV, C::BKV, nk, 1.0f);
    __syncthreads();
    float s[C::BKV / 4];
    float mx = m;
#pragma unroll
    for (int c = 0; c < C::BKV / 4; ++c) {
      const int j = p + 4 * c, key = k0 + j;
      float acc = 0.0f;
#pragma unroll 8
      for (int t = 0; t < D; ++t) acc = fmaf(Qs[r * C::LD + t], Ks[j * C::LD + t], acc);
      s[c] = (key < lk && !(causal && key > row)) ? acc : -CUDART_INF_F;
      mx = fmaxf(mx, s[c]);
    }
    mx = group_max<4>(mx);
    // A row with every key masked so far keeps m = -inf; use 0 as the reference so exp2 gives 0, not NaN.
    const float ref = mx == -CUDART_INF_F ? 0.0f : mx;
    const float corr = exp2f(m - ref);
    float sum = 0.0f;
#pragma unroll
    for (int c = 0; c < C::BKV / 4; ++c) {
      const float e = exp2f(s[c] - ref);
      sum += e;
      Ps[r * C::LP + p + 4 * c] = e;
    }
    sum = group_sum<4>(sum);
    l = l * corr + sum;
    m = mx;
    __syncwarp();  // the 4 threads of a row are in one warp: P row visible to them
#pragma unroll
    for (int c = 0; c < DV / 4; ++c) o[c] *= corr;
    for (int j = 0; j < nk; ++j) {
      const float pj = Ps[r * C::LP + j];
#pragma unroll
      for (int c = 0; c < DV / 4; ++c) o[c] = fmaf(pj, Vs[j * C::LDV + p + 4 * c], o[c]);
    }
  }
}

}  // namespace attn_detail

template <int D, int DV, class T, class Epi>
__device__ __forceinline__ void attn_fwd_tile(int qt, int b, int lq, int lk, const T* __restrict__ q,
                                              const T* __restrict__ k, const T* __restrict__ v, float scale,
                                              bool causal, Epi epi, float* __restrict__ lse = nullptr) {
  using C = AttnTile<D, DV>;
  float o[DV / 4], m, l;
  attn_detail::fwd_core<D, DV>(qt, b, lq, lk, q, k, v, scale, causal, o, m, l);
  const int r = threadIdx.x / C::TPR, p = threadIdx.x % C::TPR, row = qt * C::BQ + r;
  if (row >= lq) return;
  const float inv = l > 0.0f ? 1.0f / l : 0.0f;
#pragma unroll
  for (int c = 0; c < DV / 4; ++c) epi(b, row, p + 4 * c, o[c] * inv);
  if (lse && p == 0) lse[int64_t(b) * lq + row] = (m + log2f(l)) * 0.69314718055994531f;
}

template <int D, int DV, class T>
__device__ __forceinline__ void attn_bwd_stats_tile(int qt, int b, int lq, int lk, const T* __restrict__ q,
                                                    const T* __restrict__ k, const T* __restrict__ v,
                                                    const T* __restrict__ dout, float scale, bool causal,
                                                    float* __restrict__ lse, float* __restrict__ delta) {
  using C = AttnTile<D, DV>;
  float o[DV / 4], m, l;
  attn_detail::fwd_core<D, DV>(qt, b, lq, lk, q, k, v, scale, causal, o, m, l);
  const int r = threadIdx.x / C::TPR, p = threadIdx.x % C::TPR, row = qt * C::BQ + r;
  const bool ok = row < lq;
  float dd = 0.0f;
  if (ok) {
    const T* dor = dout + (int64_t(b) * lq + row) * DV;
#pragma unroll
    for (int c = 0; c < DV / 4; ++c) dd = fmaf(to_f32(dor[p + 4 * c]), o[c], dd);
  }
  dd = group_sum<4>(dd);
  if (ok && p == 0) {
    lse[int64_t(b) * lq + row] = (m + log2f(l)) * 0.69314718055994531f;
    delta[int64_t(b) * lq + row] = l > 0.0f ? dd / l : 0.0f;
  }
}

// dQ_i = scale * sum_j P_ij (dP_ij - delta_i) K_j, P recomputed from lse.
template <int D, int DV, class T, class Epi>
__device__ __forceinline__ void attn_bwd_dq_tile(int qt, int b, int lq, int lk, const T* __restrict__ q,
                                                 const T* __restrict__ k, const T* __restrict__ v,
                                                 const T* __restrict__ dout, float scale, bool causal,
                                                 const float* __restrict__ lse, const float* __restrict__ delta,
                                                 Epi epi) {
  using C = AttnTile<D, DV>;
  using attn_detail::load_tile;
  float* Qs = reinterpret_cast<float*>(kiln_smem);
  float* dOs = Qs + C::BQ * C::LD;
  float* Ks = dOs + C::BQ * C::LDV;
  float* Vs = Ks + C::BKV * C::LD;
  float* Ss = Vs + C::BKV * C::LDV;
  float* Ls = Ss + C::BQ * C::LP;
  float* Ds = Ls + C::BQ;
  const int r = threadIdx.x / C::TPR, p = threadIdx.x % C::TPR;
  const int q0 = qt * C::BQ, row = q0 + r, nq = min(C::BQ, lq - q0);
  load_tile<C::THREADS, D, C::LD>(Qs, q + (int64_t(b) * lq + q0) * D, C::BQ, nq, scale);
  load_tile<C::THREADS, DV, C::LDV>(dOs, dout + (int64_t(b) * lq + q0) * DV, C::BQ, nq, 1.0f);
  for (int e = threadIdx.x; e < C::BQ; e += C::THREADS) {
    Ls[e] = e < nq ? lse[int64_t(b) * lq + q0 + e] : 0.0f;
    Ds[e] = e < nq ? delta[int64_t(b) * lq + q0 + e] : 0.0f;
  }
  float dq[D / 4];
#pragma unroll
  for (int c = 0; c < D / 4; ++c) dq[c] = 0.0f;
  const int kend = causal ? min(lk, q0 + C::BQ) : lk;
  for (int k0 = 0; k0 < kend; k0 += C::BKV) {
    __syncthreads();
    const int nk = min(C::BKV, lk - k0);
    load_tile<C::THREADS, D, C::LD>(Ks, k + (int64_t(b) * lk + k0) * D, C::BKV, nk, 1.0f);
    load_tile<C::THREADS, DV, C::LDV>(Vs, v + (int64_t(b) * lk + k0) * DV, C::BKV, nk, 1.0f);
    __syncthreads();
#pragma unroll 4
    for (int c = 0; c < C::BKV / 4; ++c) {
      const int j = p + 4 * c, key = k0 + j;
      float s = 0.0f, dp = 0.0f;
      for (int t = 0; t < D; ++t) s = fmaf(Qs[r * C::LD + t], Ks[j * C::LD + t], s);
      for (int t = 0; t < DV; ++t) dp = fmaf(dOs[r * C::LDV + t], Vs[j * C::LDV + t], dp);
      const bool ok = row < lq && key < lk && !(causal && key > row);
      const float P = ok ? __expf(s - Ls[r]) : 0.0f;
      Ss[r * C::LP + j] = P * (dp - Ds[r]);
    }
    __syncwarp();
    for (int j = 0; j < nk; ++j) {
      const float ds = Ss[r * C::LP + j];
#pragma unroll
      for (int c = 0; c < D / 4; ++c) dq[c] = fmaf(ds, Ks[j * C::LD + p + 4 * c], dq[c]);
    }
  }
  if (row >= lq) return;
#pragma unroll
  for (int c = 0; c < D / 4; ++c) epi(b, row, p + 4 * c, scale * dq[c]);
}

// dV_j = sum_i P_ij dO_i,  dK_j = scale * sum_i P_ij (dP_ij - delta_i) Q_i.  Thread t owns key row t/4.
template <int D, int DV, class T, class EpiK, class EpiV>
__device__ __forceinline__ void attn_bwd_dkdv_tile(int kt, int b, int lq, int lk, const T* __restrict__ q,
                                                   const T* __restrict__ k, const T* __restrict__ v,
                                                   const T* __restrict__ dout, float scale, bool causal,
                                                   const float* __restrict__ lse, const float* __restrict__ delta,
                                                   EpiK epi_dk, EpiV epi_dv) {
  using C = AttnTile<D, DV>;
  using attn_detail::load_tile;
  float* Ks = reinterpret_cast<float*>(kiln_smem);
  float* Vs = Ks + C::BKV * C::LD;
  float* Qs = Vs + C::BKV * C::LDV;
  float* dOs = Qs + C::BQ * C::LD;
  float* Pt = dOs + C::BQ * C::LDV;
  float* St = Pt + C::BKV * C::LPQ;
  float* Ls = St + C::BKV * C::LPQ;
  float* Ds = Ls + C::BQ;
  const int jr = threadIdx.x / C::TPR, p = threadIdx.x % C::TPR;
  const int k0 = kt * C::BKV, key = k0 + jr, nk = min(C::BKV, lk - k0);
  load_tile<C::THREADS, D, C::LD>(Ks, k + (int64_t(b) * lk + k0) * D, C::BKV, nk, scale);
  load_tile<C::THREADS, DV, C::LDV>(Vs, v + (int64_t(b) * lk + k0) * DV, C::BKV, nk, 1.0f);
  float dk[D / 4], dv[DV / 4];
#pragma unroll
  for (int c = 0; c < D / 4; ++c) dk[c] = 0.0f;
#pragma unroll
  for (int c = 0; c < DV / 4; ++c) dv[c] = 0.0f;
  const int qstart = causal ? (k0 / C::BQ) * C::BQ : 0;
  for (int q0 = qstart; q0 < lq; q0 += C::BQ) {
    __syncthreads();
    const int nq = min(C::BQ, lq - q0);
    load_tile<C::THREADS, D, C::LD>(Qs, q + (int64_t(b) * lq + q0) * D, C::BQ, nq, 1.0f);
    load_tile<C::THREADS, DV, C::LDV>(dOs, dout + (int64_t(b) * lq + q0) * DV, C::BQ, nq, 1.0f);
    for (int e = threadIdx.x; e < C::BQ; e += C::THREADS) {
      Ls[e] = e < nq ? lse[int64_t(b) * lq + q0 + e] : 0.0f;
      Ds[e] = e < nq ? delta[int64_t(b) * lq + q0 + e] : 0.0f;
    }
    __syncthreads();
#pragma unroll 4
    for (int c = 0; c < C::BQ / 4; ++c) {
      const int i = p + 4 * c, qrow = q0 + i;
      float s = 0.0f, dp = 0.0f;
      for (int t = 0; t < D; ++t) s = fmaf(Qs[i * C::LD + t], Ks[jr * C::LD + t], s);
      for (int t = 0; t < DV; ++t) dp = fmaf(dOs[i * C::LDV + t], Vs[jr * C::LDV + t], dp);
      const bool ok = qrow < lq && key < lk && !(causal && key > qrow);
      const float P = ok ? __expf(s - Ls[i]) : 0.0f;
      Pt[jr * C::LPQ + i] = P;
      St[jr * C::LPQ + i] = P * (dp - Ds[i]);
    }
    __syncwarp();
    for (int i = 0; i < nq; ++i) {
      const float P = Pt[jr * C::LPQ + i], ds = St[jr * C::LPQ + i];
#pragma unroll
      for (int c = 0; c < DV / 4; ++c) dv[c] = fmaf(P, dOs[i * C::LDV + p + 4 * c], dv[c]);
#pragma unroll
      for (int c = 0; c < D / 4; ++c) dk[c] = fmaf(ds, Qs[i * C::LD + p + 4 * c], dk[c]);
    }
  }
  if (key >= lk) return;
#pragma unroll
  for (int c = 0; c < D / 4; ++c) epi_dk(b, key, p + 4 * c, scale * dk[c]);
#pragma unroll
  for (int c = 0; c < DV / 4; ++c) epi_dv(b, key, p + 4 * c, dv[c]);
}

}  // namespace kiln
