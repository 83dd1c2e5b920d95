// Compile-only driver: instantiates every kiln GEMM path the way generated kernels call it.
#include "gemm.cuh"

using namespace kiln;

struct Zero {
  __device__ int64_t operator()(int) const { return 0; }
};

extern "C" __global__ void __launch_bounds__(GemmTileF32::THREADS)
    kiln_test_gemm_f32_bias_relu(float* __restrict__ C, const float* __restrict__ A, const float* __restrict__ B,
                                 const float* __restrict__ bias, int M, int N, int K) {
  gemm_tile<GemmTileF32, float>(
      blockIdx.x, blockIdx.y, blockIdx.z, M, N, K, A, K, 1, [=](int b) { return int64_t(b) * M * K; }, B,
      1, K, Zero{},  // B transposed and shared by every batch element
      [=](int b, int i, int j, float acc) { C[(int64_t(b) * M + i) * N + j] = fmaxf(acc + bias[j], 0.f); });
}

template <class T>
__device__ void mma_body(float* C, const T* A, const T* B, int M, int N, int K) {
  gemm_tile<GemmTileMma, T>(
      blockIdx.x, blockIdx.y, blockIdx.z, M, N, K, A, 1, M, Zero{}, B, N, 1,
      [=](int b) { return int64_t(b) * K * N; },
      [=](int b, int i, int j, float acc) { C[(int64_t(b) * M + i) * N + j] = acc; });
}

extern "C" __global__ void __launch_bounds__(GemmTileMma::THREADS)
    kiln_test_gemm_bf16(float* __restrict__ C, const __nv_bfloat16* __restrict__ A,
                        const __nv_bfloat16* __restrict__ B, int M, int N, int K) {
  mma_body(C, A, B, M, N, K);
}

extern "C" __global__ void __launch_bounds__(GemmTileMma::THREADS)
    kiln_test_gemm_f16_out_half(__half* __restrict__ C, const __half* __restrict__ A, const __half* __restrict__ B,
                                int M, int N, int K) {
  gemm_tile<GemmTileMma, __half>(blockIdx.x, blockIdx.y, blockIdx.z, M, N, K, A, K, 1, Zero{}, B, N, 1, Zero{},
                                 [=](int, int i, int j, float acc) {
                                   C[int64_t(i) * N + j] = from_f32<__half>(acc * 0.5f);
                                 });
}
