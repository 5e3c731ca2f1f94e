import { add, cast, dispatch, isFloat, topoSort, type Tensor } from "../dsl/index.js";
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
    const inputCts = dispatch(vjpRules, node, ct);
    node.inputs.forEach((inp, i) => {
      const c = inputCts[i];
      if (c && active.has(inp)) accumulate(inp, c);
    });
  }
  return wrt.map((w) => grads.get(w) ?? null);
}
