/** A small IP-Adapter trainer: holds the parameter store, draws the condition drops (the reference's one-uniform rule,
 * from a Philox stream keyed by the seed and step, so a run is reproducible) and runs the training step on the float64
 * reference evaluator or a compiled C++ program. Data loading, noise and timestep sampling are the caller's. */
import { compile, evaluate, type CpuProgram, type ParamStore } from '../../compiler/index';
import { uniformFill } from '../../compiler/ir/philox';
import type { UNet2DConditionModel } from '../unet/index';
import { materialize } from '../weights';
import type { IpAdapter } from './model';
import { conditionDrop, ipAdapterTrainStep, REFERENCE_DROP_RATES, type ConditionDropRates, type IpTrainStep, type IpTrainStepOptions } from './train';

export interface IpTrainerOptions extends IpTrainStepOptions {
  lr: number;
  rates?: ConditionDropRates;
  seed?: number;
  /** 'reference' (float64 evaluator, default) or 'cpu' (compiled, f32). */
  backend?: 'reference' | 'cpu';
}

/** One batch: every input of the step but drop_image, drop_text and lr (the trainer draws and sets those). */
export type IpTrainBatch = Record<string, ArrayLike<number>>;

export interface IpTrainRecord { step: number; loss: number; drops: { image: boolean; text: boolean }[] }

export class IpAdapterTrainer {
  readonly graph: IpTrainStep;
  readonly store: ParamStore;
  private program?: CpuProgram;
  private steps = 0;
  private constructor(readonly adapter: IpAdapter, readonly unet: UNet2DConditionModel, readonly o: IpTrainerOptions, store: ParamStore) {
    this.graph = ipAdapterTrainStep(adapter, unet, o);
    this.store = materialize(materialize(store, unet.registry), adapter.registry);
    if (o.clip) materialize(this.store, o.clip.registry);
  }

  /** `store` holds the frozen UNet (and CLIP) weights and, when resuming or fine-tuning, the adapter's. */
  static async create(adapter: IpAdapter, unet: UNet2DConditionModel, store: ParamStore, o: IpTrainerOptions): Promise<IpAdapterTrainer> {
    const t = new IpAdapterTrainer(adapter, unet, o, store);
    if (o.backend === 'cpu') {
      t.program = await compile({ outputs: { loss: t.graph.outputs.loss }, updates: t.graph.updates });
      t.program.loadParams(t.store, { strict: false });
    }
    return t;
  }

  /** The drops of step `step` for `batch` samples. */
  drops(step: number): { image: boolean; text: boolean }[] {
    const u = uniformFill(this.o.batch, this.o.seed ?? 0, step);
    return Array.from(u, (x) => conditionDrop(x, this.o.rates ?? REFERENCE_DROP_RATES));
  }

  step(batch: IpTrainBatch): IpTrainRecord {
    const drops = this.drops(this.steps);
    const feeds: Record<string, ArrayLike<number>> = {
      ...batch, lr: [this.o.lr], drop_image: drops.map((d) => (d.image ? 1 : 0)), drop_text: drops.map((d) => (d.text ? 1 : 0)),
    };
    const loss = this.program
      ? this.program.run(feeds).loss[0]
      : evaluate({ outputs: { loss: this.graph.outputs.loss }, updates: this.graph.updates }, feeds, this.store).outputs.loss.data[0];
    return { step: this.steps++, loss, drops };
  }

  /** The adapter's current values (for saveParams: the keys are the reference checkpoint's). */
  adapterValues(): ParamStore {
    const out: ParamStore = new Map();
    for (const k of this.adapter.registry.params.keys()) out.set(k, this.program ? Float64Array.from(this.program.getParam(k)) : this.store.get(k)!);
    return out;
  }
}
