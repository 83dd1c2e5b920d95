/** A compiled program on an NVIDIA GPU: one device arena (planned, plus the templates' workspace), the
 * generated kernels loaded from the cubin, launched in order on one stream. */
import type { Node } from './ir/node';
import { numel } from './ir/shape';
import { byteSize } from './ir/dtype';
import { CudaDevice, type CompiledCubin, type CudaKernel } from '../runtime/cuda';
import type { CudaLaunch } from './render/cuda';
import { hostArray, Program, type HostArray, type LoweredProgram } from './program';

export interface CudaParts extends LoweredProgram {
  readonly source: string;
  readonly cubin: CompiledCubin;
  readonly launches: readonly CudaLaunch[];
  readonly scratchBytes: number;
}

export class CudaProgram extends Program {
  readonly backend = 'cuda';
  private device: CudaDevice;
  private base: bigint;
  private fns: { fn: CudaKernel; l: CudaLaunch }[];

  declare readonly parts: CudaParts;
  constructor(cuda: CudaParts) {
    super(cuda);
    this.device = CudaDevice.open();
    const scratchOffset = Math.ceil(cuda.plan.arenaBytes / 256) * 256;
    this.base = this.device.allocArena(scratchOffset + cuda.scratchBytes + 256);
    const mod = this.device.loadModule(cuda.cubin);
    this.fns = cuda.launches.map((l) => ({ fn: mod.kernel(l.kernel), l }));
    this.initialize();
  }
  get source(): string { return this.parts.source; }
  get sourcePath(): string { return this.parts.cubin.sourcePath; }

  protected write(n: Node, data: HostArray): void { this.device.upload(this.offsetOf(n), data); }
  protected read(n: Node): HostArray {
    const out = hostArray(new ArrayBuffer(Math.max(numel(n.shape) * byteSize[n.dtype], 1)), 0, n.dtype, numel(n.shape));
    this.device.download(out, this.offsetOf(n));
    return out;
  }
  protected execute(): void {
    for (const { fn, l } of this.fns) this.device.launch(fn, l.grid as [number, number, number], l.block as [number, number, number], l.smem, [this.base, ...(l.args ?? [])]);
    this.device.sync();
  }

  /** Milliseconds for one run of all kernels, measured with CUDA events. */
  time(): number { return this.device.time(() => this.execute()); }
}
