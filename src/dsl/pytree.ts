/**
 * Pytrees: nested arrays and plain objects whose leaves are values of one kind (tensors, host
 * arrays, specs). Transformations flatten a tree to its leaves, work on them, and rebuild it.
 */
import { ArgumentError, describeValue } from "./errors.js";

/** A nested structure of arrays and plain objects with leaves of type L. */
export type Tree<L> = L | readonly Tree<L>[] | { readonly [key: string]: Tree<L> };

/** The structure of a tree without its leaves. */
export type TreeDef =
  | { readonly kind: "leaf" }
  | { readonly kind: "array"; readonly children: readonly TreeDef[] }
  | { readonly kind: "object"; readonly keys: readonly string[]; readonly children: readonly TreeDef[] };

/** Replaces every leaf type L in T by M, keeping the structure. */
export type MapLeaves<T, L, M> = [Tree<L>] extends [T]
  ? Tree<M> // the unrefined tree type maps to the unrefined tree type
  : T extends L
    ? M
    : T extends readonly unknown[]
      ? { -readonly [K in keyof T]: MapLeaves<T[K], L, M> }
      : T extends object
        ? { -readonly [K in keyof T]: MapLeaves<T[K], L, M> }
        : never;

const isPlainObject = (x: unknown): x is Record<string, unknown> =>
  typeof x === "object" && x !== null && (Object.getPrototypeOf(x) === Object.prototype || Object.getPrototypeOf(x) === null);

/** Where a flattened tree comes from, for errors: the op that flattens it and the path of its root ("argument 0"). */
export interface TreeOrigin {
  readonly op?: string;
  readonly root?: string;
}

/**
 * Flattens `tree` into its leaves (depth first; object keys in insertion order). Anything that is
 * neither a leaf, an array nor a plain object is an ArgumentError naming `origin.op`, its path
 * from `origin.root` and what it is (a string, null...), so a misplaced value is found where it was given.
 */
export function flatten<L>(tree: unknown, isLeaf: (x: unknown) => x is L, what = "leaf", origin: TreeOrigin = {}): { leaves: L[]; def: TreeDef } {
  const leaves: L[] = [];
  const { op = "pytree", root = "" } = origin;
  const go = (t: unknown, path: string): TreeDef => {
    if (isLeaf(t)) {
      leaves.push(t);
      return { kind: "leaf" };
    }
    if (Array.isArray(t)) return { kind: "array", children: t.map((c, i) => go(c, `${path}[${i}]`)) };
    if (isPlainObject(t)) {
      const keys = Object.keys(t);
      return { kind: "object", keys, children: keys.map((k) => go(t[k], `${path}.${k}`)) };
    }
    throw new ArgumentError(op, `expected a ${what}, an array or a plain object at ${path || "the root"}, got ${describeValue(t)}`);
  };
  const def = go(tree, root);
  return { leaves, def };
}

/** Rebuilds a tree of structure `def` from leaves, in flatten's order. */
export function unflatten<L>(def: TreeDef, leaves: readonly L[]): Tree<L> {
  let i = 0;
  const go = (d: TreeDef): Tree<L> => {
    switch (d.kind) {
      case "leaf":
        return leaves[i++];
      case "array":
        return d.children.map(go);
      case "object":
        return Object.fromEntries(d.keys.map((k, j) => [k, go(d.children[j])]));
      default:
        return d satisfies never;
    }
  };
  const out = go(def);
  if (i !== leaves.length) throw new Error(`pytree: ${leaves.length} leaves for a structure with ${i}`);
  return out;
}

/** The path of every leaf of `def` in flatten's order, from `root`: "argument 0.blocks[2].w". */
export function leafPaths(def: TreeDef, root: string, join: PathJoin = bracketed): string[] {
  if (def.kind === "leaf") return [root];
  return def.children.flatMap((c, i) => leafPaths(c, join(root, def.kind === "object" ? def.keys[i] : i), join));
}

/** How a child's path extends its parent's: `key` is an object key or an array index. */
export type PathJoin = (parent: string, key: string | number) => string;
/** "argument 0.blocks[2].w": keys after dots, indices in brackets (error messages). */
export const bracketed: PathJoin = (p, k) => (typeof k === "number" ? `${p}[${k}]` : `${p}.${k}`);
/** "blocks.2.w": every step after a dot, no leading dot (PyTorch state-dict names). */
export const dotted: PathJoin = (p, k) => (p ? `${p}.${k}` : `${k}`);

/** The number of leaves of a tree of structure `def`. */
export const leafCount = (def: TreeDef): number => (def.kind === "leaf" ? 1 : def.children.reduce((a, c) => a + leafCount(c), 0));

/** Applies `f` to every leaf. */
export function mapTree<L, M>(tree: Tree<L>, isLeaf: (x: unknown) => x is L, f: (leaf: L, index: number) => M): Tree<M> {
  const { leaves, def } = flatten(tree, isLeaf);
  return unflatten(def, leaves.map(f));
}

/** A leaf for `mapTrees`: anything that is not an array or a plain object (a tensor, an array of the host or device, a number). */
const isAnyLeaf = (x: unknown): x is unknown => !Array.isArray(x) && !isPlainObject(x);

/**
 * `f` applied leaf by leaf across trees of one structure (JAX's `tree.map(f, a, b)`): the result
 * has the first tree's structure, with `f(a_i, b_i, ...)` at leaf i. A tree of another structure
 * is an ArgumentError naming the tree and where it departs.
 */
export function mapTrees<R>(f: (...leaves: never[]) => R, tree: unknown, ...rest: readonly unknown[]): Tree<R> {
  const first = flatten(tree, isAnyLeaf, "leaf", { op: "tree.map", root: "tree 0" });
  const others = rest.map((t, i) => {
    const o = flatten(t, isAnyLeaf, "leaf", { op: "tree.map", root: `tree ${i + 1}` });
    if (JSON.stringify(o.def) !== JSON.stringify(first.def))
      throw new ArgumentError(
        "tree.map",
        `tree ${i + 1} does not have tree 0's structure (paths ${leafPaths(o.def, `tree ${i + 1}`)
          .slice(0, 4)
          .join(", ")}… against ${leafPaths(first.def, "tree 0").slice(0, 4).join(", ")}…)`,
      );
    return o.leaves;
  });
  const g = f as (...leaves: unknown[]) => R;
  return unflatten(
    first.def,
    first.leaves.map((l, i) => g(l, ...others.map((o) => o[i]))),
  );
}
