import type { DType } from "./dtype.js";
import { ArgumentError, describeValue } from "./errors.js";
import { input } from "./ops.js";
import { flatten, type MapLeaves, type Tree, type TreeDef } from "./pytree.js";
import type { Shape } from "./shape.js";
import { Tensor, isTensor } from "./tensor.js";

/** The shape and dtype of a run-time argument. */
export class TensorSpec {
  constructor(
    readonly shape: Shape,
    readonly dtype: DType = "f32",
  ) {}
}

/** Describes one argument for `compile`/`trace`: `spec([64, 784])`, `spec([2], "i32")`. */
export const spec = (shape: Shape, dtype: DType = "f32"): TensorSpec => new TensorSpec(shape, dtype);

export const isSpec = (x: unknown): x is TensorSpec => x instanceof TensorSpec;

/** A traced function: its placeholders and outputs in flat order, with both tree structures. */
export interface Graph {
  readonly inputs: readonly Tensor[];
  readonly outputs: readonly Tensor[];
  readonly inputDefs: readonly TreeDef[];
  readonly outputDef: TreeDef;
}

/** A function over pytrees of tensors, as `trace`, `compile` and the transformations take it. */
export type TensorFn = (...args: never[]) => Tree<Tensor>;

/** The pytree of tensors that an argument spec stands for. */
export type Traced<S> = MapLeaves<S, TensorSpec, Tensor>;

/**
 * Calls `f` on placeholders made from `specs` (one pytree of specs per argument) and records the
 * graph it builds. Nothing is evaluated.
 */
export function trace(f: TensorFn, specs: readonly Tree<TensorSpec>[], op = "trace"): Graph {
  checkTraceable(op, f, specs);
  const inputs: Tensor[] = [];
  const inputDefs: TreeDef[] = [];
  const args = specs.map((s, a) => {
    const { leaves, def } = flatten(s, isSpec, "spec (use spec(shape, dtype))", { op, root: `argument ${a}` });
    inputDefs.push(def);
    const phs = leaves.map((l, i) => input(l.shape, l.dtype, `arg${a}.${i}`));
    inputs.push(...phs);
    return rebuild(def, phs);
  });
  const out = (f as (...a: unknown[]) => Tree<Tensor>)(...args);
  const { leaves, def } = flatten(out, isTensor, "Tensor", { op, root: "the function's result" });
  return { inputs, outputs: leaves, inputDefs, outputDef: def };
}

/**
 * A function and a list of argument specs, checked before tracing: `compile(spec([2]), f)` or a
 * bare spec for the list would otherwise fail as "f is not a function" or "specs.map is not a function".
 */
function checkTraceable(op: string, f: unknown, specs: unknown): void {
  if (typeof f !== "function") throw new ArgumentError(op, `the first argument must be the function to trace, got ${describeValue(f)}`);
  if (!Array.isArray(specs))
    throw new ArgumentError(
      op,
      `the specs must be a list with one spec tree per argument of the function, got ${describeValue(specs)}; for one argument write [spec(shape)]`,
    );
}

function rebuild(def: TreeDef, leaves: readonly Tensor[]): Tree<Tensor> {
  let i = 0;
  const go = (d: TreeDef): Tree<Tensor> =>
    d.kind === "leaf" ? leaves[i++] : d.kind === "array" ? d.children.map(go) : Object.fromEntries(d.keys.map((k, j) => [k, go(d.children[j])]));
  return go(def);
}

/**
 * Every node `outputs` depend on, inputs before users (iterative, so deep graphs do not
 * overflow the stack).
 */
export function topoSort(outputs: readonly Tensor[]): Tensor[] {
  const order: Tensor[] = [];
  const state = new Map<Tensor, 1 | 2>(); // 1: on the stack, 2: done
  for (const root of outputs) {
    if (state.has(root)) continue;
    const stack: [Tensor, number][] = [[root, 0]];
    state.set(root, 1);
    while (stack.length) {
      const top = stack[stack.length - 1];
      const [node, i] = top;
      if (i < node.inputs.length) {
        top[1]++;
        const child = node.inputs[i];
        if (!state.has(child)) {
          state.set(child, 1);
          stack.push([child, 0]);
        }
      } else {
        stack.pop();
        state.set(node, 2);
        order.push(node);
      }
    }
  }
  return order;
}

/**
 * Checks that every placeholder a graph uses is one of its declared inputs. Every backend calls it
 * when it compiles a graph, so a function that closes over a tensor of another trace (a value kept
 * from an earlier compile or a grad call) is refused there, with the same error on every backend,
 * instead of failing when it runs.
 */
export function checkClosed(g: Graph): void {
  const declared = new Set(g.inputs);
  for (const n of topoSort(g.outputs))
    if (n.prim === "input" && !declared.has(n))
      throw new ArgumentError(
        "compile",
        `the function uses a placeholder (${n}${"name" in n.params ? ` "${n.params.name}"` : ""}) that is not one of its arguments: a tensor of another trace, captured by closure; pass it as an argument instead of closing over it`,
      );
}
