/** Calls into the precompiled CPU kernel library (kernels/cpu/kiln_lib.h): each template's arguments from the
 * operand views and attributes, and the fused epilogue as a static function over the template's output
 * indices (it finds the arena and its buffers' offsets through the `kiln_frame` the kernel passes along, so
 * nothing is global and programs are re-entrant). */
import { numel, stridesOf } from '../ir/shape';
import type { ExternKernel, StridedView } from '../codegen/kir';
import type { TemplateName } from '../ops/lowering';
import { ExprPrinter, literal } from './cstyle';
import { flatIndex } from '../codegen/expr';
import { cppLang, storeLines } from './cpp';

/** A converted operand (buf < 0) lives in the call's f32 copy `cv<i>`, else in its arena buffer. */
const ptr = (v: StridedView) => (v.buf < 0 ? `(cv${-v.buf - 1}.data() + ${v.offset})` : `(b${v.buf} + ${v.offset})`);
const contiguous = (v: StridedView) => v.strides.every((s, i) => s === stridesOf(v.shape)[i] || v.shape[i] === 1);

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

export interface TemplateCode { readonly helpers: string[]; readonly body: string[] }

interface Ctx {
  readonly k: ExternKernel;
  /** The template's output index variable names. */
  readonly v: readonly string[];
  readonly a: Record<string, never>;
  readonly epiName: string;
  /** The epilogue function: `params` are the template's callback indices, `bind` binds the output vars. */
  epilogue(params: string[], bind: string[]): string[];
  /** The same as a row epilogue (kiln_epi3r, kiln_epi4r): called with a run of `nn` accumulators `accs[t]` at last
   * index `params[last] + t` (strided: `+ t * step`, `step` a parameter before `nn`); `bind` sees the element's last
   * index as `${params[last]}t`. */
  epilogueRow(params: string[], bind: string[], strided?: boolean): string[];
}

const conv = ({ k, v, a, epiName, epilogueRow }: Ctx): TemplateCode => {
  requireContiguous(k);
  const [p, q] = k.operands;
  const xs = k.template === 'conv2d_bwd_data' ? k.outShape : p.shape;
  const ws = k.template === 'conv2d_bwd_weight' ? k.outShape : q.shape;
  const [N, C, H, W] = xs, [O, , KH, KW] = ws;
  const st = a.stride as number[], pd = a.padding as number[], dl = a.dilation as number[];
  const dims = [N, C, H, W, O, KH, KW, st[0], st[1], pd[0], pd[1], pd[2], pd[3], dl[0], dl[1], a.groups];
  const decl = `static const int64_t dims[16] = {${dims.join(', ')}};`;
  const out = plainStore(k);
  if (out !== null) return { helpers: [], body: [decl, `kiln_${k.template}_out_f32(dims, ${ptr(p)}, ${ptr(q)}, b${out});`] };
  return {
    helpers: epilogueRow(['q0', 'q1', 'q2', 'q3'], [`const int64_t ${v[0]} = q0, ${v[1]} = q1, ${v[2]} = q2, ${v[3]} = q3t;`], true),
    body: [decl, `kiln_${k.template}_f32(dims, ${ptr(p)}, ${ptr(q)}, ${epiName}, &fr);`],
  };
};

const attention = ({ k, v, a, epiName, epilogue }: Ctx): TemplateCode => {
  requireContiguous(k);
  const r = k.outShape.length;
  const [q, kk, vv] = k.operands;
  const batch = q.shape.slice(0, -2), [lq, d] = q.shape.slice(-2), [lk, dv] = vv.shape.slice(-2);
  const common = `${numel(batch)}, ${lq}, ${lk}, ${d}, ${dv}, ${ptr(q)}, ${ptr(kk)}, ${ptr(vv)}`;
  const tail = `${literal(a.scale, 'f32')}, ${a.causal ? 1 : 0}`;
  const out = k.template === 'sdpa' ? plainStore(k) : null;
  if (out !== null) return { helpers: [], body: [`kiln_sdpa_out_f32(${common}, ${tail}, b${out});`] };
  return {
    helpers: epilogue(['bb', 'ii', 'tt'], [...bindBatch(v.slice(0, -2), k.outShape.slice(0, -2), 'bb'), `const int64_t ${v[r - 2]} = ii, ${v[r - 1]} = tt;`]),
    body: [k.template === 'sdpa' ? `kiln_sdpa_f32(${common}, ${tail}, ${epiName}, &fr);` : `kiln_sdpa_grad_f32(${common}, ${ptr(k.operands[3])}, ${tail}, ${a.wrt}, ${epiName}, &fr);`],
  };
};

/** The buffer of a kernel whose epilogue only stores the f32 result, row-major in the output's own order (no fused
 * math, no cast, no layout change): the template can write it directly instead of calling the epilogue per
 * element. null otherwise. */
function plainStore(k: ExternKernel): number | null {
  if (k.stores.length !== 1) return null;
  const [st] = k.stores;
  return st.dt === 'f32' && st.value.k === 'acc' && st.off.key === flatIndex(k.outVars, k.outShape).key ? st.buf : null;
}

/** One entry per template (a missing one is a tsc error). */
const TEMPLATES: Record<TemplateName, (c: Ctx) => TemplateCode> = {
  matmul: ({ k, v, epiName, epilogueRow }) => {
    const r = k.outShape.length;
    const [A, B] = k.operands;
    const batch = k.outShape.slice(0, -2);
    const [M, N] = k.outShape.slice(-2), K = A.shape[A.shape.length - 1];
    const bstride = (x: StridedView) => batch.map((_d, i) => { const j = i - (batch.length - (x.shape.length - 2)); return j < 0 || x.shape[j] === 1 ? 0 : x.strides[j]; });
    const list = (xs: readonly number[]) => `{${xs.length ? xs.join(', ') : '0'}}`;
    const bt = `const kiln_batch bt = {${batch.length}, ${list(batch)}, ${list(bstride(A))}, ${list(bstride(B))}};`;
    const args = `${M}, ${N}, ${K}, ${ptr(A)}, ${A.strides[A.shape.length - 2]}, ${A.strides[A.shape.length - 1]}, ${ptr(B)}, ${B.strides[B.shape.length - 2]}, ${B.strides[B.shape.length - 1]}, &bt`;
    const out = plainStore(k);
    if (out !== null && A.dt === 'f32') return { helpers: [], body: [bt, `kiln_gemm_out_f32(${args}, b${out});`] };
    return {
      helpers: epilogueRow(['bb', 'ii', 'jj'], [...bindBatch(v.slice(0, -2), batch, 'bb'), `const int64_t ${v[r - 2]} = ii, ${v[r - 1]} = jjt;`]),
      body: [bt, `kiln_gemm_${A.dt}(${args}, ${epiName}, &fr);`],
    };
  },
  conv2d: conv,
  conv2d_bwd_data: conv,
  conv2d_bwd_weight: conv,
  sdpa: attention,
  sdpa_grad: attention,
  scatter_add: ({ k, v, a }) => {
    requireContiguous(k);
    const [upd, ix] = k.operands, ax = a.axis as number;
    const outer = numel(k.outShape.slice(0, ax)), inner = numel(k.outShape.slice(ax + 1)), nIdx = numel(ix.shape);
    const p = new ExprPrinter(cppLang, (b) => `b${b}`, 'e');
    const bind = k.outShape.map((_d, i) => `const int64_t ${v[i]} = (f / ${numel(k.outShape.slice(i + 1))}) % ${k.outShape[i]}; (void)${v[i]};`);
    return {
      helpers: [],
      body: [
        `std::vector<float> tmp(${numel(k.outShape)}, 0.0f);`,
        `kiln_scatter_add_f32(${outer}, ${nIdx}, ${inner}, ${a.size}, ${ptr(upd)}, ${ptr(ix)}, tmp.data());`,
        `#pragma omp parallel for if(kiln::par_elems(${numel(k.outShape)}))`,
        `for (int64_t f = 0; f < ${numel(k.outShape)}; ++f) {`,
        '  const float acc = tmp[f];',
        ...[...bind, ...storeLines(k.stores, p)].map((l) => `  ${l}`),
        '}',
      ],
    };
  },
};

/** `decls` are the kernel's buffer pointer declarations (the epilogue function needs them too). */
export function templateCall(kernel: ExternKernel, decls: readonly string[]): TemplateCode {
  // The CPU kernel library computes in f32: the GEMM converts bf16 / f16 operands while packing; for the other
  // templates a bf16 / f16 operand is widened (exactly) into an f32 copy of its view before the call. The
  // accumulation is f32 and the epilogue rounds to nearest even when it stores a bf16 / f16 output. The CUDA back
  // end reads bf16 / f16 directly (tensor cores).
  const widen = READS_HALF.has(kernel.template) && new Set(kernel.operands.map((o) => o.dt)).size === 1 ? { k: kernel, lines: [] } : widenOperands(kernel);
  const k = widen.k;
  const epiName = `${k.name}_epilogue`;
  const epilogue = (params: string[], bind: string[]) => {
    const p = new ExprPrinter(cppLang, (b) => `b${b}`, 'e');
    return [`static void ${epiName}(const kiln_frame* fr, ${params.map((x) => `int64_t ${x}`).join(', ')}, float acc) {`,
      '  uint8_t* A = fr->A;', '  const int64_t* O = fr->O;', ...decls.map((l) => `  ${l}`), ...[...bind, ...storeLines(k.stores, p)].map((l) => `  ${l}`), '}'];
  };
  // One call per run of an output row (the GEMM's tile rows, the conv's row segments): no indirect call per
  // element, and the store loop over the run can vectorize.
  const epilogueRow = (params: string[], bind: string[], strided = false) => {
    const p = new ExprPrinter(cppLang, (b) => `b${b}`, 'e');
    const last = params[params.length - 1];
    const args = [...params, ...(strided ? ['step'] : []), 'nn'].map((x) => `int64_t ${x}`).join(', ');
    return [`static void ${epiName}(const kiln_frame* fr, ${args}, const float* accs) {`,
      '  uint8_t* A = fr->A;', '  const int64_t* O = fr->O;', ...decls.map((l) => `  ${l}`),
      '  for (int64_t t = 0; t < nn; ++t) {', `    const int64_t ${last}t = ${last} + t${strided ? ' * step' : ''};`, '    const float acc = accs[t];',
      ...[...bind, ...storeLines(k.stores, p)].map((l) => `    ${l}`), '  }', '}'];
  };
  const build = TEMPLATES[k.template];
  if (!build) throw new Error(`C++ back end: no template for ${k.template}`);
  const code = build({ k, v: k.outVars.map((x) => (x as { name: string }).name), a: k.attrs as Record<string, never>, epiName, epilogue, epilogueRow });
  return { helpers: code.helpers, body: [...widen.lines, ...code.body] };
}

/** Templates whose library entry reads bf16 / f16 operands itself (kiln_gemm_bf16 / _f16 convert while packing). */
const READS_HALF: ReadonlySet<TemplateName> = new Set(['matmul']);

/** Each bf16 / f16 operand copied to a contiguous f32 array `cv<i>` (its view's elements in row-major order; the
 * conversion is exact), and the kernel with that operand replaced by the copy's view. */
function widenOperands(k: ExternKernel): { k: ExternKernel; lines: string[] } {
  const lines: string[] = [];
  const operands = k.operands.map((o, i) => {
    if (o.dt !== 'bf16' && o.dt !== 'f16') return o;
    const n = numel(o.shape), st = stridesOf(o.shape);
    const at = o.shape.map((d, j) => (d === 1 || o.strides[j] === 0 ? '' : ` + ((f / ${st[j]}) % ${d}) * ${o.strides[j]}`)).join('');
    lines.push(`std::vector<float> cv${i}(${n});`, `#pragma omp parallel for if(kiln::par_elems(${n}))`,
      `for (int64_t f = 0; f < ${n}; ++f) cv${i}[f] = ${cppLang.fromStorage(`b${o.buf}[${o.offset}${at}]`, o.dt)};`);
    return { ...o, buf: -(i + 1), offset: 0, strides: st, dt: 'f32' as const };
  });
  return { k: { ...k, operands }, lines };
}
