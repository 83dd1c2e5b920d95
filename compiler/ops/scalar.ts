/** What each scalar op of the kernel IR means, in float64: the one table that constant folding
 * (codegen/expr.ts) and the test interpreter read, and that the renderers' C expressions implement in f32.
 * IEEE semantics, as the float64 reference and PyTorch: max/min propagate NaN (Math.max/min, -0 < +0; the C
 * side is kiln_maxf/kiln_minf in both preludes), comparisons with NaN are false (ne is true), integer
 * division truncates toward zero. Booleans are 0/1. */
import type { ScalarOp } from './lowering';
import { erf, pow, sigmoid } from '../reference/math';
// Globals are bound once per module: every global lookup is slow inside jest's vm contexts.
const M = Math;

export const SCALAR_SEMANTICS: Readonly<Record<ScalarOp, (...a: number[]) => number>> = {
  add: (a, b) => a + b, sub: (a, b) => a - b, mul: (a, b) => a * b, div: (a, b) => a / b,
  idiv: (a, b) => M.trunc(a / b), mod: (a, b) => a % b, pow, max: M.max, min: M.min,
  lt: (a, b) => +(a < b), le: (a, b) => +(a <= b), eq: (a, b) => +(a === b), ne: (a, b) => +(a !== b),
  and: (a, b) => +(a && b), or: (a, b) => +(a || b), not: (a) => +!a,
  neg: (a) => -a, exp: M.exp, log: M.log, sqrt: M.sqrt, rsqrt: (a) => 1 / M.sqrt(a), recip: (a) => 1 / a,
  abs: M.abs, tanh: M.tanh, sigmoid, erf, sin: M.sin, cos: M.cos, floor: M.floor,
};

/** Ops whose result is bool (0/1) whatever their operands. */
export const BOOL_RESULT: ReadonlySet<ScalarOp> = new Set<ScalarOp>(['lt', 'le', 'eq', 'ne', 'and', 'or', 'not']);
