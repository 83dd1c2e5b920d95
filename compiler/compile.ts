/** The compiler pipeline, top to bottom: precision policy → collect → simplify → low stores → schedule (fusion + lowering) → memory plan →
 * render → native compile. `KILN_DUMP=graph,kernels,source` prints the IR after those stages (the graph in
 * ir/print.ts's form); `KILN_VERIFY=1` runs the graph verifier before and after simplify and the kernel-IR
 * verifier after lowering (the tests always do). */
import { cpus } from 'node:os';
import { collect, type GraphSpec } from './ir/graph';
import type { Node } from './ir/node';
import { simplifyGraph } from './passes/simplify';
import { applyPrecision, precisionPolicy, type Precision, type PrecisionPolicy } from './passes/precision';
import { storeLow } from './passes/precision-stores';
import { verifyEnabled, verifyGraph } from './passes/verify';
import { verifyKernels } from './codegen/verify';
import { printGraph } from './ir/print';
import { OPS } from './ops/registry';
import { schedule } from './schedule/schedule';
import { isFreeLeaf } from './ops/views';
import { planMemory } from './schedule/memory';
import { remapKernel } from './codegen/remap';
import type { Kernel } from './codegen/kir';
import { renderProgramCpp, type BufferInfo } from './render/cpp';
import { describeKernel } from './explain';
import { compileCpp } from '../runtime/cpu';
import { cpuKernelIsa, linkKernelLibrary } from '../runtime/kernel-lib';
import { CpuProgram, Program, type LoweredProgram } from './program';
import { CudaProgram } from './program-cuda';
import { renderProgramCuda, type CudaLaunch } from './render/cuda';
import { compileCuda, compileCudaHost, cudaAvailable, type CompiledCubin } from '../runtime/cuda';
import { compileCudaEmu, openEmulatedDevice, type CompiledEmuModule } from '../runtime/cuda-emu';

export interface CompileOptions {
  /** 'cpu' (default): generated C++, compiled with g++ and run here. 'cuda': generated CUDA, compiled with nvcc
   * for sm_90a and run through the CUDA driver (a clear error where there is none). 'cuda-emu': the same CUDA
   * source built with g++ against Kiln's CUDA emulator and run on the CPU through the same launches
   * (kernels/cuda/emu). `KILN_CUDA=emulate` turns 'cuda' into 'cuda-emu'. */
  readonly backend?: 'cpu' | 'cuda' | 'cuda-emu';
  /** cuda-emu only: memcheck, racecheck and initcheck on every access (default $KILN_CUDA_EMU_CHECKS === '1'). */
  readonly checks?: boolean;
  /** CUDA: 'host' (default) runs the generated kiln_run, one native call per run; 'list' launches kernel by kernel
   * from the addon (what the checked emulator and the non-finite check use: launches named buffer by buffer).
   * Default from $KILN_CUDA_LAUNCH. */
  readonly launcher?: 'host' | 'list';
  /** CUDA with the host launcher: capture the launch sequence into a CUDA Graph once and replay it on every run
   * (default $KILN_CUDA_GRAPH === '1'). */
  readonly cudaGraph?: boolean;
  /** Arena byte budget: the planner rematerializes cheap values to meet it, or fails with the minimum. */
  readonly budget?: number;
  /** Stage every parameter update until one commit at the end of the step instead of writing it in place once
   * the parameter's old value is dead (docs/memory-planning.md): for comparison; the results are the same bits. */
  readonly stagedUpdates?: boolean;
  /** false: every node its own kernel (for testing fusion and measuring what it saves). */
  readonly fusion?: boolean;
  /** Run kernel by kernel and stop at the first one that writes a NaN or ±Inf, naming it, its fused ops and
   * their source lines (KilnNonFiniteError). Default: the environment's KILN_CHECK_NANS=1. Every back end. */
  readonly checkNans?: boolean;
  /** Mixed precision (passes/precision.ts): 'bf16' / 'f16' store activations and frozen weights in that type
   * and run GEMM / conv / attention on it with f32 accumulation; norms, reductions and losses compute in f32;
   * parameters the program updates keep f32 master copies. Per-module overrides by parameter-name prefix.
   * Default 'f32' (the graph as written). An unknown name is a KilnPrecisionError. */
  readonly precision?: Precision | PrecisionPolicy;
}

const dump = (stage: string) => (process.env.KILN_DUMP ?? '').split(',').includes(stage);

/** The back-end-independent part: simplify, schedule, plan memory, apply the plan's recomputes. */
export function lowerProgram(written: GraphSpec, opts: CompileOptions = {}): LoweredProgram {
  const policy = precisionPolicy(opts.precision, 'compile');
  const spec = applyPrecision(written, policy);
  const verify = verifyEnabled();
  if (verify) verifyGraph(collect(spec).order, 'graph as built');
  // Updates in reverse: the order is a depth-first walk from the roots, so the last layer's parameter update
  // (and its weight gradient) is scheduled first and each layer's backward runs as soon as its cotangent exists;
  // in declaration order every weight gradient would wait until the whole backward chain is done, keeping all
  // activations and cotangents live (the same kernels either way, so the same results).
  const scheduleOrder = (x: GraphSpec) => collect({ ...x, updates: [...(x.updates ?? [])].reverse() });
  // Values computed in f32 from reductions are stored in the low type where fusion realizes them.
  const { spec: g, stores } = storeLow(simplifyGraph(spec), policy.precision, (x) => scheduleOrder(x).order, opts.fusion ?? true);
  const { order, inputs, params } = scheduleOrder(g);
  if (verify) verifyGraph(order, 'after simplify');
  const outputs: Record<string, Node> = Object.fromEntries(Object.entries(g.outputs).map(([k, t]) => [k, t.node]));
  if (dump('graph')) console.error(printGraph(order, outputs));
  const updates = (g.updates ?? []).map((u) => ({ param: u.param.node, value: u.value.node }));
  const s = schedule(order, Object.values(outputs), updates, opts.fusion ?? true, stores);
  const plan = planMemory({ ...s.plan, budget: opts.budget, ...(opts.stagedUpdates ? { stagedUpdates: true } : {}) });

  // Apply the planner's recompute clones and moved reads to the kernels.
  const byStep = new Map(s.plan.steps.map((st, i) => [st.id, s.kernels[i]]));
  const stepById = new Map(s.plan.steps.map((st) => [st.id, st]));
  const kernels: Kernel[] = plan.steps.map((st, i) => {
    const base = byStep.get(st.recomputeOf ?? st.id)!;
    const orig = stepById.get(st.recomputeOf ?? st.id)!;
    // A commit copies what its step still pairs (the planner placed the other update values in place).
    if (base.kind === 'commit') {
      const bytes = new Map(base.copies.map((c) => [c.to, c.bytes]));
      return { ...base, copies: st.writes.map((to, j) => ({ from: st.reads[j], to, bytes: bytes.get(to)! })) };
    }
    const reads = new Map<number, number>(), writes = new Map<number, number>();
    orig.reads.forEach((r, j) => { if (st.reads[j] !== r) reads.set(r, st.reads[j]); });
    orig.writes.forEach((w, j) => { if (st.writes[j] !== w) writes.set(w, st.writes[j]); });
    return remapKernel(base, reads, writes, st.recomputeOf !== undefined ? `${base.name}_recompute${i}` : base.name);
  });
  const info = new Map<number, BufferInfo>();
  const replaced = new Map(plan.recomputed.map((r) => [r.replacement, r.buffer]));
  for (const b of plan.buffers) {
    const node = s.nodeOf.get(b.id) ?? s.nodeOf.get(replaced.get(b.id) ?? -1);
    info.set(b.id, { offset: plan.offsets.get(b.id)!, dtype: node!.dtype, bytes: b.bytes });
  }
  if (verify) verifyKernels(kernels, (b) => info.get(b)!.bytes);
  if (dump('kernels')) console.error(kernels.map((k) => describeKernel(k, plan.offsets)).join('\n'));
  // What each kernel computes, as `op#id at file:line` of the graph nodes fused into it (the commit kernel, last
  // in schedule order, has no group).
  const fusedOps = plan.steps.map((st) => {
    const g = s.fusion.groups[st.recomputeOf ?? st.id];
    return g ? g.region.filter((n) => !isFreeLeaf(n)).map((n) => `${n.op}#${n.id} at ${n.src}`) : ['parameter updates'];
  });
  return {
    kernels, fusedOps, plan, planInput: s.plan, info, fusion: s.fusion, unfusedKernels: s.unfusedKernels, inputs, params,
    consts: order.filter((n): n is Node<'tensor'> => { const l = OPS[n.op].lower; return l.kind === 'source' && l.storage === 'const'; }), outputs, bufferOf: s.bufferOf,
  };
}

/** The graph lowered and rendered as one CUDA translation unit, with its launch list. */
function renderCuda(spec: GraphSpec, opts: CompileOptions) {
  const low = lowerProgram(spec, opts);
  const scratchOffset = Math.ceil(low.plan.arenaBytes / 256) * 256;
  const cu = renderProgramCuda(low.kernels, low.info, scratchOffset);
  if (dump('source')) console.error(cu.source);
  return { ...low, source: cu.source, launches: cu.launches, scratchBytes: cu.scratchBytes, distinct: cu.distinct, units: cu.units };
}

/** Generated CUDA for a graph, compiled with nvcc (no GPU needed): what CI checks and what CudaProgram loads. */
export async function compileCudaSource(spec: GraphSpec, opts: CompileOptions = {}): Promise<LoweredProgram & { source: string; cubin: CompiledCubin; launches: readonly CudaLaunch[]; scratchBytes: number }> {
  const r = renderCuda(spec, opts);
  return { ...r, cubin: await compileCuda(r.source) };
}

/** The same CUDA source built for the emulator (g++, no nvcc, no GPU). */
export async function compileCudaEmuSource(spec: GraphSpec, opts: CompileOptions = {}): Promise<LoweredProgram & { source: string; cubin: CompiledEmuModule; launches: readonly CudaLaunch[]; scratchBytes: number }> {
  const r = renderCuda(spec, opts);
  const checks = opts.checks ?? process.env.KILN_CUDA_EMU_CHECKS === '1';
  return { ...r, cubin: await compileCudaEmu(r.source, { checks, kernels: [...new Set(r.launches.map((l) => l.kernel))] }) };
}

const graphOf = (opts: CompileOptions): boolean => opts.cudaGraph ?? process.env.KILN_CUDA_GRAPH === '1';
const launcherOf = (opts: CompileOptions, checked: boolean): 'host' | 'list' =>
  opts.launcher ?? (process.env.KILN_CUDA_LAUNCH === 'list' || process.env.KILN_CUDA_LAUNCH === 'host' ? process.env.KILN_CUDA_LAUNCH : checked ? 'list' : 'host');

export async function compile(spec: GraphSpec, opts?: CompileOptions & { backend?: 'cpu' }): Promise<CpuProgram>;
export async function compile(spec: GraphSpec, opts: CompileOptions & { backend: 'cuda' | 'cuda-emu' }): Promise<CudaProgram>;
export async function compile(spec: GraphSpec, opts?: CompileOptions): Promise<Program>;
export async function compile(spec: GraphSpec, opts: CompileOptions = {}): Promise<Program> {
  const backend = opts.backend === 'cuda' && process.env.KILN_CUDA === 'emulate' ? 'cuda-emu' : opts.backend;
  if (backend === 'cuda-emu') {
    const cu = await compileCudaEmuSource(spec, opts);
    // The emulated module holds kiln_run too; the checked build launches kernel by kernel so memcheck can name buffers.
    const host = launcherOf(opts, cu.cubin.checked) === 'host' ? cu.cubin : undefined;
    return new CudaProgram({ ...cu, host, graph: graphOf(opts), checkNans: opts.checkNans ?? process.env.KILN_CHECK_NANS === '1' }, await openEmulatedDevice());
  }
  if (backend === 'cuda') {
    const available = cudaAvailable();
    const checkNans = opts.checkNans ?? process.env.KILN_CHECK_NANS === '1';
    if (launcherOf(opts, false) === 'host' && !checkNans) {
      // One nvcc run builds the kernels and their launcher into a shared library.
      const r = renderCuda(spec, opts);
      // Big programs compile as one unit per core in parallel (each unit pays nvcc's fixed cost for its headers).
      const host = await compileCudaHost(r.distinct > 96 ? r.units(Math.max(2, cpus().length)) : [r.source]);
      if (!available.ok) throw new Error(`compile: the CUDA back end needs an NVIDIA driver: ${available.reason} (the generated CUDA compiled: ${host.sourcePath})`);
      return new CudaProgram({ ...r, host, graph: graphOf(opts) });
    }
    const cu = await compileCudaSource(spec, opts);
    if (!available.ok) throw new Error(`compile: the CUDA back end needs an NVIDIA driver: ${available.reason} (the generated CUDA compiled: ${cu.cubin.sourcePath})`);
    return new CudaProgram({ ...cu, checkNans });
  }
  const low = lowerProgram(spec, opts);
  const source = renderProgramCpp(low.kernels, low.info);
  if (dump('source')) console.error(source);
  const lib = await compileCpp(source, { extraFlags: ['-fno-math-errno', '-fno-trapping-math', ...(await linkKernelLibrary())] });
  const cpuIsa = await cpuKernelIsa();  // throws CpuIsaError here, not at the first run, when KILN_CPU_ISA is refused
  return new CpuProgram({ ...low, source, sourcePath: lib.sourcePath, lib, cpuIsa, checkNans: opts.checkNans ?? process.env.KILN_CHECK_NANS === '1' });
}
