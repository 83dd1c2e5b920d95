// Emulator shim for <cuda_fp16.h>: __half as its 16 bits, conversions rounded to nearest even (subnormals,
// overflow to infinity, NaN kept quiet), bit-exact with the device.
#pragma once
#include "kiln_emu_half.h"

struct __half {
  uint16_t __x;
  __half() = default;
  __half(float f) : __x(kiln_emu::f32_to_f16_bits(f)) {}
  operator float() const { return kiln_emu::f16_bits_to_f32(__x); }
};
struct __half2 { __half x, y; };

inline float __half2float(__half h) { return kiln_emu::f16_bits_to_f32(h.__x); }
inline __half __float2half(float f) { __half h; h.__x = kiln_emu::f32_to_f16_bits(f); return h; }
inline __half __float2half_rn(float f) { return __float2half(f); }
inline unsigned short __half_as_ushort(__half h) { return h.__x; }
inline __half __ushort_as_half(unsigned short u) { __half h; h.__x = u; return h; }
