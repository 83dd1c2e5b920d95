/** Project conventions as tests: the op docs are generated from the registry, files stay small, and imports
 * only point down the layers (models → compiler → runtime → kernels). */
import { readFileSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { repoRoot } from '../../compiler/ir/source';
import { renderOpDocs } from '../../tools/gen-op-docs';

function files(dir: string, ext = '.ts'): string[] {
  const out: string[] = [];
  for (const e of readdirSync(path.join(repoRoot, dir))) {
    const p = path.join(dir, e);
    if (statSync(path.join(repoRoot, p)).isDirectory()) out.push(...files(p, ext));
    else if (p.endsWith(ext)) out.push(p);
  }
  return out;
}

test('docs/ops.md is generated from the current registry (npm run docs:ops)', () => {
  expect(readFileSync(path.join(repoRoot, 'docs/ops.md'), 'utf8')).toBe(renderOpDocs());
}, 60000);

test('source files stay under 600 lines', () => {
  const big = ['compiler', 'runtime', 'models', 'examples', 'tools'].flatMap((d) => files(d))
    .map((f) => [f, readFileSync(path.join(repoRoot, f), 'utf8').split('\n').length] as const).filter(([, n]) => n > 600);
  expect(big).toEqual([]);
});

test('imports only point down: models → compiler → runtime → kernels', () => {
  const rank: Record<string, number> = { models: 3, compiler: 2, runtime: 1 };
  const bad: string[] = [];
  for (const layer of Object.keys(rank)) {
    for (const f of files(layer)) {
      for (const m of readFileSync(path.join(repoRoot, f), 'utf8').matchAll(/from '(\.[^']+)'/g)) {
        const target = path.relative(repoRoot, path.resolve(path.dirname(path.join(repoRoot, f)), m[1])).split(path.sep)[0];
        if (target in rank && rank[target] > rank[layer]) bad.push(`${f} imports ${m[1]}`);
      }
    }
  }
  expect(bad).toEqual([]);
});

// Every file written for a user (images, metrics, results, docs) goes through models/io/atomicWrite.ts: a reader
// sees the old file or the new one, never half of one. Scratch files inside a private temporary folder
// (bench/peers' mkdtemp folders, the runtime's build folders, which runtime/cache.ts renames into place) are exempt.
test('outputs are written atomically (no plain writeFileSync outside scratch folders)', () => {
  const scratch = new Set(['bench/peers/peers.ts', 'bench/peers/unet-step.ts']);
  const bad = ['models', 'compiler', 'tools', 'examples', 'bench'].flatMap((d) => files(d))
    .filter((f) => !scratch.has(f) && /\bwriteFileSync\s*\(/.test(readFileSync(path.join(repoRoot, f), 'utf8')));
  expect(bad).toEqual([]);
});
