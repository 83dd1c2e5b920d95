import { fileURLToPath } from 'node:url';
import path from 'node:path';

/** The repository root and the compiler folder, from this file's location (compiler/ir/source.ts). */
const compilerDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const repoRoot = path.resolve(compilerDir, '..');

/** The first stack frame outside compiler/, as `path:line:col` relative to the repository: the user (or model)
 * code that called the op. Used in shape errors and kept on every node for `explain()`. */
export function callerLocation(): string {
  const stack = new Error().stack ?? '';
  for (const line of stack.split('\n').slice(1)) {
    const m = /\(?((?:file:\/\/)?[^()\s]+):(\d+):(\d+)\)?\s*$/.exec(line.trim());
    if (!m) continue;
    let file = m[1];
    if (file.startsWith('file://')) file = fileURLToPath(file);
    if (file.startsWith('node:') || file.includes('node_modules') || !path.isAbsolute(file)) continue;
    if (file.startsWith(compilerDir + path.sep)) continue;
    return `${path.relative(repoRoot, file)}:${m[2]}:${m[3]}`;
  }
  return '<unknown>';
}
