// Kernels that test the CUDA emulator itself (test/emu/emulator.test.ts): each either must run clean and give
// known values, or must be caught (memcheck, racecheck, initcheck, synccheck). Plain CUDA: nvcc compiles it too.
#include "prelude.cuh"
#include "common.cuh"
#include "ptx.cuh"

// ---- racecheck ----
// Every thread writes s[t], reads its neighbour's slot, then overwrites its own: without the second barrier the
// overwrite races with the neighbour's read (write-after-read).
KILN_KERNEL void race_war(float* out, int sync) {
  __shared__ float s[256];
  const int t = threadIdx.x;
  s[t] = float(t);
  __syncthreads();
  const float v = s[(t + 1) % 256];
  if (sync) __syncthreads();  // uniform: every thread takes the same branch
  s[t] = float(2 * t);
  out[t] = v;
}

// Inside one warp __syncwarp orders shared memory; across warps it does not (`span` = 32 or 64 threads).
KILN_KERNEL void race_warp(float* out, int sync, int stride) {
  __shared__ float s[64];
  const int t = threadIdx.x, n = blockDim.x;
  s[t] = 0.0f;
  __syncthreads();
  s[t] = float(t);
  if (sync) __syncwarp();
  out[t] = s[(t + stride) % n];
}

// block_sum (common.cuh) without its final barrier, called twice: the second call's partials[] writes race with
// the first call's reads.
__device__ float block_sum_no_final_sync(float v) {
  __shared__ float partials[32];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
  v = kiln::group_sum<32>(v);
  if (lane == 0) partials[warp] = v;
  __syncthreads();
  v = lane < nw ? partials[lane] : 0.0f;
  return kiln::group_sum<32>(v);
}
KILN_KERNEL void reduce_twice(float* out, int fixed) {
  const float a = fixed ? kiln::block_sum(float(threadIdx.x)) : block_sum_no_final_sync(float(threadIdx.x));
  const float b = fixed ? kiln::block_sum(1.0f) : block_sum_no_final_sync(1.0f);
  const float c = blockReduceMax(float(threadIdx.x), true);
  const float d = blockReduceSum(2.0f);
  if (threadIdx.x == 0) {
    out[0] = a;
    out[1] = b;
    out[2] = c;
    out[3] = d;
  }
}

// Shared atomics are ordered among themselves.
KILN_KERNEL void shared_atomics(float* out) {
  __shared__ float acc;
  if (threadIdx.x == 0) acc = 0.0f;
  __syncthreads();
  atomicAdd(&acc, 1.0f);
  __syncthreads();
  if (threadIdx.x == 0) out[0] = acc;
}

// Global memory between threads of one launch: an in-place shift reads the element its neighbour writes.
KILN_KERNEL void shift_in_place(float* b, int64_t n, int64_t by) {
  const int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
  if (i + by < n) b[i] = b[i + by] * 2.0f;
}
// Neighbouring bytes of one word written by different threads do not race.
KILN_KERNEL void write_bytes(uint8_t* out, int64_t n) {
  const int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
  if (i < n) out[i] = uint8_t(i);
}

// The order threads and blocks ran in: each takes a ticket from a global counter.
KILN_KERNEL void run_order(int* order, int* counter) {
  order[blockIdx.x * blockDim.x + threadIdx.x] = atomicAdd(counter, 1);
}

// ---- memcheck ----
KILN_KERNEL void copy_n(float* out, const float* in, int64_t n) {
  const int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
  if (i < n) out[i] = in[i];
}
KILN_KERNEL void smem_past_end(float* out, int at) {
  float* s = reinterpret_cast<float*>(kiln::kiln_smem);
  s[threadIdx.x] = 1.0f;
  __syncthreads();
  out[threadIdx.x] = threadIdx.x == 0 ? s[at] : s[threadIdx.x];
}
KILN_KERNEL void load_float4_at(float* out, const float* in, int offset) {
  const float4 v = load_float4(in + offset);
  out[threadIdx.x] = v.x + v.y + v.z + v.w;
}

// ---- synccheck ----
KILN_KERNEL void barrier_in_branch(float* out) {
  if (threadIdx.x < 128) __syncthreads();
  out[threadIdx.x] = 1.0f;
}
KILN_KERNEL void shuffle_half_warp(float* out) {
  float v = float(threadIdx.x);
  if ((threadIdx.x & 31) < 16) v = __shfl_xor_sync(0xffffffffu, v, 1);  // lanes 16..31 never arrive
  out[threadIdx.x] = v;
}
KILN_KERNEL void shuffle_not_in_mask(float* out) {
  out[threadIdx.x] = __shfl_xor_sync(0x0000ffffu, float(threadIdx.x), 1);  // lanes 16..31 call without their bit
}
KILN_KERNEL void shuffle_two_sites(float* out) {
  float v = float(threadIdx.x);
  if (threadIdx.x & 1)
    v = __shfl_xor_sync(0xffffffffu, v, 1);
  else
    v = __shfl_xor_sync(0xffffffffu, v, 1) + 1.0f;
  out[threadIdx.x] = v;
}

// ---- warp collectives: values ----
// kind 0 idx, 1 up, 2 down, 3 xor; the value of lane l is 100 + l.
KILN_KERNEL void shuffles(int* out, int kind, int arg, int width) {
  const int v = 100 + int(threadIdx.x);
  int r = 0;
  if (kind == 0) r = __shfl_sync(0xffffffffu, v, arg, width);
  if (kind == 1) r = __shfl_up_sync(0xffffffffu, v, unsigned(arg), width);
  if (kind == 2) r = __shfl_down_sync(0xffffffffu, v, unsigned(arg), width);
  if (kind == 3) r = __shfl_xor_sync(0xffffffffu, v, arg, width);
  out[threadIdx.x] = r;
}
KILN_KERNEL void votes(unsigned* out, const int* pred) {
  const int p = pred[threadIdx.x];
  out[threadIdx.x] = __ballot_sync(0xffffffffu, p);
  out[32 + threadIdx.x] = unsigned(__any_sync(0xffffffffu, p));
  out[64 + threadIdx.x] = unsigned(__all_sync(0xffffffffu, p));
}

// ---- tensor-core PTX: one warp; lane l's registers are a[4l..], b[2l..], c[4l..]; d[4l..] out ----
KILN_KERNEL void mma(float* d, const uint32_t* a, const uint32_t* b, const float* c, int kind) {
  const int l = threadIdx.x;
  uint32_t ar[4] = {a[4 * l], a[4 * l + 1], a[4 * l + 2], a[4 * l + 3]}, br[2] = {b[2 * l], b[2 * l + 1]};
  float cr[4] = {c[4 * l], c[4 * l + 1], c[4 * l + 2], c[4 * l + 3]}, dr[4];
  if (kind == 0) kiln::ptx::mma_m16n8k16_bf16(dr, ar, br, cr);
  if (kind == 1) kiln::ptx::mma_m16n8k16_f16(dr, ar, br, cr);
  if (kind == 2) kiln::ptx::mma_m16n8k8_tf32(dr, ar, br, cr);
  for (int i = 0; i < 4; ++i) d[4 * l + i] = dr[i];
}

// ldmatrix: 4 matrices of 8x8 b16 with value 64 j + 8 r + c; row r of matrix j lives at slot (8 j + r) * 5 % 32
// of the tile (so lanes must follow their addresses); out[4 l + j] = lane l's register j.
template <int N, bool TRANS>
__device__ void ldmatrix_body(uint32_t* out) {
  __shared__ __align__(16) uint16_t tile[32][8];
  const int l = threadIdx.x;
  for (int e = l; e < 256; e += 32) {
    const int mr = e / 8, c = e % 8;  // matrix row 8 j + r
    tile[(mr * 5) % 32][c] = uint16_t(64 * (mr / 8) + 8 * (mr % 8) + c);
  }
  __syncthreads();
  uint32_t r[4] = {0, 0, 0, 0};
  kiln::ptx::ldmatrix<N, TRANS>(r, &tile[(l * 5) % 32][0]);
  for (int j = 0; j < 4; ++j) out[4 * l + j] = r[j];
}
KILN_KERNEL void ldmatrix_x1(uint32_t* out) { ldmatrix_body<1, false>(out); }
KILN_KERNEL void ldmatrix_x2(uint32_t* out) { ldmatrix_body<2, false>(out); }
KILN_KERNEL void ldmatrix_x4(uint32_t* out) { ldmatrix_body<4, false>(out); }
KILN_KERNEL void ldmatrix_x1_trans(uint32_t* out) { ldmatrix_body<1, true>(out); }
KILN_KERNEL void ldmatrix_x2_trans(uint32_t* out) { ldmatrix_body<2, true>(out); }
KILN_KERNEL void ldmatrix_x4_trans(uint32_t* out) { ldmatrix_body<4, true>(out); }

// cp.async: group 0 copies g[0..32), group 1 copies g[32..64) with the upper half zero-filled (src-size 0).
// early = 1 reads group 1's tile before waiting for it: caught by initcheck.
KILN_KERNEL void cp_async_groups(float* out, const float* g, int early) {
  __shared__ __align__(16) float s0[32], s1[32];
  const int t = threadIdx.x;
  kiln::ptx::cp_async<4>(&s0[t], g + t);
  kiln::ptx::cp_async_commit();
  kiln::ptx::cp_async<4>(&s1[t], g + 32 + t, t < 16 ? 4 : 0);
  kiln::ptx::cp_async_commit();
  kiln::ptx::cp_async_wait<1>();
  __syncthreads();
  out[t] = s0[t];
  if (early) out[64 + t] = s1[t];
  kiln::ptx::cp_async_wait<0>();
  __syncthreads();
  out[32 + t] = s1[t];
}

// ---- numerics: float -> bf16 / f16 bits, rounded to nearest even ----
KILN_KERNEL void to_half_bits(uint16_t* bf, uint16_t* hf, const float* x, int64_t n) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
    const __nv_bfloat16 b = __float2bfloat16_rn(x[i]);
    const __half h = __float2half_rn(x[i]);
    bf[i] = *reinterpret_cast<const uint16_t*>(&b);
    hf[i] = *reinterpret_cast<const uint16_t*>(&h);
  }
}

// ---- built-in variables over a 3-D grid of 3-D blocks ----
KILN_KERNEL void indices(int* out) {
  const int tid = threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
  const int bid = blockIdx.x + gridDim.x * (blockIdx.y + gridDim.y * blockIdx.z);
  const int n = blockDim.x * blockDim.y * blockDim.z;
  out[bid * n + tid] = 1000 * bid + tid;
}

// A wild pointer far outside device memory (the unchecked build faults; the emulator reports it).
KILN_KERNEL void wild(float* out, int64_t delta) { out[delta] = 1.0f; }
