/** The kernel-IR verifier, run after lowering under KILN_VERIFY=1 (and always in the tests): every loop
 * variable an expression uses is bound by its kernel (same name, same extent), accumulators appear only where
 * a reduction or template provides them, and every unmasked load and every store is in bounds of its buffer by
 * range analysis (a masked load may point anywhere: it is never performed where the mask is false; a
 * data-dependent offset, as in gather, has no static range and is not checked). */
import { byteSize, type DType } from '../ir/dtype';
import { numel } from '../ir/shape';
import { range } from './expr';
import type { Expr, Kernel } from './kir';

export class KilnKernelVerifyError extends Error {
  constructor(readonly kernel: string, readonly problem: string) {
    super(`verify (kernels): ${kernel}: ${problem}`);
    this.name = 'KilnKernelVerifyError';
  }
}

function boundVars(k: Kernel): Expr[] {
  switch (k.kind) {
    case 'pointwise': return [...k.vars];
    case 'reduce': case 'row': return [...k.outerVars, ...k.innerVars];
    case 'extern': return [...k.outVars];
    case 'commit': return [];
  }
}

/** `elements(buf)`: how many elements of dtype `dt` the buffer holds. */
export function verifyKernel(k: Kernel, elements: (buf: number, dt: DType) => number): void {
  if (k.kind === 'commit') return;
  const fail = (why: string): never => { throw new KilnKernelVerifyError(k.name, why); };
  const vars = new Map(boundVars(k).map((v) => [(v as { name: string }).name, (v as { extent: number }).extent]));
  const hasAcc = k.kind !== 'pointwise';
  const inBounds = (off: Expr, buf: number, dt: DType, what: string) => {
    const r = range(off), n = elements(buf, dt);
    if (r && (r[0] < 0 || r[1] >= n)) fail(`${what} of buffer #${buf} at offsets [${r[0]}, ${r[1]}], outside its ${n} elements`);
  };
  const seen = new Set<string>();
  const walk = (e: Expr): void => {
    if (seen.has(e.key)) return;
    seen.add(e.key);
    switch (e.k) {
      case 'var': if (vars.get(e.name) !== e.extent) fail(`variable ${e.name} < ${e.extent} is not bound by the kernel`); return;
      case 'acc': if (!hasAcc) fail('reads an accumulator, but a pointwise kernel has none'); return;
      case 'alu': case 'where': e.args.forEach(walk); return;
      case 'cast': walk(e.x); return;
      case 'load': walk(e.off); if (e.mask) walk(e.mask); else inBounds(e.off, e.buf, e.dt, 'load'); return;
      case 'philox': walk(e.key_); walk(e.ctr); return;
      case 'const': return;
    }
  };
  if (k.kind === 'reduce') walk(k.value);
  if (k.kind === 'row') k.reductions.forEach((r) => walk(r.value));
  if (k.kind === 'extern') k.operands.forEach((o) => {
    const last = o.offset + o.shape.reduce((s, d, i) => s + (d - 1) * M_abs(o.strides[i]), 0);
    if (numel(o.shape) > 0 && (o.offset < 0 || last >= elements(o.buf, o.dt))) fail(`operand view of buffer #${o.buf} reaches element ${last}, outside its ${elements(o.buf, o.dt)}`);
  });
  for (const s of k.stores) { walk(s.value); walk(s.off); inBounds(s.off, s.buf, s.dt, 'store'); }
}

const M_abs = Math.abs;

/** Every kernel; `bytes(buf)` is the buffer's size in bytes. */
export function verifyKernels(kernels: readonly Kernel[], bytes: (buf: number) => number): void {
  for (const k of kernels) verifyKernel(k, (b, dt) => Math.floor(bytes(b) / byteSize[dt]));
}
