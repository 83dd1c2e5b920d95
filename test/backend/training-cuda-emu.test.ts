/** Whole training steps through the CUDA back end on the CUDA emulator, against the same steps compiled to C++:
 * the micro UNet (conv, GroupNorm+SiLU, attention, GEMM templates forward and backward, AdamW in the program)
 * and the micro PuLID stage-1 step through its trainer. The PuLID program runs with memcheck, racecheck and
 * initcheck; the UNet step unchecked, for time. Values agree within f32 tolerance (the two back ends sum in different orders). */
import { compile, type Program } from '../../compiler/index';
import { microUnetStep } from '../support/nets';
import { microPulidConfig } from '../../models/pulid/config';
import { PulidModel } from '../../models/pulid/model';
import { loadDataset } from '../../models/pulid/data';
import { PulidTrainer } from '../../models/pulid/trainer';

/** ‖a − b‖ / ‖b‖. */
function relErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let d = 0, n = 0;
  for (let i = 0; i < b.length; i++) { d += (a[i] - b[i]) ** 2; n += b[i] ** 2; }
  return Math.sqrt(d / Math.max(n, 1e-30));
}
/** Every parameter of two programs, compared normwise; returns the worst. */
function worstParam(a: Program, b: Program): [string, number] {
  let worst: [string, number] = ['', 0];
  for (const name of b.paramNames()) {
    const e = relErr(a.getParam(name), b.getParam(name));
    if (!(e <= worst[1])) worst = [name, e];
  }
  return worst;
}

/** The first loss (same parameters) agrees to f32 rounding; after an AdamW step, to 1e-4: Adam divides each gradient by
 * its own magnitude, so a parameter whose gradient is f32 noise moves by ±lr on either back end. */
function expectLosses(emulated: number[], cpp: number[]): void {
  expect(Math.abs(emulated[0] - cpp[0]) / cpp[0]).toBeLessThan(1e-5);
  expect(Math.abs(emulated[1] - cpp[1]) / cpp[1]).toBeLessThan(1e-4);
}

describe('training steps on the emulated CUDA back end equal the C++ back end', () => {
  test('micro UNet: forward, backward through every layer, AdamW', async () => {
    const { spec, feeds, params } = microUnetStep();
    const cpu = await compile(spec);
    // Unchecked here (the checked build is ~5x slower on this 2,200-launch step); the op table, the templates and
    // the PuLID step below run checked.
    const emu = await compile(spec, { backend: 'cuda-emu', checks: false });
    expect(emu.backend).toBe('cuda-emu');
    const t0 = performance.now();
    const lc = [cpu.run(feeds).loss[0]], le = [emu.run(feeds).loss[0]];
    // After one step from the same parameters, every parameter and Adam moment agrees to f32 rounding of one
    // forward and backward pass (adam_v holds g², so twice the gradient's relative error).
    const [name, e] = worstParam(emu, cpu);
    console.log(`micro UNet: worst parameter after 1 step: ${name} (relative error ${e})`);
    expect(e).toBeLessThan(1e-4);
    lc.push(cpu.run(feeds).loss[0]);
    le.push(emu.run(feeds).loss[0]);
    console.log(`micro UNet (${params} params, ${emu.kernels.length} kernels): losses C++ ${lc.join(', ')}, emulated ${le.join(', ')} (${((performance.now() - t0) / 2).toFixed(0)} ms per step pair)`);
    expectLosses(le, lc);
    expect(lc[1]).not.toBe(lc[0]); // the first step changed the parameters
  }, 600_000);

  test('micro PuLID stage 1 (ID encoder + ID attention through the UNet) through the trainer', async () => {
    const data = await loadDataset(microPulidConfig, { seed: 0 });
    const model = new PulidModel(microPulidConfig, { seed: 0 });
    const steps = { 1: 4, 2: 0, 3: 0 };
    const cpu = new PulidTrainer(model, data.samples, data.text, { steps: { ...steps }, lr: 1e-3 });
    const emu = new PulidTrainer(model, data.samples, data.text, { steps: { ...steps }, lr: 1e-3, backend: 'cuda-emu' });
    const pc = (await cpu.compileStage(1)).program;
    const saved = process.env.KILN_CUDA_EMU_CHECKS;
    process.env.KILN_CUDA_EMU_CHECKS = '1'; // the trainer compiles with the default: checked
    const pe = await emu.compileStage(1).then((c) => c.program).finally(() => { if (saved === undefined) delete process.env.KILN_CUDA_EMU_CHECKS; else process.env.KILN_CUDA_EMU_CHECKS = saved; });
    expect(pe.backend).toBe('cuda-emu');
    const feeds = cpu.feeds(1, 0, 0);
    const lc = [pc.run(feeds).loss[0]], le = [pe.run(feeds).loss[0]];
    const [name, e] = worstParam(pe, pc);
    console.log(`micro PuLID stage 1: worst parameter after 1 step: ${name} (relative error ${e})`);
    expect(e).toBeLessThan(1e-4);
    lc.push(pc.run(feeds).loss[0]);
    le.push(pe.run(feeds).loss[0]);
    console.log(`micro PuLID stage 1 (${pe.kernels.length} kernels, checked): losses C++ ${lc.join(', ')}, emulated ${le.join(', ')}`);
    expectLosses(le, lc);
  }, 600_000);
});
