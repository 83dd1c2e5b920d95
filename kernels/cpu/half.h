// f16 and bf16 storage for the C++ back end: values are computed in float and rounded to nearest even when
// stored or cast. Shared with CUDA code through KILN_HD (it has native types, but the bits are the same).
#pragma once
#include <cstdint>
#include <cstring>

#ifndef KILN_HD
#define KILN_HD
#endif

KILN_HD static inline uint32_t kiln_f32_bits(float f) { uint32_t u; std::memcpy(&u, &f, 4); return u; }
KILN_HD static inline float kiln_bits_f32(uint32_t u) { float f; std::memcpy(&f, &u, 4); return f; }

KILN_HD static inline uint16_t kiln_f32_to_bf16(float f) {
  const uint32_t u = kiln_f32_bits(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return uint16_t((u >> 16) | 0x40);  // NaN stays NaN
  return uint16_t((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}
KILN_HD static inline float kiln_bf16_to_f32(uint16_t h) { return kiln_bits_f32(uint32_t(h) << 16); }

KILN_HD static inline uint16_t kiln_f32_to_f16(float f) {
  const uint32_t u = kiln_f32_bits(f), sign = (u >> 16) & 0x8000u, a = u & 0x7fffffffu;
  if (a > 0x7f800000u) return uint16_t(sign | 0x7e00u);                 // NaN
  if (a >= 0x477ff000u) return uint16_t(sign | 0x7c00u);                // overflow (after rounding) -> inf
  if (a < 0x38800000u) {                                                // subnormal or zero
    if (a < 0x33000000u) return uint16_t(sign);
    const uint32_t m = (a & 0x7fffffu) | 0x800000u, e = a >> 23, shift = 126 - e;  // 14..24
    uint32_t v = m >> shift;
    const uint32_t rem = m & ((1u << shift) - 1), half = 1u << (shift - 1);
    if (rem > half || (rem == half && (v & 1u))) v++;
    return uint16_t(sign | v);
  }
  uint32_t v = ((a >> 13) - (112u << 10));
  const uint32_t rem = a & 0x1fffu;
  if (rem > 0x1000u || (rem == 0x1000u && (v & 1u))) v++;
  return uint16_t(sign | v);
}
KILN_HD static inline float kiln_f16_to_f32(uint16_t h) {
  const uint32_t sign = uint32_t(h & 0x8000u) << 16, e = (h >> 10) & 0x1fu, m = h & 0x3ffu;
  if (e == 0) return kiln_bits_f32(sign) + (sign ? -1.0f : 1.0f) * float(m) * (1.0f / 16777216.0f);
  if (e == 31) return kiln_bits_f32(sign | 0x7f800000u | (m << 13));
  return kiln_bits_f32(sign | ((e + 112u) << 23) | (m << 13));
}
