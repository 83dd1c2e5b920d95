// kiln::scatter_add_f32 — out[o, idx[n], t] += upd[o, n, t], out zeroed first.
//   upd [outer, n_idx, inner], idx [n_idx] (int32, each in [0, size)), out [outer, size, inner].
// Deterministic: threads split `outer` (or, for outer == 1, the `inner` range), so no two threads ever
// touch the same output element and duplicates in idx are summed in index order.
#pragma once

#include <omp.h>

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "parallel.h"

namespace kiln {

inline void scatter_add_f32(int64_t outer, int64_t n_idx, int64_t inner, int64_t size, const float* upd,
                            const int32_t* idx, float* out) {
  const bool split_outer = outer >= omp_get_max_threads() || inner < 64;
  const int64_t chunks = split_outer ? outer : std::min<int64_t>(omp_get_max_threads() * 4, (inner + 15) / 16);
#pragma omp parallel for schedule(static) if (kiln::par_elems(double(outer * n_idx * inner)))
  for (int64_t c = 0; c < chunks; ++c) {
    const int64_t o0 = split_outer ? c : 0, o1 = split_outer ? c + 1 : outer;
    const int64_t t0 = split_outer ? 0 : inner * c / chunks, t1 = split_outer ? inner : inner * (c + 1) / chunks;
    for (int64_t o = o0; o < o1; ++o) {
      float* ob = out + o * size * inner;
      for (int64_t s = 0; s < size; ++s) __builtin_memset(ob + s * inner + t0, 0, sizeof(float) * (t1 - t0));
      for (int64_t n = 0; n < n_idx; ++n) {
        float* dst = ob + int64_t(idx[n]) * inner;
        const float* src = upd + (o * n_idx + n) * inner;
#pragma omp simd
        for (int64_t t = t0; t < t1; ++t) dst[t] += src[t];
      }
    }
  }
}

}  // namespace kiln
