// Compile-only driver for groupnorm_silu.cuh and scatter_add.cuh (f32 and bf16 inputs).
#include "groupnorm_silu.cuh"
#include "scatter_add.cuh"

using namespace kiln;

extern "C" __global__ void __launch_bounds__(GroupNormCfg::THREADS)
    kiln_test_groupnorm_silu(float* __restrict__ y, const float* __restrict__ x, const float* __restrict__ gamma,
                             const float* __restrict__ beta, int C, int64_t HW, int G, float eps) {
  groupnorm_silu_block(blockIdx.x, blockIdx.y, C, HW, G, x, gamma, beta, eps, true,
                       [=](int n, int c, int64_t s, float v) { y[(int64_t(n) * C + c) * HW + s] = v; });
}

extern "C" __global__ void __launch_bounds__(GroupNormCfg::THREADS)
    kiln_test_groupnorm_bf16_out_bf16(__nv_bfloat16* __restrict__ y, const __nv_bfloat16* __restrict__ x, int C,
                                      int64_t HW, int G, float eps) {
  groupnorm_silu_block(blockIdx.x, blockIdx.y, C, HW, G, x, nullptr, nullptr, eps, false,
                       [=](int n, int c, int64_t s, float v) {
                         y[(int64_t(n) * C + c) * HW + s] = from_f32<__nv_bfloat16>(v);
                       });
}

extern "C" __global__ void kiln_test_scatter_zero(float* __restrict__ out, int64_t n) {
  scatter_zero(int64_t(blockIdx.x) * blockDim.x + threadIdx.x, n, out);
}

extern "C" __global__ void __launch_bounds__(ScatterCfg::THREADS)
    kiln_test_scatter_add(float* out, const float* __restrict__ upd, const int32_t* __restrict__ idx,
                          int64_t outer, int64_t n_idx, int64_t inner, int64_t size) {
  scatter_add_elem(int64_t(blockIdx.x) * blockDim.x + threadIdx.x, outer, n_idx, inner, size, upd, idx, out);
}

extern "C" __global__ void __launch_bounds__(ScatterCfg::THREADS)
    kiln_test_scatter_add_bf16(float* out, const __nv_bfloat16* __restrict__ upd, const int32_t* __restrict__ idx,
                               int64_t outer, int64_t n_idx, int64_t inner, int64_t size) {
  scatter_add_elem(int64_t(blockIdx.x) * blockDim.x + threadIdx.x, outer, n_idx, inner, size, upd, idx, out);
}
