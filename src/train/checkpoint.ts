/**
 * Checkpoints with the official iBOT key names and PyTorch layouts, so PyTorch users can load
 * them: Linear weights [out, in], the patch embedding as a Conv2d weight [D, C, p, p], the
 * weight-normalised prototypes as weight_v [K, bottleneck] and weight_g [K, 1] (under both
 * last_layer and last_layer2: the head is shared). VQ mode adds vq.codebooks.h ([K, d], like an
 * nn.Embedding) and vq.predictors.h (Linear). Optimizer moments, centres and VQ statistics are
 * stored under "wgrad." names for resuming.
 */
import * as TE from "fp-ts/lib/TaskEither.js";
import { GpuArray, HostTensor, hostTensor } from "../backend/index.js";
import { allocate, dotted, flatten, formatShape, isFloat, leafPaths as treePaths, unflatten, type DType, type HostData } from "../dsl/index.js";
import { CheckpointError, safetensorsDType, writeSafetensors } from "../io/safetensors.js";

type Leaf = HostTensor | GpuArray;
const isLeaf = (x: unknown): x is Leaf => x instanceof HostTensor || x instanceof GpuArray;
const isHost = (x: unknown): x is HostTensor => x instanceof HostTensor;

/** [path, leaf] for every leaf, paths joined with "." (array indices as numbers), as PyTorch names state-dict entries. */
export function leafPaths(tree: unknown, prefix = ""): [string, Leaf][] {
  const { leaves, def } = flatten(tree, isLeaf);
  const paths = treePaths(def, prefix, dotted);
  return leaves.map((l, i) => [paths[i], l]);
}

const LINEAR_NAMES: Record<string, string> = {
  qkv: "attn.qkv",
  proj: "attn.proj",
  fc1: "mlp.fc1",
  fc2: "mlp.fc2",
  mlp1: "mlp.0",
  mlp2: "mlp.2",
  mlp3: "mlp.4",
};

/** The official name of one of our parameter paths (within a student or teacher tree). */
export function officialName(path: string): string {
  const p = path
    .replace(/^backbone\.patchEmbed\.w$/, "backbone.patch_embed.proj.weight")
    .replace(/^backbone\.patchEmbed\.b$/, "backbone.patch_embed.proj.bias")
    .replace(/^backbone\.clsToken$/, "backbone.cls_token")
    .replace(/^backbone\.posEmbed$/, "backbone.pos_embed")
    .replace(/^maskedEmbed$/, "backbone.masked_embed")
    .replace(/\.(norm1|norm2|norm)\.g$/, ".$1.weight")
    .replace(/\.(norm1|norm2|norm)\.b$/, ".$1.bias")
    .replace(/\.(qkv|proj|fc1|fc2|mlp1|mlp2|mlp3)\.w$/, (_, l: string) => `.${LINEAR_NAMES[l]}.weight`)
    .replace(/\.(qkv|proj|fc1|fc2|mlp1|mlp2|mlp3)\.b$/, (_, l: string) => `.${LINEAR_NAMES[l]}.bias`)
    .replace(/^head\.lastLayer\.v$/, "head.last_layer.weight_v")
    .replace(/^vq\.predictors\.(\d+)\.w$/, "vq.predictors.$1.weight")
    .replace(/^vq\.predictors\.(\d+)\.b$/, "vq.predictors.$1.bias");
  return p;
}

/** A [rows, cols] matrix transposed, in the same dtype (a file's F64 weight stays F64 until the dtype check sees it). */
function transpose2d(data: HostData, rows: number, cols: number, dtype: DType): HostData {
  const out = allocate(dtype, rows * cols);
  for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) out[j * rows + i] = data[i * cols + j];
  return out;
}

/** Rank-2 weights we store [in, out] and PyTorch [out, in]; the mask token and codebooks ([K, d], like nn.Embedding) are the same in both. */
export const isTorchLinear = (name: string, t: { rank: number }) => t.rank === 2 && !name.endsWith("masked_embed") && !/vq\.codebooks\./.test(name);

/** The patch embedding's geometry, which its PyTorch conv weight spells out: channels C and patch side p (over 2 dims, [D, C, p, p], unless `dims` is 1: [D, C, p]). */
export interface PatchGeometry {
  readonly channels: number;
  readonly size: number;
  readonly dims?: 1 | 2;
}

/** The shape PyTorch stores the tensor of official name `name` in, given our shape: [in, out] → [out, in]; the patch embedding [C·p·p, D] → [D, C, p, p]. */
export function torchShape(name: string, shape: readonly number[], patch: PatchGeometry): number[] {
  if (!isTorchLinear(name, { rank: shape.length })) return [...shape];
  const [r, c] = shape;
  if (name === "backbone.patch_embed.proj.weight") return [c, patch.channels, ...Array<number>(patch.dims ?? 2).fill(patch.size)];
  return [c, r];
}

/** Our layout → PyTorch's: [in, out] matrices transposed; the patch embedding as a conv weight. */
export function toTorchLayout(name: string, t: HostTensor, patch: PatchGeometry): HostTensor {
  if (!isTorchLinear(name, t)) return t;
  const [r, c] = t.shape;
  return hostTensor(transpose2d(t.data, r, c, t.dtype), torchShape(name, t.shape, patch), t.dtype);
}

const toHost = async (x: Leaf): Promise<HostTensor> => (x instanceof GpuArray ? x.toHost() : x);

/** The named tensors of a training state, ready to write. */
export async function checkpointTensors(
  state: { student: unknown; teacher: unknown; opt: { m: unknown; v: unknown }; centers: unknown; vq?: unknown },
  patch: { channels: number; size: number },
): Promise<Record<string, HostTensor>> {
  const out: Record<string, HostTensor> = {};
  for (const net of ["student", "teacher"] as const)
    for (const [path, leaf] of leafPaths(state[net])) {
      const name = officialName(path);
      out[`${net}.${name}`] = toTorchLayout(name, await toHost(leaf), patch);
      if (name === "head.last_layer.weight_v") {
        const k = out[`${net}.${name}`].shape[0];
        const g = hostTensor(new Float32Array(k).fill(1), [k, 1], "f32"); // norm_last_layer: g ≡ 1
        out[`${net}.head.last_layer.weight_g`] = g;
        out[`${net}.head.last_layer2.weight_v`] = out[`${net}.${name}`];
        out[`${net}.head.last_layer2.weight_g`] = g;
      }
    }
  const extra = [...leafPaths(state.opt, "wgrad.opt"), ...leafPaths(state.centers, "wgrad.centers"), ...(state.vq ? leafPaths(state.vq, "wgrad.vq") : [])];
  for (const [path, leaf] of extra) out[path] = await toHost(leaf);
  return out;
}

/** Writes a checkpoint atomically. */
export function saveCheckpoint(path: string, tensors: Record<string, HostTensor>, metadata: Record<string, string>): TE.TaskEither<CheckpointError, void> {
  return writeSafetensors(path, tensors, metadata);
}

/** PyTorch's layout → ours (the inverse of toTorchLayout), given the shape our tree expects. */
export function fromTorchLayout(t: HostTensor, expected: readonly number[]): HostTensor {
  const [r, c] = expected; // ours is [r, c]; the file holds [c, r] (a conv weight holds the same c·r elements)
  if (expected.length !== 2 || t.size !== r * c) return t;
  return hostTensor(transpose2d(t.data, c, r, t.dtype), [r, c], t.dtype);
}

/** How many values of a tensor are NaN or ±Infinity: a diverged run's weights are no checkpoint to evaluate or resume. */
export function nonFiniteCount(t: HostTensor): number {
  if (!isFloat(t.dtype)) return 0;
  let n = 0;
  for (const v of t.data) if (!Number.isFinite(v)) n++;
  return n;
}

const OTHER_CONFIG = "was it written by another model configuration? Evaluate or resume it with the settings it was trained with";

/**
 * One tensor of a checkpoint checked against the leaf the model expects there: present, of the
 * same dtype (before any layout change, so nothing is converted silently), of the same shape, and
 * finite. `file` names the checkpoint in errors.
 */
function checkedTensor(file: string, name: string, t: HostTensor | undefined, expected: HostTensor, torch: boolean): HostTensor {
  if (!t) throw new CheckpointError(file, name, "is missing", OTHER_CONFIG);
  if (t.dtype !== expected.dtype)
    throw new CheckpointError(
      file,
      name,
      `is ${safetensorsDType(t.dtype)}${formatShape(t.shape)}, the model expects ${safetensorsDType(expected.dtype)}`,
      OTHER_CONFIG,
    );
  const v = torch && isTorchLinear(name, expected) ? fromTorchLayout(t, expected.shape) : t;
  if (v.size !== expected.size || v.shape.length !== expected.shape.length || v.shape.some((d, i) => d !== expected.shape[i]))
    throw new CheckpointError(
      file,
      name,
      `has shape ${formatShape(t.shape)}, the model expects ${formatShape(expected.shape)} (in PyTorch layout for weights)`,
      OTHER_CONFIG,
    );
  const bad = nonFiniteCount(v);
  if (bad)
    throw new CheckpointError(
      file,
      name,
      `holds ${bad} non-finite values (NaN or ±Infinity) among ${v.size}`,
      "the run that wrote it diverged; use an earlier checkpoint, or train again (e.g. with a lower --lr)",
    );
  return v;
}

/**
 * Rebuilds a training state from checkpoint tensors, shaped like `like` (a freshly initialised
 * state of the same configuration). A tensor that is missing, of another dtype or shape, or not
 * finite is a CheckpointError naming `file` and the tensor.
 */
export function stateFromCheckpoint<S extends { student: unknown; teacher: unknown; opt: { m: unknown; v: unknown }; centers: unknown; vq?: unknown }>(
  like: S,
  tensors: Readonly<Record<string, HostTensor>>,
  file = "checkpoint",
): S {
  const take = (name: string, expected: HostTensor, torch: boolean): HostTensor =>
    checkedTensor(file, name, Object.hasOwn(tensors, name) ? tensors[name] : undefined, expected, torch);
  const rebuild = (tree: unknown, name: (path: string) => string, torch: boolean): unknown => {
    const { leaves, def } = flatten(tree, isHost);
    const paths = treePaths(def, "", dotted);
    return unflatten(
      def,
      leaves.map((l, i) => take(name(paths[i]), l, torch)),
    );
  };
  return {
    ...like,
    student: rebuild(like.student, (p) => `student.${officialName(p)}`, true),
    teacher: rebuild(like.teacher, (p) => `teacher.${officialName(p)}`, true),
    opt: rebuild(like.opt, (p) => `wgrad.opt.${p}`, false),
    centers: rebuild(like.centers, (p) => `wgrad.centers.${p}`, false),
    ...(like.vq ? { vq: rebuild(like.vq, (p) => `wgrad.vq.${p}`, false) } : {}),
  } as S;
}
