/**
 * Atomic file replacement: write `<path>.tmp-<pid>-<rand>` beside the target, fsync it, rename it over
 * the target, then fsync the folder (best effort). A reader sees the old file or the new one, never a
 * half-written one; on any error the temporary file is removed and the target is left untouched. A process
 * killed mid-write leaves its temporary file behind: `removeStaleTemps` deletes those of dead processes (the
 * trainer calls it on start for its run folder and its face cache).
 *
 * Every file the trainer writes goes through `writeFileAtomic` (checkpoints via writeSafetensors, PNGs via
 * writePng, JSON via writeJsonAtomic).
 *
 * Fault injection (tests only): with `KILN_FAULT_KILL_WRITE=<n>:<bytes>` in the environment, the process
 * SIGKILLs itself during its n-th atomic write (counting from 1) once `bytes` bytes reached the temporary file,
 * or, for a shorter file, after it is written and synced but before the rename — a real kill -9 at a chosen
 * point, for test/pulid/faults.test.ts.
 *
 * fs is used through its default export object (not named imports) so a test can make one call fail.
 */
import fs from 'node:fs';
import path from 'node:path';
import { randomBytes } from 'node:crypto';

const fault = parseFault(process.env.KILN_FAULT_KILL_WRITE);
let writes = 0;
/** Bytes the current atomic write may still write before the injected kill (fault injection only). */
let faultBudget = Infinity;

function parseFault(spec: string | undefined): { n: number; bytes: number } | undefined {
  const m = /^(\d+):(\d+)$/.exec(spec ?? '');
  return m ? { n: Number(m[1]), bytes: Number(m[2]) } : undefined;
}

/** Writes every byte of `bytes` at the fd's current position (writeSync may write fewer). */
export function writeAll(fd: number, bytes: Uint8Array): void {
  let done = 0;
  while (done < bytes.byteLength) {
    const n = Math.min(bytes.byteLength - done, faultBudget);
    if (n === 0 && faultBudget === 0) process.kill(process.pid, 'SIGKILL');
    const wrote = fs.writeSync(fd, bytes, done, n);
    done += wrote;
    if (faultBudget !== Infinity) faultBudget -= wrote;
  }
}

/** Writes `text` to `target` atomically. */
export function writeTextAtomic(target: string, text: string): void {
  const bytes = Buffer.from(text, 'utf8');
  writeFileAtomic(target, (fd) => writeAll(fd, bytes));
}

/** Writes `value` as JSON (with a trailing newline) to `target` atomically. */
export function writeJsonAtomic(target: string, value: unknown, indent?: number): void {
  writeTextAtomic(target, `${JSON.stringify(value, null, indent)}\n`);
}

/** Temporary files of writeFileAtomic: `<name>.tmp-<pid>-<12 hex>`. */
const TEMP_NAME = /\.tmp-(\d+)-[0-9a-f]{12}$/;

function processAlive(pid: number): boolean {
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Deletes the temporary files that killed writers left in `dir` (not those of live processes, which may still
 * be writing); returns the paths removed. A missing folder has none. */
export function removeStaleTemps(dir: string): string[] {
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return [];
  }
  const removed: string[] = [];
  for (const name of names) {
    const m = TEMP_NAME.exec(name);
    if (!m || processAlive(Number(m[1]))) continue;
    const file = path.join(dir, name);
    fs.rmSync(file, { force: true });
    removed.push(file);
  }
  return removed;
}

/** Runs `write(fd)` against a fresh temporary file and, if it succeeds, renames that file onto `target`. */
export function writeFileAtomic(target: string, write: (fd: number) => void): void {
  const tmp = `${target}.tmp-${process.pid}-${randomBytes(6).toString('hex')}`;
  let fd: number | undefined = fs.openSync(tmp, 'wx', 0o644);
  writes++;
  try {
    if (fault && writes === fault.n) faultBudget = fault.bytes;
    write(fd);
    if (fault && writes === fault.n) process.kill(process.pid, 'SIGKILL'); // the whole file written, not renamed
    fs.fsyncSync(fd);
    fs.closeSync(fd);
    fd = undefined;
    fs.renameSync(tmp, target);
  } catch (err) {
    if (fd !== undefined) {
      try {
        fs.closeSync(fd);
      } catch {
        // already failing; the original error is the one to report
      }
    }
    fs.rmSync(tmp, { force: true });
    throw err;
  } finally {
    faultBudget = Infinity;
  }
  syncDirectory(path.dirname(target));
}

/** Makes the rename durable where the platform allows fsync on a directory (not on Windows). */
function syncDirectory(dir: string): void {
  let fd: number | undefined;
  try {
    fd = fs.openSync(dir, 'r');
    fs.fsyncSync(fd);
  } catch {
    // durability of the directory entry is best effort
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
}
