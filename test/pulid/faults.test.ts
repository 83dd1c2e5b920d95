/** kill -9 during the trainer's writes: a child process (fault-child.ts) runs a training loop over the trainer's run
 * files and is SIGKILLed — by the fault-injection hook of models/io/atomicWrite.ts in the middle of a chosen write
 * (metrics.json, the checkpoint or a sample PNG, at a seeded random byte), or from outside at a seeded random time.
 * After every kill the checkpoint must load through PulidTrainer.load's checks and metrics.json must read back,
 * holding the checkpoint's steps (at most one step ahead); then the next child resumes. The run that finally
 * completes must equal an uninterrupted one bit for bit, with every step in metrics.json exactly once. */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { microPulidConfig } from '../../models/pulid/config';
import { PulidModel } from '../../models/pulid/model';
import { PulidTrainer } from '../../models/pulid/trainer';
import { readMetrics } from '../../models/pulid/runFiles';
import { readSafetensors } from '../../models/io/safetensors';
import type { TextConditioner } from '../../models/pulid/text';
import { runChild } from './fault-child';

const STEPS = 10;
const SEED = Number(process.env.KILN_FUZZ_SEED ?? 20261202);
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kiln-faults-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));
const child = path.resolve('test/pulid/fault-child.ts');

function run(run: string, env: Record<string, string>, killAfterMs?: number): Promise<{ code: number | null; signal: string | null; out: string }> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, ['--import', 'tsx', child, run, String(STEPS)], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    p.stdout.on('data', (d) => { out += d; });
    p.stderr.on('data', (d) => { out += d; });
    let timer: NodeJS.Timeout | undefined;
    if (killAfterMs !== undefined) {
      // Counted from the child's first line of output or its first file, whichever comes first, so the kill lands in the loop.
      const poll = setInterval(() => {
        if (fs.existsSync(path.join(run, 'metrics.json')) || out) { clearInterval(poll); timer = setTimeout(() => p.kill('SIGKILL'), killAfterMs); }
      }, 5);
      p.on('exit', () => clearInterval(poll));
    }
    p.on('error', reject);
    p.on('exit', (code, signal) => { if (timer) clearTimeout(timer); resolve({ code, signal, out }); });
  });
}

const model = new PulidModel(microPulidConfig, { seed: 0 });
const trainer = () => new PulidTrainer(model, [], {} as TextConditioner, { steps: { 1: STEPS, 2: 0, 3: 0 }, seed: 3 });

test('SIGKILL at random points of the trainer\'s writes: last checkpoint and metrics.json intact, resume continues to the same result', async () => {
  const ref = path.join(dir, 'ref');
  runChild(ref, STEPS);
  const faulted = path.join(dir, 'faulted');
  let a = SEED >>> 0;
  const rand = (n: number) => { a = (Math.imul(a, 1664525) + 1013904223) >>> 0; return a % n; };
  const kills: string[] = [];
  let completed = false;
  for (let attempt = 0; attempt < 8; attempt++) {
    const external = attempt % 3 === 2;
    // Writes per step: metrics.json and the checkpoint (+ a PNG every 4th); a kill point among the first ~12.
    const env: Record<string, string> = external ? {} : { KILN_FAULT_KILL_WRITE: `${1 + rand(12)}:${rand(170_000)}` };
    const r = await run(faulted, env, external ? rand(400) : undefined);
    if (r.code === 0) { expect(r.out).toMatch(/done/); completed = true; break; }
    expect([r.signal, r.code, r.out]).toEqual(['SIGKILL', null, expect.any(String)]);
    kills.push(external ? 'external' : env.KILN_FAULT_KILL_WRITE!);
    // An injected kill always lands after the temporary file was created: the writer's leftovers are there.
    if (!external) expect(fs.readdirSync(faulted).filter((f) => /\.tmp-\d+-[0-9a-f]{12}$/.test(f)).length).toBe(1);
    // What a resuming run will read must be intact.
    const last = path.join(faulted, 'last.safetensors');
    if (!fs.existsSync(last)) continue;
    const t = trainer();
    t.load(last);
    const m = readMetrics(path.join(faulted, 'metrics.json'));
    expect(m.history.length - t.done[1]).toBeGreaterThanOrEqual(0);
    expect(m.history.length - t.done[1]).toBeLessThanOrEqual(1);
    expect(m.history.map((h) => h.step)).toEqual(Array.from({ length: m.history.length }, (_v, i) => i));
  }
  console.log(`kills (write:byte or external): ${kills.join(', ')}`);
  expect(kills.filter((k) => k !== 'external').length).toBeGreaterThanOrEqual(2);
  if (!completed) runChild(faulted, STEPS); // every attempt was killed: finish (resuming) in-process
  expect(fs.readdirSync(faulted).filter((f) => /\.tmp-/.test(f))).toEqual([]);
  const want = readSafetensors(path.join(ref, 'last.safetensors')), got = readSafetensors(path.join(faulted, 'last.safetensors'));
  expect(got.metadata).toEqual(want.metadata); // includes the checksum over counters, config and every tensor
  expect(readMetrics(path.join(faulted, 'metrics.json'))).toEqual(readMetrics(path.join(ref, 'metrics.json')));
  expect(fs.readFileSync(path.join(faulted, 'sample.png')).equals(fs.readFileSync(path.join(ref, 'sample.png')))).toBe(true);
}, 120_000);
