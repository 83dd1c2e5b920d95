/** Shared by the cuda-emu-*.test.ts files: builds a driver from test/kernels/cuda-emu/*.cu for the CUDA
 * emulator (runtime/cuda-emu.ts), lays named buffers out in the device arena with NaN-filled gaps between
 * them (memcheck bounds each launch by those buffers), launches, and converts to and from bf16 / f16 bits. */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { compileCudaEmu, openEmulatedDevice } from '../../runtime/cuda-emu';
import type { CudaDevice, CudaModule } from '../../runtime/cuda';
import { ROOT } from './harness';

const DRIVERS = path.join(ROOT, 'test/kernels/cuda-emu');
const ARENA = 8 << 20;
const GAP = 4096; // between buffers: an overrun lands in no buffer (memcheck) or reads NaN (unchecked)

export type Dtype = 'f32' | 'bf16' | 'f16';

let device: Promise<CudaDevice> | undefined;

export interface DevBuf { readonly name: string; readonly offset: number; readonly bytes: number; readonly ptr: bigint }
type Param = DevBuf | bigint | number;

/** One driver module on the emulated device, with or without memcheck / racecheck / initcheck. */
export class EmuDriver {
  private bufs: DevBuf[] = [];
  private top = 0;

  private constructor(readonly dev: CudaDevice, private readonly mod: CudaModule, readonly checks: boolean) {}

  static async load(name: string, checks: boolean): Promise<EmuDriver> {
    const source = readFileSync(path.join(DRIVERS, `${name}.cu`), 'utf8');
    const compiled = await compileCudaEmu(source, { checks, includeDirs: [DRIVERS] });
    device ??= openEmulatedDevice();
    const dev = await device;
    dev.allocArena(ARENA);
    return new EmuDriver(dev, dev.loadModule(compiled), checks);
  }

  /** Forgets every buffer and fills the arena with NaN bytes (0xff), so stale or unwritten data shows. */
  reset(): void {
    this.bufs = [];
    this.top = GAP;
    this.dev.upload(0, new Uint8Array(ARENA).fill(0xff));
  }

  /** A buffer holding `data` (uploaded), or `bytes` of NaN bytes. */
  buf(name: string, data: ArrayBufferView | number): DevBuf {
    const bytes = typeof data === 'number' ? data : data.byteLength;
    const offset = this.top;
    this.top = Math.ceil((offset + bytes + GAP) / 256) * 256;
    if (this.top > ARENA) throw new Error(`emu-harness: buffer '${name}' does not fit the ${ARENA}-byte arena`);
    if (typeof data !== 'number') this.dev.upload(offset, data);
    const b = { name, offset, bytes, ptr: this.dev.ptr(offset) };
    this.bufs.push(b);
    return b;
  }

  /** A buffer of `n` int32 zeros: the per-element epilogue call counters. */
  counter(name: string, n: number): DevBuf {
    return this.buf(name, new Int32Array(n));
  }

  /** Launches `kernel` with memcheck bounded by the buffers made since reset(), and waits for it. */
  launch(kernel: string, grid: readonly [number, number, number], block: number, smem: number, params: readonly Param[]): void {
    this.dev.annotateNextLaunch(this.bufs);
    const slots = params.map((p) => (typeof p === 'object' ? p.ptr : p));
    this.dev.launch(this.mod.kernel(kernel), grid, [block, 1, 1], smem, slots);
    this.dev.sync();
  }

  f32(b: DevBuf): Float64Array {
    const out = new Float32Array(b.bytes / 4);
    this.dev.download(out, b.offset);
    return Float64Array.from(out);
  }

  i32(b: DevBuf): Int32Array {
    const out = new Int32Array(b.bytes / 4);
    this.dev.download(out, b.offset);
    return out;
  }

  /** Throws unless every element's epilogue ran exactly once (the driver counts with atomicAdd). */
  expectOnce(b: DevBuf): void {
    const c = this.i32(b);
    const bad = c.findIndex((x) => x !== 1);
    if (bad >= 0) throw new Error(`${b.name}: element ${bad} was stored ${c[bad]} times (expected exactly once)`);
  }
}

// ---- bf16 / f16: round to nearest even, as kernels/cuda/emu/include/kiln_emu_half.h and the device ----
const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

export function bf16Bits(x: number): number {
  f32[0] = x;
  const u = u32[0];
  if ((u & 0x7fffffff) > 0x7f800000) return ((u >>> 16) | 0x40) & 0xffff;
  return ((u + 0x7fff + ((u >>> 16) & 1)) >>> 16) & 0xffff;
}

export function bf16Value(h: number): number {
  u32[0] = (h & 0xffff) << 16;
  return f32[0];
}

export function f16Bits(x: number): number {
  f32[0] = x;
  const u = u32[0];
  const sign = (u >>> 16) & 0x8000;
  const a = u & 0x7fffffff;
  if (a > 0x7f800000) return sign | 0x7e00 | ((a >>> 13) & 0x3ff);
  if (a >= 0x477ff000) return sign | 0x7c00;
  if (a < 0x38800000) {
    if (a < 0x33000000) return sign;
    const m = (a & 0x7fffff) | 0x800000;
    const shift = 126 - (a >>> 23);
    const r = m >>> shift;
    const rem = m & ((1 << shift) - 1);
    const half = 1 << (shift - 1);
    return sign | (r + (rem > half || (rem === half && (r & 1)) ? 1 : 0));
  }
  const r = a - 0x38000000;
  return sign | ((r + 0xfff + ((r >>> 13) & 1)) >>> 13);
}

export function f16Value(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const e = (h >>> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return sign * m * 2 ** -24;
  if (e === 31) return m ? NaN : sign * Infinity;
  return sign * (1 + m / 1024) * 2 ** (e - 15);
}

/** `x` rounded to `dt` (the values the kernel sees), and the bytes to upload. */
export function quantize(x: Float64Array, dt: Dtype): { values: Float64Array; bytes: Float32Array | Uint16Array } {
  if (dt === 'f32') {
    const bytes = Float32Array.from(x);
    return { values: Float64Array.from(bytes), bytes };
  }
  const bits = dt === 'bf16' ? bf16Bits : f16Bits;
  const value = dt === 'bf16' ? bf16Value : f16Value;
  const bytes = Uint16Array.from(x, bits);
  return { values: Float64Array.from(bytes, value), bytes };
}
