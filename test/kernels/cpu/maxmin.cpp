// kiln_maxf / kiln_minf (prelude.h) in an `omp simd` loop (the vector form generated code gets) and one scalar call
// each, over every pair of the values given on the command line; prints "max <n> ..." and "min <n> ..." lines
// (row-major over the pairs), then "smax" / "smin" for the scalar calls, with signed zeros and NaN as printf writes.
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "../../../kernels/cpu/prelude.h"

__attribute__((noinline)) static void both(const float* a, const float* b, float* mx, float* mn, long n) {
#pragma omp simd
  for (long i = 0; i < n; ++i) {
    mx[i] = kiln_maxf(a[i], b[i]);
    mn[i] = kiln_minf(a[i], b[i]);
  }
}

static void print(const char* name, const std::vector<float>& v) {
  std::printf("%s %zu", name, v.size());
  for (float x : v) std::printf(" %.9g", x);
  std::printf("\n");
}

int main(int argc, char** argv) {
  std::vector<float> vals;
  for (int i = 1; i < argc; ++i) vals.push_back(std::strtof(argv[i], nullptr));
  std::vector<float> a, b;
  for (float x : vals)
    for (float y : vals) a.push_back(x), b.push_back(y);
  const long n = long(a.size());
  std::vector<float> mx(n), mn(n);
  both(a.data(), b.data(), mx.data(), mn.data(), n);
  print("max", mx);
  print("min", mn);
  volatile float x = a[n / 2 + 1], y = b[n / 2 + 1];  // one scalar pair (not vectorized, not folded)
  print("smax", {kiln_maxf(x, y)});
  print("smin", {kiln_minf(x, y)});
}
