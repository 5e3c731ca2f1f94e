/**
 * Scheduling: which nodes get a buffer of their own (materialised), and so which kernels run.
 * Everything else is inlined into its consumers' kernels as index arithmetic and expressions.
 */
import { topoSort, type Prim, type Tensor } from "../../dsl/index.js";
import { needsKernel } from "./lower.js";
import { operandLayout, swapsLastTwo } from "./matmulVec4.js";

/**
 * What computing a primitive inline costs, in units of an add, for deciding whether a value
 * read by several consumers is stored or recomputed by each: views are index arithmetic,
 * transcendentals a handful of instructions, random words a threefry (20 rounds). Nodes that
 * are materialised anyway (leaves, kernels of their own) cost nothing to read.
 */
type CostClass = "view" | "cheap" | "transcendental" | "random";
const COST: { readonly [C in CostClass]: number } = { view: 0, cheap: 1, transcendental: 4, random: 30 };

const costClass: { readonly [P in Prim]: CostClass } = {
  input: "cheap",
  constant: "cheap",
  iota: "cheap",
  randomBits: "random",
  randomUniform: "random",
  neg: "cheap",
  exp: "transcendental",
  log: "transcendental",
  sqrt: "transcendental",
  tanh: "transcendental",
  erf: "transcendental",
  abs: "cheap",
  sign: "cheap",
  reciprocal: "transcendental",
  add: "cheap",
  sub: "cheap",
  mul: "cheap",
  div: "transcendental",
  pow: "transcendental",
  maximum: "cheap",
  minimum: "cheap",
  atan2: "transcendental",
  less: "cheap",
  lessEqual: "cheap",
  greater: "cheap",
  greaterEqual: "cheap",
  equal: "cheap",
  notEqual: "cheap",
  where: "cheap",
  cast: "cheap",
  stopGradient: "cheap",
  sum: "cheap",
  max: "cheap",
  argmax: "cheap",
  argmin: "cheap",
  reshape: "view",
  permute: "view",
  broadcastTo: "view",
  slice: "view",
  pad: "cheap",
  concat: "cheap",
  gather: "cheap",
  scatterAdd: "cheap",
  matmul: "cheap",
  customVjp: "cheap",
};

export interface Schedule {
  readonly order: readonly Tensor[];
  readonly materialized: ReadonlySet<Tensor>;
  readonly consumers: ReadonlyMap<Tensor, readonly Tensor[]>;
  /** Kernel roots in execution order. */
  readonly roots: readonly Tensor[];
}

/**
 * Decides materialisation: graph inputs, non-scalar constants, outputs and reductions/matmuls
 * always; a value that feeds several consumers when recomputing it would cost more than storing
 * it; a matmul operand that is not a plain view of stored data (it is read many times); and
 * anything in `extra` (the compiler adds nodes there when a kernel would need too many bindings).
 */
export function schedule(inputs: readonly Tensor[], outputs: readonly Tensor[], extra: ReadonlySet<Tensor>): Schedule {
  const order = topoSort(outputs);
  const consumers = new Map<Tensor, Tensor[]>();
  for (const n of order) for (const i of n.inputs) if (!consumers.get(i)?.includes(n)) consumers.set(i, [...(consumers.get(i) ?? []), n]);
  const mat = new Set<Tensor>([...inputs, ...outputs, ...extra]);
  const cost = new Map<Tensor, number>();
  for (const n of order) {
    if (n.prim === "input" || (n.prim === "constant" && n.size > 1) || needsKernel(n)) mat.add(n);
    const own = COST[costClass[n.prim]];
    const c = mat.has(n) ? 0 : own + n.inputs.reduce((a, i) => a + (mat.has(i) ? 0 : (cost.get(i) ?? 0)), 0);
    const fan = consumers.get(n)?.length ?? 0;
    if (!mat.has(n) && ((fan >= 2 && c >= 6) || (fan >= 4 && c >= 3) || c > 150)) mat.add(n);
    cost.set(n, mat.has(n) ? 0 : c);
  }
  // Matmul operands are read many times: they must be stored data, seen as stored or transposed
  // (what the vec4 template reads in place). Anything else is materialised first: one copy
  // costs less than re-deriving every element K times.
  // A right operand that is a transpose (Kᵀ in attention) is better stored untransposed when its
  // row length N is not a multiple of 4: the vec4 template then reads it transposed in place.
  const isMat = (x: Tensor) => mat.has(x);
  for (const n of order)
    if (n.prim === "matmul")
      n.inputs.forEach((i, side) => {
        if (operandLayout(i, isMat)) return;
        const [K, N] = n.inputs[1].shape.slice(-2);
        const inner = i.inputs[0];
        mat.add(side === 1 && K % 4 === 0 && N % 4 !== 0 && i.prim === "permute" && swapsLastTwo(i) ? inner : i);
      });
  const roots = order.filter((n) => mat.has(n) && n.prim !== "input" && !(n.prim === "constant"));
  return { order, materialized: mat, consumers, roots };
}

/** The non-materialised nodes a root's kernel inlines (the root included). */
export function inlinedTree(root: Tensor, mat: ReadonlySet<Tensor>): Set<Tensor> {
  const seen = new Set<Tensor>([root]);
  const stack = [...root.inputs];
  while (stack.length) {
    const n = stack.pop()!;
    if (seen.has(n) || mat.has(n)) continue;
    seen.add(n);
    stack.push(...n.inputs);
  }
  return seen;
}

/** Materialised nodes a root's kernel reads directly. */
export function leavesOf(root: Tensor, mat: ReadonlySet<Tensor>): Set<Tensor> {
  const out = new Set<Tensor>();
  for (const n of inlinedTree(root, mat)) for (const i of n.inputs) if (mat.has(i)) out.add(i);
  return out;
}
