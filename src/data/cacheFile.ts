/**
 * The cache on disk: where it lives, reading it, and writing it atomically (a temporary file in
 * the same directory, then a rename), so a reader never sees a half-written cache.
 */
import { existsSync } from "node:fs";
import { mkdir, open, readFile, rename, rm } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import * as TE from "fp-ts/lib/TaskEither.js";

/** The environment variable that overrides the default cache directory. */
export const CACHE_DIR_ENV = "WGRAD_CACHE_DIR";

/** The nearest directory at or above `start` holding a package.json (the package root), if any. */
export function findPackageRoot(start: string): string | undefined {
  for (let dir = resolve(start); ; dir = dirname(dir)) {
    if (existsSync(join(dir, "package.json"))) return dir;
    if (dirname(dir) === dir) return undefined;
  }
}

/**
 * The cache directory: `explicit` if given, else `$WGRAD_CACHE_DIR`, else
 * `node_modules/.cache/wgrad` under wgrad's package root (the directory holding the package.json
 * above this module), else under the working directory.
 */
export function resolveCacheDir(explicit?: string, env: NodeJS.ProcessEnv = process.env): string {
  if (explicit) return resolve(explicit);
  const fromEnv = env[CACHE_DIR_ENV];
  if (fromEnv) return resolve(fromEnv);
  const root = findPackageRoot(dirname(fileURLToPath(import.meta.url))) ?? process.cwd();
  return join(root, "node_modules", ".cache", "wgrad");
}

/** The cache file of a dataset in a cache directory. */
export const cacheFilePath = (dir: string, dataset: string): string => join(dir, `${dataset}.wgds`);

/** The file's bytes; Left with the reason if it cannot be read (a missing file included). */
export const readCacheFile = (path: string): TE.TaskEither<string, Uint8Array> =>
  TE.tryCatch(
    async () => new Uint8Array(await readFile(path)),
    (e) => ((e as NodeJS.ErrnoException).code === "ENOENT" ? "no cache file yet" : `could not read it: ${(e as Error).message}`),
  );

let tmpCounter = 0;

/** Writes the segments to `path` atomically: a temporary file in the same directory, then a rename. */
export const writeFileAtomic = (path: string, segments: readonly Uint8Array[]): TE.TaskEither<string, void> =>
  TE.tryCatch(
    async () => {
      await mkdir(dirname(path), { recursive: true });
      const tmp = `${path}.${process.pid}.${Date.now().toString(36)}.${tmpCounter++}.tmp`;
      try {
        const fh = await open(tmp, "w");
        try {
          const total = segments.reduce((n, s) => n + s.byteLength, 0);
          const { bytesWritten } = await fh.writev([...segments]);
          if (bytesWritten !== total) throw new Error(`short write: ${bytesWritten} of ${total} bytes`);
          await fh.sync();
        } finally {
          await fh.close();
        }
        await rename(tmp, path);
      } catch (e) {
        await rm(tmp, { force: true });
        throw e;
      }
    },
    (e) => `could not write ${path}: ${(e as Error).message}`,
  );
