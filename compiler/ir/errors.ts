import { fmt, type Shape } from './shape';
import type { DType } from './dtype';

/** A shape or dtype rule failed at graph-build time. The message names the op, every operand's shape and
 * dtype, and the caller's file:line. */
export class KilnShapeError extends Error {
  constructor(readonly op: string, readonly shapes: readonly Shape[], readonly dtypes: readonly DType[], readonly reason: string, readonly where: string) {
    const operands = shapes.map((s, i) => `${fmt(s)}:${dtypes[i]}`).join(' and ');
    super(`${op}: ${reason} (operands ${operands || 'none'}) at ${where}`);
    this.name = 'KilnShapeError';
  }
}

/** A kernel produced NaN or ±Inf while a program ran with the non-finite check on (`KILN_CHECK_NANS=1` or
 * `compile(g, { checkNans: true })`). Names the first such kernel, the ops fused into it with their source
 * lines, the buffer and the first bad element. */
export class KilnNonFiniteError extends Error {
  constructor(readonly kernelIndex: number, readonly kernel: string, readonly ops: readonly string[], readonly buffer: string, readonly element: number, readonly value: number) {
    super(`kernel ${kernelIndex} '${kernel}' produced ${value} at element ${element} of ${buffer}; it fuses:\n${ops.map((o) => `  ${o}`).join('\n')}`);
    this.name = 'KilnNonFiniteError';
  }
}
