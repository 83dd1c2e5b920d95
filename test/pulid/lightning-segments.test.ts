/** Checkpoint segments on the compiled micro Lightning step (stage 3: L_diff + L_id + L_align through the
 * Lightning branch, AdamW): without segments, with every resnet block and transformer layer of the gradient steps
 * recomputed ('always'), and with them as candidates under a budget below the no-recompute arena ('budget'). The
 * plans differ; two training steps from the same start must give the same losses and the same parameters and
 * AdamW state, to the bit, and the arena the runtime allocates must be the planned one. */
import { microPulidConfig } from '../../models/pulid/config';
import { PulidModel } from '../../models/pulid/model';
import { loadDataset } from '../../models/pulid/data';
import { PulidTrainer, type CompiledStep, type TrainerOptions } from '../../models/pulid/trainer';

const steps3 = { 1: 0, 2: 0, 3: 4 } as const;

interface Run { losses: number[]; params: Map<string, Uint32Array>; step: CompiledStep }

describe('Lightning checkpoint segments (micro, C++)', () => {
  let data: Awaited<ReturnType<typeof loadDataset>>;
  const model = new PulidModel(microPulidConfig, { seed: 0 });
  let plain: Run;
  beforeAll(async () => {
    data = await loadDataset(microPulidConfig, { seed: 0 });
    plain = await run({ checkpoint: false });
  }, 900_000);

  async function run(o: Partial<TrainerOptions>): Promise<Run> {
    const tr = new PulidTrainer(model, data.samples, data.text, { steps: { ...steps3 }, lr: 3e-3, ...o });
    tr.stage = 3;
    const step = await tr.compileStage(3);
    const losses = [(await tr.step()).loss, (await tr.step()).loss];
    const p = step.program as unknown as { paramNames(): string[]; getParam(n: string): Float32Array };
    const params = new Map(p.paramNames().map((n) => [n, Uint32Array.from(new Uint32Array(Float32Array.from(p.getParam(n)).buffer))]));
    return { losses, params, step };
  }

  /** Words that differ between two runs' parameters (trainable, AdamW moments and step; frozen weights too). */
  function differing(a: Run, b: Run): number {
    expect([...b.params.keys()].sort()).toEqual([...a.params.keys()].sort());
    let n = 0;
    for (const [k, x] of a.params) { const y = b.params.get(k)!; expect(y.length).toBe(x.length); for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) n++; }
    return n;
  }
  const arenaOf = (r: Run) => (r.step.program as unknown as { arena: { byteLength: number } }).arena.byteLength;

  test("'always': recomputes the segments, same losses and parameters bitwise, fewer activations at the peak", async () => {
    const cp = await run({ checkpoint: { unit: 'layer', when: 'always' } });
    const m = cp.step.memory, p = plain.step.memory;
    console.log(`micro Lightning: plain ${p.plannedBytes} B (activations ${p.byKind.activations}), layer segments ${m.plannedBytes} B (activations ${m.byKind.activations}), ${m.recomputed.length} recomputed, +${(100 * m.flops.ratio).toFixed(1)}% FLOPs`);
    expect(p.recomputed.length).toBe(0);
    expect(m.recomputed.length).toBeGreaterThan(0);
    expect(m.flops.ratio).toBeGreaterThan(0);
    expect(m.byKind.activations).toBeLessThan(p.byKind.activations);
    expect(cp.losses).toEqual(plain.losses);
    expect(cp.losses[1]).not.toBe(cp.losses[0]);
    expect(differing(plain, cp)).toBe(0);
    expect(arenaOf(cp)).toBe(m.plannedBytes);
  }, 900_000);

  test("'budget': candidates chosen only under a budget below the plain arena; same parameters bitwise; the runtime arena is the plan", async () => {
    const p = plain.step.memory;
    const budget = Math.floor(p.plannedBytes - 0.2 * (p.plannedBytes - p.residentBytes));
    const cb = await run({ memoryBudget: budget });  // default: layer candidates under a budget
    const m = cb.step.memory;
    console.log(`micro Lightning: budget ${budget} B → ${m.plannedBytes} B, ${m.recomputed.length} recomputed, +${(100 * m.flops.ratio).toFixed(1)}% FLOPs`);
    expect(budget).toBeLessThan(p.plannedBytes);
    expect(m.plannedBytes).toBeLessThanOrEqual(budget);
    expect(m.recomputed.length).toBeGreaterThan(0);
    expect(cb.losses).toEqual(plain.losses);
    expect(differing(plain, cb)).toBe(0);
    expect(arenaOf(cb)).toBe(m.plannedBytes);
  }, 900_000);
});
