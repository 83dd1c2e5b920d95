// Included by every generated CUDA program (`#include "prelude.cuh"`; the runtime passes -I kernels/cuda).
// Its bytes are part of the kernel-cache key, so editing it recompiles every cached cubin.
// The helpers follow llm.c: warp reductions by butterfly shuffles, block reductions through one shared
// array of per-warp partials, and 128-bit vector loads.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <stdint.h>

#define CEIL_DIV(M, N) (((M) + (N) - 1) / (N))
#define WARP_SIZE 32

// Kernels are loaded by name with cuModuleGetFunction, so they must not be C++-mangled.
#define KILN_KERNEL extern "C" __global__

// Float max/min with the reference's IEEE 754-2019 semantics (as kernels/cpu/prelude.h): NaN in either
// operand gives NaN, and -0 < +0. fmaxf/fminf would drop a NaN, so a diverging max or softmax looked finite.
__host__ __device__ __forceinline__ float kiln_maxf(float a, float b) { return (a != a || a > b || (a == b && !signbit(a))) ? a : b; }
__host__ __device__ __forceinline__ float kiln_minf(float a, float b) { return (a != a || a < b || (a == b && signbit(a))) ? a : b; }

// ---- warp reductions: every lane ends with the result ----

__device__ __forceinline__ float warpReduceSum(float v) {
#pragma unroll
  for (int offset = WARP_SIZE / 2; offset > 0; offset >>= 1) v += __shfl_xor_sync(0xffffffffu, v, offset);
  return v;
}

__device__ __forceinline__ float warpReduceMax(float v) {
#pragma unroll
  for (int offset = WARP_SIZE / 2; offset > 0; offset >>= 1) v = kiln_maxf(v, __shfl_xor_sync(0xffffffffu, v, offset));
  return v;
}

// ---- block reductions: every thread ends with the result ----
// Requires blockDim.x to be a multiple of 32 (at most 1024) and all threads of the block to call it.
// `final_sync` must be true when the caller reduces twice in a row (e.g. max then sum in a softmax):
// otherwise a fast warp could overwrite `partials` while a slow one still reads the previous result.

template <float (*warpReduce)(float)>
__device__ __forceinline__ float blockReduce(float v, bool final_sync, float identity) {
  __shared__ float partials[WARP_SIZE];
  const int lane = threadIdx.x % WARP_SIZE;
  const int warp = threadIdx.x / WARP_SIZE;
  const int num_warps = blockDim.x / WARP_SIZE;

  v = warpReduce(v);
  if (lane == 0) partials[warp] = v;
  __syncthreads();
  v = lane < num_warps ? partials[lane] : identity;
  v = warpReduce(v);
  if (final_sync) __syncthreads();
  return v;
}

__device__ __forceinline__ float blockReduceSum(float v, bool final_sync = false) {
  return blockReduce<warpReduceSum>(v, final_sync, 0.0f);
}

__device__ __forceinline__ float blockReduceMax(float v, bool final_sync = false) {
  return blockReduce<warpReduceMax>(v, final_sync, -INFINITY);
}

// ---- 128-bit vector access; the address must be 16-byte aligned ----

// Read-only data path (LDG.128): for inputs that the kernel never writes.
__device__ __forceinline__ float4 load_float4(const float* p) { return __ldg(reinterpret_cast<const float4*>(p)); }

// Streaming load (evict-first): for data read exactly once, so it does not push reused tiles out of L2.
__device__ __forceinline__ float4 load_float4_cs(const float* p) { return __ldcs(reinterpret_cast<const float4*>(p)); }

__device__ __forceinline__ void store_float4(float* p, float4 v) { *reinterpret_cast<float4*>(p) = v; }

// Streaming store, for outputs nobody reads again in this kernel.
__device__ __forceinline__ void store_float4_cs(float* p, float4 v) { __stcs(reinterpret_cast<float4*>(p), v); }
