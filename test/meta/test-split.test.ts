/** The fast/full split: `npm test` leaves out only the suites jest.config.js lists as slow, the full run
 * (KILN_FULL=1, what .ci/run runs) takes them, and the README starts with the two set-up commands. */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { repoRoot } from '../../compiler/ir/source';

test('the slow suites exist, and .ci/run runs the full set', async () => {
  const { slowSuites } = (await import(path.join(repoRoot, 'jest.config.js'))) as { slowSuites: string[] };
  expect(slowSuites.length).toBeGreaterThan(0);
  for (const s of slowSuites) expect(existsSync(s.replace('<rootDir>', repoRoot))).toBe(true);
  const ci = readFileSync(path.join(repoRoot, '.ci/run'), 'utf8');
  expect(ci).toMatch(/^KILN_FULL=1 npm test -- --json/m);
  const pkg = JSON.parse(readFileSync(path.join(repoRoot, 'package.json'), 'utf8')) as { scripts: Record<string, string> };
  expect(pkg.scripts['test:full']).toMatch(/^KILN_FULL=1 /);
});

test('README starts with exactly `npm install` and `npm test`', () => {
  const readme = readFileSync(path.join(repoRoot, 'README.md'), 'utf8');
  expect(readme).toMatch(/^# Kiln\n\n```sh\nnpm install\nnpm test\n```\n/);
});
