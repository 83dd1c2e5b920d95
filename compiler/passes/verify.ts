/** The graph verifier, run between stages under KILN_VERIFY=1 (and always in the tests): every input comes
 * before its users, every node's shape and dtype are what its op's rule infers again from its inputs, and
 * leaves are leaves. A failure names the node in the IR printer's form and its source line. */
import type { Node } from '../ir/node';
import { sameShape } from '../ir/shape';
import { formatNode } from '../ir/print';
import { OPS } from '../ops/registry';

export class KilnVerifyError extends Error {
  constructor(readonly stage: string, readonly problem: string) {
    super(`verify (${stage}): ${problem}`);
    this.name = 'KilnVerifyError';
  }
}

export const verifyEnabled = (): boolean => process.env.KILN_VERIFY === '1';

export function verifyGraph(order: readonly Node[], stage = 'graph'): void {
  const seen = new Set<number>();
  const bad = (n: Node, why: string): never => { throw new KilnVerifyError(stage, `${formatNode(n)} at ${n.src}: ${why}`); };
  for (const n of order) {
    if (seen.has(n.id)) bad(n, 'appears twice in the order');
    const def = OPS[n.op];
    if (!def) bad(n, `unknown op '${n.op}'`);
    for (const i of n.inputs) if (!seen.has(i.id)) bad(n, `input %${i.id} (${i.op}) does not come before it`);
    if (def.arity >= 0 && n.inputs.length !== def.arity) bad(n, `has ${n.inputs.length} inputs, ${n.op} takes ${def.arity}`);
    let t;
    try { t = (def.infer as (i: unknown, a: unknown) => { shape: readonly number[]; dtype: string })(n.inputs.map((i) => ({ shape: i.shape, dtype: i.dtype })), n.attrs); } catch (e) { bad(n, `its shape rule fails: ${(e as Error).message}`); }
    if (!sameShape(t!.shape, n.shape) || t!.dtype !== n.dtype) bad(n, `its rule infers [${t!.shape.join(',')}]:${t!.dtype}`);
    seen.add(n.id);
  }
}
