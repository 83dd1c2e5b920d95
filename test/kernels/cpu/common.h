// Shared by the CPU kernel test drivers: the seeded generator that the TypeScript references mirror
// (xorshift32; floats are k * 2^-23 - 1, exact in f32 and f64), argv parsing and output printing.
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <vector>

struct Rng {
  uint32_t s;
  explicit Rng(uint32_t seed) : s(seed ? seed : 1u) {}
  uint32_t next() {
    s ^= s << 13;
    s ^= s >> 17;
    s ^= s << 5;
    return s;
  }
  float uniform() { return float(next() >> 8) * (1.0f / 8388608.0f) - 1.0f; }  // [-1, 1)
  std::vector<float> fill(size_t n) {
    std::vector<float> v(n);
    for (auto& x : v) x = uniform();
    return v;
  }
};

inline int64_t arg(int argc, char** argv, int i) {
  if (i >= argc) {
    std::fprintf(stderr, "missing argument %d\n", i);
    std::exit(2);
  }
  return std::atoll(argv[i]);
}

// One line: "<name> <count> v0 v1 ...", values with 9 significant digits (round-trips f32).
inline void print(const char* name, const std::vector<float>& v) {
  std::printf("%s %zu", name, v.size());
  for (float x : v) std::printf(" %.9g", x);
  std::printf("\n");
}

// The epilogue contract says exactly once per element: drivers count calls and print the check.
inline void print_calls(const std::vector<int>& calls) {
  bool ok = true;
  for (int c : calls) ok = ok && c == 1;
  std::printf("calls_once %d\n", ok ? 1 : 0);
}
