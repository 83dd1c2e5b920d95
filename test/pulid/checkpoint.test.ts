/** Training checkpoints and run files without compiling anything: the micro model's checkpoint layout is written
 * by PulidTrainer.save and refused on resume when it does not fit (another config, other program settings,
 * missing or extra tensors, non-finite values, corruption, unparseable metadata); metrics.json resumes with its
 * history and stage summaries; temp files of dead writers are removed. */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { microPulidConfig } from '../../models/pulid/config';
import { PulidModel } from '../../models/pulid/model';
import { PulidTrainer, TrainerOptionsError, type StepRecord } from '../../models/pulid/trainer';
import type { TextConditioner } from '../../models/pulid/text';
import {
  CheckpointConfigError, CheckpointFormatError, CheckpointTensorsError, CheckpointValuesError, contentChecksum, readAdapterWeights, writeCheckpoint,
} from '../../models/pulid/checkpoint';
import { MetricsFileError, prepareRunDir, readMetrics, resumeMetrics, writeMetrics, type TrainingMetrics } from '../../models/pulid/runFiles';
import { readSafetensors, writeSafetensors, type TensorInput } from '../../models/io/safetensors';
import { writePng } from '../../models/io/image';
import { readFaceCache } from '../../models/pulid/data';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kiln-ckpt-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));
const model = new PulidModel(microPulidConfig, { seed: 0 });
const trainer = (o: { accumulation?: number; model?: PulidModel } = {}) =>
  new PulidTrainer(o.model ?? model, [], {} as TextConditioner, { steps: { 1: 4, 2: 2, 3: 2 }, accumulation: o.accumulation, seed: 5 });

/** Rewrites a checkpoint through `edit` (tensors and metadata), with a fresh checksum unless `keepChecksum`. */
function rewrite(src: string, dst: string, edit: (t: Map<string, { shape: number[]; data: Float32Array }>, meta: Record<string, string>) => void, keepChecksum = false): string {
  const { tensors, metadata } = readSafetensors(src);
  const t = new Map([...tensors].map(([k, v]) => [k, { shape: [...v.shape], data: Float32Array.from(v.data as Float32Array) }]));
  edit(t, metadata);
  if (!keepChecksum) metadata.checksum = contentChecksum(t, metadata);
  const inputs: Record<string, TensorInput> = {};
  for (const [k, v] of t) inputs[k] = { dtype: 'F32', shape: v.shape, data: v.data };
  writeSafetensors(dst, inputs, metadata);
  return dst;
}

describe('PuLID checkpoints', () => {
  const ck = path.join(dir, 'ck.safetensors');
  let saved: Map<string, Float32Array>;
  beforeAll(() => {
    const a = trainer();
    a.stage = 2;
    a.done = { 1: 4, 2: 1, 3: 0 };
    a.save(ck);
    saved = a.snapshot();
  });

  test('round trip: every layout tensor, counters, config and a checksum', () => {
    const { metadata, tensors } = readSafetensors(ck);
    expect(metadata.format).toBe('kiln-pulid-2');
    expect(JSON.parse(metadata.config)).toEqual(JSON.parse(JSON.stringify(microPulidConfig)));
    expect(metadata.checksum).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(tensors.size).toBe(trainer().layout.size);
    expect(tensors.get('adamw.step')!.shape).toEqual([]);
    const b = trainer();
    b.load(ck);
    expect([b.stage, b.done]).toEqual([2, { 1: 4, 2: 1, 3: 0 }]);
    for (const [k, v] of b.snapshot()) expect(Buffer.from(v.buffer, v.byteOffset, v.byteLength).equals(Buffer.from(saved.get(k)!.buffer))).toBe(true);
    expect(readAdapterWeights(ck, microPulidConfig, model.trainable.params).size).toBe(model.trainable.params.size);
  });

  test('another config is refused, naming the differing fields (unless converting)', () => {
    const other = new PulidModel({ ...microPulidConfig, name: 'sdxl', lambdas: { ...microPulidConfig.lambdas, id: 2 } }, { seed: 0 });
    const b = trainer({ model: other });
    expect(() => b.load(ck)).toThrow(CheckpointConfigError);
    expect(() => b.load(ck)).toThrow(/config\.name: this run "sdxl", checkpoint "micro"; config\.lambdas\.id: this run 2, checkpoint 1/);
    expect(() => b.load(ck)).toThrow(ck);
    b.load(ck, { allowConfigChange: true });
    expect(b.done[1]).toBe(4);
    // Other program settings: accumulation 2 keeps gradient accumulators the checkpoint lacks.
    const c = trainer({ accumulation: 2 });
    expect(() => c.load(ck)).toThrow(/trainer\.accumulation: this run 2, checkpoint 1/);
    expect(() => c.load(ck, { allowConfigChange: true })).toThrow(CheckpointTensorsError);
    expect(() => c.load(ck, { allowConfigChange: true })).toThrow(/missing \d+: .*\.grad_acc/);
  });

  test('missing, extra and reshaped tensors are listed', () => {
    const noBody = rewrite(ck, path.join(dir, 'nobody.safetensors'), (t) => { for (const k of [...t.keys()]) if (k.startsWith('id_adapter.body.0.')) t.delete(k); });
    let err: Error | undefined;
    try { trainer().load(noBody); } catch (e) { err = e as Error; }
    expect(err).toBeInstanceOf(CheckpointTensorsError);
    expect(err!.message).toMatch(/missing 6: .*id_adapter\.body\.0\.weight.*id_adapter\.body\.0\.bias/);
    const extra = rewrite(ck, path.join(dir, 'extra.safetensors'), (t) => t.set('id_adapter.surprise', { shape: [2], data: new Float32Array(2) }));
    expect(() => trainer().load(extra)).toThrow(/extra 1: id_adapter\.surprise/);
    const reshaped = rewrite(ck, path.join(dir, 'reshaped.safetensors'), (t) => { const w = t.get('id_adapter.body.0.weight')!; w.shape = [w.shape[1]!, w.shape[0]!]; });
    expect(() => trainer().load(reshaped)).toThrow(/other shapes 1: id_adapter\.body\.0\.weight expected \[\d+,\d+\] found/);
  });

  test('non-finite values are refused on load and never written', () => {
    const nan = rewrite(ck, path.join(dir, 'nan.safetensors'), (t) => { t.get('id_adapter.body.0.weight')!.data[3] = Number.NaN; });
    expect(() => trainer().load(nan)).toThrow(CheckpointValuesError);
    expect(() => trainer().load(nan)).toThrow(/"id_adapter\.body\.0\.weight" holds NaN at index 3/);
    const b = trainer(), tensors = b.snapshot(), out = path.join(dir, 'never.safetensors');
    tensors.get('id_adapter.body.0.bias')![1] = Infinity;
    expect(() => writeCheckpoint(out, { stage: 1, done: b.done, config: microPulidConfig, trainer: b.settings(), tensors }, b.layout)).toThrow(/not written: tensor "id_adapter\.body\.0\.bias" holds Infinity at index 1/);
    expect(fs.existsSync(out)).toBe(false);
  });

  test('corruption, unparseable metadata and old formats are CheckpointFormatErrors naming file and field', () => {
    const flipped = rewrite(ck, path.join(dir, 'flip.safetensors'), (t) => { t.get('id_adapter.body.0.bias')!.data[0] += 1; }, true);
    expect(() => trainer().load(flipped)).toThrow(/content checksum sha256:[0-9a-f]+ does not match the recorded/);
    const badJson = rewrite(ck, path.join(dir, 'badjson.safetensors'), (_t, m) => { m.done = '{"1": 4, '; });
    expect(() => trainer().load(badJson)).toThrow(CheckpointFormatError);
    expect(() => trainer().load(badJson)).toThrow(/badjson\.safetensors: metadata\.done: expected JSON text/);
    const badStage = rewrite(ck, path.join(dir, 'badstage.safetensors'), (_t, m) => { m.stage = '7'; });
    expect(() => trainer().load(badStage)).toThrow(/metadata\.stage: expected a stage 1, 2 or 3, found "7"/);
    const v1 = rewrite(ck, path.join(dir, 'v1.safetensors'), (_t, m) => { m.format = 'kiln-pulid-1'; });
    expect(() => trainer().load(v1)).toThrow(/format "kiln-pulid-1", this Kiln reads kiln-pulid-2/);
    fs.writeFileSync(path.join(dir, 'empty.safetensors'), '');
    expect(() => trainer().load(path.join(dir, 'empty.safetensors'))).toThrow(/empty\.safetensors: cannot be read/);
  });
});

test('trainer options out of range are a TrainerOptionsError before anything is built', () => {
  const bad: [Record<string, unknown>, RegExp][] = [[{ accumulation: 0 }, /accumulation = 0; expected an integer ≥ 1/], [{ batch: -1 }, /batch = -1/], [{ lr: Number.NaN }, /lr = NaN; expected a finite number > 0/],
    [{ seed: 1.5 }, /seed = 1\.5/], [{ steps: { 1: -1, 2: 0, 3: 0 } }, /steps\[1\] = -1/], [{ memoryBudget: -5 }, /memoryBudget = -5/]];
  for (const [o, re] of bad) expect(() => new PulidTrainer(model, [], {} as TextConditioner, { steps: { 1: 1, 2: 0, 3: 0 }, ...o })).toThrow(re);
  expect(() => new PulidTrainer(model, [], {} as TextConditioner, { steps: { 1: 1, 2: 0, 3: 0 }, accumulation: 0 })).toThrow(TrainerOptionsError);
});

describe('run files', () => {
  const rec = (stage: 1 | 2 | 3, step: number): StepRecord => ({ stage, step, micro: 1, loss: 1 / (step + 1), l_diff: 0.5, ms: 3 });

  test('resuming keeps the history up to the checkpoint and the finished stages\' summaries', () => {
    const f = path.join(dir, 'metrics.json');
    const m: TrainingMetrics = { config: 'micro', steps: { 1: 3, 2: 2, 3: 0 }, programs: { diff: { kernels: 9 } }, history: [rec(1, 0), rec(1, 1), rec(1, 2), rec(2, 0), rec(2, 1)], stages: { 1: { steps: 3 }, 2: { steps: 2 } } };
    writeMetrics(f, m);
    expect(readMetrics(f)).toEqual(m);
    const fresh: TrainingMetrics = { config: 'micro', steps: { 1: 3, 2: 2, 3: 0 }, programs: {}, history: [], stages: {} };
    const all = resumeMetrics(f, { 1: 3, 2: 2, 3: 0 }, fresh);
    expect([all.history.length, Object.keys(all.stages), all.programs]).toEqual([5, ['1', '2'], { diff: { kernels: 9 } }]);
    const mid = resumeMetrics(f, { 1: 3, 2: 1, 3: 0 }, fresh);
    expect([mid.history.map((h) => `${h.stage}.${h.step}`), Object.keys(mid.stages)]).toEqual([['1.0', '1.1', '1.2', '2.0'], ['1']]);
    expect(resumeMetrics(path.join(dir, 'none.json'), { 1: 0, 2: 0, 3: 0 }, fresh)).toBe(fresh);
    expect(() => resumeMetrics(f, { 1: 3, 2: 2, 3: 0 }, { ...fresh, config: 'tiny' })).toThrow(/written by a micro run, this run is tiny/);
  });

  test('an empty or malformed metrics.json is a MetricsFileError naming the file and field', () => {
    const f = path.join(dir, 'bad-metrics.json');
    fs.writeFileSync(f, '');
    expect(() => readMetrics(f)).toThrow(MetricsFileError);
    expect(() => readMetrics(f)).toThrow(/bad-metrics\.json: not a metrics file: the document: expected JSON, found .*empty file/);
    fs.writeFileSync(f, JSON.stringify({ config: 'micro', steps: { 1: 1, 2: 0, 3: 0 }, programs: {}, history: [{ ...rec(1, 0), step: -1 }], stages: {} }));
    expect(() => readMetrics(f)).toThrow(/\.history\[0\]\.step: expected an integer ≥ 0, found -1/);
  });

  test('face cache entries are validated (schema, PNG) and a bad one is a reason naming the file, not a crash', () => {
    const png = path.join(dir, 'face.png'), meta = path.join(dir, 'face.json');
    writePng(png, { width: 2, height: 2, channels: 3, data: new Uint8Array(12) });
    const entry = { stamp: '10:20', landmarks: Array.from({ length: 68 }, (_v, i) => [i, i + 0.5]), descriptor: Array.from({ length: 128 }, (_v, i) => i / 128) };
    fs.writeFileSync(meta, JSON.stringify(entry));
    const ok = readFaceCache(png, meta, '10:20');
    expect(typeof ok !== 'string' && [ok.crop.width, ok.landmarks[3], ok.descriptor.length]).toEqual([2, [3, 3.5], 128]);
    expect(readFaceCache(png, meta, '11:20')).toBe('photo changed');
    fs.writeFileSync(meta, '');
    expect(readFaceCache(png, meta, '10:20')).toMatch(/face\.json is not a face cache entry \(the document: expected JSON, found .*empty file/);
    fs.writeFileSync(meta, JSON.stringify({ ...entry, descriptor: entry.descriptor.slice(1) }));
    expect(readFaceCache(png, meta, '10:20')).toMatch(/\.descriptor: expected a list of 128, found "127 items"/);
    fs.writeFileSync(meta, JSON.stringify(entry));
    fs.writeFileSync(png, fs.readFileSync(png).subarray(0, 40));
    expect(readFaceCache(png, meta, '10:20')).toMatch(/face\.png: truncated PNG/);
  });

  test('temp files of dead writers are removed on start, those of live ones kept', () => {
    const run = path.join(dir, 'run');
    fs.mkdirSync(run);
    const dead = Number(execFileSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' }));
    const stale = path.join(run, `last.safetensors.tmp-${dead}-0123456789ab`), live = path.join(run, `metrics.json.tmp-${process.pid}-0123456789ab`);
    for (const f of [stale, live, path.join(run, 'last.safetensors')]) fs.writeFileSync(f, 'x');
    expect(prepareRunDir(run)).toEqual([stale]);
    expect(fs.readdirSync(run).sort()).toEqual(['last.safetensors', path.basename(live)]);
  });
});
