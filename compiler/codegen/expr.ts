/** Constructors for kernel-IR expressions with constant folding and index simplification: linear index
 * arithmetic is normalized to sums of terms, and `idiv`/`mod` by a constant use the known ranges of loop
 * variables to vanish (so a reshape between two contiguous shapes costs no divisions in the inner loop). */
import type { DType } from '../ir/dtype';
import { castValue } from '../ir/dtype';
import type { ScalarOp } from '../ops/lowering';
import { BOOL_RESULT, SCALAR_SEMANTICS } from '../ops/scalar';
import type { Expr } from './kir';
// Globals are bound once per module: every global lookup is slow inside jest's vm contexts.
const M = Math;

/** Hash-consing by identity: a node's signature is its own fields plus its children's interned ids, so it
 * has constant length however deep the DAG, and `key` is the interned id (a string, so it keys Maps and Sets).
 * `h` is a structural hash (equal for equal structure in any process or build order) that orders terms
 * canonically, so the same graph renders the same source whatever was built before it. */
const cache = new Map<string, Expr>();
let nextId = 0;
type Dist<T> = T extends Expr ? Omit<T, 'key' | 'h'> : never;
const mix = (h: number, v: number): number => M.imul(h ^ v, 0x9e3779b1) ^ (h >>> 15);
const strHash = (s: string): number => { let h = 0x811c9dc5; for (let i = 0; i < s.length; i++) h = M.imul(h ^ s.charCodeAt(i), 0x01000193); return h; };
/** `sig` is the node's own fields (short); `hashes` its own hashed fields and its children's `h`. */
const mk = (e: Dist<Expr>, sig: string, hashes: readonly number[]): Expr => {
  let hit = cache.get(sig);
  if (!hit) {
    let h = strHash(e.k);
    for (const v of hashes) h = mix(h, v);
    hit = { ...e, key: `#${nextId++}`, h: h >>> 0 } as Expr;
    cache.set(sig, hit);
  }
  return hit;
};
const F64 = new Float64Array(1), U32 = new Uint32Array(F64.buffer);
const numHash = (v: number): number => { F64[0] = v; return mix(U32[0], U32[1]); };

export const cnst = (v: number, dt: DType): Expr => { const x = castValue(v, dt); return mk({ k: 'const', v: x, dt }, `c${dt}:${Object.is(x, -0) ? '-0' : x}`, [strHash(dt), numHash(x)]); };
export const idx = (n: number): Expr => cnst(n, 'i32');
export const variable = (name: string, extent: number): Expr => mk({ k: 'var', name, extent, dt: 'i32' }, `v${name}<${extent}`, [strHash(name), extent]);
export const acc = (dt: DType, slot = 0): Expr => mk({ k: 'acc', slot, dt }, `acc${slot}:${dt}`, [slot, strHash(dt)]);
export const load = (buf: number, off: Expr, dt: DType, mask: Expr | null = null): Expr =>
  mask && mask.k === 'const' ? (mask.v ? load(buf, off, dt) : cnst(0, dt)) : mk({ k: 'load', buf, off, mask, dt }, `L${buf}[${off.key}]${mask ? `?${mask.key}` : ''}:${dt}`, [buf, off.h, mask?.h ?? 0, strHash(dt)]);
export const philox = (key_: Expr, ctr: Expr, stream: number): Expr => mk({ k: 'philox', key_, ctr, stream, dt: 'f32' }, `P(${key_.key},${ctr.key},${stream})`, [key_.h, ctr.h, stream]);

const FOLD = SCALAR_SEMANTICS;
const BOOL_OPS = BOOL_RESULT;

// ---- ranges and linear forms of integer index expressions

/** Inclusive [min, max] of an i32 expression, or null when unknown. */
export function range(e: Expr): [number, number] | null {
  if (e.dt !== 'i32') return null;
  let r = ranges.get(e);
  if (r === undefined) { r = rangeOf(e); ranges.set(e, r); }
  return r;
}
/** Ranges are memoized per node, so shared index subexpressions are analysed once. */
const ranges = new WeakMap<Expr, [number, number] | null>();
function rangeOf(e: Expr): [number, number] | null {
  switch (e.k) {
    case 'const': return [e.v, e.v];
    case 'var': return [0, e.extent - 1];
    case 'alu': {
      const rs = e.args.map(range);
      if (rs.some((r) => !r)) return null;
      const [a, b] = rs as [number, number][];
      switch (e.op) {
        case 'add': return [a[0] + b[0], a[1] + b[1]];
        case 'sub': return [a[0] - b[1], a[1] - b[0]];
        case 'mul': { const p = [a[0] * b[0], a[0] * b[1], a[1] * b[0], a[1] * b[1]]; return [M.min(...p), M.max(...p)]; }
        case 'idiv': return b[0] === b[1] && b[0] > 0 && a[0] >= 0 ? [M.trunc(a[0] / b[0]), M.trunc(a[1] / b[0])] : null;
        case 'mod': return b[0] === b[1] && b[0] > 0 && a[0] >= 0 ? [0, M.min(b[0] - 1, a[1])] : null;
        case 'max': return [M.max(a[0], b[0]), M.max(a[1], b[1])];
        case 'min': return [M.min(a[0], b[0]), M.min(a[1], b[1])];
        default: return null;
      }
    }
    default: return null;
  }
}

/** sum(coef * term) + c over non-constant, non-additive terms. */
interface Linear { terms: Map<string, { coef: number; e: Expr }>; c: number }
function linear(e: Expr): Linear {
  const out: Linear = { terms: new Map(), c: 0 };
  const walk = (x: Expr, s: number) => {
    if (x.k === 'const') { out.c += s * x.v; return; }
    if (x.k === 'alu' && x.dt === 'i32') {
      if (x.op === 'add') { walk(x.args[0], s); walk(x.args[1], s); return; }
      if (x.op === 'sub') { walk(x.args[0], s); walk(x.args[1], -s); return; }
      if (x.op === 'mul' && x.args[1].k === 'const') { walk(x.args[0], s * x.args[1].v); return; }
      if (x.op === 'mul' && x.args[0].k === 'const') { walk(x.args[1], s * x.args[0].v); return; }
    }
    const t = out.terms.get(x.key);
    if (t) t.coef += s; else out.terms.set(x.key, { coef: s, e: x });
  };
  walk(e, 1);
  // Recombine (x / (d m)) * (k m) + ((x / d) % m) * k into (x / d) * k: the flat index a reshape took apart
  // and put back (d = 1 is the plain case x / m, x % m).
  for (let again = true; again;) {
    again = false;
    outer: for (const [kd, td] of out.terms) {
      if (td.e.k !== 'alu' || td.e.op !== 'idiv' || td.e.args[1].k !== 'const') continue;
      const [x, c] = td.e.args as [Expr, { v: number } & Expr];
      for (const [km, tm] of out.terms) {
        if (tm.e.k !== 'alu' || tm.e.op !== 'mod' || tm.e.args[1].k !== 'const') continue;
        const [y, mc] = tm.e.args as [Expr, { v: number } & Expr];
        const m = mc.v;
        const d = y.key === x.key ? 1 : y.k === 'alu' && y.op === 'idiv' && y.args[0].key === x.key && y.args[1].k === 'const' ? y.args[1].v : 0;
        if (!d || d * m !== c.v || td.coef !== tm.coef * m) continue;
        out.terms.delete(kd); out.terms.delete(km);
        walk(y, tm.coef);
        again = true;
        break outer;
      }
    }
  }
  // Drop zero terms, and terms that can only be 0 (a loop over a dim of size 1), so an index is the same
  // expression whether a broadcast wrote 0 or the loop variable for that dim.
  for (const [k, t] of out.terms) { const r = range(t.e); if (t.coef === 0 || (r && r[0] === 0 && r[1] === 0)) out.terms.delete(k); }
  return out;
}
/** Canonical order of the terms of a sum: loop variables by name, then other terms by structural hash. */
const termOrder = (a: Expr, b: Expr): number => {
  if (a.k === 'var' || b.k === 'var') return a.k === 'var' && b.k === 'var' ? (a.name < b.name ? -1 : a.name > b.name ? 1 : 0) : a.k === 'var' ? -1 : 1;
  return a.h - b.h || (a.key < b.key ? -1 : a.key > b.key ? 1 : 0);
};
function fromLinear(l: Linear): Expr {
  let e: Expr | null = null;
  const terms = [...l.terms.values()].sort((a, b) => termOrder(a.e, b.e));
  for (const t of terms) {
    const term = t.coef === 1 ? t.e : mkAlu('mul', [t.e, idx(t.coef)], 'i32');
    e = e ? mkAlu('add', [e, term], 'i32') : term;
  }
  if (!e) return idx(l.c);
  return l.c ? mkAlu('add', [e, idx(l.c)], 'i32') : e;
}
const linRange = (l: Linear): [number, number] | null => {
  let lo = l.c, hi = l.c;
  for (const t of l.terms.values()) {
    const r = range(t.e);
    if (!r) return null;
    lo += M.min(t.coef * r[0], t.coef * r[1]);
    hi += M.max(t.coef * r[0], t.coef * r[1]);
  }
  return [lo, hi];
};

const gcd = (a: number, b: number): number => (b === 0 ? a : gcd(b, a % b));

/** idiv/mod of a non-negative linear form by a positive constant d. Terms whose coefficient d divides move to
 * the quotient. What is left, `rest`, is exact when it stays in [0, d); otherwise, when its largest terms share
 * a factor g that divides d and the small terms stay in [0, g), rest = g*B + s gives
 * rest / d = B / (d/g) and rest % d = (B % (d/g))*g + s: the index of a reshape between two shapes that
 * share a factor, with no division left over the inner dims. */
function divmod(op: 'idiv' | 'mod', a: Expr, d: number): Expr | null {
  const r = range(a);
  if (!r || r[0] < 0) return null;
  if (r[1] < d) return op === 'idiv' ? idx(0) : a;
  const l = linear(a);
  const q: Linear = { terms: new Map(), c: 0 }, rest: Linear = { terms: new Map(), c: 0 };
  for (const [k, t] of l.terms) (t.coef % d === 0 ? q : rest).terms.set(k, { coef: t.coef, e: t.e });
  if (l.c % d === 0) q.c = l.c; else rest.c = l.c;
  const rr = linRange(rest);
  if (!rr || rr[0] < 0) return null;
  const quotient = (inner: Expr) => {
    for (const t of q.terms.values()) t.coef /= d;
    q.c /= d;
    return alu('add', fromLinear(q), inner);
  };
  if (rr[1] < d) return op === 'mod' ? fromLinear(rest) : quotient(idx(0));
  const terms = [...rest.terms.entries()].sort((x, y) => M.abs(y[1].coef) - M.abs(x[1].coef));
  for (let k = 1; k <= terms.length; k++) {
    const g = terms.slice(0, k).reduce((acc, [, t]) => gcd(acc, M.abs(t.coef)), 0);
    if (g <= 1 || d % g !== 0) continue;
    const small: Linear = { terms: new Map(terms.slice(k).map(([key, t]) => [key, { ...t }])), c: rest.c };
    const sr = linRange(small);
    if (!sr || sr[0] < 0 || sr[1] >= g) continue;
    const big: Linear = { terms: new Map(terms.slice(0, k).map(([key, t]) => [key, { coef: t.coef / g, e: t.e }])), c: 0 };
    const bigE = fromLinear(big);
    const br = range(bigE);
    if (!br || br[0] < 0) continue;
    const inner = alu(op, bigE, idx(d / g));
    return op === 'idiv' ? quotient(inner) : alu('add', alu('mul', inner, idx(g)), fromLinear(small));
  }
  // Otherwise peel off the divisible part: (q + rest) / d = q/d + rest/d and (q + rest) % d = rest % d.
  if (!q.terms.size && !q.c) return null;
  const r2 = fromLinear(rest);
  return op === 'mod' ? mkAlu('mod', [r2, idx(d)], 'i32') : quotient(mkAlu('idiv', [r2, idx(d)], 'i32'));
}

function mkAlu(op: ScalarOp, args: readonly Expr[], dt: DType): Expr {
  return mk({ k: 'alu', op, args, dt }, `${op}(${args.map((a) => a.key).join(',')}):${dt}`, [strHash(op), strHash(dt), ...args.map((a) => a.h)]);
}

/** An ALU op, folded and simplified. Result dtype: bool for comparisons and logic, else the first operand's. */
export function alu(op: ScalarOp, ...args: Expr[]): Expr {
  const dt: DType = BOOL_OPS.has(op) ? 'bool' : args[0].dt;
  if (args.every((a) => a.k === 'const')) return cnst(FOLD[op](...args.map((a) => (a as { v: number }).v)), dt);
  const [a, b] = args;
  const isC = (x: Expr | undefined, v: number) => x !== undefined && x.k === 'const' && x.v === v;
  switch (op) {
    case 'add': if (isC(b, 0)) return a; if (isC(a, 0)) return b; break;
    case 'sub': if (isC(b, 0)) return a; break;
    case 'mul': if (isC(b, 1)) return a; if (isC(a, 1)) return b; if (dt === 'i32' && (isC(a, 0) || isC(b, 0))) return idx(0); break;
    case 'div': if (isC(b, 1)) return a; break;
    case 'idiv': case 'mod':
      // (x / a) / b = x / (a b) for non-negative x
      if (op === 'idiv' && b.k === 'const' && b.v > 0 && a.k === 'alu' && a.op === 'idiv' && a.args[1].k === 'const' && a.args[1].v > 0 && (range(a.args[0])?.[0] ?? -1) >= 0) return alu('idiv', a.args[0], idx(a.args[1].v * b.v));
      if (b.k === 'const' && b.v > 0) { if (op === 'idiv' && b.v === 1) return a; if (op === 'mod' && b.v === 1) return idx(0); const s = divmod(op, a, b.v); if (s) return s; }
      break;
    case 'and': if (isC(a, 1)) return b; if (isC(b, 1)) return a; if (isC(a, 0) || isC(b, 0)) return cnst(0, 'bool'); break;
    case 'lt': case 'le': {
      const ra = range(a), rb = range(b);
      if (ra && rb) {
        if (op === 'lt' ? ra[1] < rb[0] : ra[1] <= rb[0]) return cnst(1, 'bool');
        if (op === 'lt' ? ra[0] >= rb[1] : ra[0] > rb[1]) return cnst(0, 'bool');
      }
      break;
    }
    case 'max': case 'min': {
      const ra = range(a), rb = range(b);
      if (ra && rb) {
        if (op === 'max' ? ra[0] >= rb[1] : ra[1] <= rb[0]) return a;
        if (op === 'max' ? rb[0] >= ra[1] : rb[1] <= ra[0]) return b;
      }
      break;
    }
  }
  if (dt === 'i32' && (op === 'add' || op === 'sub' || op === 'mul')) {
    const l = linear(mkAlu(op, args, dt));
    return fromLinear(l);
  }
  return mkAlu(op, args, dt);
}

export function where(c: Expr, a: Expr, b: Expr): Expr {
  if (c.k === 'const') return c.v ? a : b;
  if (a.key === b.key) return a;
  return mk({ k: 'where', args: [c, a, b], dt: a.dt }, `W(${c.key},${a.key},${b.key})`, [c.h, a.h, b.h]);
}

export function cast(x: Expr, dt: DType): Expr {
  if (x.dt === dt) return x;
  if (x.k === 'const') return cnst(x.v, dt);
  return mk({ k: 'cast', x, dt }, `C(${x.key}):${dt}`, [x.h, strHash(dt)]);
}

/** Flat offset of a multi-index into a contiguous buffer of `shape`. */
export function flatIndex(ix: readonly Expr[], shape: readonly number[]): Expr {
  let off = idx(0), st = 1;
  for (let i = shape.length - 1; i >= 0; i--) { off = alu('add', off, alu('mul', ix[i], idx(st))); st *= shape[i]; }
  return off;
}

/** Multi-index of flat position `flat` in `shape` (row-major). */
export function unflatten(flat: Expr, shape: readonly number[]): Expr[] {
  const out: Expr[] = new Array(shape.length);
  let st = 1;
  for (let i = shape.length - 1; i >= 0; i--) { out[i] = shape[i] === 1 ? idx(0) : alu('mod', alu('idiv', flat, idx(st)), idx(shape[i])); st *= shape[i]; }
  return out;
}

/** An expression's operands (what a walk over a kernel expression descends into). */
export const children = (e: Expr): readonly Expr[] => {
  switch (e.k) {
    case 'alu': case 'where': return e.args;
    case 'cast': return [e.x];
    case 'load': return e.mask ? [e.off, e.mask] : [e.off];
    case 'philox': return [e.key_, e.ctr];
    default: return [];
  }
};
