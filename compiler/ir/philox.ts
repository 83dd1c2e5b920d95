/** Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3"), the counter-based generator
 * behind `rand`, parameter initialization and noise. Every back end computes the same bits: element `i` of
 * stream `s` under key `seed` takes lane i%4 of philox([floor(i/4), s, 0, 0], [seed, 0]); a uniform float is
 * its top 24 bits times 2^-24, so it is exact in f32 and lies in [0, 1). */
// Globals are bound once per module: every global lookup is slow inside jest's vm contexts.
const M = Math;

const M0 = 0xd2511f53, M1 = 0xcd9e8d57, W0 = 0x9e3779b9, W1 = 0xbb67ae85;

/** High 32 bits of the 64-bit product of two uint32s, exactly, from 16-bit pieces. */
function mulhi(a: number, b: number): number {
  const a0 = a & 0xffff, a1 = a >>> 16, b0 = b & 0xffff, b1 = b >>> 16;
  const p01 = a0 * b1, p10 = a1 * b0;
  const mid = ((a0 * b0) >>> 16) + (p01 & 0xffff) + (p10 & 0xffff);
  return (a1 * b1 + M.floor(p01 / 65536) + M.floor(p10 / 65536) + M.floor(mid / 65536)) >>> 0;
}

/** The four 32-bit outputs of one Philox4x32-10 block. */
export function philox4x32(c0: number, c1: number, c2: number, c3: number, k0: number, k1: number): [number, number, number, number] {
  for (let r = 0; r < 10; r++) {
    if (r > 0) { k0 = (k0 + W0) >>> 0; k1 = (k1 + W1) >>> 0; }
    const hi0 = mulhi(M0, c0), lo0 = M.imul(M0, c0) >>> 0;
    const hi1 = mulhi(M1, c2), lo1 = M.imul(M1, c2) >>> 0;
    [c0, c1, c2, c3] = [(hi1 ^ c1 ^ k0) >>> 0, lo1, (hi0 ^ c3 ^ k1) >>> 0, lo0];
  }
  return [c0, c1, c2, c3];
}

/** Uniform [0,1) values for elements 0..n-1 of stream `stream` under `seed`. */
export function uniformFill(n: number, seed: number, stream: number): Float64Array {
  const out = new Float64Array(n);
  for (let b = 0; b * 4 < n; b++) {
    const r = philox4x32(b >>> 0, stream >>> 0, 0, 0, seed >>> 0, 0);
    for (let l = 0; l < 4 && b * 4 + l < n; l++) out[b * 4 + l] = (r[l] >>> 8) * 2 ** -24;
  }
  return out;
}

/** Standard normal values by Box-Muller over streams (2s, 2s+1): z = sqrt(-2 ln(1-u1)) cos(2 pi u2),
 * the same formula `randn` builds in the DSL. */
export function normalFill(n: number, seed: number, stream = 0): Float64Array {
  const u1 = uniformFill(n, seed, 2 * stream), u2 = uniformFill(n, seed, 2 * stream + 1);
  return u1.map((u, i) => M.sqrt(-2 * M.log(1 - u)) * M.cos(2 * M.PI * u2[i]));
}
