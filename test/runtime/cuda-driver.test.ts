/**
 * The addon's CUDA driver bindings against a fake libcuda (fake-libcuda.cc) that runs on the host, so the
 * launch path is exercised on machines without a GPU. The driver is loaded once per process, so the
 * scenario runs in a child process with KILN_LIBCUDA pointing at the fake.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { repoRoot } from '../../runtime/paths';

const SCENARIO = `
const { CudaDevice, cudaAvailable, f32Param } = await import(${JSON.stringify(path.join(repoRoot, 'runtime/cuda.ts'))});
const out = { available: cudaAvailable() };
const device = CudaDevice.open();
out.info = device.info;
device.allocArena(64);
device.upload(16, Float32Array.of(1, 2, 3));
const scale = device.loadModule(new Uint8Array(8)).kernel('scale');
out.ms = device.time(() => device.launch(scale, [1, 1, 1], [32, 1, 1], 100 * 1024, [device.ptr(16), f32Param(1.5), 3]));
device.sync();
const result = new Float32Array(3);
device.download(result, 16);
out.result = [...result];
const message = (f) => { try { f(); return 'no error'; } catch (e) { return e.message; } };
out.missingKernel = message(() => device.loadModule(new Uint8Array(8)).kernel('nope'));
out.outside = message(() => device.upload(60, new Float32Array(2)));
out.oom = message(() => device.allocArena(1 << 30));
console.log(JSON.stringify(out));
`;

describe('CUDA driver bindings (fake driver)', () => {
  it('initialises, copies, launches with 8-byte parameter slots and reports failures', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'kiln-fake-cuda-'));
    const lib = path.join(dir, 'libcuda.so.1');
    execFileSync('g++', ['-O1', '-shared', '-fPIC', '-std=c++17', path.join(repoRoot, 'test', 'runtime', 'fake-libcuda.cc'), '-o', lib]);

    const child = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', SCENARIO], {
      cwd: repoRoot,
      env: { ...process.env, KILN_LIBCUDA: lib, NODE_OPTIONS: '' },
      encoding: 'utf8',
    });
    expect(child.stderr).toBe('');
    const out = JSON.parse(child.stdout);

    expect(out.available).toEqual({ ok: true, reason: '' });
    expect(out.info).toEqual({ name: 'Fake GPU', computeCapability: [9, 0], freeBytes: 1 << 20, totalBytes: 2 << 20 });
    expect(out.ms).toBe(0.25);
    expect(out.result).toEqual([1.5, 3, 4.5]);
    expect(out.missingKernel).toMatch(/cuModuleGetFunction failed: CUDA_ERROR_NOT_FOUND .* for 'nope'/);
    expect(out.oom).toMatch(/cuMemAlloc_v2 failed: CUDA_ERROR_OUT_OF_MEMORY \(out of memory\): requested 1073741824 bytes; the device has 1048576 bytes free of 2097152/);
    expect(out.outside).toMatch(/outside the 64-byte arena/);
  });
});
