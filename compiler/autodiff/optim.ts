/** Optimizers as graph updates: the step is part of the compiled program, and optimizer state (moments, step
 * count) lives in non-trainable parameters that stay resident beside the weights. */
import type { Node } from '../ir/node';
import type { Update as IrUpdate } from '../ir/graph';
import { Tensor } from '../dsl/tensor';
import { param, scalar } from '../dsl/creation';

const nameOf = (p: Tensor) => (p.node as Node<'param'>).attrs.name;
const state = (p: Tensor, suffix: string) => param(`${nameOf(p)}.${suffix}`, p.shape, { dtype: p.dtype, trainable: false });

export interface SgdOptions { lr: number | Tensor; momentum?: number; weightDecay?: number }

export function sgd(params: readonly Tensor[], grads: readonly Tensor[], o: SgdOptions): IrUpdate<Tensor>[] {
  return params.flatMap((p, i) => {
    let g = grads[i];
    if (o.weightDecay) g = g.add(p.mul(o.weightDecay));
    if (!o.momentum) return [{ param: p, value: p.sub(g.mul(o.lr as Tensor)) }];
    const m = state(p, 'sgd_momentum');
    const m1 = m.mul(o.momentum).add(g);
    return [{ param: m, value: m1 }, { param: p, value: p.sub(m1.mul(o.lr as Tensor)) }];
  });
}

export interface AdamWOptions { lr: number | Tensor; beta1?: number; beta2?: number; eps?: number; weightDecay?: number; name?: string }

/** AdamW (Loshchilov & Hutter): decoupled weight decay, bias-corrected moments; the step counter is state. */
export function adamw(params: readonly Tensor[], grads: readonly Tensor[], o: AdamWOptions): IrUpdate<Tensor>[] {
  const b1 = o.beta1 ?? 0.9, b2 = o.beta2 ?? 0.999, eps = o.eps ?? 1e-8, wd = o.weightDecay ?? 0.01;
  const step = param(`${o.name ?? 'adamw'}.step`, [], { trainable: false });
  const t = step.add(1);
  const c1 = scalar(b1).pow(t).neg().add(1), c2 = scalar(b2).pow(t).neg().add(1);
  const lr = typeof o.lr === 'number' ? scalar(o.lr) : o.lr;
  const updates: IrUpdate<Tensor>[] = [{ param: step, value: t }];
  params.forEach((p, i) => {
    const g = grads[i];
    const m = state(p, 'adam_m'), v = state(p, 'adam_v');
    const m1 = m.mul(b1).add(g.mul(1 - b1)), v1 = v.mul(b2).add(g.square().mul(1 - b2));
    const upd = m1.div(c1).div(v1.div(c2).sqrt().add(eps)).add(p.mul(wd));
    updates.push({ param: m, value: m1 }, { param: v, value: v1 }, { param: p, value: p.sub(upd.mul(lr)) });
  });
  return updates;
}
