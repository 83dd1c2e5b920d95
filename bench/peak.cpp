// Machine peaks for bench/run.ts: f32 FMA throughput and memory copy bandwidth, with all OpenMP threads.
//   g++ -O3 -march=native -fopenmp -std=c++17 bench/peak.cpp -o /tmp/kiln-peak && /tmp/kiln-peak
// Prints one JSON line: {"threads", "fmaGflops", "fmaGflops1", "copyGBs"}.
// FMA: 12 independent ymm FMA chains per thread in inline asm, as bench/kernels/gemm-peak.cpp measures it
// (a C++ loop lets GCC merge identical chains). Copy: 256 MiB → 256 MiB, threads split the range; bytes
// counted are read + written (2 × 256 MiB), best of 5.
#include <omp.h>
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <vector>

static double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

__attribute__((noinline)) static void fma_loop(int64_t iters) {
  __asm__ volatile(
      "vxorps %%ymm12, %%ymm12, %%ymm12\n\t"
      "vxorps %%ymm13, %%ymm13, %%ymm13\n\t"
      "1:\n\t"
      "vfmadd231ps %%ymm13, %%ymm12, %%ymm0\n\t"
      "vfmadd231ps %%ymm13, %%ymm12, %%ymm1\n\t"
      "vfmadd231ps %%ymm13, %%ymm12, %%ymm2\n\t"
      "vfmadd231ps %%ymm13, %%ymm12, %%ymm3\n\t"
      "vfmadd231ps %%ymm13, %%ymm12, %%ymm4\n\t"
      "vfmadd231ps %%ymm13, %%ymm12, %%ymm5\n\t"
      "vfmadd231ps %%ymm13, %%ymm12, %%ymm6\n\t"
      "vfmadd231ps %%ymm13, %%ymm12, %%ymm7\n\t"
      "vfmadd231ps %%ymm13, %%ymm12, %%ymm8\n\t"
      "vfmadd231ps %%ymm13, %%ymm12, %%ymm9\n\t"
      "vfmadd231ps %%ymm13, %%ymm12, %%ymm10\n\t"
      "vfmadd231ps %%ymm13, %%ymm12, %%ymm11\n\t"
      "dec %[n]\n\t"
      "jnz 1b\n\t"
      : [n] "+r"(iters)
      :
      : "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11",
        "xmm12", "xmm13", "cc");
}

static double fma_peak(int threads) {
  const int64_t iters = 100000000 / 12;
  double best = 0;
  for (int r = 0; r < 5; ++r) {
    const double t0 = now();
#pragma omp parallel num_threads(threads)
    fma_loop(iters);
    best = std::max(best, threads * double(iters) * 12 * 8 * 2 / (now() - t0) / 1e9);
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
