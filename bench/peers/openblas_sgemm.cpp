// OpenBLAS sgemm peer for bench/run.ts (issue 16): C = A.B, row-major M x K times K x N, on the inputs run.ts
// writes, timed like run.ts times Kiln (median and min of repeated calls after a warm-up).
//   openblas_sgemm M N K threads minSamples maxSeconds a.bin b.bin out.bin   -> JSON on stdout
// Build: g++ -O2 bench/peers/openblas_sgemm.cpp -o <exe> -lopenblas   (Debian libopenblas-dev; bench-only)
#include <cblas.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <vector>

extern "C" void openblas_set_num_threads(int);
extern "C" char* openblas_get_config(void);

static std::vector<float> load(const char* f, size_t n) {
  std::vector<float> v(n);
  FILE* fp = std::fopen(f, "rb");
  if (!fp || std::fread(v.data(), sizeof(float), n, fp) != n) {
    std::fprintf(stderr, "cannot read %zu floats from %s\n", n, f);
    std::exit(1);
  }
  std::fclose(fp);
  return v;
}

int main(int argc, char** argv) {
  if (argc != 10) {
    std::fprintf(stderr, "usage: openblas_sgemm M N K threads minSamples maxSeconds a.bin b.bin out.bin\n");
    return 2;
  }
  const int M = std::atoi(argv[1]), N = std::atoi(argv[2]), K = std::atoi(argv[3]);
  const int minSamples = std::atoi(argv[5]);
  const double maxSeconds = std::atof(argv[6]);
  openblas_set_num_threads(std::atoi(argv[4]));
  const auto a = load(argv[7], size_t(M) * K), b = load(argv[8], size_t(K) * N);
  std::vector<float> c(size_t(M) * N);
  auto run = [&] { cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, N, K, 1.0f, a.data(), K, b.data(), N, 0.0f, c.data(), N); };
  run();
  run();
  std::vector<double> ms;
  const auto start = std::chrono::steady_clock::now();
  using sec = std::chrono::duration<double>;
  while (int(ms.size()) < minSamples || (sec(std::chrono::steady_clock::now() - start).count() < maxSeconds && ms.size() < 1000)) {
    const auto t0 = std::chrono::steady_clock::now();
    run();
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(ms.begin(), ms.end());
  FILE* fp = std::fopen(argv[9], "wb");
  std::fwrite(c.data(), sizeof(float), c.size(), fp);
  std::fclose(fp);
  std::printf("{\"medianMs\": %.6f, \"minMs\": %.6f, \"samples\": %zu, \"config\": \"%s\"}\n", ms[ms.size() / 2], ms[0], ms.size(),
              openblas_get_config());
  return 0;
}
