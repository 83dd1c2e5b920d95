import type { Init } from '../ops/attrs';
import { normalFill, uniformFill } from './philox';

/** Initial values of a parameter, computed on the host (the same bits on every back end). */
export function initValues(init: Init, n: number): Float64Array {
  switch (init.kind) {
    case 'zeros': return new Float64Array(n);
    case 'ones': return new Float64Array(n).fill(1);
    case 'constant': return new Float64Array(n).fill(init.value);
    case 'normal': { const m = init.mean ?? 0; return normalFill(n, init.seed).map((z) => m + init.std * z); }
    case 'uniform': return uniformFill(n, init.seed, 0).map((u) => init.low + (init.high - init.low) * u);
  }
}
