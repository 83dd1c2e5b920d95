/** Element types Kiln tensors can hold. The float64 reference evaluator computes every float type exactly in
 * float64; only the compiled back ends round to the declared width. */
// Globals are bound once per module: every global lookup is slow inside jest's vm contexts.
const M = Math;
const M_isFinite = Number.isFinite;
const M_isNaN = Number.isNaN;
export const DTYPES = ['f32', 'f16', 'bf16', 'i32', 'bool'] as const;
export type DType = (typeof DTYPES)[number];
export type FloatDType = 'f32' | 'f16' | 'bf16';

export const isFloat = (d: DType): d is FloatDType => d === 'f32' || d === 'f16' || d === 'bf16';

/** Bytes per element in device memory (bool is stored as one byte). */
export const byteSize: Readonly<Record<DType, number>> = { f32: 4, f16: 2, bf16: 2, i32: 4, bool: 1 };

/** Casts a float64 value to what a tensor of dtype `d` holds, in the float64 oracle's sense: integers
 * truncate toward zero and wrap to 32 bits, booleans become 0 or 1, floats are kept exact. */
export function castValue(v: number, d: DType): number {
  if (d === 'i32') return M_isFinite(v) ? M.trunc(v) | 0 : 0;
  if (d === 'bool') return v !== 0 && !M_isNaN(v) ? 1 : 0;
  return v;
}
