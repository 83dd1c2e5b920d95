/** The CUDA emulator itself (kernels/cuda/emu): its checks must catch what they exist for (a racy kernel, an
 * out-of-bounds or misaligned access, a divergent barrier or shuffle) and stay quiet on correct code; its warp
 * collectives and tensor-core PTX must follow the CUDA / PTX ISA definitions, written out independently here. */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { compileCudaEmu, kernelNames, openEmulatedDevice, type CompiledEmuModule } from '../../runtime/cuda-emu';
import { f32Param, type CudaDevice, type CudaModule } from '../../runtime/cuda';
import { f32ToBf16Bits, f32ToF16Bits } from '../../models/io/halfFloat';

const TEXT = readFileSync(path.join(path.dirname(fileURLToPath(import.meta.url)), 'emulator.cu'), 'utf8');
// Reports then name this file and its lines, not the kernel cache's copy.
const SRC = `#line 1 "test/emu/emulator.cu"\n${TEXT}`;
/** The line of emulator.cu holding `snippet`. */
const lineOf = (snippet: string) => TEXT.split('\n').findIndex((l) => l.includes(snippet)) + 1;
const ARENA = 1 << 16;

let dev: CudaDevice, base: bigint;
const mods: Record<'checked' | 'plain', CudaModule> = {} as never;
let built: CompiledEmuModule;

beforeAll(async () => {
  built = await compileCudaEmu(SRC, { checks: true });
  const plain = await compileCudaEmu(SRC);
  dev = await openEmulatedDevice();
  base = dev.allocArena(ARENA);
  mods.checked = dev.loadModule(built);
  mods.plain = dev.loadModule(plain);
}, 120_000);

type Arg = bigint | number;
/** Launches `kernel`; returns the error message, or undefined when it ran clean. */
function launch(kernel: string, grid: number, block: number | [number, number, number], args: Arg[], opts: { smem?: number; plain?: boolean } = {}): string | undefined {
  const b: [number, number, number] = typeof block === 'number' ? [block, 1, 1] : block;
  try {
    dev.launch((opts.plain ? mods.plain : mods.checked).kernel(kernel), [grid, 1, 1], b, opts.smem ?? 0, args);
    dev.sync();
    return undefined;
  } catch (e) {
    return (e as Error).message;
  }
}
const at = (byteOffset: number) => base + BigInt(byteOffset);
const OUT = 0, IN = 32768;

describe('the emulator builds the CUDA source nvcc compiles', () => {
  test('every kernel of the test source is registered', () => {
    expect(kernelNames(SRC)).toContain('ldmatrix_x4_trans');
    expect(built.read().toString('utf8')).toMatch(/^KILNEMU1\n/);
  });

  test('built-in variables over a 3-D grid of 3-D blocks', () => {
    // The grid is (4,1,1) here; blocks of 4x2x3 threads.
    expect(launch('indices', 4, [4, 2, 3], [at(OUT)])).toBeUndefined();
    const out = new Int32Array(4 * 24);
    dev.download(out, OUT);
    expect(Array.from(out)).toEqual(Array.from({ length: 96 }, (_, i) => 1000 * Math.floor(i / 24) + (i % 24)));
  });
});

describe('racecheck', () => {
  test('a write racing with a neighbour\'s read is reported with both threads and sites; the barrier fixes it', () => {
    const msg = launch('race_war', 1, 256, [at(OUT), 0]);
    expect(msg).toMatch(/racecheck: write-after-read hazard on static __shared__ memory/);
    // The last thread to reach the barrier runs on first: it reads s[0], which thread 0 then overwrites.
    // Sites of instrumented accesses come from the module's line table (addr2line), which may name the cached copy.
    expect(msg).toMatch(new RegExp(`thread \\(255,0,0\\) \\[warp 7 lane 31\\] read at \\S*\\.cu:${lineOf('const float v = s[(t + 1) % 256]')} `));
    expect(msg).toMatch(new RegExp(`then thread \\(0,0,0\\) \\[warp 0 lane 0\\] writes at \\S*\\.cu:${lineOf('s[t] = float(2 * t)')} `));
    expect(launch('race_war', 1, 256, [at(OUT), 1])).toBeUndefined();
    const out = new Float32Array(256);
    dev.download(out, OUT);
    expect(Array.from(out)).toEqual(Array.from({ length: 256 }, (_, t) => (t + 1) % 256));
  });

  test('__syncwarp orders lanes of one warp, not two warps', () => {
    expect(launch('race_warp', 1, 32, [at(OUT), 0, 1])).toMatch(/racecheck: write-after-read/);
    expect(launch('race_warp', 1, 32, [at(OUT), 1, 1])).toBeUndefined();
    expect(launch('race_warp', 1, 64, [at(OUT), 1, 32])).toMatch(/racecheck: (write-after-read|read-after-write)/);
  });

  test('a block reduction without its final barrier, called twice, races on its partials; the real ones do not', () => {
    expect(launch('reduce_twice', 1, 256, [at(OUT), 0])).toMatch(/racecheck: write-after-read hazard on static __shared__/);
    expect(launch('reduce_twice', 1, 256, [at(OUT), 1])).toBeUndefined();
    const out = new Float32Array(4);
    dev.download(out, OUT);
    expect(Array.from(out)).toEqual([(255 * 256) / 2, 256, 255, 512]);
  });

  test('global memory: an in-place kernel reading its neighbour\'s element races (across blocks too); same-index in place and byte writes do not', () => {
    dev.upload(IN, new Float32Array(600).fill(1));
    expect(launch('shift_in_place', 3, 256, [at(IN), 600, 1])).toMatch(/racecheck: (write-after-read|read-after-write) hazard on global memory .* in the same launch/);
    dev.upload(IN, new Float32Array(600).fill(1));
    // by = 256: thread t of block 0 reads what thread t of block 1 writes
    expect(launch('shift_in_place', 3, 256, [at(IN), 600, 256])).toMatch(/racecheck: .* hazard on global memory/);
    expect(launch('shift_in_place', 3, 256, [at(IN), 600, 0])).toBeUndefined();
    expect(launch('write_bytes', 2, 256, [at(OUT), 300])).toBeUndefined();
  });

  test('shared-memory atomics are ordered among themselves', () => {
    expect(launch('shared_atomics', 1, 256, [at(OUT)])).toBeUndefined();
    const out = new Float32Array(1);
    dev.download(out, OUT);
    expect(out[0]).toBe(256);
  });
});

describe('memcheck', () => {
  test('a read one element past a named buffer names the buffer and the element', () => {
    dev.upload(IN, new Float32Array(31).fill(3));
    dev.annotateNextLaunch([{ name: 'out', offset: OUT, bytes: 32 * 4 }, { name: 'x (input)', offset: IN, bytes: 31 * 4 }]);
    const msg = launch('copy_n', 1, 32, [at(OUT), at(IN), 32]);
    expect(msg).toMatch(/CUDA_ERROR_ILLEGAL_ADDRESS/);
    expect(msg).toMatch(/memcheck: invalid 4-byte global read .* 0 bytes past the end of buffer 'x \(input\)' \(124 bytes, byte offset 124, element 31 of 31\)/);
    expect(msg).toMatch(new RegExp(`by thread \\(31,0,0\\) of block \\(0,0,0\\) \\[warp 0 lane 31\\] in kernel 'copy_n' at \\S*\\.cu:${lineOf('out[i] = in[i]')} `));
    dev.annotateNextLaunch([{ name: 'out', offset: OUT, bytes: 32 * 4 }, { name: 'x (input)', offset: IN, bytes: 31 * 4 }]);
    expect(launch('copy_n', 1, 32, [at(OUT), at(IN), 31])).toBeUndefined();
  });

  test('past the end of the device allocation (no buffer names)', () => {
    expect(launch('copy_n', 1, 64, [at(OUT), at(ARENA - 32 * 4), 64])).toMatch(/4 bytes past the end of a 65536-byte device allocation/);
  });

  test('past the dynamic shared memory the launch asked for', () => {
    expect(launch('smem_past_end', 1, 64, [at(OUT), 64], { smem: 256 })).toMatch(/invalid 4-byte shared-memory read at kiln_smem offset 256, past the 256 bytes of dynamic shared memory/);
    expect(launch('smem_past_end', 1, 64, [at(OUT), 63], { smem: 256 })).toBeUndefined();
  });

  test('a 16-byte vector load at a 4-byte offset is misaligned', () => {
    dev.upload(IN, new Float32Array(64).fill(1));
    expect(launch('load_float4_at', 1, 32, [at(OUT), at(IN), 1])).toMatch(/CUDA_ERROR_MISALIGNED_ADDRESS \(memcheck: misaligned 16-byte global read at 0x[0-9a-f]+ \(needs 16-byte alignment\) by thread \(0,0,0\)/);
    expect(launch('load_float4_at', 1, 32, [at(OUT), at(IN), 4])).toBeUndefined();
  });

  test('a wild pointer fails the launch in the unchecked build too, and the process lives on', () => {
    const msg = launch('wild', 1, 32, [at(OUT), 1 << 30], { plain: true });
    expect(msg).toMatch(/CUDA_ERROR_ILLEGAL_ADDRESS \(illegal address 0x[0-9a-f]+ accessed by thread \(0,0,0\)/);
    expect(launch('copy_n', 1, 32, [at(OUT), at(IN), 32], { plain: true })).toBeUndefined();
  });
});

describe('synccheck', () => {
  test('a barrier in divergent code', () => {
    expect(launch('barrier_in_branch', 1, 256, [at(OUT)])).toContain(`synccheck: __syncthreads at test/emu/emulator.cu:${lineOf('if (threadIdx.x < 128) __syncthreads()')} in block (0,0,0) waits for threads that have exited`);
  });
  test('a shuffle some lanes of its mask never reach', () => {
    expect(launch('shuffle_half_warp', 1, 32, [at(OUT)])).toMatch(/synccheck: thread \(16,0,0\).* exited while lanes of its warp wait for it at __shfl_\*_sync/);
  });
  test('a lane calling a shuffle whose mask does not name it', () => {
    expect(launch('shuffle_not_in_mask', 1, 32, [at(OUT)])).toMatch(/synccheck: thread \(16,0,0\).*with mask 0x0000ffff, which does not name its own lane/);
  });
  test('lanes at two different shuffles', () => {
    expect(launch('shuffle_two_sites', 1, 32, [at(OUT)])).toMatch(/synccheck: divergent warp collectives in warp 0/);
  });
});

describe('warp collectives follow the CUDA definitions', () => {
  // CUDA C++ Programming Guide, warp shuffle functions: lanes are split into segments of `width`.
  const expected = (kind: number, arg: number, w: number) => Array.from({ length: 32 }, (_, l) => {
    const seg = l - (l % w);
    let src = l;
    if (kind === 0) src = seg + (((arg % w) + w) % w);
    if (kind === 1) src = l % w >= arg ? l - arg : l;
    if (kind === 2) src = (l % w) + arg < w ? l + arg : l;
    if (kind === 3) src = (l ^ arg) < seg + w ? l ^ arg : l; // a later segment is out of reach: own value
    return 100 + src;
  });
  test.each([
    [0, 5, 32], [0, 37, 32], [0, 3, 8], [1, 1, 32], [1, 3, 8], [2, 1, 32], [2, 5, 16], [3, 16, 32], [3, 1, 32], [3, 2, 4], [3, 8, 4],
  ])('shuffle kind %i arg %i width %i', (kind, arg, width) => {
    expect(launch('shuffles', 1, 32, [at(OUT), kind, arg, width])).toBeUndefined();
    const out = new Int32Array(32);
    dev.download(out, OUT);
    expect(Array.from(out)).toEqual(expected(kind, arg, width));
  });

  test('ballot, any, all', () => {
    for (const pred of [Array.from({ length: 32 }, (_, i) => (i % 3 === 0 ? 1 : 0)), new Array(32).fill(1), new Array(32).fill(0)]) {
      dev.upload(IN, Int32Array.from(pred));
      expect(launch('votes', 1, 32, [at(OUT), at(IN)])).toBeUndefined();
      const out = new Uint32Array(96);
      dev.download(out, OUT);
      const ballot = pred.reduce((m, p, i) => (p ? (m | (1 << i)) >>> 0 : m), 0);
      expect(Array.from(out.subarray(0, 32))).toEqual(new Array(32).fill(ballot));
      expect(Array.from(out.subarray(32, 64))).toEqual(new Array(32).fill(ballot !== 0 ? 1 : 0));
      expect(Array.from(out.subarray(64))).toEqual(new Array(32).fill(ballot === 0xffffffff ? 1 : 0));
    }
  });
});

describe('tensor-core PTX (PTX ISA fragment layouts)', () => {
  // g = lane / 4, t = lane % 4. m16n8k16 (.bf16/.f16): A register r holds row g + 8(r & 1), columns
  // 2t + 8(r >> 1) and + 1 (low half first); B register r holds rows 2t + 8r and + 1, column g. m16n8k8 .tf32:
  // A register r holds (g + 8(r & 1), t + 4(r >> 1)); B register r holds (t + 4r, g). C/D element i: (g + 8(i >> 1), 2t + (i & 1)).
  const rand = (seed: number) => () => { seed = (seed * 1103515245 + 12345) >>> 0; return (seed >>> 16) % 9 - 4; };
  test.each([['bf16', 0], ['f16', 1], ['tf32', 2]] as const)('mma %s: every lane and element equals A·B + C', (_name, kind) => {
    const K = kind === 2 ? 8 : 16, r = rand(7 + kind);
    const A = Array.from({ length: 16 }, () => Array.from({ length: K }, r));
    const B = Array.from({ length: K }, () => Array.from({ length: 8 }, r));
    const C = Array.from({ length: 16 }, () => Array.from({ length: 8 }, () => r() * 25));
    const bits = (x: number) => (kind === 0 ? f32ToBf16Bits(x) : f32ToF16Bits(x));
    const pack = (lo: number, hi: number) => (bits(lo) | (bits(hi) << 16)) >>> 0;
    const f32bits = (x: number) => new Uint32Array(Float32Array.of(x).buffer)[0];
    const a = new Uint32Array(128), b = new Uint32Array(64), c = new Float32Array(128);
    for (let l = 0; l < 32; l++) {
      const g = l >> 2, t = l & 3;
      for (let q = 0; q < 4; q++) {
        const row = g + 8 * (q & 1);
        a[4 * l + q] = kind === 2 ? f32bits(A[row][t + 4 * (q >> 1)]) : pack(A[row][2 * t + 8 * (q >> 1)], A[row][2 * t + 8 * (q >> 1) + 1]);
        c[4 * l + q] = C[g + 8 * (q >> 1)][2 * t + (q & 1)];
      }
      for (let q = 0; q < 2; q++) b[2 * l + q] = kind === 2 ? f32bits(B[t + 4 * q][g]) : pack(B[2 * t + 8 * q][g], B[2 * t + 8 * q + 1][g]);
    }
    dev.upload(IN, a);
    dev.upload(IN + 512, b);
    dev.upload(IN + 1024, c);
    expect(launch('mma', 1, 32, [at(OUT), at(IN), at(IN + 512), at(IN + 1024), kind])).toBeUndefined();
    const d = new Float32Array(128);
    dev.download(d, OUT);
    for (let l = 0; l < 32; l++)
      for (let i = 0; i < 4; i++) {
        const row = (l >> 2) + 8 * (i >> 1), col = 2 * (l & 3) + (i & 1);
        let want = C[row][col];
        for (let k = 0; k < K; k++) want += A[row][k] * B[k][col];
        expect([l, i, d[4 * l + i]]).toEqual([l, i, want]);
      }
  });

  test.each([[1, false], [2, false], [4, false], [1, true], [2, true], [4, true]] as const)('ldmatrix .x%i trans=%s', (n, trans) => {
    expect(launch(`ldmatrix_x${n}${trans ? '_trans' : ''}`, 1, 32, [at(OUT)])).toBeUndefined();
    const out = new Uint32Array(128);
    dev.download(out, OUT);
    for (let l = 0; l < 32; l++)
      for (let j = 0; j < 4; j++) {
        const r = l >> 2, c = 2 * (l & 3);
        const [lo, hi] = trans ? [64 * j + 8 * c + r, 64 * j + 8 * (c + 1) + r] : [64 * j + 8 * r + c, 64 * j + 8 * r + c + 1];
        expect([l, j, out[4 * l + j]]).toEqual([l, j, j < n ? (lo | (hi << 16)) >>> 0 : 0]);
      }
  });

  test('cp.async: wait_group N completes all but the N newest groups; src-size zero-fills; reading early is caught', () => {
    const g = Float32Array.from({ length: 64 }, (_, i) => i + 0.5);
    dev.upload(IN, g);
    expect(launch('cp_async_groups', 1, 32, [at(OUT), at(IN), 0])).toBeUndefined();
    const out = new Float32Array(64);
    dev.download(out, OUT);
    expect(Array.from(out)).toEqual([...Array.from(g.subarray(0, 32)), ...Array.from({ length: 32 }, (_, t) => (t < 16 ? g[32 + t] : 0))]);
    expect(launch('cp_async_groups', 1, 32, [at(OUT), at(IN), 1])).toMatch(/initcheck: .* reads static __shared__ memory .* which no thread of its block has written/);
  });
});

describe('numerics', () => {
  test('float -> bf16 / f16 rounding is bit-exact with the TypeScript conversions (ties, subnormals, overflow, NaN)', () => {
    const xs = [0, -0, 1, -1, 1 + 2 ** -8, 1 + 3 * 2 ** -9, 1 + 2 ** -11, 1 + 3 * 2 ** -11, 65504, 65519.99, 65520, 1e6, -1e6, 2 ** -14, 2 ** -24, 2 ** -25,
      3 * 2 ** -26, 2 ** -26, 5.96e-8, 6.1e-5, 3.14159, -2.71828, 1e-40, -1e-45, Infinity, -Infinity, NaN, 3.4e38, 1.17549435e-38];
    const n = xs.length;
    dev.upload(IN, Float32Array.from(xs));
    expect(launch('to_half_bits', 1, 64, [at(OUT), at(OUT + 256), at(IN), n])).toBeUndefined();
    const bf = new Uint16Array(n), hf = new Uint16Array(n);
    dev.download(bf, OUT);
    dev.download(hf, OUT + 256);
    const f = Float32Array.from(xs);
    expect(Array.from(bf)).toEqual(Array.from(f, (x) => f32ToBf16Bits(x)));
    expect(Array.from(hf)).toEqual(Array.from(f, (x) => f32ToF16Bits(x)));
  });

  test('a float kernel parameter reads the low half of its slot', () => {
    dev.upload(IN, Float32Array.of(1, 2, 3));
    expect(launch('copy_n', 1, 32, [at(OUT), at(IN), 3])).toBeUndefined();
    void f32Param;
  });
});

describe('KILN_EMU_SCHEDULE=random:<seed>', () => {
  // compile(…, cuda-emu) passes the variable on when it opens the device; here the device is open already.
  const schedule = (v: string) => { process.env.KILN_EMU_SCHEDULE = v; dev.configureEmulator('KILN_EMU_SCHEDULE', v); };
  afterEach(() => schedule(''));

  test('blocks and threads run in a shuffled order (the default is index order)', () => {
    const order = (): number[] => {
      dev.upload(IN, new Int32Array(1));
      expect(launch('run_order', 3, 64, [at(OUT), at(IN)])).toBeUndefined();
      const o = new Int32Array(192);
      dev.download(o, OUT);
      return Array.from(o);
    };
    expect(order()).toEqual(Array.from({ length: 192 }, (_, i) => i));
    schedule('random:7');
    const a = order();
    expect([...a].sort((x, y) => x - y)).toEqual(Array.from({ length: 192 }, (_, i) => i)); // every ticket once
    expect(a).not.toEqual(Array.from({ length: 192 }, (_, i) => i));
    expect(a.slice(0, 64)).not.toEqual(Array.from({ length: 64 }, (_, i) => i)); // not even block 0 in order
  });

  test('racecheck finds the same hazards whatever the order; clean kernels give the same values', () => {
    for (const seed of [1, 2, 3]) {
      schedule(`random:${seed}`);
      // the same pair of accesses, reported in whichever order they ran
      expect(launch('race_war', 1, 256, [at(OUT), 0])).toMatch(/racecheck: (write-after-read|read-after-write) hazard on static __shared__ memory/);
      expect(launch('reduce_twice', 1, 256, [at(OUT), 0])).toMatch(/racecheck: (write-after-read|read-after-write) hazard/);
      expect(launch('reduce_twice', 1, 256, [at(OUT), 1])).toBeUndefined();
      const out = new Float32Array(4);
      dev.download(out, OUT);
      expect(Array.from(out)).toEqual([(255 * 256) / 2, 256, 255, 512]);
      expect(launch('indices', 4, [4, 2, 3], [at(OUT)])).toBeUndefined();
      const idx = new Int32Array(96);
      dev.download(idx, OUT);
      expect(Array.from(idx)).toEqual(Array.from({ length: 96 }, (_, i) => 1000 * Math.floor(i / 24) + (i % 24)));
    }
  });
});
