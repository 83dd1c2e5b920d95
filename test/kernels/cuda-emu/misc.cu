// Emulator driver for groupnorm_silu.cuh (f32 and bf16 inputs) and scatter_add.cuh (f32 and bf16 updates).
#include "groupnorm_silu.cuh"
#include "once.cuh"
#include "scatter_add.cuh"

using namespace kiln;

template <class T>
__device__ void groupnorm(float* y, int* count, const T* x, const float* gamma, const float* beta, int C, int64_t HW, int G, float eps,
                          int silu) {
  groupnorm_silu_block(blockIdx.x, blockIdx.y, C, HW, G, x, gamma, beta, eps, silu != 0,
                       [=](int n, int c, int64_t s, float v) { store_once(y, count, (int64_t(n) * C + c) * HW + s, v); });
}

extern "C" __global__ void __launch_bounds__(256) emu_groupnorm_f32(float* y, int* count, const float* x, const float* gamma,
                                                                   const float* beta, int C, int64_t HW, int G, float eps, int silu) {
  groupnorm(y, count, x, gamma, beta, C, HW, G, eps, silu);
}

extern "C" __global__ void __launch_bounds__(256) emu_groupnorm_bf16(float* y, int* count, const __nv_bfloat16* x, const float* gamma,
                                                                    const float* beta, int C, int64_t HW, int G, float eps, int silu) {
  groupnorm(y, count, x, gamma, beta, C, HW, G, eps, silu);
}

extern "C" __global__ void __launch_bounds__(256) emu_scatter_zero(float* out, int64_t n) {
  scatter_zero(int64_t(blockIdx.x) * blockDim.x + threadIdx.x, n, out);
}

extern "C" __global__ void __launch_bounds__(256) emu_scatter_add_f32(float* out, const float* upd, const int32_t* idx, int64_t outer,
                                                                     int64_t n_idx, int64_t inner, int64_t size) {
  scatter_add_elem(int64_t(blockIdx.x) * blockDim.x + threadIdx.x, outer, n_idx, inner, size, upd, idx, out);
}

extern "C" __global__ void __launch_bounds__(256) emu_scatter_add_bf16(float* out, const __nv_bfloat16* upd, const int32_t* idx,
                                                                      int64_t outer, int64_t n_idx, int64_t inner, int64_t size) {
  scatter_add_elem(int64_t(blockIdx.x) * blockDim.x + threadIdx.x, outer, n_idx, inner, size, upd, idx, out);
}
