/** Checkpoint segments in the plan: a buffer tagged with a segment (a value computed inside a DSL
 * `checkpoint(fn)`, not one of its outputs) is kept only while the segment's own forward steps run; every read
 * after the segment's last writing step gets a recomputed copy, made by a clone of the writer inserted just
 * before that read. Buffers are taken latest writer first, so a clone that reads another inner value finds that
 * value's clone already placed before it. The segment's forward steps end with the last step that writes one of
 * its values or outputs. So the whole segment, templates included, is re-run in order before the
 * backward pass needs it, and only its inputs and outputs stay live in between. */
import type { PlanBuffer, PlanStep } from './plan-types';
import { commit, freshIds, withClone, type Clone, type Ids } from './memory-remat';

export interface Checkpointed { steps: PlanStep[]; bufs: Map<number, PlanBuffer>; ids: Ids; clones: Clone[] }

export function applyCheckpoints(bufsIn: ReadonlyMap<number, PlanBuffer>, input: readonly PlanStep[]): Checkpointed {
  const bufs = new Map(bufsIn);
  let steps = [...input];
  const ids = freshIds(input, bufsIn);
  const clones: Clone[] = [];
  // The single writer of each tagged temp, and the last step (by id) that writes a segment's values.
  const writer = new Map<number, number>(), writes = new Map<number, number>();
  for (const s of input) for (const b of s.writes) { writes.set(b, (writes.get(b) ?? 0) + 1); writer.set(b, s.id); }
  const position = new Map(input.map((s, i) => [s.id, i]));
  const segEnd = new Map<number, number>();
  for (const b of bufs.values()) {
    const w = writer.get(b.id), seg = b.segment ?? b.segmentOutput;
    if (seg === undefined || w === undefined) continue;
    const e = segEnd.get(seg);
    if (e === undefined || position.get(w)! > position.get(e)!) segEnd.set(seg, w);
  }
  const tagged: number[] = [];
  for (const b of bufs.values()) {
    if (b.segment === undefined || b.kind !== 'temp' || writes.get(b.id) !== 1) continue;
    const step = input[position.get(writer.get(b.id)!)!];
    if (step.recomputable && step.writes.length === 1 && !step.reads.includes(b.id)) tagged.push(b.id);
  }
  if (!tagged.length) return { steps, bufs, ids, clones };
  tagged.sort((x, y) => position.get(writer.get(y)!)! - position.get(writer.get(x)!)!);
  for (const b of tagged) {
    const at = new Map(steps.map((s, i) => [s.id, i]));
    const end = at.get(segEnd.get(bufs.get(b)!.segment!)!)!;
    let nextRead = -1;
    for (let i = end + 1; i < steps.length && nextRead < 0; i++) if (steps[i].reads.includes(b)) nextRead = i;
    if (nextRead < 0) continue;  // not needed after the segment: it dies there anyway
    const t = withClone(steps, { buffer: b, writer: at.get(writer.get(b)!)!, nextRead }, ids, bufs);
    if (!t) continue;  // an input of its writer is overwritten before then: keep the value
    steps = t.steps;
    clones.push(commit(t, { buffer: b, writer: at.get(writer.get(b)!)!, nextRead }, ids, bufs));
  }
  return { steps, bufs, ids, clones };
}
