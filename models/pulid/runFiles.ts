/**
 * The files of a training run folder besides checkpoints: metrics.json (written atomically, read back through a
 * schema, naming the file and the field on any error) and the start-of-run cleanup of temporary files that a
 * killed writer left behind.
 */
import fs from 'node:fs';
import { removeStaleTemps, writeJsonAtomic } from '../io/atomicWrite';
import { arr, int, num, obj, optional, parseJson, record, SchemaError, str, type Schema } from '../io/schema';
import type { Stage } from './model';
import type { StepRecord } from './trainer';

export interface TrainingMetrics {
  config: string;
  steps: Record<Stage, number>;
  /** Per compiled program: kernels, compile time, memory plan. */
  programs: Record<string, unknown>;
  /** One record per optimizer step, in order. */
  history: StepRecord[];
  /** Per finished stage: step count, mean losses first/last third, evaluation before/after. */
  stages: Record<string, unknown>;
}

/** metrics.json is unreadable or not shaped like one. */
export class MetricsFileError extends Error {
  constructor(
    readonly file: string,
    detail: string,
    options?: { cause?: unknown },
  ) {
    super(`${file}: ${detail}`, options);
    this.name = 'MetricsFileError';
  }
}

const stage: Schema<Stage> = (v, at) => {
  if (v === 1 || v === 2 || v === 3) return v;
  throw new SchemaError(at, 'a stage 1, 2 or 3', v);
};
/** Losses may be non-finite in a skipped step; JSON writes those as null. */
const loss = optional((v, at) => (v === null ? Number.NaN : num()(v, at)));
const stepRecord = obj({
  stage, step: int({ min: 0 }), micro: int({ min: 1 }), loss, l_diff: loss, l_id: loss, l_sem: loss, l_layout: loss, ms: num({ min: 0 }),
  skipped: optional((v, at): true => {
    if (v === true) return true;
    throw new SchemaError(at, 'true', v);
  }),
}) as unknown as Schema<StepRecord>;
const counts = obj({ 1: int({ min: 0 }), 2: int({ min: 0 }), 3: int({ min: 0 }) }) as unknown as Schema<Record<Stage, number>>;
const metricsSchema = obj({
  config: str,
  steps: counts,
  programs: record((x) => x),
  history: arr(stepRecord),
  stages: record((x) => x),
}) as unknown as Schema<TrainingMetrics>;

/** Reads and checks metrics.json. */
export function readMetrics(file: string): TrainingMetrics {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new MetricsFileError(file, `cannot read (${(err as NodeJS.ErrnoException).code ?? err})`, { cause: err });
  }
  try {
    return parseJson(text, metricsSchema);
  } catch (err) {
    if (!(err instanceof SchemaError)) throw err;
    throw new MetricsFileError(file, `not a metrics file: ${err.message}`, { cause: err });
  }
}

/** Writes metrics.json atomically (a reader, or a kill, never sees half of it). */
export function writeMetrics(file: string, m: TrainingMetrics): void {
  writeJsonAtomic(file, m, 1);
}

/** The metrics to continue from when resuming a checkpoint whose counters are `done`: the file's whole history up
 * to the checkpoint (records of steps the checkpoint does not contain are dropped, as those steps will run again),
 * its program reports and the summaries of the stages the checkpoint has finished. No file: `fresh`. A config other
 * than the run's is refused. */
export function resumeMetrics(file: string, done: Readonly<Record<Stage, number>>, fresh: TrainingMetrics): TrainingMetrics {
  if (!fs.existsSync(file)) return fresh;
  const m = readMetrics(file);
  if (m.config !== fresh.config) throw new MetricsFileError(file, `written by a ${m.config} run, this run is ${fresh.config}`);
  const history = m.history.filter((h) => h.step < done[h.stage]);
  const stages = Object.fromEntries(Object.entries(m.stages).filter(([k]) => done[Number(k) as Stage] >= (m.steps[Number(k) as Stage] ?? Infinity)));
  return { ...fresh, programs: { ...m.programs, ...fresh.programs }, history, stages };
}

/** Creates a run folder and removes the temporary files killed writers left in it; returns what was removed. */
export function prepareRunDir(dir: string): string[] {
  fs.mkdirSync(dir, { recursive: true });
  return removeStaleTemps(dir);
}
