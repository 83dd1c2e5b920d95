// Collectives across processes: MPI (Open MPI, or any MPI the launcher brings) when the addon was built with
// it, else a single-process stand-in that says so as soon as it is asked for more than one rank.
//
// Speed. Each collective is the blocking MPI call (MPI_Allreduce, MPI_Bcast, MPI_Barrier) made on the calling
// thread on the caller's buffer, in place: the tuned blocking algorithms, no copy, no thread hand-off. (The
// non-blocking MPI_Iallreduce polled with MPI_Test, and the blocking call on a worker thread that the caller waits
// for, were measured slower: bench/README.md, "Data parallel".)
//
// Faults. A blocking call cannot be interrupted, so the deadline is kept by a watchdog thread: each call records
// its deadline in an atomic (two stores per call); the watchdog looks every 100 ms and, past a deadline
// (KILN_COLLECTIVE_TIMEOUT), writes a one-line KilnRankFailedError and ends the job (MPI_Abort). When a rank dies,
// mpirun (or srun) ends the job by sending SIGTERM to the others: the handler writes the same kind of line, naming
// the collective it interrupted, and exits. Errors are returned, not fatal (MPI_ERRORS_RETURN), so a broken
// connection that MPI reports becomes a KilnRankFailedError thrown to JS.
#include <dlfcn.h>
#include <malloc.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>

#include "common.h"

#ifdef KILN_HAVE_MPI
// The C API only: the deprecated C++ bindings would need libmpi_cxx.
#define OMPI_SKIP_MPICXX 1
#define MPICH_SKIP_MPICXX 1
#include <mpi.h>
#endif

namespace kiln {
namespace {

struct Comm {
  bool initialized = false;
  bool mpi = false;  // false: single process
  int rank = 0;
  int size = 1;
};
Comm g_comm;

// The collective in progress (its name, for the messages) and its deadline in steady-clock nanoseconds (0: none).
std::atomic<const char*> g_op{nullptr};
std::atomic<int64_t> g_deadline{0};
std::atomic<int64_t> g_timeout_ms{0};
static_assert(std::atomic<const char*>::is_always_lock_free, "read in a signal handler");
char g_rank_text[16] = "0";

void Say(const char* s) {
  ssize_t ignored = write(2, s, std::strlen(s));
  (void)ignored;
}

// SIGTERM: the launcher is ending the job because another rank failed. Async-signal-safe: write(2) and _exit.
[[maybe_unused]] void OnTerminate(int) {
  const char* op = g_op.load(std::memory_order_relaxed);
  Say("KilnRankFailedError: rank ");
  Say(g_rank_text);
  Say(": the launcher ended the job");
  if (op != nullptr) {
    Say(" during ");
    Say(op);
  }
  Say(" (another rank failed: the launcher's message names it)\n");
  _exit(143);
}

int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// The deadline of one blocking collective: armed for the call's duration.
class Deadline {
 public:
  Deadline(const char* op, double timeoutMs) {
    g_op.store(op, std::memory_order_relaxed);
    if (timeoutMs > 0) {
      g_timeout_ms.store(static_cast<int64_t>(timeoutMs), std::memory_order_relaxed);
      g_deadline.store(NowNs() + static_cast<int64_t>(timeoutMs * 1e6), std::memory_order_release);
    }
  }
  ~Deadline() {
    g_deadline.store(0, std::memory_order_release);
    g_op.store(nullptr, std::memory_order_relaxed);
  }
  Deadline(const Deadline&) = delete;
  Deadline& operator=(const Deadline&) = delete;
};

// The size a launcher announces in the environment (Open MPI, PMIx as under srun, MPICH's hydra, Slurm), or 0.
int LauncherSize() {
  for (const char* k : {"OMPI_COMM_WORLD_SIZE", "PMIX_SIZE", "PMI_SIZE", "MPI_LOCALNRANKS"}) {
    const char* v = std::getenv(k);
    if (v != nullptr && *v != '\0') return std::atoi(v);
  }
  return 0;
}

bool Launched() {
  return LauncherSize() > 0 || std::getenv("PMIX_RANK") != nullptr || std::getenv("OMPI_COMM_WORLD_RANK") != nullptr;
}

[[maybe_unused]] Napi::Error RankFailed(Napi::Env env, const std::string& what, const char* kind) {
  Napi::Error e = Napi::Error::New(env, what);
  e.Set("name", Napi::String::New(env, "KilnRankFailedError"));
  e.Set("kind", Napi::String::New(env, kind));
  e.Set("rank", Napi::Number::New(env, g_comm.rank));
  return e;
}

#ifdef KILN_HAVE_MPI
std::string MpiErrorText(int code) {
  char buf[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(code, buf, &len);
  return std::string(buf, static_cast<size_t>(len));
}

// Looks every 100 ms whether the collective in progress is past its deadline; then names it and ends the job. The
// deadline is read after the clock, so a call that ended in between is not mistaken for a late one.
void Watchdog() {
  for (;;) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    const int64_t now = NowNs();
    const int64_t d = g_deadline.load(std::memory_order_acquire);
    if (d == 0 || now < d) continue;
    const char* op = g_op.load(std::memory_order_relaxed);
    char msg[320];
    std::snprintf(msg, sizeof msg,
                  "KilnRankFailedError: rank %s: %s waited %ld s for the other ranks (KILN_COLLECTIVE_TIMEOUT); one of them has stopped or hangs: "
                  "ending the job\n",
                  g_rank_text, op != nullptr ? op : "a collective", static_cast<long>(g_timeout_ms.load() / 1000));
    Say(msg);
    alarm(10);  // MPI_Abort from this thread should end the job; if it does not, SIGALRM ends this process
    MPI_Abort(MPI_COMM_WORLD, 1);
    _exit(1);
  }
}

MPI_Datatype TypeOf(napi_typedarray_type type) {
  return type == napi_float32_array ? MPI_FLOAT : type == napi_float64_array ? MPI_DOUBLE : MPI_INT32_T;
}
#endif

// The buffer of an all-reduce: one N-API call for its address, length and type (a per-call cost that matters for
// small reductions: BytesOf + TypedArrayType took three).
struct ReduceView {
  uint8_t* data;
  size_t count;  // elements
  size_t elem;   // bytes per element
  napi_typedarray_type type;
};

ReduceView ViewOf(const Napi::CallbackInfo& info, const char* op) {
  napi_typedarray_type type;
  size_t count = 0;
  void* data = nullptr;
  if (!info[0].IsTypedArray() || napi_get_typedarray_info(info.Env(), info[0], &type, &count, &data, nullptr, nullptr) != napi_ok ||
      (type != napi_float32_array && type != napi_float64_array && type != napi_int32_array))
    throw std::invalid_argument(std::string(op) + ": the buffer must be a Float32Array, Float64Array or Int32Array");
  return {static_cast<uint8_t*>(data), count, type == napi_float64_array ? size_t{8} : size_t{4}, type};
}

void Check(const char* op) {
  if (!g_comm.initialized) throw std::logic_error(std::string(op) + ": call commInit() first");
}

Napi::Value Info(const Napi::CallbackInfo& info) {
  Napi::Object o = Napi::Object::New(info.Env());
#ifdef KILN_HAVE_MPI
  o.Set("mpi", true);
  int major = 0, minor = 0;
  MPI_Get_version(&major, &minor);
  char lib[MPI_MAX_LIBRARY_VERSION_STRING];
  int len = 0;
  MPI_Get_library_version(lib, &len);
  std::string text(lib, static_cast<size_t>(len));
  o.Set("library", text.substr(0, text.find_first_of("\n,")));
#else
  o.Set("mpi", false);
  o.Set("library", "");
#endif
  o.Set("launched", Launched());
  o.Set("launcherSize", LauncherSize());
  return o;
}

Napi::Value Init(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!g_comm.initialized) {
    const int want = LauncherSize();
#ifdef KILN_HAVE_MPI
    if (Launched()) {
      // Open MPI loads its components with dlopen and they resolve libmpi's symbols globally; the addon was
      // loaded RTLD_LOCAL, so make libmpi global first.
      dlopen("libmpi.so.40", RTLD_NOW | RTLD_GLOBAL | RTLD_NOLOAD);
      int provided = 0, inited = 0;
      MPI_Initialized(&inited);
      if (!inited && MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS)
        throw std::runtime_error("commInit: MPI_Init_thread failed");
      MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
      MPI_Comm_rank(MPI_COMM_WORLD, &g_comm.rank);
      MPI_Comm_size(MPI_COMM_WORLD, &g_comm.size);
      g_comm.mpi = true;
      std::snprintf(g_rank_text, sizeof g_rank_text, "%d", g_comm.rank);
      struct sigaction sa {};
      sa.sa_handler = OnTerminate;
      sigemptyset(&sa.sa_mask);
      sigaction(SIGTERM, &sa, nullptr);
      if (g_comm.size > 1) {
        // Open MPI's reductions take their scratch from malloc on every call. Above glibc's mmap threshold each
        // scratch is a fresh mapping whose pages fault in again, and the freed heap top is trimmed back to the OS:
        // a 64 MiB all-reduce ran at 0.24 GB/s instead of 2.9 (bench/README.md "Data parallel"). Keep such blocks
        // on the heap unless the user set glibc's own knobs (MALLOC_MMAP_THRESHOLD_ / MALLOC_TRIM_THRESHOLD_).
        if (!std::getenv("MALLOC_MMAP_THRESHOLD_")) mallopt(M_MMAP_THRESHOLD, 1 << 30);
        if (!std::getenv("MALLOC_TRIM_THRESHOLD_")) mallopt(M_TRIM_THRESHOLD, 1 << 30);
        std::thread(Watchdog).detach();
      }
    }
#else
    if (want > 1) {
      Napi::Error e = Napi::Error::New(env, "KilnNoMpiError: the launcher started " + std::to_string(want) +
                                                " processes but Kiln's addon was built without MPI, so each would train alone. Install Open MPI "
                                                "(apt-get install openmpi-bin libopenmpi-dev) and rebuild the addon (npm run build:addon)");
      e.Set("name", Napi::String::New(env, "KilnNoMpiError"));
      throw e;
    }
#endif
    (void)want;
    g_comm.initialized = true;
  }
  Napi::Object o = Napi::Object::New(env);
  o.Set("rank", g_comm.rank);
  o.Set("size", g_comm.size);
  o.Set("backend", g_comm.mpi ? "mpi" : "single");
  return o;
}

// allReduce(buffer, op: 'sum' | 'mean', timeoutMs): in place.
Napi::Value AllReduce(const Napi::CallbackInfo& info) {
  Check("allReduce");
  const ReduceView v = ViewOf(info, "allReduce");
  const std::string op = StringOf(info[1], "allReduce(op)");
  if (op != "sum" && op != "mean") throw std::invalid_argument("allReduce: op must be 'sum' or 'mean', got '" + op + "'");
  if (op == "mean" && v.type == napi_int32_array) throw std::invalid_argument("allReduce: 'mean' needs a float buffer");
  [[maybe_unused]] const double timeoutMs = info[2].IsNumber() ? info[2].As<Napi::Number>().DoubleValue() : 0;
  if (g_comm.size == 1 || v.count == 0) return info.Env().Undefined();
#ifdef KILN_HAVE_MPI
  const size_t elem = v.elem, n = v.count;
  const MPI_Datatype t = TypeOf(v.type);
  const Bytes b{v.data, n * elem};
  // MPI counts are ints: reduce in chunks below 2^31 elements.
  constexpr size_t kChunk = size_t{1} << 30;
  for (size_t at = 0; at < n; at += kChunk) {
    const int count = static_cast<int>(std::min(kChunk, n - at));
    int rc;
    {
      Deadline d("allReduce", timeoutMs);
      rc = MPI_Allreduce(MPI_IN_PLACE, b.data + at * elem, count, t, MPI_SUM, MPI_COMM_WORLD);
    }
    if (rc != MPI_SUCCESS) throw RankFailed(info.Env(), "KilnRankFailedError: rank " + std::to_string(g_comm.rank) + ": allReduce failed: " + MpiErrorText(rc), "error");
  }
  if (op == "mean") {
    if (t == MPI_FLOAT) {
      float* p = reinterpret_cast<float*>(b.data);
      const float s = 1.0f / static_cast<float>(g_comm.size);
      for (size_t i = 0; i < n; i++) p[i] *= s;
    } else if (t == MPI_DOUBLE) {
      double* p = reinterpret_cast<double*>(b.data);
      const double s = 1.0 / g_comm.size;
      for (size_t i = 0; i < n; i++) p[i] *= s;
    } else {
      throw std::invalid_argument("allReduce: 'mean' needs a float buffer");
    }
  }
#endif
  return info.Env().Undefined();
}

// broadcast(buffer, root, timeoutMs): the root's bytes to every rank, in place.
Napi::Value Broadcast(const Napi::CallbackInfo& info) {
  Check("broadcast");
  const Bytes b = BytesOf(info[0], "broadcast(buffer)");
  const int root = info[1].IsNumber() ? info[1].As<Napi::Number>().Int32Value() : 0;
  [[maybe_unused]] const double timeoutMs = info[2].IsNumber() ? info[2].As<Napi::Number>().DoubleValue() : 0;
  if (root < 0 || root >= g_comm.size) throw std::invalid_argument("broadcast: root " + std::to_string(root) + " is not a rank of " + std::to_string(g_comm.size));
  if (g_comm.size == 1 || b.size == 0) return info.Env().Undefined();
#ifdef KILN_HAVE_MPI
  constexpr size_t kChunk = size_t{1} << 30;
  for (size_t at = 0; at < b.size; at += kChunk) {
    int rc;
    {
      Deadline d("broadcast", timeoutMs);
      rc = MPI_Bcast(b.data + at, static_cast<int>(std::min(kChunk, b.size - at)), MPI_BYTE, root, MPI_COMM_WORLD);
    }
    if (rc != MPI_SUCCESS) throw RankFailed(info.Env(), "KilnRankFailedError: rank " + std::to_string(g_comm.rank) + ": broadcast failed: " + MpiErrorText(rc), "error");
  }
#endif
  return info.Env().Undefined();
}

Napi::Value Barrier(const Napi::CallbackInfo& info) {
  Check("barrier");
  const double timeoutMs = info[0].IsNumber() ? info[0].As<Napi::Number>().DoubleValue() : 0;
  if (g_comm.size == 1) return info.Env().Undefined();
#ifdef KILN_HAVE_MPI
  int rc;
  {
    Deadline d("barrier", timeoutMs);
    rc = MPI_Barrier(MPI_COMM_WORLD);
  }
  if (rc != MPI_SUCCESS) throw RankFailed(info.Env(), "KilnRankFailedError: rank " + std::to_string(g_comm.rank) + ": barrier failed: " + MpiErrorText(rc), "error");
#endif
  (void)timeoutMs;
  return info.Env().Undefined();
}

// A blocking MPI_Allreduce (sum) on the same buffer: the baseline the benchmark compares against.
Napi::Value AllReduceBlocking(const Napi::CallbackInfo& info) {
  Check("allReduceBlocking");
  [[maybe_unused]] const ReduceView v = ViewOf(info, "allReduceBlocking");
  if (g_comm.size == 1) return info.Env().Undefined();
#ifdef KILN_HAVE_MPI
  const int rc = MPI_Allreduce(MPI_IN_PLACE, v.data, static_cast<int>(v.count), TypeOf(v.type), MPI_SUM, MPI_COMM_WORLD);
  if (rc != MPI_SUCCESS) throw std::runtime_error("allReduceBlocking: " + MpiErrorText(rc));
#endif
  return info.Env().Undefined();
}

// Ends every rank of the job now (MPI_Abort); a single process exits.
Napi::Value Abort(const Napi::CallbackInfo& info) {
  const int code = info[0].IsNumber() ? info[0].As<Napi::Number>().Int32Value() : 1;
#ifdef KILN_HAVE_MPI
  if (g_comm.mpi) MPI_Abort(MPI_COMM_WORLD, code);
#endif
  std::_Exit(code);
}

Napi::Value Finalize(const Napi::CallbackInfo& info) {
#ifdef KILN_HAVE_MPI
  int fin = 0;
  MPI_Finalized(&fin);
  if (g_comm.mpi && !fin) MPI_Finalize();
#endif
  return info.Env().Undefined();
}

}  // namespace

#ifdef KILN_HAVE_MPI
// For nccl.cc: the unique id goes from rank 0 to all over MPI.
void MpiBroadcastBytes(void* data, size_t bytes) {
  if (g_comm.mpi && g_comm.size > 1) MPI_Bcast(data, static_cast<int>(bytes), MPI_BYTE, 0, MPI_COMM_WORLD);
}
#else
void MpiBroadcastBytes(void*, size_t) {}
#endif
int CommRank() { return g_comm.rank; }
int CommSize() { return g_comm.size; }

void InitCollective(Napi::Env env, Napi::Object exports) {
  exports.Set("commInfo", Napi::Function::New(env, Info, "commInfo"));
  exports.Set("commInit", Napi::Function::New(env, Init, "commInit"));
  exports.Set("commAllReduce", Napi::Function::New(env, AllReduce, "commAllReduce"));
  exports.Set("commAllReduceBlocking", Napi::Function::New(env, AllReduceBlocking, "commAllReduceBlocking"));
  exports.Set("commBroadcast", Napi::Function::New(env, Broadcast, "commBroadcast"));
  exports.Set("commBarrier", Napi::Function::New(env, Barrier, "commBarrier"));
  exports.Set("commAbort", Napi::Function::New(env, Abort, "commAbort"));
  exports.Set("commFinalize", Napi::Function::New(env, Finalize, "commFinalize"));
}

}  // namespace kiln
