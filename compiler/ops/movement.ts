/** Movement primitives: reshape, permute, expand, slice, pad, concat, gather, scatter_add. All but scatter_add
 * lower to index arithmetic, so they fuse into their neighbours' kernels without copies. */
import { fmt, numel, sameShape, stridesOf, type Shape } from '../ir/shape';
import { intern, type Node } from '../ir/node';
import { forEachIndex } from '../reference/ndarray';
import type { Builder } from './lowering';
import { fail, type OpDef } from './entry';
import { sumTo } from './helpers';
// Globals are bound once per module: every global lookup is slow inside jest's vm contexts.
const M = Math;

const i32 = <V>(b: Builder<V>, n: number) => b.c(n, 'i32');

export const reshape: OpDef<'reshape'> = {
  arity: 1,
  simplify: (n) => {
    const [a] = n.inputs;
    if (sameShape(a.shape, n.shape)) return a;
    return a.op === 'reshape' ? intern('reshape', [a.inputs[0]], n.attrs, n.shape, n.dtype, n.src) : null;
  },
  infer: ([x], a) => {
    if (numel(a.shape) !== numel(x.shape)) fail(`cannot reshape ${numel(x.shape)} elements to ${fmt(a.shape)}`);
    return { shape: a.shape, dtype: x.dtype };
  },
  vjp: { saves: { inputs: [], output: false }, grad: (g, { inputs: [x] }) => [g.reshape(x.shape)] },
  ref: ([x]) => x.data.slice(),
  lower: {
    kind: 'pointwise', cost: 0,
    emit: (b, out, c) => {
      const so = stridesOf(c.outShape), si = stridesOf(c.inShapes[0]);
      let flat = i32(b, 0);
      out.forEach((o, i) => { flat = b.alu('add', flat, b.alu('mul', o, i32(b, so[i]))); });
      return b.load(0, c.inShapes[0].map((d, j) => b.alu('mod', b.alu('idiv', flat, i32(b, si[j])), i32(b, d))));
    },
    // Reshape keeps a strided layout when the source is contiguous (a view of a view may not be).
    view: (src, c) => (src.strides.every((s, i) => s === stridesOf(src.shape)[i] || src.shape[i] === 1) ? { shape: c.outShape, strides: stridesOf(c.outShape), offset: src.offset } : null),
    forward: (b, ix, c) => {
      const si = stridesOf(c.inShapes[0]), so = stridesOf(c.outShape);
      let flat = i32(b, 0);
      ix.forEach((v, j) => { flat = b.alu('add', flat, b.alu('mul', v, i32(b, si[j]))); });
      return c.outShape.map((d, i) => b.alu('mod', b.alu('idiv', flat, i32(b, so[i])), i32(b, d)));
    },
  },
};

export const permute: OpDef<'permute'> = {
  arity: 1,
  simplify: (n) => {
    const [a] = n.inputs, perm = n.attrs.perm;
    if (perm.every((p, i) => p === i)) return a;
    if (a.op !== 'permute') return null;
    const inner = (a as Node<'permute'>).attrs.perm;
    return intern('permute', [a.inputs[0]], { perm: perm.map((p) => inner[p]) }, n.shape, n.dtype, n.src);
  },
  infer: ([x], a) => {
    const r = x.shape.length;
    if (a.perm.length !== r || [...a.perm].sort((p, q) => p - q).some((p, i) => p !== i)) fail(`[${a.perm.join(',')}] is not a permutation of ${r} axes`);
    return { shape: a.perm.map((p) => x.shape[p]), dtype: x.dtype };
  },
  vjp: {
    saves: { inputs: [], output: false },
    grad: (g, { attrs }) => { const inv = new Array<number>(attrs.perm.length); attrs.perm.forEach((p, i) => { inv[p] = i; }); return [g.permute(inv)]; },
  },
  ref: ([x], a, out) => {
    const st = stridesOf(x.shape);
    const res = new Float64Array(x.data.length);
    forEachIndex(out.shape, (k, idx) => { let o = 0; for (let i = 0; i < idx.length; i++) o += idx[i] * st[a.perm[i]]; res[k] = x.data[o]; });
    return res;
  },
  lower: {
    kind: 'pointwise', cost: 0,
    emit: (b, out, c) => { const idx = new Array(out.length); c.attrs.perm.forEach((p, i) => { idx[p] = out[i]; }); return b.load(0, idx); },
    forward: (_b, ix, c) => c.attrs.perm.map((p) => ix[p]),
    view: (src, c) => ({ shape: c.outShape, strides: c.attrs.perm.map((p) => src.strides[p]), offset: src.offset }),
  },
};

export const expand: OpDef<'expand'> = {
  arity: 1,
  simplify: (n) => (sameShape(n.inputs[0].shape, n.shape) ? n.inputs[0] : null),
  infer: ([x], a) => {
    const lead = a.shape.length - x.shape.length;
    if (lead < 0 || x.shape.some((d, i) => d !== 1 && d !== a.shape[i + lead])) fail(`cannot expand ${fmt(x.shape)} to ${fmt(a.shape)}`);
    return { shape: a.shape, dtype: x.dtype };
  },
  vjp: { saves: { inputs: [], output: false }, grad: (g, { inputs: [x] }) => [sumTo(g, x.shape)] },
  ref: ([x], _a, out) => {
    const res = new Float64Array(numel(out.shape));
    const lead = out.shape.length - x.shape.length;
    const st = stridesOf(x.shape);
    forEachIndex(out.shape, (k, idx) => { let o = 0; for (let j = 0; j < x.shape.length; j++) if (x.shape[j] !== 1) o += idx[j + lead] * st[j]; res[k] = x.data[o]; });
    return res;
  },
  lower: {
    kind: 'pointwise', cost: 0,
    emit: (b, out, c) => { const s = c.inShapes[0], lead = out.length - s.length; return b.load(0, s.map((d, j) => (d === 1 ? i32(b, 0) : out[j + lead]))); },
    view: (src, c) => {
      const lead = c.outShape.length - src.shape.length;
      return { shape: c.outShape, strides: c.outShape.map((_d, i) => (i < lead || src.shape[i - lead] === 1 ? 0 : src.strides[i - lead])), offset: src.offset };
    },
  },
};

/** Elements a slice keeps along one dim. */
const sliceLen = (start: number, stop: number, step: number) => M.ceil((stop - start) / step);

export const slice: OpDef<'slice'> = {
  arity: 1,
  infer: ([x], a) => {
    const r = x.shape.length;
    if (a.starts.length !== r || a.stops.length !== r || a.steps.length !== r) fail(`slice needs ${r} starts, stops and steps`);
    const shape = x.shape.map((d, i) => {
      const [s, e, st] = [a.starts[i], a.stops[i], a.steps[i]];
      if (!(st >= 1 && s >= 0 && e <= d && s < e)) fail(`dim ${i}: [${s}:${e}:${st}] is empty or outside 0..${d}`);
      return sliceLen(s, e, st);
    });
    return { shape, dtype: x.dtype };
  },
  vjp: {
    saves: { inputs: [], output: false },
    grad: (g, { inputs: [x], attrs: a }) =>
      [g.pad(x.shape.map((d, i) => { const n = g.shape[i]; const last = a.starts[i] + (n - 1) * a.steps[i]; return [a.starts[i], d - last - 1, a.steps[i] - 1] as const; }))],
  },
  ref: ([x], a, out) => {
    const st = stridesOf(x.shape);
    const res = new Float64Array(numel(out.shape));
    forEachIndex(out.shape, (k, idx) => { let o = 0; for (let i = 0; i < idx.length; i++) o += (a.starts[i] + idx[i] * a.steps[i]) * st[i]; res[k] = x.data[o]; });
    return res;
  },
  lower: {
    kind: 'pointwise', cost: 0,
    emit: (b, out, c) => b.load(0, out.map((o, i) => b.alu('add', b.alu('mul', o, i32(b, c.attrs.steps[i])), i32(b, c.attrs.starts[i])))),
    view: (src, c) => ({ shape: c.outShape, strides: src.strides.map((s, i) => s * c.attrs.steps[i]), offset: src.offset + c.attrs.starts.reduce((o, s, i) => o + s * src.strides[i], 0) }),
  },
};

export const pad: OpDef<'pad'> = {
  arity: 1,
  infer: ([x], a) => {
    if (a.pads.length !== x.shape.length) fail(`pad needs ${x.shape.length} [low, high, interior] triples`);
    if (a.pads.some(([l, h, it]) => l < 0 || h < 0 || it < 0)) fail('pad amounts must be >= 0 (use slice to crop)');
    return { shape: x.shape.map((d, i) => { const [l, h, it] = a.pads[i]; return l + d + M.max(d - 1, 0) * it + h; }), dtype: x.dtype };
  },
  vjp: {
    saves: { inputs: [], output: false },
    grad: (g, { inputs: [x], attrs: a }) =>
      [g.slice(a.pads.map(([l]) => l), x.shape.map((d, i) => a.pads[i][0] + (d - 1) * (a.pads[i][2] + 1) + 1), a.pads.map(([, , it]) => it + 1))],
  },
  ref: ([x], a, out) => {
    const res = new Float64Array(numel(out.shape)).fill(a.value);
    const ost = stridesOf(out.shape);
    forEachIndex(x.shape, (k, idx) => { let o = 0; for (let i = 0; i < idx.length; i++) o += (a.pads[i][0] + idx[i] * (a.pads[i][2] + 1)) * ost[i]; res[o] = x.data[k]; });
    return res;
  },
  lower: {
    kind: 'pointwise', cost: 1,
    emit: (b, out, c) => {
      let valid: ReturnType<typeof b.c> | null = null;
      const idx = out.map((o, i) => {
        const [l, , it] = c.attrs.pads[i];
        const d = c.inShapes[0][i];
        if (l === 0 && it === 0 && c.outShape[i] === d) return o;
        const p = b.alu('sub', o, i32(b, l));
        let ok = b.alu('and', b.alu('le', i32(b, 0), p), b.alu('lt', p, i32(b, (d - 1) * (it + 1) + 1)));
        if (it > 0) ok = b.alu('and', ok, b.alu('eq', b.alu('mod', p, i32(b, it + 1)), i32(b, 0)));
        valid = valid === null ? ok : b.alu('and', valid, ok);
        return it > 0 ? b.alu('idiv', p, i32(b, it + 1)) : p;
      });
      return valid === null ? b.load(0, idx) : b.where(valid, b.load(0, idx, valid), b.c(c.attrs.value, c.outDtype));
    },
  },
};

export const concat: OpDef<'concat'> = {
  arity: -1,
  infer: (ins, a) => {
    if (ins.length < 1) fail('concat needs at least one input');
    const r = ins[0].shape.length, ax = a.axis;
    if (!(ax >= 0 && ax < r)) fail(`axis ${ax} out of range for rank ${r}`);
    for (const t of ins) {
      if (t.dtype !== ins[0].dtype) fail('dtypes differ');
      if (t.shape.length !== r || t.shape.some((d, i) => i !== ax && d !== ins[0].shape[i])) fail(`shapes differ outside axis ${ax}`);
    }
    return { shape: ins[0].shape.map((d, i) => (i === ax ? ins.reduce((s, t) => s + t.shape[ax], 0) : d)), dtype: ins[0].dtype };
  },
  vjp: {
    saves: { inputs: [], output: false },
    grad: (g, { inputs, attrs }) => {
      let off = 0;
      return inputs.map((x) => {
        const starts = g.shape.map((_d, i) => (i === attrs.axis ? off : 0));
        const stops = g.shape.map((d, i) => (i === attrs.axis ? off + x.shape[i] : d));
        off += x.shape[attrs.axis];
        return g.slice(starts, stops, starts.map(() => 1));
      });
    },
  },
  ref: (ins, a, out) => {
    const res = new Float64Array(numel(out.shape));
    const ost = stridesOf(out.shape);
    let off = 0;
    for (const x of ins) {
      forEachIndex(x.shape, (k, idx) => { let o = 0; for (let i = 0; i < idx.length; i++) o += (i === a.axis ? idx[i] + off : idx[i]) * ost[i]; res[o] = x.data[k]; });
      off += x.shape[a.axis];
    }
    return res;
  },
  lower: {
    kind: 'pointwise', cost: 0,
    emit: (b, out, c) => {
      const ax = c.attrs.axis;
      const ends: number[] = [];
      c.inShapes.reduce((s, sh) => { ends.push(s + sh[ax]); return s + sh[ax]; }, 0);
      const at = (k: number, mask?: ReturnType<typeof b.c>) =>
        b.load(k, out.map((o, i) => (i === ax && k > 0 ? b.alu('sub', o, i32(b, ends[k - 1])) : o)), mask);
      let v = at(c.inShapes.length - 1, c.inShapes.length > 1 ? b.alu('le', i32(b, ends[c.inShapes.length - 2]), out[ax]) : undefined);
      for (let k = c.inShapes.length - 2; k >= 0; k--) {
        const inside = b.alu('lt', out[ax], i32(b, ends[k]));
        v = b.where(inside, at(k, inside), v);
      }
      return v;
    },
  },
};

/** Output shape of gather (NumPy `take`): x.shape[:axis] + idx.shape + x.shape[axis+1:]. */
const gatherShape = (x: Shape, idx: Shape, axis: number) => [...x.slice(0, axis), ...idx, ...x.slice(axis + 1)];

export const gather: OpDef<'gather'> = {
  arity: 2,
  infer: ([x, idx], a) => {
    if (!(a.axis >= 0 && a.axis < x.shape.length)) fail(`axis ${a.axis} out of range`);
    if (idx.dtype !== 'i32') fail(`indices must be i32, got ${idx.dtype}`);
    return { shape: gatherShape(x.shape, idx.shape, a.axis), dtype: x.dtype };
  },
  vjp: {
    saves: { inputs: [1], output: false },
    grad: (g, { inputs: [x, idx], attrs }) => [g.scatterAdd(idx, attrs.axis, x.shape[attrs.axis]), null],
  },
  ref: ([x, idx], a, out) => {
    const st = stridesOf(x.shape), q = idx.shape.length, n = x.shape[a.axis];
    const ist = stridesOf(idx.shape);
    const res = new Float64Array(numel(out.shape));
    forEachIndex(out.shape, (k, o) => {
      let io = 0;
      for (let j = 0; j < q; j++) io += o[a.axis + j] * ist[j];
      const t = idx.data[io];
      if (!(t >= 0 && t < n)) throw new RangeError(`gather: index ${t} out of range 0..${n - 1}`);
      let off = t * st[a.axis];
      for (let i = 0; i < a.axis; i++) off += o[i] * st[i];
      for (let i = a.axis + 1; i < x.shape.length; i++) off += o[i + q - 1] * st[i];
      res[k] = x.data[off];
    });
    return res;
  },
  lower: {
    kind: 'pointwise', cost: 1,
    emit: (b, out, c) => {
      const ax = c.attrs.axis, q = c.inShapes[1].length, n = c.inShapes[0][ax];
      const t = b.load(1, out.slice(ax, ax + q));
      const safe = b.alu('max', b.alu('min', t, i32(b, n - 1)), i32(b, 0));
      return b.load(0, [...out.slice(0, ax), safe, ...out.slice(ax + q)]);
    },
  },
};

export const scatterAdd: OpDef<'scatter_add'> = {
  arity: 2,
  infer: ([g, idx], a) => {
    if (idx.dtype !== 'i32') fail(`indices must be i32, got ${idx.dtype}`);
    const q = idx.shape.length;
    if (idx.shape.some((d, j) => g.shape[a.axis + j] !== d)) fail(`updates ${fmt(g.shape)} do not carry indices ${fmt(idx.shape)} at axis ${a.axis}`);
    return { shape: [...g.shape.slice(0, a.axis), a.size, ...g.shape.slice(a.axis + q)], dtype: g.dtype };
  },
  vjp: { saves: { inputs: [1], output: false }, grad: (g, { inputs: [, idx], attrs }) => [g.gather(idx, attrs.axis), null] },
  ref: ([g, idx], a, out) => {
    const q = idx.shape.length, ost = stridesOf(out.shape), ist = stridesOf(idx.shape);
    const res = new Float64Array(numel(out.shape));
    forEachIndex(g.shape, (k, o) => {
      let io = 0;
      for (let j = 0; j < q; j++) io += o[a.axis + j] * ist[j];
      const t = idx.data[io];
      if (!(t >= 0 && t < a.size)) throw new RangeError(`scatter_add: index ${t} out of range 0..${a.size - 1}`);
      let off = t * ost[a.axis];
      for (let i = 0; i < a.axis; i++) off += o[i] * ost[i];
      for (let i = a.axis + 1; i < out.shape.length; i++) off += o[i + q - 1] * ost[i];
      res[off] += g.data[k];
    });
    return res;
  },
  lower: { kind: 'extern', template: 'scatter_add', flops: (c) => numel(c.inShapes[0]) },
};
