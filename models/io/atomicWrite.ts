/**
 * Atomic file replacement: write `<path>.tmp-<pid>-<rand>` beside the target, fsync it, rename it over
 * the target, then fsync the folder (best effort). A reader sees the old file or the new one, never a
 * half-written one; on any error the temporary file is removed and the target is left untouched.
 *
 * fs is used through its default export object (not named imports) so a test can make one call fail.
 */
import fs from 'node:fs';
import path from 'node:path';
import { randomBytes } from 'node:crypto';

/** Writes every byte of `bytes` at the fd's current position (writeSync may write fewer). */
export function writeAll(fd: number, bytes: Uint8Array): void {
  let done = 0;
  while (done < bytes.byteLength) {
    done += fs.writeSync(fd, bytes, done, bytes.byteLength - done);
  }
}

/** Runs `write(fd)` against a fresh temporary file and, if it succeeds, renames that file onto `target`. */
export function writeFileAtomic(target: string, write: (fd: number) => void): void {
  const tmp = `${target}.tmp-${process.pid}-${randomBytes(6).toString('hex')}`;
  let fd: number | undefined = fs.openSync(tmp, 'wx', 0o644);
  try {
    write(fd);
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
