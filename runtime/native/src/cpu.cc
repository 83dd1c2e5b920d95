// CPU back end: load a g++-built shared object and call its entry points.
//
// Entry-point ABI (see runtime/README.md):
//   extern "C" int <symbol>(uint8_t* arena, const int64_t* args);
// `arena` is the base of the program's host arena; `args` points at the 8-byte slots of the BigInt64Array
// or Float64Array passed from JS (nullptr when none). Zero means success; anything else is an error code
// the kernel chose, surfaced as a JS Error with that `code`.
#include <dlfcn.h>

#include <string>
#include <unordered_map>

#include "common.h"

namespace kiln {
namespace {

using EntryPoint = int (*)(uint8_t* arena, const int64_t* args);

struct CpuLibrary {
  static constexpr napi_type_tag kTag = {0x6b696c6e63707531ULL, 0x9d2c5680a1b7e4f3ULL};
  static constexpr const char* kKind = "CPU library";

  void* handle = nullptr;
  std::string path;
  // dlsym walks hash tables; a training step calls the same few symbols thousands of times.
  std::unordered_map<std::string, EntryPoint> entries;

  ~CpuLibrary() { Close(); }
  void Close() {
    if (handle != nullptr) dlclose(handle);
    handle = nullptr;
    entries.clear();
  }
};

Napi::Value CpuLoad(const Napi::CallbackInfo& info) {
  const std::string path = StringOf(info[0], "cpuLoad(soPath)");
  // RTLD_NOW: an unresolved symbol fails here, with the library's name, rather than in the middle of a run.
  // RTLD_LOCAL: kernels from different programs may reuse names.
  void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (handle == nullptr) throw std::runtime_error(std::string("cpuLoad: ") + dlerror());
  auto* lib = new CpuLibrary;
  lib->handle = handle;
  lib->path = path;
  return WrapHandle(info.Env(), lib);
}

Napi::Value CpuHasSymbol(const Napi::CallbackInfo& info) {
  auto* lib = UnwrapHandle<CpuLibrary>(info[0], "cpuHasSymbol(handle)");
  const std::string symbol = StringOf(info[1], "cpuHasSymbol(symbol)");
  bool found = lib->handle != nullptr && dlsym(lib->handle, symbol.c_str()) != nullptr;
  return Napi::Boolean::New(info.Env(), found);
}

EntryPoint Resolve(CpuLibrary& lib, const std::string& symbol) {
  if (lib.handle == nullptr) throw std::runtime_error("cpuCall: " + lib.path + " has been closed");
  auto it = lib.entries.find(symbol);
  if (it != lib.entries.end()) return it->second;
  dlerror();  // clear any stale error so the one below belongs to this lookup
  void* sym = dlsym(lib.handle, symbol.c_str());
  if (sym == nullptr)
    throw std::runtime_error("cpuCall: no symbol '" + symbol + "' in " + lib.path +
                             " (is it declared extern \"C\"?)");
  auto fn = reinterpret_cast<EntryPoint>(sym);
  lib.entries.emplace(symbol, fn);
  return fn;
}

// cpuCall(handle, symbol, arena, args?) -> undefined
Napi::Value CpuCall(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto* lib = UnwrapHandle<CpuLibrary>(info[0], "cpuCall(handle)");
  const std::string symbol = StringOf(info[1], "cpuCall(symbol)");
  const Bytes arena = BytesOf(info[2], "cpuCall(arena)");

  const int64_t* args = nullptr;
  if (info.Length() > 3 && !info[3].IsUndefined() && !info[3].IsNull()) {
    const Bytes a = BytesOf(info[3], "cpuCall(args)");
    if (a.size % 8 != 0 || reinterpret_cast<uintptr_t>(a.data) % 8 != 0)
      throw Napi::TypeError::New(env, "cpuCall(args) must be 8-byte slots (BigInt64Array or Float64Array)");
    args = reinterpret_cast<const int64_t*>(a.data);
  }

  // Runs on the JS thread: kernels parallelise internally with OpenMP, and a synchronous call keeps the
  // arena from being touched by JS while the kernel runs.
  const int status = Resolve(*lib, symbol)(arena.data, args);
  if (status != 0) {
    auto err = Napi::Error::New(env, "kernel '" + symbol + "' in " + lib->path + " returned error code " +
                                         std::to_string(status));
    err.Set("code", Napi::Number::New(env, status));
    throw err;
  }
  return env.Undefined();
}

Napi::Value CpuClose(const Napi::CallbackInfo& info) {
  UnwrapHandle<CpuLibrary>(info[0], "cpuClose(handle)")->Close();
  return info.Env().Undefined();
}

}  // namespace

void InitCpu(Napi::Env env, Napi::Object exports) {
  exports.Set("cpuLoad", Napi::Function::New(env, CpuLoad, "cpuLoad"));
  exports.Set("cpuHasSymbol", Napi::Function::New(env, CpuHasSymbol, "cpuHasSymbol"));
  exports.Set("cpuCall", Napi::Function::New(env, CpuCall, "cpuCall"));
  exports.Set("cpuClose", Napi::Function::New(env, CpuClose, "cpuClose"));
}

}  // namespace kiln
