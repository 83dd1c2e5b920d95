/** Elementwise primitives: unary, broadcasting binary, where, cast, stop_gradient. */
import { isFloat, type DType } from '../ir/dtype';
import { SCALAR_SEMANTICS } from './scalar';
import type { Tensor } from '../dsl/tensor';
import type { OpAttrs } from './attrs';
import type { ScalarOp } from './lowering';
import { fail, type NotDifferentiable, type OpDef, type TypeInfo, type Vjp } from './entry';
import { broadcastAll, identity, loadsBroadcast, refElementwise, requireSameDtype, sumTo } from './helpers';
// Globals are bound once per module: every global lookup is slow inside jest's vm contexts.
const M = Math;

type Unary = 'neg' | 'exp' | 'log' | 'sqrt' | 'rsqrt' | 'recip' | 'abs' | 'tanh' | 'sigmoid' | 'erf' | 'sin' | 'cos' | 'floor' | 'not';
type Binary = 'add' | 'sub' | 'mul' | 'div' | 'pow' | 'maximum' | 'minimum' | 'cmplt' | 'cmple' | 'cmpeq' | 'cmpne' | 'and' | 'or';

const nd = (why: string): NotDifferentiable => ({ none: why });
const piecewiseConstant = nd('piecewise constant: the derivative is zero almost everywhere');
const boolean = nd('boolean result');

/** Which dtypes an elementwise op accepts. */
const domain = {
  float: (d: DType) => isFloat(d) || fail(`needs a float dtype, got ${d}`),
  numeric: (d: DType) => d !== 'bool' || fail('needs a numeric dtype, got bool'),
  bool: (d: DType) => d === 'bool' || fail(`needs bool operands, got ${d}`),
  any: (_d: DType) => true,
};

/** The reference of an elementwise op is its scalar op's entry in SCALAR_SEMANTICS (ops/scalar.ts): one
 * definition that constant folding and the test interpreter read too. */
function unary<K extends Unary>(scalar: ScalarOp, dom: keyof typeof domain, vjp: Vjp<K> | NotDifferentiable, cost = 1): OpDef<K> {
  return {
    arity: 1,
    infer: ([x]) => (domain[dom](x.dtype), x),
    vjp,
    ref: ([x], _a, out) => refElementwise([x], out, SCALAR_SEMANTICS[scalar]),
    lower: { kind: 'pointwise', cost, elementwise: true, emit: (b, out) => b.alu(scalar, b.load(0, out)) },
  };
}

/** A unary VJP that reads the input (x) and/or the output (y). */
const dx = <K extends Op1>(saves: 'x' | 'y' | 'xy', f: (g: Tensor, x: Tensor, y: Tensor) => Tensor): Vjp<K> => ({
  saves: { inputs: saves === 'y' ? [] : [0], output: saves !== 'x' },
  grad: (g, { inputs: [x], out }) => [f(g, x, out)],
});
type Op1 = Unary | 'cast' | 'stop_gradient';

export const unaryOps: { [K in Unary]: OpDef<K> } = {
  neg: { ...unary('neg', 'numeric', { saves: { inputs: [], output: false }, grad: (g) => [g.neg()] }), simplify: (n) => (n.inputs[0].op === 'neg' ? n.inputs[0].inputs[0] : null) },
  exp: unary('exp', 'float', dx('y', (g, _x, y) => g.mul(y)), 4),
  log: unary('log', 'float', dx('x', (g, x) => g.div(x)), 4),
  sqrt: unary('sqrt', 'float', dx('y', (g, _x, y) => g.mul(0.5).div(y)), 2),
  rsqrt: unary('rsqrt', 'float', dx('y', (g, _x, y) => g.mul(y.mul(y).mul(y)).mul(-0.5)), 2),
  recip: unary('recip', 'float', dx('y', (g, _x, y) => g.mul(y).mul(y).neg()), 2),
  abs: unary('abs', 'numeric', dx('x', (g, x) => x.lt(0).select(g.neg(), g)), 1),
  tanh: unary('tanh', 'float', dx('y', (g, _x, y) => g.mul(y.mul(y).neg().add(1))), 6),
  sigmoid: unary('sigmoid', 'float', dx('y', (g, _x, y) => g.mul(y).mul(y.neg().add(1))), 5),
  erf: unary('erf', 'float', dx('x', (g, x) => g.mul(x.mul(x).neg().exp()).mul(2 / M.sqrt(M.PI))), 8),
  sin: unary('sin', 'float', dx('x', (g, x) => g.mul(x.cos())), 6),
  cos: unary('cos', 'float', dx('x', (g, x) => g.mul(x.sin()).neg()), 6),
  floor: unary('floor', 'float', piecewiseConstant),
  not: unary('not', 'bool', boolean),
};

export const cast: OpDef<'cast'> = {
  arity: 1,
  simplify: (n) => (n.inputs[0].dtype === n.dtype ? n.inputs[0] : null),
  infer: ([x], a) => ({ shape: x.shape, dtype: a.dtype }),
  vjp: {
    saves: { inputs: [], output: false },
    grad: (g, { inputs: [x] }) => [isFloat(x.dtype) && isFloat(g.dtype) ? g.cast(x.dtype) : null],
  },
  ref: ([x], _a, out) => refElementwise([x], out, (v) => v),
  lower: { kind: 'pointwise', cost: 1, elementwise: true, emit: (b, out, c) => b.cast(b.load(0, out), c.attrs.dtype) },
};

export const stopGradient: OpDef<'stop_gradient'> = {
  arity: 1,
  // Only autodiff reads it: after differentiation it is the identity.
  simplify: (n) => n.inputs[0],
  infer: ([x]) => x,
  vjp: { saves: { inputs: [], output: false }, grad: () => [null] },
  ref: ([x]) => x.data.slice(),
  lower: { kind: 'pointwise', cost: 0, elementwise: true, emit: (b, out) => b.load(0, out) },
};

function binary<K extends Binary>(scalar: ScalarOp, dom: keyof typeof domain, vjp: Vjp<K> | NotDifferentiable, outBool = false, cost = 1): OpDef<K> {
  return {
    arity: 2,
    infer: (ins: readonly TypeInfo[]) => {
      const shape = broadcastAll(ins);
      const d = requireSameDtype(ins);
      domain[dom](d);
      return { shape, dtype: outBool ? 'bool' : d };
    },
    vjp,
    ref: (ins, _a, out) => refElementwise(ins, out, SCALAR_SEMANTICS[scalar]),
    lower: { kind: 'pointwise', cost, elementwise: true, emit: (b, out, c) => b.alu(scalar, ...loadsBroadcast(b, out, c.inShapes)) },
  };
}

/** A binary VJP: per-input cotangents at the broadcast shape, summed back to each input's shape. */
const dab = <K extends Binary>(saves: readonly number[], output: boolean, f: (g: Tensor, a: Tensor, b: Tensor, y: Tensor) => [Tensor | null, Tensor | null]): Vjp<K> => ({
  saves: { inputs: saves, output },
  grad: (g, { inputs: [a, b], out }) => f(g, a, b, out).map((t, i) => (t ? sumTo(t, [a, b][i].shape) : null)),
});

/** Max/min send the cotangent to the winner; a tie splits it evenly (as JAX does). */
const pick = (g: Tensor, win: Tensor, tie: Tensor): Tensor => win.select(g, tie.select(g.mul(0.5), 0));

export const binaryOps: { [K in Binary]: OpDef<K> } = {
  add: { ...binary('add', 'numeric', dab([], false, (g) => [g, g])), simplify: identity('both', 0) },
  sub: { ...binary('sub', 'numeric', dab([], false, (g) => [g, g.neg()])), simplify: identity(1, 0) },
  mul: { ...binary('mul', 'numeric', dab([0, 1], false, (g, a, b) => [g.mul(b), g.mul(a)])), simplify: identity('both', 1) },
  div: { ...binary('div', 'numeric', dab([1], true, (g, _a, b, y) => [g.div(b), g.mul(y).div(b).neg()]), false, 2), simplify: identity(1, 1) },
  pow: binary('pow', 'float', dab([0, 1], true, (g, a, b, y) => [g.mul(b).mul(a.pow(b.sub(1))), g.mul(y).mul(a.log())]), false, 8),
  maximum: binary('max', 'numeric', dab([0, 1], false, (g, a, b) => [pick(g, a.gt(b), a.eq(b)), pick(g, b.gt(a), a.eq(b))])),
  minimum: binary('min', 'numeric', dab([0, 1], false, (g, a, b) => [pick(g, a.lt(b), a.eq(b)), pick(g, b.lt(a), a.eq(b))])),
  cmplt: binary('lt', 'any', boolean, true),
  cmple: binary('le', 'any', boolean, true),
  cmpeq: binary('eq', 'any', boolean, true),
  cmpne: binary('ne', 'any', boolean, true),
  and: binary('and', 'bool', boolean),
  or: binary('or', 'bool', boolean),
};

export const where: OpDef<'where'> = {
  arity: 3,
  infer: (ins) => {
    const shape = broadcastAll(ins);
    if (ins[0].dtype !== 'bool') fail(`condition must be bool, got ${ins[0].dtype}`);
    return { shape, dtype: requireSameDtype(ins.slice(1)) };
  },
  vjp: {
    saves: { inputs: [0], output: false },
    grad: (g, { inputs: [c, a, b] }) => [null, sumTo(c.select(g, 0), a.shape), sumTo(c.select(0, g), b.shape)],
  },
  ref: (ins, _a, out) => refElementwise(ins, out, (c, a, b) => (c ? a : b)),
  lower: { kind: 'pointwise', cost: 1, elementwise: true, emit: (b, out, c) => { const [p, x, y] = loadsBroadcast(b, out, c.inShapes); return b.where(p, x, y); } },
};

export type { OpAttrs };
