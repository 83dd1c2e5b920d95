/** A compiled program on an NVIDIA GPU: one device arena (planned, plus the templates' workspace), the
 * generated kernels loaded from the cubin, launched in order on one stream. The same class runs the program on
 * Kiln's CUDA emulator (backend 'cuda-emu'): the same source, launches, arena layout and uploads, through the
 * emulator's driver; there each launch first names its buffers, so memcheck reports name them. */
import type { Node } from './ir/node';
import { numel } from './ir/shape';
import { byteSize } from './ir/dtype';
import { CudaDevice, type CompiledCubin, type CudaKernel } from '../runtime/cuda';
import type { CompiledEmuModule } from '../runtime/cuda-emu';
import { CompiledLibrary } from '../runtime/cpu';
import { native } from '../runtime/native';
import type { CachedArtifact } from '../runtime/cache';
import { KILN_MSG_BYTES } from './render/cuda-host';
import type { CudaLaunch } from './render/cuda';
import { firstNonFinite, hostArray, Program, type HostArray, type LoweredProgram } from './program';
import { buffersOf } from './codegen/buffers';
import { KilnNonFiniteError } from './ir/errors';

export interface CudaParts extends LoweredProgram {
  readonly source: string;
  /** The cubin (GPU) or the emulated module (emulator): its source path and the image the driver loads. Absent
   * when the program runs only through its host launcher. */
  readonly cubin?: CompiledCubin | CompiledEmuModule;
  /** A shared library exporting the generated `kiln_run` (render/cuda-host.ts): the GPU build (nvcc -shared) or the
   * emulated module, which holds it too. With it, a run is one native call. */
  readonly host?: CachedArtifact;
  readonly launches: readonly CudaLaunch[];
  readonly scratchBytes: number;
  /** Stop at the first kernel that writes NaN or ±Inf (KilnNonFiniteError), as the C++ back end does. */
  readonly checkNans?: boolean;
  /** With the host launcher: capture the launch sequence into a CUDA Graph on the first run and replay it. */
  readonly graph?: boolean;
}

type Annotation = readonly { name: string; offset: number; bytes: number }[];

export class CudaProgram extends Program {
  readonly backend: 'cuda' | 'cuda-emu';
  private base: bigint;
  private fns: { fn: CudaKernel; l: CudaLaunch; bufs: Annotation }[] = [];
  private launcher?: { lib: CompiledLibrary; msg: Uint8Array };

  declare readonly parts: CudaParts;
  /** `device`: the GPU (default) or the emulated device (runtime/cuda-emu.ts openEmulatedDevice). */
  constructor(cuda: CudaParts, private readonly device: CudaDevice = CudaDevice.open()) {
    super(cuda);
    this.backend = device.emulated ? 'cuda-emu' : 'cuda';
    const scratchOffset = Math.ceil(cuda.plan.arenaBytes / 256) * 256;
    this.base = this.device.allocArena(scratchOffset + cuda.scratchBytes + 256);
    if (cuda.host && !cuda.checkNans) {
      this.launcher = { lib: new CompiledLibrary(cuda.host, native().cpuLoad(cuda.host.artifactPath)), msg: new Uint8Array(KILN_MSG_BYTES) };
    } else {
      if (!cuda.cubin) throw new Error('CudaProgram: no module to launch from (neither a cubin nor a host launcher)');
      const mod = this.device.loadModule(cuda.cubin);
      const label = new Map(cuda.plan.buffers.map((b) => [b.id, b.label]));
      const scratch = cuda.scratchBytes > 0 ? [{ name: 'scratch (template workspace)', offset: scratchOffset, bytes: cuda.scratchBytes }] : [];
      this.fns = cuda.launches.map((l) => ({
        fn: mod.kernel(l.kernel), l,
        bufs: device.emulated ? [...(l.bufs ?? []).map((b) => ({ name: `b${b} ${label.get(b) ?? ''}`.trim(), offset: cuda.info.get(b)!.offset, bytes: cuda.info.get(b)!.bytes })), ...scratch] : [],
      }));
    }
    this.initialize();
  }
  get source(): string { return this.parts.source; }
  get sourcePath(): string { return (this.parts.cubin ?? this.parts.host)!.sourcePath; }
  /** 'host': one native call to the generated kiln_run per run; 'list': one launch call per kernel (named buffers for
   * the emulator's memcheck, and the per-kernel non-finite check). */
  get launchMode(): 'host' | 'list' { return this.launcher ? 'host' : 'list'; }

  protected write(n: Node, data: HostArray): void { this.device.upload(this.offsetOf(n), data); }
  protected read(n: Node): HostArray {
    const out = hostArray(new ArrayBuffer(Math.max(numel(n.shape) * byteSize[n.dtype], 1)), 0, n.dtype, numel(n.shape));
    this.device.download(out, this.offsetOf(n));
    return out;
  }
  protected execute(): void {
    this.launchAll();
    this.device.sync();
  }

  /** Queues one run's kernels (or one kiln_run call) on the stream without waiting for them. */
  private launchAll(): void {
    if (this.launcher) {
      const { lib, msg } = this.launcher;
      try {
        lib.call('kiln_run', msg, BigInt64Array.of(this.base, this.device.stream, this.parts.graph ? 1n : 0n));
      } catch (e) {
        const end = msg.indexOf(0);
        throw new Error(new TextDecoder().decode(msg.subarray(0, end < 0 ? msg.length : end)) || (e as Error).message);
      }
      return;
    }
    this.fns.forEach(({ fn, l, bufs }, i) => {
      if (bufs.length) this.device.annotateNextLaunch(bufs);
      this.device.launch(fn, l.grid as [number, number, number], l.block as [number, number, number], l.smem, [this.base, ...(l.args ?? [])]);
      // With the non-finite check, each kernel's outputs are read back once its last launch has run.
      if (this.parts.checkNans && l.kernelIndex !== undefined && this.fns[i + 1]?.l.kernelIndex !== l.kernelIndex) this.checkFinite(l.kernelIndex);
    });
  }

  private checkFinite(index: number): void {
    const k = this.parts.kernels[index];
    for (const b of buffersOf(k).writes) {
      const info = this.parts.info.get(b)!;
      const n = Math.floor(info.bytes / byteSize[info.dtype]);
      const a = hostArray(new ArrayBuffer(Math.max(n * byteSize[info.dtype], 1)), 0, info.dtype, n);
      this.device.download(a, info.offset);
      const bad = firstNonFinite(a, info.dtype);
      if (bad) {
        const label = this.parts.plan.buffers.find((x) => x.id === b)?.label ?? `#${b}`;
        throw new KilnNonFiniteError(index, k.name, this.parts.fusedOps[index] ?? k.ops, `buffer #${b} (${label})`, bad.index, bad.value);
      }
    }
  }

  /** Frees the program's device arena (its parameters and activations); the program cannot run afterwards. */
  dispose(): void { this.device.freeArena(); }

  /** Device memory in use and in total (the driver's cuMemGetInfo), for a program's measured footprint. */
  memInfo(): { freeBytes: number; totalBytes: number } { return this.device.memInfo(); }

  /** Milliseconds per run of all kernels, measured with CUDA events around `reps` runs queued back to back (no host
   * wait between them, so launch latency hides behind the GPU's work as in a training loop). */
  time(reps = 1): number { return this.device.time(() => { for (let i = 0; i < reps; i++) this.launchAll(); }) / reps; }
}
