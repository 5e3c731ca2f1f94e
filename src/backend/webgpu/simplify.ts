/**
 * Graph simplification before scheduling: aliases removed (stopGradient, customVjp bodies,
 * identity reshapes), common subexpressions merged, small constant subgraphs folded on the CPU.
 * Dead code never enters: only what the outputs reach is rebuilt.
 */
import { dispatch, Tensor, topoSort, type HostData } from "../../dsl/index.js";
import { evalRules } from "../cpu/interpret.js";

/** Constant subgraphs whose result has at most this many elements are folded at compile time. */
const FOLD_LIMIT = 16;

const isAlias = (n: Tensor): boolean =>
  n.prim === "stopGradient" ||
  n.prim === "customVjp" ||
  (n.prim === "reshape" && n.inputs[0].shape.length === n.shape.length && n.shape.every((d, i) => d === n.inputs[0].shape[i]));

/** A key that is equal for nodes computing the same value (same op, params and input nodes). */
function keyOf(n: Tensor, ids: Map<Tensor, number>): string | null {
  if (n.prim === "input") return null;
  const params = JSON.stringify(n.params, (_k, v) =>
    ArrayBuffer.isView(v) ? ((v as HostData).length <= 64 ? Array.from(v as HostData) : `#${ids.get(n)}`) : v,
  );
  return `${n.prim}|${n.dtype}|${n.shape.join(",")}|${params}|${n.inputs.map((i) => ids.get(i)).join(",")}`;
}

export interface Simplified {
  readonly inputs: readonly Tensor[];
  readonly outputs: readonly Tensor[];
}

/** Rebuilds the graph from `outputs` with aliases removed, CSE applied and small constants folded. */
export function simplify(inputs: readonly Tensor[], outputs: readonly Tensor[]): Simplified {
  const map = new Map<Tensor, Tensor>();
  for (const i of inputs) map.set(i, i);
  const byKey = new Map<string, Tensor>();
  const ids = new Map<Tensor, number>();
  for (const n of topoSort(outputs)) {
    if (map.has(n)) {
      ids.set(map.get(n)!, ids.get(map.get(n)!) ?? ids.size);
      continue;
    }
    const ins = n.inputs.map((i) => map.get(i)!);
    let m: Tensor;
    if (isAlias(n)) m = ins[0];
    else {
      m = ins.every((x, k) => x === n.inputs[k]) ? n : new Tensor(n.prim, n.params, ins, n.shape, n.dtype);
      if (m.prim !== "constant" && m.prim !== "input" && m.size <= FOLD_LIMIT && ins.length > 0 && ins.every((x) => x.prim === "constant")) m = fold(m);
      if (!ids.has(m)) ids.set(m, ids.size);
      const key = keyOf(m, ids);
      if (key !== null) {
        const prev = byKey.get(key);
        if (prev) m = prev;
        else byKey.set(key, m);
      }
    }
    if (!ids.has(m)) ids.set(m, ids.size);
    map.set(n, m);
  }
  return { inputs, outputs: outputs.map((o) => map.get(o)!) };
}

function fold(n: Tensor): Tensor {
  const args = n.inputs.map((i) => (i.params as { data: HostData }).data);
  const data = dispatch(evalRules, n, args);
  return new Tensor("constant", { data, shape: n.shape, dtype: n.dtype }, [], n.shape, n.dtype);
}
