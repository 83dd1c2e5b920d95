// GFLOP/s of kiln::gemm_f32 against the machine's measured FMA peak.
//   g++ -O3 -march=native -fopenmp -std=c++17 -I kernels/cpu bench/kernels/gemm-peak.cpp -o /tmp/gemm-peak
//   /tmp/gemm-peak [n=1024] [reps=10]
// The peak is measured, not computed from the clock: every thread runs 12 independent FMA chains (enough to cover
// FMA latency x pipes) on the build's widest vectors (bench/fma-loop.h: zmm with -march=native on an AVX-512 CPU,
// where gemm_f32 runs the avx512 path; ymm otherwise), so the result is what the core's FMA units actually deliver.
// bench/kernels/gemm-isa.cpp compares every path with OpenBLAS.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "gemm.h"
#include "../fma-loop.h"

static double now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}


int main(int argc, char** argv) {
  const int64_t n = argc > 1 ? std::atoll(argv[1]) : 1024;
  const int reps = argc > 2 ? std::atoi(argv[2]) : 10;
  const int nthr = omp_get_max_threads();

  std::vector<float> A(n * n), B(n * n), C(n * n);
  for (int64_t i = 0; i < n * n; ++i) {
    A[i] = float((i * 7919) % 1000) / 1000.0f - 0.5f;
    B[i] = float((i * 104729) % 1000) / 1000.0f - 0.5f;
  }
  float* c = C.data();
  auto zero = [](int64_t) -> int64_t { return 0; };
  auto epi = [c, n](int64_t, int64_t i, int64_t j, float acc) { c[i * n + j] = acc; };

  // Report with 1 thread and with all threads: on a shared machine the 1-thread ratio is the stable one.
  for (int t : {1, nthr}) {
    omp_set_num_threads(t);
    // Peak: 12 FMA x 8 lanes x 2 flop per iteration per thread; the slowest thread sets the time.
    const int64_t iters = 100000000 / 12;
    double peak = 0;
    for (int r = 0; r < 3; ++r) {
      const double t0 = now();
#pragma omp parallel
      fma_loop(iters);
      peak = std::max(peak, t * double(iters) * 12 * FMA_LANES * 2 / (now() - t0) / 1e9);
    }
    double best = 1e30;
    for (int r = 0; r < reps + 1; ++r) {
      const double t0 = now();
      kiln::gemm_f32(1, n, n, n, A.data(), n, 1, zero, B.data(), n, 1, zero, epi);
      const double dt = now() - t0;
      if (r > 0) best = std::min(best, dt);  // the first run warms up pages and threads
    }
    const double gflops = 2.0 * n * n * n / best / 1e9;
    std::printf("threads %d  fma_peak %.1f GFLOP/s  gemm_f32 %lld^3 %.1f GFLOP/s  = %.1f%% of peak\n", t, peak,
                (long long)n, gflops, 100.0 * gflops / peak);
  }
  return 0;
}
