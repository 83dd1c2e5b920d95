// Driver for kiln::conv2d_f32 / conv2d_bwd_data_f32 / conv2d_bwd_weight_f32.
// argv: N C H W O KH KW sh sw pt pb pl pr dh dw G mode(0 fwd, 1 bwd_data, 2 bwd_weight) seed [rows]
// rows 1: the epilogue takes row segments, epi.row(q0, q1, q2, q3, step, len, acc) (what the library passes);
// rows 2: kiln::ConvStore, the plain store the library's _out entries pass (no calls to count; the output starts as
// NaN, so an element left unwritten or added into fails); otherwise one call per element.
// Inputs drawn in order x [N,C,H,W], w [O,C/G,KH,KW], dy [N,O,Ho,Wo]. Prints y, dx or dw.
#include <cmath>

#include "common.h"
#include "conv2d.h"

// The output index of (q0, q1, q2, q3) is ((q0*D1 + q1)*D2 + q2)*D3 + q3.
struct Store {
  float* out; int* calls; int64_t D1, D2, D3;
  void operator()(int64_t a, int64_t b, int64_t c, int64_t d, float acc) const {
    const int64_t e = ((a * D1 + b) * D2 + c) * D3 + d;
    out[e] = acc;
    calls[e] += 1;
  }
};
struct StoreRows : Store {
  void row(int64_t a, int64_t b, int64_t c, int64_t d, int64_t step, int64_t len, const float* acc) const {
    if (len < 1 || step < 1 || d + (len - 1) * step >= D3) {
      std::fprintf(stderr, "bad row segment (%lld %lld %lld %lld step %lld len %lld)\n", (long long)a, (long long)b,
                   (long long)c, (long long)d, (long long)step, (long long)len);
      std::abort();
    }
    for (int64_t r = 0; r < len; ++r) (*this)(a, b, c, d + r * step, acc[r]);
  }
};

template <class E>
void run(int mode, const kiln::Conv2dShape& s, const std::vector<float>& x, const std::vector<float>& w,
         const std::vector<float>& dy, E e) {
  const int64_t N = s.N, C = s.C, H = s.H, W = s.W, O = s.O, KH = s.KH, KW = s.KW, sh = s.sh, sw = s.sw;
  const int64_t pt = s.pt, pb = s.pb, pl = s.pl, pr = s.pr, dh = s.dh, dw = s.dw, G = s.G;
  if (mode == 0) kiln::conv2d_f32(N, C, H, W, O, KH, KW, sh, sw, pt, pb, pl, pr, dh, dw, G, x.data(), w.data(), e);
  else if (mode == 1)
    kiln::conv2d_bwd_data_f32(N, C, H, W, O, KH, KW, sh, sw, pt, pb, pl, pr, dh, dw, G, dy.data(), w.data(), e);
  else kiln::conv2d_bwd_weight_f32(N, C, H, W, O, KH, KW, sh, sw, pt, pb, pl, pr, dh, dw, G, x.data(), dy.data(), e);
}

int main(int argc, char** argv) {
  int64_t p[16];
  for (int i = 0; i < 16; ++i) p[i] = arg(argc, argv, i + 1);
  const int64_t N = p[0], C = p[1], H = p[2], W = p[3], O = p[4], KH = p[5], KW = p[6], sh = p[7], sw = p[8];
  const int64_t pt = p[9], pb = p[10], pl = p[11], pr = p[12], dh = p[13], dw = p[14], G = p[15];
  const int mode = int(arg(argc, argv, 17));
  Rng rng(uint32_t(arg(argc, argv, 18)));
  const kiln::Conv2dShape s{N, C, H, W, O, KH, KW, sh, sw, pt, pb, pl, pr, dh, dw, G};
  const int64_t Ho = s.Ho(), Wo = s.Wo(), Cg = C / G;
  const auto x = rng.fill(N * C * H * W), w = rng.fill(O * Cg * KH * KW), dy = rng.fill(N * O * Ho * Wo);
  const int rows = argc > 19 ? std::atoi(argv[19]) : 0;
  const int64_t n_out = mode == 0 ? N * O * Ho * Wo : mode == 1 ? N * C * H * W : O * Cg * KH * KW;
  std::vector<float> out(size_t(n_out), rows == 2 ? std::nanf("") : -12345.0f);
  std::vector<int> calls(size_t(n_out), 0);
  const Store st = mode == 0 ? Store{out.data(), calls.data(), O, Ho, Wo}
                   : mode == 1 ? Store{out.data(), calls.data(), C, H, W}
                               : Store{out.data(), calls.data(), Cg, KH, KW};
  if (rows == 2) run(mode, s, x, w, dy, kiln::ConvStore{out.data(), st.D1, st.D2, st.D3});
  else if (rows == 1) run(mode, s, x, w, dy, StoreRows{st});
  else run(mode, s, x, w, dy, st);
  std::printf("path %s\n", kiln::isa_name(kiln::cpu_isa()));
  if (rows != 2) print_calls(calls);
  print("out", out);
  return 0;
}
