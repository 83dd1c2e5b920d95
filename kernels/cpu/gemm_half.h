// kiln::gemm_half — the GEMM (gemm.h) on bf16 or f16 operands. The strided packers (StridedPackA/B with
// LoadBf16 / LoadF16) read the 16-bit words and write the f32 panels the f32 micro-kernels use — conversions are
// exact (every bf16 / f16 value is an f32 value), so no f32 copy of an operand exists outside the packed blocks
// and the accumulation is the f32 path's. On the avx512_bf16 path (cpu_isa.h) bf16 operands are packed as bf16
// pairs instead and multiplied by vdpbf16ps (gemm_ukr.h): the products of two bf16 values are exact in f32 and
// the sums f32, so the result differs from the f32 path's only in summation order (and in flushing denormals).
#pragma once
#include "gemm.h"

namespace kiln {

// As gemm_f32 (gemm.h), with A and B in bf16 (Load = LoadBf16) or f16 (LoadF16) words.
template <class Load, class AOff, class BOff, class Epi>
void gemm_half(int64_t batch, int64_t M, int64_t N, int64_t K,
               const uint16_t* A, int64_t rsA, int64_t csA, AOff aOff,
               const uint16_t* B, int64_t rsB, int64_t csB, BOff bOff,
               Epi epi) {
  gemm_packed_f32(batch, M, N, K, StridedPackA<AOff, Load>{A, rsA, csA, aOff, M},
                  StridedPackB<BOff, Load>{B, rsB, csB, bOff}, epi);
}

}  // namespace kiln
