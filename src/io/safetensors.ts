/**
 * safetensors checkpoints (https://github.com/huggingface/safetensors format): an 8-byte
 * little-endian header length, a JSON header {name: {dtype, shape, data_offsets}, __metadata__},
 * then the raw little-endian tensor bytes. Written atomically (temp file, then rename); the header
 * is decoded with io-ts so a malformed file names the bad field.
 */
import { promises as fs } from "node:fs";
import { dirname, join, basename } from "node:path";
import * as E from "fp-ts/lib/Either.js";
import * as TE from "fp-ts/lib/TaskEither.js";
import { pipe } from "fp-ts/lib/function.js";
import * as t from "io-ts";
import { PathReporter } from "io-ts/lib/PathReporter.js";
import { WgradError, type DType, type HostData } from "../dsl/index.js";
import { HostTensor } from "../backend/index.js";

export class CheckpointError extends WgradError {
  override readonly name = "CheckpointError";
}

const SAFE_DTYPE: Record<DType, string> = { f32: "F32", f64: "F64", i32: "I32", bool: "BOOL" };
const FROM_SAFE: Record<string, DType> = { F32: "f32", F64: "f64", I32: "i32", BOOL: "bool" };
const BYTES: Record<DType, number> = { f32: 4, f64: 8, i32: 4, bool: 1 };

const TensorEntry = t.type({
  dtype: t.keyof({ F32: null, F64: null, I32: null, BOOL: null }),
  shape: t.array(t.number),
  data_offsets: t.tuple([t.number, t.number]),
});
const Header = t.intersection([t.record(t.string, t.unknown), t.partial({ __metadata__: t.record(t.string, t.string) })]);

/** Serialises named host tensors (and string metadata) to safetensors bytes. */
export function encodeSafetensors(tensors: Readonly<Record<string, HostTensor>>, metadata: Readonly<Record<string, string>> = {}): Uint8Array {
  const names = Object.keys(tensors).sort();
  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length) header.__metadata__ = metadata;
  let offset = 0;
  for (const n of names) {
    const x = tensors[n];
    const bytes = x.size * BYTES[x.dtype];
    header[n] = { dtype: SAFE_DTYPE[x.dtype], shape: [...x.shape], data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  let json = JSON.stringify(header);
  json += " ".repeat((8 - (json.length % 8)) % 8); // align the data section
  const head = new TextEncoder().encode(json);
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

/** Parses safetensors bytes; errors name the tensor and field at fault. */
export function decodeSafetensors(bytes: Uint8Array): E.Either<CheckpointError, { tensors: Record<string, HostTensor>; metadata: Record<string, string> }> {
  if (bytes.length < 8) return E.left(new CheckpointError("safetensors: the file is shorter than its 8-byte header length"));
  const n = Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));
  if (8 + n > bytes.length) return E.left(new CheckpointError(`safetensors: header length ${n} runs past the end of the file (${bytes.length} bytes)`));
  let raw: unknown;
  try {
    raw = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + n)));
  } catch (e) {
    return E.left(new CheckpointError(`safetensors: the header is not JSON (${String(e)})`));
  }
  const header = Header.decode(raw);
  if (E.isLeft(header)) return E.left(new CheckpointError(`safetensors: bad header: ${PathReporter.report(header).join("; ")}`));
  const base = 8 + n;
  const tensors: Record<string, HostTensor> = {};
  for (const [name, entry] of Object.entries(header.right)) {
    if (name === "__metadata__") continue;
    const e = TensorEntry.decode(entry);
    if (E.isLeft(e)) return E.left(new CheckpointError(`safetensors: tensor "${name}": ${PathReporter.report(e).join("; ")}`));
    const dtype = FROM_SAFE[e.right.dtype];
    const [a, b] = e.right.data_offsets;
    const count = e.right.shape.reduce((x, y) => x * y, 1);
    if (b - a !== count * BYTES[dtype] || base + b > bytes.length)
      return E.left(new CheckpointError(`safetensors: tensor "${name}": data_offsets [${a}, ${b}] do not hold ${e.right.dtype}[${e.right.shape}] inside the file`));
    const slice = bytes.slice(base + a, base + b).buffer;
    const data: HostData = dtype === "f32" ? new Float32Array(slice) : dtype === "f64" ? new Float64Array(slice) : dtype === "i32" ? new Int32Array(slice) : new Uint8Array(slice);
    tensors[name] = new HostTensor(data, e.right.shape, dtype);
  }
  return E.right({ tensors, metadata: (header.right.__metadata__ as Record<string, string> | undefined) ?? {} });
}

/** Writes a checkpoint atomically: a temp file in the same folder, then a rename. */
export const writeSafetensors = (path: string, tensors: Readonly<Record<string, HostTensor>>, metadata: Readonly<Record<string, string>> = {}): TE.TaskEither<CheckpointError, void> =>
  TE.tryCatch(
    async () => {
      await fs.mkdir(dirname(path), { recursive: true });
      const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.tmp`);
      await fs.writeFile(tmp, encodeSafetensors(tensors, metadata));
      await fs.rename(tmp, path);
    },
    (e) => new CheckpointError(`could not write checkpoint ${path}: ${String(e)}`),
  );

export const readSafetensors = (path: string) =>
  pipe(
    TE.tryCatch(
      () => fs.readFile(path),
      (e) => new CheckpointError(`could not read checkpoint ${path}: ${String(e)}`),
    ),
    TE.chainEitherK((buf) => decodeSafetensors(new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength))),
  );
