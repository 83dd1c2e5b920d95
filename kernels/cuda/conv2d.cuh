// kiln conv2d for CUDA (NCHW x, OIHW w) as implicit GEMM on gemm.cuh's tiles: the loaders gather im2col
// entries straight from global memory, so no column matrix exists. Same GEMM views as kernels/cpu/conv2d.h:
//   forward     batch = N*G (b = n*G + g), M = O/G,  N = Ho*Wo, K = C/G*KH*KW   epi(n, o, oh, ow, acc)
//   bwd_data    batch = N*G,               M = C/G,  N = H*W,   K = O/G*KH*KW   epi(n, c, ih, iw, acc)
//   bwd_weight  batch = G,                 M = O/G,  N = C/G*KH*KW, K = N*Ho*Wo epi(o, ci, kh, kw, acc)
// Launch contract: grid = (ceil(GEMM N / BN), ceil(GEMM M / BM), batch) with conv2d_gemm_dims() giving the
// dims; block = Cfg::THREADS; dynamic shared memory = Cfg::smem_bytes. Cfg = GemmTileF32 for T = float,
// GemmTileMma for bf16 / half (f32 accumulation either way).
#pragma once

#include "gemm.cuh"

namespace kiln {

struct Conv2dParams {
  int N, C, H, W, O, KH, KW, sh, sw, pt, pb, pl, pr, dh, dw, G;
  __host__ __device__ int Ho() const { return (H + pt + pb - dh * (KH - 1) - 1) / sh + 1; }
  __host__ __device__ int Wo() const { return (W + pl + pr - dw * (KW - 1) - 1) / sw + 1; }
};

// GEMM dimensions of each variant (mode 0 forward, 1 bwd_data, 2 bwd_weight): {batch, M, N, K}.
struct GemmDims { int batch, M, N, K; };
__host__ __device__ inline GemmDims conv2d_gemm_dims(const Conv2dParams& p, int mode) {
  const int Cg = p.C / p.G, Og = p.O / p.G, khw = p.KH * p.KW, P = p.Ho() * p.Wo();
  if (mode == 0) return {p.N * p.G, Og, P, Cg * khw};
  if (mode == 1) return {p.N * p.G, Cg, p.H * p.W, Og * khw};
  return {p.G, Og, Cg * khw, p.N * P};
}

template <class Cfg, class T, class Epi>
__device__ __forceinline__ void conv2d_fwd_tile(int tile_n, int tile_m, int b, const Conv2dParams p,
                                                const T* __restrict__ x, const T* __restrict__ w, Epi epi) {
  const GemmDims d = conv2d_gemm_dims(p, 0);
  const int n = b / p.G, g = b % p.G, Cg = p.C / p.G, Og = p.O / p.G, khw = p.KH * p.KW, Wo = p.Wo();
  const T* wg = w + int64_t(g) * Og * d.K;
  const T* xb = x + (int64_t(n) * p.C + int64_t(g) * Cg) * p.H * p.W;
  const T zero = from_f32<T>(0.0f);
  gemm_tile_generic<Cfg, T>(
      tile_n, tile_m, b, d.M, d.N, d.K, [=](int, int o, int k) { return wg[int64_t(o) * d.K + k]; },
      [=](int, int k, int j) {
        const int ci = k / khw, kh = (k / p.KW) % p.KH, kw = k % p.KW;
        const int ih = (j / Wo) * p.sh - p.pt + kh * p.dh, iw = (j % Wo) * p.sw - p.pl + kw * p.dw;
        return (ih >= 0 && ih < p.H && iw >= 0 && iw < p.W) ? xb[(int64_t(ci) * p.H + ih) * p.W + iw] : zero;
      },
      [&](int, int o, int j, float acc) { epi(n, g * Og + o, j / Wo, j % Wo, acc); });
}

template <class Cfg, class T, class Epi>
__device__ __forceinline__ void conv2d_bwd_data_tile(int tile_n, int tile_m, int b, const Conv2dParams p,
                                                     const T* __restrict__ dy, const T* __restrict__ w, Epi epi) {
  const GemmDims d = conv2d_gemm_dims(p, 1);
  const int n = b / p.G, g = b % p.G, Cg = p.C / p.G, Og = p.O / p.G, khw = p.KH * p.KW;
  const int Ho = p.Ho(), Wo = p.Wo();
  const T* wg = w + int64_t(g) * Og * Cg * khw;
  const T* dyb = dy + (int64_t(n) * p.O + int64_t(g) * Og) * Ho * Wo;
  const T zero = from_f32<T>(0.0f);
  gemm_tile_generic<Cfg, T>(
      tile_n, tile_m, b, d.M, d.N, d.K,
      [=](int, int c, int k) { return wg[(int64_t(k / khw) * Cg + c) * khw + k % khw]; },
      [=](int, int k, int j) {
        const int o = k / khw, kh = (k / p.KW) % p.KH, kw = k % p.KW;
        const int th = j / p.W + p.pt - kh * p.dh, tw = j % p.W + p.pl - kw * p.dw;
        if (th < 0 || tw < 0 || th % p.sh != 0 || tw % p.sw != 0) return zero;
        const int oh = th / p.sh, ow = tw / p.sw;
        return (oh < Ho && ow < Wo) ? dyb[(int64_t(o) * Ho + oh) * Wo + ow] : zero;
      },
      [&](int, int c, int j, float acc) { epi(n, g * Cg + c, j / p.W, j % p.W, acc); });
}

template <class Cfg, class T, class Epi>
__device__ __forceinline__ void conv2d_bwd_weight_tile(int tile_n, int tile_m, int g, const Conv2dParams p,
                                                       const T* __restrict__ x, const T* __restrict__ dy, Epi epi) {
  const GemmDims d = conv2d_gemm_dims(p, 2);
  const int Cg = p.C / p.G, Og = p.O / p.G, khw = p.KH * p.KW, Wo = p.Wo(), P = p.Ho() * p.Wo();
  const T zero = from_f32<T>(0.0f);
  gemm_tile_generic<Cfg, T>(
      tile_n, tile_m, g, d.M, d.N, d.K,
      [=](int, int o, int k) { return dy[(int64_t(k / P) * p.O + g * Og + o) * P + k % P]; },
      [=](int, int k, int j) {
        const int n = k / P, q = k % P, ci = j / khw, kh = (j / p.KW) % p.KH, kw = j % p.KW;
        const int ih = (q / Wo) * p.sh - p.pt + kh * p.dh, iw = (q % Wo) * p.sw - p.pl + kw * p.dw;
        return (ih >= 0 && ih < p.H && iw >= 0 && iw < p.W)
                   ? x[((int64_t(n) * p.C + g * Cg + ci) * p.H + ih) * p.W + iw]
                   : zero;
      },
      [&](int, int o, int j, float acc) { epi(g * Og + o, j / khw, (j / p.KW) % p.KH, j % p.KW, acc); });
}

}  // namespace kiln
