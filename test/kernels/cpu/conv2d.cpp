// Driver for kiln::conv2d_f32 / conv2d_bwd_data_f32 / conv2d_bwd_weight_f32.
// argv: N C H W O KH KW sh sw pt pb pl pr dh dw G mode(0 fwd, 1 bwd_data, 2 bwd_weight) seed
// Inputs drawn in order x [N,C,H,W], w [O,C/G,KH,KW], dy [N,O,Ho,Wo]. Prints y, dx or dw.
#include "common.h"
#include "conv2d.h"

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
  std::vector<float> out;
  std::vector<int> calls;
  if (mode == 0) {
    out.assign(N * O * Ho * Wo, -12345.0f);
    calls.assign(out.size(), 0);
    float* y = out.data();
    int* cl = calls.data();
    kiln::conv2d_f32(N, C, H, W, O, KH, KW, sh, sw, pt, pb, pl, pr, dh, dw, G, x.data(), w.data(),
                     [=](int64_t n, int64_t o, int64_t oh, int64_t ow, float acc) {
                       const int64_t e = ((n * O + o) * Ho + oh) * Wo + ow;
                       y[e] = acc;
                       cl[e] += 1;
                     });
  } else if (mode == 1) {
    out.assign(N * C * H * W, -12345.0f);
    calls.assign(out.size(), 0);
    float* dx = out.data();
    int* cl = calls.data();
    kiln::conv2d_bwd_data_f32(N, C, H, W, O, KH, KW, sh, sw, pt, pb, pl, pr, dh, dw, G, dy.data(), w.data(),
                              [=](int64_t n, int64_t c, int64_t ih, int64_t iw, float acc) {
                                const int64_t e = ((n * C + c) * H + ih) * W + iw;
                                dx[e] = acc;
                                cl[e] += 1;
                              });
  } else {
    out.assign(O * Cg * KH * KW, -12345.0f);
    calls.assign(out.size(), 0);
    float* dwt = out.data();
    int* cl = calls.data();
    kiln::conv2d_bwd_weight_f32(N, C, H, W, O, KH, KW, sh, sw, pt, pb, pl, pr, dh, dw, G, x.data(), dy.data(),
                                [=](int64_t o, int64_t ci, int64_t kh, int64_t kw, float acc) {
                                  const int64_t e = ((o * Cg + ci) * KH + kh) * KW + kw;
                                  dwt[e] = acc;
                                  cl[e] += 1;
                                });
  }
  std::printf("path %s\n", kiln::isa_name(kiln::cpu_isa()));
  print_calls(calls);
  print("out", out);
  return 0;
}
