/** Leaves and generators of a graph: inputs, parameters, constants, iota and random tensors. */
import type { DType } from '../ir/dtype';
import type { Shape } from '../ir/shape';
import { uniqueId } from '../ir/node';
import type { Init } from '../ops/attrs';
import { apply } from '../ops/apply';
import { Tensor } from './tensor';
// Globals are bound once per module: every global lookup is slow inside jest's vm contexts.
const M = Math;

/** A value fed at run time, by name. */
export function input<const S extends Shape, D extends DType = 'f32'>(name: string, shape: S, dtype: D = 'f32' as D): Tensor<S, D> {
  return new Tensor(apply('input', [], { name, shape, dtype }));
}

export interface ParamOptions<D extends DType> { dtype?: D; trainable?: boolean; init?: Init }

/** A parameter: named storage that stays resident across runs; trainable unless said otherwise (frozen). Each
 * call makes a distinct parameter; names must be unique within a compiled program. */
export function param<const S extends Shape, D extends DType = 'f32'>(name: string, shape: S, opts: ParamOptions<D> = {}): Tensor<S, D> {
  return new Tensor(apply('param', [], {
    name, shape, dtype: opts.dtype ?? ('f32' as D), trainable: opts.trainable ?? true, init: opts.init ?? { kind: 'zeros' }, uid: uniqueId(),
  }));
}

/** A tensor filled with one value. */
export function full<const S extends Shape, D extends DType = 'f32'>(shape: S, value: number, dtype: D = 'f32' as D): Tensor<S, D> {
  return new Tensor(apply('const', [], { value, shape, dtype }));
}
export const zeros = <const S extends Shape, D extends DType = 'f32'>(shape: S, dtype: D = 'f32' as D): Tensor<S, D> => full(shape, 0, dtype);
export const ones = <const S extends Shape, D extends DType = 'f32'>(shape: S, dtype: D = 'f32' as D): Tensor<S, D> => full(shape, 1, dtype);
export const scalar = <D extends DType = 'f32'>(value: number, dtype: D = 'f32' as D): Tensor<[], D> => full([], value, dtype);

/** A constant tensor from data (embedded in the program). */
export function constant<const S extends Shape, D extends DType = 'f32'>(data: ArrayLike<number>, shape: S, dtype: D = 'f32' as D): Tensor<S, D> {
  return new Tensor(apply('tensor', [], { data: Float64Array.from(data), shape, dtype, uid: uniqueId() }));
}

/** Indices along `axis`, broadcast over the other dims. */
export function iota<const S extends Shape, D extends DType = 'i32'>(shape: S, axis: number, dtype: D = 'i32' as D): Tensor<S, D> {
  return new Tensor(apply('iota', [], { shape, axis, dtype }));
}
export const arange = <D extends DType = 'i32'>(n: number, dtype: D = 'i32' as D): Tensor<[number], D> => iota([n], 0, dtype);

/** Counter-based random streams. `seed` is an i32 scalar tensor (an input, so each step of a compiled program
 * draws new noise) or a number; every call takes the next stream, so draws are independent and reproducible on
 * every back end (ir/philox.ts). */
export class Rng {
  private next = 0;
  readonly seed: Tensor<readonly [], 'i32'>;
  constructor(seed: number | Tensor<readonly [], 'i32'>, firstStream = 0) {
    this.seed = typeof seed === 'number' ? full([], seed, 'i32') : seed;
    this.next = firstStream;
  }
  uniform<const S extends Shape>(shape: S): Tensor<S, 'f32'> {
    return new Tensor(apply('rand_uniform', [this.seed.node], { shape, stream: this.next++ }));
  }
  /** Box-Muller over two uniform streams (the same formula as ir/philox.ts normalFill). */
  normal<const S extends Shape>(shape: S): Tensor<S, 'f32'> {
    if (this.next % 2) this.next++;
    const u1 = this.uniform(shape), u2 = this.uniform(shape);
    return u1.neg().add(1).log().mul(-2).sqrt().mul(u2.mul(2 * M.PI).cos() as never) as never;
  }
}
