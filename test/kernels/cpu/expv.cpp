// kiln_expv (GCC vectors of 4, 8 and 16 floats) against kiln_expf in an `omp simd` loop, bit for bit, over every
// `stride`-th float bit pattern (argv[1]) plus the special values; prints "differ <v4> <v8> <v16> of <count>".
#include <cstring>

#include "../../../kernels/cpu/mathfun.h"
#include "common.h"

template <int W>
using vec = float __attribute__((vector_size(W * 4)));

template <int W>
static long differ(const float* a, const float* want, long n) {
  long bad = 0;
  for (long i = 0; i + W <= n; i += W) {
    vec<W> x, y;
    std::memcpy(&x, a + i, sizeof x);
    y = kiln_expv(x);
    bad += std::memcmp(&y, want + i, sizeof y) != 0;
  }
  return bad;
}

int main(int argc, char** argv) {
  const uint64_t stride = uint64_t(arg(argc, argv, 1));
  std::vector<float> a;
  for (uint64_t b = 0; b < (1ull << 32); b += stride) {
    const uint32_t u = uint32_t(b);
    float x;
    std::memcpy(&x, &u, 4);
    a.push_back(x);
  }
  for (float s : {0.0f, -0.0f, __builtin_inff(), -__builtin_inff(), __builtin_nanf(""), -__builtin_nanf(""), 88.72283f, -103.972f, -87.3365f}) a.push_back(s);
  while (a.size() % 16) a.push_back(1.0f);
  const long n = long(a.size());
  std::vector<float> want(n);
  const float* pa = a.data();
  float* pw = want.data();
#pragma omp simd
  for (long i = 0; i < n; ++i) pw[i] = kiln_expf(pa[i]);
  std::printf("differ %ld %ld %ld of %ld\n", differ<4>(pa, pw, n), differ<8>(pa, pw, n), differ<16>(pa, pw, n), n);
}
