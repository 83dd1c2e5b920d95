/** Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3"), the counter-based generator
 * behind `rand`, parameter initialization and noise. Every back end computes the same bits: element `i` of
 * stream `s` under key `seed` takes lane i%4 of philox([floor(i/4), s, 0, 0], [seed, 0]); a uniform float is
 * its top 24 bits times 2^-24, so it is exact in f32 and lies in [0, 1). */
// Globals are bound once per module: every global lookup is slow inside jest's vm contexts.
const M = Math;

const M0 = 0xd2511f53, M1 = 0xcd9e8d57, W0 = 0x9e3779b9, W1 = 0xbb67ae85;

/** High 32 bits of the 64-bit product of two uint32s, exactly: a·b = 2^16·(a·b1) + a·b0 with both products below
 * 2^48 (exact in a double), so hi = floor((a·b1 + floor(a·b0 / 2^16)) / 2^16) (the dropped low 16 bits of a·b0 cannot
 * carry into bit 32). */
function mulhi(a: number, b: number): number {
  return M.floor((a * (b >>> 16) + M.floor(a * (b & 0xffff) / 65536)) / 65536);
}

/** The four 32-bit outputs of one Philox4x32-10 block. */
export function philox4x32(c0: number, c1: number, c2: number, c3: number, k0: number, k1: number): [number, number, number, number] {
  philoxInto(BLOCK, c0, c1, c2, c3, k0, k1);
  return [BLOCK[0], BLOCK[1], BLOCK[2], BLOCK[3]];
}

const BLOCK = new Uint32Array(4);

/** One Philox4x32-10 block into `out` (no allocation: the fills run it once per four values). */
function philoxInto(out: Uint32Array, c0: number, c1: number, c2: number, c3: number, k0: number, k1: number): void {
  for (let r = 0; r < 10; r++) {
    if (r > 0) { k0 = (k0 + W0) >>> 0; k1 = (k1 + W1) >>> 0; }
    const hi0 = mulhi(M0, c0), lo0 = M.imul(M0, c0) >>> 0;
    const hi1 = mulhi(M1, c2), lo1 = M.imul(M1, c2) >>> 0;
    const n0 = (hi1 ^ c1 ^ k0) >>> 0, n2 = (hi0 ^ c3 ^ k1) >>> 0;
    c0 = n0; c1 = lo1; c2 = n2; c3 = lo0;
  }
  out[0] = c0; out[1] = c1; out[2] = c2; out[3] = c3;
}

/** Uniform [0,1) values for elements 0..n-1 of stream `stream` under `seed`. */
export function uniformFill(n: number, seed: number, stream: number): Float64Array {
  const out = new Float64Array(n), r = new Uint32Array(4);
  for (let b = 0; b * 4 < n; b++) {
    philoxInto(r, b >>> 0, stream >>> 0, 0, 0, seed >>> 0, 0);
    const i = b * 4, m = n - i < 4 ? n - i : 4;
    for (let l = 0; l < m; l++) out[i + l] = (r[l] >>> 8) * 2 ** -24;
  }
  return out;
}

/** Standard normal values by Box-Muller over streams (2s, 2s+1): z = sqrt(-2 ln(1-u1)) cos(2 pi u2),
 * the same formula `randn` builds in the DSL. */
export function normalFill(n: number, seed: number, stream = 0): Float64Array {
  const u1 = uniformFill(n, seed, 2 * stream), u2 = uniformFill(n, seed, 2 * stream + 1);
  for (let i = 0; i < n; i++) u1[i] = M.sqrt(-2 * M.log(1 - u1[i])) * M.cos(2 * M.PI * u2[i]);
  return u1;
}
