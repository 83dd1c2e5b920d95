// Driver for kiln::gemm_f32 / gemm_half. argv: batch M N K transA transB bcastA bcastB seed [dtype [pad [rows]]]
//   dtype 0: f32 operands (gemm_f32), 1: bf16 words, 2: f16 words (gemm_half; the inputs are rounded to the
//   type, and the rounded values are what A and B print); pad: extra elements after each stored row of A and B
//   (a non-contiguous view: the leading dimension is the row length + pad); rows 1: the epilogue is a row
//   epilogue (epi.row(b, i, j0, n, v)), 0 (default): one call per element.
// or argv: isa  -> prints "best <path>", "features <detected...>", "bf16_dot <0|1>" (cpu_isa.h),
//                  "caches <l1d> <l2> <l3> <source>"
// (cpu_cache.h) and "blocking <path> <KC> <MC> <NC>" per path (gemm.h), then exits.
// A is stored [nA][M][K] (or [nA][K][M] when transA), B [nB][K][N] (or [nB][N][K]); nX = bcastX ? 1 : batch.
// Inputs are drawn in order A, B. Prints path, calls_once, A and B (dense, in that layout, as the GEMM saw them)
// and C [batch][M][N].
#include "common.h"
#include "gemm_half.h"

#include <initializer_list>
#include <cstdio>
#include <string>

template <class Epi>
struct RowOnly {  // hands the driver's per-element epilogue to the GEMM as a row epilogue
  Epi e;
  void row(int64_t b, int64_t i, int64_t j0, int n, const float* v) const {
    for (int t = 0; t < n; ++t) e(b, i, j0 + t, v[t]);
  }
};

int main(int argc, char** argv) {
  if (argc > 1 && std::string(argv[1]) == "isa") {
    const kiln::CpuIsaState& s = kiln::cpu_isa_state();
    std::printf("best %s\nfeatures %s\nbf16_dot %d\n", kiln::isa_name(s.best), s.features, int(s.bf16_dot));
    const kiln::CpuCaches& c = kiln::cpu_caches();
    std::printf("caches %lld %lld %lld %s\n", (long long)c.l1d, (long long)c.l2, (long long)c.l3, c.source);
    for (kiln::Isa i : {kiln::Isa::Generic, kiln::Isa::Avx2, kiln::Isa::Avx512, kiln::Isa::Avx512Bf16}) {
      const kiln::GemmBlocking b = i == kiln::Isa::Avx512Bf16 ? kiln::gemm_blocking<kiln::gemm_cfg::Avx512Bf16>()
                                   : i == kiln::Isa::Avx512   ? kiln::gemm_blocking<kiln::gemm_cfg::Avx512>()
                                   : i == kiln::Isa::Avx2     ? kiln::gemm_blocking<kiln::gemm_cfg::Avx2>()
                                                              : kiln::gemm_blocking<kiln::gemm_cfg::Generic>();
      std::printf("blocking %s %lld %lld %lld\n", kiln::isa_name(i), (long long)b.KC, (long long)b.MC, (long long)b.NC);
    }
    return 0;
  }
  const int64_t batch = arg(argc, argv, 1), M = arg(argc, argv, 2), N = arg(argc, argv, 3), K = arg(argc, argv, 4);
  const bool tA = arg(argc, argv, 5), tB = arg(argc, argv, 6), bcA = arg(argc, argv, 7), bcB = arg(argc, argv, 8);
  Rng rng(uint32_t(arg(argc, argv, 9)));
  const int dtype = argc > 10 ? int(arg(argc, argv, 10)) : 0;
  const int64_t pad = argc > 11 ? arg(argc, argv, 11) : 0;
  const bool rows = argc > 12 && arg(argc, argv, 12) != 0;
  const int64_t nA = bcA ? 1 : batch, nB = bcB ? 1 : batch;
  auto A = rng.fill(nA * M * K), B = rng.fill(nB * K * N);
  // Rounded to the operand type: the GEMM sees exactly these values.
  auto round = [&](std::vector<float>& v, std::vector<uint16_t>& w) {
    w.resize(v.size());
    for (size_t i = 0; i < v.size(); ++i) {
      w[i] = dtype == 1 ? kiln_f32_to_bf16(v[i]) : kiln_f32_to_f16(v[i]);
      v[i] = dtype == 1 ? kiln_bf16_to_f32(w[i]) : kiln_f16_to_f32(w[i]);
    }
  };
  std::vector<uint16_t> Aw, Bw;
  if (dtype != 0) round(A, Aw), round(B, Bw);
  // Stored layout with `pad` elements after each row: A rows of (tA ? M : K), B rows of (tB ? K : N).
  const int64_t la = (tA ? M : K) + pad, lb = (tB ? K : N) + pad;
  const int64_t ra = tA ? K : M, rb = tB ? N : K;  // stored rows per batch element
  auto store = [&](const auto& v, int64_t n, int64_t r, int64_t len, int64_t ld) {
    std::vector<typename std::decay_t<decltype(v)>::value_type> s(size_t(n * r * ld), 0);
    for (int64_t e = 0; e < n; ++e)
      for (int64_t i = 0; i < r; ++i)
        for (int64_t j = 0; j < len; ++j) s[(e * r + i) * ld + j] = v[(e * r + i) * len + j];
    return s;
  };
  const int64_t rsA = tA ? 1 : la, csA = tA ? la : 1, rsB = tB ? 1 : lb, csB = tB ? lb : 1;
  auto aOff = [=](int64_t b) { return bcA ? 0 : b * ra * la; };
  auto bOff = [=](int64_t b) { return bcB ? 0 : b * rb * lb; };
  std::vector<float> C(batch * M * N, -12345.0f);
  std::vector<int> calls(batch * M * N, 0);
  float* c = C.data();
  int* cl = calls.data();
  auto epi = [=](int64_t b, int64_t i, int64_t j, float acc) {
    c[(b * M + i) * N + j] = acc;
    cl[(b * M + i) * N + j] += 1;
  };
  auto run = [&](auto e) {
    if (dtype == 0) {
      const auto As = store(A, nA, ra, tA ? M : K, la), Bs = store(B, nB, rb, tB ? K : N, lb);
      kiln::gemm_f32(batch, M, N, K, As.data(), rsA, csA, aOff, Bs.data(), rsB, csB, bOff, e);
    } else {
      const auto As = store(Aw, nA, ra, tA ? M : K, la), Bs = store(Bw, nB, rb, tB ? K : N, lb);
      if (dtype == 1)
        kiln::gemm_half<kiln::LoadBf16>(batch, M, N, K, As.data(), rsA, csA, aOff, Bs.data(), rsB, csB, bOff, e);
      else
        kiln::gemm_half<kiln::LoadF16>(batch, M, N, K, As.data(), rsA, csA, aOff, Bs.data(), rsB, csB, bOff, e);
    }
  };
  if (rows) run(RowOnly<decltype(epi)>{epi});
  else run(epi);
  std::printf("path %s\n", kiln::isa_name(kiln::cpu_isa()));
  print_calls(calls);
  print("A", A);
  print("B", B);
  print("C", C);
  return 0;
}
