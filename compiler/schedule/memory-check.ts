/** A cheap debug check of a finished memory plan. It re-derives liveness from the plan's own step list and
 * verifies what makes the plan safe to run: every read sees a live buffer, and no two buffers live at the same
 * time share bytes (except an in-place pair on the step where one hands its memory to the other). */
import type { MemoryPlan, PlanBuffer } from './plan-types';
import { computeLifetimes } from './memory-liveness';
// Globals are bound once per module: every global lookup is slow inside jest's vm contexts.
const M = Math;

export function checkPlan(plan: MemoryPlan): void {
  const fail = (msg: string): never => { throw new Error(`memory plan check: ${msg}`); };
  const bufs = new Map<number, PlanBuffer>();
  for (const b of plan.buffers) {
    if (bufs.has(b.id)) fail(`buffer id ${b.id} appears twice`);
    bufs.set(b.id, b);
  }
  // computeLifetimes throws on unknown ids and on temps/outputs read before their first write.
  const lifetimes = computeLifetimes(bufs, plan.steps);
  const life = (id: number): readonly [number, number] => lifetimes.get(id) ?? fail(`buffer ${id} has no lifetime`);
  for (const [id, [f, l]] of lifetimes) {
    const given = plan.lifetimes.get(id);
    if (!given || given[0] !== f || given[1] !== l) fail(`lifetime of buffer ${id} is [${given}], the steps give [${f}, ${l}]`);
  }
  plan.steps.forEach((step, i) => {
    for (const id of [...step.reads, ...step.writes]) {
      const [f, l] = life(id);
      if (i < f || i > l) fail(`step ${i} (${step.label}) uses buffer ${id} (${bufs.get(id)!.label}) outside its lifetime [${f}, ${l}]`);
    }
  });

  // Update values committed in place: at their parameter's offset, written once, after every read of the
  // parameter's old contents (at the writing step only element for element), and the parameter never rewritten.
  const committed = new Set<number>();
  for (const { value, param, step } of plan.commits) {
    const v = bufs.get(value), p = bufs.get(param);
    if (!v || !p || v.kind !== 'temp' || p.kind !== 'param' || committed.has(value)) fail(`commit ${value}->${param} is not a temp value and a parameter`);
    if (plan.offsets.get(value) !== plan.offsets.get(param) || v!.bytes > p!.bytes) fail(`commit ${value}->${param} is not at its parameter's offset`);
    committed.add(value);
    plan.steps.forEach((s, i) => {
      if (s.writes.includes(param)) fail(`step ${i} (${s.label}) writes parameter ${param}, which update ${value} holds in place`);
      if (s.writes.includes(value) && i !== step) fail(`update ${value} committed at step ${step} is also written at step ${i}`);
      if (s.reads.includes(param) && i > step) fail(`step ${i} (${s.label}) reads parameter ${param} after step ${step} wrote its update in place`);
      if (i === step && s.reads.includes(param) && !(s.inPlace ?? []).some((q) => q.read === param && q.write === value)) fail(`step ${i} (${s.label}) reads parameter ${param} other than element for element while writing it in place`);
    });
    if (!plan.steps[step]?.writes.includes(value)) fail(`update ${value} is not written at step ${step}`);
  }

  let arena = 0;
  const placed: { id: number; start: number; end: number }[] = [];
  for (const [id, [f, l]] of lifetimes) {
    const b = bufs.get(id)!;
    const off = plan.offsets.get(id) ?? fail(`buffer ${id} (${b.label}) has no offset`);
    if (off < 0) fail(`buffer ${id} has negative offset ${off}`);
    if ((b.kind === 'param' || b.kind === 'const') && (f !== -1 || l !== plan.steps.length)) fail(`${b.kind} ${id} is not live for the whole program`);
    arena = M.max(arena, off + b.bytes);
    if (b.bytes > 0 && !committed.has(id)) placed.push({ id, start: off, end: off + b.bytes });
  }
  if (arena !== plan.arenaBytes) fail(`arenaBytes is ${plan.arenaBytes}, the offsets give ${arena}`);

  const pairs = new Set<string>();
  for (const { read, write } of plan.inPlace) {
    const [, rl] = life(read), [wf] = life(write);
    if (rl !== wf) fail(`in-place pair ${read}->${write}: the donor's last use is not the receiver's first write`);
    if (plan.offsets.get(read) !== plan.offsets.get(write)) fail(`in-place pair ${read}->${write} does not share an offset`);
    pairs.add(`${read},${write}`).add(`${write},${read}`);
  }
  // Sorted by offset, each buffer need only be compared with those that start inside it.
  placed.sort((x, y) => x.start - y.start);
  for (let i = 0; i < placed.length; i++) {
    for (let j = i + 1; j < placed.length && placed[j].start < placed[i].end; j++) {
      const a = placed[i].id, b = placed[j].id;
      const [af, al] = life(a), [bf, bl] = life(b);
      if (af > bl || bf > al) continue;
      if (pairs.has(`${a},${b}`) && (al === bf || bl === af) && M.max(af, bf) === M.min(al, bl)) continue;
      fail(`buffers ${a} (${bufs.get(a)!.label}) and ${b} (${bufs.get(b)!.label}) are live together ([${af}, ${al}] and [${bf}, ${bl}]) and overlap in memory`);
    }
  }
  if (plan.peakLiveBytes > plan.arenaBytes) fail(`peak live ${plan.peakLiveBytes} exceeds the arena ${plan.arenaBytes}`);
  if (plan.budget !== undefined && plan.arenaBytes > plan.budget) fail(`arena ${plan.arenaBytes} exceeds the budget ${plan.budget}`);

  for (const r of plan.recomputed) {
    const s = plan.steps[r.at];
    if (!s || s.recomputeOf !== r.step || !s.writes.includes(r.replacement)) fail(`recompute of buffer ${r.buffer} is not at step ${r.at}`);
  }
}
