/** Calls into the CUDA templates (kernels/cuda): one `extern "C" __global__` kernel per template launch, the
 * fused epilogue as a device lambda, and grid / block / shared memory from the templates' launch contracts
 * (kernels/README.md). The shared-memory sizes the host launches with are checked against the templates'
 * constants by static_assert, so a template change cannot silently break a launch. */
import { numel, stridesOf } from '../ir/shape';
import type { ExternKernel, StridedView } from '../codegen/kir';
import { ExprPrinter, literal } from './cstyle';
import { bindVars, cudaLang, storeLinesCuda, type CudaLaunch } from './cuda';

const ptr = (v: StridedView) => `(b${v.buf} + ${v.offset})`;
const contiguous = (v: StridedView) => v.strides.every((s, i) => s === stridesOf(v.shape)[i] || v.shape[i] === 1);
const cdiv = (a: number, b: number) => Math.ceil(a / b);
const ind = (s: string[], n = 1) => s.map((l) => '  '.repeat(n) + l);

/** Shared-memory sizes, mirrored from the templates (checked by static_assert in the generated code). */
const GEMM_F32_SMEM = 8 * (128 + 128 + 8) * 4;
const GEMM_MMA_SMEM = (128 + 128) * (32 + 8) * 2;
const GEMM_PIPE_SMEM = 3 * 2 * 128 * (32 + 8) * 2;
/** The pipelined tensor-core tile (kernels/cuda/gemm.cuh GemmTilePipe: cp.async ring, ldmatrix) takes 16-bit operands
 * each stored with a unit stride along k or along m / n, whose other stride, contiguous extent and offsets are
 * multiples of 8 elements (16 bytes; buffers are 64-byte aligned). Returns its layout flags, or undefined for the
 * general tile. */
function pipeLayout(A: StridedView, B: StridedView, M: number, N: number, K: number, dt: string): { AK: boolean; BN: boolean } | undefined {
  if (dt !== 'bf16' && dt !== 'f16') return undefined;
  const st = (v: StridedView) => [v.strides[v.shape.length - 2], v.strides[v.shape.length - 1]];
  const [rsA, csA] = st(A), [rsB, csB] = st(B);
  const AK = csA === 1, BN = csB === 1;
  if (!AK && rsA !== 1) return undefined;
  if (!BN && rsB !== 1) return undefined;
  const eight = (x: number) => x % 8 === 0;
  const batchOk = (v: StridedView) => v.strides.slice(0, -2).every((x, i) => v.shape[i] === 1 || eight(x));
  if (!eight(AK ? rsA : csA) || !eight(BN ? rsB : csB) || !eight(AK ? K : M) || !eight(BN ? N : K)) return undefined;
  if (!eight(A.offset) || !eight(B.offset) || !batchOk(A) || !batchOk(B)) return undefined;
  return { AK, BN };
}
/** The element type and GEMM tile config for a template's floating operands: f32 runs the SIMT tile, bf16 / f16
 * the tensor-core (mma.sync) tile; all floating operands must share one dtype. */
function elemOf(k: ExternKernel): { T: string; cfg: string; smem: number } {
  const dts = [...new Set(k.operands.filter((o) => o.dt !== 'i32').map((o) => o.dt))];
  if (dts.length > 1) throw new Error(`CUDA back end: ${k.template} on mixed operand dtypes (${dts.join(', ')}): cast them to one`);
  const dt = dts[0] ?? 'f32';
  if (dt === 'f32') return { T: 'float', cfg: 'kiln::GemmTileF32', smem: GEMM_F32_SMEM };
  if (dt === 'bf16') return { T: '__nv_bfloat16', cfg: 'kiln::GemmTileMma', smem: GEMM_MMA_SMEM };
  if (dt === 'f16') return { T: '__half', cfg: 'kiln::GemmTileMma', smem: GEMM_MMA_SMEM };
  throw new Error(`CUDA back end: ${k.template} on ${dt} operands`);
}
function attnSmem(d: number, dv: number) {
  const BQ = 64, BKV = 64, LD = d + 4, LDV = dv + 4, LP = BKV + 4, LPQ = BQ + 4;
  return {
    fwd: (BQ * LD + BKV * LD + BKV * LDV + BQ * LP) * 4,
    dq: (BQ * LD + BQ * LDV + BKV * LD + BKV * LDV + BQ * LP + 2 * BQ) * 4,
    dkdv: (BKV * LD + BKV * LDV + BQ * LD + BQ * LDV + 2 * BKV * LPQ + 2 * BQ) * 4,
  };
}

export interface CudaTemplateCode { readonly code: string[]; readonly launches: CudaLaunch[]; readonly scratch: number }

export function templateCallCuda(k: ExternKernel, decl: readonly string[]): CudaTemplateCode {
  const v = k.outVars.map((x) => (x as { name: string }).name), r = k.outShape.length, a = k.attrs as Record<string, never>;
  const el = elemOf(k);
  const epi = (params: string, bind: string[]) => {
    const p = new ExprPrinter(cudaLang, (b) => `b${b}`, 'e');
    return [`[=](${params}, float acc) {`, ...ind([...bind, ...storeLinesCuda(k.stores, p)]), '}'];
  };
  const kernel = (name: string, body: string[]) => [`KILN_KERNEL void __launch_bounds__(256) ${name}(uint8_t* __restrict__ A KILN_OFFSETS) {`, ...ind([...decl, ...body]), '}'];
  const bindBatch = (b: string) => bindVars(k.outVars.slice(0, -2), k.outShape.slice(0, -2), b);
  switch (k.template) {
    case 'matmul': {
      const [A, B] = k.operands;
      const batch = k.outShape.slice(0, -2);
      const [M, N] = k.outShape.slice(-2), K = A.shape[A.shape.length - 1];
      const off = (x: StridedView) => {
        const lead = batch.length - (x.shape.length - 2);
        let st = 1;
        const terms: string[] = [];
        for (let i = batch.length - 1; i >= 0; i--) {
          const j = i - lead;
          if (j >= 0 && x.shape[j] !== 1 && x.strides[j] !== 0) terms.push(`((int64_t)(b / ${st}) % ${batch[i]}) * ${x.strides[j]}`);
          st *= batch[i];
        }
        return `[=](int b) -> int64_t { return ${terms.join(' + ') || '0'}; }`;
      };
      const pipe = pipeLayout(A, B, M, N, K, A.dt);
      const [cfg, smem, call] = pipe
        ? ['kiln::GemmTilePipe', GEMM_PIPE_SMEM, `kiln::gemm_tile_pipelined<kiln::GemmTilePipe, ${el.T}, ${pipe.AK}, ${pipe.BN}>`]
        : [el.cfg, el.smem, `kiln::gemm_tile<${el.cfg}, ${el.T}>`];
      const body = [
        `static_assert(${cfg}::smem_bytes == ${smem}, "launch smem differs from the template");`,
        `${call}(blockIdx.x, blockIdx.y, blockIdx.z, ${M}, ${N}, ${K}, ${ptr(A)}, ${A.strides[A.shape.length - 2]}, ${A.strides[A.shape.length - 1]}, ${off(A)},`,
        `  ${ptr(B)}, ${B.strides[B.shape.length - 2]}, ${B.strides[B.shape.length - 1]}, ${off(B)},`,
        ...ind(epi('int bb, int ii, int jj', [...bindBatch('bb'), `const int64_t ${v[r - 2]} = ii, ${v[r - 1]} = jj;`])), ');'];
      return { code: kernel(k.name, body), launches: [{ kernel: k.name, grid: [cdiv(N, 128), cdiv(M, 128), Math.max(numel(batch), 1)], block: [256, 1, 1], smem }], scratch: 0 };
    }
    case 'conv2d': case 'conv2d_bwd_data': case 'conv2d_bwd_weight': {
      k.operands.forEach((o) => { if (!contiguous(o)) throw new Error(`CUDA back end: ${k.template} operands must be contiguous`); });
      const [p, q] = k.operands;
      const xs = k.template === 'conv2d_bwd_data' ? k.outShape : p.shape, ws = k.template === 'conv2d_bwd_weight' ? k.outShape : q.shape;
      const [N, C, H, W] = xs, [O, , KH, KW] = ws;
      const st = a.stride as number[], pd = a.padding as number[], dl = a.dilation as number[], G = a.groups as number;
      const Ho = Math.floor((H + pd[0] + pd[1] - dl[0] * (KH - 1) - 1) / st[0]) + 1, Wo = Math.floor((W + pd[2] + pd[3] - dl[1] * (KW - 1) - 1) / st[1]) + 1;
      const mode = k.template === 'conv2d' ? 0 : k.template === 'conv2d_bwd_data' ? 1 : 2;
      const Cg = C / G, Og = O / G;
      const [batch, M, Nn] = mode === 0 ? [N * G, Og, Ho * Wo] : mode === 1 ? [N * G, Cg, H * W] : [G, Og, Cg * KH * KW];
      const fn = ['conv2d_fwd_tile', 'conv2d_bwd_data_tile', 'conv2d_bwd_weight_tile'][mode];
      const body = [
        `const kiln::Conv2dParams p{${[N, C, H, W, O, KH, KW, st[0], st[1], pd[0], pd[1], pd[2], pd[3], dl[0], dl[1], G].join(', ')}};`,
        `static_assert(${el.cfg}::smem_bytes == ${el.smem}, "launch smem differs from the template");`,
        `kiln::${fn}<${el.cfg}, ${el.T}>(blockIdx.x, blockIdx.y, blockIdx.z, p, ${ptr(p)}, ${ptr(q)},`,
        ...ind(epi('int q0, int q1, int q2, int q3', [`const int64_t ${v[0]} = q0, ${v[1]} = q1, ${v[2]} = q2, ${v[3]} = q3;`])), ');'];
      return { code: kernel(k.name, body), launches: [{ kernel: k.name, grid: [cdiv(Nn, 128), cdiv(M, 128), batch], block: [256, 1, 1], smem: el.smem }], scratch: 0 };
    }
    case 'sdpa': case 'sdpa_grad': {
      k.operands.forEach((o) => { if (!contiguous(o)) throw new Error(`CUDA back end: ${k.template} operands must be contiguous`); });
      const [q, kk, vv] = k.operands;
      const nb = numel(q.shape.slice(0, -2)), [lq, d] = q.shape.slice(-2), [lk, dv] = vv.shape.slice(-2);
      const sm = attnSmem(d, dv), T = `${d}, ${dv}, ${el.T}`;
      if (d % 4 || dv % 4) {
        // Head dims the tiled kernels do not take: one thread per output row (kernels/cuda/attention_small.cuh), any
        // operand type (loaded into f32).
        const rows = k.template === 'sdpa' || a.wrt === 0 ? nb * lq : nb * lk;
        const loop = `for (int64_t row = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; row < ${rows}; row += (int64_t)gridDim.x * blockDim.x)`;
        const bindS = [...bindBatch('bb'), `const int64_t ${v[r - 2]} = ii, ${v[r - 1]} = tt;`];
        const call = k.template === 'sdpa'
          ? `kiln::small_attn::fwd_row(row, ${lq}, ${lk}, ${d}, ${dv}, ${ptr(q)}, ${ptr(kk)}, ${ptr(vv)}, ${literal(a.scale, 'f32')}, ${a.causal ? 'true' : 'false'},`
          : `kiln::small_attn::grad_row(row, ${a.wrt}, ${lq}, ${lk}, ${d}, ${dv}, ${ptr(q)}, ${ptr(kk)}, ${ptr(vv)}, ${ptr(k.operands[3])}, ${literal(a.scale, 'f32')}, ${a.causal ? 'true' : 'false'},`;
        return { code: kernel(k.name, [loop + ' {', ...ind([call, ...ind(epi('int bb, int ii, int tt', bindS)), ');']), '}']), launches: [{ kernel: k.name, grid: [Math.max(1, cdiv(rows, 256)), 1, 1], block: [256, 1, 1], smem: 0 }], scratch: 0 };
      }
      const args = `${lq}, ${lk}, ${ptr(q)}, ${ptr(kk)}, ${ptr(vv)}`, tail = `${literal(a.scale, 'f32')}, ${a.causal ? 'true' : 'false'}`;
      const bind = [...bindBatch('bb'), `const int64_t ${v[r - 2]} = ii, ${v[r - 1]} = tt;`];
      const check = `static_assert(kiln::AttnTile<${d}, ${dv}>::smem_fwd == ${sm.fwd} && kiln::AttnTile<${d}, ${dv}>::smem_dq == ${sm.dq} && kiln::AttnTile<${d}, ${dv}>::smem_dkdv == ${sm.dkdv}, "launch smem differs from the template");`;
      if (k.template === 'sdpa') {
        const body = [check, `kiln::attn_fwd_tile<${T}>(blockIdx.x, blockIdx.y, ${args}, ${tail},`, ...ind(epi('int bb, int ii, int tt', bind)), ');'];
        return { code: kernel(k.name, body), launches: [{ kernel: k.name, grid: [cdiv(lq, 64), nb, 1], block: [256, 1, 1], smem: sm.fwd }], scratch: 0 };
      }
      // Backward: a statistics pass (lse, delta) into the scratch workspace, then dQ or dK/dV.
      const dout = ptr(k.operands[3]);
      const ws = ['float* lse = reinterpret_cast<float*>(KILN_SCRATCH);', `float* delta = lse + ${nb * lq};`];
      const stats = kernel(`${k.name}_stats`, [check, ...ws, `kiln::attn_bwd_stats_tile<${T}>(blockIdx.x, blockIdx.y, ${args}, ${dout}, ${tail}, lse, delta);`]);
      const wrt = a.wrt as number;
      const main = wrt === 0
        ? kernel(k.name, [...ws, `kiln::attn_bwd_dq_tile<${T}>(blockIdx.x, blockIdx.y, ${args}, ${dout}, ${tail}, lse, delta,`, ...ind(epi('int bb, int ii, int tt', bind)), ');'])
        : kernel(k.name, [...ws, `auto none = [](int, int, int, float) {};`, `kiln::attn_bwd_dkdv_tile<${T}>(blockIdx.x, blockIdx.y, ${args}, ${dout}, ${tail}, lse, delta,`,
          ...ind(wrt === 1 ? [...epi('int bb, int ii, int tt', bind), ', none'] : ['none,', ...epi('int bb, int ii, int tt', bind)]), ');']);
      return {
        code: [...stats, '', ...main],
        launches: [
          { kernel: `${k.name}_stats`, grid: [cdiv(lq, 64), nb, 1], block: [256, 1, 1], smem: sm.fwd },
          { kernel: k.name, grid: wrt === 0 ? [cdiv(lq, 64), nb, 1] : [cdiv(lk, 64), nb, 1], block: [256, 1, 1], smem: wrt === 0 ? sm.dq : sm.dkdv },
        ],
        scratch: 2 * nb * lq * 4,
      };
    }
    case 'scatter_add': {
      const [upd, ix] = k.operands, ax = a.axis as number;
      const outer = numel(k.outShape.slice(0, ax)), inner = numel(k.outShape.slice(ax + 1)), nIdx = numel(ix.shape), n = numel(k.outShape), nu = numel(upd.shape);
      const p = new ExprPrinter(cudaLang, (b) => `b${b}`, 'e');
      const tmp = 'float* tmp = reinterpret_cast<float*>(KILN_SCRATCH);';
      const grid = (m: number) => [Math.max(1, Math.min(cdiv(m, 256), 65535 * 8)), 1, 1] as const;
      return {
        code: [
          ...kernel(`${k.name}_zero`, [tmp, `for (int64_t g = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; g < ${n}; g += (int64_t)gridDim.x * blockDim.x) kiln::scatter_zero(g, ${n}, tmp);`]), '',
          ...kernel(`${k.name}_add`, [tmp, `for (int64_t g = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; g < ${nu}; g += (int64_t)gridDim.x * blockDim.x) kiln::scatter_add_elem<${el.T}>(g, ${outer}, ${nIdx}, ${inner}, ${a.size}, ${ptr(upd)}, ${ptr(ix)}, tmp);`]), '',
          ...kernel(k.name, [tmp, `for (int64_t f = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; f < ${n}; f += (int64_t)gridDim.x * blockDim.x) {`,
            '  const float acc = tmp[f];', ...ind(bindVars(k.outVars, k.outShape, 'f')), ...ind(storeLinesCuda(k.stores, p)), '}']),
        ],
        launches: [{ kernel: `${k.name}_zero`, grid: grid(n), block: [256, 1, 1], smem: 0 }, { kernel: `${k.name}_add`, grid: grid(nu), block: [256, 1, 1], smem: 0 }, { kernel: k.name, grid: grid(n), block: [256, 1, 1], smem: 0 }],
        scratch: n * 4,
      };
    }
  }
  const missing: never = k.template;  // every TemplateName has a case above (tsc checks)
  throw new Error(`CUDA back end: no template for ${missing as string}`);
}
