// Emulator driver for attention.cuh (tiled flash attention: forward, backward stats, dQ, dK/dV) for
// <D, DV, T> = <64, 64, float>, <64, 64, bf16> and <16, 8, float>, and for attention_small.cuh (one thread per
// row, any head dims). Outputs are f32; every epilogue stores through store_once.
#include "attention.cuh"
#include "attention_small.cuh"
#include "once.cuh"

using namespace kiln;

template <int D, int DV, class T>
__device__ void fwd(float* out, int* count, float* lse, const T* q, const T* k, const T* v, int lq, int lk, float scale, int causal) {
  attn_fwd_tile<D, DV>(
      blockIdx.x, blockIdx.y, lq, lk, q, k, v, scale, causal != 0,
      [=](int b, int i, int t, float o) { store_once(out, count, (int64_t(b) * lq + i) * DV + t, o); }, lse);
}

template <int D, int DV, class T>
__device__ void stats(float* lse, float* delta, const T* q, const T* k, const T* v, const T* dout, int lq, int lk, float scale,
                      int causal) {
  attn_bwd_stats_tile<D, DV>(blockIdx.x, blockIdx.y, lq, lk, q, k, v, dout, scale, causal != 0, lse, delta);
}

template <int D, int DV, class T>
__device__ void dq(float* out, int* count, const T* q, const T* k, const T* v, const T* dout, const float* lse, const float* delta,
                   int lq, int lk, float scale, int causal) {
  attn_bwd_dq_tile<D, DV>(blockIdx.x, blockIdx.y, lq, lk, q, k, v, dout, scale, causal != 0, lse, delta,
                          [=](int b, int i, int t, float g) { store_once(out, count, (int64_t(b) * lq + i) * D + t, g); });
}

template <int D, int DV, class T>
__device__ void dkdv(float* dk, float* dv, int* count_k, int* count_v, const T* q, const T* k, const T* v, const T* dout,
                     const float* lse, const float* delta, int lq, int lk, float scale, int causal) {
  attn_bwd_dkdv_tile<D, DV>(
      blockIdx.x, blockIdx.y, lq, lk, q, k, v, dout, scale, causal != 0, lse, delta,
      [=](int b, int j, int t, float g) { store_once(dk, count_k, (int64_t(b) * lk + j) * D + t, g); },
      [=](int b, int j, int t, float g) { store_once(dv, count_v, (int64_t(b) * lk + j) * DV + t, g); });
}

#define FWD_ARGS(T) float *out, int *count, float *lse, const T *q, const T *k, const T *v, int lq, int lk, float scale, int causal
#define STATS_ARGS(T) \
  float *lse, float *delta, const T *q, const T *k, const T *v, const T *dout, int lq, int lk, float scale, int causal
#define DQ_ARGS(T)                                                                                                    \
  float *out, int *count, const T *q, const T *k, const T *v, const T *dout, const float *lse, const float *delta, int lq, \
      int lk, float scale, int causal
#define DKDV_ARGS(T)                                                                                                \
  float *dk, float *dv, int *count_k, int *count_v, const T *q, const T *k, const T *v, const T *dout, const float *lse, \
      const float *delta, int lq, int lk, float scale, int causal

// (Spelled out, not made by a macro: runtime/cuda-emu.ts finds kernel names in the source text.)
extern "C" __global__ void __launch_bounds__(256) emu_attn_fwd_d64_f32(FWD_ARGS(float)) { fwd<64, 64>(out, count, lse, q, k, v, lq, lk, scale, causal); }
extern "C" __global__ void __launch_bounds__(256) emu_attn_stats_d64_f32(STATS_ARGS(float)) { stats<64, 64>(lse, delta, q, k, v, dout, lq, lk, scale, causal); }
extern "C" __global__ void __launch_bounds__(256) emu_attn_dq_d64_f32(DQ_ARGS(float)) { dq<64, 64>(out, count, q, k, v, dout, lse, delta, lq, lk, scale, causal); }
extern "C" __global__ void __launch_bounds__(256) emu_attn_dkdv_d64_f32(DKDV_ARGS(float)) {
  dkdv<64, 64>(dk, dv, count_k, count_v, q, k, v, dout, lse, delta, lq, lk, scale, causal);
}

extern "C" __global__ void __launch_bounds__(256) emu_attn_fwd_d64_bf16(FWD_ARGS(__nv_bfloat16)) { fwd<64, 64>(out, count, lse, q, k, v, lq, lk, scale, causal); }
extern "C" __global__ void __launch_bounds__(256) emu_attn_stats_d64_bf16(STATS_ARGS(__nv_bfloat16)) {
  stats<64, 64>(lse, delta, q, k, v, dout, lq, lk, scale, causal);
}
extern "C" __global__ void __launch_bounds__(256) emu_attn_dq_d64_bf16(DQ_ARGS(__nv_bfloat16)) {
  dq<64, 64>(out, count, q, k, v, dout, lse, delta, lq, lk, scale, causal);
}
extern "C" __global__ void __launch_bounds__(256) emu_attn_dkdv_d64_bf16(DKDV_ARGS(__nv_bfloat16)) {
  dkdv<64, 64>(dk, dv, count_k, count_v, q, k, v, dout, lse, delta, lq, lk, scale, causal);
}

extern "C" __global__ void __launch_bounds__(256) emu_attn_fwd_d16v8_f32(FWD_ARGS(float)) { fwd<16, 8>(out, count, lse, q, k, v, lq, lk, scale, causal); }
extern "C" __global__ void __launch_bounds__(256) emu_attn_stats_d16v8_f32(STATS_ARGS(float)) { stats<16, 8>(lse, delta, q, k, v, dout, lq, lk, scale, causal); }
extern "C" __global__ void __launch_bounds__(256) emu_attn_dq_d16v8_f32(DQ_ARGS(float)) { dq<16, 8>(out, count, q, k, v, dout, lse, delta, lq, lk, scale, causal); }
extern "C" __global__ void __launch_bounds__(256) emu_attn_dkdv_d16v8_f32(DKDV_ARGS(float)) {
  dkdv<16, 8>(dk, dv, count_k, count_v, q, k, v, dout, lse, delta, lq, lk, scale, causal);
}

// attention_small.cuh, called as compiler/render/templates-cuda.ts does: a grid-stride loop over output rows.
extern "C" __global__ void __launch_bounds__(256) emu_attn_small_fwd(float* out, int* count, const float* q, const float* k, const float* v,
                                                                    int nb, int lq, int lk, int d, int dv, float scale, int causal) {
  for (int64_t row = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; row < int64_t(nb) * lq; row += (int64_t)gridDim.x * blockDim.x)
    small_attn::fwd_row(row, lq, lk, d, dv, q, k, v, scale, causal != 0,
                        [=](int b, int i, int t, float o) { store_once(out, count, (int64_t(b) * lq + i) * dv + t, o); });
}

extern "C" __global__ void __launch_bounds__(256) emu_attn_small_grad(float* out, int* count, const float* q, const float* k, const float* v,
                                                                     const float* dout, int wrt, int nb, int lq, int lk, int d, int dv,
                                                                     float scale, int causal) {
  const int64_t rows = int64_t(nb) * (wrt == 0 ? lq : lk);
  const int rl = wrt == 0 ? lq : lk, width = wrt == 2 ? dv : d;
  for (int64_t row = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; row < rows; row += (int64_t)gridDim.x * blockDim.x)
    small_attn::grad_row(row, wrt, lq, lk, d, dv, q, k, v, dout, scale, causal != 0,
                         [=](int b, int i, int t, float g) { store_once(out, count, (int64_t(b) * rl + i) * width + t, g); });
}
