// kiln scatter-add for CUDA: out[o, idx[n], t] += upd[o, n, t] with atomicAdd (order of duplicate indices
// is not deterministic; f32 sums may differ in the last bits from run to run).
//   upd [outer, n_idx, inner] (float, bf16 or half), idx [n_idx] int32, out [outer, size, inner] float.
// Launch contract: first zero out (scatter_zero: one thread per element of out), then scatter_add_elem with
// grid = ceil(outer*n_idx*inner / ScatterCfg::THREADS), block = ScatterCfg::THREADS, no shared memory;
// gid = blockIdx.x * blockDim.x + threadIdx.x (64-bit).
#pragma once

#include "common.cuh"

namespace kiln {

struct ScatterCfg {
  static constexpr int THREADS = 256;
  static constexpr int smem_bytes = 0;
};

__device__ __forceinline__ void scatter_zero(int64_t gid, int64_t n, float* __restrict__ out) {
  if (gid < n) out[gid] = 0.0f;
}

template <class T>
__device__ __forceinline__ void scatter_add_elem(int64_t gid, int64_t outer, int64_t n_idx, int64_t inner,
                                                 int64_t size, const T* __restrict__ upd,
                                                 const int32_t* __restrict__ idx, float* out) {
  if (gid >= outer * n_idx * inner) return;
  const int64_t t = gid % inner, n = (gid / inner) % n_idx, o = gid / (inner * n_idx);
  atomicAdd(out + (o * size + idx[n]) * inner + t, to_f32(upd[gid]));
}

}  // namespace kiln
