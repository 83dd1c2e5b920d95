// Vectorizable float math for generated C++: glibc's expf is a scalar call unless -ffast-math (which would
// also let GCC reorder reductions and drop NaN/inf semantics), so loops with exp, sigmoid or SiLU would not
// vectorize. kiln_expf is the Cephes range reduction and polynomial (max error about 2 ulp), written with
// ternaries and bit casts only, so `omp simd` loops turn it into AVX2 / AVX-512 code. Inf above 88.7, NaN in NaN
// out, exact 0 below -87.68 without a select of its own: x is clamped at -88, where n = -127 makes the scale's
// exponent field 0 (the scale is +0, so y * scale = 0); between -87.68 and -87.34 (n = -126) the result is the
// subnormal y * 2^-126. Clamping at -87.34 and then selecting 0, as before, cost a compare and a blend per vector
// (about 8% of softmax's exp stage) and flushed those subnormals. Known gap: x in (88.38, 88.72] returns
// e^88.38 (up to 29% low; x is clamped there so that n <= 127). Clamping n instead made g++ 12 duplicate the
// polynomial per select path (15% slower softmax), so that is left as it was.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>

static inline __attribute__((always_inline)) float kiln_expf(float x) {
  // Two single selects, each an x86 min/max (NaN stays NaN), rather than a nested one (two compares, two blends).
  const float xl = x < -88.0f ? -88.0f : x;
  const float xc = xl > 88.3762626647949f ? 88.3762626647949f : xl;
  const float n = std::floor(xc * 1.44269504088896341f + 0.5f);
  const float r = xc - n * 0.693359375f + n * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  const float y = p * r * r + r + 1.0f;
  const float scale = __builtin_bit_cast(float, uint32_t(int32_t(n) + 127) << 23);
  const float v = y * scale;
  return x != x ? x : (x > 88.7228390520683f ? INFINITY : v);
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
// hold their data in vectors already (attention.h). The same range reduction and polynomial; n = round(x log2 e)
// by the 1.5 * 2^23 shifter instead of floor(x log2 e + 0.5) (they differ only at exact ties, where either r is
// within the polynomial's range). The same special values as kiln_expf.
template <class V>
static inline __attribute__((always_inline)) V kiln_expv(V x) {
  typedef int32_t I __attribute__((vector_size(sizeof(V))));
  const V hi = V{} + 88.3762626647949f, lo = V{} - 88.0f;
  V xc = x > hi ? hi : x;
  xc = xc < lo ? lo : xc;
  const V shift = V{} + 12582912.0f;
  const V n = (xc * 1.44269504088896341f + shift) - shift;
  const V r = xc - n * 0.693359375f + n * 2.12194440e-4f;
  V p = V{} + 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  const V y = p * r * r + r + 1.0f;
  const I bits = (__builtin_convertvector(n, I) + 127) << 23;
  const V v = y * reinterpret_cast<const V&>(bits);
  const V out = x > V{} + 88.7228390520683f ? V{} + INFINITY : v;
  return x != x ? x : out;
}
