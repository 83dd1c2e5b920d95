// kiln fused group norm (+ optional SiLU) for CUDA, one block per (n, group):
//   y[n,c,s] = act((x[n,c,s] - mean) * rsqrt(var + eps) * gamma[c] + beta[c]),  act = SiLU or identity
// mean/var over the C/G channels x HW positions of the group (biased variance, as PyTorch). x is [N, C, HW]
// contiguous (float, bf16 or half); gamma/beta may be null (1 / 0). Two passes over the group (the second
// re-reads x from L2): sum -> mean, then sum of squared deviations -> var, which avoids the cancellation
// of E[x^2] - E[x]^2. epi(int n, int c, int64_t s, float y) stores.
// Launch contract: grid = (G, N), block = GroupNormCfg::THREADS (multiple of 32), static shared 128 B.
#pragma once

#include "common.cuh"

namespace kiln {

struct GroupNormCfg {
  static constexpr int THREADS = 256;
  static constexpr int smem_bytes = 0;  // dynamic; block_sum uses 128 B of static shared memory
};

template <class T, class Epi>
__device__ __forceinline__ void groupnorm_silu_block(int g, int n, int C, int64_t HW, int G,
                                                     const T* __restrict__ x, const float* __restrict__ gamma,
                                                     const float* __restrict__ beta, float eps, bool silu, Epi epi) {
  const int Cg = C / G;
  const int64_t count = int64_t(Cg) * HW;
  const T* xg = x + (int64_t(n) * C + int64_t(g) * Cg) * HW;
  float s = 0.0f;
  for (int64_t e = threadIdx.x; e < count; e += blockDim.x) s += to_f32(xg[e]);
  const float mean = block_sum(s) / float(count);
  float v = 0.0f;
  for (int64_t e = threadIdx.x; e < count; e += blockDim.x) {
    const float dlt = to_f32(xg[e]) - mean;
    v += dlt * dlt;
  }
  const float rstd = rsqrtf(block_sum(v) / float(count) + eps);
  for (int64_t e = threadIdx.x; e < count; e += blockDim.x) {
    const int c = g * Cg + int(e / HW);
    float y = (to_f32(xg[e]) - mean) * rstd;
    if (gamma) y *= gamma[c];
    if (beta) y += beta[c];
    if (silu) y = y / (1.0f + __expf(-y));
    epi(n, c, e % HW, y);
  }
}

}  // namespace kiln
