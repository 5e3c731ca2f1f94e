/**
 * The binary cache format of a dataset's two splits (pure encode and decode):
 *
 *     u32 LE  L                   length of the header in bytes
 *     L bytes header              UTF-8 JSON, decoded with io-ts (CacheHeader)
 *     train images  (Ntr·h·w bytes), train labels (Ntr bytes),
 *     test images   (Nte·h·w bytes), test labels  (Nte bytes)
 *
 * A file is used only if its header decodes, names the same dataset, source (package@version),
 * split rule and image size as the caller expects, the file size matches the counts exactly, and
 * the payload checksum matches. Anything else is a reason to rebuild, never data.
 */
import * as E from "fp-ts/lib/Either.js";
import { pipe } from "fp-ts/lib/function.js";
import * as t from "io-ts";
import { checksumAll } from "./checksum.js";
import { formatDecodeErrors } from "./ioErrors.js";
import type { DatasetSplits, ImageDataset } from "./types.js";

export const CACHE_MAGIC = "wgrad-image-dataset";
export const CACHE_VERSION = 1;
/** Headers are small; a length prefix above this means the file is not a cache. */
const MAX_HEADER_BYTES = 1 << 16;

interface NonNegativeIntBrand {
  readonly NonNegativeInt: unique symbol;
}
const NonNegativeInt = t.brand(t.Int, (n): n is t.Branded<t.Int, NonNegativeIntBrand> => n >= 0, "NonNegativeInt");
interface PositiveIntBrand {
  readonly PositiveInt: unique symbol;
}
const PositiveInt = t.brand(t.Int, (n): n is t.Branded<t.Int, PositiveIntBrand> => n > 0, "PositiveInt");

/** The cache header. */
export const CacheHeader = t.type(
  {
    magic: t.literal(CACHE_MAGIC),
    version: t.literal(CACHE_VERSION),
    dataset: t.string,
    source: t.string,
    split: t.string,
    height: PositiveInt,
    width: PositiveInt,
    counts: t.type({ train: NonNegativeInt, test: NonNegativeInt }),
    checksum: NonNegativeInt,
  },
  "CacheHeader",
);
export type CacheHeader = t.TypeOf<typeof CacheHeader>;

/** What a cache must have been built from to be used. */
export interface CacheIdentity {
  readonly dataset: string;
  readonly source: string;
  readonly split: string;
  readonly height: number;
  readonly width: number;
}

const payload = (s: DatasetSplits): Uint8Array[] => [s.train.images, s.train.labels, s.test.images, s.test.labels];

/** The cache file's bytes, as segments to write one after another (the images are not copied). */
export function encodeCache(splits: DatasetSplits, id: CacheIdentity): Uint8Array[] {
  for (const d of [splits.train, splits.test])
    if (d.height !== id.height || d.width !== id.width || d.images.length !== d.count * d.height * d.width || d.labels.length !== d.count)
      throw new RangeError(`encodeCache: a split's arrays do not match its count ${d.count} and size ${id.height}×${id.width}`);
  const segments = payload(splits);
  const header = {
    magic: CACHE_MAGIC,
    version: CACHE_VERSION,
    ...id,
    counts: { train: splits.train.count, test: splits.test.count },
    checksum: checksumAll(segments),
  };
  const json = new TextEncoder().encode(JSON.stringify(header));
  const prefix = new Uint8Array(4);
  new DataView(prefix.buffer).setUint32(0, json.byteLength, true);
  return [prefix, json, ...segments];
}

/** The header, or why the bytes do not start with one. */
export function decodeCacheHeader(bytes: Uint8Array): E.Either<string, { header: CacheHeader; payloadOffset: number }> {
  if (bytes.byteLength < 4) return E.left(`the file holds ${bytes.byteLength} bytes, too few for a header`);
  const length = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getUint32(0, true);
  if (length > MAX_HEADER_BYTES || 4 + length > bytes.byteLength)
    return E.left(`the header length prefix says ${length} bytes, but the file holds ${bytes.byteLength} bytes (not a wgrad dataset cache, or truncated)`);
  return pipe(
    E.tryCatch(
      (): unknown => JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes.subarray(4, 4 + length))),
      (e) => `the header is not JSON: ${(e as Error).message}`,
    ),
    E.chain((json) =>
      pipe(
        CacheHeader.decode(json),
        E.mapLeft((errs) => `bad header: ${formatDecodeErrors(errs)}`),
      ),
    ),
    E.map((header) => ({ header, payloadOffset: 4 + length })),
  );
}

/** Why a decoded header does not describe the expected data, or nothing if it does. */
function mismatch(h: CacheHeader, id: CacheIdentity): string | undefined {
  const fields = ["dataset", "source", "split", "height", "width"] as const;
  const bad = fields.filter((f) => h[f] !== id[f]);
  return bad.length
    ? `the cache was built for ${bad.map((f) => `${f} ${JSON.stringify(h[f])}`).join(", ")}; expected ${bad.map((f) => JSON.stringify(id[f])).join(", ")}`
    : undefined;
}

/**
 * The splits stored in `bytes`, or why they cannot be used. The arrays returned are copies, so
 * the file's buffer can be dropped.
 */
export function decodeCache(bytes: Uint8Array, id: CacheIdentity): E.Either<string, DatasetSplits> {
  return pipe(
    decodeCacheHeader(bytes),
    E.chain(({ header, payloadOffset }) => {
      const why = mismatch(header, id);
      if (why) return E.left(why);
      const size = header.height * header.width;
      const { train, test } = header.counts;
      const expected = payloadOffset + (train + test) * (size + 1);
      if (bytes.byteLength !== expected) return E.left(`size check: the file holds ${bytes.byteLength} bytes, its header implies ${expected}`);
      let at = payloadOffset;
      const take = (n: number) => bytes.subarray(at, (at += n));
      const segs = [take(train * size), take(train), take(test * size), take(test)];
      const sum = checksumAll(segs);
      if (sum !== header.checksum) return E.left(`checksum: the payload hashes to ${sum}, the header says ${header.checksum} (corrupt file)`);
      const split = (images: Uint8Array, labels: Uint8Array): ImageDataset => ({
        images: images.slice(),
        labels: labels.slice(),
        count: labels.length,
        height: header.height,
        width: header.width,
      });
      return E.right({ train: split(segs[0], segs[1]), test: split(segs[2], segs[3]) });
    }),
  );
}
