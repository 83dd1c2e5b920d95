/** Offsets in the one arena, assigned best-fit in step order. Params and consts sit first at fixed offsets;
 * everything else lives in the heap above them, where freed blocks become holes that later buffers reuse. */
import type { PlanBuffer, PlanStep } from './plan-types';
import type { InPlacePair, Lifetime } from './memory-liveness';
import type { CommitPair } from './memory-commit';
// Globals are bound once per module: every global lookup is slow inside jest's vm contexts.
const M = Math;

export const alignUp = (n: number, a: number): number => M.ceil(n / a) * a;

export interface Layout {
  readonly offsets: Map<number, number>;
  /** Highest offset + size in use (unaligned end of the topmost buffer). */
  readonly arenaBytes: number;
}

interface Block { offset: number; size: number }

/** The heap: holes below `top`, kept sorted by offset and merged, so a freed block next to a hole or to the
 * top grows it instead of leaving slivers. */
class Heap {
  private holes: Block[] = [];
  constructor(private top: number) {}

  alloc(size: number): number {
    let best = -1;
    for (let i = 0; i < this.holes.length; i++) {
      const h = this.holes[i];
      if (h.size >= size && (best < 0 || h.size < this.holes[best].size)) best = i;
    }
    if (best < 0) {
      const offset = this.top;
      this.top += size;
      return offset;
    }
    const hole = this.holes[best];
    const offset = hole.offset;
    hole.offset += size; hole.size -= size;
    if (hole.size === 0) this.holes.splice(best, 1);
    return offset;
  }

  free(offset: number, size: number): void {
    if (offset + size === this.top) {
      this.top = offset;
      const last = this.holes[this.holes.length - 1];
      if (last && last.offset + last.size === this.top) { this.top = last.offset; this.holes.pop(); }
      return;
    }
    let i = 0;
    while (i < this.holes.length && this.holes[i].offset < offset) i++;
    this.holes.splice(i, 0, { offset, size });
    const next = this.holes[i + 1];
    if (next && offset + size === next.offset) { this.holes[i].size += next.size; this.holes.splice(i + 1, 1); }
    const prev = this.holes[i - 1];
    if (prev && prev.offset + prev.size === offset) { prev.size += this.holes[i].size; this.holes.splice(i, 1); }
  }
}

export function assignOffsets(bufs: ReadonlyMap<number, PlanBuffer>, steps: readonly PlanStep[], lifetimes: ReadonlyMap<number, Lifetime>, inPlace: readonly InPlacePair[], alignment: number, commits: readonly CommitPair[] = []): Layout {
  const offsets = new Map<number, number>();
  // Resident buffers first, in declaration order: their offsets do not depend on the schedule, so a runtime
  // can keep weights in place across programs with the same parameters.
  let base = 0;
  for (const b of bufs.values()) {
    if (b.kind !== 'param' && b.kind !== 'const') continue;
    offsets.set(b.id, b.bytes === 0 ? 0 : base);
    base = alignUp(base + b.bytes, alignment);
  }

  // An update value committed in place lives in its parameter's memory.
  const committed = new Map(commits.map((c) => [c.value, c.param]));
  for (const [v, p] of committed) offsets.set(v, offsets.get(p)!);

  const heap = new Heap(base);
  const blocks = new Map<number, Block>();     // heap buffers now holding memory
  const freeAt: number[][] = steps.map(() => []);  // freeAt[t + 1]: buffers to free at step t (life ended at t - 1)
  freeAt.push([], []);
  const startAt: number[][] = [[], ...steps.map(() => [] as number[])];
  for (const [id, [first, last]] of lifetimes) {
    const b = bufs.get(id)!;
    if (b.kind === 'param' || b.kind === 'const' || committed.has(id)) continue;
    if (b.bytes === 0) { offsets.set(id, 0); continue; }
    startAt[first + 1].push(id);
    if (last < steps.length) freeAt[last + 2].push(id);
  }
  const donorOf = new Map(inPlace.map((p) => [p.write, p.read]));
  const donated = new Set(inPlace.map((p) => p.read));

  for (let t = -1; t < steps.length; t++) {
    // Free first: a buffer whose last use was the previous step leaves a hole this step's outputs may take.
    for (const id of freeAt[t + 1]) {
      if (donated.has(id)) continue;  // its block now belongs to the in-place receiver
      const blk = blocks.get(id)!;
      heap.free(blk.offset, blk.size);
    }
    // Inputs start at t = -1 in declaration order; a step's outputs in the order it writes them.
    const order = t < 0 ? startAt[0] : steps[t].writes.filter((id) => startAt[t + 1].includes(id));
    for (const id of new Set(order)) {
      const donor = donorOf.get(id);
      // The receiver takes the donor's whole block: the donor is still read during this step, so no other
      // buffer written here may use the tail the receiver does not need.
      const blk = donor !== undefined ? blocks.get(donor)! : { offset: heap.alloc(alignUp(bufs.get(id)!.bytes, alignment)), size: alignUp(bufs.get(id)!.bytes, alignment) };
      blocks.set(id, blk);
      offsets.set(id, blk.offset);
    }
  }
  let arenaBytes = 0;
  for (const [id, off] of offsets) arenaBytes = M.max(arenaBytes, off + bufs.get(id)!.bytes);
  return { offsets, arenaBytes };
}
