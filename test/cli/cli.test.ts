/** Every command line (examples/, bench/, tools/) answers --help from its option table, and rejects an unknown
 * flag and a malformed value with exit status 2 and one line on stderr, before any model is built or compiled.
 * The option table itself (tools/cli.ts) is tested in process. */
import { describe, expect, it } from '@jest/globals';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { defineCli, describeError, isMain, UsageError } from '../../tools/cli';
import { MemoryBudgetError } from '../../compiler/schedule/plan-types';

const table = defineCli({
  command: 'npx tsx demo.ts',
  summary: 'demo',
  positionals: { name: 'words', help: 'words' },
  options: {
    steps: { type: 'int', min: 1, max: 10, default: 4, help: 'steps' },
    scale: { type: 'number', min: 0, max: 2, multiple: true, help: 'scales' },
    mode: { type: 'enum', values: ['a', 'b'], default: 'a', help: 'mode' },
    budget: { type: 'bytes', min: 1, help: 'budget' },
    plan: { type: 'ints', min: 0, max: 100, lengths: [1, 3], help: 'plan' },
    weights: { type: 'dir', help: 'folder' },
    out: { type: 'file', mustExist: false, default: 'x.png', help: 'out' },
    fast: { type: 'flag', help: 'fast' },
  },
  examples: ['npx tsx demo.ts --steps 3'],
});
const bad = (...argv: string[]) => { try { table.parse(argv); } catch (e) { expect(e).toBeInstanceOf(UsageError); return (e as Error).message; } throw new Error(`accepted ${argv.join(' ')}`); };

describe('option table', () => {
  it('parses typed values, defaults and repeats', () => {
    const r = table.parse(['hello', '--steps', '7', '--scale', '0.5', '--scale=1.5', '--budget', '2KiB', '--plan', '1,2,3', '--fast', 'world']);
    expect(r.values).toEqual({ steps: 7, scale: [0.5, 1.5], mode: 'a', budget: 2048, plan: [1, 2, 3], weights: undefined, out: 'x.png', fast: true });
    expect(r.positionals).toEqual(['hello', 'world']);
    expect(table.parse([]).values.steps).toBe(4);
    expect(table.parse(['--steps=-1', '-h']).help).toBe(true);
  });

  it('rejects malformed and out-of-range values with the option named', () => {
    expect(bad('--steps', 'abc')).toBe("--steps: expected a whole number, got 'abc'");
    expect(bad('--steps=-1')).toBe('--steps: -1 is out of range (1..10)');
    expect(bad('--steps', '11')).toBe('--steps: 11 is out of range (1..10)');
    expect(bad('--steps', '2.5')).toBe('--steps: expected a whole number, got 2.5');
    expect(bad('--steps', '0x10')).toBe("--steps: expected a whole number, got '0x10'");
    expect(bad('--steps', '')).toBe("--steps: expected a whole number, got ''");
    expect(bad('--steps', '1e400')).toBe("--steps: expected a whole number, got 'Infinity'");
    expect(bad('--steps', '-1')).toBe('--steps: a value starting with "-" is written --steps=VALUE');
    expect(bad('--scale', 'NaN')).toBe("--scale: expected a number, got 'NaN'");
    expect(bad('--scale', '3')).toBe('--scale: 3 is out of range (0..2)');
    expect(bad('--mode', 'c')).toBe("--mode: one of a, b, not 'c'");
    expect(bad('--budget', '32XB')).toMatch(/^--budget: cannot read '32XB' as a byte count/);
    expect(bad('--plan', '1,2')).toBe('--plan: expected 1 or 3 comma-separated values, got 2');
    expect(bad('--weights', '/nonexistent-kiln')).toBe('--weights: /nonexistent-kiln: no such folder');
    expect(bad('--weights', 'package.json')).toBe('--weights: package.json is not a folder');
    expect(bad('--bogus')).toBe('unknown option --bogus');
    expect(bad('--steps')).toBe('--steps: needs a value');
    expect(bad('--fast=yes')).toMatch(/--fast' does not take an argument/);
  });

  it('prints usage with ranges, defaults and examples', () => {
    const u = table.usage();
    expect(u).toMatch(/usage: npx tsx demo\.ts \[words\] \[options\]/);
    expect(u).toMatch(/--steps N +steps \(1\.\.10\) \[default: 4\]/);
    expect(u).toMatch(/--mode a\|b +mode \[default: a\]/);
    expect(u).toMatch(/--scale X +scales \(0\.\.2\) \(repeatable\)/);
    expect(u).toMatch(/examples:\n {2}npx tsx demo\.ts --steps 3/);
  });

  it('names an error without its stack; isMain compares file URLs', () => {
    expect(describeError(new MemoryBudgetError(10, 20, 'x'))).toBe('MemoryBudgetError: memory plan: the budget of 10 B is below the floor of 20 B, the smallest arena the planner can reach with everything it can recompute recomputed; x. Raise the budget to at least the floor, or mark more of the model with checkpoint(fn)');
    expect(describeError(new Error('plain'))).toBe('plain');
    expect(isMain('file:///nowhere/else.ts')).toBe(false);
  });
});

// [command, a malformed value, the line it must print]
const CLIS: [string, string[], RegExp][] = [
  ['examples/generate.ts', ['--steps=-1'], /^generate: --steps: -1 is out of range \(1\.\.1000\)/],
  ['examples/pulid-generate.ts', ['--config', 'foo'], /^pulid-generate: --config: one of tiny, micro, sdxl, tiny-v1\.1, micro-v1\.1, sdxl-v1\.1, not 'foo'/],
  ['examples/pulid-generate.ts', ['--num-zero', '81'], /^pulid-generate: --num-zero: 81 is out of range \(0\.\.80\)/],
  ['examples/pulid-generate.ts', ['--sampler', 'ddim'], /^pulid-generate: --sampler: one of euler, dpmpp-2m, dpmpp-2m-karras, dpmpp-sde-karras, not 'ddim'/],
  ['examples/pulid-train.ts', ['--steps', '1,2'], /^pulid-train: --steps: expected 1 or 3 comma-separated values, got 2/],
  ['examples/face-embed.ts', ['x.jpg', '--backend', 'tpu'], /^face-embed: --backend: one of cpu, cuda, reference, not 'tpu'/],
  ['examples/ip-adapter-generate.ts', ['--kind', 'ipv9'], /^ip-adapter-generate: --kind: one of plain, plus, faceid, faceid-plus, portrait, not 'ipv9'/],
  ['examples/pulid-app.ts', ['--port', '99999'], /^pulid-app: --port: 99999 is out of range \(0\.\.65535\)/],
  ['bench/pulid-plan.ts', ['--budget', '32XB'], /^pulid-plan: --budget: cannot read '32XB' as a byte count/],
  ['examples/dreambooth-train.ts', ['--mode', 'half'], /^dreambooth-train: --mode: one of lora, full, not 'half'/],
  ['bench/dreambooth-plan.ts', ['--budget', '32XB'], /^dreambooth-plan: --budget: cannot read '32XB' as a byte count/],
  ['bench/unet.ts', ['--reps', '0'], /^unet: --reps: 0 is out of range \(1\.\.1000\)/],
  ['bench/run.ts', ['--only', 'foo'], /^run: --only: no case starts with 'foo'/],
  ['bench/gpu/check.ts', ['--backend', 'tpu'], /^check: --backend: one of cuda, cuda-emu, not 'tpu'/],
  ['bench/gpu/check.ts', ['once', '--launch', 'graph'], /^check: --launch: one of host, list, not 'graph'/],
  ['bench/gpu/kernels.ts', ['--reps', '0'], /^kernels: --reps: 0 is out of range \(1\.\.1000\)/],
  ['bench/gpu/unet-step.ts', ['--config', 'sd15'], /^unet-step: --config: one of sdxl, tiny, not 'sd15'/],
  ['bench/gpu/pulid-step.ts', ['--resolution', '100'], /^pulid-step: --resolution: a multiple of 8 pixels, not 100/],
  ['bench/face/recognizer.ts', ['--reps', 'abc'], /^recognizer: --reps: expected a whole number, got 'abc'/],
  ['bench/face/reference-forward.ts', ['foo'], /^reference-forward: unknown network 'foo'/],
  ['bench/face/full-size-check.ts', ['/no/such/dir'], /^full-size-check: '\/no\/such\/dir' has no full_size\.safetensors/],
  ['tools/gen-op-docs.ts', ['--check=yes'], /^gen-op-docs: .*--check' does not take an argument/],
  ['tools/convert.ts', ['--dtype', 'F8', 'a.bin', 'b.safetensors'], /^convert: --dtype: one of keep, F32, F16, BF16, not 'F8'/],
];

function run(file: string, args: string[], debug = ''): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, ['--import', 'tsx', path.resolve(file), ...args], { env: { ...process.env, KILN_DEBUG: debug } });
    let stdout = '', stderr = '';
    p.stdout.on('data', (d) => { stdout += d; });
    p.stderr.on('data', (d) => { stderr += d; });
    p.on('close', (status) => resolve({ status, stdout, stderr }));
  });
}

/** Runs the jobs two at a time (tsx start-up dominates; the machine may be shared). */
async function pool<T>(jobs: (() => Promise<T>)[], width = 2): Promise<T[]> {
  const out: T[] = new Array(jobs.length);
  let next = 0;
  await Promise.all(Array.from({ length: width }, async () => { while (next < jobs.length) { const i = next++; out[i] = await jobs[i](); } }));
  return out;
}

describe('every command line', () => {
  it('answers --help (exit 0), rejects an unknown flag and a bad value (exit 2, one line), without doing any work', async () => {
    const jobs = CLIS.flatMap(([file, badArgs]) => [() => run(file, ['--help']), () => run(file, ['--no-such-flag']), () => run(file, badArgs)]);
    const results = await pool(jobs);
    CLIS.forEach(([file, , message], i) => {
      const [help, unknown, badValue] = results.slice(3 * i, 3 * i + 3);
      const name = path.basename(file, '.ts');
      expect({ file, status: help.status, stderr: help.stderr }).toEqual({ file, status: 0, stderr: '' });
      expect(help.stdout).toMatch(new RegExp(`usage: npx tsx ${file.replace(/[.]/g, '\\.')}`));
      expect(help.stdout).toMatch(/-h, --help/);
      expect(help.stdout).toMatch(/examples:\n {2}\S/);
      expect({ file, status: unknown.status, stderr: unknown.stderr }).toEqual({ file, status: 2, stderr: `${name}: unknown option --no-such-flag (see --help)\n` });
      expect({ file, status: badValue.status }).toEqual({ file, status: 2 });
      expect(badValue.stderr.split('\n').filter(Boolean)).toHaveLength(1);
      expect(badValue.stderr).toMatch(message);
      expect(badValue.stdout).toBe('');
    });
  }, 600_000);

  it('a named error during the work is one paragraph without a stack (exit 1); KILN_DEBUG=1 prints the stack', async () => {
    const args = ['--config', 'micro', '--ckpt', 'package.json']; // not a safetensors file: fails while loading, before any compile
    const [plain, debug] = await pool([() => run('examples/pulid-generate.ts', args), () => run('examples/pulid-generate.ts', args, '1')]);
    expect(plain.status).toBe(1);
    // (the checkpoint reader words the message; this test checks its frame: the command, the error's name, the
    // file, no stack)
    expect(plain.stderr).toMatch(/^pulid-generate: Checkpoint\w*Error: checkpoint package\.json: [^\n]+\n\(set KILN_DEBUG=1 for the stack trace\)\n$/);
    expect(debug.status).toBe(1);
    expect(debug.stderr).toMatch(/^Checkpoint\w*Error: checkpoint package\.json: [^\n]+\n {4}at /);
  }, 120_000);
});
