/**
 * safetensors checkpoints (https://github.com/huggingface/safetensors format): an 8-byte
 * little-endian header length, a JSON header {name: {dtype, shape, data_offsets}, __metadata__},
 * then the raw little-endian tensor bytes. Written atomically (temp file, then rename).
 *
 * The reader follows the format's rules as the official implementation does, and refuses
 * everything else with a CheckpointError that names the file, the tensor and what is wrong:
 * - the header length fits in the file (at most its size minus 8) and is at most 100 MB;
 * - the header is UTF-8 text of one JSON object, starting with "{" and padded at most with
 *   trailing spaces; `__metadata__`, when present, maps strings to strings;
 * - each tensor has a dtype wgrad reads (F32, F64, I32, BOOL, and F16 and BF16, which it widens
 *   to F32 because it computes in F32; other safetensors dtypes are named as such), a shape of
 *   non-negative integers and data_offsets [begin, end] of non-negative integers, begin ≤ end,
 *   end − begin the byte length of the stored dtype × shape;
 * - sorted by offset, the tensors cover the data section exactly: the first begins at 0, each
 *   begins where the previous ends (no gap, no overlap), the last ends at the end of the file;
 * - BOOL bytes are 0 or 1 (how wgrad and PyTorch store booleans).
 * Every check runs before any tensor storage is allocated, and the storage allocated is the data
 * section (twice the bytes of F16/BF16 tensors, widened to F32), so a hostile header cannot make
 * the reader allocate more than twice what the file holds.
 */
import { promises as fs } from "node:fs";
import { dirname, join, basename } from "node:path";
import * as A from "fp-ts/lib/Array.js";
import * as E from "fp-ts/lib/Either.js";
import * as TE from "fp-ts/lib/TaskEither.js";
import { pipe } from "fp-ts/lib/function.js";
import { allocate, WgradError, type DType, type HostData } from "../dsl/index.js";
import { HostTensor } from "../backend/index.js";

/**
 * A checkpoint could not be written, read, or used. `file` and `tensor` (when one is at fault)
 * say where; the message adds what is wrong and what to do.
 */
export class CheckpointError extends WgradError {
  override readonly name = "CheckpointError";
  constructor(
    readonly file: string,
    readonly tensor: string | undefined,
    problem: string,
    hint: string,
  ) {
    super(`${file}: ${tensor === undefined ? "" : `tensor "${tensor}": `}${problem}; ${hint}`);
  }
}

/** The official reader's limit on the header (MAX_HEADER_SIZE): larger ones are refused before being decoded. */
export const MAX_HEADER_BYTES = 100_000_000;

const SAFE_DTYPE: Record<DType, string> = { f32: "F32", f64: "F64", i32: "I32", bool: "BOOL" };
const BYTES: Record<DType, number> = { f32: 4, f64: 8, i32: 4, bool: 1 };

/** How a stored safetensors dtype is read: into which of our dtypes, from how many bytes an element, widened how (16-bit floats). */
interface StoredDType {
  readonly name: string;
  readonly dtype: DType;
  readonly bytes: number;
  /** Little-endian 16-bit patterns → float32 bit patterns, for dtypes we hold wider than they are stored. */
  readonly widen?: (bits: number) => number;
}

/**
 * IEEE binary16 → the binary32 bit pattern of the same value (exact: every half is a float).
 * Subnormal halves become normal floats; infinities and NaNs keep their sign and payload.
 */
function halfToFloatBits(h: number): number {
  const sign = (h & 0x8000) << 16;
  const exp = (h >> 10) & 0x1f;
  let mant = h & 0x3ff;
  if (exp === 0x1f) return (sign | 0x7f800000 | (mant << 13)) >>> 0;
  if (exp !== 0) return (sign | ((exp + 112) << 23) | (mant << 13)) >>> 0; // rebias 15 → 127
  if (mant === 0) return sign >>> 0; // ±0
  let e = 113; // a subnormal m·2^-24: shift m until its leading bit is the implicit one
  while (!(mant & 0x400)) {
    mant <<= 1;
    e--;
  }
  return (sign | (e << 23) | ((mant & 0x3ff) << 13)) >>> 0;
}

/** bfloat16 → binary32 bits: bfloat16 is the top half of a float32. */
const bfloat16ToFloatBits = (h: number): number => (h << 16) >>> 0;

/** The safetensors dtypes wgrad reads: its own four, and the 16-bit floats PyTorch checkpoints use (widened to F32). */
const STORED: Readonly<Record<string, StoredDType>> = {
  F32: { name: "F32", dtype: "f32", bytes: 4 },
  F64: { name: "F64", dtype: "f64", bytes: 8 },
  I32: { name: "I32", dtype: "i32", bytes: 4 },
  BOOL: { name: "BOOL", dtype: "bool", bytes: 1 },
  F16: { name: "F16", dtype: "f32", bytes: 2, widen: halfToFloatBits },
  BF16: { name: "BF16", dtype: "f32", bytes: 2, widen: bfloat16ToFloatBits },
};
/** safetensors dtypes wgrad has no storage for: named as such, so the fix (convert) is clear. */
const OTHER_SAFE_DTYPES: ReadonlySet<string> = new Set([
  "U8",
  "I8",
  "I16",
  "U16",
  "U32",
  "I64",
  "U64",
  "C64",
  "F8_E5M2",
  "F8_E4M3",
  "F8_E8M0",
  "F6_E2M3",
  "F6_E3M2",
  "F4",
]);

const DAMAGED = "the file is damaged or was not written by a safetensors writer; write it again (wgrad pretrain, or safetensors' save_file)";

/** The safetensors name of one of our dtypes ("F32"...), for messages about what a loader expected. */
export const safetensorsDType = (d: DType): string => SAFE_DTYPE[d];

/** A header value shown in a message, cut short: a hostile header must not make the message huge. */
const show = (v: unknown): string => {
  const s = v === undefined ? "missing" : JSON.stringify(v);
  return s.length > 60 ? `${s.slice(0, 57)}...` : s;
};

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);
const isCount = (v: unknown): v is number => typeof v === "number" && Number.isSafeInteger(v) && v >= 0;

/** Serialises named host tensors (and string metadata) to safetensors bytes. */
export function encodeSafetensors(tensors: Readonly<Record<string, HostTensor>>, metadata: Readonly<Record<string, string>> = {}): Uint8Array {
  const names = Object.keys(tensors).sort();
  const entries: [string, unknown][] = Object.keys(metadata).length ? [["__metadata__", metadata]] : [];
  let offset = 0;
  for (const n of names) {
    const x = tensors[n];
    const bytes = x.size * BYTES[x.dtype];
    entries.push([n, { dtype: SAFE_DTYPE[x.dtype], shape: [...x.shape], data_offsets: [offset, offset + bytes] }]);
    offset += bytes;
  }
  const header = Object.fromEntries(entries); // own properties, even for a tensor named "__proto__"
  const json = new TextEncoder().encode(JSON.stringify(header));
  const head = new Uint8Array(json.length + ((8 - (json.length % 8)) % 8)).fill(0x20); // space-padded: aligns the data section
  head.set(json);
  const out = new Uint8Array(8 + head.length + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(head.length), true);
  out.set(head, 8);
  let p = 8 + head.length;
  for (const n of names) {
    const d = tensors[n].data;
    out.set(new Uint8Array(d.buffer, d.byteOffset, d.byteLength), p);
    p += d.byteLength;
  }
  return out;
}

/** One tensor's header entry once it has passed the per-entry rules. */
interface Entry {
  readonly name: string;
  readonly stored: StoredDType;
  readonly shape: readonly number[];
  readonly begin: number;
  readonly end: number;
}

type Checked<A> = E.Either<CheckpointError, A>;

/** The header's length from the first 8 bytes, within the file and the format's limit. */
function headerLength(bytes: Uint8Array, file: string): Checked<number> {
  if (bytes.length < 8)
    return E.left(new CheckpointError(file, undefined, `the file has ${bytes.length} bytes, fewer than the 8 of its header length`, DAMAGED));
  const n = new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true);
  if (n > BigInt(MAX_HEADER_BYTES))
    return E.left(new CheckpointError(file, undefined, `the header length ${n} is over the format's limit of ${MAX_HEADER_BYTES} bytes`, DAMAGED));
  if (n > BigInt(bytes.length - 8))
    return E.left(new CheckpointError(file, undefined, `the header length ${n} runs past the end of the file (${bytes.length} bytes)`, DAMAGED));
  return E.right(Number(n));
}

/** The header as a JSON object: strict UTF-8, starting with "{", padded at most with trailing spaces. */
function headerObject(text: Uint8Array, file: string): Checked<Record<string, unknown>> {
  let end = text.length;
  while (end > 0 && text[end - 1] === 0x20) end--; // a loop, not / +$/: that regex is quadratic on long runs of spaces
  let body: string;
  try {
    body = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(text.subarray(0, end));
  } catch {
    return E.left(new CheckpointError(file, undefined, "the header is not valid UTF-8", DAMAGED));
  }
  let raw: unknown;
  try {
    raw = JSON.parse(body);
  } catch (e) {
    return E.left(new CheckpointError(file, undefined, `the header is not JSON (${e instanceof Error ? e.message.slice(0, 120) : "unparsable"})`, DAMAGED));
  }
  if (!isRecord(raw))
    return E.left(
      new CheckpointError(
        file,
        undefined,
        `the header is ${Array.isArray(raw) ? "a JSON array" : `the JSON value ${show(raw)}`}, not an object {name: {dtype, shape, data_offsets}}`,
        DAMAGED,
      ),
    );
  if (!body.startsWith("{") || !body.endsWith("}"))
    return E.left(new CheckpointError(file, undefined, "the header has white space around its JSON object other than trailing spaces (0x20)", DAMAGED));
  return E.right(raw);
}

/** `__metadata__`: absent, or an object of strings. */
function metadataOf(header: Record<string, unknown>, file: string): Checked<Record<string, string>> {
  if (!Object.hasOwn(header, "__metadata__")) return E.right({});
  const m = header.__metadata__;
  if (!isRecord(m)) return E.left(new CheckpointError(file, undefined, `__metadata__ is ${show(m)}, not an object of strings`, DAMAGED));
  const bad = Object.entries(m).find(([, v]) => typeof v !== "string");
  if (bad) return E.left(new CheckpointError(file, undefined, `__metadata__ "${bad[0]}" is ${show(bad[1])}, not a string`, DAMAGED));
  return E.right(Object.fromEntries(Object.entries(m).map(([k, v]) => [k, String(v)])));
}

/** The dtype of an entry: one wgrad reads; other safetensors dtypes are told apart from unknown ones. */
function dtypeOf(name: string, v: unknown, file: string): Checked<StoredDType> {
  if (typeof v === "string" && Object.hasOwn(STORED, v)) return E.right(STORED[v]);
  if (typeof v === "string" && OTHER_SAFE_DTYPES.has(v))
    return E.left(
      new CheckpointError(
        file,
        name,
        `dtype ${v} is a safetensors dtype wgrad does not load (it loads F32, F64, I32, BOOL, and F16 and BF16 as F32)`,
        "convert the tensor (e.g. tensor.float() in PyTorch) and save the file again",
      ),
    );
  return E.left(new CheckpointError(file, name, `dtype ${show(v)} is not a safetensors dtype`, DAMAGED));
}

const isShape = (v: unknown): v is number[] => Array.isArray(v) && v.every(isCount);

/** The number of elements of a shape, or undefined when it is too large to address. */
function elementCount(shape: readonly number[]): number | undefined {
  if (shape.includes(0)) return 0;
  const n = shape.reduce((a: number, d: number) => a * d, 1);
  return Number.isSafeInteger(n) ? n : undefined; // partial products only grow, so an exact result is one below 2^53
}

/** One tensor entry, checked on its own: dtype, shape, offsets, and that the offsets hold dtype × shape. */
function entryOf(name: string, v: unknown, file: string): Checked<Entry> {
  if (!isRecord(v)) return E.left(new CheckpointError(file, name, `the header entry is ${show(v)}, not an object {dtype, shape, data_offsets}`, DAMAGED));
  return pipe(
    dtypeOf(name, v.dtype, file),
    E.chain((stored) => {
      const shape = v.shape;
      if (!isShape(shape)) return E.left(new CheckpointError(file, name, `shape ${show(shape)} is not a list of non-negative integers`, DAMAGED));
      const count = elementCount(shape);
      const o = v.data_offsets;
      if (!Array.isArray(o) || o.length !== 2 || !isCount(o[0]) || !isCount(o[1]))
        return E.left(new CheckpointError(file, name, `data_offsets ${show(o)} are not two non-negative integers [begin, end]`, DAMAGED));
      const [begin, end] = o;
      if (begin > end) return E.left(new CheckpointError(file, name, `data_offsets [${begin}, ${end}] begin after they end`, DAMAGED));
      const bytes = count === undefined ? Infinity : count * stored.bytes;
      if (!Number.isSafeInteger(bytes) || end - begin !== bytes)
        return E.left(
          new CheckpointError(
            file,
            name,
            `data_offsets [${begin}, ${end}] hold ${end - begin} bytes, but ${stored.name}${show(shape)} takes ${Number.isSafeInteger(bytes) ? bytes : "more than 2^53"}`,
            DAMAGED,
          ),
        );
      return E.right({ name, stored, shape: [...shape], begin, end });
    }),
  );
}

/** Sorted by offset, the entries must tile the data section: no gap, no overlap, nothing left over. */
function checkLayout(entries: readonly Entry[], dataBytes: number, file: string): Checked<readonly Entry[]> {
  const sorted = [...entries].sort((a, b) => a.begin - b.begin || a.end - b.end);
  let at = 0;
  let prev: Entry | undefined;
  for (const e of sorted) {
    if (e.begin !== at) {
      const where = prev ? `the previous tensor "${prev.name}" ends at byte ${at}` : "the data section starts at byte 0";
      return E.left(
        new CheckpointError(
          file,
          e.name,
          `data_offsets [${e.begin}, ${e.end}] begin at byte ${e.begin} but ${where} (${e.begin > at ? "a gap" : "an overlap"})`,
          DAMAGED,
        ),
      );
    }
    at = e.end;
    prev = e;
  }
  if (at !== dataBytes) {
    const problem =
      at > dataBytes
        ? `runs past the end of the file: it ends at byte ${at} of a ${dataBytes}-byte data section`
        : `is the last, ending at byte ${at}, but the data section holds ${dataBytes} bytes`;
    return E.left(new CheckpointError(file, prev?.name, prev ? problem : `the header lists no tensors but ${dataBytes} bytes of data follow it`, DAMAGED));
  }
  return E.right(sorted);
}

/** Copies one tensor's bytes out of the file (the host is little-endian, like the format), widening 16-bit floats to F32. */
function tensorOf(bytes: Uint8Array, base: number, e: Entry, alloc: (d: DType, n: number) => HostData, file: string): Checked<HostTensor> {
  const raw = bytes.subarray(base + e.begin, base + e.end);
  const { dtype, widen } = e.stored;
  if (dtype === "bool") {
    const i = raw.findIndex((b) => b > 1);
    if (i >= 0) return E.left(new CheckpointError(file, e.name, `BOOL element ${i} is the byte ${raw[i]}, not 0 or 1`, DAMAGED));
  }
  const data = alloc(dtype, (e.end - e.begin) / e.stored.bytes);
  if (widen) {
    const out = new Uint32Array(data.buffer, data.byteOffset, data.length);
    for (let i = 0; i < out.length; i++) out[i] = widen(raw[2 * i] | (raw[2 * i + 1] << 8));
  } else new Uint8Array(data.buffer, data.byteOffset, data.byteLength).set(raw);
  return E.right(new HostTensor(data, e.shape, dtype));
}

/**
 * Parses safetensors bytes under the format's rules (see the top of this file); a refusal names
 * `file`, the tensor and the fault. `alloc` makes each tensor's storage (tests count what it is
 * asked for: never more than the data section, F16/BF16 tensors counted twice).
 */
export function decodeSafetensors(
  bytes: Uint8Array,
  file = "safetensors data",
  alloc: (d: DType, n: number) => HostData = allocate,
): E.Either<CheckpointError, { tensors: Record<string, HostTensor>; metadata: Record<string, string> }> {
  return pipe(
    headerLength(bytes, file),
    E.bindTo("n"),
    E.bind("header", ({ n }) => headerObject(bytes.subarray(8, 8 + n), file)),
    E.bind("metadata", ({ header }) => metadataOf(header, file)),
    E.bind("entries", ({ header }) =>
      A.traverse(E.Applicative)(([name, v]: [string, unknown]) => entryOf(name, v, file))(Object.entries(header).filter(([k]) => k !== "__metadata__")),
    ),
    E.bind("sorted", ({ n, entries }) => checkLayout(entries, bytes.length - 8 - n, file)),
    E.bind("tensors", ({ n, sorted }) =>
      A.traverse(E.Applicative)((e: Entry) =>
        pipe(
          tensorOf(bytes, 8 + n, e, alloc, file),
          E.map((t): [string, HostTensor] => [e.name, t]),
        ),
      )([...sorted]),
    ),
    E.map(({ tensors, metadata }) => ({ tensors: Object.fromEntries(tensors), metadata })),
  );
}

/** Writes a checkpoint atomically: a temp file `.<name>.<pid>.tmp` in the same folder, then a rename. */
export const writeSafetensors = (
  path: string,
  tensors: Readonly<Record<string, HostTensor>>,
  metadata: Readonly<Record<string, string>> = {},
): TE.TaskEither<CheckpointError, void> =>
  TE.tryCatch(
    async () => {
      await fs.mkdir(dirname(path), { recursive: true });
      const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.tmp`);
      try {
        await fs.writeFile(tmp, encodeSafetensors(tensors, metadata));
        await fs.rename(tmp, path);
      } catch (e) {
        // A failed write (a full disk) leaves no temp file; one a killed process leaves, the next run of that folder removes (src/train/runDir.ts).
        await fs.rm(tmp, { force: true }).catch(() => undefined);
        throw e;
      }
    },
    (e) => new CheckpointError(path, undefined, `could not be written (${String(e)})`, "check that its folder is writable and the disk has room"),
  );

/** Reads and decodes a checkpoint file; errors name the path. */
export const readSafetensors = (path: string) =>
  pipe(
    TE.tryCatch(
      () => fs.readFile(path),
      (e) => new CheckpointError(path, undefined, `could not be read (${String(e)})`, "check the path"),
    ),
    TE.chainEitherK((buf) => decodeSafetensors(new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength), path)),
  );
