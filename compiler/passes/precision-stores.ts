/** Low stores: the second half of the precision policy (passes/precision.ts decides what each value computes in;
 * this decides what the values that reach memory are stored in). It runs on the simplified graph, in schedule
 * order, where fusion's decisions are known, so a value is rounded only where a kernel stores it, never inside a
 * kernel (a norm's mean / variance chain, a softmax's max / sum, is one fused kernel and stays f32 throughout).
 *
 * A forward value computed in f32 only because a reduction made it ("wide": a norm's, softmax's or projection's
 * output, an activation function of one, ...) is stored in the low type where fusion realizes it, when
 * - its readers are all elementwise / movement ops (the GEMM / conv / attention readers read it through a cast to
 *   the low type, itself elementwise), so it is an activation between layers, not a reduction's or an f32
 *   template's operand;
 * - no output and no parameter update is computed from it without a GEMM / conv / attention in between (losses
 *   and outputs, with what the forward pass reduces into them; trainable parameters' gradients and the
 *   optimizer's inputs stay f32; a backward cotangent that a gradient is reduced from does not count).
 * Backward values (cotangents) stay f32 where computed in f32: they live briefly (what the backward pass keeps
 * is forward activations), and a norm's or softmax's backward reduces them in f32 as they were computed.
 * Values computed from fed f32 inputs or elementwise from f32 master weights ("exact": noise, schedule
 * coefficients, targets; a trained norm's affine output, a trained bias added: a trained module keeps f32
 * activations, the frozen model stores low) stay f32, as do statistics (reductions' results and what is computed
 * from them alone: a mean, a variance's rsqrt) and the values of modules kept in f32. A realized f32 copy of a
 * low value (a template's output widened by its epilogue because several kernels read it) becomes the low value
 * realized, widened where it is read (exact).
 *
 * The rewrite: every reader of a chosen value `v` reads `f32(low(v))`, and `low(v)` is returned as a store that
 * the schedule realizes (a root of fusion), so `v` fuses into the kernel that stores `low(v)` and each reader
 * widens the low buffer while loading it. Fusion may realize new values in the rewritten graph (a reader's region
 * grew by a cast), so the rewrite repeats until nothing changes (at most `rounds` times). The rules read the op
 * table (`lower.kind`, `lowPrecision`); like passes/precision.ts, only sources and casts are told apart by op. */
import { intern, type Node } from '../ir/node';
import type { GraphSpec, GraphValue } from '../ir/graph';
import { isFloat, type FloatDType } from '../ir/dtype';
import { inheritMarks, isBackward, segmentOf } from '../ir/segment';
import { OPS } from '../ops/registry';
import { isView } from '../ops/views';
import { fuse } from '../schedule/fusion';
import { Tensor } from '../dsl/tensor';

/** How an f32 value came to be f32: from fed f32 inputs, f32 master weights or f32 templates ('exact'), from low
 * values with reductions' results ('wide': an activation), from reductions' results and constants only ('stat': a
 * norm's mean and scale, a softmax's max and sum), or from constants and frozen f32 leaves ('leaf'). */
type Origin = 'exact' | 'wide' | 'stat' | 'leaf' | 'low' | 'other';

export interface LowStores {
  readonly spec: GraphSpec<Tensor>;
  /** The `low(v)` nodes the schedule must realize. */
  readonly stores: readonly Node[];
}

const isTemplate = (n: Node) => { const l = OPS[n.op].lower; return l.kind === 'extern' && !!l.lowPrecision; };

/** `orderOf` gives a spec's nodes in the order the schedule fuses them (fusion's result depends on it). */
export function storeLow(spec: GraphSpec, low: FloatDType, orderOf: (g: GraphSpec) => readonly Node[], fusion = true, rounds = 4): LowStores {
  let g: GraphSpec<Tensor> = { outputs: Object.fromEntries(Object.entries(spec.outputs).map(([k, v]) => [k, new Tensor(v.node)])), updates: (spec.updates ?? []).map((u) => ({ param: new Tensor(u.param.node), value: new Tensor(u.value.node) })) };
  let stores: Node[] = [];
  if (low === 'f32') return { spec: g, stores };
  for (let round = 0; round < rounds; round++) {
    const order = orderOf(g);
    const roots = [...Object.values(g.outputs).map((t) => t.node), ...(g.updates ?? []).map((u) => u.value.node)];
    const rootIds = new Set(roots.map((r) => r.id));
    const { realized } = fuse(order, [...roots, ...stores], new Set(), 8, fusion);
    const updated = new Set((g.updates ?? []).map((u) => u.param.node.id));
    const readers = new Map<number, Node[]>();
    for (const n of order) for (const i of new Set(n.inputs)) { const r = readers.get(i.id); if (r) r.push(n); else readers.set(i.id, [n]); }

    const origin = new Map<number, Origin>();
    for (const n of order) origin.set(n.id, originOf(n, updated, (i) => origin.get(i.id)!, low));
    // Values an output or a parameter update is computed from without a GEMM / conv / attention in between: in
    // the forward pass through elementwise ops and reductions (a loss and what it reduces), in the backward pass
    // through elementwise ops only (a parameter's gradient and the optimizer's inputs, not every cotangent that a
    // gradient is reduced from).
    const keep = new Set<number>();
    for (let i = order.length - 1; i >= 0; i--) {
      const n = order[i], back = isBackward(n);
      const kept = (u: Node) => keep.has(u.id) && !isTemplate(u) && (!back || OPS[u.op].lower.kind === 'pointwise');
      if (rootIds.has(n.id) || (readers.get(n.id) ?? []).some(kept)) keep.add(n.id);
    }
    const chosen = new Set<number>(), widened: Node[] = [];
    for (const n of order) {
      if (!realized.has(n.id) || n.dtype !== 'f32' || rootIds.has(n.id) || OPS[n.op].lower.kind !== 'pointwise') continue;
      const rs = readers.get(n.id) ?? [];
      // A widened copy of a low value (a template's output cast up by its epilogue): store the low value and
      // widen it where it is read; exact, so whatever reads it.
      const low16 = widenedFrom(n, low);
      if (low16) { if (rs.every((u) => OPS[u.op].lower.kind !== 'extern') && OPS[low16.op].lower.kind !== 'source') widened.push(low16); continue; }
      if (origin.get(n.id) !== 'wide' || keep.has(n.id) || isBackward(n)) continue;
      if (rs.every((u) => OPS[u.op].lower.kind === 'pointwise')) chosen.add(n.id);
    }
    if (!chosen.size && !widened.length) break;

    const map = new Map<number, Node>(), lowOf = new Map<number, Node>();
    const node = (op: string, ins: readonly Node[], attrs: object, like: Node, dtype: typeof low | 'f32', shapeOf = like) =>
      intern(op as never, ins, attrs as never, shapeOf.shape, dtype, like.src, segmentOf(like));
    for (const n of order) {
      const ins = n.inputs.map((i) => map.get(i.id) ?? i);
      // A cast of a chosen value to the low type is that value's store.
      const src = n.inputs[0];
      if (n.op === 'cast' && n.dtype === low && src && lowOf.has(src.id)) { map.set(n.id, lowOf.get(src.id)!); continue; }
      let m = ins.every((x, j) => x === n.inputs[j]) ? n : node(n.op, ins, n.attrs, n, n.dtype as never);
      if (m !== n) inheritMarks(n, m);
      if (chosen.has(n.id)) {
        const lo = node('cast', [m], { dtype: low }, m, low), up = node('cast', [lo], { dtype: 'f32' }, m, 'f32');
        inheritMarks(m, lo);
        lowOf.set(n.id, lo);
        m = up;
      }
      map.set(n.id, m);
    }
    const t = (x: GraphValue) => new Tensor(map.get(x.node.id) ?? x.node);
    g = { outputs: Object.fromEntries(Object.entries(g.outputs).map(([k, v]) => [k, t(v)])), updates: (g.updates ?? []).map((u) => ({ param: t(u.param), value: t(u.value) })) };
    stores = [...stores, ...widened].map((s) => map.get(s.id) ?? s).concat([...lowOf.values()]);
  }
  return { spec: g, stores };
}

/** The low value `n` is an exact widening of (through views: cast up, then reshaped), seen below its views. */
function widenedFrom(n: Node, low: FloatDType): Node | undefined {
  let m = n;
  while (isView(m) && m.inputs.length === 1) m = m.inputs[0];
  if (m.op !== 'cast' || m.inputs[0]?.dtype !== low) return undefined;
  for (m = m.inputs[0]; isView(m) && m.inputs.length === 1;) m = m.inputs[0];
  return m;
}

function originOf(n: Node, updated: ReadonlySet<number>, of: (i: Node) => Origin, low: FloatDType): Origin {
  if (!isFloat(n.dtype)) return 'other';
  if (n.dtype !== 'f32') return n.dtype === low ? 'low' : 'other';
  const l = OPS[n.op].lower;
  if (l.kind === 'source') return n.op === 'input' || updated.has(n.id) ? 'exact' : 'leaf';
  const ins = n.inputs.filter((i) => isFloat(i.dtype)).map(of);
  if (ins.includes('exact')) return 'exact';
  if (l.kind === 'extern' && l.lowPrecision) return 'exact';  // an f32 template (a module kept in f32)
  if (l.kind === 'reduce') return 'stat';
  if (l.kind !== 'pointwise') return 'wide';
  return ins.includes('wide') || ins.includes('low') ? 'wide' : ins.includes('stat') ? 'stat' : 'leaf';
}
