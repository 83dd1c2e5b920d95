/** Registry properties of movement ops that fusion and lowering both ask about: which ops a strided layout
 * can express (templates read them without a copy), and which nodes are free generators. Here in ops/ so that
 * codegen need not import schedule/. */
import type { Node } from '../ir/node';
import { stridesOf } from '../ir/shape';
import type { StridedLayout } from './lowering';
import { ctxOf } from './context';
import { OPS } from './registry';

/** Movement ops a strided layout can express (their lowering has a `view`): templates read them without a copy. */
export const isView = (n: Node): boolean => { const l = OPS[n.op].lower; return l.kind === 'pointwise' && l.view !== undefined; };
/** Generators with no inputs (constants, iota): always recomputed where used, never a kernel of their own. */
export const isFreeLeaf = (n: Node): boolean => OPS[n.op].lower.kind === 'pointwise' && n.inputs.length === 0;

/** The strided layout of `n` as a view of a realized (contiguous) buffer, or null. */
export function viewLayout(n: Node, realized: { has(id: number): boolean }): StridedLayout | null {
  if (realized.has(n.id)) return { shape: n.shape, strides: stridesOf(n.shape), offset: 0 };
  const l = OPS[n.op].lower;
  if (l.kind !== 'pointwise' || !l.view) return null;
  const src = viewLayout(n.inputs[0], realized);
  return src && (l.view as (s: StridedLayout, c: unknown) => StridedLayout | null)(src, ctxOf(n));
}

