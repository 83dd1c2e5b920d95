/** A compiled program: generated native code plus its one arena. Parameters stay resident in the arena across
 * runs; inputs are written into it and outputs read out of it. `CpuProgram` owns a host arena and views it
 * through typed arrays (zero copy); `CudaProgram` (program-cuda.ts) owns a device arena. */
import type { Node } from './ir/node';
import { numel } from './ir/shape';
import { byteSize, type DType } from './ir/dtype';
import { toHalfBits } from './ir/half';
import { initValues } from './ir/init';
import type { Kernel } from './codegen/kir';
import type { MemoryPlan, PlanInput } from './schedule/plan-types';
import { formatMemoryReport, residentBytes, formatBytes, bytesByKind, memoryFloor, type BytesByKind } from './schedule/memory';
import type { FusionResult } from './schedule/fusion';
import type { BufferInfo } from './render/cpp';
import type { CompiledLibrary } from '../runtime/cpu';
import { allocArena } from '../runtime/cpu';
import { describeCpuIsa, type CpuIsa } from '../runtime/kernel-lib';
import { describeKernel } from './explain';
import { buffersOf } from './codegen/buffers';
import { KilnNonFiniteError } from './ir/errors';

/** f16/bf16 buffers are seen on the host as raw 16-bit words. */
export type HostArray = Float32Array | Int32Array | Uint8Array | Uint16Array;
export type Feed = ArrayLike<number> | number;

export interface MemoryReport {
  readonly naiveBytes: number;
  readonly plannedBytes: number;
  readonly peakLiveBytes: number;
  /** Parameters and constants (weights, optimizer state): resident for the program's whole run. */
  readonly residentBytes: number;
  readonly budget?: number;
  readonly recomputed: readonly { label: string; bytes: number }[];
  readonly inPlace: number;
  /** Bytes by what they hold: resident kinds whole, the rest as live at the peak (schedule/memory-report.ts). */
  readonly byKind: BytesByKind;
  /** Floating-point operations of one run: forward + backward without recompute, the recompute added, and
   * recompute / base. */
  readonly flops: { readonly base: number; readonly recompute: number; readonly ratio: number };
  /** The smallest arena the planner can reach (only with `memoryReport({ floor: true })`: one more planning run). */
  readonly floorBytes?: number;
  readonly text: string;
}

/** What lowering produced, before any back end. */
export interface LoweredProgram {
  readonly kernels: readonly Kernel[];
  /** Per kernel: the graph nodes fused into it, as `op#id at file:line`. */
  readonly fusedOps: readonly (readonly string[])[];
  readonly plan: MemoryPlan;
  /** The scheduler's description of the program to the planner, before planning (for the floor). */
  readonly planInput: Omit<PlanInput, 'budget'>;
  readonly info: ReadonlyMap<number, BufferInfo>;
  readonly fusion: FusionResult;
  readonly unfusedKernels: number;
  readonly inputs: readonly Node<'input'>[];
  readonly params: readonly Node<'param'>[];
  readonly consts: readonly Node<'tensor'>[];
  readonly outputs: Readonly<Record<string, Node>>;
  /** Node id → buffer id. */
  readonly bufferOf: ReadonlyMap<number, number>;
}

export const hostArray = (buf: ArrayBuffer, offset: number, dtype: DType, n: number): HostArray =>
  dtype === 'f32' ? new Float32Array(buf, offset, n) : dtype === 'i32' ? new Int32Array(buf, offset, n) : dtype === 'bool' ? new Uint8Array(buf, offset, n) : new Uint16Array(buf, offset, n);
const fresh = (n: Node) => hostArray(new ArrayBuffer(Math.max(numel(n.shape) * byteSize[n.dtype], 1)), 0, n.dtype, numel(n.shape));

/** Copies host values into a buffer's host array: f16 / bf16 buffers take raw words from a Uint16Array and
 * round any other numbers to nearest even (so f32 weights load into a bf16 parameter, converted). */
function setHost(a: HostArray, v: ArrayLike<number>, dtype: DType): void {
  if (dtype === 'f16' || dtype === 'bf16') a.set(toHalfBits(v, dtype));
  else a.set(v);
}

/** The first NaN or ±Inf of a float buffer (f16/bf16 are raw words: all exponent bits set), or null. */
export function firstNonFinite(a: HostArray, dtype: DType): { index: number; value: number } | null {
  if (dtype === 'f32') { for (let i = 0; i < a.length; i++) if (!Number.isFinite(a[i])) return { index: i, value: a[i] }; return null; }
  if (dtype !== 'f16' && dtype !== 'bf16') return null;
  const [exp, man] = dtype === 'f16' ? [0x7c00, 0x03ff] : [0x7f80, 0x007f];
  for (let i = 0; i < a.length; i++) {
    if ((a[i] & exp) === exp) return { index: i, value: a[i] & man ? NaN : a[i] & 0x8000 ? -Infinity : Infinity };
  }
  return null;
}

/** Buffer bytes by element type (what the precision policy decided), e.g. `storage: bf16 1.2 MiB in 40 buffers,
 * f32 3.4 MiB in 60`. */
function storageLine(p: LoweredProgram): string {
  const by = new Map<DType, { bytes: number; n: number }>();
  for (const b of p.plan.buffers) { const d = p.info.get(b.id)?.dtype; if (!d) continue; const e = by.get(d) ?? { bytes: 0, n: 0 }; e.bytes += b.bytes; e.n++; by.set(d, e); }
  return `storage: ${[...by].sort((a, b) => b[1].bytes - a[1].bytes).map(([d, e]) => `${d} ${formatBytes(e.bytes)} in ${e.n} buffers`).join(', ')}`;
}

export abstract class Program {
  private byName = new Map<string, Node>();
  abstract readonly backend: 'cpu' | 'cuda' | 'cuda-emu';
  abstract readonly source: string;
  abstract readonly sourcePath: string;

  constructor(readonly parts: LoweredProgram) {
    for (const n of [...parts.inputs, ...parts.params]) this.byName.set((n.attrs as { name: string }).name, n);
  }

  get kernels(): readonly Kernel[] { return this.parts.kernels; }

  /** Byte offset of a node's buffer in the arena. */
  protected offsetOf(n: Node): number {
    const off = this.parts.plan.offsets.get(this.parts.bufferOf.get(n.id) ?? -1);
    if (off === undefined) throw new Error(`program: ${n.op}#${n.id} has no buffer`);
    return off;
  }
  protected abstract write(n: Node, data: HostArray): void;
  protected abstract read(n: Node): HostArray;
  protected abstract execute(): void;

  /** Parameters and constants, written once at construction by the back ends. */
  protected initialize(): void {
    for (const p of this.parts.params) { const a = fresh(p); setHost(a, initValues(p.attrs.init, numel(p.shape)), p.dtype); this.write(p, a); }
    for (const c of this.parts.consts) { const a = fresh(c); setHost(a, c.attrs.data, c.dtype); this.write(c, a); }
  }

  protected leaf(name: string, op: 'input' | 'param'): Node {
    const n = this.byName.get(name);
    if (!n || n.op !== op) throw new Error(`program: no ${op} named '${name}' (${op}s: ${[...this.byName.values()].filter((m) => m.op === op).map((m) => (m.attrs as { name: string }).name).join(', ') || 'none'})`);
    return n;
  }

  private toHost(n: Node, v: Feed, what: string): HostArray {
    const a = fresh(n);
    if (typeof v === 'number') {
      if (a.length !== 1) throw new Error(`program: ${what} needs ${a.length} values [${n.shape.join(',')}], got a number`);
      setHost(a, [v], n.dtype);
    } else {
      if (v.length !== a.length) throw new Error(`program: ${what} needs ${a.length} values [${n.shape.join(',')}], got ${v.length}`);
      setHost(a, v, n.dtype);
    }
    return a;
  }

  /** Runs every kernel once. Feeds are copied in; outputs are copied out. */
  run(feeds: Readonly<Record<string, Feed>> = {}): Record<string, HostArray> {
    const fed = new Map<number, HostArray>();
    for (const n of this.parts.inputs) {
      const name = n.attrs.name, v = feeds[name];
      if (v === undefined) throw new Error(`program: no value fed for input '${name}' [${n.shape.join(',')}]`);
      const a = this.toHost(n, v, `input '${name}'`);
      fed.set(n.id, a);
      this.write(n, a);
    }
    this.execute();
    const out: Record<string, HostArray> = {};
    // An input that is also an output: its buffer may be reused once read, so return what was fed.
    for (const [k, n] of Object.entries(this.parts.outputs)) out[k] = fed.has(n.id) ? fed.get(n.id)!.slice() : this.read(n);
    return out;
  }

  getParam(name: string): HostArray { return this.read(this.leaf(name, 'param')); }
  setParam(name: string, data: ArrayLike<number>): void { const n = this.leaf(name, 'param'); this.write(n, this.toHost(n, data, `parameter '${name}'`)); }
  paramNames(): string[] { return this.parts.params.map((p) => p.attrs.name); }
  /** Where a parameter lives in the arena (parameters are resident, laid out first in declaration order): what a
   * collective needs to reduce several of them as one range. */
  paramLocation(name: string): { offset: number; bytes: number; dtype: DType } {
    const n = this.leaf(name, 'param');
    return { offset: this.offsetOf(n), bytes: numel(n.shape) * byteSize[n.dtype], dtype: n.dtype };
  }
  /** Copies in every parameter the program declares that `store` holds (other entries are ignored). `strict`
   * (the default): a declared parameter missing from the store is an error naming them; otherwise it keeps
   * its declared init. Returns what was loaded and what kept its init. */
  loadParams(store: ReadonlyMap<string, ArrayLike<number>>, opts: { strict?: boolean } = {}): { loaded: string[]; missing: string[] } {
    const loaded: string[] = [], missing: string[] = [];
    for (const name of this.paramNames()) {
      const v = store.get(name);
      if (v) { this.setParam(name, v); loaded.push(name); } else missing.push(name);
    }
    if (missing.length && (opts.strict ?? true)) throw new Error(`program: no value for ${missing.length} parameter(s): ${missing.slice(0, 8).join(', ')}${missing.length > 8 ? ', …' : ''}`);
    return { loaded, missing };
  }

  /** What the memory plan did; `floor: true` also plans once more to find the floor. */
  memoryReport(opts: { floor?: boolean } = {}): MemoryReport {
    const p = this.parts.plan;
    const byId = new Map(p.buffers.map((b) => [b.id, b]));
    const floorBytes = opts.floor ? memoryFloor({ ...this.parts.planInput, budget: undefined }) : undefined;
    return {
      naiveBytes: p.naiveBytes, plannedBytes: p.arenaBytes, peakLiveBytes: p.peakLiveBytes, residentBytes: residentBytes(p), budget: p.budget,
      recomputed: p.recomputed.map((r) => ({ label: byId.get(r.buffer)?.label ?? `#${r.buffer}`, bytes: r.bytes })),
      inPlace: p.inPlace.length, byKind: bytesByKind(p),
      flops: { ...p.flops, ratio: p.flops.base > 0 ? p.flops.recompute / p.flops.base : 0 },
      ...(floorBytes !== undefined ? { floorBytes } : {}), text: formatMemoryReport(p, floorBytes),
    };
  }

  /** Back-end lines for explain() (the CPU back end: which kernel path runs). */
  protected backendNotes(): string[] { return []; }

  /** The kernels with the ops fused into each, their launch shapes, why some nodes were not fused, and the
   * memory plan. */
  explain(): string {
    const p = this.parts;
    const lines = [
      `Kiln program (${this.backend}): ${p.kernels.length} kernels (unfused: ${p.unfusedKernels}), arena ${formatBytes(p.plan.arenaBytes)} (naive ${formatBytes(p.plan.naiveBytes)})`,
      `source: ${this.sourcePath}`,
      ...this.backendNotes(),
      storageLine(p),
      '',
      ...p.kernels.map((k, i) => `${String(i).padStart(3)} ${describeKernel(k, p.plan.offsets)}`),
    ];
    if (p.fusion.whyNot.length) lines.push('', 'not fused:', ...p.fusion.whyNot.map((w) => `  ${w}`));
    lines.push('', formatMemoryReport(p.plan));
    return lines.join('\n');
  }
}

export interface CpuParts extends LoweredProgram { readonly source: string; readonly sourcePath: string; readonly lib: CompiledLibrary; readonly checkNans?: boolean; readonly cpuIsa?: CpuIsa }

/** Generated C++ in a shared library, run on this machine's cores; the arena is host memory. */
export class CpuProgram extends Program {
  readonly backend = 'cpu';
  declare readonly parts: CpuParts;
  readonly arena: ArrayBuffer;
  constructor(cpu: CpuParts) {
    super(cpu);
    this.arena = allocArena(Math.max(cpu.plan.arenaBytes, 64));
    this.initialize();
  }
  get source(): string { return this.parts.source; }
  get sourcePath(): string { return this.parts.sourcePath; }
  get lib(): CompiledLibrary { return this.parts.lib; }
  protected override backendNotes(): string[] { return this.parts.cpuIsa ? [describeCpuIsa(this.parts.cpuIsa)] : []; }
  private view(n: Node): HostArray { return hostArray(this.arena, this.offsetOf(n), n.dtype, numel(n.shape)); }
  /** A live view of a parameter in the arena (no copy): writes through it change the program's value. */
  paramView(name: string): HostArray { return this.view(this.leaf(name, 'param')); }
  protected write(n: Node, data: HostArray): void { this.view(n).set(data as never); }
  protected read(n: Node): HostArray { return this.view(n).slice(); }
  protected execute(): void {
    if (!this.parts.checkNans) { this.parts.lib.call('kiln_run', this.arena); return; }
    this.parts.kernels.forEach((k, i) => {
      this.parts.lib.call('kiln_kernel', this.arena, BigInt64Array.of(BigInt(i)));
      for (const b of buffersOf(k).writes) {
        const info = this.parts.info.get(b)!;
        const bad = firstNonFinite(hostArray(this.arena, info.offset, info.dtype, Math.floor(info.bytes / byteSize[info.dtype])), info.dtype);
        if (bad) {
          const label = this.parts.plan.buffers.find((x) => x.id === b)?.label ?? `#${b}`;
          throw new KilnNonFiniteError(i, k.name, this.parts.fusedOps[i] ?? k.ops, `buffer #${b} (${label})`, bad.index, bad.value);
        }
      }
    });
  }

  /** Milliseconds per kernel, each run `reps` times (feed inputs with a run first). */
  profile(reps = 3): { name: string; ms: number }[] {
    return this.parts.kernels.map((k, i) => {
      const args = BigInt64Array.of(BigInt(i));
      const t0 = performance.now();
      for (let r = 0; r < reps; r++) this.parts.lib.call('kiln_kernel', this.arena, args);
      return { name: k.name, ms: (performance.now() - t0) / reps };
    });
  }
}
