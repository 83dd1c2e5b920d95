// The device side of Kiln's CUDA emulator: force-included (`g++ -include kiln_emu.h`) in front of the exact CUDA
// source that nvcc compiles, so that it builds as C++17 and runs on the CPU through libkiln_cuda_emu (a
// stand-in for libcuda.so.1, see runtime.h). The CUDA keywords become C++ (`__shared__` is `thread_local`:
// one copy per block, because a block's threads are fibers of one OS thread), the built-in variables read the
// running fiber's context, and every collective (barriers, warp shuffles and votes, mma.sync, ldmatrix) parks
// the calling fiber in the runtime until the threads it names have all arrived at the same call site.
#pragma once
#ifndef KILN_EMU
#define KILN_EMU 1
#endif

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmath>
#include <type_traits>
#include <utility>

// ---- keywords ----
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __noinline__ __attribute__((noinline))
#define __align__(n) __attribute__((aligned(n)))
#define __launch_bounds__(...)
#define __shared__ thread_local
#define __constant__ const
#define __managed__

// ---- vector types and built-in variables ----
struct uint3 { unsigned int x, y, z; };
struct dim3 {
  unsigned int x, y, z;
  constexpr dim3(unsigned int x_ = 1, unsigned int y_ = 1, unsigned int z_ = 1) : x(x_), y(y_), z(z_) {}
};
struct __attribute__((aligned(16))) float4 { float x, y, z, w; };
struct __attribute__((aligned(8))) float2 { float x, y; };
struct __attribute__((aligned(16))) int4 { int x, y, z, w; };
struct __attribute__((aligned(8))) int2 { int x, y; };
struct __attribute__((aligned(16))) uint4 { unsigned int x, y, z, w; };
struct __attribute__((aligned(8))) uint2 { unsigned int x, y; };
inline float4 make_float4(float x, float y, float z, float w) { return {x, y, z, w}; }
inline float2 make_float2(float x, float y) { return {x, y}; }
inline int4 make_int4(int x, int y, int z, int w) { return {x, y, z, w}; }
inline uint4 make_uint4(unsigned x, unsigned y, unsigned z, unsigned w) { return {x, y, z, w}; }

namespace kiln_emu {
// What a kernel sees of the thread running it (set by the runtime before each switch into a fiber).
struct ThreadCtx {
  uint3 tidx;
  uint3 bidx;
  dim3 bdim;
  dim3 gdim;
};
}  // namespace kiln_emu

extern "C" {
extern kiln_emu::ThreadCtx* kiln_emu_cur;

// Collectives and checks, implemented in libkiln_cuda_emu (runtime.h documents them).
void kiln_emu_syncthreads(const char* file, int line);
void kiln_emu_syncwarp(unsigned mask, const char* file, int line);
uint64_t kiln_emu_shfl(int kind, unsigned mask, uint64_t value, int lane_arg, int width, const char* file, int line);
unsigned kiln_emu_vote(int kind, unsigned mask, int pred, const char* file, int line);
void kiln_emu_mma(int kind, float* d, const uint32_t* a, const uint32_t* b, const float* c, const char* file, int line);
void kiln_emu_ldmatrix(int num, int trans, uint32_t* regs, const void* row_addr, const char* file, int line);
void kiln_emu_cp_async(void* dst, const void* src, int cp_size, int src_size, const char* file, int line);
void kiln_emu_cp_async_commit(void);
void kiln_emu_cp_async_wait(int n, const char* file, int line);
void kiln_emu_atomic_access(const void* addr, int size, int is_write, const char* file, int line);
unsigned kiln_emu_activemask(void);
long long kiln_emu_clock(void);
}

#ifndef KILN_EMU_RUNTIME  // the runtime's own sources see plain names
#define threadIdx (kiln_emu_cur->tidx)
#define blockIdx (kiln_emu_cur->bidx)
#define blockDim (kiln_emu_cur->bdim)
#define gridDim (kiln_emu_cur->gdim)
#endif
#define warpSize 32

#define KILN_EMU_SITE const char *kiln_file = __builtin_FILE(), int kiln_line = __builtin_LINE()

// ---- synchronisation ----
inline void __syncthreads(KILN_EMU_SITE) { kiln_emu_syncthreads(kiln_file, kiln_line); }
inline void __syncwarp(unsigned mask = 0xffffffffu, KILN_EMU_SITE) { kiln_emu_syncwarp(mask, kiln_file, kiln_line); }
inline void __threadfence(void) {}
inline void __threadfence_block(void) {}
inline unsigned __activemask(void) { return kiln_emu_activemask(); }
inline long long clock64(void) { return kiln_emu_clock(); }

// ---- warp shuffles (kind: 0 idx, 1 up, 2 down, 3 xor) and votes (0 ballot, 1 any, 2 all) ----
namespace kiln_emu {
template <class T> inline T shfl(int kind, unsigned mask, T v, int arg, int width, const char* f, int l) {
  static_assert(sizeof(T) <= 8 && std::is_trivially_copyable<T>::value, "shuffles move up to 8 bytes");
  uint64_t bits = 0;
  memcpy(&bits, &v, sizeof(T));
  bits = kiln_emu_shfl(kind, mask, bits, arg, width, f, l);
  T out;
  memcpy(&out, &bits, sizeof(T));
  return out;
}
}  // namespace kiln_emu
template <class T> inline T __shfl_sync(unsigned mask, T v, int src, int width = 32, KILN_EMU_SITE) {
  return kiln_emu::shfl(0, mask, v, src, width, kiln_file, kiln_line);
}
template <class T> inline T __shfl_up_sync(unsigned mask, T v, unsigned delta, int width = 32, KILN_EMU_SITE) {
  return kiln_emu::shfl(1, mask, v, static_cast<int>(delta), width, kiln_file, kiln_line);
}
template <class T> inline T __shfl_down_sync(unsigned mask, T v, unsigned delta, int width = 32, KILN_EMU_SITE) {
  return kiln_emu::shfl(2, mask, v, static_cast<int>(delta), width, kiln_file, kiln_line);
}
template <class T> inline T __shfl_xor_sync(unsigned mask, T v, int lane_mask, int width = 32, KILN_EMU_SITE) {
  return kiln_emu::shfl(3, mask, v, lane_mask, width, kiln_file, kiln_line);
}
inline unsigned __ballot_sync(unsigned mask, int pred, KILN_EMU_SITE) { return kiln_emu_vote(0, mask, pred, kiln_file, kiln_line); }
inline int __any_sync(unsigned mask, int pred, KILN_EMU_SITE) { return kiln_emu_vote(1, mask, pred, kiln_file, kiln_line) != 0; }
inline int __all_sync(unsigned mask, int pred, KILN_EMU_SITE) { return kiln_emu_vote(2, mask, pred, kiln_file, kiln_line) != 0; }

// ---- atomics: one fiber runs at a time, so a plain read-modify-write is atomic; the runtime records the
// access (memcheck, and racecheck treats atomics as ordered among themselves) ----
#ifdef KILN_EMU_CHECK
#define KILN_EMU_ATOMIC_ACCESS(p) kiln_emu_atomic_access((p), sizeof(*(p)), 1, kiln_file, kiln_line)
#else
#define KILN_EMU_ATOMIC_ACCESS(p) ((void)kiln_file, (void)kiln_line)
#endif
// no_sanitize: the checked build must not see the read-modify-write as two plain accesses.
#define KILN_EMU_NOCHECK __attribute__((no_sanitize("thread")))
#define KILN_EMU_ATOMIC(name, T, expr)                   \
  KILN_EMU_NOCHECK inline T name(T* p, T v, KILN_EMU_SITE) { \
    KILN_EMU_ATOMIC_ACCESS(p);                           \
    const T old = *p;                                    \
    *p = (expr);                                         \
    return old;                                          \
  }
KILN_EMU_ATOMIC(atomicAdd, float, old + v)
KILN_EMU_ATOMIC(atomicAdd, double, old + v)
KILN_EMU_ATOMIC(atomicAdd, int, old + v)
KILN_EMU_ATOMIC(atomicAdd, unsigned int, old + v)
KILN_EMU_ATOMIC(atomicAdd, unsigned long long, old + v)
KILN_EMU_ATOMIC(atomicMax, int, old > v ? old : v)
KILN_EMU_ATOMIC(atomicMin, int, old < v ? old : v)
KILN_EMU_ATOMIC(atomicMax, unsigned int, old > v ? old : v)
KILN_EMU_ATOMIC(atomicExch, int, v)
KILN_EMU_ATOMIC(atomicExch, float, v)
KILN_EMU_ATOMIC(atomicOr, unsigned int, old | v)
KILN_EMU_ATOMIC(atomicAnd, unsigned int, old & v)
#undef KILN_EMU_ATOMIC
KILN_EMU_NOCHECK inline int atomicCAS(int* p, int cmp, int v, KILN_EMU_SITE) {
  KILN_EMU_ATOMIC_ACCESS(p);
  const int old = *p;
  if (old == cmp) *p = v;
  return old;
}
KILN_EMU_NOCHECK inline unsigned int atomicCAS(unsigned int* p, unsigned int cmp, unsigned int v, KILN_EMU_SITE) {
  KILN_EMU_ATOMIC_ACCESS(p);
  const unsigned int old = *p;
  if (old == cmp) *p = v;
  return old;
}

// ---- cached / streaming loads and stores: plain accesses on the CPU. The checked build checks the vector's
// alignment explicitly (g++ may split a float4 load into four 4-byte loads, which the hooks would pass) ----
#ifdef KILN_EMU_CHECK
#define KILN_EMU_ALIGNED(p, w) kiln_emu_check_aligned((p), sizeof(*(p)), alignof(std::remove_pointer_t<decltype(p)>), (w), kiln_file, kiln_line)
#else
#define KILN_EMU_ALIGNED(p, w) ((void)kiln_file, (void)kiln_line)
#endif
extern "C" void kiln_emu_check_aligned(const void* p, int size, int align, int is_write, const char* file, int line);
template <class T> inline T __ldg(const T* p, KILN_EMU_SITE) { KILN_EMU_ALIGNED(p, 0); return *p; }
template <class T> inline T __ldcs(const T* p, KILN_EMU_SITE) { KILN_EMU_ALIGNED(p, 0); return *p; }
template <class T> inline T __ldcg(const T* p, KILN_EMU_SITE) { KILN_EMU_ALIGNED(p, 0); return *p; }
template <class T> inline T __ldca(const T* p, KILN_EMU_SITE) { KILN_EMU_ALIGNED(p, 0); return *p; }
template <class T> inline void __stcs(T* p, T v, KILN_EMU_SITE) { KILN_EMU_ALIGNED(p, 1); *p = v; }
template <class T> inline void __stcg(T* p, T v, KILN_EMU_SITE) { KILN_EMU_ALIGNED(p, 1); *p = v; }
template <class T> inline void __stwb(T* p, T v, KILN_EMU_SITE) { KILN_EMU_ALIGNED(p, 1); *p = v; }

// ---- device math: the fast intrinsics are the exact libm functions here (compare with tolerances) ----
inline float __expf(float x) { return expf(x); }
inline float __logf(float x) { return logf(x); }
inline float __log2f(float x) { return log2f(x); }
inline float __powf(float x, float y) { return powf(x, y); }
inline float __sinf(float x) { return sinf(x); }
inline float __cosf(float x) { return cosf(x); }
inline float __tanf(float x) { return tanf(x); }
inline float __fdividef(float x, float y) { return x / y; }
inline float __frcp_rn(float x) { return 1.0f / x; }
inline float __fsqrt_rn(float x) { return sqrtf(x); }
inline float __saturatef(float x) { return x != x ? 0.0f : x < 0.0f ? 0.0f : x > 1.0f ? 1.0f : x; }
inline float __fmaf_rn(float a, float b, float c) { return fmaf(a, b, c); }
inline float __fadd_rn(float a, float b) { return a + b; }
inline float __fmul_rn(float a, float b) { return a * b; }
inline float rsqrtf(float x) { return 1.0f / sqrtf(x); }
inline double rsqrt(double x) { return 1.0 / sqrt(x); }
inline float exp10f(float x) { return powf(10.0f, x); }
inline float __int_as_float(int i) { float f; memcpy(&f, &i, 4); return f; }
inline int __float_as_int(float f) { int i; memcpy(&i, &f, 4); return i; }
inline unsigned __float_as_uint(float f) { unsigned i; memcpy(&i, &f, 4); return i; }
inline float __uint_as_float(unsigned i) { float f; memcpy(&f, &i, 4); return f; }
inline int __popc(unsigned x) { return __builtin_popcount(x); }
inline int __popcll(unsigned long long x) { return __builtin_popcountll(x); }
inline int __clz(int x) { return x == 0 ? 32 : __builtin_clz(static_cast<unsigned>(x)); }
inline int __ffs(int x) { return __builtin_ffs(x); }
inline unsigned __brev(unsigned x) {
  x = ((x >> 1) & 0x55555555u) | ((x & 0x55555555u) << 1);
  x = ((x >> 2) & 0x33333333u) | ((x & 0x33333333u) << 2);
  x = ((x >> 4) & 0x0f0f0f0fu) | ((x & 0x0f0f0f0fu) << 4);
  x = ((x >> 8) & 0x00ff00ffu) | ((x & 0x00ff00ffu) << 8);
  return (x >> 16) | (x << 16);
}
// CUDA's device overloads of min/max for integers (and floats) in the global namespace.
inline int min(int a, int b) { return a < b ? a : b; }
inline int max(int a, int b) { return a > b ? a : b; }
inline unsigned min(unsigned a, unsigned b) { return a < b ? a : b; }
inline unsigned max(unsigned a, unsigned b) { return a > b ? a : b; }
inline long long min(long long a, long long b) { return a < b ? a : b; }
inline long long max(long long a, long long b) { return a > b ? a : b; }
inline long min(long a, long b) { return a < b ? a : b; }
inline long max(long a, long b) { return a > b ? a : b; }
inline unsigned long long min(unsigned long long a, unsigned long long b) { return a < b ? a : b; }
inline unsigned long long max(unsigned long long a, unsigned long long b) { return a > b ? a : b; }
inline float min(float a, float b) { return fminf(a, b); }
inline float max(float a, float b) { return fmaxf(a, b); }

// ---- kernel registration: the build appends one KILN_EMU_KERNEL(name) per kernel after the source, inside
// KILN_EMU_KERNELS_BEGIN / END; the runtime calls a kernel through its invoke() with the launch's parameter
// slots (each a pointer to the parameter's bytes, as cuLaunchKernel's kernelParams) ----
namespace kiln_emu {
using Invoke = void (*)(void* fn, void** params);
struct KernelEntry {
  const char* name;
  void* fn;
  Invoke invoke;
  int nparams;
};
template <class... A, size_t... I>
inline void invoke_with(void (*f)(A...), void** p, std::index_sequence<I...>) {
  f(*static_cast<std::remove_cv_t<std::remove_reference_t<A>>*>(p[I])...);
}
template <class... A> void invoke(void* fn, void** p) {
  invoke_with(reinterpret_cast<void (*)(A...)>(fn), p, std::index_sequence_for<A...>{});
}
template <class... A> constexpr KernelEntry entry(const char* name, void (*f)(A...)) {
  return {name, reinterpret_cast<void*>(f), &invoke<A...>, static_cast<int>(sizeof...(A))};
}
}  // namespace kiln_emu
// ---- the runtime API a generated host launcher uses (render/cuda-host.ts): launches go to the emulator ----
typedef struct CUstream_st* cudaStream_t;
enum cudaError_t { cudaSuccess = 0, cudaErrorInvalidValue = 1, cudaErrorLaunchFailure = 719 };
enum cudaFuncAttribute { cudaFuncAttributeMaxDynamicSharedMemorySize = 8 };
extern "C" {
extern const kiln_emu::KernelEntry kiln_emu_kernels[];
int kiln_emu_launch_host(const kiln_emu::KernelEntry* table, const void* fn, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by,
                         unsigned bz, unsigned smem, void** params);
int kiln_emu_func_set_smem(const kiln_emu::KernelEntry* table, const void* fn, int bytes);
const char* kiln_emu_error_string(int code);
}
inline cudaError_t cudaLaunchKernel(const void* fn, dim3 g, dim3 b, void** args, size_t smem, cudaStream_t) {
  return static_cast<cudaError_t>(kiln_emu_launch_host(kiln_emu_kernels, fn, g.x, g.y, g.z, b.x, b.y, b.z, static_cast<unsigned>(smem), args));
}
inline cudaError_t cudaFuncSetAttribute(const void* fn, cudaFuncAttribute attr, int value) {
  return attr == cudaFuncAttributeMaxDynamicSharedMemorySize ? static_cast<cudaError_t>(kiln_emu_func_set_smem(kiln_emu_kernels, fn, value)) : cudaSuccess;
}
inline const char* cudaGetErrorString(cudaError_t e) { return kiln_emu_error_string(e); }
enum cudaMemcpyKind { cudaMemcpyHostToHost = 0, cudaMemcpyHostToDevice = 1, cudaMemcpyDeviceToHost = 2, cudaMemcpyDeviceToDevice = 3, cudaMemcpyDefault = 4 };
extern "C" int kiln_emu_memcpy_host(void* dst, const void* src, size_t bytes);
inline cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t bytes, cudaMemcpyKind, cudaStream_t) {
  return static_cast<cudaError_t>(kiln_emu_memcpy_host(dst, src, bytes));
}
// Stream capture and graphs: the emulator records the captured launches (parameters copied, as CUDA does) and
// replays them on cudaGraphLaunch.
typedef struct KilnEmuGraph* cudaGraph_t;
typedef struct KilnEmuGraph* cudaGraphExec_t;
enum cudaStreamCaptureMode { cudaStreamCaptureModeGlobal = 0, cudaStreamCaptureModeThreadLocal = 1, cudaStreamCaptureModeRelaxed = 2 };
extern "C" {
int kiln_emu_capture_begin(void);
int kiln_emu_capture_end(void** graph);
void* kiln_emu_graph_clone(const void* graph);
void kiln_emu_graph_destroy(void* graph);
int kiln_emu_graph_launch(const void* graph);
}
inline cudaError_t cudaStreamBeginCapture(cudaStream_t, cudaStreamCaptureMode) { return static_cast<cudaError_t>(kiln_emu_capture_begin()); }
inline cudaError_t cudaStreamEndCapture(cudaStream_t, cudaGraph_t* g) { return static_cast<cudaError_t>(kiln_emu_capture_end(reinterpret_cast<void**>(g))); }
inline cudaError_t cudaGraphInstantiate(cudaGraphExec_t* e, cudaGraph_t g, unsigned long long) {
  *e = static_cast<cudaGraphExec_t>(kiln_emu_graph_clone(g));
  return cudaSuccess;
}
inline cudaError_t cudaGraphDestroy(cudaGraph_t g) { kiln_emu_graph_destroy(g); return cudaSuccess; }
inline cudaError_t cudaGraphExecDestroy(cudaGraphExec_t g) { kiln_emu_graph_destroy(g); return cudaSuccess; }
inline cudaError_t cudaGraphLaunch(cudaGraphExec_t g, cudaStream_t) { return static_cast<cudaError_t>(kiln_emu_graph_launch(g)); }

#define KILN_EMU_KERNELS_BEGIN extern "C" __attribute__((visibility("default"))) const kiln_emu::KernelEntry kiln_emu_kernels[] = {
#define KILN_EMU_KERNEL(name) kiln_emu::entry(#name, &name),
#define KILN_EMU_KERNELS_END                                                                                    \
  {nullptr, nullptr, nullptr, 0}};                                                                              \
  /* Touching the module's thread-local storage makes the loader allocate it (its static __shared__ data), */ \
  /* so the runtime can find that range for its checks. */                                                     \
  static thread_local char kiln_emu_tls_probe;                                                                  \
  extern "C" __attribute__((visibility("default"))) void* kiln_emu_module_tls(void) { return &kiln_emu_tls_probe; }
