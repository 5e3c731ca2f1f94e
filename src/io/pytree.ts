/**
 * Pytrees in safetensors files: `save` names each leaf by its path ("blocks.0.qkv.w", the
 * PyTorch state-dict convention) and records the tree's structure in the metadata entry
 * "wgrad.tree", so `load` rebuilds the same tree (arrays as arrays, objects with their key order)
 * or checks the file against a tree it is given (`like`). The files are ordinary safetensors:
 * PyTorch's safetensors.torch.load_file reads them, and `load` reads PyTorch's.
 *
 * The public functions are plain async functions that throw the library's errors: CheckpointError
 * for a file that is unreadable, damaged or not what `like` expects; ArgumentError for a tree
 * that cannot be saved.
 */
import * as E from "fp-ts/lib/Either.js";
import type * as TE from "fp-ts/lib/TaskEither.js";
import { GpuArray, HostTensor } from "../backend/index.js";
import {
  ArgumentError,
  dotted,
  flatten,
  formatShape,
  isSpec,
  isTensor,
  leafPaths,
  unflatten,
  type MapLeaves,
  type Tensor,
  type TensorSpec,
  type Tree,
  type TreeDef,
} from "../dsl/index.js";
import { CheckpointError, readSafetensors, safetensorsDType, writeSafetensors } from "./safetensors.js";

/** A leaf `save` writes: values on the host or on a WebGPU device (read back first). */
export type SaveLeaf = HostTensor | GpuArray;
/** A leaf of a `like` tree: anything with a static shape and dtype (values, specs, traced tensors). */
export type LikeLeaf = HostTensor | GpuArray | TensorSpec | Tensor;

/** The metadata key under which `save` records the tree's structure (reserved: user metadata may not use it). */
export const TREE_METADATA_KEY = "wgrad.tree";
/** The version of the structure record, so a later wgrad can tell old files from new ones. */
const TREE_FORMAT = "wgrad-tree-1";

/** Options of `load`. */
export interface LoadOptions {
  /** Refuse tensors of the file that the tree has no leaf for (default true); false ignores them. */
  readonly strict?: boolean;
}

const isSaveLeaf = (x: unknown): x is SaveLeaf => x instanceof HostTensor || x instanceof GpuArray;
const isLikeLeaf = (x: unknown): x is LikeLeaf => x instanceof HostTensor || x instanceof GpuArray || isSpec(x) || isTensor(x);

/** Runs a TaskEither of the io layer and throws its error: the public functions are plain async ones. */
async function orThrow<A>(task: TE.TaskEither<CheckpointError, A>): Promise<A> {
  const r = await task();
  if (E.isLeft(r)) throw r.left;
  return r.right;
}

/** A list of names for a message, cut after a few: a file of thousands of extra tensors must not make a huge message. */
const listNames = (names: readonly string[], max = 8): string =>
  names
    .slice(0, max)
    .map((n) => `"${n}"`)
    .join(", ") + (names.length > max ? ` and ${names.length - max} more` : "");

/**
 * The tensor names of a tree's leaves: their dotted paths. Two leaves of one name (keys with dots,
 * {"a.b": x, a: {b: y}}) or a leaf named "__metadata__" cannot be stored, and are refused here,
 * before anything is written.
 */
function namesOf(def: TreeDef): string[] {
  const names = leafPaths(def, "", dotted);
  const seen = new Set<string>();
  for (const n of names) {
    if (n === "__metadata__") throw new ArgumentError("io.save", `a leaf's path is "__metadata__", the safetensors header's metadata entry; rename that key`);
    if (seen.has(n))
      throw new ArgumentError("io.save", `two leaves have the path "${n}" (a key with a dot in it?); tensor names must be unique, so rename one of the keys`);
    seen.add(n);
  }
  return names;
}

/**
 * Writes `tree` (nested arrays and plain objects of HostTensors or GpuArrays) to `path` as
 * safetensors, atomically (a temp file in the same folder, then a rename: a crash leaves the old
 * file or the new one, never half of one). Each leaf is stored under its path ("blocks.0.qkv.w");
 * `metadata` (strings) is stored beside the tree's structure, which `load` uses to rebuild it.
 */
export async function save(path: string, tree: Tree<SaveLeaf>, metadata: Readonly<Record<string, string>> = {}): Promise<void> {
  if (Object.hasOwn(metadata, TREE_METADATA_KEY))
    throw new ArgumentError("io.save", `the metadata key "${TREE_METADATA_KEY}" is reserved for the tree's structure; name yours otherwise`);
  const bad = Object.entries(metadata).find(([, v]) => typeof v !== "string");
  if (bad)
    throw new ArgumentError(
      "io.save",
      `metadata "${bad[0]}" is a ${typeof bad[1]}, but safetensors metadata values are strings; use String() or JSON.stringify`,
    );
  const { leaves, def } = flatten(tree, isSaveLeaf, "HostTensor or GpuArray", { op: "io.save", root: "tree" });
  const names = namesOf(def);
  const hosts = await Promise.all(leaves.map((l) => l.toHost()));
  const tensors = Object.fromEntries(names.map((n, i) => [n, hosts[i]]));
  const structure = JSON.stringify({ format: TREE_FORMAT, def });
  await orThrow(writeSafetensors(path, tensors, { ...metadata, [TREE_METADATA_KEY]: structure }));
}

const MAX_TREE_DEPTH = 256;

/** A TreeDef from the file's metadata, checked node by node: a damaged or hostile record is a CheckpointError, never a crash. */
function treeDefOf(text: string, file: string): TreeDef {
  const damaged = (what: string) =>
    new CheckpointError(
      file,
      undefined,
      `the "${TREE_METADATA_KEY}" metadata ${what}`,
      "it was not written by wgrad's io.save, or was edited; load it with a `like` tree instead",
    );
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    throw damaged("is not JSON");
  }
  const rec = raw as { format?: unknown; def?: unknown } | null;
  if (typeof rec !== "object" || rec === null || rec.format !== TREE_FORMAT) throw damaged(`is not a ${TREE_FORMAT} record`);
  const go = (d: unknown, depth: number): TreeDef => {
    if (depth > MAX_TREE_DEPTH) throw damaged(`nests deeper than ${MAX_TREE_DEPTH} levels`);
    const n = d as { kind?: unknown; keys?: unknown; children?: unknown } | null;
    if (typeof n !== "object" || n === null) throw damaged("holds a node that is not an object");
    if (n.kind === "leaf") return { kind: "leaf" };
    if (!Array.isArray(n.children)) throw damaged(`holds a node of kind ${JSON.stringify(n.kind)?.slice(0, 20)} without children`);
    const children = n.children.map((c) => go(c, depth + 1));
    if (n.kind === "array") return { kind: "array", children };
    if (n.kind !== "object" || !Array.isArray(n.keys) || n.keys.length !== children.length || !n.keys.every((k) => typeof k === "string"))
      throw damaged("holds a node that is neither a leaf, an array nor an object with one string key per child");
    return { kind: "object", keys: n.keys as string[], children };
  };
  return go(rec.def, 0);
}

/** The tensors a tree of names takes from the file, in order; names of the file it does not take are refused unless `strict` is false. */
function take(
  file: string,
  tensors: Readonly<Record<string, HostTensor>>,
  names: readonly string[],
  strict: boolean,
  check: (name: string, t: HostTensor, i: number) => void,
) {
  const out = names.map((n, i) => {
    if (!Object.hasOwn(tensors, n))
      throw new CheckpointError(
        file,
        n,
        "is missing from the file",
        "was the file saved from a tree of another structure? `io.load(path)` without `like` shows what it holds",
      );
    check(n, tensors[n], i);
    return tensors[n];
  });
  if (strict) {
    const wanted = new Set(names);
    const extra = Object.keys(tensors).filter((n) => !wanted.has(n));
    if (extra.length)
      throw new CheckpointError(
        file,
        undefined,
        `holds ${extra.length} tensor${extra.length > 1 ? "s" : ""} the tree has no leaf for: ${listNames(extra)}`,
        "pass { strict: false } to ignore them, or load the file without `like` to see the tree it holds",
      );
  }
  return out;
}

/**
 * Reads a safetensors file back as a tree of HostTensors.
 *
 * Without `like`: a file written by `save` becomes the tree that was saved (same arrays, objects
 * and key order); any other file (PyTorch's, say) becomes a flat object name → HostTensor.
 *
 * With `like` (a tree of HostTensors, GpuArrays, TensorSpecs or tensors: a freshly initialised
 * model, or `specsOf` of one): every leaf's tensor must be in the file under its path, of the
 * leaf's shape and dtype (F16/BF16 tensors are read as F32); the result has `like`'s structure.
 * A tensor missing or of another shape or dtype is a CheckpointError naming it; tensors the tree
 * has no leaf for are one listing them, unless `options.strict` is false.
 */
export async function load(path: string, like?: undefined, options?: LoadOptions): Promise<Tree<HostTensor>>;
/**
 * Reads a safetensors file into the structure of `like`, checking every tensor's presence, shape and
 * dtype against its leaf (see the overload without `like` for the rest).
 */
export async function load<T>(path: string, like: T, options?: LoadOptions): Promise<MapLeaves<T, LikeLeaf, HostTensor>>;
export async function load(path: string, like?: unknown, options: LoadOptions = {}): Promise<unknown> {
  const strict = options.strict ?? true;
  const { tensors, metadata } = await orThrow(readSafetensors(path));
  if (like === undefined) {
    if (!Object.hasOwn(metadata, TREE_METADATA_KEY)) return tensors;
    const def = treeDefOf(metadata[TREE_METADATA_KEY], path);
    return unflatten(
      def,
      take(path, tensors, leafPaths(def, "", dotted), strict, () => undefined),
    );
  }
  const { leaves, def } = flatten(like, isLikeLeaf, "HostTensor, GpuArray, TensorSpec or tensor", { op: "io.load", root: "like" });
  const check = (name: string, t: HostTensor, i: number) => {
    const want = leaves[i];
    if (t.dtype !== want.dtype)
      throw new CheckpointError(
        path,
        name,
        `is ${safetensorsDType(t.dtype)}${formatShape(t.shape)}, the tree expects ${safetensorsDType(want.dtype)}${formatShape(want.shape)}`,
        "save the file again from a tree of that dtype, or give a `like` of the file's dtype",
      );
    if (t.shape.length !== want.shape.length || t.shape.some((d, k) => d !== want.shape[k]))
      throw new CheckpointError(
        path,
        name,
        `has shape ${formatShape(t.shape)}, the tree expects ${formatShape(want.shape)}`,
        "was it saved from a model of another configuration? Build `like` with the configuration the file was saved with",
      );
  };
  return unflatten(def, take(path, tensors, leafPaths(def, "", dotted), strict, check));
}

/** Reads a safetensors file as it is: its tensors by name (F16/BF16 as F32) and its metadata; a CheckpointError names a damaged file and the fault. */
export const readTensors = (path: string): Promise<{ tensors: Record<string, HostTensor>; metadata: Record<string, string> }> => orThrow(readSafetensors(path));

/** Writes named HostTensors and string metadata to `path` as safetensors, atomically (a temp file, then a rename). */
export const writeTensors = (path: string, tensors: Readonly<Record<string, HostTensor>>, metadata: Readonly<Record<string, string>> = {}): Promise<void> =>
  orThrow(writeSafetensors(path, tensors, metadata));
