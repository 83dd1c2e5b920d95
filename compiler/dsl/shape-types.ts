/** Type-level mirrors of the runtime shape rules in compiler/ops (those stay authoritative). Where both shapes
 * are literal tuples, a mismatch is a type error; `number` dims and `number[]` shapes turn the check off.
 * Each rule here is exercised by test/types/*.fixture.ts beside the runtime rule's test. */
import type { Shape } from '../ir/shape';

/** Carried by a parameter type when the shapes cannot work: the message shows up in tsc's error. */
export interface ShapeError<Msg extends string> { readonly __kilnShapeError: Msg }

type IsLit<N extends number> = number extends N ? false : true;
type IsTuple<S extends Shape> = number extends S['length'] ? false : true;

type BDim<A extends number, B extends number> =
  IsLit<A> extends false ? number : IsLit<B> extends false ? number :
  A extends B ? A : A extends 1 ? B : B extends 1 ? A : never;

type EqDim<A extends number, B extends number> =
  IsLit<A> extends false ? number : IsLit<B> extends false ? number : A extends B ? A : never;

type Err = ShapeError<string>;

/** NumPy broadcasting of two shapes, or a ShapeError. */
export type Broadcast<A extends Shape, B extends Shape> =
  IsTuple<A> extends false ? Shape : IsTuple<B> extends false ? Shape : BroadcastT<A, B>;
type BroadcastT<A extends Shape, B extends Shape> =
  A extends readonly [] ? [...B] : B extends readonly [] ? [...A] :
  A extends readonly [...infer AH extends number[], infer AL extends number] ?
    B extends readonly [...infer BH extends number[], infer BL extends number] ?
      [BDim<AL, BL>] extends [never] ? ShapeError<`cannot broadcast dim ${AL} with ${BL}`> :
      BroadcastT<AH, BH> extends infer R ? R extends Err ? R : R extends number[] ? [...R, BDim<AL, BL>] : never : never
    : never : never;

/** `unknown` when the operands fit; otherwise the ShapeError, intersected into the parameter type. */
export type Check<R> = R extends Err ? R : unknown;
export type Result<R> = R extends Err ? never : R extends Shape ? R : never;

type Last<S extends Shape> = S extends readonly [...number[], infer L extends number] ? L : number;
type Init<S extends Shape> = S extends readonly [...infer H extends number[], number] ? H : number[];

/** Batched matmul [..., M, K] x [..., K, N] -> [..., M, N] with broadcast batch dims. */
export type Matmul<A extends Shape, B extends Shape> =
  IsTuple<A> extends false ? Shape : IsTuple<B> extends false ? Shape :
  A['length'] extends 0 | 1 ? ShapeError<'matmul needs rank >= 2'> : B['length'] extends 0 | 1 ? ShapeError<'matmul needs rank >= 2'> :
  [EqDim<Last<A>, Last<Init<B>>>] extends [never] ? ShapeError<`matmul inner dims ${Last<A>} and ${Last<Init<B>>} differ`> :
  Broadcast<Init<Init<A>>, Init<Init<B>>> extends infer R ? R extends Err ? R :
    R extends number[] ? [...R, Last<Init<A>>, Last<B>] : never : never;
