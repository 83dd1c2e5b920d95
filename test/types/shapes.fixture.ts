/** Type-level shape checks, compiled by `tsc --noEmit -p test/types` (test/dsl/types.test.ts). Every
 * `@ts-expect-error` must fire: an unused one is itself an error, so a weakened rule fails the test. */
import { input, param, type Tensor } from '../../compiler/index';

const a = input('a', [2, 3]);
const b = input('b', [3]);
const c = input('c', [4]);
const col = input('col', [2, 1]);
const w = param('w', [3, 5]);
const bad = param('bad', [4, 5]);

// broadcasting: result shapes are computed in the type
const s1: Tensor<[2, 3], 'f32'> = a.add(b);
const s2: Tensor<[2, 3], 'f32'> = col.mul(b);
const s3: Tensor<readonly [2, 3], 'f32'> = a.mul(2);
// @ts-expect-error [2,3] + [4] does not broadcast
a.add(c);
// @ts-expect-error [2,1] - [4] does not broadcast with [2,3]'s rows either way ([2,1] vs [4] is fine, so use [3] vs [4])
b.sub(c);
// @ts-expect-error comparisons check shapes too
a.lt(c);

// matmul: inner dims must agree; the result is [M, N]
const m1: Tensor<[2, 5], 'f32'> = a.matmul(w);
// @ts-expect-error inner dims 3 and 4 differ
a.matmul(bad);
const batched = input('x', [7, 2, 3]);
const m2: Tensor<[7, 2, 5], 'f32'> = batched.matmul(w);
// @ts-expect-error a wrong result shape is a type error too
const m3: Tensor<[2, 4], 'f32'> = a.matmul(w);

// dtypes are part of the type
const ints = input('i', [2, 3], 'i32');
// @ts-expect-error f32 + i32
a.add(ints);
const asBool: Tensor<readonly [2, 3], 'bool'> = a.gt(0);

// literal-typed tensors are still Tensors (covariance), and number dims turn the checks off
const generic: Tensor = a;
const dyn = input('d', [2, 3] as number[]);
const d1 = dyn.add(c);

// reshape keeps the literal target shape
const r: Tensor<readonly [3, 2], 'f32'> = a.reshape([3, 2]);

export { s1, s2, s3, m1, m2, m3, asBool, generic, d1, r };
