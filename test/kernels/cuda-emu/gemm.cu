// Emulator driver for gemm.cuh: one kernel per path (f32 SIMT, bf16 and f16 tensor cores), general strides and
// per-batch operand offsets (a batch stride of 0 broadcasts the operand). C is [batch, M, N] f32.
// (Kernels are spelled out, not made by a macro: runtime/cuda-emu.ts finds kernel names in the source text.)
#include "gemm.cuh"
#include "once.cuh"

using namespace kiln;

template <class Cfg, class T>
__device__ void gemm_body(float* C, int* count, const T* A, const T* B, int M, int N, int K, int64_t rsA, int64_t csA,
                          int64_t sA, int64_t rsB, int64_t csB, int64_t sB) {
  gemm_tile<Cfg, T>(
      blockIdx.x, blockIdx.y, blockIdx.z, M, N, K, A, rsA, csA, [=](int b) { return int64_t(b) * sA; }, B, rsB, csB,
      [=](int b) { return int64_t(b) * sB; },
      [=](int b, int i, int j, float acc) { store_once(C, count, (int64_t(b) * M + i) * N + j, acc); });
}

extern "C" __global__ void __launch_bounds__(256) emu_gemm_f32(float* C, int* count, const float* A, const float* B, int M, int N, int K,
                                                              int64_t rsA, int64_t csA, int64_t sA, int64_t rsB, int64_t csB, int64_t sB) {
  gemm_body<GemmTileF32>(C, count, A, B, M, N, K, rsA, csA, sA, rsB, csB, sB);
}

extern "C" __global__ void __launch_bounds__(256) emu_gemm_bf16(float* C, int* count, const __nv_bfloat16* A, const __nv_bfloat16* B, int M,
                                                               int N, int K, int64_t rsA, int64_t csA, int64_t sA, int64_t rsB, int64_t csB,
                                                               int64_t sB) {
  gemm_body<GemmTileMma>(C, count, A, B, M, N, K, rsA, csA, sA, rsB, csB, sB);
}

extern "C" __global__ void __launch_bounds__(256) emu_gemm_f16(float* C, int* count, const __half* A, const __half* B, int M, int N, int K,
                                                              int64_t rsA, int64_t csA, int64_t sA, int64_t rsB, int64_t csB, int64_t sB) {
  gemm_body<GemmTileMma>(C, count, A, B, M, N, K, rsA, csA, sA, rsB, csB, sB);
}
