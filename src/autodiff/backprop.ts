import { add, cast, dispatch, DTypeError, formatShape, isFloat, isPrim, ShapeError, topoSort, type Tensor } from "../dsl/index.js";
import { vjpRules } from "./rules.js";

/**
 * Reverse-mode accumulation: the cotangents of `wrt` given cotangents `cts` on `outputs`, as new
 * graph nodes. Only nodes on a path from some `wrt` to some output are visited; fan-out is summed;
 * null means "no path" (a zero cotangent).
 */
export function backprop(outputs: readonly Tensor[], cts: readonly Tensor[], wrt: readonly Tensor[]): (Tensor | null)[] {
  const order = topoSort(outputs);
  const targets = new Set(wrt);
  // Which nodes depend on a differentiation target through float values.
  const active = new Set<Tensor>();
  for (const n of order) if (targets.has(n) || (isFloat(n.dtype) && n.inputs.some((i) => active.has(i)))) active.add(n);

  const grads = new Map<Tensor, Tensor>();
  const accumulate = (node: Tensor, ct: Tensor) => {
    const c = ct.dtype === node.dtype ? ct : cast(ct, node.dtype);
    const prev = grads.get(node);
    grads.set(node, prev ? add(prev, c) : c);
  };
  outputs.forEach((o, i) => active.has(o) && accumulate(o, cts[i]));

  for (let k = order.length - 1; k >= 0; k--) {
    const node = order[k];
    const ct = grads.get(node);
    if (!ct || targets.has(node)) continue;
    const inputCts = checkCotangents(node, dispatch(vjpRules, node, ct));
    node.inputs.forEach((inp, i) => {
      const c = inputCts[i];
      if (c && active.has(inp)) accumulate(inp, c);
    });
  }
  return wrt.map((w) => grads.get(w) ?? null);
}

/** Who computed a node's input cotangents, as errors name it: a custom VJP's backward, or a built-in rule. */
const ruleName = (n: Tensor): string =>
  isPrim(n, "customVjp") ? `the backward of customVjp "${n.params.name}"` : `the VJP rule of ${n.prim} (a wgrad bug: please report it)`;

/**
 * Refuses cotangents that do not fit their primals, where they are made: one per input (a custom
 * backward returns one per composite input), each of its input's shape and a float dtype. A
 * wrong-shaped gradient would otherwise broadcast silently into the optimizer's update.
 */
function checkCotangents(node: Tensor, cts: readonly (Tensor | null)[]): readonly (Tensor | null)[] {
  const custom = node.prim === "customVjp";
  const inputs = custom ? node.inputs.slice(1) : node.inputs;
  const given = custom ? cts.slice(1) : cts;
  if (given.length !== inputs.length)
    throw new ShapeError(
      "grad",
      inputs.map((i) => i.shape),
      `${ruleName(node)} returned ${given.length} cotangents for ${inputs.length} inputs`,
      "return one cotangent per input, null where none flows",
    );
  given.forEach((c, i) => {
    if (!c) return;
    const x = inputs[i];
    if (c.rank !== x.rank || c.shape.some((d, k) => d !== x.shape[k]))
      throw new ShapeError(
        "grad",
        [c.shape, x.shape],
        `${ruleName(node)} returned a cotangent of shape ${formatShape(c.shape)} for input ${i}, of shape ${formatShape(x.shape)}`,
        "a cotangent has its primal's shape: sum over broadcast axes, or reshape, before returning it",
      );
    if (!isFloat(c.dtype))
      throw new DTypeError(
        "grad",
        [c.dtype, x.dtype],
        `${ruleName(node)} returned a ${c.dtype} cotangent for input ${i}`,
        "cotangents are floats; return null where no gradient flows",
      );
  });
  return cts;
}
