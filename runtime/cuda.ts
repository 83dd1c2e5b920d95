/**
 * CUDA back end: generated CUDA → nvcc → a cached cubin → a module launched through the driver API.
 *
 * Compiling needs only nvcc, so cubins build (and their compile errors are tested) on machines without a
 * GPU. Running needs the NVIDIA driver, which the addon dlopens; without it CudaDevice.open() throws an
 * error saying so.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import path from 'node:path';
import { buildCached, cacheKey, includeDirsDigest, type CachedArtifact } from './cache';
import { native, type CudaDeviceInfo, type HostBytes, type NativeHandle } from './native';
import { cudaKernelsDir } from './paths';
import { runCompiler, toolVersion } from './toolchain';

export { KernelCompileError } from './toolchain';

/** Hopper with its arch-specific features (wgmma, TMA); override with `arch`. */
export const DEFAULT_CUDA_ARCH = 'sm_90a';

export interface CudaCompileOptions {
  /** Default $KILN_NVCC, else nvcc on PATH, else /usr/local/cuda/bin/nvcc. */
  readonly nvcc?: string;
  readonly arch?: string;
  readonly extraFlags?: readonly string[];
  /** Searched after kernels/cuda; their files join the cache key like the prelude's. */
  readonly includeDirs?: readonly string[];
}

export function nvccPath(): string {
  if (process.env.KILN_NVCC) return process.env.KILN_NVCC;
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    if (dir !== '' && existsSync(path.join(dir, 'nvcc'))) return path.join(dir, 'nvcc');
  }
  return '/usr/local/cuda/bin/nvcc';
}

let nvccOk: boolean | undefined;

/** Whether nvcc runs here (memoised). */
export function nvccAvailable(): boolean {
  nvccOk ??= spawnSync(nvccPath(), ['--version'], { stdio: 'ignore' }).status === 0;
  return nvccOk;
}

export interface CompiledCubin extends CachedArtifact {
  /** The cubin's bytes, for CudaDevice.loadModule. */
  read(): Buffer;
}

/** Compiles `source` to a cubin in the kernel cache (or finds it there). Needs no GPU. */
export async function compileCuda(source: string, opts: CudaCompileOptions = {}): Promise<CompiledCubin> {
  const nvcc = opts.nvcc ?? nvccPath();
  const includeDirs = [cudaKernelsDir, ...(opts.includeDirs ?? [])];
  const flags = ['-cubin', `-arch=${opts.arch ?? DEFAULT_CUDA_ARCH}`, '-O3', '-std=c++17', ...(opts.extraFlags ?? [])];
  const key = cacheKey([
    'kiln-cuda-v1',
    nvcc,
    // The toolkit's own headers (cuda_bf16.h, ...) change only with it, and so with this string.
    await toolVersion(nvcc, 'KILN_NVCC'),
    flags.join(' '),
    includeDirsDigest(includeDirs),
    source,
  ]);
  const artifact = await buildCached({
    key,
    source,
    sourceExt: 'cu',
    artifactExt: 'cubin',
    compile: (src, out) =>
      runCompiler(nvcc, [...flags, ...includeDirs.flatMap((d) => ['-I', d]), src, '-o', out], src, 'KILN_NVCC'),
  });
  return { ...artifact, read: () => readFileSync(artifact.artifactPath) };
}

/** Compiles a program with its host side (the generated kiln_run launcher) to a shared library: device code for
 * `arch` in the fat binary, cudart linked statically. Loaded like a CPU library (runtime/cpu.ts). Needs no GPU.
 * Given several translation units (render/cuda.ts `units`), each is compiled by its own nvcc, as many at once as
 * there are cores, then linked. */
export async function compileCudaHost(units: string | readonly string[], opts: CudaCompileOptions = {}): Promise<CachedArtifact> {
  const parts = typeof units === 'string' ? [units] : units;
  const nvcc = opts.nvcc ?? nvccPath();
  const includeDirs = [cudaKernelsDir, ...(opts.includeDirs ?? [])];
  const flags = ['-Xcompiler', '-fPIC', `-arch=${opts.arch ?? DEFAULT_CUDA_ARCH}`, '-O3', '-std=c++17', ...(opts.extraFlags ?? [])];
  const key = cacheKey(['kiln-cuda-host-v2', nvcc, await toolVersion(nvcc, 'KILN_NVCC'), flags.join(' '), includeDirsDigest(includeDirs), ...parts]);
  const separator = '\n// ==== next translation unit ====\n';
  return buildCached({
    key, source: parts.join(separator), sourceExt: 'cu', artifactExt: 'cuda.so',
    compile: async (src, out) => {
      const files = parts.map((_, i) => `${out}.${i}.cu`), objs = parts.map((_, i) => `${out}.${i}.o`);
      try {
        parts.forEach((p, i) => writeFileSync(files[i], p));
        const queue = parts.map((_, i) => i);
        const worker = async () => {
          for (let i = queue.shift(); i !== undefined; i = queue.shift())
            await runCompiler(nvcc, [...flags, '-c', ...includeDirs.flatMap((d) => ['-I', d]), files[i], '-o', objs[i]], parts.length > 1 ? files[i] : src, 'KILN_NVCC');
        };
        await Promise.all(Array.from({ length: Math.min(parts.length, Math.max(1, cpus().length)) }, worker));
        await runCompiler(nvcc, ['-shared', `-arch=${opts.arch ?? DEFAULT_CUDA_ARCH}`, ...objs, '-o', out], src, 'KILN_NVCC');
      } finally {
        for (const f of [...files, ...objs]) rmSync(f, { force: true });
      }
    },
  });
}

/** Whether kernels can run here, and if not why. Never throws. `driver`: another driver library (the emulator's). */
export function cudaAvailable(driver?: string): { ok: boolean; reason: string } {
  try {
    return native().cudaAvailable(driver);
  } catch (e) {
    return { ok: false, reason: (e as Error).message };
  }
}

export type Dim3 = readonly [number, number, number];

/** Kernel parameters: one 8-byte slot each (device pointers, integers, or f32Param for floats). */
export type LaunchParams = BigInt64Array | readonly (bigint | number)[];

/** A float kernel parameter: its bits in the low half of the slot, which is what a `float` param reads. */
export function f32Param(x: number): bigint {
  const view = new DataView(new ArrayBuffer(4));
  view.setFloat32(0, x, true);
  return BigInt(view.getUint32(0, true));
}

/** A kernel in a loaded module. */
export class CudaKernel {
  constructor(
    readonly name: string,
    /** @internal */ readonly handle: NativeHandle,
  ) {}
}

export class CudaModule {
  constructor(private readonly handle: NativeHandle) {}

  kernel(name: string): CudaKernel {
    return new CudaKernel(name, native().cudaGetFunction(this.handle, name));
  }

  /** Frees the module's code on the device; its kernels can no longer be launched. */
  unload(): void {
    native().cudaUnloadModule(this.handle);
  }
}

/**
 * The GPU as Kiln uses it: one device, one stream, and one device arena allocated up front, which the
 * memory planner carves into tensors by byte offset (as on the host).
 */
export class CudaDevice {
  private arenaBase: bigint | undefined;
  private arenaBytes = 0;
  private readonly session: NativeHandle;
  /** The driver library in use: libcuda.so.1 ($KILN_LIBCUDA), or the CUDA emulator's. */
  readonly driver: string;

  private constructor(info: CudaDeviceInfo & { session: NativeHandle; driver: string }, readonly emulated: boolean) {
    this.info = { name: info.name, computeCapability: info.computeCapability, freeBytes: info.freeBytes, totalBytes: info.totalBytes };
    this.session = info.session;
    this.driver = info.driver;
  }
  readonly info: CudaDeviceInfo;

  /** Initialises the driver on device `ordinal`. Throws, saying why, when there is no usable driver or GPU.
   * `driver` loads another driver library instead (runtime/cuda-emu.ts opens the emulator this way). */
  static open(ordinal = 0, opts: { driver?: string; emulated?: boolean } = {}): CudaDevice {
    return new CudaDevice(native().cudaInit(ordinal, opts.driver), opts.emulated ?? false);
  }

  memInfo(): { freeBytes: number; totalBytes: number } {
    return native().cudaMemInfo(this.session);
  }

  /**
   * Allocates the device arena and returns its base. A later call for more bytes replaces it (freeing the
   * old one first, so the larger one can use its memory); its contents are not kept.
   */
  allocArena(bytes: number): bigint {
    if (this.arenaBase !== undefined && bytes <= this.arenaBytes) return this.arenaBase;
    this.freeArena();
    this.arenaBase = native().cudaMalloc(this.session, bytes);
    this.arenaBytes = bytes;
    return this.arenaBase;
  }

  /** The device address `byteOffset` bytes into the arena, for kernel parameters. */
  ptr(byteOffset: number): bigint {
    return this.base() + BigInt(byteOffset);
  }

  /** Copies all of `src` to the arena at `byteOffset`. */
  upload(byteOffset: number, src: HostBytes): void {
    this.checkRange(byteOffset, src.byteLength);
    native().cudaMemcpyHtoD(this.session, this.base(), byteOffset, src);
  }

  /** Fills all of `dst` from the arena at `byteOffset`. Waits for queued kernels first. */
  download(dst: HostBytes, byteOffset: number): void {
    this.checkRange(byteOffset, dst.byteLength);
    native().cudaMemcpyDtoH(this.session, dst, this.base(), byteOffset);
  }

  /** A cubin on a GPU; on the emulator, the image of an emulated module (runtime/cuda-emu.ts). */
  loadModule(cubin: Uint8Array | { read(): Buffer }): CudaModule {
    const image = cubin instanceof Uint8Array ? cubin : cubin.read();
    return new CudaModule(native().cudaLoadModule(this.session, image));
  }

  /** Names the buffers the next launch may touch (arena byte ranges). The emulator's memcheck bounds every
   * global access of that launch by them and names them in its reports; a real driver ignores this. */
  annotateNextLaunch(buffers: readonly { readonly name: string; readonly offset: number; readonly bytes: number }[]): void {
    if (!this.emulated) return;
    const ranges = new BigUint64Array(buffers.length * 2);
    buffers.forEach((b, i) => { ranges[2 * i] = this.ptr(b.offset); ranges[2 * i + 1] = this.ptr(b.offset + b.bytes); });
    native().cudaEmuAnnotate(this.session, ranges, buffers.map((b) => b.name.replaceAll('\n', ' ')).join('\n'));
  }

  /** Queues `kernel` on the stream; returns before it runs. */
  launch(kernel: CudaKernel, grid: Dim3, block: Dim3, sharedBytes: number, params: LaunchParams): void {
    const slots = params instanceof BigInt64Array ? params : BigInt64Array.from(params, (p) => BigInt(p));
    native().cudaLaunch(kernel.handle, grid, block, sharedBytes, slots);
  }

  /** Sets an emulator setting (KILN_EMU_SCHEDULE, KILN_EMU_CHECKS: docs/cuda-emulator.md) for the following launches;
   * a real driver has none (returns false). */
  configureEmulator(key: 'KILN_EMU_SCHEDULE' | 'KILN_EMU_CHECKS', value: string): boolean {
    return this.emulated && native().cudaEmuConfigure(this.session, key, value);
  }

  /** The launch stream, for a generated host launcher (kiln_run's args[1]). */
  get stream(): bigint { return native().cudaStream(this.session); }

  /** Waits for all queued work; errors raised inside kernels surface here. */
  sync(): void {
    native().cudaSynchronize(this.session);
  }

  /** Milliseconds of GPU time taken by the work that `body` queues, measured with events. */
  time(body: () => void): number {
    const n = native();
    const start = n.cudaEventCreate(this.session);
    const end = n.cudaEventCreate(this.session);
    n.cudaEventRecord(start);
    body();
    n.cudaEventRecord(end);
    return n.cudaEventElapsed(start, end);
  }

  /** Frees the arena. The context stays for the process (other handles may still use it). */
  freeArena(): void {
    if (this.arenaBase !== undefined) native().cudaFree(this.session, this.arenaBase);
    this.arenaBase = undefined;
    this.arenaBytes = 0;
  }

  private base(): bigint {
    if (this.arenaBase === undefined) throw new Error('CudaDevice: call allocArena() before using the arena');
    return this.arenaBase;
  }

  private checkRange(byteOffset: number, bytes: number): void {
    if (byteOffset < 0 || byteOffset + bytes > this.arenaBytes) {
      throw new RangeError(`CudaDevice: [${byteOffset}, ${byteOffset + bytes}) is outside the ${this.arenaBytes}-byte arena`);
    }
  }
}
