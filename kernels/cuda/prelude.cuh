// Included by every generated CUDA program (`#include "prelude.cuh"`; the runtime passes -I kernels/cuda).
// Its bytes are part of the kernel-cache key, so editing it recompiles every cached cubin.
// The helpers follow llm.c: warp reductions by butterfly shuffles, block reductions through one shared
// array of per-warp partials (both in reduce.cuh, which the templates share), and 128-bit vector loads.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <stdint.h>

#include "reduce.cuh"

#define CEIL_DIV(M, N) (((M) + (N) - 1) / (N))
#define WARP_SIZE 32

// Kernels are loaded by name with cuModuleGetFunction, so they must not be C++-mangled.
#define KILN_KERNEL extern "C" __global__

// The names generated kernels use; the reductions themselves live in reduce.cuh (shared with the templates).
__host__ __device__ __forceinline__ float kiln_maxf(float a, float b) { return kiln::maxf(a, b); }
__host__ __device__ __forceinline__ float kiln_minf(float a, float b) { return kiln::minf(a, b); }
// Every lane of the warp ends with the result.
__device__ __forceinline__ float warpReduceSum(float v) { return kiln::group_sum<WARP_SIZE>(v); }
__device__ __forceinline__ float warpReduceMax(float v) { return kiln::group_max<WARP_SIZE>(v); }
// Every thread of the block ends with the result (see kiln::block_reduce for final_sync).
__device__ __forceinline__ float blockReduceSum(float v, bool final_sync = false) { return kiln::block_reduce<kiln::SumOp>(v, final_sync); }
__device__ __forceinline__ float blockReduceMax(float v, bool final_sync = false) { return kiln::block_reduce<kiln::MaxOp>(v, final_sync); }

// ---- 128-bit vector access; the address must be 16-byte aligned ----

// Read-only data path (LDG.128): for inputs that the kernel never writes.
__device__ __forceinline__ float4 load_float4(const float* p) { return __ldg(reinterpret_cast<const float4*>(p)); }

// Streaming load (evict-first): for data read exactly once, so it does not push reused tiles out of L2.
__device__ __forceinline__ float4 load_float4_cs(const float* p) { return __ldcs(reinterpret_cast<const float4*>(p)); }

__device__ __forceinline__ void store_float4(float* p, float4 v) { *reinterpret_cast<float4*>(p) = v; }

// Streaming store, for outputs nobody reads again in this kernel.
__device__ __forceinline__ void store_float4_cs(float* p, float4 v) { __stcs(reinterpret_cast<float4*>(p), v); }
