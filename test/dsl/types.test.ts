import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { repoRoot } from '../../compiler/ir/source';

test('type-level shape rules: fixtures compile, and every @ts-expect-error fires', () => {
  const tsc = path.join(repoRoot, 'node_modules', '.bin', 'tsc');
  const r = spawnSync(tsc, ['--noEmit', '-p', path.join(repoRoot, 'test', 'types')], { encoding: 'utf8' });
  expect(r.stdout + r.stderr).toBe('');
  expect(r.status).toBe(0);
}, 120000);

test('the whole project type-checks under strict TypeScript (npm run typecheck)', () => {
  const tsc = path.join(repoRoot, 'node_modules', '.bin', 'tsc');
  const r = spawnSync(tsc, ['--noEmit', '-p', path.join(repoRoot, 'tsconfig.json')], { encoding: 'utf8' });
  expect(r.stdout + r.stderr).toBe('');
}, 300000);
