/** examples/face-embed.ts: argument and input errors, a photo without a face, and the CUDA back end's error.
 * (The networks' numbers are tested against face-api in pipeline.test.ts.) */
import { afterAll, describe, expect, it } from '@jest/globals';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { writePng } from '../../models/io/image';

const run = (...args: string[]) =>
  spawnSync(process.execPath, ['--import', 'tsx', path.resolve('examples/face-embed.ts'), ...args], { encoding: 'utf8' });
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kiln-face-cli-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

describe('face-embed CLI', () => {
  it('rejects a missing file, a non-image, a truncated image, a folder and a bad --backend with exit status 2', () => {
    const text = path.join(dir, 'notes.jpg');
    fs.writeFileSync(text, 'not an image');
    const truncated = path.join(dir, 'truncated.jpg');
    fs.writeFileSync(truncated, fs.readFileSync('node_modules/@vladmandic/face-api/demo/sample1.jpg').subarray(0, 2000));
    const missing = run(path.join(dir, 'nope.jpg'));
    expect(missing.status).toBe(2);
    expect(missing.stderr).toMatch(/nope\.jpg: no such file/);
    for (const [file, name] of [[text, 'notes\\.jpg'], [truncated, 'truncated\\.jpg'], [dir, path.basename(dir)]] as const) {
      const bad = run(file);
      expect(bad.status).toBe(2);
      expect(bad.stderr).toMatch(new RegExp(`cannot read .*${name} as an image`));
      expect(bad.stdout).toBe('');
    }
    const backend = run(text, '--backend', 'tpu');
    expect(backend.status).toBe(2);
    expect(backend.stderr).toMatch(/--backend: one of cpu, cuda, reference, not 'tpu'/);
  });

  it('prints {"faces":[]} and exits 1 for a photo without a face (compiled CPU back end)', () => {
    const width = 320, height = 240;
    const data = new Uint8Array(width * height * 3);
    for (let y = 0; y < height; y++) for (let x = 0; x < width; x++) data.set([(x * 255) / width, (y * 255) / height, 128], (y * width + x) * 3);
    const blank = path.join(dir, 'gradient.png');
    writePng(blank, { width, height, channels: 3, data });
    const r = run(blank);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(1);
    expect(JSON.parse(r.stdout)).toEqual({ faces: [] });
  }, 120_000);

  it('--backend cuda without a CUDA driver fails with exit status 2 and says why', () => {
    const r = run('node_modules/@vladmandic/face-api/demo/sample1.jpg', '--backend', 'cuda');
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/--backend cuda: the cuda back end (needs an NVIDIA GPU and driver|does not compile whole programs yet)/);
    expect(r.stdout).toBe('');
  });
});
