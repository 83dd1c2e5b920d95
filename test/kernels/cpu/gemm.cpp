// Driver for kiln::gemm_f32. argv: batch M N K transA transB bcastA bcastB seed
// or argv: isa  -> prints "best <path>", "features <detected...>" (cpu_isa.h), "caches <l1d> <l2> <l3> <source>"
// (cpu_cache.h) and "blocking <path> <KC> <MC> <NC>" per path (gemm.h), then exits.
// A is stored [nA][M][K] (or [nA][K][M] when transA), B [nB][K][N] (or [nB][N][K]); nX = bcastX ? 1 : batch.
// Inputs are drawn in order A, B. Prints C [batch][M][N].
#include "common.h"
#include "gemm.h"

#include <initializer_list>
#include <cstdio>
#include <string>

int main(int argc, char** argv) {
  if (argc > 1 && std::string(argv[1]) == "isa") {
    const kiln::CpuIsaState& s = kiln::cpu_isa_state();
    std::printf("best %s\nfeatures %s\n", kiln::isa_name(s.best), s.features);
    const kiln::CpuCaches& c = kiln::cpu_caches();
    std::printf("caches %lld %lld %lld %s\n", (long long)c.l1d, (long long)c.l2, (long long)c.l3, c.source);
    for (kiln::Isa i : {kiln::Isa::Generic, kiln::Isa::Avx2, kiln::Isa::Avx512}) {
      const kiln::GemmBlocking b = i == kiln::Isa::Avx512 ? kiln::gemm_blocking<kiln::gemm_cfg::Avx512>()
                                   : i == kiln::Isa::Avx2 ? kiln::gemm_blocking<kiln::gemm_cfg::Avx2>()
                                                          : kiln::gemm_blocking<kiln::gemm_cfg::Generic>();
      std::printf("blocking %s %lld %lld %lld\n", kiln::isa_name(i), (long long)b.KC, (long long)b.MC, (long long)b.NC);
    }
    return 0;
  }
  const int64_t batch = arg(argc, argv, 1), M = arg(argc, argv, 2), N = arg(argc, argv, 3), K = arg(argc, argv, 4);
  const bool tA = arg(argc, argv, 5), tB = arg(argc, argv, 6), bcA = arg(argc, argv, 7), bcB = arg(argc, argv, 8);
  Rng rng(uint32_t(arg(argc, argv, 9)));
  const int64_t nA = bcA ? 1 : batch, nB = bcB ? 1 : batch;
  const auto A = rng.fill(nA * M * K), B = rng.fill(nB * K * N);
  std::vector<float> C(batch * M * N, -12345.0f);
  std::vector<int> calls(batch * M * N, 0);
  const int64_t rsA = tA ? 1 : K, csA = tA ? M : 1, rsB = tB ? 1 : N, csB = tB ? K : 1;
  float* c = C.data();
  int* cl = calls.data();
  kiln::gemm_f32(
      batch, M, N, K, A.data(), rsA, csA, [=](int64_t b) { return bcA ? 0 : b * M * K; }, B.data(), rsB, csB,
      [=](int64_t b) { return bcB ? 0 : b * K * N; },
      [=](int64_t b, int64_t i, int64_t j, float acc) {
        c[(b * M + i) * N + j] = acc;
        cl[(b * M + i) * N + j] += 1;
      });
  std::printf("path %s\n", kiln::isa_name(kiln::cpu_isa()));
  print_calls(calls);
  print("C", C);
  return 0;
}
