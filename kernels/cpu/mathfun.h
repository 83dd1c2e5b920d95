// Vectorizable float math for generated C++: glibc's expf is a scalar call unless -ffast-math (which would
// also let GCC reorder reductions and drop NaN/inf semantics), so loops with exp, sigmoid or SiLU would not
// vectorize. kiln_expf is the Cephes range reduction and polynomial, written with ternaries and bit casts only, so
// `omp simd` loops turn it into AVX2 / AVX-512 code. Within 1.01 ulp of double exp over the whole float range,
// subnormal results included (measured every 1e-4 on [-110, 90]); NaN in NaN out, +Inf above 88.72, exact 0 below
// -103.97, with no select after the clamp: x is clamped to [-104, 88.8] and 2^n (n in [-150, 128], not one float)
// is applied as two normal scales 2^(n>>1) * 2^(n - (n>>1)), so y * 2^n rounds once, to a subnormal, a normal or
// +Inf as IEEE would. NaN passes both clamps (the compares are false) and the polynomial. The clamp constants
// let g++ fold the clamped lanes to 0 and +Inf, so it computes the unclamped value and masks those lanes; both are
// cheaper than the previous version's clamp at 88.38 (which returned e^88.38 on (88.38, 88.72], up to 29% low) and
// its NaN and +Inf selects: softmax's exp stage 17% faster (kernels/README.md, "Row kernels").
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>

static inline __attribute__((always_inline)) float kiln_expf(float x) {
  const float xl = x < -104.0f ? -104.0f : x;
  const float xc = xl > 88.8f ? 88.8f : xl;
  const float n = std::floor(xc * 1.44269504088896341f + 0.5f);
  const float r = xc - n * 0.693359375f + n * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  const float y = p * r * r + r + 1.0f;
  const int32_t ni = int32_t(n), n1 = ni >> 1, n2 = ni - n1;
  const float s1 = __builtin_bit_cast(float, uint32_t(n1 + 127) << 23);
  const float s2 = __builtin_bit_cast(float, uint32_t(n2 + 127) << 23);
  return y * s1 * s2;
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
// hold their data in vectors already (attention.h). The same clamp, polynomial and split scale; n = round(x log2 e)
// by the 1.5 * 2^23 shifter instead of floor(x log2 e + 0.5) (they differ only at exact ties, where either r is
// within the polynomial's range). The same special values as kiln_expf.
template <class V>
static inline __attribute__((always_inline)) V kiln_expv(V x) {
  typedef int32_t I __attribute__((vector_size(sizeof(V))));
  const V lo = V{} - 104.0f, hi = V{} + 88.8f;
  V xc = x < lo ? lo : x;
  xc = xc > hi ? hi : xc;
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
  const I ni = __builtin_convertvector(n, I), n1 = ni >> 1, n2 = ni - n1;
  const I b1 = (n1 + 127) << 23, b2 = (n2 + 127) << 23;
  return y * reinterpret_cast<const V&>(b1) * reinterpret_cast<const V&>(b2);
}
