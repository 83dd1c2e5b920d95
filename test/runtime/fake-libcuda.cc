// A stand-in for libcuda.so.1 that runs on the host, loaded through KILN_LIBCUDA by cuda-driver.test.ts.
// It lets CI, which has no GPU, check the addon's side of the driver API: symbol names, argument order,
// how launch parameters are laid out, and how failures are reported. Device memory is malloc'd host
// memory and the one "kernel", scale(float* x, float a, int64_t n), runs on the CPU.
#include <cstdint>
#include <cstdlib>
#include <cstring>

using CUresult = int;
constexpr CUresult kOutOfMemory = 2, kNotFound = 500, kInvalidValue = 1;
constexpr size_t kFreeBytes = 1 << 20;
static int g_shared_opt_in = 48 * 1024;

static void scale(void** params) {
  float* x = *static_cast<float**>(params[0]);
  const float a = *static_cast<float*>(params[1]);
  const int64_t n = *static_cast<int64_t*>(params[2]);
  for (int64_t i = 0; i < n; ++i) x[i] *= a;
}

extern "C" {
CUresult cuInit(unsigned) { return 0; }
CUresult cuGetErrorName(CUresult e, const char** s) {
  *s = e == kOutOfMemory ? "CUDA_ERROR_OUT_OF_MEMORY" : e == kNotFound ? "CUDA_ERROR_NOT_FOUND" : "CUDA_ERROR_INVALID_VALUE";
  return 0;
}
CUresult cuGetErrorString(CUresult e, const char** s) {
  *s = e == kOutOfMemory ? "out of memory" : e == kNotFound ? "named symbol not found" : "invalid argument";
  return 0;
}
CUresult cuDeviceGetCount(int* n) { *n = 1; return 0; }
CUresult cuDeviceGet(int* d, int ordinal) { *d = ordinal; return ordinal == 0 ? 0 : kInvalidValue; }
CUresult cuDeviceGetName(char* name, int len, int) { std::strncpy(name, "Fake GPU", len); return 0; }
CUresult cuDeviceGetAttribute(int* v, int attr, int) { *v = attr == 75 ? 9 : 0; return 0; }
CUresult cuDevicePrimaryCtxRetain(void** ctx, int) { *ctx = reinterpret_cast<void*>(0x1); return 0; }
CUresult cuCtxSetCurrent(void*) { return 0; }
CUresult cuMemGetInfo_v2(size_t* free, size_t* total) { *free = kFreeBytes; *total = 2 * kFreeBytes; return 0; }
CUresult cuMemAlloc_v2(uint64_t* p, size_t n) {
  if (n > kFreeBytes) return kOutOfMemory;
  *p = reinterpret_cast<uintptr_t>(std::calloc(1, n));
  return 0;
}
CUresult cuMemFree_v2(uint64_t p) { std::free(reinterpret_cast<void*>(p)); return 0; }
CUresult cuMemcpyHtoD_v2(uint64_t dst, const void* src, size_t n) { std::memcpy(reinterpret_cast<void*>(dst), src, n); return 0; }
CUresult cuMemcpyDtoH_v2(void* dst, uint64_t src, size_t n) { std::memcpy(dst, reinterpret_cast<void*>(src), n); return 0; }
CUresult cuModuleLoadData(void** m, const void*) { *m = reinterpret_cast<void*>(0x2); return 0; }
CUresult cuModuleUnload(void*) { return 0; }
CUresult cuModuleGetFunction(void** f, void*, const char* name) {
  if (std::strcmp(name, "scale") != 0) return kNotFound;
  *f = reinterpret_cast<void*>(&scale);
  return 0;
}
CUresult cuFuncSetAttribute(void*, int attr, int value) {
  if (attr == 8) g_shared_opt_in = value;
  return 0;
}
CUresult cuLaunchKernel(void* f, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned shared,
                        void*, void** params, void**) {
  if (shared > static_cast<unsigned>(g_shared_opt_in)) return kInvalidValue;  // as the real driver does
  reinterpret_cast<void (*)(void**)>(f)(params);
  return 0;
}
CUresult cuStreamCreate(void** s, unsigned) { *s = reinterpret_cast<void*>(0x3); return 0; }
CUresult cuStreamSynchronize(void*) { return 0; }
CUresult cuEventCreate(void** e, unsigned) { *e = std::malloc(1); return 0; }
CUresult cuEventDestroy_v2(void* e) { std::free(e); return 0; }
CUresult cuEventRecord(void*, void*) { return 0; }
CUresult cuEventSynchronize(void*) { return 0; }
CUresult cuEventElapsedTime(float* ms, void*, void*) { *ms = 0.25f; return 0; }
}
