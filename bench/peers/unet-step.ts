/** The tiny-UNet training-step case of bench/run.ts (issue 16): one step = forward, MSE loss, backward, AdamW, on
 * Kiln's compiled CPU program and on a PyTorch eager twin of the same network (bench/peers/unet_torch.py) with the
 * same weights, read from the safetensors file Kiln writes. The twin's first prediction must match Kiln's
 * (max |Δ| / max |pred| < 1e-3) before either time is used; a mismatch is reported instead of a ratio. */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { compile, type CpuProgram } from '../../compiler/index';
import { pooledTextDim, tinyUnetConfig } from '../../models/unet/index';
import { unetTrainGraph } from '../unet-train-graph';
import { loadWeightsInto, materialize, paramsOf, saveParams } from '../../models/weights';
import { peerEnv, relErr, type PeerIsa, type PeerTiming } from './peers';

const here = path.dirname(fileURLToPath(import.meta.url));
const PYTHON = '/usr/bin/python3';
const LR = 1e-4, CTX_LEN = 8;

export interface UnetStepResult {
  name: string; shape: string; params: number;
  kiln: PeerTiming & { compileMs: number; kernels: number };
  torch?: PeerTiming & { relErr: number; lossKiln: number; lossTorch: number };
  vsTorch?: number; vsTorchBest?: number; note?: string;
}

/** `time` is run.ts's timer (median and min of repeated calls). */
export async function unetStep(threads: number, minSamples: number, maxTime: number, time: (name: string, fn: () => void) => PeerTiming, peers: boolean, isa: PeerIsa): Promise<UnetStepResult> {
  const c = tinyUnetConfig, S = c.sampleSize;
  const { unet, shapes, pred, loss, updates } = unetTrainGraph(c, CTX_LEN, LR);
  const t0 = performance.now();
  const prog: CpuProgram = await compile({ outputs: { loss, pred }, updates });
  const compileMs = performance.now() - t0;
  const fill = (n: number, seed: number) => Float32Array.from({ length: n }, (_, i) => Math.sin(i * 0.37 + seed));
  const feeds: Record<string, Float32Array> = {
    sample: fill(4 * S * S, 1), t: Float32Array.of(500), ctx: fill(CTX_LEN * c.crossAttentionDim, 2), pooled: fill(pooledTextDim(c), 3),
    timeIds: Float32Array.of(64, 64, 0, 0, 64, 64), target: fill(4 * S * S, 4),
  };
  const dir = mkdtempSync(path.join(os.tmpdir(), 'kiln-unet-peer-'));
  try {
    // Both sides read their weights from the one file: Kiln's initial values, written as F32 safetensors.
    const file = path.join(dir, 'weights.safetensors');
    saveParams(file, materialize(new Map(), unet), unet);
    const store = new Map<string, Float64Array>();
    loadWeightsInto(store, file, unet);
    const { loaded } = prog.loadParams(store, { strict: false });  // the optimizer state keeps its zero init
    if (loaded.length !== paramsOf(unet).size) throw new Error(`tiny-UNet step: loaded ${loaded.length} of ${paramsOf(unet).size} parameters from ${file}`);
    const first = prog.run(feeds);
    const kPred = first.pred as Float32Array, kLoss = (first.loss as Float32Array)[0];
    const kiln = time('kiln tiny-UNet step', () => prog.parts.lib.call('kiln_run', prog.arena));
    const res: UnetStepResult = {
      name: 'tiny-UNet training step', shape: `tinyUnetConfig, [1,4,${S},${S}], ctx ${CTX_LEN} tokens; fwd+bwd+AdamW`, params: unet.paramCount(),
      kiln: { ...kiln, compileMs, kernels: prog.kernels.length },
    };
    if (!peers) return { ...res, note: 'not run (--no-peers)' };
    if (!existsSync(PYTHON) || spawnSync(PYTHON, ['-c', 'import torch, numpy']).status !== 0) return { ...res, note: `torch not importable by ${PYTHON}: PyTorch peer skipped` };
    const inputs: Record<string, { shape: number[]; file: string }> = {};
    for (const [k, s] of Object.entries(shapes)) {
      writeFileSync(path.join(dir, `${k}.bin`), Buffer.from(feeds[k].buffer));
      inputs[k] = { shape: s, file: `${k}.bin` };
    }
    writeFileSync(path.join(dir, 'spec.json'), JSON.stringify({ config: c, threads, minSamples, maxTime, lr: LR, weights: 'weights.safetensors', inputs }));
    const r = spawnSync(PYTHON, [path.join(here, 'unet_torch.py'), dir], { encoding: 'utf8', env: peerEnv(isa, { OMP_NUM_THREADS: String(threads) }) });
    if (r.status !== 0) return { ...res, note: `unet_torch.py failed (${r.status}): ${r.stderr.trim().split('\n').slice(-3).join(' | ')}` };
    const j = JSON.parse(readFileSync(path.join(dir, 'result.json'), 'utf8')) as PeerTiming & { loss: number };
    const b = readFileSync(path.join(dir, 'pred.bin'));
    const err = relErr(kPred, new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength)));
    res.torch = { medianMs: j.medianMs, minMs: j.minMs, samples: j.samples, relErr: err, lossKiln: kLoss, lossTorch: j.loss };
    if (err < 1e-3) { res.vsTorch = j.medianMs / kiln.medianMs; res.vsTorchBest = j.minMs / kiln.minMs; } else res.note = `PyTorch prediction differs (rel. err ${err.toExponential(2)}): not compared`;
    return res;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
