/** Data-parallel training: every rank runs the same step on its shard of the batch, the gradients are averaged
 * over the ranks, and every rank applies the same update, so N ranks with batch b compute what one process with
 * batch N·b computes (up to the order of the f32 sums).
 *
 * The step is split in two compiled programs, because the all-reduce sits between backward and update:
 *  - the gradient program: forward + backward; it writes each trainable gradient into a resident buffer
 *    `<param>.dp_grad` (with accumulation: `keep · dp_grad + grad`, keep 0 on the first micro-step);
 *  - the apply program: the optimizer on `dp_grad / accumulation` (AdamW or any `optimizer`), holding the
 *    optimizer state.
 * The gradient buffers are parameters, and the planner lays parameters out first, back to back in declaration
 * order, so they form one contiguous range of the arena: the reduction runs in place on it, in buckets of at
 * most `bucketBytes` (a few large all-reduces per step, not one per tensor). Scalar outputs (the losses) are
 * averaged too, so every rank reports the global loss. A step whose reduced loss or gradients are not finite is
 * skipped identically on every rank. */
import { compile, type CompileOptions } from './compile';
import { CpuProgram, type Feed, type HostArray, type Program } from './program';
import { input, param } from './dsl/creation';
import { grad } from './autodiff/grad';
import type { Tensor } from './dsl/tensor';
import type { Node } from './ir/node';
import type { Update } from './ir/graph';
import { communicator, type Communicator } from '../runtime/collective';

export interface DataParallelSpec {
  /** Outputs of one micro-step; `loss` (a scalar, the mean over this rank's batch) is differentiated. */
  readonly outputs: Readonly<Record<string, Tensor>>;
  /** The trainable parameters. */
  readonly params: readonly Tensor[];
  /** The update from the averaged gradients, e.g. `(p, g) => adamw(p, g, { lr: input('lr', []) })`. */
  readonly optimizer: (params: readonly Tensor[], grads: readonly Tensor[]) => Update<Tensor>[];
  /** Micro-steps per optimizer step (gradients summed, then divided by this). Default 1. */
  readonly accumulation?: number;
}

export interface DataParallelOptions extends CompileOptions {
  /** Default: the job's communicator (runtime/collective.ts). */
  readonly comm?: Communicator;
  /** Largest all-reduce, in bytes (default 25 MiB, as PyTorch's DDP). */
  readonly bucketBytes?: number;
}

/** Gradients reduced by one all-reduce: `contiguous` when they are one range of the arena (reduced in place). */
export interface GradBucket { readonly names: readonly string[]; readonly bytes: number; readonly contiguous: boolean }

export interface DataParallelResult {
  /** Scalar outputs averaged over micro-steps and ranks (the same on every rank). */
  readonly scalars: Record<string, number>;
  /** Non-scalar outputs of this rank's last micro-step. */
  readonly local: Record<string, HostArray>;
  /** The reduced loss or gradients were not finite: no update was applied (on any rank). */
  readonly skipped: boolean;
  readonly ms: { compute: number; reduce: number; apply: number };
}

const nameOf = (t: Tensor) => (t.node as Node<'param'>).attrs.name;
export const gradBufferName = (p: string) => `${p}.dp_grad`;

export class DataParallelStep {
  /** Trainable parameter names, and the apply program's other state (optimizer moments, step). */
  readonly params: readonly string[];
  readonly optimizerState: readonly string[];
  private readonly gradNames: readonly string[];
  private readonly scalarKeys: readonly string[];

  private constructor(readonly gradProgram: Program, readonly applyProgram: Program, readonly comm: Communicator, params: readonly string[],
    readonly accumulation: number, readonly buckets: readonly GradBucket[], scalarKeys: readonly string[]) {
    this.params = params;
    this.gradNames = params.map(gradBufferName);
    const skip = new Set(this.gradNames);
    this.optimizerState = applyProgram.paramNames().filter((n) => !skip.has(n) && !params.includes(n));
    this.scalarKeys = scalarKeys;
  }

  /** Builds and compiles both programs; the buckets follow the gradient buffers' arena layout. */
  static async compile(spec: DataParallelSpec, opts: DataParallelOptions = {}): Promise<DataParallelStep> {
    const acc = spec.accumulation ?? 1;
    if (!(Number.isSafeInteger(acc) && acc >= 1)) throw new RangeError(`DataParallelStep: accumulation = ${acc}; expected an integer ≥ 1`);
    const loss = spec.outputs.loss;
    if (!loss || loss.shape.length !== 0) throw new RangeError('DataParallelStep: outputs.loss must be a scalar tensor');
    const comm = opts.comm ?? communicator();
    const params = spec.params.map(nameOf);
    const grads = grad(loss, spec.params);
    const bufs = spec.params.map((p) => param(gradBufferName(nameOf(p)), p.shape, { dtype: p.dtype, trainable: false }));
    const keep = acc > 1 ? input('dp_keep', []) : undefined;
    const gradUpdates = bufs.map((b, i) => ({ param: b, value: keep ? b.mul(keep).add(grads[i]) : grads[i] }));
    const applyUpdates = spec.optimizer(spec.params, acc > 1 ? bufs.map((b) => b.mul(1 / acc)) : bufs);
    const [gradProgram, applyProgram] = [
      await compile({ outputs: spec.outputs, updates: gradUpdates }, opts),
      await compile({ outputs: {}, updates: applyUpdates }, opts),
    ];
    const scalarKeys = Object.entries(spec.outputs).filter(([, t]) => t.shape.reduce((a, b) => a * b, 1) === 1).map(([k]) => k);
    const buckets = planBuckets(gradProgram, params.map(gradBufferName), opts.bucketBytes ?? 25 * 2 ** 20);
    return new DataParallelStep(gradProgram, applyProgram, comm, params, acc, buckets, scalarKeys);
  }

  /** Every rank takes `root`'s parameters and optimizer state (call once after loading or initializing). */
  syncFromRoot(root = 0): void {
    for (const n of [...this.params, ...this.optimizerState]) {
      const v = this.applyProgram.getParam(n);
      this.comm.broadcast(v, root);
      this.applyProgram.setParam(n, v);
    }
    this.pushParams();
  }

  getParam(name: string): HostArray { return this.applyProgram.getParam(name); }
  /** Sets a trainable parameter or optimizer state (both programs). */
  setParam(name: string, v: ArrayLike<number>): void {
    this.applyProgram.setParam(name, v);
    if (this.params.includes(name)) this.gradProgram.setParam(name, v);
  }
  /** Frozen weights (only the gradient program reads them). */
  loadFrozen(store: ReadonlyMap<string, ArrayLike<number>>): void { this.gradProgram.loadParams(store, { strict: false }); }

  /** One optimizer step: `feeds(micro)` for each micro-step of this rank's shard, `applyFeeds` for the optimizer
   * (e.g. lr). */
  run(feeds: (micro: number) => Readonly<Record<string, Feed>>, applyFeeds: Readonly<Record<string, Feed>> = {}): DataParallelResult {
    const t0 = performance.now();
    const sums = new Float64Array(this.scalarKeys.length);
    let local: Record<string, HostArray> = {};
    for (let micro = 0; micro < this.accumulation; micro++) {
      const f = this.accumulation > 1 ? { ...feeds(micro), dp_keep: micro === 0 ? 0 : 1 } : feeds(micro);
      const out = this.gradProgram.run(f);
      this.scalarKeys.forEach((k, i) => { sums[i] += out[k][0] / this.accumulation; });
      local = Object.fromEntries(Object.entries(out).filter(([k]) => !this.scalarKeys.includes(k)));
    }
    const t1 = performance.now();
    this.comm.allReduce(sums, 'mean');
    this.reduceGradients();
    const t2 = performance.now();
    const scalars = Object.fromEntries(this.scalarKeys.map((k, i) => [k, sums[i]]));
    const skipped = !sums.every(Number.isFinite) || this.gradNames.some((g) => !allFinite(this.gradView(g)));
    if (!skipped) {
      for (const g of this.gradNames) copyParam(this.gradProgram, this.applyProgram, g);
      this.applyProgram.run(applyFeeds);
      this.pushParams();
    }
    return { scalars, local, skipped, ms: { compute: t1 - t0, reduce: t2 - t1, apply: performance.now() - t2 } };
  }

  /** The apply program's parameters into the gradient program. */
  private pushParams(): void { for (const n of this.params) copyParam(this.applyProgram, this.gradProgram, n); }

  private gradView(name: string): HostArray {
    return this.gradProgram instanceof CpuProgram ? this.gradProgram.paramView(name) : this.gradProgram.getParam(name);
  }

  /** Mean over ranks, bucket by bucket: in place on the arena where contiguous, else through a staging buffer. */
  private reduceGradients(): void {
    if (this.comm.size === 1) return;
    const cpu = this.gradProgram instanceof CpuProgram ? this.gradProgram : undefined;
    for (const b of this.buckets) {
      if (cpu && b.contiguous) {
        const at = cpu.paramLocation(b.names[0]).offset;
        this.comm.allReduce(new Float32Array(cpu.arena, at, b.bytes / 4), 'mean');
        continue;
      }
      const parts = b.names.map((n) => this.gradView(n) as Float32Array);
      const stage = new Float32Array(parts.reduce((s, p) => s + p.length, 0));
      let o = 0;
      for (const p of parts) { stage.set(p, o); o += p.length; }
      this.comm.allReduce(stage, 'mean');
      o = 0;
      b.names.forEach((n, i) => { const v = stage.subarray(o, o + parts[i].length); o += v.length; if (cpu) parts[i].set(v); else this.gradProgram.setParam(n, v); });
    }
  }
}

/** Groups the gradient buffers, in arena order, into buckets of at most `cap` bytes (one buffer larger than that is
 * a bucket of its own). A bucket is contiguous when each buffer starts at the first aligned offset after the
 * previous one, so the range between holds nothing but never-read padding and is reduced in place as one array. */
export function planBuckets(program: Program, names: readonly string[], cap: number, alignment = 64): GradBucket[] {
  const locs = names.map((n) => ({ n, ...program.paramLocation(n) })).sort((a, b) => a.offset - b.offset);
  for (const l of locs) if (l.dtype !== 'f32') throw new TypeError(`DataParallelStep: gradient ${l.n} is ${l.dtype}; the reduction handles f32`);
  const out: { names: string[]; start: number; end: number; payload: number; contiguous: boolean }[] = [];
  for (const l of locs) {
    const cur = out[out.length - 1];
    if (cur && Math.max(cur.end, l.offset + l.bytes) - cur.start <= cap) {
      cur.contiguous &&= l.offset === Math.ceil(cur.end / alignment) * alignment;
      cur.names.push(l.n);
      cur.end = l.offset + l.bytes;
      cur.payload += l.bytes;
    } else {
      out.push({ names: [l.n], start: l.offset, end: l.offset + l.bytes, payload: l.bytes, contiguous: true });
    }
  }
  return out.map((b) => ({ names: b.names, bytes: b.contiguous ? b.end - b.start : b.payload, contiguous: b.contiguous }));
}

/** One parameter from one program's arena into another's (arena to arena on the CPU). */
function copyParam(from: Program, to: Program, name: string): void {
  const v = from instanceof CpuProgram ? from.paramView(name) : from.getParam(name);
  if (to instanceof CpuProgram) to.paramView(name).set(v as Float32Array); else to.setParam(name, v);
}

function allFinite(a: ArrayLike<number>): boolean {
  for (let i = 0; i < a.length; i++) if (!Number.isFinite(a[i])) return false;
  return true;
}
