/** The op table: every primitive with its four parts. Typed as `OpTable`, so a primitive added to `OpAttrs`
 * without a definition is a compile error, and test/ops/registry.test.ts checks each part at run time. */
import type { OpTable } from './entry';
import { binaryOps, cast, stopGradient, unaryOps, where } from './elementwise';
import { max, sum } from './reduce';
import { concat, expand, gather, pad, permute, reshape, scatterAdd, slice } from './movement';
import { matmul } from './matmul';
import { conv2d, conv2dBwdData, conv2dBwdWeight } from './conv';
import { sdpa, sdpaGrad } from './attention';
import { constant, input, iota, param, randUniform, tensor } from './sources';

export const OPS: OpTable = {
  input, param, const: constant, tensor, iota, rand_uniform: randUniform,
  ...unaryOps, cast, stop_gradient: stopGradient,
  ...binaryOps, where,
  sum, max,
  reshape, permute, expand, slice, pad, concat, gather, scatter_add: scatterAdd,
  matmul, conv2d, conv2d_bwd_data: conv2dBwdData, conv2d_bwd_weight: conv2dBwdWeight, sdpa, sdpa_grad: sdpaGrad,
};

export const OP_NAMES = Object.keys(OPS) as (keyof OpTable)[];
