/** The generated host launcher (render/cuda-host.ts): a CUDA program runs as one native call to its kiln_run, which
 * launches every kernel from a table, on the emulator here. It must give bit-identical results to launching kernel
 * by kernel from the addon (the emulator is deterministic), step after step of a training run. */
import { compile } from '../../compiler/index';
import { convNetStep } from '../support/nets';

describe('CUDA host launcher (kiln_run), direct and through a CUDA Graph, on the emulator', () => {
  test('one native call per step, the same values as kernel-by-kernel launches', async () => {
    const { spec, feeds } = convNetStep();
    const host = await compile(spec, { backend: 'cuda-emu', launcher: 'host' });
    const graph = await compile(spec, { backend: 'cuda-emu', launcher: 'host', cudaGraph: true });
    const list = await compile(spec, { backend: 'cuda-emu', launcher: 'list' });
    // Updates staged until one commit (not in place, the planner's default): the launcher's copy path.
    const staged = await compile(spec, { backend: 'cuda-emu', launcher: 'host', stagedUpdates: true });
    expect(host.launchMode).toBe('host');
    expect(list.launchMode).toBe('list');
    const launches = host.parts.launches.length;
    expect(host.source).toMatch(new RegExp(`static const KilnLaunch kiln_launches\\[${launches}\\]`));
    // AdamW's staged parameter commit: device-to-device copies in the launcher, not a kernel launch. In place
    // (the default), every update kernel writes its parameter and nothing is left to copy.
    expect(staged.parts.launches.some((l) => l.copies?.length)).toBe(true);
    expect(staged.source).toMatch(/cudaMemcpyAsync\(A \+ c\[0\], A \+ c\[1\]/);
    expect(host.parts.launches.some((l) => l.copies)).toBe(false);
    expect(host.parts.plan.commits.length).toBeGreaterThan(0);
    expect(host.source).toMatch(/extern "C" __attribute__\(\(visibility\("default"\)\)\) int kiln_run\(uint8_t\* msg, const int64_t\* a\)/);
    // The graph program captures its launches on the first run and replays them after.
    for (let step = 0; step < 3; step++) {
      const a = host.run(feeds), b = list.run(feeds), c = graph.run(feeds), d = staged.run(feeds);
      expect(Array.from(a.loss)).toEqual(Array.from(b.loss));
      expect(Array.from(d.loss)).toEqual(Array.from(b.loss));
      expect(Array.from(c.loss)).toEqual(Array.from(b.loss));
    }
    for (const name of host.paramNames()) {
      expect(Array.from(host.getParam(name))).toEqual(Array.from(list.getParam(name)));
      expect(Array.from(graph.getParam(name))).toEqual(Array.from(list.getParam(name)));
      expect(Array.from(staged.getParam(name))).toEqual(Array.from(list.getParam(name)));
    }
  }, 300_000);

  test('the checked emulator and the non-finite check launch kernel by kernel', async () => {
    const { spec } = convNetStep();
    expect((await compile(spec, { backend: 'cuda-emu', checks: true })).launchMode).toBe('list');
    expect((await compile(spec, { backend: 'cuda-emu', checkNans: true })).launchMode).toBe('list');
  }, 300_000);

  test('time(reps) queues reps whole runs between its events (both launch modes); dispose() frees the arena', async () => {
    const { spec, feeds } = convNetStep();
    for (const launcher of ['host', 'list'] as const) {
      const p = await compile(spec, { backend: 'cuda-emu', launcher });
      p.run(feeds);
      const step = () => p.getParam('adamw.step')[0];
      const before = step();
      expect(p.time(3)).toBeGreaterThanOrEqual(0);
      // Three more AdamW steps ran: the step counter moved by three.
      expect(`${launcher}: ${step() - before}`).toBe(`${launcher}: 3`);
      p.dispose();
      expect(() => p.run(feeds)).toThrow(/arena/);
    }
  }, 300_000);
});
