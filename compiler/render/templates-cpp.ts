/** Calls into the hand-written CPU templates (kernels/cpu): each template's arguments from the operand views
 * and attributes, and the fused epilogue as a lambda over the template's output indices. */
import { numel, stridesOf } from '../ir/shape';
import type { ExternKernel, StridedView } from '../codegen/kir';
import { ExprPrinter, literal } from './cstyle';
import { cppLang, storeLines } from './cpp';

const ptr = (v: StridedView) => `(b${v.buf} + ${v.offset})`;
const contiguous = (v: StridedView) => v.strides.every((s, i) => s === stridesOf(v.shape)[i] || v.shape[i] === 1);

/** `[=](int64_t b){...}`: offset of batch element b (flattened over the output's batch dims) in a view whose
 * batch dims broadcast against them. */
function batchOffset(v: StridedView, outBatch: readonly number[]): string {
  const vb = v.shape.slice(0, -2), lead = outBatch.length - vb.length;
  const terms: string[] = [];
  let st = 1;
  for (let i = outBatch.length - 1; i >= 0; i--) {
    const j = i - lead;
    if (j >= 0 && vb[j] !== 1 && v.strides[j] !== 0) terms.push(`((b / ${st}) % ${outBatch[i]}) * ${v.strides[j]}`);
    st *= outBatch[i];
  }
  return `[=](int64_t b) -> int64_t { (void)b; return ${terms.length ? terms.join(' + ') : '0'}; }`;
}

/** The epilogue lambda: binds the kernel's output vars from the template's index arguments, then stores. */
function epilogue(k: ExternKernel, params: string[], bind: string[]): string[] {
  const p = new ExprPrinter(cppLang, (b) => `b${b}`, 'e');
  const body = [...bind, ...storeLines(k.stores, p)];
  return [`[=](${params.map((x) => `int64_t ${x}`).join(', ')}, float acc) {`, ...body.map((l) => `  ${l}`), '}'];
}

const names = (k: ExternKernel) => k.outVars.map((v) => (v as { name: string }).name);

/** Binds batch output vars from a flattened batch index `b`. */
function bindBatch(vs: readonly string[], shape: readonly number[], b: string): string[] {
  let st = 1;
  const out: string[] = [];
  for (let i = shape.length - 1; i >= 0; i--) { out.push(`const int64_t ${vs[i]} = (${b} / ${st}) % ${shape[i]}; (void)${vs[i]};`); st *= shape[i]; }
  return out;
}

function requireContiguous(k: ExternKernel): void {
  k.operands.forEach((o, i) => { if (!contiguous(o)) throw new Error(`render: operand ${i} of ${k.template} must be contiguous`); });
}

export function templateCall(k: ExternKernel): string[] {
  const v = names(k), r = k.outShape.length, a = k.attrs as Record<string, never>;
  const call = (head: string, ep: string[]) => [`${head}`, ...ep.map((l) => `  ${l}`), ');'];
  switch (k.template) {
    case 'matmul': {
      const [A, B] = k.operands;
      const batch = k.outShape.slice(0, -2);
      const [M, N] = k.outShape.slice(-2), K = A.shape[A.shape.length - 1];
      const ep = epilogue(k, ['bb', 'ii', 'jj'], [...bindBatch(v.slice(0, -2), batch, 'bb'), `const int64_t ${v[r - 2]} = ii, ${v[r - 1]} = jj;`]);
      return call(`kiln::gemm_f32(${numel(batch)}, ${M}, ${N}, ${K}, ${ptr(A)}, ${A.strides[A.shape.length - 2]}, ${A.strides[A.shape.length - 1]}, ${batchOffset(A, batch)}, ${ptr(B)}, ${B.strides[B.shape.length - 2]}, ${B.strides[B.shape.length - 1]}, ${batchOffset(B, batch)},`, ep);
    }
    case 'conv2d': case 'conv2d_bwd_data': case 'conv2d_bwd_weight': {
      requireContiguous(k);
      const [p, q] = k.operands;
      const xs = k.template === 'conv2d' ? p.shape : k.template === 'conv2d_bwd_data' ? k.outShape : p.shape;
      const ws = k.template === 'conv2d' ? q.shape : k.template === 'conv2d_bwd_data' ? q.shape : k.outShape;
      const [N, C, H, W] = xs, [O, , KH, KW] = ws;
      const st = a.stride as number[], pd = a.padding as number[], dl = a.dilation as number[];
      const fn = k.template === 'conv2d' ? 'conv2d_f32' : k.template === 'conv2d_bwd_data' ? 'conv2d_bwd_data_f32' : 'conv2d_bwd_weight_f32';
      const ep = epilogue(k, ['q0', 'q1', 'q2', 'q3'], [`const int64_t ${v[0]} = q0, ${v[1]} = q1, ${v[2]} = q2, ${v[3]} = q3;`]);
      return call(`kiln::${fn}(${N}, ${C}, ${H}, ${W}, ${O}, ${KH}, ${KW}, ${st[0]}, ${st[1]}, ${pd[0]}, ${pd[1]}, ${pd[2]}, ${pd[3]}, ${dl[0]}, ${dl[1]}, ${a.groups}, ${ptr(p)}, ${ptr(q)},`, ep);
    }
    case 'sdpa': case 'sdpa_grad': {
      requireContiguous(k);
      const [q, kk, vv] = k.operands;
      const batch = q.shape.slice(0, -2), [lq, d] = q.shape.slice(-2), [lk, dv] = vv.shape.slice(-2);
      const ep = epilogue(k, ['bb', 'ii', 'tt'], [...bindBatch(v.slice(0, -2), batch, 'bb'), `const int64_t ${v[r - 2]} = ii, ${v[r - 1]} = tt;`]);
      const common = `${numel(batch)}, ${lq}, ${lk}, ${d}, ${dv}, ${ptr(q)}, ${ptr(kk)}, ${ptr(vv)}`;
      const tail = `${literal(a.scale, 'f32')}, ${a.causal ? 'true' : 'false'}`;
      return k.template === 'sdpa'
        ? call(`kiln::sdpa_f32(${common}, ${tail},`, ep)
        : call(`kiln::sdpa_grad_f32(${common}, ${ptr(k.operands[3])}, ${tail}, ${a.wrt},`, ep);
    }
    case 'scatter_add': {
      requireContiguous(k);
      const [upd, ix] = k.operands, ax = a.axis as number;
      const outer = numel(k.outShape.slice(0, ax)), inner = numel(k.outShape.slice(ax + 1)), nIdx = numel(ix.shape);
      const p = new ExprPrinter(cppLang, (b) => `b${b}`, 'e');
      const bind = k.outShape.map((_d, i) => `const int64_t ${v[i]} = (f / ${numel(k.outShape.slice(i + 1))}) % ${k.outShape[i]}; (void)${v[i]};`);
      return [
        `std::vector<float> tmp(${numel(k.outShape)}, 0.0f);`,
        `kiln::scatter_add_f32(${outer}, ${nIdx}, ${inner}, ${a.size}, ${ptr(upd)}, ${ptr(ix)}, tmp.data());`,
        `#pragma omp parallel for if(${numel(k.outShape)} > 16384)`,
        `for (int64_t f = 0; f < ${numel(k.outShape)}; ++f) {`,
        '  const float acc = tmp[f];',
        ...[...bind, ...storeLines(k.stores, p)].map((l) => `  ${l}`),
        '}',
      ];
    }
  }
  throw new Error(`C++ back end: no template for ${k.template}`);
}
