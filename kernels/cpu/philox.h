// Philox4x32-10 uniform floats, bit-identical to compiler/ir/philox.ts: element i of stream s under key k is
// lane i%4 of philox([i/4, s, 0, 0], [k, 0]); the float is (word >> 8) * 2^-24, in [0, 1).
// Shared by the CPU and CUDA renderers (KILN_HD adds __device__ under nvcc).
#pragma once
#include <cstdint>

#ifndef KILN_HD
#define KILN_HD
#endif

KILN_HD static inline float kiln_philox_uniform(uint32_t key, uint32_t i, uint32_t stream) {
  uint32_t c0 = i >> 2, c1 = stream, c2 = 0, c3 = 0, k0 = key, k1 = 0;
  for (int r = 0; r < 10; ++r) {
    if (r > 0) { k0 += 0x9E3779B9u; k1 += 0xBB67AE85u; }
    const uint64_t p0 = uint64_t(0xD2511F53u) * c0, p1 = uint64_t(0xCD9E8D57u) * c2;
    const uint32_t hi0 = uint32_t(p0 >> 32), lo0 = uint32_t(p0), hi1 = uint32_t(p1 >> 32), lo1 = uint32_t(p1);
    const uint32_t n0 = hi1 ^ c1 ^ k0, n2 = hi0 ^ c3 ^ k1;
    c0 = n0; c1 = lo1; c2 = n2; c3 = lo0;
  }
  const uint32_t lanes[4] = {c0, c1, c2, c3};
  return float(lanes[i & 3] >> 8) * (1.0f / 16777216.0f);
}
