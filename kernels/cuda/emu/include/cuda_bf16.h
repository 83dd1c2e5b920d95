// Emulator shim for <cuda_bf16.h>: __nv_bfloat16 as its 16 bits, conversions rounded to nearest even with
// NaN kept quiet, bit-exact with the device (and with Kiln's C++ back end, kernels/cpu/half.h).
#pragma once
#include "kiln_emu_half.h"

struct __nv_bfloat16 {
  uint16_t __x;
  __nv_bfloat16() = default;
  __nv_bfloat16(float f) : __x(kiln_emu::f32_to_bf16_bits(f)) {}
  operator float() const { return kiln_emu::bf16_bits_to_f32(__x); }
};
struct __nv_bfloat162 { __nv_bfloat16 x, y; };

inline float __bfloat162float(__nv_bfloat16 h) { return kiln_emu::bf16_bits_to_f32(h.__x); }
inline __nv_bfloat16 __float2bfloat16(float f) { __nv_bfloat16 h; h.__x = kiln_emu::f32_to_bf16_bits(f); return h; }
inline __nv_bfloat16 __float2bfloat16_rn(float f) { return __float2bfloat16(f); }
inline unsigned short __bfloat16_as_ushort(__nv_bfloat16 h) { return h.__x; }
inline __nv_bfloat16 __ushort_as_bfloat16(unsigned short u) { __nv_bfloat16 h; h.__x = u; return h; }
