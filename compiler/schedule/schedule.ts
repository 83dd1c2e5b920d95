/** Scheduling: fuse (fusion asks codegen's canAnchor before forming an epilogue), lower each group to a kernel
 * as fusion decided, order kernels, add the parameter-update commit, and describe the result to the memory
 * planner. */
import type { Node } from '../ir/node';
import { numel } from '../ir/shape';
import { byteSize } from '../ir/dtype';
import { fuse, type FusionResult } from './fusion';
import { isFreeLeaf } from '../ops/views';
import { OPS } from '../ops/registry';
import { kernelElements, lowerGroup } from '../codegen/lower';
import type { Expr, Kernel } from '../codegen/kir';
import { children } from '../codegen/expr';
import type { BufferKind, BufferRole, PlanBuffer, PlanInput, PlanStep } from './plan-types';
import { isBackward, isOptionalSegment, segmentOf, segmentOutputOf } from '../ir/segment';
import { buffersOf } from '../codegen/buffers';
// Globals are bound once per module: every global lookup is slow inside jest's vm contexts.
const M = Math;

export interface Scheduled {
  readonly kernels: readonly Kernel[];
  readonly fusion: FusionResult;
  /** Buffer id → the node it holds. */
  readonly nodeOf: ReadonlyMap<number, Node>;
  readonly bufferOf: ReadonlyMap<number, number>;
  readonly plan: Omit<PlanInput, 'budget'>;
  /** Unfused kernel count: every non-source node in its own kernel. */
  readonly unfusedKernels: number;
}

const safeName = (ops: readonly string[]) => ops.slice(0, 6).join('_').replace(/[^a-z0-9_]/gi, '') || 'copy';

/** `stores`: further values to realize (the precision policy's low stores, passes/precision-stores.ts). */
export function schedule(order: readonly Node[], outputs: readonly Node[], updates: readonly { param: Node; value: Node }[], fuseKernels = true, stores: readonly Node[] = []): Scheduled {
  const roots = [...outputs, ...updates.map((u) => u.value), ...stores];
  // Outputs and update values may be stored by the kernel that reads them (fusion step 5: side outputs).
  const fusion = fuse(order, roots, new Set(), 8, fuseKernels, new Set([...outputs, ...updates.map((u) => u.value)].map((n) => n.id)));
  const bufferOf = new Map<number, number>(), nodeOf = new Map<number, Node>();
  // Buffers are numbered in graph order, so the same graph built twice renders the same source (cache hits).
  for (const n of order) if (fusion.realized.has(n.id)) { bufferOf.set(n.id, nodeOf.size); nodeOf.set(nodeOf.size, n); }
  // Fusion asked canAnchor before every epilogue it formed, so each group lowers as decided.
  const kernels: Kernel[] = fusion.groups.map((g, i) => lowerGroup(g, { bufferOf }, `k${i}_${safeName(g.region.filter((n) => !isFreeLeaf(n)).map((n) => n.op))}`));
  const copies = updates.filter((u) => u.value !== u.param).map((u) => ({ from: bufferOf.get(u.value.id)!, to: bufferOf.get(u.param.id)!, bytes: numel(u.param.shape) * byteSize[u.param.dtype] }));
  if (copies.length) kernels.push({ kind: 'commit', name: `k${kernels.length}_commit_updates`, copies, ops: ['update'] });
  const outIds = new Set(outputs.map((o) => o.id));
  const kindOf = (n: Node): BufferKind => { const l = OPS[n.op].lower; return l.kind === 'source' ? l.storage : outIds.has(n.id) ? 'output' : 'temp'; };
  const label = (n: Node) => { const a = n.attrs as { name?: string }; return a.name ?? `${n.op}#${n.id} (${n.src})`; };
  const updated = new Set(updates.map((u) => u.param.id)), updateValues = new Set(updates.map((u) => u.value.id));
  const buffers: PlanBuffer[] = [...nodeOf].map(([id, n]) => {
    const kind = kindOf(n), segment = kind === 'temp' ? segmentOf(n) : undefined, segmentOutput = segmentOutputOf(n);
    return { id, bytes: M.max(numel(n.shape) * byteSize[n.dtype], 1), kind, label: label(n), role: roleOf(n, kind, updated, updateValues),
      ...(segment !== undefined ? { segment } : {}), ...(segmentOutput !== undefined ? { segmentOutput } : {}) };
  });
  const steps: PlanStep[] = kernels.map((k, i) => {
    const { reads, writes } = buffersOf(k);
    // A kernel with side outputs is not recomputed: a second run would rewrite its other outputs, which may by
    // then hold a parameter's committed value in place.
    return { id: i, label: k.name, reads, writes, recomputable: k.kind !== 'commit' && writes.length === 1, cost: costOf(k), inPlace: inPlacePairs(k), ...(k.kind === 'commit' ? { copies: true } : {}) };
  });
  let unfused = 0;
  for (const n of order) if (OPS[n.op].lower.kind !== 'source') unfused++;
  const optionalSegments = [...new Set(buffers.map((b) => b.segment ?? b.segmentOutput).filter((x): x is number => x !== undefined && isOptionalSegment(x)))].sort((a, b) => a - b);
  return { kernels, fusion, nodeOf, bufferOf, plan: { buffers, steps, ...(optionalSegments.length ? { optionalSegments } : {}) }, unfusedKernels: unfused };
}

/** What a buffer holds, for the report: parameters by whether they train or are updated (optimizer state),
 * temps by whether autodiff built them (gradients) or the optimizer's update (optimizer state). */
function roleOf(n: Node, kind: BufferKind, updated: ReadonlySet<number>, updateValues: ReadonlySet<number>): BufferRole {
  if (kind === 'param') return (n.attrs as { trainable?: boolean }).trainable ? 'trainable' : updated.has(n.id) ? 'optimizer' : 'frozen';
  if (kind === 'const') return 'constant';
  if (kind === 'input' || kind === 'output') return kind;
  return updateValues.has(n.id) ? 'optimizer' : isBackward(n) ? 'gradient' : 'activation';
}

/** Floating-point operations of one run: a template's own FLOPs plus its epilogue, elements times fused ops
 * for the rest (a parameter-update commit only copies). */
function costOf(k: Kernel): number {
  if (k.kind === 'commit') return 0;
  const epilogue = kernelElements(k) * M.max(k.ops.length, 1);
  return k.kind === 'extern' ? k.flops + kernelElements(k) * M.max(k.ops.length - 1, 0) : epilogue;
}

/** Inputs a pointwise kernel reads only at exactly the offset it writes (every load of that buffer), with the
 * same element size: the output may then overwrite the input in place. With side outputs, each store pairs with
 * the inputs read at its own offset: the renderers compute every value of an element (all its loads) before any
 * of its stores, so an element's stores never change what the element reads. */
function inPlacePairs(k: Kernel): { read: number; write: number }[] {
  if (k.kind !== 'pointwise') return [];
  // Each loaded buffer's load offsets (a masked load counts apart) and element size, over the whole kernel.
  const offsets = new Map<number, Set<string>>(), sizes = new Map<number, number>();
  const seen = new Set<string>();
  const walk = (e: Expr) => {
    if (seen.has(e.key)) return;
    seen.add(e.key);
    if (e.k === 'load') {
      const o = offsets.get(e.buf) ?? new Set<string>();
      o.add(e.mask ? `${e.off.key}?masked` : e.off.key);
      offsets.set(e.buf, o);
      sizes.set(e.buf, byteSize[e.dt]);
    }
    children(e).forEach(walk);
  };
  for (const st of k.stores) walk(st.value);
  const written = new Set(k.stores.map((st) => st.buf));
  return k.stores.flatMap((s) => [...offsets].filter(([b, o]) => !written.has(b) && o.size === 1 && o.has(s.off.key) && sizes.get(b) === byteSize[s.dt])
    .map(([b]) => ({ read: b, write: s.buf })));
}
