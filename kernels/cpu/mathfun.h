// Vectorizable float math for generated C++: glibc's expf is a scalar call unless -ffast-math (which would
// also let GCC reorder reductions and drop NaN/inf semantics), so loops with exp, sigmoid or SiLU would not
// vectorize. kiln_expf is the Cephes range reduction and polynomial (max error about 2 ulp), written with
// ternaries and bit casts only, so `omp simd` loops turn it into AVX2 code. Exact 0 below -87.3, inf above
// 88.7, NaN in NaN out.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>

static inline float kiln_expf(float x) {
  const float xc = x > 88.3762626647949f ? 88.3762626647949f : (x < -87.3365478515625f ? -87.3365478515625f : x);
  const float n = std::floor(xc * 1.44269504088896341f + 0.5f);
  const float r = xc - n * 0.693359375f + n * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  const float y = p * r * r + r + 1.0f;
  const uint32_t bits = uint32_t(int32_t(n) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, 4);
  const float v = y * scale;
  return x != x ? x : (x > 88.7228390520683f ? INFINITY : (x < -87.3365478515625f ? 0.0f : v));
}

static inline float kiln_sigmoidf(float x) { return 1.0f / (1.0f + kiln_expf(-x)); }
