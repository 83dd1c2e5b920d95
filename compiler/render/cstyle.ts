/** The C-style base of both renderers: expressions to statements with one temporary per shared subexpression,
 * and an ops handler with one entry per scalar op. The C++ and CUDA renderers override the few that differ
 * (tinygrad's CStyleLanguage). */
import type { DType } from '../ir/dtype';
import type { ScalarOp } from '../ops/lowering';
import type { Expr, Store } from '../codegen/kir';
// Globals are bound once per module: every global lookup is slow inside jest's vm contexts.
const M = Math;
const M_isFinite = Number.isFinite;
const M_isNaN = Number.isNaN;

export type OpsHandler = Record<ScalarOp, (a: string[], dt: DType) => string>;

const isF = (dt: DType) => dt === 'f32' || dt === 'f16' || dt === 'bf16';

/** C expressions per scalar op for float (f32 math) and integer operands. */
export const cOps: OpsHandler = {
  add: ([a, b]) => `(${a} + ${b})`, sub: ([a, b]) => `(${a} - ${b})`, mul: ([a, b]) => `(${a} * ${b})`,
  div: ([a, b]) => `(${a} / ${b})`, idiv: ([a, b]) => `(${a} / ${b})`, mod: ([a, b]) => `(${a} % ${b})`,
  pow: ([a, b]) => `powf(${a}, ${b})`,
  // kiln_maxf/kiln_minf (both preludes): NaN-propagating, -0 < +0, as the reference's Math.max/min.
  max: ([a, b], dt) => (isF(dt) ? `kiln_maxf(${a}, ${b})` : `std::max<int64_t>(${a}, ${b})`),
  min: ([a, b], dt) => (isF(dt) ? `kiln_minf(${a}, ${b})` : `std::min<int64_t>(${a}, ${b})`),
  lt: ([a, b]) => `(${a} < ${b})`, le: ([a, b]) => `(${a} <= ${b})`, eq: ([a, b]) => `(${a} == ${b})`, ne: ([a, b]) => `(${a} != ${b})`,
  and: ([a, b]) => `(${a} && ${b})`, or: ([a, b]) => `(${a} || ${b})`, not: ([a]) => `(!${a})`,
  neg: ([a]) => `(-${a})`, exp: ([a]) => `expf(${a})`, log: ([a]) => `logf(${a})`, sqrt: ([a]) => `sqrtf(${a})`,
  rsqrt: ([a]) => `(1.0f / sqrtf(${a}))`, recip: ([a]) => `(1.0f / ${a})`,
  abs: ([a], dt) => (isF(dt) ? `fabsf(${a})` : `std::abs(${a})`), tanh: ([a]) => `tanhf(${a})`,
  sigmoid: ([a]) => `(1.0f / (1.0f + expf(-${a})))`, erf: ([a]) => `erff(${a})`, sin: ([a]) => `sinf(${a})`, cos: ([a]) => `cosf(${a})`,
  floor: ([a]) => `floorf(${a})`,
};

export interface Lang {
  readonly ops: OpsHandler;
  /** The C type of a value of dtype `dt` in registers. */
  valueType(dt: DType): string;
  /** The C type of a buffer element of dtype `dt` in memory. */
  storageType(dt: DType): string;
  literal(v: number, dt: DType): string;
  philox(key: string, ctr: string, stream: number): string;
  /** A stored element as a register value, a register value as a stored element, and a value rounded to a
   * narrower float (what a cast means). */
  fromStorage(v: string, dt: DType): string;
  toStorage(v: string, dt: DType): string;
  round(v: string, dt: 'f16' | 'bf16'): string;
}

export function literal(v: number, dt: DType): string {
  if (dt === 'bool') return v ? 'true' : 'false';
  if (dt === 'i32') return `${v}`;
  if (M_isNaN(v)) return 'NAN';
  if (!M_isFinite(v)) return v > 0 ? 'INFINITY' : '(-INFINITY)';
  const s = M.fround(v).toPrecision(9);
  return `${s.includes('.') || s.includes('e') ? s : `${s}.0`}f`;
}

/** Renders expression DAGs into `const T tN = ...;` lines (each distinct subexpression once). Leaves (constants,
 * loop variables, the accumulator) and index arithmetic print inline. `bufName` names a buffer's pointer. */
export class ExprPrinter {
  readonly lines: string[] = [];
  private names = new Map<string, string>();
  private n = 0;
  constructor(private lang: Lang, private bufName: (buf: number) => string, private prefix = 't') {}

  /** Print `e` as `s` (a value computed elsewhere, such as a row-stage cache read) from now on. */
  bind(e: Expr, s: string): void { this.names.set(e.key, s); }

  print(e: Expr): string {
    const hit = this.names.get(e.key);
    if (hit) return hit;
    let s: string;
    switch (e.k) {
      case 'const': return this.lang.literal(e.v, e.dt);
      case 'var': return e.name;
      case 'acc': return e.slot ? `acc${e.slot}` : 'acc';
      case 'alu': s = this.lang.ops[e.op](e.args.map((a) => this.print(a)), e.args[0].dt); break;
      case 'where': s = `(${this.print(e.args[0])} ? ${this.print(e.args[1])} : ${this.print(e.args[2])})`; break;
      case 'cast': {
        const x = this.print(e.x);
        // Narrow floats round in registers too, so a cast means what storing would.
        s = e.dt === 'bool' ? `(${x} != 0)` : e.dt === 'f16' || e.dt === 'bf16' ? this.lang.round(`(float)(${x})`, e.dt) : `(${this.lang.valueType(e.dt)})(${x})`;
        break;
      }
      case 'load': {
        const v = `${this.bufName(e.buf)}[${this.print(e.off)}]`;
        const val = this.lang.fromStorage(v, e.dt);
        s = e.mask ? `(${this.print(e.mask)} ? ${val} : ${this.lang.literal(0, e.dt)})` : val;
        break;
      }
      case 'philox': s = this.lang.philox(this.print(e.key_), this.print(e.ctr), e.stream); break;
    }
    // Integer index arithmetic stays inline (the C compiler strength-reduces it); values get a temporary.
    if (e.dt === 'i32' && e.k === 'alu') { this.names.set(e.key, s); return s; }
    const name = `${this.prefix}${this.n++}`;
    this.lines.push(`const ${this.lang.valueType(e.dt)} ${name} = ${s};`);
    this.names.set(e.key, name);
    return name;
  }
}

/** The statements that compute a kernel's stored values (the printer's pending lines), then the stores. */
export function printStores(stores: readonly Store[], p: ExprPrinter, lang: Lang): string[] {
  const stmts = stores.map((st) => `b${st.buf}[${p.print(st.off)}] = ${lang.toStorage(p.print(st.value), st.dt)};`);
  return [...p.lines.splice(0), ...stmts];
}
