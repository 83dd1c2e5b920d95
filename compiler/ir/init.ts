import type { Init } from '../ops/attrs';
import { normalFill, uniformFill } from './philox';

/** Initial values of a parameter, computed on the host (the same bits on every back end). */
export function initValues(init: Init, n: number): Float64Array {
  switch (init.kind) {
    case 'zeros': return new Float64Array(n);
    case 'ones': return new Float64Array(n).fill(1);
    case 'constant': return new Float64Array(n).fill(init.value);
    case 'normal': { const m = init.mean ?? 0, sd = init.std, v = normalFill(n, init.seed); for (let i = 0; i < n; i++) v[i] = m + sd * v[i]; return v; }
    case 'uniform': { const lo = init.low, w = init.high - init.low, v = uniformFill(n, init.seed, 0); for (let i = 0; i < n; i++) v[i] = lo + w * v[i]; return v; }
  }
}
