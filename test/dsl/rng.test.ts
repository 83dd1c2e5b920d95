import { Rng, input, evaluate } from '../../compiler/index';
import { philox4x32, uniformFill, normalFill } from '../../compiler/ir/philox';

describe('Philox4x32-10 counter-based RNG', () => {
  test('Random123 known-answer vectors', () => {
    expect(philox4x32(0, 0, 0, 0, 0, 0)).toEqual([0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8]);
    expect(philox4x32(0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff)).toEqual([0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd]);
    expect(philox4x32(0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344, 0xa4093822, 0x299f31d0)).toEqual([0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1]);
  });

  test('same seed and stream give the same values; streams and seeds differ', () => {
    const seed = input('seed', [], 'i32');
    const rng = new Rng(seed);
    const u = rng.uniform([1000]), v = rng.uniform([1000]);
    const r1 = evaluate({ outputs: { u, v } }, { seed: [42] });
    const r2 = evaluate({ outputs: { u, v } }, { seed: [42] });
    const r3 = evaluate({ outputs: { u } }, { seed: [43] });
    expect(r1.outputs.u.data).toEqual(r2.outputs.u.data);
    expect(r1.outputs.u.data).not.toEqual(r1.outputs.v.data);
    expect(r1.outputs.u.data).not.toEqual(r3.outputs.u.data);
    expect(r1.outputs.u.data).toEqual(uniformFill(1000, 42, 0));
  });

  test('uniform moments and range; normal moments', () => {
    const u = uniformFill(100000, 7, 0);
    const mean = u.reduce((a, b) => a + b, 0) / u.length;
    expect(Math.min(...u)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...u)).toBeLessThan(1);
    expect(Math.abs(mean - 0.5)).toBeLessThan(0.005);
    const z = normalFill(100000, 7);
    const zm = z.reduce((a, b) => a + b, 0) / z.length;
    const zv = z.reduce((a, b) => a + (b - zm) ** 2, 0) / z.length;
    expect(Math.abs(zm)).toBeLessThan(0.01);
    expect(Math.abs(zv - 1)).toBeLessThan(0.02);
  });

  test('Rng.normal in the graph equals the host normalFill (same formula and streams)', () => {
    const z = new Rng(5).normal([64]);
    expect(Array.from(evaluate({ outputs: { z } }).outputs.z.data)).toEqual(Array.from(normalFill(64, 5, 0)).map((v) => expect.closeTo(v, 12)));
  });
});
