/** C++ renderer: one static function per distinct kernel body (OpenMP over the outer loops, `omp simd` on the
 * innermost), templates from kernels/cpu for GEMM, conv and attention with the fused epilogue as a static
 * function, and the entry points `kiln_run` (every kernel in order) and `kiln_kernel` (one kernel, for profiling).
 *
 * Kernels that differ only in where their buffers live share one function: buffers are renamed to their local
 * position and their arena offsets come from a table (`O`), so the 8 UNet passes of the Lightning branch or the
 * repeated blocks of a network compile once (tiny PuLID step: 8521 kernels, 666 functions). */
import { numel, type Shape } from '../ir/shape';
import type { DType } from '../ir/dtype';
import type { Expr, ExternKernel, Kernel, ReduceKernel, RowKernel, Store } from '../codegen/kir';
import { cOps, ExprPrinter, literal, printStores, type Lang } from './cstyle';
import { templateCall } from './templates-cpp';
import { buffersOf } from '../codegen/buffers';
import { localizeBuffers } from '../codegen/remap';
import { planRowCache, rowInvariant } from './row-cache';
import { children } from '../codegen/expr';

/** exp, sigmoid, tanh and erf through the vectorizable polynomials of kernels/cpu/mathfun.h (libm's are calls). */
const cppOps = {
  ...cOps,
  exp: ([a]: string[]) => `kiln_expf(${a})`,
  sigmoid: ([a]: string[]) => `kiln_sigmoidf(${a})`,
  tanh: ([a]: string[]) => `kiln_tanhf(${a})`,
  erf: ([a]: string[]) => `kiln_erff(${a})`,
  // x^2, x^3 (GELU's tanh form) as products: powf is a call in any loop; same values for -0, ±Inf, NaN.
  pow: ([a, b]: string[], dt: DType) => (b === literal(2, dt) ? `(${a} * ${a})` : b === literal(3, dt) ? `(${a} * ${a} * ${a})` : cOps.pow([a, b], dt)),
};

export const cppLang: Lang = {
  ops: cppOps,
  valueType: (dt) => (dt === 'f32' || dt === 'f16' || dt === 'bf16' ? 'float' : dt === 'bool' ? 'bool' : 'int64_t'),
  storageType: (dt) => (dt === 'f32' ? 'float' : dt === 'bool' ? 'uint8_t' : dt === 'i32' ? 'int32_t' : 'uint16_t'),
  literal,
  philox: (k, c, s) => `kiln_philox_uniform((uint32_t)(${k}), (uint32_t)(${c}), ${s}u)`,
  fromStorage: (v, dt) => (dt === 'bool' ? `(${v} != 0)` : dt === 'f16' ? `kiln_f16_to_f32(${v})` : dt === 'bf16' ? `kiln_bf16_to_f32(${v})` : v),
  toStorage: (v, dt) => (dt === 'bool' ? `(uint8_t)(${v})` : dt === 'f16' ? `kiln_f32_to_f16(${v})` : dt === 'bf16' ? `kiln_f32_to_bf16(${v})` : v),
  round: (v, dt) => (dt === 'f16' ? `kiln_f16_to_f32(kiln_f32_to_f16(${v}))` : `kiln_bf16_to_f32(kiln_f32_to_bf16(${v}))`),
};

export interface BufferInfo { readonly offset: number; readonly dtype: DType; readonly bytes: number }

const ind = (s: string[], n: number) => s.map((l) => '  '.repeat(n) + l);

/** Buffers a kernel touches, as pointer declarations (restrict unless two of them overlap, as in-place does).
 * `at` prints a buffer's offset (a literal, or its slot in the offset table). */
function pointers(bufs: readonly number[], info: ReadonlyMap<number, BufferInfo>, written: ReadonlySet<number>, at: (b: number) => string): string[] {
  const overlaps = (a: number, b: number) => {
    const x = info.get(a)!, y = info.get(b)!;
    return x.offset < y.offset + y.bytes && y.offset < x.offset + x.bytes;
  };
  return bufs.map((b) => {
    const i = info.get(b)!;
    const alias = bufs.some((o) => o !== b && overlaps(o, b));
    const t = cppLang.storageType(i.dtype);
    return `${written.has(b) ? '' : 'const '}${t}* ${alias ? '' : 'KILN_RESTRICT '}b${b} = kiln_at<${t}>(A, ${at(b)});`;
  });
}

/** Statements computing and writing the stores, in C++. */
export const storeLines = (stores: readonly Store[], p: ExprPrinter): string[] => printStores(stores, p, cppLang);

/** A loop nest over `shape`; `inner` is the pragma on the innermost loop, `outer` the one on the whole nest
 * (OpenMP collapse over all but the innermost loop, or over the only one). */
function loops(vars: readonly Expr[], shape: Shape, body: string[], inner: string | null, outer: string | null): string[] {
  // A dimension of extent 1 is no loop: its variable is 0 (bound only where the body still uses it).
  const named = shape.map((d, i) => ({ d, name: (vars[i] as { name: string }).name }));
  const dims = named.filter((x) => x.d !== 1);
  const unit = named.filter((x) => x.d === 1 && body.some((l) => new RegExp(`\\b${x.name}\\b`).test(l)));
  let out = [...unit.map((x) => `const int64_t ${x.name} = 0;`), ...body];
  if (dims.length === 0) return out;
  if (dims.length === 1 && inner && outer) {
    // One loop that both pragmas want (a coalesced pointwise nest, codegen/lower.ts): blocks of BLOCK elements
    // shared out by the parallel pragma, each block an `omp simd` loop. g++ 12 left the single loop of an AdamW
    // update with side outputs scalar under `parallel for` (with or without `simd`, whenever the `if` clause is
    // there): 220 µs for 73728 elements, 16 µs blocked (one thread; same result in a standalone file).
    const { d, name } = dims[0];
    out = [`for (int64_t ${name}_b = 0; ${name}_b < ${d}; ${name}_b += ${BLOCK}) {`,
      ...ind([`const int64_t ${name}_e = ${name}_b + ${BLOCK} < ${d} ? ${name}_b + ${BLOCK} : ${d};`, inner,
        `for (int64_t ${name} = ${name}_b; ${name} < ${name}_e; ++${name}) {`, ...ind(out, 1), '}'], 1), '}'];
    return [outer, ...out];
  }
  for (let i = dims.length - 1; i >= 0; i--) {
    const { d, name } = dims[i];
    out = [`for (int64_t ${name} = 0; ${name} < ${d}; ++${name}) {`, ...ind(out, 1), '}'];
    if (i === dims.length - 1 && inner) out = [inner, ...out];
  }
  if (outer) {
    const c = dims.length > 1 ? dims.length - 1 : 1;
    out = [`${outer}${c > 1 ? ` collapse(${c})` : ''}`, ...out];
  }
  return out;
}

/** Elements per block of a one-loop nest: 16 KiB of f32 per operand, whole AVX-512 vectors. */
const BLOCK = 4096;

/** Small loop nests run serially through the pragma's `if` clause rather than as plain loops, on purpose: g++ 12 at
 * -O3 with 512-bit vectors (-march=native on AVX-512 machines) miscompiles some plain nests with an inner
 * `omp simd reduction` — the sum of a [2, 8, 8] tensor over axis 0 into a transposed [8, 8] output came out as
 * zeros (test/backend/gcc-simd-nest.test.ts; -mprefer-vector-width=256 or no -fopenmp also avoid it), while the
 * same nest inside an OpenMP region is compiled correctly. Found by diffing the arena kernel by kernel. */
const parallelFor = (n: number): string => `#pragma omp parallel for schedule(static) if(kiln::par_elems(${n}))`;

/** Elements up to which a kernel stays on one thread: KILN_PAR_MIN_ELEMS of kernels/cpu/parallel.h (why: there), which
 * the pragmas ask at run time (kiln::par_elems); the renderer's own choice (parallelize a long reduction itself)
 * uses the same default (test/project checks the two agree). */
export const PAR_MIN_ELEMS = 131072;

function reduceBody(k: ReduceKernel): string[] {
  const p = new ExprPrinter(cppLang, (b) => `b${b}`);
  const v = p.print(k.value);
  const op = k.combine === 'add' ? '+' : 'kiln_max';
  const body = [...p.lines.splice(0), k.combine === 'add' ? `acc += ${v};` : `acc = kiln_maxf(acc, ${v});`];
  const init = k.combine === 'add' ? literal(0, k.accDtype) : literal(-Infinity, k.accDtype);
  // Few rows, long reductions: parallelize the reduction itself; otherwise the rows.
  const red = numel(k.outer) < 8 && numel(k.inner) > PAR_MIN_ELEMS;
  const innerLoops = red
    ? loops(k.innerVars, k.inner, body, null, `#pragma omp parallel for reduction(${op}:acc)`)
    : loops(k.innerVars, k.inner, body, `#pragma omp simd reduction(${op}:acc)`, null);
  const ep = new ExprPrinter(cppLang, (b) => `b${b}`, 'e');
  const row = [`${cppLang.valueType(k.accDtype)} acc = ${init};`, ...innerLoops, ...storeLines(k.stores, ep)];
  return loops(k.outerVars, k.outer, row, null, red ? null : parallelFor(numel(k.outer) * numel(k.inner)));
}

/** Partial accumulators of a row reduction: one per lane of LANES (4 zmm, 8 ymm), so the loop carries LANES / width
 * independent chains instead of one. A single vector accumulator makes a cheap reduction latency-bound: softmax's
 * max (kiln_maxf was a compare-and-select chain then, five vector operations now) took 300 ns per row of 1024 with one accumulator, 140 ns with these
 * lanes (AVX-512, L1-resident row). Sums add in another order (LANES partial sums, then those), as a vectorized
 * reduction already does with its vector width. */
const LANES = 64;

/** A reduction over the inner loops with LANES partial accumulators `name_l[u]`, folded into `name` after the
 * loops; null when the innermost loop is shorter than LANES (the plain `omp simd reduction` then). `lines`
 * compute the value `v`, `fold(a, x)` folds x into accumulator a. */
function laneLoops(vars: readonly Expr[], shape: Shape, lines: string[], v: string, fold: (a: string, x: string) => string, name: string, type: string, init: string, op: string,
  perBlock: (block: string) => string[] = () => []): string[] | null {
  const named = shape.map((d, i) => ({ d, name: (vars[i] as { name: string }).name })).filter((x) => x.d !== 1);
  if (named.length === 0 || named[named.length - 1].d < LANES) return null;
  const { d: n, name: iv } = named[named.length - 1];
  const used = (x: { name: string }) => lines.some((l) => new RegExp(`\\b${x.name}\\b`).test(l));
  const unit = shape.map((d, i) => ({ d, name: (vars[i] as { name: string }).name })).filter((x) => x.d === 1 && used(x));
  const full = n - (n % LANES), acc = `${name}_l`;
  let body = [
    `for (int64_t ${iv}_b = 0; ${iv}_b < ${full}; ${iv}_b += ${LANES}) {`,
    ...ind(perBlock(`${iv}_b`), 1),
    '  #pragma omp simd',
    `  for (int64_t u = 0; u < ${LANES}; ++u) {`,
    `    const int64_t ${iv} = ${iv}_b + u;`,
    ...ind([...lines, fold(`${acc}[u]`, v)], 2),
    '  }',
    '}',
  ];
  if (full < n)
    body.push('#pragma omp simd', `for (int64_t ${iv} = ${full}; ${iv} < ${n}; ++${iv}) {`, ...ind([...lines, fold(`${acc}[${iv} - ${full}]`, v)], 1), '}');
  for (let i = named.length - 2; i >= 0; i--) body = [`for (int64_t ${named[i].name} = 0; ${named[i].name} < ${named[i].d}; ++${named[i].name}) {`, ...ind(body, 1), '}'];
  return [
    `${type} ${acc}[${LANES}];`,
    '#pragma omp simd',
    `for (int64_t u = 0; u < ${LANES}; ++u) ${acc}[u] = ${init};`,
    ...unit.map((x) => `const int64_t ${x.name} = 0;`),
    ...body,
    `${type} ${name} = ${init};`,
    `#pragma omp simd reduction(${op}:${name})`,
    `for (int64_t u = 0; u < ${LANES}; ++u) ${fold(name, `${acc}[u]`)}`,
  ];
}

/** Bytes of row buffers a row kernel may keep on its thread's stack (compiler/render/row-cache.ts): 64 KiB, an
 * L2-resident row of 16384 floats; a longer row recomputes. */
const ROW_CACHE_BYTES = 65536;

function rowBody(k: RowKernel): string[] {
  const red = numel(k.outer) < 8 && numel(k.inner) > PAR_MIN_ELEMS;
  const cache = planRowCache(k, red ? 0 : ROW_CACHE_BYTES);
  // The flat position in the row of the inner loop variables (dims of extent 1 have no loop: their index is 0).
  let flat = '', stride = 1;
  k.inner.forEach((_d, i, sh) => {
    const j = sh.length - 1 - i, d = sh[j];
    if (d === 1) return;
    const v = (k.innerVars[j] as { name: string }).name;
    flat = flat ? `${v}${stride > 1 ? ` * ${stride}` : ''} + ${flat}` : `${v}${stride > 1 ? ` * ${stride}` : ''}`;
    stride *= d;
  });
  const at = (b: number) => `kiln_row${b}[${flat || '0'}]`;
  // Stage s: bind the cached values it reads and print the values that are the same along the row (a mean, an
  // rstd, the log of a sum) once, before the loop; returns those lines and, for in the loop, the writes of the
  // values it computes for later stages.
  const stage = (s: number, p: ExprPrinter, roots: readonly Expr[]) => {
    for (const b of cache.reads[s]) p.bind(cache.buffers[b].node, at(b));
    if (numel(k.inner) > 0) rowInvariant(roots, k).forEach((e) => p.print(e));
    const before = p.lines.splice(0);
    return { before, writes: () => cache.buffers.flatMap((b, i) => (b.writer === s ? [`${at(i)} = ${p.print(b.node)};`] : [])) };
  };
  const row: string[] = cache.buffers.map((b, i) => `alignas(64) ${cppLang.valueType(b.node.dt)} kiln_row${i}[${numel(k.inner)}];`);
  const prefetch = red ? () => [] : nextRowPrefetch(k);
  k.reductions.forEach((r, slot) => {
    const p = new ExprPrinter(cppLang, (b) => `b${b}`, `t${slot}_`);
    const { before, writes } = stage(slot, p, [r.value]);
    const v = p.print(r.value), name = slot ? `acc${slot}` : 'acc', op = r.combine === 'add' ? '+' : 'kiln_max';
    const fold = (a: string, x: string) => (r.combine === 'add' ? `${a} = ${a} + ${x};` : `${a} = kiln_maxf(${a}, ${x});`);
    const lines = [...p.lines.splice(0), ...writes()];
    const type = cppLang.valueType(r.dt), init = r.combine === 'add' ? literal(0, r.dt) : literal(-Infinity, r.dt);
    row.push(...before);
    const lanes = red ? null : laneLoops(k.innerVars, k.inner, lines, v, fold, name, type, init, op, slot === 1 ? prefetch : undefined);
    if (lanes) row.push(...lanes);
    else {
      const body = [...lines, r.combine === 'add' ? `${name} += ${v};` : `${name} = kiln_maxf(${name}, ${v});`];
      row.push(`${type} ${name} = ${init};`);
      row.push(...(red ? loops(k.innerVars, k.inner, body, null, `#pragma omp parallel for reduction(${op}:${name})`)
        : loops(k.innerVars, k.inner, body, `#pragma omp simd reduction(${op}:${name})`, null)));
    }
  });
  const ep = new ExprPrinter(cppLang, (b) => `b${b}`, 'e');
  row.push(...stage(k.reductions.length, ep, k.stores.map((st) => st.value)).before);
  const split = red ? null : splitInner(k, ep);
  if (split) row.push(...loops(split.vars, split.shape, [split.def, ...storeLines(k.stores, ep)], '#pragma omp simd', null));
  else row.push(...loops(k.innerVars, k.inner, storeLines(k.stores, ep), red ? null : '#pragma omp simd', red ? parallelFor(numel(k.inner)) : null));
  return loops(k.outerVars, k.outer, row, null, red ? null : parallelFor(numel(k.outer) * numel(k.inner)));
}

/** Prefetches of the next row's first-stage loads, for the second stage's blocks of LANES elements (one per 64-byte
 * line of a unit-stride f32 load: LANES / 16 per block), in rows of PREFETCH_ROW_BYTES: the first stage streams
 * its row from memory while the later ones run on the L1/L2-resident row, and a row of a page or more starts on a
 * new page, where the hardware prefetcher stops and must retrain, so each row's first stage began with its loads
 * missing. Same process, one thread, generated kernels with and without (load ~5): log-softmax [4096,1024]
 * 2.42 → 2.14 ms, softmax 2.41 → 2.05 ms. Shorter rows (LayerNorm [4096,320]: one stream the hardware follows) and
 * longer ones (GroupNorm's 160 KiB groups: the second stage re-reads from L2) were 2-3% slower with them, so they
 * get none. The next row is the last outer variable plus one (past the end after the last row: a prefetch never
 * faults); loads whose offset needs a temporary (a gather) are not prefetched. */
const PREFETCH_ROW_BYTES = [4096, ROW_CACHE_BYTES];

function nextRowPrefetch(k: RowKernel): (block: string) => string[] {
  const outer = k.outer.map((d, i) => ({ d, v: k.outerVars[i] })).filter((x) => x.d !== 1).pop();
  const inner = k.inner.map((d, i) => ({ d, v: k.innerVars[i] })).filter((x) => x.d !== 1).pop();
  const rowBytes = 4 * numel(k.inner);
  if (!outer || !inner || k.reductions.length < 2 || rowBytes < PREFETCH_ROW_BYTES[0] || rowBytes > PREFETCH_ROW_BYTES[1]) return () => [];
  const loads: (Expr & { k: 'load' })[] = [], seen = new Set<string>();
  const walk = (e: Expr) => {
    if (seen.has(e.key)) return;
    seen.add(e.key);
    if (e.k === 'load') loads.push(e);
    children(e).forEach(walk);
  };
  walk(k.reductions[0].value);
  const on = (outer.v as { name: string }).name;
  return (block) => loads.flatMap((l) => Array.from({ length: LANES / 16 }, (_x, q) => {
    const p = new ExprPrinter(cppLang, (b) => `b${b}`, 'pf');
    p.bind(outer.v, `(${on} + 1)`);
    p.bind(inner.v, `(${block} + ${q * 16})`);
    const off = p.print(l.off);
    return p.lines.length ? [] : [`__builtin_prefetch(&b${l.buf}[${off}]);`];
  }).flat());
}

/** The store loop of a row whose values read `r / c` or `r % c` of the innermost row variable r (GroupNorm's row
 * is a group's channels times H·W, flattened; gamma and beta are read at channel r / (H·W)): that loop is split
 * into r_q over n / c and r_w over c, with r / c printed as r_q and r % c as r_w, so the inner loop reads gamma
 * once (a broadcast) instead of a gather per vector. c is the largest such constant that divides n, at least 16
 * (a vector's worth); null when there is none. */
function splitInner(k: RowKernel, p: ExprPrinter): { vars: Expr[]; shape: number[]; def: string } | null {
  const dims = k.inner.map((d, i) => ({ d, v: k.innerVars[i] as Expr & { name: string } })).filter((x) => x.d !== 1);
  if (dims.length === 0) return null;
  const { d: n, v } = dims[dims.length - 1];
  const hits = new Map<number, Expr[]>(), seen = new Set<string>();
  const walk = (e: Expr) => {
    if (seen.has(e.key)) return;
    seen.add(e.key);
    if (e.k === 'alu' && (e.op === 'idiv' || e.op === 'mod') && e.args[0].key === v.key && e.args[1].k === 'const') {
      const c = e.args[1].v;
      if (c >= 16 && c < n && n % c === 0) hits.set(c, [...(hits.get(c) ?? []), e]);
    }
    children(e).forEach(walk);
  };
  k.stores.forEach((st) => { walk(st.value); walk(st.off); });
  if (hits.size === 0) return null;
  const c = Math.max(...hits.keys());
  for (const e of hits.get(c)!) p.bind(e, `${v.name}_${e.k === 'alu' && e.op === 'idiv' ? 'q' : 'w'}`);
  const at = k.inner.length - 1 - [...k.inner].reverse().findIndex((d) => d !== 1);
  // Trailing dims of extent 1 stay (loops() binds their variables to 0 where used).
  const vars = [...k.innerVars.slice(0, at), { name: `${v.name}_q` }, { name: `${v.name}_w` }, ...k.innerVars.slice(at + 1)] as Expr[];
  const shape = [...k.inner.slice(0, at), n / c, c, ...k.inner.slice(at + 1)];
  return { vars, shape, def: `const int64_t ${v.name} = ${v.name}_q * ${c} + ${v.name}_w; (void)${v.name};` };
}

/** One kernel as a static function `name(uint8_t* A, const int64_t* O)`; `at` prints a buffer's arena offset. */
function renderKernelCpp(k: Kernel, info: ReadonlyMap<number, BufferInfo>, at: (b: number) => string): string {
  const { reads, writes } = buffersOf(k);
  const decl = pointers([...new Set([...reads, ...writes])], info, new Set(writes), at);
  let body: string[];
  let helpers: string[] = [];
  switch (k.kind) {
    case 'pointwise': {
      const p = new ExprPrinter(cppLang, (b) => `b${b}`);
      body = loops(k.vars, k.shape, storeLines(k.stores, p), '#pragma omp simd', parallelFor(numel(k.shape)));
      break;
    }
    case 'reduce': body = reduceBody(k); break;
    case 'row': body = rowBody(k); break;
    case 'extern': { const t = templateCall(k as ExternKernel, decl); helpers = t.helpers; body = [...(t.helpers.length ? ['const kiln_frame fr = {A, O};'] : []), ...t.body]; break; }
    case 'commit': body = k.copies.map((c) => `std::memcpy(A + ${at(c.to)}, A + ${at(c.from)}, ${c.bytes});`); break;
  }
  return [`// ${k.kind}: ${k.ops.join(', ')}`, ...helpers, `KILN_NOINLINE static void ${k.name}(uint8_t* A, const int64_t* O) {`, ...ind([...decl, ...body], 1), '}'].join('\n');
}

/** The program's functions (one per distinct body) and, per kernel, the function and its offset table. */
function shareKernels(kernels: readonly Kernel[], info: ReadonlyMap<number, BufferInfo>): { defs: string[]; calls: { fn: string; slot: number }[]; table: number[] } {
  const fnOf = new Map<string, string>(), defs: string[] = [], table: number[] = [];
  const calls = kernels.map((k) => {
    const { kernel, bufs } = localizeBuffers(k, 'KILN_FN');
    const text = renderKernelCpp(kernel, new Map(bufs.map((b, i) => [i, info.get(b)!])), (i) => `O[${i}]`);
    const key = text.slice(text.indexOf('\n') + 1);  // not the comment: it lists the ops, not the code
    let fn = fnOf.get(key);
    if (!fn) {
      fn = k.name;
      fnOf.set(key, fn);
      defs.push(text.replaceAll('KILN_FN', fn) + '\n');
    }
    const slot = table.length;
    table.push(...bufs.map((b) => info.get(b)!.offset));
    return { fn, slot };
  });
  return { defs, calls, table };
}

export function renderProgramCpp(kernels: readonly Kernel[], info: ReadonlyMap<number, BufferInfo>): string {
  return renderProgramCppParts(kernels, info).source;
}

/** The program's source and how many distinct kernel functions it holds. */
export function renderProgramCppParts(kernels: readonly Kernel[], info: ReadonlyMap<number, BufferInfo>): { source: string; functions: number } {
  const { defs, calls, table } = shareKernels(kernels, info);
  const call = (i: number) => `${calls[i].fn}(A, kiln_offsets + ${calls[i].slot});`;
  const source = [
    '// Generated by Kiln. Do not edit.',
    ...['prelude.h', 'philox.h', 'half.h', 'mathfun.h', 'kiln_lib.h'].map((h) => `#include "${h}"`),
    '#include <vector>',
    '',
    `// ${kernels.length} kernels, ${defs.length} distinct functions.`,
    ...defs,
    '// Arena byte offsets of each kernel\'s buffers, in the order its function numbers them.',
    `static const int64_t kiln_offsets[${Math.max(1, table.length)}] = {`,
    ...Array.from({ length: Math.ceil(table.length / 16) }, (_, r) => `  ${table.slice(r * 16, r * 16 + 16).join(', ')},`),
    '};',
    '',
    'KILN_ENTRY int kiln_run(uint8_t* A, const int64_t* /*args*/) {',
    ...kernels.map((_k, i) => `  ${call(i)}`),
    '  return 0;',
    '}',
    '',
    'KILN_ENTRY int kiln_kernel(uint8_t* A, const int64_t* args) {',
    '  switch (args[0]) {',
    ...kernels.map((_k, i) => `    case ${i}: ${call(i)} return 0;`),
    '  }',
    '  return 1;',
    '}',
    '',
  ].join('\n');
  return { source, functions: defs.length };
}
