/** The reference fixture (test/fixtures/ip-adapter/generate.py, tencent-ailab/IP-Adapter @62e4af9 in float64) and a
 * micro UNet whose context width (16) matches the fixture's projections. */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ParamStore } from '../../compiler/index';
import { readSafetensors } from '../../models/io/safetensors';
import { microUnetConfig, type UnetConfig } from '../../models/unet/index';

export const FIXTURE = path.join(path.dirname(fileURLToPath(import.meta.url)), '../fixtures/ip-adapter/reference.safetensors');
export const ref = readSafetensors(FIXTURE).tensors;
export const get = (k: string): Float64Array => { const t = ref.get(k); if (!t) throw new Error(`no ${k} in the fixture`); return t.data as Float64Array; };
export const shapeOf = (k: string): readonly number[] => ref.get(k)!.shape;

/** The fixture's `<prefix>.<key>` tensors as store entries `<to><key>`. */
export function storeFrom(prefix: string, to = '', store: ParamStore = new Map()): ParamStore {
  for (const [k, t] of ref) if (k.startsWith(`${prefix}.`)) store.set(to + k.slice(prefix.length + 1), Float64Array.from(t.data as Float64Array));
  return store;
}

export const relErr = (a: ArrayLike<number>, b: ArrayLike<number>): number => {
  let num = 0, den = 0;
  for (let i = 0; i < a.length; i++) { num = Math.max(num, Math.abs(a[i] - b[i])); den = Math.max(den, Math.abs(b[i])); }
  if (a.length !== b.length) return Infinity;
  return num / den;
};

/** micro UNet with context width 16 (the fixture's cross_attention_dim). */
export const ipMicroUnet: UnetConfig = { ...microUnetConfig, crossAttentionDim: 16 };
