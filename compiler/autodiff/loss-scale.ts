/** Dynamic loss scaling for f16 training (Micikevicius et al., "Mixed Precision Training"; torch's GradScaler):
 * the backward pass starts from `scale` instead of 1 so small gradients survive f16, the gradients are divided
 * by it before the optimizer, and a step whose gradients overflowed is skipped inside the program (every update
 * keeps its old value) while the host lowers the scale. bf16 has f32's range and needs none of this. */
import type { Update as IrUpdate } from '../ir/graph';
import { Tensor } from '../dsl/tensor';
import { grad } from './grad';

export interface ScaledGrads {
  /** d loss / d param, unscaled (already divided by the scale). */
  readonly grads: Tensor[];
  /** bool scalar: every gradient element is finite. */
  readonly finite: Tensor;
}

/** Gradients of a scalar `loss` with the backward pass seeded by `scale` (an f32 scalar, usually an input fed
 * by DynamicLossScale), unscaled, and whether they are all finite (Σ g·0 is 0 exactly when no element is
 * ±Inf or NaN). */
export function scaledGrads(loss: Tensor, params: readonly Tensor[], scale: Tensor): ScaledGrads {
  const raw = grad(loss, params, scale.reshape(loss.shape as number[]) as Tensor);
  const inv = scale.recip();
  const grads = raw.map((g) => g.mul(inv as never) as Tensor);
  let probe: Tensor | undefined;
  for (const g of raw) { const s = g.mul(0).sum() as Tensor; probe = probe ? (probe.add(s as never) as Tensor) : s; }
  return { grads, finite: probe ? (probe.eq(0) as Tensor) : (scale.eq(scale as never) as Tensor) };
}

/** Updates that apply only when `finite` (a bool scalar) holds; otherwise every parameter, moment and step
 * counter keeps its value, so a skipped step leaves no trace. */
export function guardUpdates(updates: readonly IrUpdate<Tensor>[], finite: Tensor): IrUpdate<Tensor>[] {
  return updates.map((u) => ({ param: u.param, value: finite.select(u.value, u.param) }));
}

export interface LossScaleOptions {
  /** Starting scale (default 2^16). */
  readonly init?: number;
  /** Factor applied after an overflow (default 0.5). */
  readonly backoff?: number;
  /** Factor applied after `interval` finite steps in a row (default 2). */
  readonly growth?: number;
  /** Finite steps in a row before the scale grows (default 2000). */
  readonly interval?: number;
  /** The scale never goes below this (default 1): overflow at the floor is a real non-finite gradient. */
  readonly min?: number;
}

/** The host side: the scale to feed, and what to do after each step. */
export class DynamicLossScale {
  scale: number;
  /** Steps skipped for overflow so far. */
  skipped = 0;
  private good = 0;
  readonly backoff: number;
  readonly growth: number;
  readonly interval: number;
  readonly min: number;
  constructor(o: LossScaleOptions = {}) {
    this.scale = o.init ?? 2 ** 16;
    this.backoff = o.backoff ?? 0.5;
    this.growth = o.growth ?? 2;
    this.interval = o.interval ?? 2000;
    this.min = o.min ?? 1;
    if (!(this.scale > 0 && this.backoff > 0 && this.backoff < 1 && this.growth >= 1 && this.interval >= 1 && this.min > 0)) {
      throw new RangeError(`DynamicLossScale: init ${this.scale}, backoff ${this.backoff}, growth ${this.growth}, interval ${this.interval}, min ${this.min} out of range`);
    }
  }

  /** After a step: `finite` is the program's verdict. Returns true when the step was applied. An overflow at the
   * minimum scale is reported by `atFloor` (the caller treats it as a real non-finite step). */
  update(finite: boolean): { applied: boolean; atFloor: boolean } {
    if (finite) {
      if (++this.good >= this.interval) { this.scale *= this.growth; this.good = 0; }
      return { applied: true, atFloor: false };
    }
    this.skipped++;
    this.good = 0;
    const atFloor = this.scale <= this.min;
    this.scale = Math.max(this.min, this.scale * this.backoff);
    return { applied: false, atFloor };
  }
}
