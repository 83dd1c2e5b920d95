// Vectorizable float math for generated C++: glibc's expf is a scalar call unless -ffast-math (which would
// also let GCC reorder reductions and drop NaN/inf semantics), so loops with exp, sigmoid or SiLU would not
// vectorize. kiln_expf is the Cephes range reduction and polynomial (max error about 2 ulp), written without
// branches, so `omp simd` loops turn it into AVX2 / AVX-512 code. Exact 0 below -87.3, inf above 88.7, NaN in
// NaN out.
//
// Why bit blends and not `c ? a : b`: GCC 12 vectorizes a ternary chain inside a reduction loop, but in a loop
// that stores the result (a SiLU or softmax store loop) jump threading first turns the chain into control flow
// the if-converter gives up on ("not vectorized: control flow in loop", -fopt-info-vec-missed). The compare as
// a value and an and/or blend stay straight-line code. std::floor is not vectorized without -fno-trapping-math
// either; truncation plus a correction gives the same value for the clamped range (|v| < 128).
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>

/** c ? a : b on the bits, branch-free. */
static inline float kiln_blendf(bool c, float a, float b) {
  uint32_t ua, ub;
  std::memcpy(&ua, &a, 4);
  std::memcpy(&ub, &b, 4);
  const uint32_t m = 0u - uint32_t(c), r = (ua & m) | (ub & ~m);
  float f;
  std::memcpy(&f, &r, 4);
  return f;
}

static inline float kiln_expf(float x) {
  float xc = kiln_blendf(x > 88.3762626647949f, 88.3762626647949f, x);
  xc = kiln_blendf(xc < -87.3365478515625f, -87.3365478515625f, xc);
  const float v0 = xc * 1.44269504088896341f + 0.5f;
  const float t = float(int32_t(v0));
  const float n = t - kiln_blendf(t > v0, 1.0f, 0.0f);  // floor(v0)
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
  float v = y * scale;
  v = kiln_blendf(x > 88.7228390520683f, INFINITY, v);
  v = kiln_blendf(x < -87.3365478515625f, 0.0f, v);
  return kiln_blendf(x != x, x, v);
}

static inline float kiln_sigmoidf(float x) { return 1.0f / (1.0f + kiln_expf(-x)); }
