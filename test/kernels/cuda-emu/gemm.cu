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

// The pipelined tile (GemmTilePipe) called directly, one kernel per storage order: A k- or m-contiguous, B n- or
// k-contiguous (ldA / ldB the other stride), and the guarded entry gemm_tile_pipelined with general strides (it
// falls back to GemmTileMma's tile when they are not 16-byte friendly).
template <bool AK, bool BN, class T>
__device__ void pipe_body(float* C, int* count, const T* A, const T* B, int M, int N, int K, int64_t ldA, int64_t sA,
                          int64_t ldB, int64_t sB) {
  const int b = blockIdx.z;
  auto epi = [=](int bb, int i, int j, float acc) { store_once(C, count, (int64_t(bb) * M + i) * N + j, acc); };
  gemm_detail::tile_pipe<GemmTilePipe, T, AK, BN>(blockIdx.x, blockIdx.y, b, M, N, K, A + b * sA, ldA, B + b * sB, ldB, epi);
}

extern "C" __global__ void __launch_bounds__(256) emu_gemm_pipe_bf16_akbn(float* C, int* count, const __nv_bfloat16* A, const __nv_bfloat16* B,
                                                                         int M, int N, int K, int64_t ldA, int64_t sA, int64_t ldB, int64_t sB) {
  pipe_body<true, true>(C, count, A, B, M, N, K, ldA, sA, ldB, sB);
}
extern "C" __global__ void __launch_bounds__(256) emu_gemm_pipe_bf16_akbk(float* C, int* count, const __nv_bfloat16* A, const __nv_bfloat16* B,
                                                                         int M, int N, int K, int64_t ldA, int64_t sA, int64_t ldB, int64_t sB) {
  pipe_body<true, false>(C, count, A, B, M, N, K, ldA, sA, ldB, sB);
}
extern "C" __global__ void __launch_bounds__(256) emu_gemm_pipe_bf16_ambn(float* C, int* count, const __nv_bfloat16* A, const __nv_bfloat16* B,
                                                                         int M, int N, int K, int64_t ldA, int64_t sA, int64_t ldB, int64_t sB) {
  pipe_body<false, true>(C, count, A, B, M, N, K, ldA, sA, ldB, sB);
}
extern "C" __global__ void __launch_bounds__(256) emu_gemm_pipe_bf16_ambk(float* C, int* count, const __nv_bfloat16* A, const __nv_bfloat16* B,
                                                                         int M, int N, int K, int64_t ldA, int64_t sA, int64_t ldB, int64_t sB) {
  pipe_body<false, false>(C, count, A, B, M, N, K, ldA, sA, ldB, sB);
}
extern "C" __global__ void __launch_bounds__(256) emu_gemm_pipe_f16_akbn(float* C, int* count, const __half* A, const __half* B,
                                                                        int M, int N, int K, int64_t ldA, int64_t sA, int64_t ldB, int64_t sB) {
  pipe_body<true, true>(C, count, A, B, M, N, K, ldA, sA, ldB, sB);
}
extern "C" __global__ void __launch_bounds__(256) emu_gemm_guarded_bf16(float* C, int* count, const __nv_bfloat16* A, const __nv_bfloat16* B,
                                                                       int M, int N, int K, int64_t rsA, int64_t csA, int64_t sA, int64_t rsB,
                                                                       int64_t csB, int64_t sB) {
  gemm_tile_pipelined<GemmTilePipe, __nv_bfloat16, true, true>(
      blockIdx.x, blockIdx.y, blockIdx.z, M, N, K, A, rsA, csA, [=](int b) { return int64_t(b) * sA; }, B, rsB, csB,
      [=](int b) { return int64_t(b) * sB; },
      [=](int b, int i, int j, float acc) { store_once(C, count, (int64_t(b) * M + i) * N + j, acc); });
}
