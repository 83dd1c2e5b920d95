/** examples/pulid-generate.ts (micro config, random weights): the compiled program's image is the float64
 * evaluator's, up to PNG quantization; the ID scale changes the image; two reference photos run. */
import { afterAll, describe, expect, it } from '@jest/globals';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { decodeImage } from '../../models/io/image';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kiln-pulid-gen-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));
const photo = (i: number) => `node_modules/@vladmandic/face-api/demo/sample${i}.jpg`;
const run = (...args: string[]) => {
  const config = args.includes('--config') ? [] : ['--config', 'micro'];
  const r = spawnSync(process.execPath, ['--import', 'tsx', path.resolve('examples/pulid-generate.ts'), ...config, '--prompt', 'a watercolor portrait', ...args], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`pulid-generate failed (${r.status}):\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
};
const pixels = (file: string) => Array.from(decodeImage(file).data);

describe('pulid-generate CLI', () => {
  it('compiled and reference back ends give the same image; the ID scale changes it', () => {
    // Random micro weights: the ID branch is weak next to the text branch, so a large scale shows it.
    run('--id', photo(2), '--id-scale', '0', '--id-scale', '200', '--mode', 'ortho_v2', '--out', path.join(dir, 'cpu.png'));
    run('--id', photo(2), '--id-scale', '200', '--mode', 'ortho_v2', '--backend', 'reference', '--out', path.join(dir, 'ref.png'));
    const cpu = pixels(path.join(dir, 'cpu_s200.png')), ref = pixels(path.join(dir, 'ref.png')), s0 = pixels(path.join(dir, 'cpu_s0.png'));
    expect(cpu.length).toBe(64 * 64 * 3);
    // float32 vs float64 through 4 UNet steps and the VAE: at most one 8-bit level apart.
    expect(Math.max(...cpu.map((v, i) => Math.abs(v - ref[i])))).toBeLessThanOrEqual(1);
    const changed = cpu.filter((v, i) => Math.abs(v - s0[i]) >= 2).length;
    expect(changed).toBeGreaterThan(cpu.length / 4);
  }, 600_000);

  it('v1.1 (IDFormer) with DPM++ SDE Karras, CFG + negative prompt, style preset + --num-zero, two photos: compiled = reference', () => {
    const args = ['--config', 'micro-v1.1', '--id', photo(2), '--id', photo(3), '--id-scale', '200', '--steps', '2', '--guidance', '1.5',
      '--negative-prompt', 'blurry', '--mode', 'style', '--num-zero', '4', '--sampler', 'dpmpp-sde-karras', '--seed', '3'];
    const out = run(...args, '--out', path.join(dir, 'v11.png'));
    expect(out).toMatch(/ortho, num_zero 4, dpmpp-sde-karras × 2/);
    run(...args, '--backend', 'reference', '--out', path.join(dir, 'v11-ref.png'));
    const cpu = pixels(path.join(dir, 'v11.png')), ref = pixels(path.join(dir, 'v11-ref.png'));
    expect(cpu.length).toBe(64 * 64 * 3);
    expect(Math.max(...cpu.map((v, i) => Math.abs(v - ref[i])))).toBeLessThanOrEqual(1);
  }, 900_000);

  it('several --id photos: tokens concatenated, one image', () => {
    const out = run('--id', photo(2), '--id', photo(3), '--out', path.join(dir, 'two.png'));
    expect(out).toMatch(/2 reference photo\(s\)/);
    expect(pixels(path.join(dir, 'two.png')).length).toBe(64 * 64 * 3);
  }, 600_000);
});
