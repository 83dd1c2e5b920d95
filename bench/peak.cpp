// Machine peaks for bench/run.ts: f32 FMA throughput and memory copy bandwidth, with all OpenMP threads.
//   g++ -O3 -march=native -fopenmp -std=c++17 bench/peak.cpp -o /tmp/kiln-peak && /tmp/kiln-peak
// Prints one JSON line: {"threads", "fmaGflops", "fmaGflops1", "copyGBs"}.
// FMA: 12 independent FMA chains per thread in inline asm (zmm on an AVX-512 build, else ymm), as bench/kernels/gemm-peak.cpp measures it
// (a C++ loop lets GCC merge identical chains). Copy: 256 MiB → 256 MiB, threads split the range; bytes
// counted are read + written (2 × 256 MiB), best of 5.
#include <omp.h>
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <vector>

#include "fma-loop.h"

static double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }


static double fma_peak(int threads) {
  const int64_t iters = 100000000 / 12;
  double best = 0;
  for (int r = 0; r < 5; ++r) {
    const double t0 = now();
#pragma omp parallel num_threads(threads)
    fma_loop(iters);
    best = std::max(best, threads * double(iters) * 12 * FMA_LANES * 2 / (now() - t0) / 1e9);
  }
  return best;
}

int main() {
  const int nthr = omp_get_max_threads();
  const double p1 = fma_peak(1), pn = fma_peak(nthr);
  const size_t n = size_t(64) << 20;  // floats: 256 MiB
  std::vector<float> a(n, 1.0f), b(n, 0.0f);
  double best = 1e30;
  for (int r = 0; r < 6; ++r) {
    const double t0 = now();
#pragma omp parallel
    {
      const int t = omp_get_thread_num(), T = omp_get_num_threads();
      const size_t lo = n * t / T, hi = n * (t + 1) / T;
      std::memcpy(b.data() + lo, a.data() + lo, (hi - lo) * sizeof(float));
    }
    const double dt = now() - t0;
    if (r > 0) best = std::min(best, dt);  // the first pass faults the pages in
  }
  std::printf("{\"threads\":%d,\"fmaGflops\":%.1f,\"fmaGflops1\":%.1f,\"copyGBs\":%.2f,\"check\":%g}\n", nthr, pn, p1,
              2.0 * n * sizeof(float) / best / 1e9, double(b[n / 2]));
  return 0;
}
