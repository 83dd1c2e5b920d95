/** Starting a script on N ranks with Open MPI's mpirun, for the multi-process tests and benches. As root mpirun
 * needs --allow-run-as-root; with more ranks than cores, --oversubscribe (CI machines have 2 cores). */
import { spawn, spawnSync } from 'node:child_process';
import path from 'node:path';
import { collectiveInfo } from '../../runtime/collective';
import { repoRoot } from '../../runtime/paths';

const root = repoRoot;
const tsx = path.join(root, 'node_modules/.bin/tsx');

/** Why multi-process tests cannot run here ('' when they can): mpirun missing, or the addon built without MPI. */
export function mpiMissing(): string {
  if (spawnSync('mpirun', ['--version']).status !== 0) return 'mpirun not found (apt-get install openmpi-bin libopenmpi-dev)';
  if (!collectiveInfo().mpi) return 'the addon was built without MPI (install libopenmpi-dev, then npm run build:addon)';
  return '';
}

export function mpirunArgs(np: number, script: string, args: readonly string[]): string[] {
  const asRoot = process.getuid?.() === 0 ? ['--allow-run-as-root'] : [];
  return ['-np', String(np), '--oversubscribe', ...asRoot, tsx, path.resolve(root, script), ...args];
}

export interface RunResult { code: number | null; stdout: string; stderr: string; seconds: number }

/** Runs `script` on `np` ranks; `onLine` sees stdout lines as they come (to act mid-run, e.g. kill a rank). */
export function mpirun(np: number, script: string, args: readonly string[], o: { env?: NodeJS.ProcessEnv; timeoutMs?: number; onLine?: (line: string) => void } = {}): Promise<RunResult> {
  const t0 = performance.now();
  return new Promise((resolve) => {
    const p = spawn('mpirun', mpirunArgs(np, script, args), { cwd: root, env: { ...process.env, ...o.env } });
    let stdout = '', stderr = '', pending = '';
    p.stdout.on('data', (d: Buffer) => {
      stdout += d; pending += d;
      const lines = pending.split('\n'); pending = lines.pop()!;
      for (const l of lines) o.onLine?.(l);
    });
    p.stderr.on('data', (d: Buffer) => { stderr += d; });
    const timer = setTimeout(() => p.kill('SIGKILL'), o.timeoutMs ?? 600_000);
    p.on('close', (code) => { clearTimeout(timer); resolve({ code, stdout, stderr, seconds: (performance.now() - t0) / 1000 }); });
  });
}
