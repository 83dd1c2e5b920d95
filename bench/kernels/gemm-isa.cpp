// GFLOP/s of kiln's GEMM on each ISA path this CPU runs, against OpenBLAS sgemm, in the same process and minute.
//   g++ -O3 -march=native -fopenmp -std=c++17 -I kernels/cpu bench/kernels/gemm-isa.cpp -o /tmp/gemm-isa -lopenblas
//   env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE /tmp/gemm-isa [reps=7]   (prints one JSON object)
// Each path is called directly (gemm_packed_path<gemm_cfg::X>), so one process covers all of them; the epilogue
// is an inlined store (the library's function-pointer epilogue adds about a nanosecond per output element).
// Threads: 1 and 2 (OpenMP for kiln, openblas_set_num_threads for OpenBLAS). Reported: best of `reps` timed
// calls after one warm-up, per library, interleaved so that load on a shared machine hits every entry alike.
// Where the CPU has AVX-512 BF16, two more entries run the same GEMM on bf16 operands (the inputs rounded to
// bf16): "kiln-avx512-bf16in" converts them to f32 while packing (the avx512 path), "kiln-avx512_bf16" multiplies
// bf16 pairs with vdpbf16ps; their vs_openblas compares with OpenBLAS's f32 sgemm on the same shape.
// Optional second argument: "M,N,K[;M,N,K...]" replaces the default shapes.
#include <cblas.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "gemm_half.h"

extern "C" void openblas_set_num_threads(int);
extern "C" char* openblas_get_corename(void);

static double now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

struct Shape { const char* name; int64_t M, N, K; };

int main(int argc, char** argv) {
  const int reps = argc > 1 ? std::atoi(argv[1]) : 7;
  std::vector<Shape> shapes = {{"matmul 1024^3", 1024, 1024, 1024},
                               {"UNet conv3x3 320ch 64^2 as GEMM (M=320 N=4096 K=2880)", 320, 4096, 2880},
                               {"UNet conv3x3 64ch 64^2 as GEMM (M=64 N=4096 K=576)", 64, 4096, 576}};
  static std::vector<std::string> names;  // the custom shapes' names (stable: reserved up front)
  if (argc > 2) {
    shapes.clear();
    names.reserve(64);
    long long m, n, k;
    int used = 0;
    for (const char* p = argv[2]; names.size() < 64 && std::sscanf(p, "%lld,%lld,%lld%n", &m, &n, &k, &used) == 3;) {
      names.push_back("matmul " + std::to_string(m) + "x" + std::to_string(n) + "x" + std::to_string(k));
      shapes.push_back({names.back().c_str(), m, n, k});
      p += used;
      if (*p != ';') break;
      ++p;
    }
  }
  const kiln::CpuIsaState& st = kiln::cpu_isa_state();
  std::vector<std::string> paths = {"generic"};
  if (st.best != kiln::Isa::Generic) paths.push_back("avx2");
  if (st.best >= kiln::Isa::Avx512) paths.push_back("avx512");
  const bool bf16 = st.best == kiln::Isa::Avx512Bf16;
  if (bf16) paths.push_back("avx512-bf16in"), paths.push_back("avx512_bf16");
  std::printf("{\n  \"cpu\": \"%s\",\n  \"features\": \"%s\",\n  \"best_path\": \"%s\",\n  \"openblas_core\": \"%s\",\n"
              "  \"reps\": %d,\n  \"results\": [\n",
              st.model, st.features, kiln::isa_name(st.best), openblas_get_corename(), reps);
  bool first = true;
  for (const Shape& s : shapes) {
    const int64_t M = s.M, N = s.N, K = s.K;
    std::vector<float> A(M * K), B(K * N), C(M * N), R(M * N), R16(M * N);
    for (int64_t i = 0; i < M * K; ++i) A[i] = float((i * 7919) % 1000) / 1000.0f - 0.5f;
    for (int64_t i = 0; i < K * N; ++i) B[i] = float((i * 104729) % 1000) / 1000.0f - 0.5f;
    std::vector<uint16_t> Ah(M * K), Bh(K * N);  // bf16 copies; A/B hold the rounded values for the check
    std::vector<float> Ar(M * K), Br(K * N);
    for (int64_t i = 0; i < M * K; ++i) Ar[i] = kiln_bf16_to_f32(Ah[i] = kiln_f32_to_bf16(A[i]));
    for (int64_t i = 0; i < K * N; ++i) Br[i] = kiln_bf16_to_f32(Bh[i] = kiln_f32_to_bf16(B[i]));
    if (bf16)  // the bf16 entries are checked against sgemm of the rounded inputs
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, int(M), int(N), int(K), 1.0f, Ar.data(), int(K),
                  Br.data(), int(N), 0.0f, R16.data(), int(N));
    float* c = C.data();
    auto zero = [](int64_t) -> int64_t { return 0; };
    auto epi = [c, N](int64_t, int64_t i, int64_t j, float acc) { c[i * N + j] = acc; };
    kiln::StridedPackA<decltype(zero)> pa{A.data(), K, 1, zero, M};
    kiln::StridedPackB<decltype(zero)> pb{B.data(), N, 1, zero};
    kiln::StridedPackA<decltype(zero), kiln::LoadBf16> pah{Ah.data(), K, 1, zero, M};
    kiln::StridedPackB<decltype(zero), kiln::LoadBf16> pbh{Bh.data(), N, 1, zero};
    for (int t : {1, 2}) {
      omp_set_num_threads(t);
      openblas_set_num_threads(t);
      const size_t n = paths.size() + 1;
      std::vector<double> best(n, 1e30);
      auto run = [&](size_t e) {
        if (e == paths.size()) {
          cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, int(M), int(N), int(K), 1.0f, A.data(), int(K),
                      B.data(), int(N), 0.0f, R.data(), int(N));
        } else if (paths[e] == "avx512_bf16") {
          kiln::gemm_packed_path<kiln::gemm_cfg::Avx512Bf16>(1, M, N, K, pah, pbh, epi);
        } else if (paths[e] == "avx512-bf16in") {
          kiln::gemm_packed_path<kiln::gemm_cfg::Avx512>(1, M, N, K, pah, pbh, epi);
        } else if (paths[e] == "avx512") {
          kiln::gemm_packed_path<kiln::gemm_cfg::Avx512>(1, M, N, K, pa, pb, epi);
        } else if (paths[e] == "avx2") {
          kiln::gemm_packed_path<kiln::gemm_cfg::Avx2>(1, M, N, K, pa, pb, epi);
        } else {
          kiln::gemm_packed_path<kiln::gemm_cfg::Generic>(1, M, N, K, pa, pb, epi);
        }
      };
      for (size_t e = 0; e < n; ++e) run(e);  // warm-up: pages, threads
      double maxdiff = 0, maxdiff16 = 0;
      for (int r = 0; r < reps; ++r)
        for (size_t e = 0; e < n; ++e) {
          const double t0 = now();
          run(e);
          best[e] = std::min(best[e], now() - t0);
          const bool h = e < paths.size() && paths[e].find("bf16") != std::string::npos;
          if (e < paths.size())
            for (int64_t i = 0; i < M * N; i += 97) {
              const double d = std::abs(C[i] - (h ? R16 : R)[i]) / (1.0 + std::abs((h ? R16 : R)[i]));
              (h ? maxdiff16 : maxdiff) = std::max(h ? maxdiff16 : maxdiff, d);
            }
        }
      const double flop = 2.0 * M * N * K, blas = flop / best[paths.size()] / 1e9;
      for (size_t e = 0; e <= paths.size(); ++e) {
        const double g = flop / best[e] / 1e9;
        std::printf("%s    {\"case\": \"%s\", \"threads\": %d, \"impl\": \"%s\", \"ms\": %.3f, \"gflops\": %.1f, "
                    "\"vs_openblas\": %.3f%s}",
                    first ? "" : ",\n", s.name, t, e < paths.size() ? ("kiln-" + paths[e]).c_str() : "openblas",
                    best[e] * 1e3, g, g / blas,
                    e == paths.size() ? (", \"max_rel_diff_kiln\": " + std::to_string(maxdiff) +
                                         (bf16 ? ", \"max_rel_diff_kiln_bf16_vs_sgemm_of_rounded\": " + std::to_string(maxdiff16) : ""))
                                            .c_str()
                                      : "");
        first = false;
      }
    }
  }
  std::printf("\n  ]\n}\n");
  return 0;
}
