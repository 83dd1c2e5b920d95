import { describe, expect, it } from '@jest/globals';
import {
  bf16ArrayToF32,
  bf16BitsToF32,
  f16ArrayToF32,
  f16BitsToF32,
  f32ArrayToBf16,
  f32ArrayToF16,
  f32ToBf16Bits,
  f32ToF16Bits,
} from '../../models/io/halfFloat';

const isF16NaN = (h: number) => (h & 0x7c00) === 0x7c00 && (h & 0x3ff) !== 0;
const f32 = (bits: number) => new Float32Array(new Uint32Array([bits]).buffer)[0]!;

describe('f16', () => {
  it('round-trips every one of the 65536 bit patterns (NaNs stay NaN)', () => {
    for (let h = 0; h < 65536; h++) {
      const back = f32ToF16Bits(f16BitsToF32(h));
      if (isF16NaN(h)) expect(isF16NaN(back)).toBe(true);
      else if (back !== h) throw new Error(`0x${h.toString(16)} → ${f16BitsToF32(h)} → 0x${back.toString(16)}`);
    }
  });

  it('decodes the landmark values', () => {
    expect(f16BitsToF32(0x3c00)).toBe(1);
    expect(f16BitsToF32(0xc000)).toBe(-2);
    expect(f16BitsToF32(0x7bff)).toBe(65504);
    expect(f16BitsToF32(0x0400)).toBe(2 ** -14); // smallest normal
    expect(f16BitsToF32(0x0001)).toBe(2 ** -24); // smallest subnormal
    expect(f16BitsToF32(0x03ff)).toBe(1023 * 2 ** -24); // largest subnormal
    expect(f16BitsToF32(0x7c00)).toBe(Infinity);
    expect(f16BitsToF32(0xfc00)).toBe(-Infinity);
    expect(Object.is(f16BitsToF32(0x8000), -0)).toBe(true);
    expect(f16BitsToF32(0x7e00)).toBeNaN();
  });

  it('rounds ties to even, in normals and subnormals', () => {
    expect(f32ToF16Bits(1 + 2 ** -11)).toBe(0x3c00); // halfway 1 ↔ 1+2^-10: to even (1)
    expect(f32ToF16Bits(1 + 3 * 2 ** -11)).toBe(0x3c02); // halfway 1+2^-10 ↔ 1+2^-9: to even (up)
    expect(f32ToF16Bits(1 + 2 ** -11 + 2 ** -20)).toBe(0x3c01); // just above the tie
    expect(f32ToF16Bits(2 ** -25)).toBe(0x0000); // half the smallest subnormal: to even 0
    expect(f32ToF16Bits(2 ** -25 * (1 + 2 ** -20))).toBe(0x0001);
    expect(f32ToF16Bits(3 * 2 ** -25)).toBe(0x0002); // 1.5 subnormal units: to even 2
    expect(f32ToF16Bits(5 * 2 ** -25)).toBe(0x0002); // 2.5 units: to even 2
    expect(f32ToF16Bits(2 ** -14 - 2 ** -26)).toBe(0x0400); // rounds up across into the smallest normal
    expect(f32ToF16Bits(f32(0x00000001))).toBe(0x0000); // float32 subnormal underflows
    expect(Object.is(f16BitsToF32(f32ToF16Bits(-1e-30)), -0)).toBe(true);
  });

  it('overflows to Inf at the 65520 midpoint, keeps Inf and NaN', () => {
    expect(f32ToF16Bits(65504)).toBe(0x7bff);
    expect(f32ToF16Bits(65519.99)).toBe(0x7bff);
    expect(f32ToF16Bits(65520)).toBe(0x7c00); // tie between 65504 (odd) and 2^16 (even, Inf)
    expect(f32ToF16Bits(-1e6)).toBe(0xfc00);
    expect(f32ToF16Bits(Infinity)).toBe(0x7c00);
    expect(f32ToF16Bits(-Infinity)).toBe(0xfc00);
    expect(isF16NaN(f32ToF16Bits(NaN))).toBe(true);
    expect(isF16NaN(f32ToF16Bits(f32(0x7f800001)))).toBe(true); // payload only in low bits stays NaN
  });

  it('array helpers agree with the scalar ones', () => {
    const xs = new Float32Array([0, -0, 1, -2.5, 1e-6, 70000, NaN, Infinity]);
    const h = f32ArrayToF16(xs);
    expect(Array.from(h)).toEqual(Array.from(xs, f32ToF16Bits));
    expect(Array.from(f16ArrayToF32(h))).toEqual(Array.from(h, f16BitsToF32));
  });
});

describe('bf16', () => {
  it('round-trips every non-NaN bit pattern', () => {
    for (let h = 0; h < 65536; h++) {
      const back = f32ToBf16Bits(bf16BitsToF32(h));
      if ((h & 0x7f80) === 0x7f80 && (h & 0x7f) !== 0) expect(bf16BitsToF32(back)).toBeNaN();
      else if (back !== h) throw new Error(`0x${h.toString(16)} → 0x${back.toString(16)}`);
    }
  });

  it('rounds ties to even and handles subnormals, Inf, NaN', () => {
    expect(f32ToBf16Bits(f32(0x3f808000))).toBe(0x3f80); // tie, even stays
    expect(f32ToBf16Bits(f32(0x3f818000))).toBe(0x3f82); // tie, odd rounds up
    expect(f32ToBf16Bits(f32(0x3f808001))).toBe(0x3f81);
    expect(f32ToBf16Bits(f32(0x00018000))).toBe(0x0002); // float32 subnormal tie → even
    expect(f32ToBf16Bits(f32(0x7f7fffff))).toBe(0x7f80); // max float32 rounds to Inf
    expect(f32ToBf16Bits(-Infinity)).toBe(0xff80);
    expect(bf16BitsToF32(f32ToBf16Bits(f32(0x7f800001)))).toBeNaN(); // a NaN that would truncate to Inf
    expect(bf16BitsToF32(0x3fc0)).toBe(1.5);
    expect(Array.from(bf16ArrayToF32(f32ArrayToBf16(new Float32Array([1, -3, 0.15625]))))).toEqual([1, -3, 0.15625]);
  });
});
