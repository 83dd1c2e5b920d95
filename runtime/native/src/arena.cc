// Host arenas: one aligned block per compiled program. The memory planner assigns every tensor a byte
// offset in it; JS reads and writes through typed-array views on the returned ArrayBuffer and kernels get
// the base pointer, so nothing is copied between the two.
#include <cstdlib>
#include <cstring>

#include "common.h"

namespace kiln {
namespace {

// 64 bytes is a cache line and the widest vector load the CPU kernels issue (AVX-512 would need no more).
constexpr size_t kArenaAlign = 64;

Napi::Value AllocArena(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const uint64_t bytes = SizeOf(info[0], "allocArena(bytes)");
  // aligned_alloc wants a multiple of the alignment, and a zero-byte arena still needs a real pointer.
  const size_t padded = ((bytes + kArenaAlign - 1) / kArenaAlign) * kArenaAlign + (bytes == 0 ? kArenaAlign : 0);
  void* p = std::aligned_alloc(kArenaAlign, padded);
  if (p == nullptr)
    throw std::runtime_error("allocArena: cannot allocate " + std::to_string(bytes) + " bytes");
  // Zeroed so that accumulators and padding start from a known state and runs are reproducible.
  std::memset(p, 0, padded);

  // Tell V8 how much memory this small JS object holds, so that dropping arenas triggers collection.
  Napi::MemoryManagement::AdjustExternalMemory(env, static_cast<int64_t>(padded));
  return Napi::ArrayBuffer::New(
      env, p, static_cast<size_t>(bytes),
      [](Napi::Env env, void* data, size_t* padded) {
        std::free(data);
        Napi::MemoryManagement::AdjustExternalMemory(env, -static_cast<int64_t>(*padded));
        delete padded;
      },
      new size_t(padded));
}

}  // namespace

void InitArena(Napi::Env env, Napi::Object exports) {
  exports.Set("allocArena", Napi::Function::New(env, AllocArena, "allocArena"));
}

}  // namespace kiln
