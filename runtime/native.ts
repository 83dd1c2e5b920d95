/**
 * The native addon (runtime/native/), loaded lazily so that code which only compiles kernels (for
 * instance a CUDA build on a machine without a GPU) works before the addon is built.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { addonPath } from './paths';

/** An opaque handle owned by the addon (a type-tagged napi External). */
export type NativeHandle = { readonly __kilnNativeHandle: unique symbol };

/** Raw bytes the addon reads or writes in place. */
export type HostBytes = ArrayBuffer | ArrayBufferView;

export interface CudaDeviceInfo {
  readonly name: string;
  readonly computeCapability: readonly [number, number];
  readonly freeBytes: number;
  readonly totalBytes: number;
}

export interface NativeAddon {
  /** A zeroed ArrayBuffer whose data is 64-byte aligned; freed when collected. */
  allocArena(bytes: number): ArrayBuffer;

  /** dlopen(soPath, RTLD_NOW | RTLD_LOCAL). */
  cpuLoad(soPath: string): NativeHandle;
  cpuHasSymbol(lib: NativeHandle, symbol: string): boolean;
  /** Calls `extern "C" int symbol(uint8_t* arena, const int64_t* args)`; throws (with `code`) if it returns non-zero. */
  cpuCall(lib: NativeHandle, symbol: string, arena: HostBytes, args?: BigInt64Array | Float64Array): void;
  cpuClose(lib: NativeHandle): void;

  /** Never throws. `reason` says why CUDA cannot be used (empty when ok). `driverPath`: a driver library other
   * than libcuda.so.1 / $KILN_LIBCUDA (Kiln's CUDA emulator). */
  cudaAvailable(driverPath?: string): { ok: boolean; reason: string };
  /** Opens (once per driver) the device's primary context and the launch stream; returns the session handle. */
  cudaInit(ordinal?: number, driverPath?: string): CudaDeviceInfo & { session: NativeHandle; driver: string };
  cudaMemInfo(session: NativeHandle): { freeBytes: number; totalBytes: number };
  cudaMalloc(session: NativeHandle, bytes: number | bigint): bigint;
  cudaFree(session: NativeHandle, dptr: bigint): void;
  cudaMemcpyHtoD(session: NativeHandle, dptr: bigint, byteOffset: number | bigint, src: HostBytes): void;
  cudaMemcpyDtoH(session: NativeHandle, dst: HostBytes, dptr: bigint, byteOffset: number | bigint): void;
  cudaLoadModule(session: NativeHandle, image: Uint8Array): NativeHandle;
  cudaUnloadModule(module: NativeHandle): void;
  cudaGetFunction(module: NativeHandle, name: string): NativeHandle;
  /** Each kernel parameter is one 8-byte slot of `params`. */
  cudaLaunch(
    fn: NativeHandle,
    grid: readonly [number, number, number],
    block: readonly [number, number, number],
    sharedBytes: number,
    params?: BigInt64Array,
  ): void;
  cudaSynchronize(session: NativeHandle): void;
  /** The launch stream's handle (CUstream, which is also a cudaStream_t). */
  cudaStream(session: NativeHandle): bigint;
  /** The emulator's memcheck bounds the next launch by these buffers ([lo, hi) pairs); false on a real driver. */
  cudaEmuAnnotate(session: NativeHandle, ranges: BigUint64Array, names: string): boolean;
  /** A setting of the emulator (KILN_EMU_SCHEDULE, KILN_EMU_CHECKS); false on a real driver. */
  cudaEmuConfigure(session: NativeHandle, key: string, value: string): boolean;
  cudaEventCreate(session: NativeHandle): NativeHandle;
  cudaEventRecord(event: NativeHandle): void;
  /** Milliseconds between two recorded events; waits for `end`. */
  cudaEventElapsed(start: NativeHandle, end: NativeHandle): number;

  /** Collectives (collective.cc): whether the addon was built with MPI and whether a launcher started us. */
  commInfo(): { mpi: boolean; library: string; launched: boolean; launcherSize: number };
  /** Joins the job (MPI_Init when launched by mpirun/srun); idempotent. */
  commInit(): { rank: number; size: number; backend: 'mpi' | 'single' };
  /** In place, blocking; `timeoutMs` 0: wait forever. Past it (or on SIGTERM) the process writes a KilnRankFailedError
   * and the job ends; an error MPI returns is thrown as one (`kind` 'error'). */
  commAllReduce(buffer: Float32Array | Float64Array | Int32Array, op: 'sum' | 'mean', timeoutMs: number): void;
  /** A plain blocking MPI_Allreduce (sum) on the buffer: the benchmark's baseline. */
  commAllReduceBlocking(buffer: Float32Array | Float64Array | Int32Array): void;
  commBroadcast(buffer: HostBytes, root: number, timeoutMs: number): void;
  commBarrier(timeoutMs: number): void;
  /** MPI_Abort: ends every rank of the job. */
  commAbort(code: number): never;
  commFinalize(): void;
  /** NCCL (nccl.cc), dlopen'd: libnccl.so.2 or $KILN_LIBNCCL. */
  ncclAvailable(): { ok: boolean; reason: string; version: number };
  /** One communicator over the job; the unique id travels over MPI (commInit and cudaInit first). */
  ncclInit(): void;
  ncclAllReduce(dptr: bigint, count: number, dtype: string, op: 'sum' | 'mean', stream: bigint): void;
  ncclBroadcast(dptr: bigint, count: number, dtype: string, root: number, stream: bigint): void;
}

let addon: NativeAddon | undefined;

/** The addon, loaded on first use. Throws a one-line fix if it has not been built. */
export function native(): NativeAddon {
  if (addon !== undefined) return addon;
  if (!existsSync(addonPath)) {
    throw new Error(`Kiln's native addon is not built: run npm install (expected ${addonPath})`);
  }
  // OpenMP threads that spin at barriers lose whole scheduler slices when another process shares the cores
  // (measured: a conv went from 20 ms to 244 ms). Sleep instead, unless the user chose a policy. libgomp reads
  // this when the first OpenMP library loads, which is after this point.
  process.env.OMP_WAIT_POLICY ??= 'passive';
  const require = createRequire(import.meta.url);
  addon = require(addonPath) as NativeAddon;
  return addon;
}

/** Allocates a host arena: see NativeAddon.allocArena. */
export function allocArena(bytes: number): ArrayBuffer {
  return native().allocArena(bytes);
}
