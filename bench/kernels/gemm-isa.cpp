// GFLOP/s of kiln's GEMM on each ISA path this CPU runs, against OpenBLAS sgemm, in the same process and minute.
//   g++ -O3 -march=native -fopenmp -std=c++17 -I kernels/cpu bench/kernels/gemm-isa.cpp -o /tmp/gemm-isa -lopenblas
//   env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE /tmp/gemm-isa [reps=7]   (prints one JSON object)
// Each path is called directly (gemm_packed_path<gemm_cfg::X>), so one process covers all of them; the epilogue
// is an inlined store (the library's function-pointer epilogue adds about a nanosecond per output element).
// Threads: 1 and 2 (OpenMP for kiln, openblas_set_num_threads for OpenBLAS). Reported: best of `reps` timed
// calls after one warm-up, per library, interleaved so that load on a shared machine hits every entry alike.
#include <cblas.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "gemm.h"

extern "C" void openblas_set_num_threads(int);
extern "C" char* openblas_get_corename(void);

static double now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

struct Shape { const char* name; int64_t M, N, K; };

int main(int argc, char** argv) {
  const int reps = argc > 1 ? std::atoi(argv[1]) : 7;
  const Shape shapes[] = {{"matmul 1024^3", 1024, 1024, 1024},
                          {"UNet conv3x3 320ch 64^2 as GEMM (M=320 N=4096 K=2880)", 320, 4096, 2880},
                          {"UNet conv3x3 64ch 64^2 as GEMM (M=64 N=4096 K=576)", 64, 4096, 576}};
  const kiln::CpuIsaState& st = kiln::cpu_isa_state();
  std::vector<std::string> paths = {"generic"};
  if (st.best != kiln::Isa::Generic) paths.push_back("avx2");
  if (st.best == kiln::Isa::Avx512) paths.push_back("avx512");
  std::printf("{\n  \"cpu\": \"%s\",\n  \"features\": \"%s\",\n  \"best_path\": \"%s\",\n  \"openblas_core\": \"%s\",\n"
              "  \"reps\": %d,\n  \"results\": [\n",
              st.model, st.features, kiln::isa_name(st.best), openblas_get_corename(), reps);
  bool first = true;
  for (const Shape& s : shapes) {
    const int64_t M = s.M, N = s.N, K = s.K;
    std::vector<float> A(M * K), B(K * N), C(M * N), R(M * N);
    for (int64_t i = 0; i < M * K; ++i) A[i] = float((i * 7919) % 1000) / 1000.0f - 0.5f;
    for (int64_t i = 0; i < K * N; ++i) B[i] = float((i * 104729) % 1000) / 1000.0f - 0.5f;
    float* c = C.data();
    auto zero = [](int64_t) -> int64_t { return 0; };
    auto epi = [c, N](int64_t, int64_t i, int64_t j, float acc) { c[i * N + j] = acc; };
    kiln::StridedPackA<decltype(zero)> pa{A.data(), K, 1, zero, M};
    kiln::StridedPackB<decltype(zero)> pb{B.data(), N, 1, zero};
    for (int t : {1, 2}) {
      omp_set_num_threads(t);
      openblas_set_num_threads(t);
      const size_t n = paths.size() + 1;
      std::vector<double> best(n, 1e30);
      auto run = [&](size_t e) {
        if (e == paths.size()) {
          cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, int(M), int(N), int(K), 1.0f, A.data(), int(K),
                      B.data(), int(N), 0.0f, R.data(), int(N));
        } else if (paths[e] == "avx512") {
          kiln::gemm_packed_path<kiln::gemm_cfg::Avx512>(1, M, N, K, pa, pb, epi);
        } else if (paths[e] == "avx2") {
          kiln::gemm_packed_path<kiln::gemm_cfg::Avx2>(1, M, N, K, pa, pb, epi);
        } else {
          kiln::gemm_packed_path<kiln::gemm_cfg::Generic>(1, M, N, K, pa, pb, epi);
        }
      };
      for (size_t e = 0; e < n; ++e) run(e);  // warm-up: pages, threads
      double maxdiff = 0;
      for (int r = 0; r < reps; ++r)
        for (size_t e = 0; e < n; ++e) {
          const double t0 = now();
          run(e);
          best[e] = std::min(best[e], now() - t0);
          if (e < paths.size())
            for (int64_t i = 0; i < M * N; i += 97) maxdiff = std::max<double>(maxdiff, std::abs(C[i] - R[i]) / (1.0 + std::abs(R[i])));
        }
      const double flop = 2.0 * M * N * K, blas = flop / best[paths.size()] / 1e9;
      for (size_t e = 0; e <= paths.size(); ++e) {
        const double g = flop / best[e] / 1e9;
        std::printf("%s    {\"case\": \"%s\", \"threads\": %d, \"impl\": \"%s\", \"ms\": %.3f, \"gflops\": %.1f, "
                    "\"vs_openblas\": %.3f%s}",
                    first ? "" : ",\n", s.name, t, e < paths.size() ? ("kiln-" + paths[e]).c_str() : "openblas",
                    best[e] * 1e3, g, g / blas,
                    e == paths.size() ? (", \"max_rel_diff_kiln\": " + std::to_string(maxdiff)).c_str() : "");
        first = false;
      }
    }
  }
  std::printf("\n  ]\n}\n");
  return 0;
}
