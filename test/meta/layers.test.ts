/** Inside compiler/, each folder imports only what compiler/README.md's "may import" column allows ("(types)":
 * `import type` only), as the top-level order models → compiler → runtime → kernels is checked in project.test.ts. */
import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { repoRoot } from '../../compiler/ir/source';

function rules(): Map<string, Map<string, 'all' | 'types'>> {
  const out = new Map<string, Map<string, 'all' | 'types'>>();
  for (const m of readFileSync(path.join(repoRoot, 'compiler/README.md'), 'utf8').matchAll(/^\| `([a-z]+)\/` \|[^|]*\| ([^|]+) \|$/gm)) {
    const allowed = new Map<string, 'all' | 'types'>();
    for (const part of m[2].split(',')) {
      const p = part.trim().match(/^([a-z]+)( \(types\))?/);
      if (p) allowed.set(p[1], p[2] ? 'types' : 'all');
    }
    out.set(m[1], allowed);
  }
  return out;
}

test('compiler folders import only what compiler/README.md allows', () => {
  const table = rules();
  const folders = readdirSync(path.join(repoRoot, 'compiler'), { withFileTypes: true }).filter((d) => d.isDirectory()).map((d) => d.name);
  expect(folders.filter((f) => !table.has(f))).toEqual([]);  // every folder has a row
  const bad: string[] = [];
  for (const folder of folders) {
    const allowed = table.get(folder)!;
    for (const f of readdirSync(path.join(repoRoot, 'compiler', folder)).filter((x) => x.endsWith('.ts'))) {
      const text = readFileSync(path.join(repoRoot, 'compiler', folder, f), 'utf8');
      for (const m of text.matchAll(/^(import|export)( type)? [^;]*? from '\.\.\/([a-z]+)\//gm)) {
        const target = m[3], typeOnly = m[2] !== undefined;
        if (!folders.includes(target)) continue;
        const rule = allowed.get(target);
        if (!rule || (rule === 'types' && !typeOnly)) bad.push(`compiler/${folder}/${f} imports ${target}/${rule === 'types' ? ' (only types allowed)' : ''}`);
      }
    }
  }
  expect(bad).toEqual([]);
});
