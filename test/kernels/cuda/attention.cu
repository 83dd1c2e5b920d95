// Compile-only driver: instantiates the kiln flash-attention forward and backward for head dim 64 (f32 inputs)
// and 128 (bf16 inputs), as generated kernels would.
#include "attention.cuh"

using namespace kiln;

#define KILN_ATTN_KERNELS(D, T, SUFFIX)                                                                        \
  extern "C" __global__ void __launch_bounds__(AttnTile<D, D>::THREADS)                                        \
      kiln_test_attn_fwd_##SUFFIX(float* __restrict__ out, float* __restrict__ lse, const T* __restrict__ q,   \
                                  const T* __restrict__ k, const T* __restrict__ v, int lq, int lk,            \
                                  float scale, int causal) {                                                   \
    attn_fwd_tile<D, D>(                                                                                       \
        blockIdx.x, blockIdx.y, lq, lk, q, k, v, scale, causal != 0,                                           \
        [=](int b, int i, int t, float o) { out[(int64_t(b) * lq + i) * D + t] = o; }, lse);                   \
  }                                                                                                            \
  extern "C" __global__ void __launch_bounds__(AttnTile<D, D>::THREADS)                                        \
      kiln_test_attn_bwd_stats_##SUFFIX(float* __restrict__ lse, float* __restrict__ delta,                    \
                                        const T* __restrict__ q, const T* __restrict__ k,                      \
                                        const T* __restrict__ v, const T* __restrict__ dout, int lq, int lk,   \
                                        float scale, int causal) {                                             \
    attn_bwd_stats_tile<D, D>(blockIdx.x, blockIdx.y, lq, lk, q, k, v, dout, scale, causal != 0, lse, delta);  \
  }                                                                                                            \
  extern "C" __global__ void __launch_bounds__(AttnTile<D, D>::THREADS)                                        \
      kiln_test_attn_bwd_dq_##SUFFIX(float* __restrict__ dq, const T* __restrict__ q, const T* __restrict__ k, \
                                     const T* __restrict__ v, const T* __restrict__ dout,                      \
                                     const float* __restrict__ lse, const float* __restrict__ delta, int lq,   \
                                     int lk, float scale, int causal) {                                        \
    attn_bwd_dq_tile<D, D>(blockIdx.x, blockIdx.y, lq, lk, q, k, v, dout, scale, causal != 0, lse, delta,      \
                           [=](int b, int i, int t, float g) { dq[(int64_t(b) * lq + i) * D + t] = g; });      \
  }                                                                                                            \
  extern "C" __global__ void __launch_bounds__(AttnTile<D, D>::THREADS)                                        \
      kiln_test_attn_bwd_dkdv_##SUFFIX(float* __restrict__ dk, float* __restrict__ dv,                         \
                                       const T* __restrict__ q, const T* __restrict__ k,                       \
                                       const T* __restrict__ v, const T* __restrict__ dout,                    \
                                       const float* __restrict__ lse, const float* __restrict__ delta, int lq, \
                                       int lk, float scale, int causal) {                                      \
    attn_bwd_dkdv_tile<D, D>(                                                                                  \
        blockIdx.x, blockIdx.y, lq, lk, q, k, v, dout, scale, causal != 0, lse, delta,                         \
        [=](int b, int j, int t, float g) { dk[(int64_t(b) * lk + j) * D + t] = g; },                          \
        [=](int b, int j, int t, float g) { dv[(int64_t(b) * lk + j) * D + t] = g; });                         \
  }

// One instantiation per head dim and input type is enough to type-check every template; each extra pair
// costs ~7 s of nvcc time in the test.
KILN_ATTN_KERNELS(64, float, d64_f32)
KILN_ATTN_KERNELS(128, __nv_bfloat16, d128_bf16)
