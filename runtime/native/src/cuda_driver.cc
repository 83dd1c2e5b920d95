// Resolving the CUDA driver at run time. See cuda_driver.h for why it is not linked.
#include "cuda_driver.h"

#include <dlfcn.h>

#include <cstdlib>
#include <map>
#include <memory>
#include <mutex>
#include <stdexcept>

namespace kiln::cuda {
namespace {

// Takes the table explicitly because Load() needs it before Driver()'s static has been initialised.
std::string Describe(const DriverApi& api, const char* call, CUresult r) {
  const char* name = nullptr;
  const char* text = nullptr;
  // The error tables come from the driver itself; without it only the number is known.
  if (api.cuGetErrorName != nullptr) api.cuGetErrorName(r, &name);
  if (api.cuGetErrorString != nullptr) api.cuGetErrorString(r, &text);
  std::string out = std::string(call) + " failed: ";
  out += name != nullptr ? name : "CUresult " + std::to_string(r);
  if (text != nullptr) out += std::string(" (") + text + ")";
  return out;
}

DriverApi Load(const std::string& name) {
  DriverApi api;
  api.path = name;
  // RTLD_GLOBAL is unnecessary: nothing else resolves driver symbols through us.
  void* lib = dlopen(name.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (lib == nullptr) {
    api.error = name + " not found: no NVIDIA driver on this machine (dlopen: " + dlerror() + ")";
    return api;
  }

#define KILN_RESOLVE(fn)                                                                         \
  api.fn = reinterpret_cast<decltype(api.fn)>(dlsym(lib, #fn));                                  \
  if (api.fn == nullptr) {                                                                       \
    api.error = name + " has no " #fn ": the NVIDIA driver is too old for Kiln (needs CUDA 12+)"; \
    return api;                                                                                  \
  }
  KILN_CUDA_DRIVER_FUNCTIONS(KILN_RESOLVE)
#undef KILN_RESOLVE

  api.kilnEmuAnnotateLaunch = reinterpret_cast<decltype(api.kilnEmuAnnotateLaunch)>(dlsym(lib, "kilnEmuAnnotateLaunch"));
  api.kilnEmuConfigure = reinterpret_cast<decltype(api.kilnEmuConfigure)>(dlsym(lib, "kilnEmuConfigure"));
  // The library is never dlclose'd: the driver keeps threads and contexts alive for the process anyway.
  if (CUresult r = api.cuInit(0); r != CUDA_SUCCESS) {
    api.error = Describe(api, "cuInit", r) + " (is the GPU visible to this process?)";
    return api;
  }
  int count = 0;
  if (CUresult r = api.cuDeviceGetCount(&count); r != CUDA_SUCCESS) {
    api.error = Describe(api, "cuDeviceGetCount", r);
    return api;
  }
  if (count == 0) api.error = "the NVIDIA driver is loaded but reports no CUDA devices";
  return api;
}

}  // namespace

std::string DefaultDriverPath() {
  // KILN_LIBCUDA points at a driver outside the loader's search path (WSL keeps it in /usr/lib/wsl/lib).
  const char* env = std::getenv("KILN_LIBCUDA");
  return env != nullptr && *env != '\0' ? env : "libcuda.so.1";
}

const DriverApi& Driver(const std::string& path) {
  // Loaded on first use, once per path; entries are never removed, so references stay valid.
  static std::mutex mu;
  static std::map<std::string, std::unique_ptr<DriverApi>> loaded;
  std::lock_guard<std::mutex> lock(mu);
  auto& slot = loaded[path];
  if (!slot) slot = std::make_unique<DriverApi>(Load(path));
  return *slot;
}

std::string DescribeError(const DriverApi& api, const char* call, CUresult r) { return Describe(api, call, r); }

void Check(const DriverApi& api, CUresult r, const char* call) {
  if (r != CUDA_SUCCESS) throw std::runtime_error(DescribeError(api, call, r));
}

}  // namespace kiln::cuda
