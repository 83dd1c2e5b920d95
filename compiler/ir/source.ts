import { fileURLToPath } from 'node:url';
import path from 'node:path';

/** The repository root and the compiler folder, from this file's location (compiler/ir/source.ts). */
const compilerDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const repoRoot = path.resolve(compilerDir, '..');

const located = new Map<string, string>();
let override: string | undefined;

/** Runs `body` with every node it builds located at `src` (autodiff: a VJP's nodes take the forward node's line,
 * as `file:line (backward of op)`, so reports and errors about gradients name the model's source). */
export function withSource<T>(src: string, body: () => T): T {
  const prev = override;
  override = src;
  try { return body(); } finally { override = prev; }
}

/** The first stack frame outside compiler/, as `path:line:col` relative to the repository: the user (or model)
 * code that called the op. Used in shape errors and kept on every node for `explain()`.
 *
 * Formatting a stack through source maps costs ~50 µs, once per node; so the raw call site (generated file,
 * line, column) is looked up first and each one is formatted only once (a UNet builds the same lines many times). */
export function callerLocation(): string {
  if (override !== undefined) return override;
  const orig = Error.prepareStackTrace;
  let sites: unknown;
  try {
    Error.prepareStackTrace = (_e, cs) => cs;
    sites = new Error().stack;
  } finally {
    Error.prepareStackTrace = orig;
  }
  let key = '';
  if (Array.isArray(sites)) {
    for (const site of sites as NodeJS.CallSite[]) {
      let file = site.getFileName() ?? '';
      if (file.startsWith('file://')) file = fileURLToPath(file);
      if (!path.isAbsolute(file) || file.startsWith(compilerDir + path.sep)) continue;
      key = `${file}:${site.getLineNumber()}:${site.getColumnNumber()}`;
      break;
    }
  }
  const hit = key && located.get(key);
  if (hit) return hit;
  const loc = formatCaller();
  if (key) located.set(key, loc);
  return loc;
}

function formatCaller(): string {
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
