// Warp and block reductions, the one copy shared by generated kernels (through prelude.cuh's names) and the
// hand-written templates. IEEE semantics as the float64 reference and kernels/cpu/prelude.h: a NaN operand makes
// max/min NaN (fmaxf/fminf would drop it, so a diverging max or softmax looked finite), and -0 < +0.
// Names nothing outside namespace kiln.
#pragma once

#include <math.h>

namespace kiln {

__host__ __device__ __forceinline__ float maxf(float a, float b) { return (a != a || a > b || (a == b && !signbit(a))) ? a : b; }
__host__ __device__ __forceinline__ float minf(float a, float b) { return (a != a || a < b || (a == b && signbit(a))) ? a : b; }

struct SumOp {
  static __device__ __forceinline__ float apply(float a, float b) { return a + b; }
  static __device__ __forceinline__ float identity() { return 0.0f; }
};
struct MaxOp {
  static __device__ __forceinline__ float apply(float a, float b) { return maxf(a, b); }
  static __device__ __forceinline__ float identity() { return -INFINITY; }
};

// Over aligned groups of W lanes (W a power of two <= 32, every lane of the warp calling): every lane of the
// group ends with the group's result (butterfly shuffles).
template <class Op, int W = 32>
__device__ __forceinline__ float group_reduce(float v) {
#pragma unroll
  for (int o = W / 2; o > 0; o >>= 1) v = Op::apply(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}
template <int W = 32> __device__ __forceinline__ float group_sum(float v) { return group_reduce<SumOp, W>(v); }
template <int W = 32> __device__ __forceinline__ float group_max(float v) { return group_reduce<MaxOp, W>(v); }

// Over the block: every thread ends with the result. blockDim.x must be a multiple of 32 (at most 1024) and every
// thread of the block must call it. `final_sync` must be true when the caller reduces again right away (e.g. max
// then sum in a softmax): otherwise a fast warp could overwrite `partials` while a slow one still reads them.
template <class Op>
__device__ __forceinline__ float block_reduce(float v, bool final_sync) {
  __shared__ float partials[32];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
  v = group_reduce<Op>(v);
  if (lane == 0) partials[warp] = v;
  __syncthreads();
  v = lane < nw ? partials[lane] : Op::identity();
  v = group_reduce<Op>(v);
  if (final_sync) __syncthreads();
  return v;
}
__device__ __forceinline__ float block_sum(float v) { return block_reduce<SumOp>(v, true); }
__device__ __forceinline__ float block_max(float v) { return block_reduce<MaxOp>(v, true); }

}  // namespace kiln
