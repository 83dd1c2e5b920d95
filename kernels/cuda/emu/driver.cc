// The CUDA driver API (the slice runtime/native/src/cuda_driver.h resolves) on the CPU. Device memory is host
// memory between guard pages; a "module image" names a kernel library that runtime/cuda-emu.ts built with g++
// from the same CUDA source nvcc compiles; a launch runs synchronously on the calling thread (sched.cc). Errors
// found while a kernel runs (memcheck, racecheck, synccheck) fail that launch, and cuGetErrorString returns
// their full text.
#include <dlfcn.h>
#include <stdlib.h>
#include <link.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/sysinfo.h>
#include <unistd.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "runtime.h"

namespace kiln_emu {
namespace {

std::vector<Alloc> g_allocs;
std::vector<Buffer> g_buffers, g_nextBuffers;
std::string g_lastError;
int g_lastCode = 0;
bool g_init = false;
constexpr const char kImageMagic[] = "KILNEMU1\n";

size_t pageSize() {
  static const size_t p = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  return p;
}

const char* standardName(int r) {
  switch (r) {
    case kSuccess: return "CUDA_SUCCESS";
    case kInvalidValue: return "CUDA_ERROR_INVALID_VALUE";
    case kOutOfMemory: return "CUDA_ERROR_OUT_OF_MEMORY";
    case kNotInitialized: return "CUDA_ERROR_NOT_INITIALIZED";
    case kInvalidImage: return "CUDA_ERROR_INVALID_IMAGE";
    case kInvalidHandle: return "CUDA_ERROR_INVALID_HANDLE";
    case kNotFound: return "CUDA_ERROR_NOT_FOUND";
    case kIllegalAddress: return "CUDA_ERROR_ILLEGAL_ADDRESS";
    case kLaunchOutOfResources: return "CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES";
    case kMisalignedAddress: return "CUDA_ERROR_MISALIGNED_ADDRESS";
    case kLaunchFailed: return "CUDA_ERROR_LAUNCH_FAILED";
    default: return "CUDA_ERROR_UNKNOWN";
  }
}

const char* standardText(int r) {
  switch (r) {
    case kSuccess: return "no error";
    case kInvalidValue: return "invalid argument";
    case kOutOfMemory: return "out of memory";
    case kNotInitialized: return "initialization error";
    case kInvalidImage: return "device kernel image is invalid";
    case kInvalidHandle: return "invalid resource handle";
    case kNotFound: return "named symbol not found";
    case kIllegalAddress: return "an illegal memory access was encountered";
    case kLaunchOutOfResources: return "too many resources requested for launch";
    case kMisalignedAddress: return "misaligned address";
    case kLaunchFailed: return "unspecified launch failure";
    default: return "unknown error";
  }
}

int err(int code, const std::string& message) {
  setLastError(code, message);
  return code;
}

// The [lo, hi) range of the module's thread-local block in the calling thread (its static __shared__ data).
void findTls(Module& m) {
  auto probe = reinterpret_cast<void* (*)()>(dlsym(m.handle, "kiln_emu_module_tls"));
  if (probe == nullptr) return;
  probe();  // allocates the block for this thread
  void* block = nullptr;
  if (dlinfo(m.handle, RTLD_DI_TLS_DATA, &block) != 0 || block == nullptr) return;
  struct Q {
    std::string path;
    size_t size = 0;
  } q{m.path, 0};
  dl_iterate_phdr(
      [](struct dl_phdr_info* info, size_t, void* data) {
        auto* q = static_cast<Q*>(data);
        if (info->dlpi_name == nullptr || q->path != info->dlpi_name) return 0;
        for (int i = 0; i < info->dlpi_phnum; ++i)
          if (info->dlpi_phdr[i].p_type == PT_TLS) q->size = info->dlpi_phdr[i].p_memsz;
        return 1;
      },
      &q);
  m.tlsLo = reinterpret_cast<uintptr_t>(block);
  m.tlsHi = m.tlsLo + q.size;
}

}  // namespace

const std::vector<Alloc>& allocations() { return g_allocs; }
const std::vector<Buffer>& launchBuffers() { return g_buffers; }
unsigned char* dynamicSmem() { return &kiln::kiln_smem[0]; }
const std::string& lastError() { return g_lastError; }
void setLastError(int code, const std::string& message) {
  g_lastCode = code;
  g_lastError = message;
}

}  // namespace kiln_emu

using namespace kiln_emu;
using CUresult = int;

#define KILN_API extern "C" __attribute__((visibility("default")))

KILN_API CUresult cuInit(unsigned) {
  g_init = true;
  return kSuccess;
}
KILN_API CUresult cuGetErrorName(CUresult r, const char** s) {
  *s = standardName(r);
  return kSuccess;
}
KILN_API CUresult cuGetErrorString(CUresult r, const char** s) {
  *s = r == g_lastCode && !g_lastError.empty() ? g_lastError.c_str() : standardText(r);
  return kSuccess;
}
KILN_API CUresult cuDeviceGetCount(int* n) {
  *n = 1;
  return kSuccess;
}
KILN_API CUresult cuDeviceGet(int* d, int ordinal) {
  if (ordinal != 0) return err(kInvalidValue, "the CUDA emulator has one device (ordinal 0)");
  *d = 0;
  return kSuccess;
}
KILN_API CUresult cuDeviceGetName(char* name, int len, int) {
  strncpy(name, "Kiln CUDA emulator (CPU, sm_90)", static_cast<size_t>(len));
  return kSuccess;
}
KILN_API CUresult cuDeviceGetAttribute(int* v, int attr, int) {
  *v = attr == 75 ? 9 : attr == 76 ? 0 : 0;  // compute capability 9.0
  return kSuccess;
}
KILN_API CUresult cuDevicePrimaryCtxRetain(void** ctx, int) {
  *ctx = reinterpret_cast<void*>(0x1);
  return kSuccess;
}
KILN_API CUresult cuCtxSetCurrent(void*) { return kSuccess; }
KILN_API CUresult cuMemGetInfo_v2(size_t* free, size_t* total) {
  struct sysinfo si{};
  sysinfo(&si);
  *free = static_cast<size_t>(si.freeram) * si.mem_unit;
  *total = static_cast<size_t>(si.totalram) * si.mem_unit;
  return kSuccess;
}
KILN_API CUresult cuMemAlloc_v2(uint64_t* p, size_t n) {
  const size_t page = pageSize(), body = (n + page - 1) / page * page, bytes = body + 2 * page;
  void* map = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (map == MAP_FAILED) return err(kOutOfMemory, "the CUDA emulator could not map " + std::to_string(n) + " bytes");
  char* base = static_cast<char*>(map);
  mprotect(base, page, PROT_NONE);
  mprotect(base + page + body, page, PROT_NONE);
  // The allocation ends at the guard page, so reading one element past it faults even without checks.
  char* lo = base + page + (body - (n + 255) / 256 * 256);
  g_allocs.push_back(Alloc{reinterpret_cast<uintptr_t>(lo), reinterpret_cast<uintptr_t>(lo) + n, map, bytes});
  *p = reinterpret_cast<uintptr_t>(lo);
  return kSuccess;
}
KILN_API CUresult cuMemFree_v2(uint64_t p) {
  for (size_t i = 0; i < g_allocs.size(); ++i)
    if (g_allocs[i].lo == p) {
      munmap(g_allocs[i].map, g_allocs[i].mapBytes);
      g_allocs.erase(g_allocs.begin() + static_cast<long>(i));
      return kSuccess;
    }
  return err(kInvalidValue, "cuMemFree: not a device allocation");
}
static bool inAlloc(uint64_t p, size_t n) {
  for (const Alloc& a : g_allocs)
    if (p >= a.lo && p + n <= a.hi) return true;
  return false;
}
KILN_API CUresult cuMemcpyHtoD_v2(uint64_t dst, const void* src, size_t n) {
  if (!inAlloc(dst, n)) return err(kInvalidValue, "cuMemcpyHtoD: the destination range is not inside one device allocation");
  memcpy(reinterpret_cast<void*>(dst), src, n);
  return kSuccess;
}
KILN_API CUresult cuMemcpyDtoH_v2(void* dst, uint64_t src, size_t n) {
  if (!inAlloc(src, n)) return err(kInvalidValue, "cuMemcpyDtoH: the source range is not inside one device allocation");
  memcpy(dst, reinterpret_cast<void*>(src), n);
  return kSuccess;
}
KILN_API CUresult cuMemcpyDtoD_v2(uint64_t dst, uint64_t src, size_t n) {
  if (!inAlloc(dst, n) || !inAlloc(src, n)) return err(kInvalidValue, "cuMemcpyDtoD: a range is not inside one device allocation");
  memmove(reinterpret_cast<void*>(dst), reinterpret_cast<void*>(src), n);
  return kSuccess;
}
KILN_API CUresult cuMemcpyDtoDAsync_v2(uint64_t dst, uint64_t src, size_t n, void*) { return cuMemcpyDtoD_v2(dst, src, n); }

// The image is "KILNEMU1\n" followed by the path of the kernel library (NUL-terminated).
KILN_API CUresult cuModuleLoadData(void** out, const void* image) {
  const char* s = static_cast<const char*>(image);
  if (strncmp(s, kImageMagic, sizeof kImageMagic - 1) != 0)
    return err(kInvalidImage, "the CUDA emulator loads kernel libraries built by runtime/cuda-emu.ts, not cubins (no KILNEMU1 header)");
  auto* m = new Module;
  m->path = s + sizeof kImageMagic - 1;
  m->handle = dlopen(m->path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (m->handle == nullptr) {
    const std::string why = dlerror();
    delete m;
    return err(kInvalidImage, "dlopen of the emulated module failed: " + why);
  }
  m->kernels = static_cast<const KernelEntry*>(dlsym(m->handle, "kiln_emu_kernels"));
  if (m->kernels == nullptr) {
    dlclose(m->handle);
    delete m;
    return err(kInvalidImage, "the emulated module has no kiln_emu_kernels table");
  }
  findTls(*m);
  *out = m;
  return kSuccess;
}
KILN_API CUresult cuModuleUnload(void* h) {
  auto* m = static_cast<Module*>(h);
  dlclose(m->handle);
  delete m;
  return kSuccess;
}

KILN_API CUresult cuModuleGetFunction(void** f, void* h, const char* name) {
  auto* m = static_cast<Module*>(h);
  for (const KernelEntry* e = m->kernels; e->name != nullptr; ++e)
    if (strcmp(e->name, name) == 0) {
      *f = new Function{m, e, kDefaultSmemOptIn};
      return kSuccess;
    }
  return err(kNotFound, std::string("no kernel named '") + name + "' in the emulated module");
}
KILN_API CUresult cuFuncSetAttribute(void* f, int attr, int value) {
  if (attr == 8) {  // CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES
    if (value < 0 || static_cast<unsigned>(value) > kMaxSmem)
      return err(kInvalidValue, "dynamic shared memory of " + std::to_string(value) + " bytes exceeds sm_90's " + std::to_string(kMaxSmem));
    static_cast<Function*>(f)->smemOptIn = static_cast<unsigned>(value);
  }
  return kSuccess;
}
KILN_API CUresult cuLaunchKernel(void* f, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, unsigned bz, unsigned smem,
                                 void*, void** params, void**) {
  auto* fn = static_cast<Function*>(f);
  g_buffers.swap(g_nextBuffers);
  g_nextBuffers.clear();
  const std::string name = fn->entry->name;
  if (smem > fn->smemOptIn)
    return err(kInvalidValue, "launch of '" + name + "' asks for " + std::to_string(smem) + " bytes of dynamic shared memory above the " +
                                  std::to_string(fn->smemOptIn) + " the function allows (cuFuncSetAttribute first)");
  if (static_cast<uint64_t>(bx) * by * bz > static_cast<uint64_t>(kMaxThreads) || bx * by * bz == 0)
    return err(kInvalidValue, "launch of '" + name + "': a block of " + std::to_string(bx) + "x" + std::to_string(by) + "x" + std::to_string(bz) +
                                  " threads (at most 1024)");
  if (gx == 0 || gy == 0 || gz == 0 || gy > 65535 || gz > 65535) return err(kInvalidValue, "launch of '" + name + "': grid dimensions out of range");
  const LaunchConfig cfg{fn, params, dim3(gx, gy, gz), dim3(bx, by, bz), smem};
  const int r = runLaunch(cfg);
  g_buffers.clear();
  if (r == kSuccess) return kSuccess;
  return g_lastCode != 0 ? g_lastCode : kLaunchFailed;
}
KILN_API CUresult cuStreamCreate(void** s, unsigned) {
  *s = reinterpret_cast<void*>(0x3);
  return kSuccess;
}
KILN_API CUresult cuStreamSynchronize(void*) { return kSuccess; }
KILN_API CUresult cuEventCreate(void** e, unsigned) {
  *e = new double(0);
  return kSuccess;
}
KILN_API CUresult cuEventDestroy_v2(void* e) {
  delete static_cast<double*>(e);
  return kSuccess;
}
KILN_API CUresult cuEventRecord(void* e, void*) {
  *static_cast<double*>(e) = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now().time_since_epoch()).count();
  return kSuccess;
}
KILN_API CUresult cuEventSynchronize(void*) { return kSuccess; }
KILN_API CUresult cuEventElapsedTime(float* ms, void* a, void* b) {
  *ms = static_cast<float>(*static_cast<double*>(b) - *static_cast<double*>(a));
  return kSuccess;
}

// Emulator only: names the byte ranges of the next launch's buffers (pairs lo, hi; names separated by '\n'),
// so memcheck can bound every global access by its buffer and name it.
KILN_API CUresult kilnEmuAnnotateLaunch(const uint64_t* ranges, const char* names, int n) {
  g_nextBuffers.clear();
  const char* p = names;
  for (int i = 0; i < n; ++i) {
    const char* e = strchr(p, '\n');
    std::string name = e != nullptr ? std::string(p, e) : std::string(p);
    p = e != nullptr ? e + 1 : p + strlen(p);
    g_nextBuffers.push_back(Buffer{ranges[2 * i], ranges[2 * i + 1], name});
  }
  return kSuccess;
}

// ---- launches from a module's own host code (a generated kiln_run, through cudaLaunchKernel) ----
namespace {
struct HostModule {
  Module module;
  std::vector<std::unique_ptr<Function>> fns;
};
std::vector<std::unique_ptr<HostModule>> g_hostModules;

// The module whose kernel table this is (the library was loaded by dlopen, not cuModuleLoadData).
HostModule* hostModule(const KernelEntry* table) {
  for (auto& h : g_hostModules)
    if (h->module.kernels == table) return h.get();
  Dl_info info{};
  if (dladdr(table, &info) == 0 || info.dli_fname == nullptr) return nullptr;
  auto h = std::make_unique<HostModule>();
  h->module.path = info.dli_fname;
  h->module.handle = dlopen(info.dli_fname, RTLD_NOW | RTLD_NOLOAD);
  h->module.kernels = table;
  if (h->module.handle != nullptr) {
    findTls(h->module);
    dlclose(h->module.handle);  // RTLD_NOLOAD took a reference; the loader of the library keeps it open
  }
  g_hostModules.push_back(std::move(h));
  return g_hostModules.back().get();
}

Function* hostFunction(const KernelEntry* table, const void* fn) {
  HostModule* h = hostModule(table);
  if (h == nullptr) return nullptr;
  for (auto& f : h->fns)
    if (f->entry->fn == fn) return f.get();
  for (const KernelEntry* e = table; e->name != nullptr; ++e)
    if (e->fn == fn) {
      h->fns.push_back(std::make_unique<Function>(Function{&h->module, e, kDefaultSmemOptIn}));
      return h->fns.back().get();
    }
  return nullptr;
}
}  // namespace

KILN_API int kiln_emu_func_set_smem(const KernelEntry* table, const void* fn, int bytes) {
  Function* f = hostFunction(table, fn);
  if (f == nullptr) return err(kInvalidValue, "cudaFuncSetAttribute: not a kernel of this module");
  return cuFuncSetAttribute(f, 8, bytes);
}

namespace {
// A captured launch: the function, its configuration and its parameter slots (8 bytes each, copied at capture).
struct Recorded {
  Function* f;  // null for a copy
  unsigned g[3], b[3], smem;
  std::vector<uint64_t> slots;  // a copy: dst, src, bytes
};
struct Graph {
  std::vector<Recorded> launches;
};
Graph* g_capture = nullptr;
}  // namespace

KILN_API int kiln_emu_launch_host(const KernelEntry* table, const void* fn, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by,
                                  unsigned bz, unsigned smem, void** params) {
  Function* f = hostFunction(table, fn);
  if (f == nullptr) return err(kInvalidValue, "cudaLaunchKernel: not a kernel of this module");
  if (g_capture != nullptr) {
    Recorded r{f, {gx, gy, gz}, {bx, by, bz}, smem, std::vector<uint64_t>(static_cast<size_t>(f->entry->nparams))};
    for (int i = 0; i < f->entry->nparams; ++i) memcpy(&r.slots[static_cast<size_t>(i)], params[i], 8);
    g_capture->launches.push_back(std::move(r));
    return kSuccess;
  }
  return cuLaunchKernel(f, gx, gy, gz, bx, by, bz, smem, nullptr, params, nullptr);
}

KILN_API int kiln_emu_capture_begin(void) {
  if (g_capture != nullptr) return err(kInvalidValue, "cudaStreamBeginCapture: a capture is already in progress");
  g_capture = new Graph;
  return kSuccess;
}
KILN_API int kiln_emu_capture_end(void** graph) {
  if (g_capture == nullptr) return err(kInvalidValue, "cudaStreamEndCapture: no capture in progress");
  *graph = g_capture;
  g_capture = nullptr;
  return kSuccess;
}
KILN_API void* kiln_emu_graph_clone(const void* graph) { return new Graph(*static_cast<const Graph*>(graph)); }
KILN_API void kiln_emu_graph_destroy(void* graph) { delete static_cast<Graph*>(graph); }
KILN_API int kiln_emu_memcpy_host(void* dst, const void* src, size_t bytes) {
  if (g_capture != nullptr) {
    g_capture->launches.push_back(Recorded{nullptr, {0, 0, 0}, {0, 0, 0}, 0, {reinterpret_cast<uint64_t>(dst), reinterpret_cast<uint64_t>(src), bytes}});
    return kSuccess;
  }
  return cuMemcpyDtoD_v2(reinterpret_cast<uint64_t>(dst), reinterpret_cast<uint64_t>(src), bytes);
}

KILN_API int kiln_emu_graph_launch(const void* graph) {
  for (const Recorded& r : static_cast<const Graph*>(graph)->launches) {
    if (r.f == nullptr) {
      const int e = cuMemcpyDtoD_v2(r.slots[0], r.slots[1], r.slots[2]);
      if (e != kSuccess) return e;
      continue;
    }
    std::vector<void*> params(r.slots.size());
    for (size_t i = 0; i < r.slots.size(); ++i) params[i] = const_cast<uint64_t*>(&r.slots[i]);
    const int e = cuLaunchKernel(r.f, r.g[0], r.g[1], r.g[2], r.b[0], r.b[1], r.b[2], r.smem, nullptr, params.data(), nullptr);
    if (e != kSuccess) return e;
  }
  return kSuccess;
}

KILN_API const char* kiln_emu_error_string(int code) {
  const char* s = nullptr;
  cuGetErrorString(code, &s);
  return s;
}

// Emulator only: settings from the host program (the process environment may not reach a native library, e.g.
// under jest). KILN_EMU_SCHEDULE and KILN_EMU_CHECKS, with the same values as the variables.
KILN_API CUresult kilnEmuConfigure(const char* key, const char* value) {
  if (key == nullptr || value == nullptr) return err(kInvalidValue, "kilnEmuConfigure: null key or value");
  if (strcmp(key, "KILN_EMU_SCHEDULE") != 0 && strcmp(key, "KILN_EMU_CHECKS") != 0)
    return err(kInvalidValue, std::string("kilnEmuConfigure: unknown setting ") + key);
  setenv(key, value, 1);
  return kSuccess;
}
