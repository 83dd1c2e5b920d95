// One launch on the CPU: blocks in linear order; inside a block, each CUDA thread is a fiber with its own stack.
// A fiber runs until it parks at a collective or exits; the scheduler then resumes the next runnable fiber in
// thread order. Barriers and warp collectives check that every participant reached the same call site with
// the same mask (synccheck), and a block where nothing can run but something waits is a reported deadlock.
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "include/kiln_emu_half.h"
#include "runtime.h"

extern "C" {
__attribute__((visibility("default"))) kiln_emu::ThreadCtx* kiln_emu_cur = nullptr;
}

namespace kiln {
// The block's dynamic shared memory (common.cuh declares it `extern __shared__`, i.e. thread_local here).
__attribute__((visibility("default"), aligned(16))) thread_local unsigned char kiln_smem[kiln_emu::kMaxSmem];
}  // namespace kiln

extern "C" void kiln_emu_switch(void** save_sp, void* new_sp);  // fiber_switch.cc

namespace kiln_emu {
namespace {

constexpr size_t kStackBytes = 256 * 1024;  // per fiber; a PROT_NONE guard page below each
constexpr size_t kGuard = 4096;

enum class Wait : uint8_t { Run, Barrier, Warp, Done };

struct Copy {  // a pending cp.async
  void* dst;
  const void* src;
  int bytes, srcBytes;
  int group;  // -1 until committed
};

struct Fiber {
  void* sp = nullptr;
  char* stackLo = nullptr;
  ThreadCtx ctx{};
  int tid = 0, warp = 0, lane = 0;
  Wait wait = Wait::Done;
  const char* file = "";
  int line = 0;
  std::vector<Copy> copies;
  int committed = 0;  // cp.async groups committed so far
};

// One pending warp collective: the lanes of `mask` arrive one by one; the last computes every lane's result.
struct Group {
  int kind;
  int op;
  unsigned mask, arrived = 0;
  const char* file;
  int line;
  uint64_t val[32];
  int arg[32];
  const void* in[32];
  void* out[32];
};

struct Warp {
  unsigned live = 0;  // lanes that exist and have not exited
  uint32_t epoch = 0;
  std::vector<Group> groups;
};

enum GroupKind { kShfl = 0, kVote = 1, kSyncwarp = 2, kMma = 3, kLdmatrix = 4 };
const char* const kGroupNames[] = {"__shfl_*_sync", "__ballot/any/all_sync", "__syncwarp", "mma.sync", "ldmatrix"};

struct State {
  const LaunchConfig* cfg = nullptr;
  std::vector<Fiber> fibers;
  char* stacks = nullptr;
  size_t stackCount = 0;
  Warp warps[kMaxThreads / 32];
  int nthreads = 0, nwarps = 0, live = 0;
  int barArrived = 0;
  const char* barFile = "";
  int barLine = 0;
  uint32_t epoch = 0;
  uint64_t serial = 0;
  Fiber* cur = nullptr;
  void* schedSp = nullptr;
  uint64_t rng = 0;  // xorshift state of the random schedule
  bool running = false, failed = false;
  uint3 block{};
};
State g;

struct Schedule {
  bool random = false;
};
Schedule scheduleFromEnv();

template <class T> void shuffle(std::vector<T>& v, uint64_t& s) {
  for (size_t i = v.size(); i > 1; --i) {
    s ^= s << 13;
    s ^= s >> 7;
    s ^= s << 17;
    std::swap(v[i - 1], v[s % i]);
  }
}

bool sameSite(const char* f1, int l1, const char* f2, int l2) { return l1 == l2 && (f1 == f2 || strcmp(f1, f2) == 0); }
std::string site(const char* f, int l) { return std::string(f) + ":" + std::to_string(l); }

void ensureStacks(size_t n) {
  if (g.stackCount >= n) return;
  if (g.stacks != nullptr) munmap(g.stacks, g.stackCount * (kStackBytes + kGuard));
  const size_t bytes = n * (kStackBytes + kGuard);
  void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED) {
    g.stacks = nullptr;
    g.stackCount = 0;
    return;
  }
  g.stacks = static_cast<char*>(p);
  g.stackCount = n;
  for (size_t i = 0; i < n; ++i) mprotect(g.stacks + i * (kStackBytes + kGuard), kGuard, PROT_NONE);
}

void toScheduler() { kiln_emu_switch(&g.cur->sp, g.schedSp); }

void threadExit();

Schedule scheduleFromEnv() {
  static std::string last;
  const char* env = getenv("KILN_EMU_SCHEDULE");
  const std::string v = env != nullptr ? env : "";
  Schedule s;
  if (v.rfind("random", 0) == 0) {
    s.random = true;
    if (v != last) {  // a new seed restarts the sequence, so a run is reproducible from its seed
      const size_t colon = v.find(':');
      g.rng = colon == std::string::npos ? 0x9e3779b97f4a7c15ull : std::strtoull(v.c_str() + colon + 1, nullptr, 10) * 0x9e3779b97f4a7c15ull + 1;
    }
  }
  last = v;
  return s;
}

void fiberMain() {
  const KernelEntry* e = g.cfg->fn->entry;
  e->invoke(e->fn, g.cfg->params);
  threadExit();
}

void initFiber(Fiber& f, int tid) {
  const dim3& b = g.cfg->block;
  f.tid = tid;
  f.warp = tid / 32;
  f.lane = tid % 32;
  f.ctx.tidx = {static_cast<unsigned>(tid % b.x), static_cast<unsigned>(tid / b.x % b.y), static_cast<unsigned>(tid / (b.x * b.y))};
  f.ctx.bidx = g.block;
  f.ctx.bdim = b;
  f.ctx.gdim = g.cfg->grid;
  f.wait = Wait::Run;
  f.copies.clear();
  f.committed = 0;
  f.stackLo = g.stacks + tid * (kStackBytes + kGuard) + kGuard;
  uintptr_t top = reinterpret_cast<uintptr_t>(f.stackLo + kStackBytes) & ~uintptr_t(15);
  void** sp = reinterpret_cast<void**>(top);
#if defined(__x86_64__)
  *--sp = nullptr;                                                 // fake return address of fiber_main
  *--sp = reinterpret_cast<void*>(&fiberMain);           // `ret` of the first switch lands here
  for (int i = 0; i < 6; ++i) *--sp = nullptr;                     // rbp rbx r12 r13 r14 r15
#else
  sp -= 22;  // 176 bytes: x19..x30, d8..d15
  memset(sp, 0, 176);
  sp[11] = reinterpret_cast<void*>(&fiberMain);          // x30 (lr)
#endif
  f.sp = sp;
}

void resume(Fiber& f) {
  g.cur = &f;
  kiln_emu_cur = &f.ctx;
  kiln_emu_switch(&g.schedSp, f.sp);
  g.cur = nullptr;
  kiln_emu_cur = nullptr;
}

void finishCopies(Fiber& f, int keep);

void threadExit() {
  Fiber& f = *g.cur;
  finishCopies(f, 0);  // copies still in flight complete before the thread's memory could be reused
  f.wait = Wait::Done;
  g.live--;
  Warp& w = g.warps[f.warp];
  w.live &= ~(1u << f.lane);
  for (const Group& grp : w.groups)
    if (grp.mask & (1u << f.lane))
      failInFiber(kLaunchFailed, "synccheck: " + describeThread(who()) + " exited while lanes of its warp wait for it at " +
                                     kGroupNames[grp.kind] + " (" + site(grp.file, grp.line) + ", mask 0x" +
                                     [&] { char b[16]; snprintf(b, sizeof b, "%08x", grp.mask); return std::string(b); }() + ")");
  if (g.barArrived > 0 && g.barArrived == g.live)
    failInFiber(kLaunchFailed, "synccheck: __syncthreads at " + site(g.barFile, g.barLine) + " in block (" +
                                   std::to_string(g.block.x) + "," + std::to_string(g.block.y) + "," +
                                   std::to_string(g.block.z) + ") waits for threads that have exited (" +
                                   describeThread(who()) + " exited): a barrier in non-uniform control flow");
  toScheduler();
  __builtin_unreachable();
}

void releaseBarrier() {
  for (int t = 0; t < g.nthreads; ++t)
    if (g.fibers[t].wait == Wait::Barrier) g.fibers[t].wait = Wait::Run;
  g.barArrived = 0;
  g.epoch++;
  for (int w = 0; w < g.nwarps; ++w) g.warps[w].epoch++;
}

std::string hex(unsigned v) {
  char b[16];
  snprintf(b, sizeof b, "0x%08x", v);
  return b;
}

void complete(Group& grp) {
  switch (grp.kind) {
    case kShfl: {
      for (int lane = 0; lane < 32; ++lane) {
        if (!(grp.mask & (1u << lane))) continue;
        const int w = grp.arg[lane] >> 8, a = grp.arg[lane] & 0xff;  // width, lane argument
        const int seg = lane & ~(w - 1), segEnd = seg + w - 1;
        int src = lane;
        switch (grp.op) {
          case 0: src = seg + (a & (w - 1)); break;
          case 1: src = lane - a >= seg ? lane - a : lane; break;
          case 2: src = lane + a <= segEnd ? lane + a : lane; break;
          case 3: src = (lane ^ a) <= segEnd ? (lane ^ a) : lane; break;
        }
        if (!(grp.mask & (1u << src))) {
          fail(kLaunchFailed, "synccheck: lane " + std::to_string(lane) + " reads lane " + std::to_string(src) + " in a shuffle at " +
                                  site(grp.file, grp.line) + ", but lane " + std::to_string(src) + " is not in the mask " + hex(grp.mask) +
                                  " (undefined on the GPU)");
          return;
        }
        *static_cast<uint64_t*>(grp.out[lane]) = grp.val[src];
      }
      break;
    }
    case kVote: {
      unsigned ballot = 0;
      for (int lane = 0; lane < 32; ++lane)
        if ((grp.mask & (1u << lane)) && grp.val[lane]) ballot |= 1u << lane;
      const unsigned r = grp.op == 0 ? ballot : grp.op == 1 ? (ballot != 0) : (ballot == grp.mask);
      for (int lane = 0; lane < 32; ++lane)
        if (grp.mask & (1u << lane)) *static_cast<unsigned*>(grp.out[lane]) = r;
      break;
    }
    case kSyncwarp: break;
    case kMma: mmaSync(grp.op, grp.in, grp.out); break;
    case kLdmatrix: ldmatrixSync(grp.op & 7, grp.op >> 3, grp.in, grp.out, grp.file, grp.line); break;
  }
}

// The calling lane arrives at a warp collective; returns once it has completed (its result written to `out`).
void arrive(int kind, int op, unsigned mask, uint64_t val, int arg, const void* in, void* out, const char* file, int line) {
  Fiber& f = *g.cur;
  Warp& w = g.warps[f.warp];
  const unsigned bit = 1u << f.lane;
  // Messages are built only on failure: this runs for every lane at every collective.
  auto where = [&] { return std::string(kGroupNames[kind]) + " at " + site(file, line); };
  if (!(mask & bit)) failInFiber(kLaunchFailed, "synccheck: " + describeThread(who()) + " calls " + where() + " with mask " + hex(mask) + ", which does not name its own lane");
  if (mask & ~w.live) {
    unsigned exists = 0;
    for (int l = 0; l < 32 && f.warp * 32 + l < g.nthreads; ++l) exists |= 1u << l;
    failInFiber(kLaunchFailed, "synccheck: " + describeThread(who()) + " calls " + where() + " with mask " + hex(mask) + ", which names lanes that " +
                                   ((mask & ~exists) ? "do not exist in this block" : "have exited") + " (" + hex(mask & ~w.live) + ")");
  }
  Group* grp = nullptr;
  for (Group& x : w.groups) {
    if (!(x.mask & mask)) continue;
    if (x.mask != mask || x.kind != kind || x.op != op || !sameSite(x.file, x.line, file, line))
      failInFiber(kLaunchFailed, "synccheck: divergent warp collectives in warp " + std::to_string(f.warp) + ": " + describeThread(who()) +
                                     " is at " + where() + " (mask " + hex(mask) + ") while lanes " + hex(x.arrived) + " wait at " +
                                     kGroupNames[x.kind] + " at " + site(x.file, x.line) + " (mask " + hex(x.mask) + ")");
    grp = &x;
  }
  if (grp == nullptr) {
    w.groups.push_back(Group{kind, op, mask, 0, file, line, {}, {}, {}, {}});
    grp = &w.groups.back();
  }
  grp->arrived |= bit;
  grp->val[f.lane] = val;
  grp->arg[f.lane] = arg;
  grp->in[f.lane] = in;
  grp->out[f.lane] = out;
  if (grp->arrived != grp->mask) {
    f.wait = Wait::Warp;
    f.file = file;
    f.line = line;
    toScheduler();
    return;
  }
  Group done = *grp;
  w.groups.erase(w.groups.begin() + (grp - w.groups.data()));
  complete(done);
  if (g.failed) failInFiber(kLaunchFailed, lastError());
  if (kind == kSyncwarp) w.epoch++;
  for (int l = 0; l < 32; ++l)
    if ((done.mask & (1u << l)) && l != f.lane) g.fibers[f.warp * 32 + l].wait = Wait::Run;
}

void finishCopies(Fiber& f, int keep) {
  // Completes every committed group except the `keep` most recent ones (cp.async.wait_group keep).
  const int limit = f.committed - keep;
  std::vector<Copy> rest;
  for (const Copy& c : f.copies) {
    if (c.group >= 0 && c.group < limit) {
      const int n = c.srcBytes < c.bytes ? c.srcBytes : c.bytes;
      memcpy(c.dst, c.src, n);
      if (n < c.bytes) memset(static_cast<char*>(c.dst) + n, 0, c.bytes - n);
      recordSharedWrite(c.dst, c.bytes, 0);
    } else {
      rest.push_back(c);
    }
  }
  f.copies.swap(rest);
}

// A fault inside a kernel (the unchecked build has no hooks: a wild pointer reaches a guard page, or a fiber
// overflows its stack) fails the launch instead of killing the process. The handler runs on its own stack.
struct sigaction g_oldSegv, g_oldBus;
char g_altStack[64 * 1024];

void onFault(int sig, siginfo_t* si, void* uc) {
  if (g.running && g.cur != nullptr) {
    const uintptr_t a = reinterpret_cast<uintptr_t>(si->si_addr), lo = reinterpret_cast<uintptr_t>(g.cur->stackLo);
    char buf[64];
    snprintf(buf, sizeof buf, "0x%llx", static_cast<unsigned long long>(a));
    fail(kIllegalAddress, a >= lo - kGuard && a < lo
                              ? "stack overflow of " + describeThread(who()) + " (the emulator gives each thread " + std::to_string(kStackBytes / 1024) + " KiB)"
                              : std::string("illegal address ") + buf + " accessed by " + describeThread(who()) +
                                    " (outside device memory; build with checks, KILN_CUDA_EMU_CHECKS=1, for the buffer and the source line)");
    kiln_emu_switch(&g.cur->sp, g.schedSp);  // abandons the fiber; SA_NODEFER left the signal unblocked
  }
  struct sigaction& old = sig == SIGSEGV ? g_oldSegv : g_oldBus;
  sigaction(sig, &old, nullptr);
  if (old.sa_flags & SA_SIGINFO) old.sa_sigaction(sig, si, uc);
  else if (old.sa_handler != SIG_DFL && old.sa_handler != SIG_IGN) old.sa_handler(sig);
  else raise(sig);
}

struct FaultGuard {
  stack_t oldStack{};
  FaultGuard() {
    stack_t ss{};
    ss.ss_sp = g_altStack;
    ss.ss_size = sizeof g_altStack;
    sigaltstack(&ss, &oldStack);
    struct sigaction sa{};
    sa.sa_sigaction = onFault;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_NODEFER;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGSEGV, &sa, &g_oldSegv);
    sigaction(SIGBUS, &sa, &g_oldBus);
  }
  ~FaultGuard() {
    sigaction(SIGSEGV, &g_oldSegv, nullptr);
    sigaction(SIGBUS, &g_oldBus, nullptr);
    sigaltstack(&oldStack, nullptr);
  }
};

}  // namespace

// ---- what check.cc and driver.cc ask ----
bool failed() { return g.failed; }
bool inKernel() { return g.running && g.cur != nullptr; }
uint32_t barrierEpoch() { return g.epoch; }
uint64_t blockSerial() { return g.serial; }
uint32_t warpEpoch(int warp) { return g.warps[warp].epoch; }
const char* kernelName() { return g.cfg != nullptr ? g.cfg->fn->entry->name : "?"; }
Who who() {
  if (g.cur == nullptr) return Who{-1, -1, -1, {0, 0, 0}, g.block};
  return Who{g.cur->tid, g.cur->warp, g.cur->lane, g.cur->ctx.tidx, g.block};
}
std::string describeThread(const Who& w) {
  char b[160];
  snprintf(b, sizeof b, "thread (%u,%u,%u) of block (%u,%u,%u) [warp %d lane %d] in kernel '%s'", w.thread.x, w.thread.y, w.thread.z,
           w.block.x, w.block.y, w.block.z, w.warp, w.lane, kernelName());
  return b;
}

void fail(int code, const std::string& message) {
  if (g.failed) return;
  g.failed = true;
  setLastError(code, message);
}

void failInFiber(int code, const std::string& message) {
  fail(code, message);
  if (g.cur != nullptr) {
    kiln_emu_switch(&g.cur->sp, g.schedSp);  // never resumed: the launch is over
  }
  __builtin_trap();
}

int runLaunch(const LaunchConfig& cfg) {
  const int n = static_cast<int>(cfg.block.x * cfg.block.y * cfg.block.z);
  if (n < 1 || n > kMaxThreads) return kInvalidValue;
  ensureStacks(n);
  if (g.stacks == nullptr) {
    setLastError(kOutOfMemory, "the CUDA emulator could not map fiber stacks");
    return kOutOfMemory;
  }
  g.cfg = &cfg;
  g.nthreads = n;
  g.nwarps = (n + 31) / 32;
  g.fibers.assign(n, Fiber{});
  g.failed = false;
  g.running = true;
  FaultGuard guard;
  checksBeginLaunch(cfg, *cfg.fn->module);
  // KILN_EMU_SCHEDULE=random:<seed>: blocks in a shuffled order and, at every sweep, runnable threads in a shuffled
  // order (each launch its own permutations), to shake out code that relies on an order CUDA does not promise.
  // Racecheck does not need it (epochs are order-independent); it finds value-level bugs and reorders atomics.
  const Schedule sched = scheduleFromEnv();
  const uint64_t blocks = static_cast<uint64_t>(cfg.grid.x) * cfg.grid.y * cfg.grid.z;
  std::vector<uint64_t> blockOrder;
  if (sched.random) {
    blockOrder.resize(blocks);
    for (uint64_t i = 0; i < blocks; ++i) blockOrder[i] = i;
    shuffle(blockOrder, g.rng);
  }
  std::vector<int> threadOrder(n);
  for (int t = 0; t < n; ++t) threadOrder[t] = t;
  for (uint64_t bi = 0; bi < blocks && !g.failed; ++bi) {
    const uint64_t lin = sched.random ? blockOrder[bi] : bi;
    {
        const unsigned bx = static_cast<unsigned>(lin % cfg.grid.x), by = static_cast<unsigned>(lin / cfg.grid.x % cfg.grid.y),
                       bz = static_cast<unsigned>(lin / (static_cast<uint64_t>(cfg.grid.x) * cfg.grid.y));
        g.block = {bx, by, bz};
        g.serial++;
        g.epoch++;
        g.live = n;
        g.barArrived = 0;
        for (int w = 0; w < g.nwarps; ++w) {
          g.warps[w].groups.clear();
          g.warps[w].epoch = 0;
          const int lanes = n - 32 * w < 32 ? n - 32 * w : 32;
          g.warps[w].live = lanes == 32 ? 0xffffffffu : (1u << lanes) - 1;
        }
        // Shared memory starts as garbage on the GPU: NaN bytes here, and initcheck reports reads of it.
        memset(dynamicSmem(), 0xff, cfg.smem);
        const Module& m = *cfg.fn->module;
        if (m.tlsHi > m.tlsLo) memset(reinterpret_cast<void*>(m.tlsLo), 0xff, m.tlsHi - m.tlsLo);
        checksBeginBlock();
        for (int t = 0; t < n; ++t) initFiber(g.fibers[t], t);
        for (;;) {
          bool ran = false;
          if (sched.random) shuffle(threadOrder, g.rng);
          for (int i = 0; i < n && !g.failed; ++i) {
            Fiber& f = g.fibers[threadOrder[i]];
            if (f.wait != Wait::Run) continue;
            resume(f);
            ran = true;
          }
          if (g.failed || g.live == 0) break;
          if (!ran) {
            std::string msg = "synccheck: deadlock in block (" + std::to_string(bx) + "," + std::to_string(by) + "," + std::to_string(bz) +
                              ") of kernel '" + kernelName() + "': no thread can run;";
            int shown = 0;
            for (const Fiber& f : g.fibers) {
              if (f.wait == Wait::Done || shown >= 4) continue;
              msg += " thread " + std::to_string(f.tid) + " waits at " + (f.wait == Wait::Barrier ? "__syncthreads " : "a warp collective ") +
                     site(f.file, f.line) + ";";
              shown++;
            }
            fail(kLaunchFailed, msg);
            break;
          }
        }
    }
  }
  g.running = false;
  g.cfg = nullptr;
  return g.failed ? -1 : kSuccess;
}

}  // namespace kiln_emu

using namespace kiln_emu;

// ---- the device-side entry points (kiln_emu.h) ----
extern "C" {

__attribute__((visibility("default"))) void kiln_emu_syncthreads(const char* file, int line) {
  Fiber& f = *g.cur;
  if (g.barArrived == 0) {
    g.barFile = file;
    g.barLine = line;
  } else if (!sameSite(g.barFile, g.barLine, file, line)) {
    failInFiber(kLaunchFailed, "synccheck: threads of block (" + std::to_string(g.block.x) + "," + std::to_string(g.block.y) + "," +
                                   std::to_string(g.block.z) + ") in kernel '" + kernelName() + "' wait at different barriers: " +
                                   describeThread(who()) + " at " + site(file, line) + ", others at " + site(g.barFile, g.barLine));
  }
  if (g.live < g.nthreads)
    failInFiber(kLaunchFailed, "synccheck: __syncthreads at " + site(file, line) + " reached by " + describeThread(who()) + " after " +
                                   std::to_string(g.nthreads - g.live) + " thread(s) of its block exited: a barrier in non-uniform control flow");
  g.barArrived++;
  if (g.barArrived == g.live) {
    releaseBarrier();
    return;
  }
  f.wait = Wait::Barrier;
  f.file = file;
  f.line = line;
  toScheduler();
}

__attribute__((visibility("default"))) void kiln_emu_syncwarp(unsigned mask, const char* file, int line) {
  arrive(kSyncwarp, 0, mask, 0, 0, nullptr, nullptr, file, line);
}

__attribute__((visibility("default"))) uint64_t kiln_emu_shfl(int kind, unsigned mask, uint64_t value, int lane_arg, int width, const char* file, int line) {
  if (width < 1 || width > 32 || (width & (width - 1)) != 0)
    failInFiber(kLaunchFailed, "shuffle at " + site(file, line) + ": width " + std::to_string(width) + " is not a power of two in [1, 32]");
  uint64_t out = 0;
  arrive(kShfl, kind, mask, value, (width << 8) | (lane_arg & 0xff), nullptr, &out, file, line);
  return out;
}

__attribute__((visibility("default"))) unsigned kiln_emu_vote(int kind, unsigned mask, int pred, const char* file, int line) {
  unsigned out = 0;
  arrive(kVote, kind, mask, pred != 0, 0, nullptr, &out, file, line);
  return out;
}

__attribute__((visibility("default"))) void kiln_emu_mma(int kind, float* d, const uint32_t* a, const uint32_t* b, const float* c, const char* file, int line) {
  // One contiguous record per lane: a[4], b[2], c[4] (copied, since d may alias c).
  uint32_t rec[10];
  memcpy(rec, a, 16);
  memcpy(rec + 4, b, 8);
  memcpy(rec + 6, c, 16);
  float out[4];
  arrive(kMma, kind, 0xffffffffu, 0, 0, rec, out, file, line);
  memcpy(d, out, 16);
}

__attribute__((visibility("default"))) void kiln_emu_ldmatrix(int num, int trans, uint32_t* regs, const void* row_addr, const char* file, int line) {
  if (num != 1 && num != 2 && num != 4) failInFiber(kInvalidValue, "ldmatrix: .x" + std::to_string(num) + " does not exist");
  arrive(kLdmatrix, num | (trans ? 8 : 0), 0xffffffffu, 0, 0, row_addr, regs, file, line);
}

__attribute__((visibility("default"))) void kiln_emu_cp_async(void* dst, const void* src, int cp_size, int src_size, const char* file, int line) {
  if (cp_size != 4 && cp_size != 8 && cp_size != 16)
    failInFiber(kInvalidValue, "cp.async at " + site(file, line) + ": cp-size " + std::to_string(cp_size) + " is not 4, 8 or 16");
  if (reinterpret_cast<uintptr_t>(dst) % cp_size || reinterpret_cast<uintptr_t>(src) % cp_size)
    failInFiber(kMisalignedAddress, "cp.async at " + site(file, line) + " by " + describeThread(who()) + ": addresses must be " +
                                        std::to_string(cp_size) + "-byte aligned");
  if (!isShared(dst, cp_size))
    failInFiber(kIllegalAddress, "cp.async at " + site(file, line) + " by " + describeThread(who()) + ": the destination is not shared memory");
  g.cur->copies.push_back(Copy{dst, src, cp_size, src_size, -1});
}

__attribute__((visibility("default"))) void kiln_emu_cp_async_commit(void) {
  Fiber& f = *g.cur;
  for (Copy& c : f.copies)
    if (c.group < 0) c.group = f.committed;
  f.committed++;
}

__attribute__((visibility("default"))) void kiln_emu_cp_async_wait(int n, const char*, int) { finishCopies(*g.cur, n < 0 ? 0 : n); }

__attribute__((visibility("default"))) unsigned kiln_emu_activemask(void) { return g.cur != nullptr ? g.warps[g.cur->warp].live : 0; }

__attribute__((visibility("default"))) long long kiln_emu_clock(void) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

}  // extern "C"
