/** DreamBooth's loss against the loss block of diffusers v0.25.1 examples/dreambooth/train_dreambooth_lora_sdxl.py
 * (copied into test/fixtures/lora/generate.py with a toy UNet that sees which prompt goes with which latent).
 * Kiln implements what the script documents; where the script does otherwise, the test shows the difference:
 * prompt/latent pairing for a half of ≥ 2 images, and Min-SNR weights with prior preservation. */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { compile, concat, constant, evaluate, input, type Tensor } from '../../compiler/index';
import { readSafetensors } from '../../models/io/safetensors';
import { alphasCumprod, sdxlSchedulerConfig } from '../../models/sched/index';
import { conditioningRows, diffusionTarget, DreamBoothBatchError, dreamboothLoss, lossWeights, noiseCoefficients, noisyLatents, pairConditioning,
  type DreamBoothLossOptions } from '../../models/dreambooth/loss';

const file = readSafetensors(path.join(path.dirname(fileURLToPath(import.meta.url)), '../fixtures/lora/reference.safetensors'));
const ref = file.tensors;
const meta = JSON.parse(file.metadata.dreambooth!) as Record<string, { bsz: number; prior: boolean; lambda: number; gamma: number | null; prediction: 'epsilon' | 'v_prediction'; script_raises: string }>;
const get = (k: string): Float64Array => { const t = ref.get(k); if (!t) throw new Error(`no ${k} in the fixture`); return t.data as Float64Array; };
const shape = (k: string) => ref.get(k)!.shape;
const rel = (a: number, b: number) => Math.abs(a - b) / Math.abs(b);

/** The fixture's toy UNet: 0.9·x_t + (0.05·Σprompt + 0.01·Σpooled + 0.001·Σtime_ids + t/1000) per sample. */
function toyLoss(name: string, pairing: 'kiln' | 'script') {
  const m = meta[name]!, b = m.bsz;
  const o: DreamBoothLossOptions = { prior: m.prior, priorWeight: m.lambda, snrGamma: m.gamma ?? undefined, prediction: m.prediction };
  const ts = Array.from(get(`db.${name}.timesteps`));
  const ac = alphasCumprod(sdxlSchedulerConfig);
  const { a, s } = noiseCoefficients(ts, ac);
  const x0 = input('x0', shape(`db.${name}.latents`)), eps = input('eps', shape(`db.${name}.noise`));
  const [A, S] = [constant(a, [b]), constant(s, [b])];
  const rows = { p: input('p', shape(`db.${name}.prompt`)), te: input('te', shape(`db.${name}.pooled`)), ti: input('ti', shape(`db.${name}.time_ids`)) };
  // Kiln pairs each latent with its half's row; the script tiles the rows (.repeat): row i % halves.
  const pair = (t: Tensor) => (pairing === 'kiln' ? pairConditioning(t, b, o) : tile(t, b));
  const per = pair(rows.p).sum([1, 2]).mul(0.05).add(pair(rows.te).sum([1]).mul(0.01)).add(pair(rows.ti).sum([1]).mul(0.001)).add(constant(ts.map((t) => t / 1000), [b]));
  const pred = noisyLatents(x0, eps, A, S).mul(0.9).add(per.reshape([b, 1, 1, 1]));
  const w = constant(lossWeights(ts, ac, o), [b]);
  const { loss } = dreamboothLoss(pred, diffusionTarget(x0, eps, A, S, o.prediction), w, o);
  const feeds = { x0: get(`db.${name}.latents`), eps: get(`db.${name}.noise`), p: get(`db.${name}.prompt`), te: get(`db.${name}.pooled`), ti: get(`db.${name}.time_ids`) };
  return { loss, feeds, value: () => evaluate({ outputs: { loss } }, feeds).outputs.loss.data[0]! };
}
function tile(rows: Tensor, b: number): Tensor {
  const h = rows.shape[0]!;
  return concat(Array.from({ length: b }, (_v, i) => rows.narrow(0, i % h, 1)), 0);
}

describe('DreamBooth loss vs train_dreambooth_lora_sdxl.py (v0.25.1)', () => {
  test("the scheduler's ᾱ matches DDPMScheduler's scaled-linear table", () => {
    const ac = alphasCumprod(sdxlSchedulerConfig), want = get('db.alphas_cumprod');
    let e = 0;
    for (let i = 0; i < 1000; i++) e = Math.max(e, rel(ac[i]!, want[i]!));
    expect(e).toBeLessThan(1e-12);
  });

  test.each(Object.keys(meta))('%s: Kiln = the documented intent to 1e-12 (float64)', (name) => {
    expect(rel(toyLoss(name, 'kiln').value(), get(`db.${name}.intended`)[0]!)).toBeLessThan(1e-12);
  });

  test.each(['b2_prior_eps', 'b3_snr_v', 'b3_snr_eps'])('%s: where the script is right, Kiln = the script to 1e-6 (it takes the MSE in float32)', (name) => {
    expect(meta[name]!.script_raises).toBe('');
    expect(rel(toyLoss(name, 'kiln').value(), get(`db.${name}.script`)[0]!)).toBeLessThan(1e-6);
  });

  test('trap 1, pairing: with 2 images a half, the script tiles the prompts [inst, class, inst, class]; Kiln pairs each latent with its own', () => {
    expect(conditioningRows(4, { prior: true })).toEqual([0, 0, 1, 1]);
    const name = 'b4_prior_v';
    const kiln = toyLoss(name, 'kiln').value(), script = get(`db.${name}.script`)[0]!;
    expect(rel(kiln, script)).toBeGreaterThan(1e-3);
    // Kiln's loss with the script's tiling reproduces the script: the pairing is the whole difference.
    expect(rel(toyLoss(name, 'script').value(), script)).toBeLessThan(1e-6);
  });

  test('trap 2, Min-SNR with prior preservation: the script weights by the whole batch (wrong at 1 instance image, an error at 2)', () => {
    expect(meta.b4_prior_snr_eps!.script_raises).toMatch(/size of tensor a \(2\) must match the size of tensor b \(4\)/);
    expect(ref.has('db.b4_prior_snr_eps.script')).toBe(false);
    const name = 'b2_prior_snr_eps';
    const kiln = toyLoss(name, 'kiln').value(), script = get(`db.${name}.script`)[0]!;
    expect(rel(kiln, script)).toBeGreaterThan(1e-3);
    // The script's value: the instance MSE times the mean of both samples' weights, plus λ·prior.
    const ts = Array.from(get(`db.${name}.timesteps`)), ac = alphasCumprod(sdxlSchedulerConfig);
    const wBoth = lossWeights(ts, ac, { prior: false, snrGamma: 5 });
    const wOwn = lossWeights(ts, ac, { prior: true, snrGamma: 5 });
    expect(wOwn[1]).toBe(1);
    const inst = (kiln - 0.8 * priorOf(name)) / wOwn[0]!;
    expect(rel(inst * (wBoth[0]! + wBoth[1]!) / 2 + 0.8 * priorOf(name), script)).toBeLessThan(1e-6);
  });

  test('an odd batch with prior preservation is a named error', () => {
    expect(() => conditioningRows(3, { prior: true })).toThrow(DreamBoothBatchError);
  });

  test('compiled (C++, f32): the b4 v-prediction case to 1e-4', async () => {
    const c = toyLoss('b4_prior_v', 'kiln');
    const prog = await compile({ outputs: { loss: c.loss } });
    expect(rel(prog.run(c.feeds).loss![0]!, get('db.b4_prior_v.intended')[0]!)).toBeLessThan(1e-4);
  });
});

/** The prior half's MSE of a case (Kiln's graph with λ = 1 minus λ = 0). */
function priorOf(name: string): number {
  const m = meta[name]!;
  const save = m.lambda;
  m.lambda = 0; const a = toyLoss(name, 'kiln').value();
  m.lambda = 1; const b = toyLoss(name, 'kiln').value();
  m.lambda = save;
  return b - a;
}
