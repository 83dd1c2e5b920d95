// Compile-only driver: instantiates every kiln conv2d variant for f32 (SIMT) and bf16 (tensor cores).
#include "conv2d.cuh"

using namespace kiln;

extern "C" __global__ void __launch_bounds__(GemmTileF32::THREADS)
    kiln_test_conv2d_fwd_bias_silu(float* __restrict__ y, const float* __restrict__ x, const float* __restrict__ w,
                                   const float* __restrict__ bias, Conv2dParams p) {
  const int Ho = p.Ho(), Wo = p.Wo();
  conv2d_fwd_tile<GemmTileF32, float>(blockIdx.x, blockIdx.y, blockIdx.z, p, x, w,
                                      [=](int n, int o, int oh, int ow, float acc) {
                                        const float t = acc + bias[o];
                                        y[((int64_t(n) * p.O + o) * Ho + oh) * Wo + ow] = t / (1.f + __expf(-t));
                                      });
}

extern "C" __global__ void __launch_bounds__(GemmTileMma::THREADS)
    kiln_test_conv2d_fwd_bf16(float* __restrict__ y, const __nv_bfloat16* __restrict__ x,
                              const __nv_bfloat16* __restrict__ w, Conv2dParams p) {
  const int Ho = p.Ho(), Wo = p.Wo();
  conv2d_fwd_tile<GemmTileMma, __nv_bfloat16>(blockIdx.x, blockIdx.y, blockIdx.z, p, x, w,
                                              [=](int n, int o, int oh, int ow, float acc) {
                                                y[((int64_t(n) * p.O + o) * Ho + oh) * Wo + ow] = acc;
                                              });
}

extern "C" __global__ void __launch_bounds__(GemmTileF32::THREADS)
    kiln_test_conv2d_bwd_data(float* __restrict__ dx, const float* __restrict__ dy, const float* __restrict__ w,
                              Conv2dParams p) {
  conv2d_bwd_data_tile<GemmTileF32, float>(blockIdx.x, blockIdx.y, blockIdx.z, p, dy, w,
                                           [=](int n, int c, int ih, int iw, float acc) {
                                             dx[((int64_t(n) * p.C + c) * p.H + ih) * p.W + iw] = acc;
                                           });
}

extern "C" __global__ void __launch_bounds__(GemmTileMma::THREADS)
    kiln_test_conv2d_bwd_data_f16(float* __restrict__ dx, const __half* __restrict__ dy,
                                  const __half* __restrict__ w, Conv2dParams p) {
  conv2d_bwd_data_tile<GemmTileMma, __half>(blockIdx.x, blockIdx.y, blockIdx.z, p, dy, w,
                                            [=](int n, int c, int ih, int iw, float acc) {
                                              dx[((int64_t(n) * p.C + c) * p.H + ih) * p.W + iw] = acc;
                                            });
}

extern "C" __global__ void __launch_bounds__(GemmTileF32::THREADS)
    kiln_test_conv2d_bwd_weight(float* __restrict__ dw, const float* __restrict__ x, const float* __restrict__ dy,
                                Conv2dParams p) {
  const int Cg = p.C / p.G;
  conv2d_bwd_weight_tile<GemmTileF32, float>(blockIdx.x, blockIdx.y, blockIdx.z, p, x, dy,
                                             [=](int o, int ci, int kh, int kw, float acc) {
                                               dw[((int64_t(o) * Cg + ci) * p.KH + kh) * p.KW + kw] = acc;
                                             });
}

extern "C" __global__ void __launch_bounds__(GemmTileMma::THREADS)
    kiln_test_conv2d_bwd_weight_bf16(float* __restrict__ dw, const __nv_bfloat16* __restrict__ x,
                                     const __nv_bfloat16* __restrict__ dy, Conv2dParams p) {
  const int Cg = p.C / p.G;
  conv2d_bwd_weight_tile<GemmTileMma, __nv_bfloat16>(blockIdx.x, blockIdx.y, blockIdx.z, p, x, dy,
                                                     [=](int o, int ci, int kh, int kw, float acc) {
                                                       dw[((int64_t(o) * Cg + ci) * p.KH + kh) * p.KW + kw] = acc;
                                                     });
}
