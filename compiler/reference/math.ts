/** Float64 special functions for the oracle. */
// Globals are bound once per module: every global lookup is slow inside jest's vm contexts.
const M = Math;
const M_isNaN = Number.isNaN;

/** erf to ~1e-15: the all-positive series erf(x) = 2/sqrt(pi) e^{-x^2} sum_n 2^n x^{2n+1} / (2n+1)!!,
 * which has no cancellation; beyond |x| = 6 erf is +-1 in float64. */
export function erf(x: number): number {
  if (M_isNaN(x)) return NaN;
  const ax = M.abs(x);
  if (ax > 6) return M.sign(x);
  let term = ax, sum = ax;
  for (let n = 1; n < 200 && term > 1e-17 * sum; n++) {
    term *= (2 * ax * ax) / (2 * n + 1);
    sum += term;
  }
  return M.sign(x) * (2 / M.sqrt(M.PI)) * M.exp(-ax * ax) * sum;
}

export const sigmoid = (x: number): number => (x >= 0 ? 1 / (1 + M.exp(-x)) : M.exp(x) / (1 + M.exp(x)));

/** pow as C and PyTorch define it (IEEE 754): JavaScript's Math.pow differs only in pow(1, y) and
 * pow(-1, ±Inf), which are 1 there and NaN in JavaScript. */
export const pow = (a: number, b: number): number => (a === 1 || (a === -1 && (b === Infinity || b === -Infinity)) ? 1 : M.pow(a, b));
