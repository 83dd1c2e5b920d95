// The slice of the CUDA driver API that Kiln uses, resolved from libcuda.so.1 with dlopen at run time.
//
// Why not link libcuda: it ships with the NVIDIA driver, not with the toolkit, so linking it would make the
// addon fail to load on every machine without a GPU (CI, laptops) even for CPU-only work. Why not include
// cuda.h: the toolkit need not be installed where the addon is built. The types below are the driver's
// stable C ABI (handles are opaque pointers, CUdeviceptr is 64-bit since the _v2 entry points).
#pragma once

#include <cstddef>
#include <string>

namespace kiln::cuda {

using CUresult = int;
using CUdevice = int;
using CUdeviceptr = unsigned long long;
using CUcontext = struct CUctx_st*;
using CUmodule = struct CUmod_st*;
using CUfunction = struct CUfunc_st*;
using CUstream = struct CUstream_st*;
using CUevent = struct CUevent_st*;

constexpr CUresult CUDA_SUCCESS = 0;
constexpr int CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR = 75;
constexpr int CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR = 76;
constexpr int CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES = 8;
constexpr unsigned CU_STREAM_DEFAULT = 0;
constexpr unsigned CU_EVENT_DEFAULT = 0;

// Prototypes as the driver declares them. Only their types are used (decltype below); nothing here is
// defined or linked.
namespace proto {
CUresult cuInit(unsigned flags);
CUresult cuGetErrorName(CUresult error, const char** str);
CUresult cuGetErrorString(CUresult error, const char** str);
CUresult cuDeviceGetCount(int* count);
CUresult cuDeviceGet(CUdevice* device, int ordinal);
CUresult cuDeviceGetName(char* name, int len, CUdevice device);
CUresult cuDeviceGetAttribute(int* value, int attrib, CUdevice device);
CUresult cuDevicePrimaryCtxRetain(CUcontext* ctx, CUdevice device);
CUresult cuCtxSetCurrent(CUcontext ctx);
CUresult cuMemGetInfo_v2(size_t* free, size_t* total);
CUresult cuMemAlloc_v2(CUdeviceptr* dptr, size_t bytes);
CUresult cuMemFree_v2(CUdeviceptr dptr);
CUresult cuMemcpyHtoD_v2(CUdeviceptr dst, const void* src, size_t bytes);
CUresult cuMemcpyDtoH_v2(void* dst, CUdeviceptr src, size_t bytes);
CUresult cuModuleLoadData(CUmodule* module, const void* image);
CUresult cuModuleUnload(CUmodule module);
CUresult cuModuleGetFunction(CUfunction* fn, CUmodule module, const char* name);
CUresult cuFuncSetAttribute(CUfunction fn, int attrib, int value);
CUresult cuLaunchKernel(CUfunction f, unsigned gridX, unsigned gridY, unsigned gridZ, unsigned blockX,
                        unsigned blockY, unsigned blockZ, unsigned sharedMemBytes, CUstream stream,
                        void** kernelParams, void** extra);
CUresult cuStreamCreate(CUstream* stream, unsigned flags);
CUresult cuStreamSynchronize(CUstream stream);
CUresult cuEventCreate(CUevent* event, unsigned flags);
CUresult cuEventDestroy_v2(CUevent event);
CUresult cuEventRecord(CUevent event, CUstream stream);
CUresult cuEventSynchronize(CUevent event);
CUresult cuEventElapsedTime(float* ms, CUevent start, CUevent end);
}  // namespace proto

#define KILN_CUDA_DRIVER_FUNCTIONS(X)                                                                  \
  X(cuInit) X(cuGetErrorName) X(cuGetErrorString) X(cuDeviceGetCount) X(cuDeviceGet) X(cuDeviceGetName) \
  X(cuDeviceGetAttribute) X(cuDevicePrimaryCtxRetain) X(cuCtxSetCurrent) X(cuMemGetInfo_v2)            \
  X(cuMemAlloc_v2) X(cuMemFree_v2) X(cuMemcpyHtoD_v2) X(cuMemcpyDtoH_v2) X(cuModuleLoadData)           \
  X(cuModuleUnload) X(cuModuleGetFunction) X(cuFuncSetAttribute) X(cuLaunchKernel) X(cuStreamCreate)   \
  X(cuStreamSynchronize) X(cuEventCreate) X(cuEventDestroy_v2) X(cuEventRecord) X(cuEventSynchronize)  \
  X(cuEventElapsedTime)

// Entry points of the loaded driver. Every member is non-null once Driver() has returned ok().
struct DriverApi {
#define KILN_DECLARE(name) decltype(&proto::name) name = nullptr;
  KILN_CUDA_DRIVER_FUNCTIONS(KILN_DECLARE)
#undef KILN_DECLARE

  // Only in Kiln's CUDA emulator (kernels/cuda/emu): names the next launch's buffers for its memcheck.
  CUresult (*kilnEmuAnnotateLaunch)(const unsigned long long* ranges, const char* names, int n) = nullptr;
  CUresult (*kilnEmuConfigure)(const char* key, const char* value) = nullptr;

  bool ok() const { return error.empty(); }
  std::string error;  // why the driver is unusable; empty when it loaded
  std::string path;   // the library loaded
};

// The default driver: libcuda.so.1, or $KILN_LIBCUDA.
std::string DefaultDriverPath();

// Loads the driver library at `path` (once per process and path) and calls cuInit. Several drivers can be
// loaded side by side (the GPU's and Kiln's CUDA emulator). Never throws: on failure the returned table has
// ok() == false and error saying why.
const DriverApi& Driver(const std::string& path);
inline const DriverApi& Driver() { return Driver(DefaultDriverPath()); }

// "cuMemAlloc_v2 failed: CUDA_ERROR_OUT_OF_MEMORY (out of memory)".
std::string DescribeError(const DriverApi& api, const char* call, CUresult r);

// Throws std::runtime_error with DescribeError(api, call, r) unless r is CUDA_SUCCESS.
void Check(const DriverApi& api, CUresult r, const char* call);

}  // namespace kiln::cuda
