// Vectorizable float math for generated C++: glibc's expf is a scalar call unless -ffast-math (which would
// also let GCC reorder reductions and drop NaN/inf semantics), so loops with exp, sigmoid or SiLU would not
// vectorize. kiln_expf is written with ternaries and bit casts only, so `omp simd` loops turn it into AVX2 / AVX-512
// code. Within 0.89 ulp of double exp over the whole float range, subnormal results included (measured on every
// 13th float in [-110, 110]); NaN in NaN out, +Inf above 88.72, exact 0 below -103.97, with no select after the
// clamp. About 20 vector operations (session 17; 32 before, kernels/README.md "Row kernels"):
// - Clamp x to [-104, 88.8] with limits read from kiln_exp_limits, which the compiler cannot fold: `lo > x ? lo : x`
//   is then exactly vmaxps(lo, x) and the upper one vminps (NaN in the second operand comes out). With literal
//   limits g++ folds the clamped lanes to 0 / +Inf and masks them after the polynomial (four compares, three
//   logic operations, two blends a vector on AVX2).
// - n = round(x log2 e) by the shifter 1.5 * 2^23 + 254: t's bits are 0x4B400000 + (n + 254), n = t - shifter.
// - r = x - n ln 2 in two parts (Cody-Waite), |r| <= ln 2 / 2; e^r = 1 + r (1 + r P(r)), Horner, P of degree 4
//   fitted by iterated weighted least squares to the relative error (3.1e-9 before float rounding).
// - 2^n (n in [-150, 128], not one float) as two normal scales straight from t's bits: with h = bits(t) >> 1,
//   h << 23 is 2^(n>>1) and (bits(t) - h) << 23 is 2^(n - (n>>1)) (0x4B400000's half shifts out), so y * 2^n
//   rounds once, to a subnormal, a normal or +Inf as IEEE would.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>

// The clamp limits of kiln_expf, kept in memory so that g++ emits vmaxps / vminps for the clamp (see above). Hidden:
// one copy per shared object, never written.
__attribute__((visibility("hidden"))) inline float kiln_exp_limits[2] = {-104.0f, 88.8f};

static inline __attribute__((always_inline)) float kiln_expf(float x) {
  const float lo = kiln_exp_limits[0], hi = kiln_exp_limits[1];
  const float xl = lo > x ? lo : x;
  const float xc = hi < xl ? hi : xl;
  const float t = xc * 1.44269504088896341f + 12583166.0f;
  const float n = t - 12583166.0f;
  const float r = xc - n * 0.693359375f + n * 2.12194440e-4f;
  float p = 1.38145988e-3f;
  p = p * r + 8.36871658e-3f;
  p = p * r + 4.16683890e-2f;
  p = p * r + 1.66665211e-1f;
  p = p * r + 4.99999940e-1f;
  p = p * r + 1.0f;
  const float y = p * r + 1.0f;
  const uint32_t tb = __builtin_bit_cast(uint32_t, t), h = tb >> 1;
  return y * __builtin_bit_cast(float, h << 23) * __builtin_bit_cast(float, (tb - h) << 23);
}

static inline float kiln_sigmoidf(float x) { return 1.0f / (1.0f + kiln_expf(-x)); }

// tanh and erf for `omp simd` loops (glibc's tanhf / erff are scalar calls: GELU's erf kept the UNet feed-forward's
// loops scalar). Both branches are computed and one selected, on |x|, and the sign copied at the end (odd
// functions; -0 stays -0, NaN stays NaN, ±Inf gives ±1). Measured against double tanh / erf over [-12, 12] and
// [-6, 6] every 1.3e-5 / 1.7e-5: at most 1.3 and 2.4 ulp.
// tanh: Cephes tanhf: |x| < 0.625 an odd polynomial, else 1 - 2 / (e^2|x| + 1) (e^2|x| = inf gives exactly 1).
static inline __attribute__((always_inline)) float kiln_tanhf(float x) {
  const float a = std::fabs(x), t = x * x;
  float p = -5.70498872745e-3f;
  p = p * t + 2.06390887954e-2f;
  p = p * t - 5.37397155531e-2f;
  p = p * t + 1.33314422036e-1f;
  p = p * t - 3.33332819422e-1f;
  const float small = p * t * a + a;
  const float big = 1.0f - 2.0f / (kiln_expf(a + a) + 1.0f);
  return std::copysign(a < 0.625f ? small : big, x);
}

// erf: |x| < 0.875: |x| P(x^2), P of degree 5 (relative error 9e-9); else 1 - e^-x^2 Q(|x| - 0.875), Q of degree
// 11 fitted to erfc(a) e^(a^2) on [0.875, 4] (relative error 7e-8), |x| clamped at 4 (erf(4) is 1 in f32). Both
// fitted by weighted least squares on Chebyshev nodes in float64 (numpy), checked in f32 as above.
static inline __attribute__((always_inline)) float kiln_erff(float x) {
  const float a0 = std::fabs(x);
  const float a = a0 > 4.0f ? 4.0f : a0;
  const float t = x * x;
  float p = -6.19934473286482e-4f;
  p = p * t + 5.031424419271513e-3f;
  p = p * t - 2.679094857971849e-2f;
  p = p * t + 1.1282440986166303e-1f;
  p = p * t - 3.761254905301067e-1f;
  p = p * t + 1.128379157266271f;
  const float small = a * p;
  const float s = a - 0.875f;
  float q = -4.7887927251411e-7f;
  q = q * s + 1.0300024058981783e-5f;
  q = q * s - 1.012906674179373e-4f;
  q = q * s + 6.104869789678793e-4f;
  q = q * s - 2.5692116275045493e-3f;
  q = q * s + 8.234758999981127e-3f;
  q = q * s - 2.1593486377354507e-2f;
  q = q * s + 4.913102638131626e-2f;
  q = q * s - 1.0069128404075181e-1f;
  q = q * s + 1.8791888647382501e-1f;
  q = q * s - 3.1583127612761663e-1f;
  q = q * s + 4.6431155220580256e-1f;
  const float big = 1.0f - kiln_expf(-(a * a)) * q;
  return std::copysign(a0 < 0.875f ? small : big, x);
}

// kiln_expf on a GCC vector of floats (vector_size extension: one source for xmm, ymm or zmm), for kernels that
// hold their data in vectors already (attention.h): the same operations in the same order, so the same bits.
template <class V>
static inline __attribute__((always_inline)) V kiln_expv(V x) {
  typedef uint32_t U __attribute__((vector_size(sizeof(V))));
  const V lo = V{} + kiln_exp_limits[0], hi = V{} + kiln_exp_limits[1];
  const V xl = lo > x ? lo : x;
  const V xc = hi < xl ? hi : xl;
  const V t = xc * 1.44269504088896341f + 12583166.0f;
  const V n = t - 12583166.0f;
  const V r = xc - n * 0.693359375f + n * 2.12194440e-4f;
  V p = V{} + 1.38145988e-3f;
  p = p * r + 8.36871658e-3f;
  p = p * r + 4.16683890e-2f;
  p = p * r + 1.66665211e-1f;
  p = p * r + 4.99999940e-1f;
  p = p * r + 1.0f;
  const V y = p * r + 1.0f;
  const U tb = reinterpret_cast<const U&>(t), h = tb >> 1, s1 = h << 23, s2 = (tb - h) << 23;
  return y * reinterpret_cast<const V&>(s1) * reinterpret_cast<const V&>(s2);
}
