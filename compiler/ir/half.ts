/**
 * IEEE binary16 (f16) and bfloat16 (bf16) conversions to and from float32.
 *
 * Half values travel as their raw bit patterns in a Uint16Array (Node 20 has no Float16Array).
 * float32 → half rounds to nearest, ties to even, exactly as IEEE 754 conversion does (and as
 * numpy's `astype(float16)` and torch's `.to(torch.bfloat16)` do):
 * - f16: values ≥ 65520 (the midpoint between 65504 and 2^16) become ±Inf; values below 2^-14 become
 *   subnormals; values ≤ 2^-25 (half the smallest subnormal, a tie that rounds to the even 0) become ±0.
 * - NaN stays NaN (quiet bit set, high payload bits kept); ±Inf and ±0 keep their sign.
 * half → float32 is exact (every half value is a float32 value).
 */

const f32Scratch = new Float32Array(1);
const u32Scratch = new Uint32Array(f32Scratch.buffer);

/** float32 bits of x (x is first rounded to float32 like any Float32Array store). */
function bitsOf(x: number): number {
  f32Scratch[0] = x;
  return u32Scratch[0]!;
}

function fromBits(bits: number): number {
  u32Scratch[0] = bits >>> 0;
  return f32Scratch[0]!;
}

/** Round x to float32, then to the nearest f16 (ties to even); returns the 16-bit pattern. */
export function f32ToF16Bits(x: number): number {
  const b = bitsOf(x);
  const sign = (b >>> 16) & 0x8000;
  const exp = (b >>> 23) & 0xff;
  const mant = b & 0x7fffff;
  if (exp === 0xff) return mant !== 0 ? sign | 0x7e00 | (mant >>> 13) : sign | 0x7c00;
  const e = exp - 127 + 15; // biased f16 exponent
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    // Subnormal (or zero) result: f16 units of 2^-24. full = mantissa with the implicit bit.
    const shift = 14 - e;
    if (shift > 24) return sign; // below half the smallest subnormal (float32 subnormals land here too)
    const full = mant | 0x800000;
    let q = full >>> shift;
    const rem = full & ((1 << shift) - 1);
    const half = 1 << (shift - 1);
    if (rem > half || (rem === half && (q & 1) !== 0)) q++;
    return sign | q; // q may carry into 0x400, the smallest normal: that is the correct result
  }
  let q = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && (q & 1) !== 0)) q++; // a carry into the exponent (even to Inf) is correct
  return sign | q;
}

/** Exact float32 value of a 16-bit f16 pattern. */
export function f16BitsToF32(h: number): number {
  const sign = (h & 0x8000) << 16;
  const exp = (h >>> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0) {
    const v = mant * 2 ** -24; // exact
    return sign !== 0 ? -v : v;
  }
  if (exp === 0x1f) return fromBits(sign | 0x7f800000 | (mant << 13));
  return fromBits(sign | ((exp + 112) << 23) | (mant << 13));
}

/** Round x to float32, then to the nearest bf16 (ties to even); returns the 16-bit pattern. */
export function f32ToBf16Bits(x: number): number {
  const b = bitsOf(x);
  if ((b & 0x7f800000) === 0x7f800000 && (b & 0x7fffff) !== 0) return (b >>> 16) | 0x40; // quiet NaN
  const bias = 0x7fff + ((b >>> 16) & 1);
  return ((b + bias) >>> 16) & 0xffff;
}

/** Exact float32 value of a 16-bit bf16 pattern. */
export function bf16BitsToF32(h: number): number {
  return fromBits((h & 0xffff) << 16);
}

let f16Table: Float32Array | undefined;

/** All 65536 f16 values, built once on first use (256 KiB). */
function f16Lookup(): Float32Array {
  if (f16Table === undefined) {
    f16Table = new Float32Array(65536);
    for (let h = 0; h < 65536; h++) f16Table[h] = f16BitsToF32(h);
  }
  return f16Table;
}

export function f32ArrayToF16(src: ArrayLike<number>): Uint16Array {
  const out = new Uint16Array(src.length);
  for (let i = 0; i < src.length; i++) out[i] = f32ToF16Bits(src[i]!);
  return out;
}

export function f16ArrayToF32(src: Uint16Array): Float32Array {
  const table = f16Lookup();
  const out = new Float32Array(src.length);
  for (let i = 0; i < src.length; i++) out[i] = table[src[i]!]!;
  return out;
}

export function f32ArrayToBf16(src: ArrayLike<number>): Uint16Array {
  const out = new Uint16Array(src.length);
  for (let i = 0; i < src.length; i++) out[i] = f32ToBf16Bits(src[i]!);
  return out;
}

export function bf16ArrayToF32(src: Uint16Array): Float32Array {
  const out = new Float32Array(src.length);
  const bits = new Uint32Array(out.buffer);
  for (let i = 0; i < src.length; i++) bits[i] = src[i]! << 16;
  return out;
}

/** Host values for a 16-bit float buffer: a Uint16Array is taken as raw bits (what getParam returns), any other
 * array of numbers is rounded (to nearest even) to `dtype`. */
export function toHalfBits(src: ArrayLike<number>, dtype: 'f16' | 'bf16'): Uint16Array {
  if (src instanceof Uint16Array) return src;
  return dtype === 'f16' ? f32ArrayToF16(src) : f32ArrayToBf16(src);
}

/** The float32 values of raw f16 / bf16 words. */
export const halfToF32 = (src: Uint16Array, dtype: 'f16' | 'bf16'): Float32Array => (dtype === 'f16' ? f16ArrayToF32(src) : bf16ArrayToF32(src));
