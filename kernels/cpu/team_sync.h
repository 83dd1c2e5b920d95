// kiln::TeamSync — the barrier and dynamic work counter the GEMM's threads share inside one OpenMP region.
//
// Why not `#pragma omp barrier` / `omp for schedule(dynamic)`: the runtime runs with OMP_WAIT_POLICY=passive (a
// spinning thread on a shared 2-core machine burns the time slice its descheduled peer needs), and a passive
// libgomp barrier sleeps on a futex: each wake-up costs tens of microseconds, 2 per K step of the GEMM, which
// was a third of a 512^3 matmul on 2 threads. Here a waiting thread spins for a bounded time (kSpinNs; the peer
// is usually microseconds away) and only then sleeps on a futex (Linux; elsewhere it yields), so a descheduled
// peer costs one wake-up, not a burnt slice. 10 us: at load 14-20 on 2 cores, 50 us of spinning made a
// 32-barrier GEMM (8 x 1024x64x1024) 10-20% slower than sleeping at once, while 0, 10 and 50 us were equal within
// noise at 512^3 (bench: kernels/README.md); on a quiet machine the spin covers the usual imbalance.
//
// Phases: the threads run numbered phases (0, 1, 2, ...), each a set of items handed out by next(phase); a
// barrier(p) follows every phase or every other one (at most two phases between barriers). Phase p counts on
// counter[p % 4]; the last thread into barrier(p) zeroes the counters of phases p + 2 and p + 3 (those of p - 2
// and p - 1, which every thread has left), so each phase finds its counter at zero.
//
// Late joiners: a barrier waits for the threads that have joined (join()), not for the whole OpenMP team. With
// passive waiting, a region's second thread starts 40-90 us after the first on the VMs we run on (its vCPU was
// halted); the first thread no longer waits for it at the first barrier (a 512^3 matmul is 0.65 ms): it packs,
// passes the barrier alone and takes work items, and the late thread, told by join() how many barriers the team
// has passed, skips the phases before them and takes what is left. A join waits while a barrier is completing,
// so a joiner is counted by every barrier it has not seen pass.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <climits>
#include <cstdlib>
#include <thread>

#if defined(__linux__)
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

#if defined(__x86_64__)
#include <immintrin.h>
#endif

// How long a thread spins at a barrier before it sleeps (ns); a compile-time knob for measuring.
#ifndef KILN_TEAM_SPIN_NS
#define KILN_TEAM_SPIN_NS 10000
#endif

namespace kiln {

class TeamSync {
 public:
  TeamSync() {
    for (auto& c : counter_) c.v.store(0, std::memory_order_relaxed);
  }

  // Adds the calling thread to the team; returns how many barriers the team has passed (the caller skips the
  // phases before the last of them and runs from the one after it). `late`: the thread first sleeps for
  // KILN_TEAM_JOIN_DELAY_US microseconds when that is set (the tests make the other threads join late with it).
  int join(bool late = false) {
    static const long delay_us = [] {
      const char* e = std::getenv("KILN_TEAM_JOIN_DELAY_US");
      return e ? std::atol(e) : 0L;
    }();
    if (late && delay_us > 0) std::this_thread::sleep_for(std::chrono::microseconds(delay_us));
    uint32_t s = state_.load(std::memory_order_acquire);
    for (;;) {
      if (s & kCompleting) {
        pause();
        s = state_.load(std::memory_order_acquire);
      } else if (state_.compare_exchange_weak(s, s + kMember, std::memory_order_acq_rel)) {
        return gen_.load(std::memory_order_acquire);
      }
    }
  }

  // The next item of `phase` for the calling thread (0, 1, 2, ... across the team; >= the item count: done).
  int64_t next(int64_t phase) { return counter_[phase % 4].v.fetch_add(1, std::memory_order_relaxed); }

  // Waits until every thread that has joined has called barrier(phase); all writes before it are visible after it.
  void barrier(int64_t phase) {
    const int gen = gen_.load(std::memory_order_acquire);
    uint32_t s = state_.load(std::memory_order_acquire);
    for (;;) {  // not completing: this thread has not arrived, so not every member has
      const uint32_t members = s / kMember, arrived = (s & kArrived) + 1;
      if (arrived == members) {
        if (!state_.compare_exchange_weak(s, s | kCompleting, std::memory_order_acq_rel)) continue;
        counter_[(phase + 2) % 4].v.store(0, std::memory_order_relaxed);
        counter_[(phase + 3) % 4].v.store(0, std::memory_order_relaxed);
        gen_.store(gen + 1, std::memory_order_seq_cst);
        state_.store(members * kMember, std::memory_order_release);  // none arrived, joins open again
        if (sleepers_.load(std::memory_order_seq_cst) > 0) wake_all();
        return;
      }
      if (state_.compare_exchange_weak(s, s + 1, std::memory_order_acq_rel)) break;
    }
    const auto t0 = std::chrono::steady_clock::now();
    for (int spins = 0; gen_.load(std::memory_order_acquire) == gen; ++spins) {
      if ((spins & 63) == 63 && std::chrono::steady_clock::now() - t0 > std::chrono::nanoseconds(kSpinNs)) {
        sleepers_.fetch_add(1, std::memory_order_seq_cst);
        while (gen_.load(std::memory_order_seq_cst) == gen) sleep_while(gen);
        sleepers_.fetch_sub(1, std::memory_order_relaxed);
        return;
      }
      pause();
    }
  }

 private:
  static constexpr int64_t kSpinNs = KILN_TEAM_SPIN_NS;
  // state_: threads arrived at the current barrier (bits 0-15), members (bits 16-30), a barrier completing (bit 31).
  static constexpr uint32_t kArrived = 0xffff, kMember = 0x10000, kCompleting = 0x80000000u;
  static void pause() {
#if defined(__x86_64__)
    _mm_pause();
#endif
  }
#if defined(__linux__)
  // gen_ is lock-free and as large as an int, so the futex word is its int (as libgomp and libstdc++ do).
  int* word() { return reinterpret_cast<int*>(&gen_); }
  void sleep_while(int gen) { syscall(SYS_futex, word(), FUTEX_WAIT_PRIVATE, gen, nullptr, nullptr, 0); }
  void wake_all() { syscall(SYS_futex, word(), FUTEX_WAKE_PRIVATE, INT_MAX, nullptr, nullptr, 0); }
#else
  void sleep_while(int) { std::this_thread::yield(); }
  void wake_all() {}
#endif
  struct alignas(64) Counter { std::atomic<int64_t> v; };
  Counter counter_[4];
  alignas(64) std::atomic<uint32_t> state_{0};
  alignas(64) std::atomic<int> gen_{0};
  std::atomic<int> sleepers_{0};
  static_assert(sizeof(std::atomic<int>) == sizeof(int), "futex word");
};

}  // namespace kiln
