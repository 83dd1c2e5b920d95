// CUDA back end bindings: one device, its primary context and one stream per process.
//
// Device pointers cross into JS as bigints. Modules, functions and events are type-tagged handles.
// All calls come from the JS thread, which is the thread the context is made current on.
#include <array>
#include <map>
#include <memory>
#include <vector>

#include "common.h"
#include "cuda_driver.h"

namespace kiln {
namespace {

using namespace cuda;

struct Session {
  static constexpr napi_type_tag kTag = {0x6b696c6e63757373ULL, 0x2d7e4b1a9c3f6058ULL};
  static constexpr const char* kKind = "CUDA session";
  const DriverApi* api = nullptr;
  int ordinal = -1;
  CUdevice device = 0;
  CUcontext context = nullptr;
  // A blocking stream (CU_STREAM_DEFAULT), on purpose: the synchronous cuMemcpy calls run on the legacy
  // default stream, which then waits for kernels already queued here, so an upload can never overwrite a
  // buffer that a running kernel still reads, nor a download read one it is still writing.
  CUstream stream = nullptr;
};

// One session per driver library (the GPU's libcuda, Kiln's CUDA emulator), each on one device, for the life
// of the process. JS holds non-owning handles to them.
std::map<std::string, std::unique_ptr<Session>> g_sessions;

const DriverApi& Api(const std::string& path) {
  const DriverApi& api = Driver(path);
  if (!api.ok()) throw std::runtime_error("CUDA is unavailable: " + api.error);
  return api;
}

Napi::Value WrapSession(Napi::Env env, Session* s) {
  auto ext = Napi::External<Session>::New(env, s);  // sessions are never freed: no finalizer
  ext.TypeTag(&Session::kTag);
  return ext;
}

Session& SessionOf(const Napi::Value& v) { return *UnwrapHandle<Session>(v, "session"); }

// Shared by a module handle and the function handles taken from it, so that launching a function whose
// module was unloaded is a clear error instead of a use-after-free in the driver.
struct LoadedModule {
  Session* session = nullptr;
  CUmodule module = nullptr;
};

struct CudaModule {
  static constexpr napi_type_tag kTag = {0x6b696c6e63756d6fULL, 0x41c09e7d2b5f8a13ULL};
  static constexpr const char* kKind = "CUDA module";
  std::shared_ptr<LoadedModule> loaded;
};

struct CudaFunction {
  static constexpr napi_type_tag kTag = {0x6b696c6e63756675ULL, 0x5e8d3b1f7c2a9064ULL};
  static constexpr const char* kKind = "CUDA function";
  std::shared_ptr<LoadedModule> loaded;
  CUfunction function = nullptr;
  std::string name;
  // Dynamic shared memory above 48 KiB needs an explicit opt-in per function; remember the granted size.
  unsigned sharedOptIn = 48 * 1024;
};

struct CudaEvent {
  static constexpr napi_type_tag kTag = {0x6b696c6e63756576ULL, 0x0f3a6d92c4e1b857ULL};
  static constexpr const char* kKind = "CUDA event";
  Session* session = nullptr;
  CUevent event = nullptr;
  ~CudaEvent() {
    if (event != nullptr) session->api->cuEventDestroy_v2(event);
  }
};

CUdeviceptr DevicePtr(const Napi::Value& v, const char* what) {
  if (!v.IsBigInt()) throw std::invalid_argument(std::string(what) + " must be a bigint device pointer");
  return SizeOf(v, what);
}

std::string DriverPathArg(const Napi::CallbackInfo& info, size_t i) {
  return info.Length() > i && info[i].IsString() ? info[i].As<Napi::String>().Utf8Value() : DefaultDriverPath();
}

// cudaAvailable(driverPath?) -> { ok, reason }
Napi::Value CudaAvailable(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const DriverApi& api = Driver(DriverPathArg(info, 0));
  auto out = Napi::Object::New(env);
  out.Set("ok", Napi::Boolean::New(env, api.ok()));
  out.Set("reason", Napi::String::New(env, api.ok() ? "" : api.error));
  return out;
}

Napi::Value MemInfo(Napi::Env env, const Session& s) {
  size_t free = 0, total = 0;
  Check(*s.api, s.api->cuMemGetInfo_v2(&free, &total), "cuMemGetInfo_v2");
  auto out = Napi::Object::New(env);
  out.Set("freeBytes", Napi::Number::New(env, static_cast<double>(free)));
  out.Set("totalBytes", Napi::Number::New(env, static_cast<double>(total)));
  return out;
}

// cudaInit(ordinal = 0, driverPath?) -> { session, name, computeCapability: [major, minor], freeBytes, totalBytes }
Napi::Value CudaInit(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const std::string path = DriverPathArg(info, 1);
  const DriverApi& api = Api(path);
  const int ordinal = info.Length() > 0 && !info[0].IsUndefined() ? static_cast<int>(SizeOf(info[0], "ordinal")) : 0;
  auto& slot = g_sessions[path];
  if (slot && slot->ordinal != ordinal)
    throw std::runtime_error("cudaInit: already initialised on device " + std::to_string(slot->ordinal) +
                             "; one device per process");
  if (!slot) {
    auto s = std::make_unique<Session>();
    s->api = &api;
    Check(api, api.cuDeviceGet(&s->device, ordinal), "cuDeviceGet");
    // The primary context is the one the CUDA runtime and other libraries share, so tools (Nsight, a
    // PyTorch process in the same address space) see one context, not two.
    Check(api, api.cuDevicePrimaryCtxRetain(&s->context, s->device), "cuDevicePrimaryCtxRetain");
    Check(api, api.cuCtxSetCurrent(s->context), "cuCtxSetCurrent");
    Check(api, api.cuStreamCreate(&s->stream, CU_STREAM_DEFAULT), "cuStreamCreate");
    s->ordinal = ordinal;
    slot = std::move(s);
  }
  Session& s = *slot;
  // Two drivers may be in use in one process: make this one's context current before each call that needs it.
  Check(api, api.cuCtxSetCurrent(s.context), "cuCtxSetCurrent");

  char name[256] = {0};
  Check(api, api.cuDeviceGetName(name, sizeof name - 1, s.device), "cuDeviceGetName");
  int major = 0, minor = 0;
  Check(api, api.cuDeviceGetAttribute(&major, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, s.device), "cuDeviceGetAttribute");
  Check(api, api.cuDeviceGetAttribute(&minor, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, s.device), "cuDeviceGetAttribute");
  auto out = MemInfo(env, s).As<Napi::Object>();
  out.Set("session", WrapSession(env, &s));
  out.Set("name", Napi::String::New(env, name));
  out.Set("driver", Napi::String::New(env, path));
  auto cc = Napi::Array::New(env, 2);
  cc.Set(0u, Napi::Number::New(env, major));
  cc.Set(1u, Napi::Number::New(env, minor));
  out.Set("computeCapability", cc);
  return out;
}

Napi::Value CudaMemInfo(const Napi::CallbackInfo& info) { return MemInfo(info.Env(), SessionOf(info[0])); }

Napi::Value CudaMalloc(const Napi::CallbackInfo& info) {
  Session& s = SessionOf(info[0]);
  const DriverApi& api = *s.api;
  const uint64_t bytes = SizeOf(info[1], "cudaMalloc(bytes)");
  CUdeviceptr p = 0;
  if (CUresult r = api.cuMemAlloc_v2(&p, bytes); r != CUDA_SUCCESS) {
    // Out-of-memory reports are only actionable with the numbers next to them.
    std::string msg = DescribeError(api, "cuMemAlloc_v2", r) + ": requested " + std::to_string(bytes) + " bytes";
    size_t free = 0, total = 0;
    if (api.cuMemGetInfo_v2(&free, &total) == CUDA_SUCCESS)
      msg += "; the device has " + std::to_string(free) + " bytes free of " + std::to_string(total);
    throw std::runtime_error(msg);
  }
  return Napi::BigInt::New(info.Env(), static_cast<uint64_t>(p));
}

Napi::Value CudaFree(const Napi::CallbackInfo& info) {
  Session& s = SessionOf(info[0]);
  Check(*s.api, s.api->cuMemFree_v2(DevicePtr(info[1], "cudaFree(dptr)")), "cuMemFree_v2");
  return info.Env().Undefined();
}

// cudaMemcpyHtoD(session, dptr, byteOffset, src): copies all of src to dptr + byteOffset.
Napi::Value CudaMemcpyHtoD(const Napi::CallbackInfo& info) {
  Session& s = SessionOf(info[0]);
  const CUdeviceptr dst = DevicePtr(info[1], "cudaMemcpyHtoD(dptr)") + SizeOf(info[2], "cudaMemcpyHtoD(byteOffset)");
  const Bytes src = BytesOf(info[3], "cudaMemcpyHtoD(src)");
  Check(*s.api, s.api->cuMemcpyHtoD_v2(dst, src.data, src.size), "cuMemcpyHtoD_v2");
  return info.Env().Undefined();
}

// cudaMemcpyDtoH(session, dst, dptr, byteOffset): fills all of dst from dptr + byteOffset.
Napi::Value CudaMemcpyDtoH(const Napi::CallbackInfo& info) {
  Session& s = SessionOf(info[0]);
  const Bytes dst = BytesOf(info[1], "cudaMemcpyDtoH(dst)");
  const CUdeviceptr src = DevicePtr(info[2], "cudaMemcpyDtoH(dptr)") + SizeOf(info[3], "cudaMemcpyDtoH(byteOffset)");
  Check(*s.api, s.api->cuMemcpyDtoH_v2(dst.data, src, dst.size), "cuMemcpyDtoH_v2");
  return info.Env().Undefined();
}

// cudaLoadModule(session, image: Buffer) -> module. The driver copies the image, so the Buffer may be dropped.
Napi::Value CudaLoadModule(const Napi::CallbackInfo& info) {
  Session& s = SessionOf(info[0]);
  const Bytes image = BytesOf(info[1], "cudaLoadModule(cubin)");
  auto* m = new CudaModule{std::make_shared<LoadedModule>()};
  m->loaded->session = &s;
  if (CUresult r = s.api->cuModuleLoadData(&m->loaded->module, image.data); r != CUDA_SUCCESS) {
    delete m;
    Check(*s.api, r, "cuModuleLoadData");
  }
  return WrapHandle(info.Env(), m);
}

Napi::Value CudaUnloadModule(const Napi::CallbackInfo& info) {
  auto* m = UnwrapHandle<CudaModule>(info[0], "cudaUnloadModule(module)");
  const DriverApi& api = *m->loaded->session->api;
  if (m->loaded->module != nullptr) Check(api, api.cuModuleUnload(m->loaded->module), "cuModuleUnload");
  m->loaded->module = nullptr;
  return info.Env().Undefined();
}

Napi::Value CudaGetFunction(const Napi::CallbackInfo& info) {
  auto* m = UnwrapHandle<CudaModule>(info[0], "cudaGetFunction(module)");
  const DriverApi& api = *m->loaded->session->api;
  const std::string name = StringOf(info[1], "cudaGetFunction(name)");
  if (m->loaded->module == nullptr) throw std::runtime_error("cudaGetFunction: the module was unloaded");
  CUfunction fn = nullptr;
  if (CUresult r = api.cuModuleGetFunction(&fn, m->loaded->module, name.c_str()); r != CUDA_SUCCESS)
    throw std::runtime_error(DescribeError(api, "cuModuleGetFunction", r) + " for '" + name +
                             "' (is the kernel extern \"C\"?)");
  return WrapHandle(info.Env(), new CudaFunction{m->loaded, fn, name});
}

std::array<unsigned, 3> Dim3(const Napi::Value& v, const char* what) {
  if (!v.IsArray() || v.As<Napi::Array>().Length() != 3)
    throw std::invalid_argument(std::string(what) + " must be [x, y, z]");
  auto a = v.As<Napi::Array>();
  std::array<unsigned, 3> d{};
  for (uint32_t i = 0; i < 3; ++i) {
    uint64_t n = SizeOf(a.Get(i), what);
    if (n == 0 || n > 0xffffffffULL) throw std::invalid_argument(std::string(what) + " entries must be in [1, 2^32)");
    d[i] = static_cast<unsigned>(n);
  }
  return d;
}

// cudaLaunch(fn, grid, block, sharedBytes, params: BigInt64Array). Each kernel parameter is one 8-byte slot;
// the driver copies as many bytes as the parameter's declared size, so a 4-byte int or float parameter
// reads the low half of its slot (little-endian).
Napi::Value CudaLaunch(const Napi::CallbackInfo& info) {
  auto* f = UnwrapHandle<CudaFunction>(info[0], "cudaLaunch(fn)");
  Session& s = *f->loaded->session;
  const DriverApi& api = *s.api;
  const auto grid = Dim3(info[1], "cudaLaunch(grid)");
  const auto block = Dim3(info[2], "cudaLaunch(block)");
  const uint64_t shared = SizeOf(info[3], "cudaLaunch(sharedBytes)");
  if (f->loaded->module == nullptr) throw std::runtime_error("cudaLaunch: the module of '" + f->name + "' was unloaded");

  std::vector<void*> params;
  if (info.Length() > 4 && !info[4].IsUndefined()) {
    const Bytes p = BytesOf(info[4], "cudaLaunch(params)");
    if (p.size % 8 != 0) throw std::invalid_argument("cudaLaunch(params) must be 8-byte slots (a BigInt64Array)");
    for (size_t off = 0; off < p.size; off += 8) params.push_back(p.data + off);
  }

  if (shared > f->sharedOptIn) {
    Check(api, api.cuFuncSetAttribute(f->function, CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, static_cast<int>(shared)),
          "cuFuncSetAttribute(MAX_DYNAMIC_SHARED_SIZE_BYTES)");
    f->sharedOptIn = static_cast<unsigned>(shared);
  }
  // Parameter values are copied at launch, so pointing into the JS array is safe past this call.
  if (CUresult r = api.cuLaunchKernel(f->function, grid[0], grid[1], grid[2], block[0], block[1], block[2],
                                      static_cast<unsigned>(shared), s.stream, params.data(), nullptr);
      r != CUDA_SUCCESS)
    throw std::runtime_error(DescribeError(api, "cuLaunchKernel", r) + " for '" + f->name + "'");
  return info.Env().Undefined();
}

// Waits for everything queued on the stream. Faults inside kernels surface here, asynchronously.
Napi::Value CudaSynchronize(const Napi::CallbackInfo& info) {
  Session& s = SessionOf(info[0]);
  Check(*s.api, s.api->cuStreamSynchronize(s.stream), "cuStreamSynchronize");
  return info.Env().Undefined();
}

// cudaEmuAnnotate(session, ranges: BigUint64Array [lo, hi, ...], names: string ('\n'-separated)): the CUDA
// emulator's memcheck bounds the next launch's accesses by these buffers. A no-op on a real driver.
Napi::Value CudaEmuAnnotate(const Napi::CallbackInfo& info) {
  Session& s = SessionOf(info[0]);
  if (s.api->kilnEmuAnnotateLaunch == nullptr) return Napi::Boolean::New(info.Env(), false);
  const Bytes ranges = BytesOf(info[1], "cudaEmuAnnotate(ranges)");
  const std::string names = StringOf(info[2], "cudaEmuAnnotate(names)");
  Check(*s.api, s.api->kilnEmuAnnotateLaunch(reinterpret_cast<const unsigned long long*>(ranges.data), names.c_str(),
                                             static_cast<int>(ranges.size / 16)), "kilnEmuAnnotateLaunch");
  return Napi::Boolean::New(info.Env(), true);
}

// cudaEmuConfigure(session, key, value): a setting of Kiln's CUDA emulator (KILN_EMU_SCHEDULE, KILN_EMU_CHECKS);
// false on a real driver.
Napi::Value CudaEmuConfigure(const Napi::CallbackInfo& info) {
  Session& s = SessionOf(info[0]);
  if (s.api->kilnEmuConfigure == nullptr) return Napi::Boolean::New(info.Env(), false);
  const std::string key = StringOf(info[1], "cudaEmuConfigure(key)"), value = StringOf(info[2], "cudaEmuConfigure(value)");
  Check(*s.api, s.api->kilnEmuConfigure(key.c_str(), value.c_str()), "kilnEmuConfigure");
  return Napi::Boolean::New(info.Env(), true);
}

// cudaStream(session) -> the launch stream as a bigint (for a generated host launcher's cudaLaunchKernel calls).
Napi::Value CudaStream(const Napi::CallbackInfo& info) {
  Session& s = SessionOf(info[0]);
  return Napi::BigInt::New(info.Env(), static_cast<uint64_t>(reinterpret_cast<uintptr_t>(s.stream)));
}

Napi::Value CudaEventCreate(const Napi::CallbackInfo& info) {
  Session& s = SessionOf(info[0]);
  auto* e = new CudaEvent;
  e->session = &s;
  if (CUresult r = s.api->cuEventCreate(&e->event, CU_EVENT_DEFAULT); r != CUDA_SUCCESS) {
    e->event = nullptr;
    delete e;
    Check(*s.api, r, "cuEventCreate");
  }
  return WrapHandle(info.Env(), e);
}

Napi::Value CudaEventRecord(const Napi::CallbackInfo& info) {
  auto* e = UnwrapHandle<CudaEvent>(info[0], "cudaEventRecord(event)");
  Check(*e->session->api, e->session->api->cuEventRecord(e->event, e->session->stream), "cuEventRecord");
  return info.Env().Undefined();
}

// cudaEventElapsed(start, end) -> milliseconds between the two recorded events; waits for `end`.
Napi::Value CudaEventElapsed(const Napi::CallbackInfo& info) {
  auto* start = UnwrapHandle<CudaEvent>(info[0], "cudaEventElapsed(start)");
  auto* end = UnwrapHandle<CudaEvent>(info[1], "cudaEventElapsed(end)");
  const DriverApi& api = *end->session->api;
  Check(api, api.cuEventSynchronize(end->event), "cuEventSynchronize");
  float ms = 0;
  Check(api, api.cuEventElapsedTime(&ms, start->event, end->event), "cuEventElapsedTime");
  return Napi::Number::New(info.Env(), ms);
}

}  // namespace

void InitCuda(Napi::Env env, Napi::Object exports) {
  const std::pair<const char*, Napi::Function::Callback> fns[] = {
      {"cudaAvailable", CudaAvailable},     {"cudaInit", CudaInit},
      {"cudaMemInfo", CudaMemInfo},         {"cudaMalloc", CudaMalloc},
      {"cudaFree", CudaFree},               {"cudaMemcpyHtoD", CudaMemcpyHtoD},
      {"cudaMemcpyDtoH", CudaMemcpyDtoH},   {"cudaLoadModule", CudaLoadModule},
      {"cudaUnloadModule", CudaUnloadModule}, {"cudaGetFunction", CudaGetFunction},
      {"cudaLaunch", CudaLaunch},           {"cudaSynchronize", CudaSynchronize},
      {"cudaEventCreate", CudaEventCreate}, {"cudaEventRecord", CudaEventRecord},
      {"cudaEventElapsed", CudaEventElapsed}, {"cudaEmuAnnotate", CudaEmuAnnotate}, {"cudaStream", CudaStream}, {"cudaEmuConfigure", CudaEmuConfigure},
  };
  for (const auto& [name, fn] : fns) exports.Set(name, Napi::Function::New(env, fn, name));
}

}  // namespace kiln
