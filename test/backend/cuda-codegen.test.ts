/** The CUDA back end on a machine without a GPU: the generated CUDA for the test graphs must compile with
 * nvcc for sm_90a (what CI checks), and running it must fail with a clear message. GPU correctness runs on a
 * lent H100 (bench/results). */
import { compile, compileCudaSource, grad, input, constant, type Tensor } from '../../compiler/index';
import { nvccAvailable, cudaAvailable, compileCudaHost } from '../../runtime/cuda';
import { CompiledLibrary } from '../../runtime/cpu';
import { renderProgramCuda } from '../../compiler/render/cuda';
import { native } from '../../runtime/native';
import { compositeGradCases, primitiveGradCases } from '../ops/grad-cases';
import { forwardCases } from '../ops/forward-cases';
import { values } from '../support/gradcheck';
import { liftConstants } from '../support/lift';
import { mlpStep, convNetStep } from '../support/nets';

const maybe = nvccAvailable() ? describe : describe.skip;
if (!nvccAvailable()) console.warn('nvcc not found: skipping the CUDA compile tests');

maybe('generated CUDA compiles with nvcc -arch=sm_90a', () => {
  test('the op table, forward and backward', async () => {
    const outs: Record<string, Tensor> = {};
    for (const [op, c] of Object.entries(forwardCases)) Object.assign(outs, liftConstants({ [op]: c.build() }, op).outputs);
    for (const [key, c] of [...Object.entries(primitiveGradCases).map(([k, c]) => [k, c!] as const), ...compositeGradCases.map((c, i) => [`comp${i}`, c] as const)]) {
      const xs = c.shapes.map((s, i) => input(`${key}_x${i}`, s));
      const y = c.f(...xs);
      grad(y.mul(constant(values(y.shape, 'real', 99), y.shape)).sum(), xs).forEach((g, i) => { outs[`${key}_g${i}`] = g; });
    }
    const r = await compileCudaSource({ outputs: liftConstants(outs, 'g').outputs });
    expect(r.cubin.read().subarray(0, 4)).toEqual(Buffer.from([0x7f, 0x45, 0x4c, 0x46])); // an ELF cubin
    expect(r.launches.length).toBeGreaterThan(50);
  });

  test('MLP and conv-net training steps (GEMM, conv fwd/bwd, attention fwd/bwd, reductions, AdamW)', async () => {
    for (const make of [mlpStep, convNetStep]) {
      const r = await compileCudaSource(make().spec);
      expect(r.source).toMatch(/KILN_KERNEL void/);
      expect(r.launches.every((l) => l.block[0] === 256)).toBe(true);
    }
  });

  test('the program with its host launcher builds as one shared library (nvcc -shared) exporting kiln_run', async () => {
    const r = await compileCudaSource(mlpStep().spec);
    const host = await compileCudaHost(r.source);
    const lib = new CompiledLibrary(host, native().cpuLoad(host.artifactPath)); // cudart is static: loads without a driver
    expect(lib.has('kiln_run')).toBe(true);
    expect(r.source).toContain(`static const KilnLaunch kiln_launches[${r.launches.length}]`);
  });

  test('split into translation units compiled in parallel, the program links into the same kind of library', async () => {
    const { source, ...low } = await compileCudaSource(convNetStep().spec);
    const units = renderProgramCuda(low.kernels, low.info, Math.ceil(low.plan.arenaBytes / 256) * 256).units(2);
    expect(units).toHaveLength(3); // two kernel units and the launcher's
    expect(units.slice(0, 2).every((u) => /KILN_KERNEL void __launch_bounds__/.test(u))).toBe(true);
    expect(units[2]).toMatch(/^KILN_KERNEL void k\d+\w*\(uint8_t\* __restrict__ A(, int64_t o\d+)*\);$/m);
    const host = await compileCudaHost(units);
    expect(new CompiledLibrary(host, native().cpuLoad(host.artifactPath)).has('kiln_run')).toBe(true);
    expect(source.length).toBeGreaterThan(0);
  });

  test('without a driver, compile(backend: cuda) says so after compiling', async () => {
    if (cudaAvailable().ok) return;
    await expect(compile(mlpStep().spec, { backend: 'cuda' })).rejects.toThrow(/CUDA back end needs an NVIDIA driver: .*libcuda/);
  });
});
