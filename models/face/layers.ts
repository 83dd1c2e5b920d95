/** Building blocks shared by the face networks, in Kiln's NCHW layout, each mirroring one face-api layer. */
import { conv2d, param, type Tensor } from '../../compiler/index';

/** Frozen parameters by tfjs name; remembers each declared shape so a weight store can be checked against
 * the graph (weights.ts checkParams). */
export class FrozenParams {
  readonly declared = new Map<string, readonly number[]>();
  get(name: string, shape: readonly number[]): Tensor {
    const prev = this.declared.get(name);
    if (prev && prev.join(',') !== shape.join(',')) throw new Error(`parameter '${name}' declared as [${prev.join(',')}] and [${shape.join(',')}]`);
    this.declared.set(name, shape);
    return param(name, shape, { trainable: false });
  }
}

/** A per-channel vector broadcast over NCHW. */
export const channelwise = (v: Tensor): Tensor => v.reshape([v.size, 1, 1]);

/** tf.clipByValue(x, 0, 6). */
export const relu6 = (x: Tensor): Tensor => x.maximum(0).minimum(6);

/** tf.conv2d(x, filters, stride, padding) + bias (filters [O, I, k, k] here). */
export function convBias(p: FrozenParams, x: Tensor, filters: string, bias: string, out: number, k: number, stride: number, padding: 'same' | 'valid'): Tensor {
  const w = p.get(filters, [out, x.shape[1], k, k]);
  return conv2d(x, w, p.get(bias, [out]), { stride, padding });
}

/** tf.depthwiseConv2d(x, filter [k, k, C, 1], stride, 'same') as a grouped conv with C groups. */
export function depthwise(p: FrozenParams, x: Tensor, filter: string, k: number, stride: number): Tensor {
  const c = x.shape[1];
  return conv2d(x, p.get(filter, [c, 1, k, k]), undefined, { stride, padding: 'same', groups: c });
}
