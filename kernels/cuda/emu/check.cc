// memcheck, racecheck and initcheck for the checked build. Kernel modules built with -fsanitize=thread call a
// __tsan_* hook before every load and store; this file defines those hooks (libtsan is never linked).
//   memcheck  global accesses must fall inside one buffer of the launch (or inside a device allocation when the
//             launch names no buffers), shared accesses inside the launch's dynamic shared memory; N-byte
//             accesses must be N-byte aligned.
//   racecheck two threads touching the same shared-memory bytes between two barriers, at least one writing, and
//             not ordered by __syncwarp when they are in the same warp: a hazard (RAW, WAR or WAW). Epochs model
//             happens-before, so what is found does not depend on the order the emulator ran the threads in.
//   initcheck a read of shared memory that no thread of the block has written.
// Shadow state: one cell per 2 bytes of shared memory (bf16 tiles are written 2 bytes per thread).
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>

#include <algorithm>
#include <string>
#include <vector>

#include "runtime.h"

namespace kiln_emu {
namespace {

struct Cell {
  uint64_t wBlock;  // blockSerial() of the last write (initcheck)
  uintptr_t wPc, rPc;
  uint32_t wEpoch, rEpoch;
  uint16_t wTid, rTid;
  uint32_t wWep, rWep;
  uint8_t rMulti, wAtomic;
};

struct Space {
  uintptr_t lo = 0, hi = 0;
  std::vector<Cell> cells;
  const char* name = "";
};

// Global memory across the threads of one launch: one cell per 4-byte word of a device allocation. CUDA gives no
// order between threads of a launch (bar atomics), so a word one thread writes and another reads or writes in the
// same launch is a race — the shape of an in-place kernel that reads a neighbour's element.
struct GCell {
  uint32_t launch, writer, reader;  // reader kMulti: several threads
  uint8_t wmask, rmask;             // the bytes of the word the last writer / reader(s) touched
};
constexpr uint32_t kNone = 0xffffffffu, kMulti = 0xfffffffeu;

struct CheckState {
  const LaunchConfig* cfg = nullptr;
  unsigned flags = 15;  // 1 memcheck, 2 racecheck (shared), 4 initcheck, 8 racecheck on global memory
  uint32_t launch = 0;
  std::vector<std::pair<uintptr_t, std::vector<GCell>>> gshadow;  // by allocation base
  Space dyn, stat;
  // The union of the launch's buffers as sorted, disjoint [lo, hi) ranges: one binary search per access.
  std::vector<std::pair<uintptr_t, uintptr_t>> addressable;
};
CheckState c;

}  // namespace
std::string hexAddr(uintptr_t a) {
  char b[32];
  snprintf(b, sizeof b, "0x%llx", static_cast<unsigned long long>(a));
  return b;
}

namespace {
std::string siteOf(uintptr_t pc) { return pc == 0 ? "(in the runtime)" : symbolize(pc); }

[[noreturn]] void memFail(int code, const std::string& what, uintptr_t pc) {
  failInFiber(code, "memcheck: " + what + " by " + describeThread(who()) + " at " + siteOf(pc));
}

unsigned parseFlags() {
  const char* env = getenv("KILN_EMU_CHECKS");
  if (env == nullptr || *env == '\0') return 15;
  const std::string s = env;
  unsigned f = 0;
  if (s.find("memcheck") != std::string::npos) f |= 1;
  if (s.find("racecheck") != std::string::npos) f |= 2 | 8;
  if (s.find("initcheck") != std::string::npos) f |= 4;
  if (s.find("all") != std::string::npos) f = 15;
  return f;
}

std::string describeTid(int tid);

std::vector<GCell>& gcells(const Alloc& al) {
  for (auto& [lo, cells] : c.gshadow)
    if (lo == al.lo) {
      if (cells.size() < (al.hi - al.lo + 3) / 4) cells.assign((al.hi - al.lo + 3) / 4, GCell{0, kNone, kNone, 0, 0});
      return cells;
    }
  c.gshadow.emplace_back(al.lo, std::vector<GCell>((al.hi - al.lo + 3) / 4, GCell{0, kNone, kNone, 0, 0}));
  return c.gshadow.back().second;
}

std::string bufferAt(uintptr_t a) {
  for (const Buffer& b : launchBuffers())
    if (a >= b.lo && a < b.hi) return "buffer '" + b.name + "' byte " + std::to_string(a - b.lo);
  return "global " + hexAddr(a);
}

std::string describeGtid(uint32_t g) {
  const uint32_t tid = g & 1023;
  const dim3 b = c.cfg->block;
  char buf[96];
  snprintf(buf, sizeof buf, "thread (%u,%u,%u) of an earlier block (#%u in launch order)", tid % b.x, tid / b.x % b.y, tid / (b.x * b.y), g >> 10);
  return buf;
}

void globalRace(const Alloc& al, uintptr_t a, size_t n, bool write, uintptr_t pc) {
  std::vector<GCell>& cells = gcells(al);
  const Who w = who();
  const uint32_t me = (static_cast<uint32_t>(blockSerial() & 0x3fffff) << 10) | static_cast<uint32_t>(w.tid);
  for (uintptr_t i = (a - al.lo) / 4; i <= (a + n - 1 - al.lo) / 4 && i < cells.size(); ++i) {
    GCell& x = cells[i];
    if (x.launch != c.launch) x = GCell{c.launch, kNone, kNone, 0, 0};
    // The bytes of this word the access touches (threads writing neighbouring bytes of one word do not race).
    const uintptr_t w0 = al.lo + i * 4, lo = a > w0 ? a - w0 : 0, hi = a + n < w0 + 4 ? a + n - w0 : 4;
    const uint8_t mask = static_cast<uint8_t>(((1u << hi) - 1) & ~((1u << lo) - 1));
    const bool wHit = x.writer != kNone && x.writer != me && (x.wmask & mask), rHit = x.reader != kNone && x.reader != me && (x.rmask & mask);
    const uint32_t other = write ? (wHit ? x.writer : rHit ? x.reader : kNone) : (wHit ? x.writer : kNone);
    if (other != kNone) {
      const bool waw = write && wHit;
      const std::string who2 = other == kMulti ? "several threads" : ((other >> 10) == (me >> 10) ? describeTid(static_cast<int>(other & 1023)) : describeGtid(other));
      failInFiber(kLaunchFailed, std::string("racecheck: ") + (write ? (waw ? "write-after-write" : "write-after-read") : "read-after-write") +
                                     " hazard on global memory (" + bufferAt(al.lo + i * 4) + ") in kernel '" + kernelName() + "': " + who2 +
                                     (waw || !write ? " wrote" : " read") + " it, then " + describeThread(w) + (write ? " writes" : " reads") +
                                     " it at " + siteOf(pc) + " in the same launch (threads of a launch are unordered)");
    }
    if (write) {
      x.wmask = x.writer == me ? static_cast<uint8_t>(x.wmask | mask) : mask;
      x.writer = me;
    } else {
      if (x.reader == kNone || x.reader == me) {
        x.rmask = static_cast<uint8_t>((x.reader == me ? x.rmask : 0) | mask);
        x.reader = me;
      } else if (x.rmask & mask) {  // two threads read the same bytes: any later writer of them races with one
        x.reader = kMulti;
        x.rmask = static_cast<uint8_t>(x.rmask | mask);
      } else {  // disjoint bytes: keep the latest reader (a race may be missed, never invented)
        x.reader = me;
        x.rmask = mask;
      }
    }
  }
}

const char* kindName(bool write, bool prevWrite) { return write ? (prevWrite ? "write-after-write" : "write-after-read") : "read-after-write"; }

std::string describeTid(int tid) {
  const dim3 b = c.cfg->block;
  const Who w = who();
  char buf[96];
  snprintf(buf, sizeof buf, "thread (%u,%u,%u) [warp %d lane %d]", tid % b.x, tid / b.x % b.y, tid / (b.x * b.y), tid / 32, tid % 32);
  (void)w;
  return buf;
}

bool ordered(int prevTid, uint32_t prevWep, int tid) {
  return prevTid / 32 == tid / 32 && prevWep != warpEpoch(tid / 32);  // a __syncwarp of their warp in between
}

void shared(Space& sp, uintptr_t a, size_t n, bool write, bool atomic, uintptr_t pc) {
  const Who w = who();
  const uintptr_t off = a - sp.lo;
  if ((c.flags & 1) && n > 0 && (n & (n - 1)) == 0 && n <= 16 && a % n != 0)
    memFail(kMisalignedAddress, "misaligned " + std::to_string(n) + "-byte shared-memory " + (write ? "write" : "read") + " at " + sp.name +
                                    " offset " + std::to_string(off), pc);
  if (!(c.flags & 6)) return;
  const uint32_t E = barrierEpoch();
  const uint64_t serial = blockSerial();
  const uint32_t wep = warpEpoch(w.warp);
  for (size_t i = off / 2; i <= (off + n - 1) / 2 && i < sp.cells.size(); ++i) {
    Cell& x = sp.cells[i];
    // Built only for a report: this loop runs for every shared-memory access of the checked build.
    const auto where = [&] { return std::string(sp.name) + " offset " + std::to_string(i * 2); };
    if (!write) {
      if ((c.flags & 4) && x.wBlock != serial)
        failInFiber(kLaunchFailed, "initcheck: " + describeThread(w) + " reads " + where() + ", which no thread of its block has written, at " + siteOf(pc));
      if ((c.flags & 2) && x.wEpoch == E && x.wTid != w.tid && !ordered(x.wTid, x.wWep, w.tid))
        failInFiber(kLaunchFailed, std::string("racecheck: ") + kindName(false, true) + " hazard on " + where() + " in block (" +
                                       std::to_string(w.block.x) + "," + std::to_string(w.block.y) + "," + std::to_string(w.block.z) +
                                       ") of kernel '" + kernelName() + "': " + describeTid(x.wTid) + " wrote at " + siteOf(x.wPc) + ", then " +
                                       describeTid(w.tid) + " reads at " + siteOf(pc) + " with no barrier in between");
      if (x.rEpoch != E) {
        x.rEpoch = E;
        x.rMulti = 0;
      } else if (x.rTid / 32 != w.tid / 32) {
        x.rMulti = 1;
      }
      x.rTid = static_cast<uint16_t>(w.tid);
      x.rWep = wep;
      x.rPc = pc;
    } else {
      if (c.flags & 2) {
        const bool waw = x.wEpoch == E && x.wTid != w.tid && !ordered(x.wTid, x.wWep, w.tid) && !(atomic && x.wAtomic);
        const bool war = x.rEpoch == E && (x.rMulti || (x.rTid != w.tid && !ordered(x.rTid, x.rWep, w.tid)));
        if (waw || war) {
          const int other = waw ? x.wTid : x.rTid;
          failInFiber(kLaunchFailed, std::string("racecheck: ") + kindName(true, waw) + " hazard on " + where() + " in block (" +
                                         std::to_string(w.block.x) + "," + std::to_string(w.block.y) + "," + std::to_string(w.block.z) +
                                         ") of kernel '" + kernelName() + "': " + describeTid(other) + (waw ? " wrote" : " read") + " at " +
                                         siteOf(waw ? x.wPc : x.rPc) + ", then " + describeTid(w.tid) + " writes at " + siteOf(pc) +
                                         " with no barrier in between");
        }
      }
      x.wEpoch = E;
      x.wTid = static_cast<uint16_t>(w.tid);
      x.wWep = wep;
      x.wPc = pc;
      x.wBlock = serial;
      x.wAtomic = atomic;
    }
  }
}

void global(uintptr_t a, size_t n, bool write, bool atomic, uintptr_t pc) {
  const std::vector<Alloc>& allocs = allocations();
  const Alloc* al = nullptr;
  for (const Alloc& x : allocs)
    if (a + n > x.lo - 4096 && a < x.hi + 4096) al = &x;
  if (al == nullptr) return;  // not device memory (the fiber's stack, the module's data)
  const char* rw = write ? "write" : "read";  // not a std::string: this runs for every global access
  if (n > 0 && (n & (n - 1)) == 0 && n <= 16 && a % n != 0)
    memFail(kMisalignedAddress, "misaligned " + std::to_string(n) + "-byte global " + rw + " at " + hexAddr(a), pc);
  if ((c.flags & 8) && !atomic) globalRace(*al, a, n, write, pc);
  if (!(c.flags & 1)) return;
  const std::vector<Buffer>& bufs = launchBuffers();
  if (bufs.empty()) {
    if (a < al->lo || a + n > al->hi)
      memFail(kIllegalAddress, "invalid " + std::to_string(n) + "-byte global " + rw + " at " + hexAddr(a) + ", " +
                                   (a < al->lo ? std::to_string(al->lo - a) + " bytes before" : std::to_string(a + n - al->hi) + " bytes past the end of") +
                                   " a " + std::to_string(al->hi - al->lo) + "-byte device allocation", pc);
    return;
  }
  const auto& ranges = c.addressable;
  size_t lo = 0, hi = ranges.size();
  while (lo < hi) {  // the first range whose end is past a
    const size_t mid = (lo + hi) / 2;
    if (ranges[mid].second <= a) lo = mid + 1;
    else hi = mid;
  }
  if (lo < ranges.size() && ranges[lo].first <= a && a + n <= ranges[lo].second) return;
  const Buffer* near = nullptr;
  for (const Buffer& b : bufs)
    if (b.lo <= a && (near == nullptr || b.lo > near->lo)) near = &b;
  std::string what = "invalid " + std::to_string(n) + "-byte global " + rw + " at " + hexAddr(a) + ": outside every buffer of the launch";
  if (near != nullptr) {
    const uintptr_t off = a - near->lo;
    what += "; " + std::to_string(off >= near->hi - near->lo ? off - (near->hi - near->lo) : 0) + " bytes past the end of buffer '" + near->name +
            "' (" + std::to_string(near->hi - near->lo) + " bytes, byte offset " + std::to_string(off) + ", element " + std::to_string(off / (n ? n : 1)) +
            " of " + std::to_string((near->hi - near->lo) / (n ? n : 1)) + ")";
  }
  memFail(kIllegalAddress, what, pc);
}

void access(const void* p, size_t n, bool write, bool atomic, uintptr_t pc) {
  if (!inKernel() || failed()) return;
  const uintptr_t a = reinterpret_cast<uintptr_t>(p);
  if (a >= c.dyn.lo && a < c.dyn.lo + kMaxSmem) {
    if ((c.flags & 1) && a + n > c.dyn.hi)
      memFail(kIllegalAddress, "invalid " + std::to_string(n) + "-byte shared-memory " + (write ? "write" : "read") + " at kiln_smem offset " +
                                   std::to_string(a - c.dyn.lo) + ", past the " + std::to_string(c.dyn.hi - c.dyn.lo) +
                                   " bytes of dynamic shared memory the launch asked for", pc);
    shared(c.dyn, a, n, write, atomic, pc);
    return;
  }
  if (a >= c.stat.lo && a < c.stat.hi) {
    shared(c.stat, a, n, write, atomic, pc);
    return;
  }
  if (c.flags & 9) global(a, n, write, atomic, pc);
}

}  // namespace

void checksBeginLaunch(const LaunchConfig& cfg, const Module& m) {
  c.cfg = &cfg;
  c.launch++;
  c.flags = parseFlags();
  c.addressable.clear();
  for (const Buffer& b : launchBuffers()) c.addressable.emplace_back(b.lo, b.hi);
  std::sort(c.addressable.begin(), c.addressable.end());
  size_t out = 0;
  for (size_t i = 0; i < c.addressable.size(); ++i) {
    if (out > 0 && c.addressable[i].first <= c.addressable[out - 1].second) {
      c.addressable[out - 1].second = std::max(c.addressable[out - 1].second, c.addressable[i].second);
    } else {
      c.addressable[out++] = c.addressable[i];
    }
  }
  c.addressable.resize(out);
  c.dyn.lo = reinterpret_cast<uintptr_t>(&kiln::kiln_smem[0]);
  c.dyn.hi = c.dyn.lo + cfg.smem;
  c.dyn.name = "dynamic shared memory (kiln_smem)";
  c.stat.lo = m.tlsLo;
  c.stat.hi = m.tlsHi;
  c.stat.name = "static __shared__ memory";
  if (c.dyn.cells.size() < kMaxSmem / 2) c.dyn.cells.assign(kMaxSmem / 2, Cell{});
  const size_t ns = (m.tlsHi - m.tlsLo + 1) / 2;
  if (c.stat.cells.size() < ns) c.stat.cells.assign(ns, Cell{});
}

void checksBeginBlock() {}

void recordSharedWrite(const void* addr, size_t n, uintptr_t pc) {
  if (isShared(addr, n)) access(addr, n, true, false, pc);
}
void recordSharedRead(const void* addr, size_t n, uintptr_t pc) {
  if (isShared(addr, n)) access(addr, n, false, false, pc);
}

bool isShared(const void* addr, size_t n) {
  const uintptr_t a = reinterpret_cast<uintptr_t>(addr), lo = reinterpret_cast<uintptr_t>(&kiln::kiln_smem[0]);
  return (a >= lo && a + n <= lo + kMaxSmem) || (a >= c.stat.lo && a + n <= c.stat.hi);
}

// One whole line of `p` (however long) into `out`, without its newline.
static void readLine(FILE* p, std::string& out) {
  out.clear();
  char buf[1024];
  while (fgets(buf, sizeof buf, p) != nullptr) {
    out += buf;
    if (out.back() == '\n') break;
  }
}

// "file:line (function)" for a code address in a kernel module, through addr2line (checked builds carry -g).
std::string symbolize(uintptr_t pc) {
  Dl_info info{};
  if (dladdr(reinterpret_cast<void*>(pc), &info) == 0 || info.dli_fname == nullptr) return hexAddr(pc);
  const uintptr_t off = pc - reinterpret_cast<uintptr_t>(info.dli_fbase) - 1;  // the call instruction, not the return address
  const std::string cmd = "addr2line -C -f -e '" + std::string(info.dli_fname) + "' " + hexAddr(off) + " 2>/dev/null";
  FILE* p = popen(cmd.c_str(), "r");
  std::string fn, line;
  if (p != nullptr) {
    readLine(p, fn);  // demangled template and lambda names run to several KiB
    readLine(p, line);
    pclose(p);
  }
  while (!fn.empty() && (fn.back() == '\n' || fn.back() == '\r')) fn.pop_back();
  while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.pop_back();
  if (line.empty() || line.rfind("??", 0) == 0) return std::string(info.dli_sname != nullptr ? info.dli_sname : "?") + "+" + hexAddr(off);
  const size_t disc = line.find(" (discriminator");
  if (disc != std::string::npos) line.erase(disc);
  return line + (fn.empty() || fn == "??" ? "" : " (in " + fn.substr(0, 80) + ")");
}

}  // namespace kiln_emu

using kiln_emu::access;

// ---- the hooks GCC's -fsanitize=thread instrumentation calls ----
#define KILN_PC reinterpret_cast<uintptr_t>(__builtin_return_address(0))
#define KILN_HOOKS(N)                                                                                          \
  extern "C" __attribute__((visibility("default"))) void __tsan_read##N(void* p) { access(p, N, false, false, KILN_PC); }          \
  extern "C" __attribute__((visibility("default"))) void __tsan_write##N(void* p) { access(p, N, true, false, KILN_PC); }          \
  extern "C" __attribute__((visibility("default"))) void __tsan_unaligned_read##N(void* p) { access(p, N, false, false, KILN_PC); } \
  extern "C" __attribute__((visibility("default"))) void __tsan_unaligned_write##N(void* p) { access(p, N, true, false, KILN_PC); } \
  extern "C" __attribute__((visibility("default"))) void __tsan_volatile_read##N(void* p) { access(p, N, false, false, KILN_PC); }  \
  extern "C" __attribute__((visibility("default"))) void __tsan_volatile_write##N(void* p) { access(p, N, true, false, KILN_PC); }
KILN_HOOKS(1)
KILN_HOOKS(2)
KILN_HOOKS(4)
KILN_HOOKS(8)
KILN_HOOKS(16)
#undef KILN_HOOKS

extern "C" {
__attribute__((visibility("default"))) void __tsan_read_range(void* p, unsigned long n) { access(p, n, false, false, KILN_PC); }
__attribute__((visibility("default"))) void __tsan_write_range(void* p, unsigned long n) { access(p, n, true, false, KILN_PC); }
__attribute__((visibility("default"))) void __tsan_init(void) {}
__attribute__((visibility("default"))) void __tsan_func_entry(void*) {}
__attribute__((visibility("default"))) void __tsan_func_exit(void) {}
__attribute__((visibility("default"))) void __tsan_vptr_update(void**, void*) {}
__attribute__((visibility("default"))) void __tsan_vptr_read(void**) {}
// Vector loads and stores through __ldg & co. (kiln_emu.h): an N-byte-aligned type needs an N-byte-aligned address.
__attribute__((visibility("default"))) void kiln_emu_check_aligned(const void* p, int size, int align, int is_write, const char* file, int line) {
  if (!kiln_emu::inKernel() || reinterpret_cast<uintptr_t>(p) % static_cast<uintptr_t>(align) == 0) return;
  kiln_emu::failInFiber(kiln_emu::kMisalignedAddress, "memcheck: misaligned " + std::to_string(size) + "-byte " + (kiln_emu::isShared(p, 1) ? "shared-memory " : "global ") +
                                                          (is_write ? "write" : "read") + " at " + kiln_emu::hexAddr(reinterpret_cast<uintptr_t>(p)) + " (needs " +
                                                          std::to_string(align) + "-byte alignment) by " + kiln_emu::describeThread(kiln_emu::who()) + " at " + file + ":" + std::to_string(line));
}
// atomicAdd & co. (kiln_emu.h) report themselves here: checked like a write, ordered among atomics.
__attribute__((visibility("default"))) void kiln_emu_atomic_access(const void* p, int size, int, const char*, int) {
  access(p, static_cast<size_t>(size), true, true, KILN_PC);
}
}
