// Emulator driver for conv2d.cuh: forward, bwd_data and bwd_weight for f32 (SIMT tile) and bf16 (mma.sync), and
// bwd_data for f16. The kernels take the 16 shape ints as scalars and build Conv2dParams inside (the test
// harness passes one 8-byte slot per parameter, which a by-value struct does not fit).
#include "conv2d.cuh"
#include "once.cuh"

using namespace kiln;

#define KILN_CONV_ARGS                                                                                               \
  int N, int C, int H, int W, int O, int KH, int KW, int sh, int sw, int pt, int pb, int pl, int pr, int dh, int dw, \
      int G
#define KILN_CONV_PARAMS Conv2dParams{N, C, H, W, O, KH, KW, sh, sw, pt, pb, pl, pr, dh, dw, G}

template <class Cfg, class T>
__device__ void fwd(float* y, int* count, const T* x, const T* w, const Conv2dParams p) {
  const int Ho = p.Ho(), Wo = p.Wo();
  conv2d_fwd_tile<Cfg, T>(blockIdx.x, blockIdx.y, blockIdx.z, p, x, w, [=](int n, int o, int oh, int ow, float acc) {
    store_once(y, count, ((int64_t(n) * p.O + o) * Ho + oh) * Wo + ow, acc);
  });
}

template <class Cfg, class T>
__device__ void bwd_data(float* dx, int* count, const T* dy, const T* w, const Conv2dParams p) {
  conv2d_bwd_data_tile<Cfg, T>(blockIdx.x, blockIdx.y, blockIdx.z, p, dy, w, [=](int n, int c, int ih, int iw, float acc) {
    store_once(dx, count, ((int64_t(n) * p.C + c) * p.H + ih) * p.W + iw, acc);
  });
}

template <class Cfg, class T>
__device__ void bwd_weight(float* out, int* count, const T* x, const T* dy, const Conv2dParams p) {
  const int Cg = p.C / p.G;
  conv2d_bwd_weight_tile<Cfg, T>(blockIdx.x, blockIdx.y, blockIdx.z, p, x, dy, [=](int o, int ci, int kh, int kw, float acc) {
    store_once(out, count, ((int64_t(o) * Cg + ci) * p.KH + kh) * p.KW + kw, acc);
  });
}

extern "C" __global__ void __launch_bounds__(256) emu_conv_fwd_f32(float* y, int* count, const float* x, const float* w, KILN_CONV_ARGS) {
  fwd<GemmTileF32>(y, count, x, w, KILN_CONV_PARAMS);
}
extern "C" __global__ void __launch_bounds__(256) emu_conv_bwd_data_f32(float* dx, int* count, const float* dy, const float* w, KILN_CONV_ARGS) {
  bwd_data<GemmTileF32>(dx, count, dy, w, KILN_CONV_PARAMS);
}
extern "C" __global__ void __launch_bounds__(256) emu_conv_bwd_weight_f32(float* out, int* count, const float* x, const float* dy, KILN_CONV_ARGS) {
  bwd_weight<GemmTileF32>(out, count, x, dy, KILN_CONV_PARAMS);
}
extern "C" __global__ void __launch_bounds__(256) emu_conv_fwd_bf16(float* y, int* count, const __nv_bfloat16* x, const __nv_bfloat16* w,
                                                                   KILN_CONV_ARGS) {
  fwd<GemmTileMma>(y, count, x, w, KILN_CONV_PARAMS);
}
extern "C" __global__ void __launch_bounds__(256) emu_conv_bwd_data_bf16(float* dx, int* count, const __nv_bfloat16* dy,
                                                                        const __nv_bfloat16* w, KILN_CONV_ARGS) {
  bwd_data<GemmTileMma>(dx, count, dy, w, KILN_CONV_PARAMS);
}
extern "C" __global__ void __launch_bounds__(256) emu_conv_bwd_weight_bf16(float* out, int* count, const __nv_bfloat16* x,
                                                                          const __nv_bfloat16* dy, KILN_CONV_ARGS) {
  bwd_weight<GemmTileMma>(out, count, x, dy, KILN_CONV_PARAMS);
}
extern "C" __global__ void __launch_bounds__(256) emu_conv_bwd_data_f16(float* dx, int* count, const __half* dy, const __half* w, KILN_CONV_ARGS) {
  bwd_data<GemmTileMma>(dx, count, dy, w, KILN_CONV_PARAMS);
}
