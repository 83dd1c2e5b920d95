/** Shapes are readonly tuples of non-negative integers; the empty tuple is a scalar. */
// Globals are bound once per module: every global lookup is slow inside jest's vm contexts.
const M = Math;
export type Shape = readonly number[];

export const numel = (s: Shape): number => s.reduce((a, b) => a * b, 1);

export const fmt = (s: Shape): string => `[${s.join(',')}]`;

/** Row-major strides of a contiguous tensor. */
export function stridesOf(s: Shape): number[] {
  const st = new Array<number>(s.length);
  let acc = 1;
  for (let i = s.length - 1; i >= 0; i--) { st[i] = acc; acc *= s[i]; }
  return st;
}

/** NumPy broadcasting of two shapes (right-aligned, equal or 1); null when they do not broadcast. */
export function broadcastShapes(a: Shape, b: Shape): number[] | null {
  const n = M.max(a.length, b.length);
  const out = new Array<number>(n);
  for (let i = 0; i < n; i++) {
    const x = a[a.length - n + i] ?? 1, y = b[b.length - n + i] ?? 1;
    if (x === y || y === 1) out[i] = x;
    else if (x === 1) out[i] = y;
    else return null;
  }
  return out;
}

export const sameShape = (a: Shape, b: Shape): boolean => a.length === b.length && a.every((d, i) => d === b[i]);

/** Normalizes a possibly negative axis against rank `r`; throws a plain message (callers wrap it). */
export function normAxis(axis: number, r: number): number {
  const a = axis < 0 ? axis + r : axis;
  if (!Number.isInteger(a) || a < 0 || a >= r) throw new Error(`axis ${axis} is out of range for rank ${r}`);
  return a;
}

export function isValidShape(s: Shape): boolean {
  return s.every((d) => Number.isInteger(d) && d >= 0);
}
