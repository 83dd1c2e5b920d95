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
