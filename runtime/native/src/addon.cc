// Module entry point: each source file registers its own bindings.
#include "common.h"

namespace {

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  kiln::InitArena(env, exports);
  kiln::InitCpu(env, exports);
  kiln::InitCuda(env, exports);
  kiln::InitCollective(env, exports);
  kiln::InitNccl(env, exports);
  return exports;
}

}  // namespace

NODE_API_MODULE(kiln_native, Init)
