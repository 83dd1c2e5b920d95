// kiln::gemm_half — the f32 GEMM (gemm.h) on bf16 or f16 operands, converting while packing: the packers read
// 16-bit words and write the f32 panels the micro-kernels use, so no f32 copy of an operand exists outside the
// packed blocks, and the accumulation is the f32 path's (the same micro-kernels, the same order). Conversions are
// exact (every bf16 / f16 value is an f32 value).
#pragma once
#include "gemm.h"
#include "half.h"

namespace kiln {

struct LoadBf16 { float operator()(uint16_t h) const { return kiln_bf16_to_f32(h); } };
struct LoadF16 { float operator()(uint16_t h) const { return kiln_f16_to_f32(h); } };

template <class Off, class Load>
struct HalfPackA {
  const uint16_t* A; int64_t rs, cs; Off off;
  template <int MR>
  void operator()(Dim<MR>, int64_t b, int64_t i0, int64_t mc, int64_t k0, int64_t kc, float* dst) const {
    const Load ld;
    const uint16_t* base = A + off(b) + k0 * cs;
    for (int64_t p = 0; p * MR < mc; ++p) {
      float* d = dst + p * kc * MR;
      const int64_t i = i0 + p * MR;
      const int mr = int(std::min<int64_t>(MR, mc - p * MR));
      for (int64_t k = 0; k < kc; ++k) {
        const uint16_t* src = base + k * cs + i * rs;
        int r = 0;
        for (; r < mr; ++r) d[k * MR + r] = ld(src[r * rs]);
        for (; r < MR; ++r) d[k * MR + r] = 0.0f;
      }
    }
  }
};

template <class Off, class Load>
struct HalfPackB {
  const uint16_t* B; int64_t rs, cs; Off off;
  template <int NR>
  void operator()(Dim<NR>, int64_t b, int64_t k0, int64_t kc, int64_t j0, int64_t nc, float* dst) const {
    const Load ld;
    const uint16_t* base = B + off(b) + k0 * rs;
    for (int64_t p = 0; p * NR < nc; ++p) {
      float* d = dst + p * kc * NR;
      const int64_t j = j0 + p * NR;
      const int nr = int(std::min<int64_t>(NR, nc - p * NR));
      if (nr == NR && cs == 1) {
        for (int64_t k = 0; k < kc; ++k) {
          const uint16_t* src = base + k * rs + j;
#pragma omp simd
          for (int c = 0; c < NR; ++c) d[k * NR + c] = ld(src[c]);
        }
      } else {
        for (int64_t k = 0; k < kc; ++k) {
          const uint16_t* src = base + k * rs + j * cs;
          int c = 0;
          for (; c < nr; ++c) d[k * NR + c] = ld(src[c * cs]);
          for (; c < NR; ++c) d[k * NR + c] = 0.0f;
        }
      }
    }
  }
};

// As gemm_f32 (gemm.h), with A and B in bf16 (Load = LoadBf16) or f16 (LoadF16) words.
template <class Load, class AOff, class BOff, class Epi>
void gemm_half(int64_t batch, int64_t M, int64_t N, int64_t K,
               const uint16_t* A, int64_t rsA, int64_t csA, AOff aOff,
               const uint16_t* B, int64_t rsB, int64_t csB, BOff bOff,
               Epi epi) {
  gemm_packed_f32(batch, M, N, K, HalfPackA<AOff, Load>{A, rsA, csA, aOff}, HalfPackB<BOff, Load>{B, rsB, csB, bOff}, epi);
}

}  // namespace kiln
