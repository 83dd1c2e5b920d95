// Driver for kiln::sdpa_f32 / sdpa_grad_f32. argv: nb lq lk d dv causal wrt(-1 forward, 0 dQ, 1 dK, 2 dV) seed
// [nan_row: q[0, nan_row, 0] = NaN after drawing]
// scale = 1/sqrt(d). Inputs drawn in order q [nb,lq,d], k [nb,lk,d], v [nb,lk,dv], dout [nb,lq,dv].
#include <cmath>

#include "attention.h"
#include "common.h"

int main(int argc, char** argv) {
  const int64_t nb = arg(argc, argv, 1), lq = arg(argc, argv, 2), lk = arg(argc, argv, 3), d = arg(argc, argv, 4);
  const int64_t dv = arg(argc, argv, 5);
  const bool causal = arg(argc, argv, 6);
  const int wrt = int(arg(argc, argv, 7));
  Rng rng(uint32_t(arg(argc, argv, 8)));
  auto q = rng.fill(nb * lq * d);
  const auto k = rng.fill(nb * lk * d), v = rng.fill(nb * lk * dv);
  const auto dout = rng.fill(nb * lq * dv);
  if (argc > 9) q[arg(argc, argv, 9) * d] = NAN;
  const float scale = 1.0f / std::sqrt(float(d));
  const int64_t rows = wrt == 0 || wrt == -1 ? lq : lk, width = wrt == 0 || wrt == 1 ? d : dv;
  std::vector<float> out(nb * rows * width, -12345.0f);
  std::vector<int> calls(out.size(), 0);
  float* o = out.data();
  int* cl = calls.data();
  auto epi = [=](int64_t b, int64_t r, int64_t t, float acc) {
    o[(b * rows + r) * width + t] = acc;
    cl[(b * rows + r) * width + t] += 1;
  };
  if (wrt < 0)
    kiln::sdpa_f32(nb, lq, lk, d, dv, q.data(), k.data(), v.data(), scale, causal, epi);
  else
    kiln::sdpa_grad_f32(nb, lq, lk, d, dv, q.data(), k.data(), v.data(), dout.data(), scale, causal, wrt, epi);
  print_calls(calls);
  print("out", out);
  return 0;
}
