/** A compiled program: generated native code plus its one arena. Parameters stay resident in the arena across
 * runs; inputs are written into it and outputs read out of it through typed-array views. */
import type { Node } from './ir/node';
import { numel } from './ir/shape';
import type { DType } from './ir/dtype';
import { initValues } from './ir/init';
import type { Kernel } from './codegen/kir';
import type { MemoryPlan } from './schedule/plan-types';
import { formatMemoryReport, formatBytes } from './schedule/memory';
import type { CompiledLibrary } from '../runtime/cpu';
import { allocArena } from '../runtime/cpu';
import type { FusionResult } from './schedule/fusion';
import { describeKernel } from './explain';
// Globals are bound once per module: every global lookup is slow inside jest's vm contexts.
const M = Math;

export type HostArray = Float32Array | Int32Array | Uint8Array | Uint16Array;
export type Feed = ArrayLike<number> | number;

export interface MemoryReport {
  readonly naiveBytes: number;
  readonly plannedBytes: number;
  readonly peakLiveBytes: number;
  readonly budget?: number;
  readonly recomputed: readonly { label: string; bytes: number }[];
  readonly inPlace: number;
  readonly text: string;
}

/** Host view of a buffer. f16/bf16 buffers are viewed as raw 16-bit words (Uint16Array). */
const viewOf = (buf: ArrayBuffer, offset: number, dtype: DType, n: number): HostArray =>
  dtype === 'f32' ? new Float32Array(buf, offset, n) : dtype === 'i32' ? new Int32Array(buf, offset, n) : dtype === 'bool' ? new Uint8Array(buf, offset, n) : new Uint16Array(buf, offset, n);

export interface ProgramParts {
  readonly backend: 'cpu';
  readonly kernels: readonly Kernel[];
  readonly plan: MemoryPlan;
  readonly fusion: FusionResult;
  readonly unfusedKernels: number;
  readonly source: string;
  readonly sourcePath: string;
  readonly lib: CompiledLibrary;
  readonly inputs: readonly Node<'input'>[];
  readonly params: readonly Node<'param'>[];
  readonly consts: readonly Node<'tensor'>[];
  readonly outputs: Readonly<Record<string, Node>>;
  /** Node id → buffer id. */
  readonly bufferOf: ReadonlyMap<number, number>;
}

export class Program {
  readonly arena: ArrayBuffer;
  private byName = new Map<string, Node>();

  constructor(readonly parts: ProgramParts) {
    this.arena = allocArena(M.max(parts.plan.arenaBytes, 64));
    for (const n of [...parts.inputs, ...parts.params]) this.byName.set((n.attrs as { name: string }).name, n);
    for (const p of parts.params) this.view(p).set(initValues(p.attrs.init, numel(p.shape)));
    for (const c of parts.consts) this.view(c).set(c.attrs.data);
  }

  get kernels(): readonly Kernel[] { return this.parts.kernels; }
  get source(): string { return this.parts.source; }

  private view(n: Node): HostArray {
    const off = this.parts.plan.offsets.get(this.parts.bufferOf.get(n.id) ?? -1);
    if (off === undefined) throw new Error(`program: ${n.op}#${n.id} has no buffer`);
    return viewOf(this.arena, off, n.dtype, numel(n.shape));
  }

  private leaf(name: string, op: 'input' | 'param'): Node {
    const n = this.byName.get(name);
    if (!n || n.op !== op) throw new Error(`program: no ${op} named '${name}' (${op}s: ${[...this.byName.values()].filter((m) => m.op === op).map((m) => (m.attrs as { name: string }).name).join(', ') || 'none'})`);
    return n;
  }

  /** Runs every kernel once. Feeds are copied into the arena; outputs are copied out. */
  run(feeds: Readonly<Record<string, Feed>> = {}): Record<string, HostArray> {
    for (const n of this.parts.inputs) {
      const name = n.attrs.name;
      const v = feeds[name];
      if (v === undefined) throw new Error(`program: no value fed for input '${name}' [${n.shape.join(',')}]`);
      const dst = this.view(n);
      if (typeof v === 'number') { if (dst.length !== 1) throw new Error(`program: input '${name}' needs ${dst.length} values, got a number`); dst[0] = v; continue; }
      if (v.length !== dst.length) throw new Error(`program: input '${name}' needs ${dst.length} values [${n.shape.join(',')}], got ${v.length}`);
      dst.set(v as ArrayLike<number>);
    }
    this.parts.lib.call('kiln_run', this.arena);
    const out: Record<string, HostArray> = {};
    for (const [k, n] of Object.entries(this.parts.outputs)) {
      // An input that is also an output: its buffer may be reused once read, so return what was fed.
      out[k] = n.op === 'input' ? this.fedCopy(n, feeds[(n.attrs as { name: string }).name]) : this.view(n).slice();
    }
    return out;
  }

  private fedCopy(n: Node, v: Feed | undefined): HostArray {
    const out = viewOf(new ArrayBuffer(numel(n.shape) * (n.dtype === 'f32' || n.dtype === 'i32' ? 4 : n.dtype === 'bool' ? 1 : 2)), 0, n.dtype, numel(n.shape));
    if (typeof v === 'number') out[0] = v; else out.set(v as ArrayLike<number>);
    return out;
  }

  getParam(name: string): HostArray { return this.view(this.leaf(name, 'param')).slice(); }
  setParam(name: string, data: ArrayLike<number>): void {
    const v = this.view(this.leaf(name, 'param'));
    if (data.length !== v.length) throw new Error(`program: parameter '${name}' holds ${v.length} values, got ${data.length}`);
    v.set(data);
  }
  paramNames(): string[] { return this.parts.params.map((p) => p.attrs.name); }

  /** Milliseconds per kernel, each run `reps` times (inputs must have been fed by a previous run). */
  profile(reps = 3): { name: string; ms: number }[] {
    return this.parts.kernels.map((k, i) => {
      const args = BigInt64Array.of(BigInt(i));
      const t0 = performance.now();
      for (let r = 0; r < reps; r++) this.parts.lib.call('kiln_kernel', this.arena, args);
      return { name: k.name, ms: (performance.now() - t0) / reps };
    });
  }

  memoryReport(): MemoryReport {
    const p = this.parts.plan;
    const byId = new Map(p.buffers.map((b) => [b.id, b]));
    return {
      naiveBytes: p.naiveBytes, plannedBytes: p.arenaBytes, peakLiveBytes: p.peakLiveBytes, budget: p.budget,
      recomputed: p.recomputed.map((r) => ({ label: byId.get(r.buffer)?.label ?? `#${r.buffer}`, bytes: r.bytes })),
      inPlace: p.inPlace.length, text: formatMemoryReport(p),
    };
  }

  /** The kernels with the ops fused into each, their launch shapes, why some nodes were not fused, and the
   * memory plan. */
  explain(): string {
    const p = this.parts;
    const lines = [
      `Kiln program (${p.backend}): ${p.kernels.length} kernels (unfused: ${p.unfusedKernels}), arena ${formatBytes(p.plan.arenaBytes)} (naive ${formatBytes(p.plan.naiveBytes)})`,
      `source: ${p.sourcePath}`,
      '',
      ...p.kernels.map((k, i) => `${String(i).padStart(3)} ${describeKernel(k, p.plan.offsets)}`),
    ];
    if (p.fusion.whyNot.length) lines.push('', 'not fused:', ...p.fusion.whyNot.map((w) => `  ${w}`));
    lines.push('', formatMemoryReport(p.plan));
    return lines.join('\n');
  }
}
