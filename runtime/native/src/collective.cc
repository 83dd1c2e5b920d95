// Collectives across processes: MPI (Open MPI, or any MPI the launcher brings) when the addon was built with
// it, else a single-process stand-in that says so as soon as it is asked for more than one rank.
//
// Faults. Every collective is non-blocking underneath (MPI_Iallreduce / MPI_Ibcast / MPI_Ibarrier) and waited on
// by a polling loop that gives up after a deadline, so a peer that never arrives is a named error, not a hang.
// When a rank dies, mpirun (or srun) ends the job by sending SIGTERM to the others: our handler records it, the
// waiting loop throws a KilnRankFailedError to JS (which prints it and exits), and outside a collective the
// handler itself writes the same one-line message and exits. Errors are returned, not fatal
// (MPI_ERRORS_RETURN), so a broken connection also becomes a JS error.
#include <dlfcn.h>
#include <sched.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <string>

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

// Set by SIGTERM; read by the waiting loop. `g_waiting` tells the handler whether a loop will see the flag.
volatile sig_atomic_t g_terminated = 0;
volatile sig_atomic_t g_waiting = 0;
// A KilnRankFailedError for the termination already went to JS (which prints it): a later SIGTERM exits quietly.
volatile sig_atomic_t g_reported = 0;
char g_term_message[256] = "KilnRankFailedError: the launcher is ending the job (another rank failed: its message names it)\n";

[[maybe_unused]] void OnTerminate(int) {
  g_terminated = 1;
  if (g_waiting) return;
  if (g_reported) _exit(143);
  ssize_t ignored = write(2, g_term_message, std::strlen(g_term_message));
  (void)ignored;
  _exit(143);
}

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

// Waits for `req`, polling, until done, the deadline (timeoutMs > 0) or a SIGTERM.
void Wait(Napi::Env env, MPI_Request& req, double timeoutMs, const char* op) {
  using clock = std::chrono::steady_clock;
  const auto start = clock::now();
  g_waiting = 1;
  for (unsigned spins = 0;; spins++) {
    int done = 0;
    const int rc = MPI_Test(&req, &done, MPI_STATUS_IGNORE);
    if (rc != MPI_SUCCESS) {
      g_waiting = 0;
      throw RankFailed(env, "KilnRankFailedError: rank " + std::to_string(g_comm.rank) + ": " + op + " failed: " + MpiErrorText(rc), "error");
    }
    if (done) break;
    if (g_terminated) {
      g_waiting = 0;
      g_reported = 1;
      throw RankFailed(env, std::string("KilnRankFailedError: rank ") + std::to_string(g_comm.rank) + ": the launcher ended the job during " + op +
                                " (another rank failed: the launcher's message names it)", "terminated");
    }
    if ((spins & 255) == 255) {
      const double ms = std::chrono::duration<double, std::milli>(clock::now() - start).count();
      if (timeoutMs > 0 && ms > timeoutMs) {
        g_waiting = 0;
        throw RankFailed(env, std::string("KilnRankFailedError: rank ") + std::to_string(g_comm.rank) + ": " + op + " waited " +
                                  std::to_string(static_cast<long>(ms / 1000)) + " s for the other ranks (KILN_COLLECTIVE_TIMEOUT); one of them has stopped or hangs",
                         "timeout");
      }
      // Give the core to a computing rank when processes outnumber cores; MPI_Test still drives progress.
      sched_yield();
    }
  }
  g_waiting = 0;
}

MPI_Datatype TypeOf(const Napi::Value& v, size_t* elem) {
  if (v.IsTypedArray()) {
    switch (v.As<Napi::TypedArray>().TypedArrayType()) {
      case napi_float32_array: *elem = 4; return MPI_FLOAT;
      case napi_float64_array: *elem = 8; return MPI_DOUBLE;
      case napi_int32_array: *elem = 4; return MPI_INT32_T;
      default: break;
    }
  }
  throw std::invalid_argument("allReduce: the buffer must be a Float32Array, Float64Array or Int32Array");
}
#endif

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
      std::snprintf(g_term_message, sizeof g_term_message,
                    "KilnRankFailedError: rank %d: the launcher ended the job (another rank failed: the launcher's message names it)\n", g_comm.rank);
      struct sigaction sa {};
      sa.sa_handler = OnTerminate;
      sigemptyset(&sa.sa_mask);
      sigaction(SIGTERM, &sa, nullptr);
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
  const Bytes b = BytesOf(info[0], "allReduce(buffer)");
  const std::string op = StringOf(info[1], "allReduce(op)");
  if (op != "sum" && op != "mean") throw std::invalid_argument("allReduce: op must be 'sum' or 'mean', got '" + op + "'");
  [[maybe_unused]] const double timeoutMs = info[2].IsNumber() ? info[2].As<Napi::Number>().DoubleValue() : 0;
  if (g_comm.size == 1 || b.size == 0) return info.Env().Undefined();
#ifdef KILN_HAVE_MPI
  size_t elem = 0;
  MPI_Datatype t = TypeOf(info[0], &elem);
  const size_t n = b.size / elem;
  // MPI counts are ints: reduce in chunks below 2^31 elements.
  constexpr size_t kChunk = size_t{1} << 30;
  for (size_t at = 0; at < n; at += kChunk) {
    const int count = static_cast<int>(std::min(kChunk, n - at));
    MPI_Request req;
    const int rc = MPI_Iallreduce(MPI_IN_PLACE, b.data + at * elem, count, t, MPI_SUM, MPI_COMM_WORLD, &req);
    if (rc != MPI_SUCCESS) throw RankFailed(info.Env(), "KilnRankFailedError: allReduce failed: " + MpiErrorText(rc), "error");
    Wait(info.Env(), req, timeoutMs, "allReduce");
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
    MPI_Request req;
    const int rc = MPI_Ibcast(b.data + at, static_cast<int>(std::min(kChunk, b.size - at)), MPI_BYTE, root, MPI_COMM_WORLD, &req);
    if (rc != MPI_SUCCESS) throw RankFailed(info.Env(), "KilnRankFailedError: broadcast failed: " + MpiErrorText(rc), "error");
    Wait(info.Env(), req, timeoutMs, "broadcast");
  }
#endif
  return info.Env().Undefined();
}

Napi::Value Barrier(const Napi::CallbackInfo& info) {
  Check("barrier");
  const double timeoutMs = info[0].IsNumber() ? info[0].As<Napi::Number>().DoubleValue() : 0;
  if (g_comm.size == 1) return info.Env().Undefined();
#ifdef KILN_HAVE_MPI
  MPI_Request req;
  const int rc = MPI_Ibarrier(MPI_COMM_WORLD, &req);
  if (rc != MPI_SUCCESS) throw RankFailed(info.Env(), "KilnRankFailedError: barrier failed: " + MpiErrorText(rc), "error");
  Wait(info.Env(), req, timeoutMs, "barrier");
#endif
  (void)timeoutMs;
  return info.Env().Undefined();
}

// A blocking MPI_Allreduce (sum) on the same buffer: the baseline the benchmark compares against.
Napi::Value AllReduceBlocking(const Napi::CallbackInfo& info) {
  Check("allReduceBlocking");
  [[maybe_unused]] const Bytes b = BytesOf(info[0], "allReduceBlocking(buffer)");
  if (g_comm.size == 1) return info.Env().Undefined();
#ifdef KILN_HAVE_MPI
  size_t elem = 0;
  MPI_Datatype t = TypeOf(info[0], &elem);
  const int rc = MPI_Allreduce(MPI_IN_PLACE, b.data, static_cast<int>(b.size / elem), t, MPI_SUM, MPI_COMM_WORLD);
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
