// Helpers shared by Kiln's hand-written CUDA templates (gemm, conv2d, attention, groupnorm_silu,
// scatter_add). Self-contained on purpose: it does not need prelude.cuh, and it names nothing outside
// namespace kiln, so both can be included together.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <stdint.h>

#include "reduce.cuh"

namespace kiln {

// The block's dynamic shared memory. Every template that needs shared memory documents its size as a
// `smem_bytes` constant; the launcher passes it as sharedMemBytes (and, above 48 KiB, first raises
// CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES on the function).
extern __shared__ __align__(16) unsigned char kiln_smem[];

__device__ __forceinline__ float to_f32(float x) { return x; }
__device__ __forceinline__ float to_f32(__nv_bfloat16 x) { return __bfloat162float(x); }
__device__ __forceinline__ float to_f32(__half x) { return __half2float(x); }

template <class T> __device__ __forceinline__ T from_f32(float x);
template <> __device__ __forceinline__ float from_f32<float>(float x) { return x; }
template <> __device__ __forceinline__ __nv_bfloat16 from_f32<__nv_bfloat16>(float x) { return __float2bfloat16(x); }
template <> __device__ __forceinline__ __half from_f32<__half>(float x) { return __float2half(x); }

// Warp and block reductions (group_sum / group_max / block_sum / block_reduce): reduce.cuh.

}  // namespace kiln
