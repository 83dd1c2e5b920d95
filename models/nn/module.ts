/** The module system: a `ParamScope` hands out parameters under dotted diffusers / transformers state-dict
 * keys (`down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q.weight`), so real checkpoints load by
 * name. A module is a plain class whose constructor takes a scope and creates its parameters once; its
 * `forward` can then be called any number of times (a 4-step sampler calls the UNet four times on the same
 * parameter nodes, as one graph). Every key gets its own Philox stream: the init seed is a hash of the key
 * mixed with the registry's seed, so adding a module never changes another module's initial values. */
import { param, type Tensor } from '../../compiler/index';
import type { Init } from '../../compiler/ops/attrs';
// Globals are bound once per module: every global lookup is slow inside jest's vm contexts.
const M = Math;

/** How a parameter is initialized when no checkpoint value is loaded. `fanIn` gives PyTorch's default
 * (kaiming-uniform with a = sqrt(5), i.e. U(-1/sqrt(fanIn), 1/sqrt(fanIn)), used for weights and biases). */
export type InitSpec = { kind: 'fanIn'; fanIn: number; bias?: boolean } | { kind: 'normal'; std?: number } | { kind: 'ones' } | { kind: 'zeros' };

export interface RegistryOptions {
  /** Mixed into every key's seed (default 0). */
  seed?: number;
  /** Parameters are frozen unless this is true (the diffusion base is frozen in PuLID). */
  trainable?: boolean;
  /** 'pytorch' (default): the layer's own PyTorch init; 'normal': N(0, 0.02) weights, zero biases. */
  init?: 'pytorch' | 'normal';
}

/** 32-bit FNV-1a of a string. */
export function hashKey(key: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) h = M.imul(h ^ key.charCodeAt(i), 0x01000193) >>> 0;
  return h >>> 0;
}

/** Every parameter of one model, by full key, in creation order. */
export class ParamRegistry {
  readonly params = new Map<string, Tensor>();
  readonly seed: number;
  readonly trainable: boolean;
  readonly initMode: 'pytorch' | 'normal';
  constructor(opts: RegistryOptions = {}) {
    this.seed = opts.seed ?? 0;
    this.trainable = opts.trainable ?? false;
    this.initMode = opts.init ?? 'pytorch';
  }
  /** The root scope (keys without a prefix), or one under `prefix`. */
  scope(prefix = ''): ParamScope { return new ParamScope(prefix, this); }
  /** Total number of scalar values over all parameters. */
  count(): number { let n = 0; for (const t of this.params.values()) n += t.size; return n; }
  /** Parameter shapes by key. */
  shapes(): Map<string, readonly number[]> { return new Map([...this.params].map(([k, t]) => [k, t.shape])); }

  toInit(key: string, spec: InitSpec): Init {
    const seed = (hashKey(key) ^ M.imul(this.seed, 0x9e3779b1)) >>> 0;
    switch (spec.kind) {
      case 'ones': return { kind: 'ones' };
      case 'zeros': return { kind: 'zeros' };
      case 'normal': return { kind: 'normal', std: spec.std ?? 0.02, seed };
      case 'fanIn': {
        if (this.initMode === 'normal') return spec.bias ? { kind: 'zeros' } : { kind: 'normal', std: 0.02, seed };
        const b = 1 / M.sqrt(spec.fanIn);
        return { kind: 'uniform', low: -b, high: b, seed };
      }
    }
  }
}

/** A position in the key tree: `child('attn1').param('to_q.weight', ...)` makes `<prefix>.attn1.to_q.weight`. */
export class ParamScope {
  constructor(readonly prefix: string, readonly registry: ParamRegistry) {}
  key(name: string | number): string { return this.prefix ? `${this.prefix}.${name}` : String(name); }
  child(name: string | number): ParamScope { return new ParamScope(this.key(name), this.registry); }
  param(name: string, shape: readonly number[], init: InitSpec): Tensor {
    const key = this.key(name);
    if (this.registry.params.has(key)) throw new Error(`module: parameter '${key}' is created twice`);
    const t = param(key, [...shape], { trainable: this.registry.trainable, init: this.registry.toInit(key, init) }) as Tensor;
    this.registry.params.set(key, t);
    return t;
  }
}
