/** The precision policy: a graph rewrite, run before scheduling, that decides each float value's storage type
 * and inserts the casts (plain `cast` nodes, so fusion folds them into the kernels beside them and the memory
 * planner sees 2-byte buffers). Rules, from the op table only (no op is named here):
 * - templates that declare `lowPrecision` (GEMM, conv, attention) read bf16/f16 operands and accumulate in f32;
 *   their output is stored in the low type;
 * - reductions, and templates without `lowPrecision`, read and produce f32 (norms, softmax, means, losses are
 *   compositions of reductions and elementwise ops, so they compute in f32);
 * - an elementwise op computes in f32 when any float operand comes from f32 computation (a reduction, a fed
 *   input, a parameter the program updates), else in the low type when an operand is low, else as written;
 * - parameters the program updates (trainable weights and optimizer state) keep f32 master storage; every other
 *   float parameter (frozen weights) is stored in the low type, and so is a fed input whose only readers are
 *   templates (the host rounds it when it is fed: no kernel exists only to cast);
 * - outputs and update values keep their declared dtype (a cast at the end, fused into the producing kernel).
 * `modules` overrides the type by parameter-name prefix (`{ 'id_attn.': 'f32' }`): such parameters are stored
 * in that type and the templates reading them compute in it. */
import { intern, type Node } from '../ir/node';
import { collect, type GraphSpec, type GraphValue } from '../ir/graph';
import { isFloat, type DType, type FloatDType } from '../ir/dtype';
import { OPS } from '../ops/registry';
import { Tensor } from '../dsl/tensor';
import { inheritMarks, segmentOf } from '../ir/segment';

export const PRECISIONS = ['f32', 'bf16', 'f16'] as const;
export type Precision = (typeof PRECISIONS)[number];
export interface PrecisionPolicy {
  /** Storage type of activations and frozen weights, and the operand type of GEMM / conv / attention. */
  readonly precision: Precision;
  /** Per-module override by parameter-name prefix (the longest matching prefix wins). */
  readonly modules?: Readonly<Record<string, Precision>>;
  /** 'low': every fed f32 input is stored in the low type (the host rounds it when fed), so the elementwise work
   * on it runs on bf16 / f16 storage too (inference on low-precision data). Default 'f32': a fed input stays f32
   * unless templates are its only readers. */
  readonly inputs?: 'low' | 'f32';
}

/** An unknown precision name (or override) given to compile, trainStepGraph, the trainer or a CLI. */
export class KilnPrecisionError extends Error {
  constructor(readonly value: unknown, readonly where: string) {
    super(`${where}: unknown precision ${JSON.stringify(value)} (expected one of ${PRECISIONS.join(', ')})`);
    this.name = 'KilnPrecisionError';
  }
}

/** A precision option as given (a name or a policy) checked and normalized; throws KilnPrecisionError. */
export function precisionPolicy(p: Precision | PrecisionPolicy | undefined, where = 'precision'): PrecisionPolicy {
  const check = (v: unknown, at: string): Precision => {
    if (!(PRECISIONS as readonly unknown[]).includes(v)) throw new KilnPrecisionError(v, at);
    return v as Precision;
  };
  if (p === undefined) return { precision: 'f32' };
  if (typeof p !== 'object' || p === null) return { precision: check(p, where) };
  const modules = Object.fromEntries(Object.entries(p.modules ?? {}).map(([k, v]) => [k, check(v, `${where} (module '${k}')`)]));
  if (p.inputs !== undefined && p.inputs !== 'low' && p.inputs !== 'f32') throw new KilnPrecisionError(p.inputs, `${where} (inputs: 'low' or 'f32')`);
  return { precision: check(p.precision, where), modules, inputs: p.inputs };
}

/** How a value takes part: computed in the low type, computed in f32, or a constant / frozen f32 leaf that adapts
 * to whatever reads it. Non-float values are 'other'. */
type Role = 'low' | 'f32' | 'leaf' | 'other';

const nameOf = (n: Node) => (n.attrs as { name: string }).name;

/** Rewrites `spec` under `policy`; the identity for 'f32' without overrides. The result is tagged with the
 * policy's precision. */
export function applyPrecision(spec: GraphSpec, policy: PrecisionPolicy): GraphSpec<Tensor> {
  const modules = Object.entries(policy.modules ?? {}).sort((a, b) => b[0].length - a[0].length);
  const wrap = (x: GraphValue) => new Tensor(x.node);
  if (policy.precision === 'f32' && !modules.length) {
    return { outputs: Object.fromEntries(Object.entries(spec.outputs).map(([k, v]) => [k, wrap(v)])), updates: (spec.updates ?? []).map((u) => ({ param: wrap(u.param), value: wrap(u.value) })) };
  }
  const moduleOf = (name: string): Precision => modules.find(([pre]) => name.startsWith(pre))?.[1] ?? policy.precision;
  const { order } = collect(spec);
  const updated = new Set((spec.updates ?? []).map((u) => u.param.node.id));
  const readers = new Map<number, Node[]>();
  for (const n of order) for (const i of n.inputs) { const r = readers.get(i.id); if (r) r.push(n); else readers.set(i.id, [n]); }
  const onlyLowTemplates = (n: Node) => (readers.get(n.id) ?? []).every((u) => { const l = OPS[u.op].lower; return l.kind === 'extern' && l.lowPrecision; });

  const map = new Map<number, Node>(), role = new Map<number, Role>();
  /** The precision a parameter (seen through single-input views and casts) asks for, if any. */
  const paramPrecision = (n: Node): Precision | undefined => {
    for (let m = n; ; m = m.inputs[0]) {
      if (m.op === 'param') return moduleOf(nameOf(m));
      if (m.inputs.length !== 1) return undefined;
    }
  };
  // A cast goes below views (reshape, permute, ...): two readers of differently viewed copies of one value then
  // share one cast, which fuses into the kernel that makes the value, and a template reads the view strided.
  const cast = (x: Node, d: DType, src: string): Node => {
    if (x.dtype === d || !isFloat(x.dtype)) return x;
    const l = OPS[x.op].lower;
    if (l.kind === 'pointwise' && l.view && x.inputs.length === 1) return rebuild(x, [cast(x.inputs[0], d, src)]);
    return marked(x, intern('cast', [x], { dtype: d }, x.shape, d, src, segmentOf(x)));
  };
  // A rewritten node keeps the marks of the node it replaces: its checkpoint segment (in the intern key) and
  // whether autodiff built it (the memory report counts those buffers as gradients).
  const marked = (from: Node, to: Node): Node => { inheritMarks(from, to); return to; };
  const rebuild = (n: Node, ins: readonly Node[]): Node => {
    if (ins.every((x, i) => x === n.inputs[i])) return n;
    let out;
    try { out = OPS[n.op].infer(ins.map((i) => ({ shape: i.shape, dtype: i.dtype })), n.attrs as never); } catch (e) {
      throw new Error(`precision: rebuilding ${n.op}#${n.id} (${n.src}) on ${ins.map((i) => i.dtype).join(', ')} (written ${n.inputs.map((i) => i.dtype).join(', ')}): ${(e as Error).message}`);
    }
    return marked(n, intern(n.op, ins, n.attrs as never, out.shape, out.dtype, n.src, segmentOf(n)));
  };

  for (const n of order) {
    const l = OPS[n.op].lower;
    if (!isFloat(n.dtype) && n.inputs.every((i) => !isFloat(i.dtype))) { map.set(n.id, rebuild(n, n.inputs.map((i) => map.get(i.id)!))); role.set(n.id, 'other'); continue; }
    if (l.kind === 'source') {
      let m: Node = n, r: Role = isFloat(n.dtype) ? 'leaf' : 'other';
      if (n.op === 'param' && isFloat(n.dtype)) {
        if (updated.has(n.id)) r = 'f32';
        else {
          const d = moduleOf(nameOf(n));
          m = d === n.dtype ? n : intern('param', [], { ...(n.attrs as object), dtype: d } as never, n.shape, d, n.src);
          r = d === 'f32' ? 'leaf' : 'low';
        }
      } else if (n.op === 'input' && isFloat(n.dtype)) {
        const d = policy.precision;
        if (n.dtype === 'f32' && d !== 'f32' && (policy.inputs === 'low' || onlyLowTemplates(n))) { m = intern('input', [], { ...(n.attrs as object), dtype: d } as never, n.shape, d, n.src); r = 'low'; }
        else r = n.dtype === 'f32' ? 'f32' : 'low';
      }
      map.set(n.id, m); role.set(n.id, r);
      continue;
    }
    const ins = n.inputs.map((i) => map.get(i.id)!);
    const roles = n.inputs.map((i) => role.get(i.id)!);
    let m: Node, r: Role;
    if (l.kind === 'extern' && l.lowPrecision) {
      const asked = n.inputs.map(paramPrecision).find((p) => p !== undefined && p !== policy.precision);
      const d: FloatDType = asked ?? policy.precision;
      m = rebuild(n, ins.map((x) => cast(x, d, n.src)));
      r = d === 'f32' ? 'f32' : 'low';
    } else if (l.kind === 'extern' || l.kind === 'reduce') {
      m = rebuild(n, ins.map((x) => cast(x, 'f32', n.src)));
      r = isFloat(m.dtype) ? 'f32' : 'other';
    } else if (n.op === 'cast') {
      const d = (n.attrs as { dtype: DType }).dtype;
      m = ins[0].dtype === d ? ins[0] : marked(n, intern('cast', [ins[0]], { dtype: d }, ins[0].shape, d, n.src, segmentOf(n)));
      r = !isFloat(d) ? 'other' : d === 'f32' ? (roles[0] === 'leaf' ? 'leaf' : 'f32') : 'low';
    } else {
      // Elementwise / movement: f32 wins, then low, then leave the leaves as they are.
      const lowIn = ins.find((x, i) => isFloat(x.dtype) && roles[i] === 'low');
      const anyF32 = ins.some((x, i) => isFloat(x.dtype) && roles[i] === 'f32');
      const target: DType | undefined = anyF32 ? 'f32' : lowIn?.dtype;
      m = target ? rebuild(n, ins.map((x, i) => (roles[i] === 'other' ? x : cast(x, target, n.src)))) : rebuild(n, ins);
      r = !isFloat(m.dtype) ? 'other' : anyF32 ? 'f32' : lowIn ? 'low' : 'leaf';
    }
    map.set(n.id, m); role.set(n.id, r);
  }
  const out = (x: GraphValue) => new Tensor(cast(map.get(x.node.id)!, x.dtype, x.node.src));
  return {
    outputs: Object.fromEntries(Object.entries(spec.outputs).map(([k, v]) => [k, out(v)])),
    updates: (spec.updates ?? []).map((u) => ({ param: wrap(u.param), value: out(u.value) })),
  };
}
