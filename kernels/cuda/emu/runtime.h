// libkiln_cuda_emu: a stand-in for libcuda.so.1 that runs Kiln's CUDA on the CPU (KILN_LIBCUDA points the addon
// at it; runtime/cuda-emu.ts builds it). Internal header shared by its three files:
//   driver.cc  the driver API the addon calls (memory, modules = g++-built kernel libraries, launches, events)
//   sched.cc   one launch: blocks in order, each block's threads as fibers, barriers and warp collectives
//   check.cc   memcheck, racecheck and initcheck, fed by the hooks of the checked build (-fsanitize=thread
//              instrumentation, with our own __tsan_* functions instead of libtsan)
//
// Execution model: one OS thread (the caller's) runs every block of a launch, one after another, so the whole
// launch is deterministic. Inside a block each CUDA thread is a fiber; a fiber runs until it reaches a barrier
// or a warp collective, or exits. Warps are not run in lockstep: a collective completes when every lane its mask
// names has arrived at the same call site, which is exactly what CUDA's *_sync functions require.
#pragma once

#include <stddef.h>
#include <stdint.h>

#include <string>
#include <vector>

#define KILN_EMU_RUNTIME 1
#include "kiln_emu.h"

namespace kiln {
// The block's dynamic shared memory (common.cuh declares it `extern __shared__`, thread_local here); sched.cc.
extern thread_local unsigned char kiln_smem[];
}  // namespace kiln

namespace kiln_emu {

// CUresult values the emulator returns (the driver's numbering).
enum Result : int {
  kSuccess = 0,
  kInvalidValue = 1,
  kOutOfMemory = 2,
  kNotInitialized = 3,
  kInvalidImage = 200,
  kInvalidHandle = 400,
  kNotFound = 500,
  kIllegalAddress = 700,
  kLaunchOutOfResources = 701,
  kMisalignedAddress = 716,
  kLaunchFailed = 719,
};

constexpr int kMaxThreads = 1024;
constexpr unsigned kDefaultSmemOptIn = 48 * 1024;
constexpr unsigned kMaxSmem = 227 * 1024;  // sm_90's per-block limit, and the size of kiln_smem

struct Module {
  void* handle = nullptr;
  std::string path;
  const KernelEntry* kernels = nullptr;
  uintptr_t tlsLo = 0, tlsHi = 0;  // the module's thread-local block: its static __shared__ variables
};

struct Function {
  Module* module;
  const KernelEntry* entry;
  unsigned smemOptIn = kDefaultSmemOptIn;
};

// A device allocation: host memory between two inaccessible guard pages.
struct Alloc {
  uintptr_t lo, hi;
  void* map;
  size_t mapBytes;
};

// A named byte range of the launch (a buffer of the program), for memcheck's messages and bounds.
struct Buffer {
  uintptr_t lo, hi;
  std::string name;
};

// What the checks need from the scheduler about the running thread.
struct Who {
  int tid, warp, lane;
  uint3 thread, block;
};

// ---- sched.cc ----
struct LaunchConfig {
  Function* fn;
  void** params;
  dim3 grid, block;
  unsigned smem;
};
// Runs every block; returns kSuccess or the error (its text in lastError()).
int runLaunch(const LaunchConfig& cfg);
// Ends the launch from inside a fiber (or records the error outside one): never returns into the fiber.
[[noreturn]] void failInFiber(int code, const std::string& message);
void fail(int code, const std::string& message);
bool failed();
bool inKernel();
Who who();
const char* kernelName();
uint32_t barrierEpoch();       // changes at every barrier and every new block
uint64_t blockSerial();        // changes at every new block
uint32_t warpEpoch(int warp);  // changes at every __syncwarp of that warp (and every barrier)
std::string describeThread(const Who& w);

// ---- ptx_semantics.cc: a warp's collective PTX, given each lane's input record and output slot ----
// mma: in[l] = {a[4], b[2], c[4] (as bits)} of lane l, out[l] = its d[4]; op 0 bf16, 1 f16 (m16n8k16), 2 tf32 (m16n8k8).
void mmaSync(int op, const void* const in[32], void* const out[32]);
// ldmatrix .x{num}[.trans]: in[l] = lane l's row address, out[l] = its registers.
void ldmatrixSync(int num, int trans, const void* const in[32], void* const out[32], const char* file, int line);

// ---- check.cc ----
void checksBeginLaunch(const LaunchConfig& cfg, const Module& m);
void checksBeginBlock();
void recordSharedWrite(const void* addr, size_t n, uintptr_t pc);  // writes made by the runtime for a thread
void recordSharedRead(const void* addr, size_t n, uintptr_t pc);
bool isShared(const void* addr, size_t n);
std::string symbolize(uintptr_t pc);
std::string hexAddr(uintptr_t a);

// ---- driver.cc ----
const std::vector<Alloc>& allocations();
const std::vector<Buffer>& launchBuffers();
unsigned char* dynamicSmem();
const std::string& lastError();
void setLastError(int code, const std::string& message);

}  // namespace kiln_emu
