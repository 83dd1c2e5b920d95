// NCCL, loaded at run time like the CUDA driver (libnccl.so.2 is not linked: the addon must load where there is
// no GPU). The communicator spans the MPI job: rank 0 makes the unique id and MPI broadcasts it. Reductions run
// on device buffers in the caller's stream, with no host copy. The types below are NCCL's stable C ABI.
#include <dlfcn.h>

#include <cstdlib>
#include <string>

#include "common.h"

namespace kiln {

void MpiBroadcastBytes(void* data, size_t bytes);
int CommRank();
int CommSize();

namespace {

using ncclResult_t = int;
using ncclComm_t = struct ncclComm*;
using cudaStream_t = struct CUstream_st*;
struct ncclUniqueId { char internal[128]; };
// ncclDataType_t and ncclRedOp_t values (nccl.h).
enum : int { ncclInt32 = 2, ncclFloat16 = 6, ncclFloat32 = 7, ncclFloat64 = 8, ncclBfloat16 = 9 };
enum : int { ncclSum = 0, ncclAvg = 4 };

struct Nccl {
  void* lib = nullptr;
  std::string reason;
  ncclResult_t (*GetVersion)(int*) = nullptr;
  ncclResult_t (*GetUniqueId)(ncclUniqueId*) = nullptr;
  ncclResult_t (*CommInitRank)(ncclComm_t*, int, ncclUniqueId, int) = nullptr;
  ncclResult_t (*AllReduce)(const void*, void*, size_t, int, int, ncclComm_t, cudaStream_t) = nullptr;
  ncclResult_t (*Broadcast)(const void*, void*, size_t, int, int, ncclComm_t, cudaStream_t) = nullptr;
  const char* (*GetErrorString)(ncclResult_t) = nullptr;
  ncclComm_t comm = nullptr;
};
Nccl g_nccl;

template <typename F>
bool Sym(F& f, const char* name) {
  f = reinterpret_cast<F>(dlsym(g_nccl.lib, name));
  if (f == nullptr) g_nccl.reason = std::string(name) + " not found in the NCCL library";
  return f != nullptr;
}

bool Load() {
  if (g_nccl.lib != nullptr) return g_nccl.reason.empty();
  const char* path = std::getenv("KILN_LIBNCCL");
  g_nccl.lib = dlopen(path != nullptr ? path : "libnccl.so.2", RTLD_NOW | RTLD_LOCAL);
  if (g_nccl.lib == nullptr) {
    const char* err = dlerror();
    g_nccl.reason = std::string("cannot load NCCL (") + (err != nullptr ? err : "?") + "); install libnccl2 or set KILN_LIBNCCL";
    g_nccl.lib = reinterpret_cast<void*>(1);  // remember the failure
    return false;
  }
  return Sym(g_nccl.GetVersion, "ncclGetVersion") && Sym(g_nccl.GetUniqueId, "ncclGetUniqueId") &&
         Sym(g_nccl.CommInitRank, "ncclCommInitRank") && Sym(g_nccl.AllReduce, "ncclAllReduce") &&
         Sym(g_nccl.Broadcast, "ncclBroadcast") && Sym(g_nccl.GetErrorString, "ncclGetErrorString");
}

void CheckNccl(ncclResult_t rc, const char* what) {
  if (rc != 0) throw std::runtime_error(std::string(what) + ": " + g_nccl.GetErrorString(rc));
}

int DtypeOf(const std::string& d) {
  if (d == "float32" || d == "f32") return ncclFloat32;
  if (d == "float64") return ncclFloat64;
  if (d == "bfloat16" || d == "bf16") return ncclBfloat16;
  if (d == "float16" || d == "f16") return ncclFloat16;
  if (d == "int32") return ncclInt32;
  throw std::invalid_argument("nccl: unsupported dtype '" + d + "'");
}

Napi::Value Available(const Napi::CallbackInfo& info) {
  Napi::Object o = Napi::Object::New(info.Env());
  const bool ok = Load();
  o.Set("ok", ok);
  o.Set("reason", ok ? "" : g_nccl.reason);
  int v = 0;
  if (ok) g_nccl.GetVersion(&v);
  o.Set("version", v);
  return o;
}

// ncclInit(): one communicator over the MPI job (commInit first; the CUDA context must be current: cudaInit).
Napi::Value Init(const Napi::CallbackInfo& info) {
  if (!Load()) throw std::runtime_error("ncclInit: " + g_nccl.reason);
  if (g_nccl.comm == nullptr) {
    ncclUniqueId id{};
    if (CommRank() == 0) CheckNccl(g_nccl.GetUniqueId(&id), "ncclGetUniqueId");
    MpiBroadcastBytes(&id, sizeof id);
    CheckNccl(g_nccl.CommInitRank(&g_nccl.comm, CommSize(), id, CommRank()), "ncclCommInitRank");
  }
  return info.Env().Undefined();
}

void* Ptr(const Napi::Value& v) { return reinterpret_cast<void*>(static_cast<uintptr_t>(SizeOf(v, "device pointer"))); }
cudaStream_t Stream(const Napi::Value& v) { return reinterpret_cast<cudaStream_t>(static_cast<uintptr_t>(SizeOf(v, "stream"))); }

// ncclAllReduce(dptr, count, dtype, 'sum' | 'mean', stream): in place, queued on the stream.
Napi::Value AllReduce(const Napi::CallbackInfo& info) {
  if (g_nccl.comm == nullptr) throw std::logic_error("ncclAllReduce: call ncclInit() first");
  void* p = Ptr(info[0]);
  const std::string op = StringOf(info[3], "ncclAllReduce(op)");
  if (op != "sum" && op != "mean") throw std::invalid_argument("ncclAllReduce: op must be 'sum' or 'mean'");
  CheckNccl(g_nccl.AllReduce(p, p, SizeOf(info[1], "count"), DtypeOf(StringOf(info[2], "dtype")), op == "sum" ? ncclSum : ncclAvg,
                             g_nccl.comm, Stream(info[4])),
            "ncclAllReduce");
  return info.Env().Undefined();
}

// ncclBroadcast(dptr, count, dtype, root, stream): in place.
Napi::Value Broadcast(const Napi::CallbackInfo& info) {
  if (g_nccl.comm == nullptr) throw std::logic_error("ncclBroadcast: call ncclInit() first");
  void* p = Ptr(info[0]);
  CheckNccl(g_nccl.Broadcast(p, p, SizeOf(info[1], "count"), DtypeOf(StringOf(info[2], "dtype")), info[3].As<Napi::Number>().Int32Value(),
                             g_nccl.comm, Stream(info[4])),
            "ncclBroadcast");
  return info.Env().Undefined();
}

}  // namespace

void InitNccl(Napi::Env env, Napi::Object exports) {
  exports.Set("ncclAvailable", Napi::Function::New(env, Available, "ncclAvailable"));
  exports.Set("ncclInit", Napi::Function::New(env, Init, "ncclInit"));
  exports.Set("ncclAllReduce", Napi::Function::New(env, AllReduce, "ncclAllReduce"));
  exports.Set("ncclBroadcast", Napi::Function::New(env, Broadcast, "ncclBroadcast"));
}

}  // namespace kiln
