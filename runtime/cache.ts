/**
 * The on-disk kernel cache: one folder of content-addressed files, `<key>.<src ext>` next to the
 * artifact `<key>.<out ext>`. The key hashes everything that can change the artifact (source, included
 * headers, compiler and its version, flags), so a hit never needs to be validated and stale entries are
 * harmless (delete the folder to reclaim space).
 *
 * Folder: $KILN_CACHE, else <repo>/.kiln-cache.
 */
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { repoRoot } from './paths';

export function cacheDir(): string {
  const dir = process.env.KILN_CACHE || path.join(repoRoot, '.kiln-cache');
  mkdirSync(dir, { recursive: true });
  return dir;
}

/** sha256 over the parts, length-prefixed so that ['ab', 'c'] and ['a', 'bc'] differ. */
export function cacheKey(parts: readonly string[]): string {
  const h = createHash('sha256');
  for (const p of parts) h.update(`${Buffer.byteLength(p)}:`).update(p);
  return h.digest('hex');
}

/**
 * A digest of every file directly inside the include folders (names and bytes). Headers are a few
 * kilobytes, so reading them per compile costs nothing next to the compiler.
 */
export function includeDirsDigest(dirs: readonly string[]): string {
  const h = createHash('sha256');
  for (const dir of dirs) {
    h.update(`dir:${dir}\0`);
    if (!existsSync(dir)) continue;
    for (const name of readdirSync(dir).sort()) {
      const file = path.join(dir, name);
      if (!statSync(file).isFile()) continue;
      h.update(`file:${name}\0`).update(readFileSync(file)).update('\0');
    }
  }
  return h.digest('hex');
}

export interface CacheStats {
  /** Compiler runs started by this process. */
  readonly compiles: number;
  /** Requests answered from disk without running a compiler. */
  readonly hits: number;
}

const stats = { compiles: 0, hits: 0 };

export function cacheStats(): CacheStats {
  return { ...stats };
}

export interface CachedArtifact {
  readonly key: string;
  /** The source as compiled; the file to open when reading a compile error. */
  readonly sourcePath: string;
  /** The .so or .cubin. */
  readonly artifactPath: string;
  readonly cacheHit: boolean;
}

export interface BuildSpec {
  readonly key: string;
  readonly source: string;
  readonly sourceExt: string; // 'cpp', 'cu'
  readonly artifactExt: string; // 'so', 'cubin'
  /** Writes the artifact to `outPath`; rejects with a KernelCompileError. */
  readonly compile: (sourcePath: string, outPath: string) => Promise<void>;
}

// Concurrent requests for one key inside this process share a single compiler run.
const inFlight = new Map<string, Promise<CachedArtifact>>();

/** Returns the cached artifact for spec.key, compiling it first on a miss. */
export function buildCached(spec: BuildSpec): Promise<CachedArtifact> {
  const dir = cacheDir();
  const sourcePath = path.join(dir, `${spec.key}.${spec.sourceExt}`);
  const artifactPath = path.join(dir, `${spec.key}.${spec.artifactExt}`);
  if (existsSync(artifactPath)) {
    stats.hits++;
    return Promise.resolve({ key: spec.key, sourcePath, artifactPath, cacheHit: true });
  }
  const pending = inFlight.get(artifactPath);
  if (pending !== undefined) return pending;

  const build = (async (): Promise<CachedArtifact> => {
    // Both files appear under their final names only when complete (rename is atomic within a folder),
    // so another process sharing the cache never loads a half-written .so or compiles a half-written source.
    writeAtomically(sourcePath, (tmp) => writeFileSync(tmp, spec.source));
    const tmp = tempName(artifactPath);
    stats.compiles++;
    try {
      await spec.compile(sourcePath, tmp);
      renameSync(tmp, artifactPath);
    } finally {
      rmSync(tmp, { force: true });
    }
    return { key: spec.key, sourcePath, artifactPath, cacheHit: false };
  })();
  inFlight.set(artifactPath, build);
  const forget = (): void => void inFlight.delete(artifactPath);
  build.then(forget, forget);
  return build;
}

function tempName(finalPath: string): string {
  return `${finalPath}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
}

function writeAtomically(finalPath: string, write: (tmp: string) => void): void {
  const tmp = tempName(finalPath);
  try {
    write(tmp);
    renameSync(tmp, finalPath);
  } finally {
    rmSync(tmp, { force: true });
  }
}
