/** Leaves and generators: inputs, parameters, constants, iota and the Philox uniform generator. */
import { castValue } from '../ir/dtype';
import { isValidShape, numel } from '../ir/shape';
import { uniformFill } from '../ir/philox';
import { fail, type OpDef } from './entry';
// Globals are bound once per module: every global lookup is slow inside jest's vm contexts.
const M = Math;

const leaf = { none: 'a leaf: gradients stop here and are read off by autodiff' } as const;
const generator = { none: 'a generator with no differentiable input' } as const;
const declared = (a: { shape: readonly number[]; dtype: import('../ir/dtype').DType }) => {
  if (!isValidShape(a.shape)) fail(`bad shape [${a.shape.join(',')}]`);
  return { shape: a.shape, dtype: a.dtype };
};
const fed = (what: string) => (): never => { throw new Error(`reference: ${what} values are supplied by the evaluator, not computed`); };

export const input: OpDef<'input'> = { arity: 0, infer: (_i, a) => declared(a), vjp: leaf, ref: fed('input'), lower: { kind: 'source', storage: 'input' } };
export const param: OpDef<'param'> = { arity: 0, infer: (_i, a) => declared(a), vjp: leaf, ref: fed('parameter'), lower: { kind: 'source', storage: 'param' } };

export const constant: OpDef<'const'> = {
  arity: 0,
  infer: (_i, a) => declared(a),
  vjp: generator,
  ref: (_i, a) => new Float64Array(numel(a.shape)).fill(castValue(a.value, a.dtype)),
  lower: { kind: 'pointwise', cost: 0, emit: (b, _o, c) => b.c(c.attrs.value, c.outDtype) },
};

export const tensor: OpDef<'tensor'> = {
  arity: 0,
  infer: (_i, a) => {
    if (a.data.length !== numel(a.shape)) fail(`${a.data.length} values for shape [${a.shape.join(',')}]`);
    return declared(a);
  },
  vjp: generator,
  ref: (_i, a) => a.data.map((v) => castValue(v, a.dtype)),
  lower: { kind: 'source', storage: 'const' },
};

export const iota: OpDef<'iota'> = {
  arity: 0,
  infer: (_i, a) => {
    if (!(a.axis >= 0 && a.axis < a.shape.length)) fail(`axis ${a.axis} out of range`);
    return declared(a);
  },
  vjp: generator,
  ref: (_i, a) => {
    const inner = numel(a.shape.slice(a.axis + 1)), d = a.shape[a.axis];
    return new Float64Array(numel(a.shape)).map((_v, k) => M.floor(k / inner) % d);
  },
  lower: { kind: 'pointwise', cost: 0, emit: (b, out, c) => b.cast(out[c.attrs.axis], c.outDtype) },
};

export const randUniform: OpDef<'rand_uniform'> = {
  arity: 1,
  infer: ([seed], a) => {
    if (seed.dtype !== 'i32' || seed.shape.length !== 0) fail('the seed must be an i32 scalar');
    if (!isValidShape(a.shape)) fail('bad shape');
    return { shape: a.shape, dtype: 'f32' };
  },
  vjp: generator,
  ref: ([seed], a) => uniformFill(numel(a.shape), seed.data[0], a.stream),
  lower: {
    kind: 'pointwise', cost: 10,
    emit: (b, out, c) => {
      let flat = b.c(0, 'i32');
      let st = 1;
      for (let i = out.length - 1; i >= 0; i--) { flat = b.alu('add', flat, b.alu('mul', out[i], b.c(st, 'i32'))); st *= c.outShape[i]; }
      return b.philox(b.load(0, []), flat, c.attrs.stream);
    },
  },
};

