/** Every CUDA kernel template must compile for Hopper: nvcc -arch=sm_90a (the runtime's flags) on each
 * instantiation driver in test/kernels/cuda/*.cu. Compile only — running them needs a GPU. A success is
 * remembered in the OS temp dir under a hash of the sources, flags and nvcc, so reruns are instant. */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { nvccAvailable, nvccPath } from '../../runtime/cuda';
import { ROOT } from './harness';

const CUDA_KERNELS = path.join(ROOT, 'kernels/cuda');
const DRIVERS = path.join(ROOT, 'test/kernels/cuda');
const FLAGS = ['-arch=sm_90a', '-O3', '-std=c++17', '-I', CUDA_KERNELS];
const drivers = readdirSync(DRIVERS).filter((f) => f.endsWith('.cu')).sort();
const run = promisify(execFile);

async function compile(file: string): Promise<void> {
  const h = createHash('sha256').update(nvccPath()).update(FLAGS.join(' ')).update(readFileSync(path.join(DRIVERS, file)));
  // The headers nvcc sees (not emu/, the CUDA emulator's runtime, which only g++ builds include).
  for (const f of readdirSync(CUDA_KERNELS).filter((x) => x.endsWith('.cuh')).sort()) h.update(f).update(readFileSync(path.join(CUDA_KERNELS, f)));
  const stamp = path.join(tmpdir(), `kiln-nvcc-ok-${file}-${h.digest('hex').slice(0, 16)}`);
  if (existsSync(stamp)) return;
  const obj = path.join(tmpdir(), `kiln-nvcc-${process.pid}-${file}.o`);
  try {
    await run(nvccPath(), [...FLAGS, '-c', path.join(DRIVERS, file), '-o', obj], { maxBuffer: 1 << 24 });
  } catch (e) {
    const err = e as { stderr?: string; message: string };
    throw new Error(`nvcc failed on ${file}:\n${err.stderr ?? err.message}`);
  }
  writeFileSync(stamp, '');
}

const haveNvcc = nvccAvailable();
if (!haveNvcc) console.log(`cuda-compile: nvcc not found (${nvccPath()}); skipping the CUDA template compile checks`);

(haveNvcc ? describe : describe.skip)('CUDA kernel templates compile (nvcc -arch=sm_90a)', () => {
  // Start every compile at once (nvcc is single-threaded per file), then report each separately.
  const results = new Map<string, Promise<void>>();
  beforeAll(() => {
    for (const f of drivers) {
      const p = compile(f);
      p.catch(() => undefined);
      results.set(f, p);
    }
  });
  it.each(drivers)('%s', async (f) => {
    await results.get(f);
  });
});
