/** examples/face-embed.ts argument and input errors (the cheap paths; the networks are tested elsewhere). */
import { describe, expect, it } from '@jest/globals';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const run = (...args: string[]) =>
  spawnSync(process.execPath, ['--import', 'tsx', path.resolve('examples/face-embed.ts'), ...args], { encoding: 'utf8' });

describe('face-embed CLI', () => {
  it('rejects a missing file, a non-image and a bad --backend with a message and exit status 2', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kiln-face-cli-'));
    const text = path.join(dir, 'notes.jpg');
    fs.writeFileSync(text, 'not an image');
    try {
      const missing = run(path.join(dir, 'nope.jpg'));
      expect(missing.status).toBe(2);
      expect(missing.stderr).toMatch(/nope\.jpg: no such file/);
      const bad = run(text);
      expect(bad.status).toBe(2);
      expect(bad.stderr).toMatch(/cannot read .*notes\.jpg as an image/);
      const backend = run(text, '--backend', 'tpu');
      expect(backend.status).toBe(2);
      expect(backend.stderr).toMatch(/--backend must be one of cpu, cuda, reference/);
      expect(bad.stdout).toBe('');
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
