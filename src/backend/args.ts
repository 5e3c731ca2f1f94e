/**
 * Run-time arguments, checked against the trees an executable was compiled for, the same way on
 * every backend: the argument count, each tree's structure, and (by the backend) each leaf's
 * shape and dtype, with errors that name the leaf ("argument 0.blocks[2].w").
 */
import { ArgumentError, flatten, leafCount, leafPaths, type TreeDef } from "../dsl/index.js";

/** The flat leaves of a run's arguments, each with its path for error messages. */
export interface FlatArgs<L> {
  readonly leaves: readonly L[];
  readonly paths: readonly string[];
}

/** Flattens `args` (leaves are what `isLeaf` accepts, described by `what`), refusing a tree that departs from `defs`. */
export function flattenArgs<L>(args: readonly unknown[], defs: readonly TreeDef[], isLeaf: (x: unknown) => x is L, what: string): FlatArgs<L> {
  if (args.length !== defs.length) throw new ArgumentError("run", `expected ${defs.length} arguments, got ${args.length}`);
  const leaves: L[] = [];
  const paths: string[] = [];
  args.forEach((a, i) => {
    const root = `argument ${i}`;
    const { leaves: ls, def } = flatten(a, isLeaf, what, { op: "run", root });
    const differs = structureDifference(def, defs[i], root);
    if (differs) throw new ArgumentError("run", `${differs}: pass the structure it was compiled with`);
    leaves.push(...ls);
    paths.push(...leafPaths(defs[i], root));
  });
  return { leaves, paths };
}

/** For each flat input leaf, the argument it belongs to. */
export const leafArguments = (defs: readonly TreeDef[]): number[] => defs.flatMap((d, i) => Array<number>(leafCount(d)).fill(i));

/** Where a run-time tree (a) departs from the compiled one (b), in words; undefined where they agree. */
function structureDifference(a: TreeDef, b: TreeDef, path: string): string | undefined {
  const what = (d: TreeDef) =>
    d.kind === "leaf" ? "an array" : d.kind === "array" ? `a list of ${d.children.length}` : `an object with keys {${d.keys.join(", ")}}`;
  if (a.kind === "leaf" && b.kind === "leaf") return undefined;
  if (a.kind === "leaf" || b.kind === "leaf" || a.kind !== b.kind || a.children.length !== b.children.length)
    return `${path} is ${what(a)}, compiled with ${what(b)}`;
  if (a.kind === "object" && b.kind === "object" && a.keys.some((k, i) => k !== b.keys[i])) return `${path} is ${what(a)}, compiled with ${what(b)}`;
  for (let i = 0; i < a.children.length; i++) {
    const d = structureDifference(a.children[i], b.children[i], b.kind === "object" ? `${path}.${b.keys[i]}` : `${path}[${i}]`);
    if (d) return d;
  }
  return undefined;
}
