/** One-line descriptions of kernels for `explain()`. */
import { numel } from './ir/shape';
import type { Kernel } from './codegen/kir';

export function describeKernel(k: Kernel, offsets: ReadonlyMap<number, number>): string {
  const out = k.kind === 'commit' ? k.copies.map((c) => `#${c.to}`).join(',') : k.stores.map((s) => `#${s.buf}@${offsets.get(s.buf)}`).join(',');
  switch (k.kind) {
    case 'pointwise': return `${k.name.padEnd(40)} pointwise [${k.shape.join(',')}] (${numel(k.shape)} elements) -> ${out}  fuses: ${k.ops.join(' ')}`;
    case 'reduce': return `${k.name.padEnd(40)} reduce ${k.combine} rows [${k.outer.join(',')}] x [${k.inner.join(',')}] -> ${out}  fuses: ${k.ops.join(' ')}`;
    case 'extern': return `${k.name.padEnd(40)} template ${k.template} [${k.outShape.join(',')}] ${(k.flops / 1e6).toFixed(2)} MFLOP -> ${out}  fuses: ${k.ops.join(' ')}`;
    case 'row': return `${k.name.padEnd(40)} row kernel rows [${k.outer.join(',')}] x [${k.inner.join(',')}], ${k.reductions.length} reductions (${k.reductions.map((r) => r.combine).join(', ')}) -> ${out}  fuses: ${k.ops.join(' ')}`;
    case 'commit': return `${k.name.padEnd(40)} copy ${k.copies.length} parameter updates -> ${out}`;
  }
}
