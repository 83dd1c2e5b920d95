import type { Node } from '../ir/node';
import type { LowerCtx } from './lowering';

/** The lowering context of a node: its attributes and the shapes and dtypes around it. */
export const ctxOf = (n: Node): LowerCtx<unknown> => ({
  attrs: n.attrs, inShapes: n.inputs.map((i) => i.shape), inDtypes: n.inputs.map((i) => i.dtype), outShape: n.shape, outDtype: n.dtype,
});
