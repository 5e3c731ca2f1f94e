import { checkClosed, dispatch, topoSort, type Graph, type HostData, type Tensor } from "../../dsl/index.js";
import { evalRules } from "./interpret.js";

/** Bytes of a host value of `n`. */
const hostBytes = (n: Tensor): number => n.size * (n.dtype === "f64" ? 8 : n.dtype === "bool" ? 1 : 4);

/**
 * A graph prepared for the CPU interpreter: nodes in evaluation order, and for each the step
 * after which its value is dropped (so memory follows the graph's liveness, not its size).
 */
export class CpuProgram {
  private readonly order: readonly Tensor[];
  private readonly lastUse: Map<Tensor, number>;

  constructor(readonly graph: Graph) {
    checkClosed(graph);
    this.order = topoSort(graph.outputs);
    this.lastUse = new Map();
    this.order.forEach((n, step) => n.inputs.forEach((i) => this.lastUse.set(i, step)));
    for (const o of graph.outputs) this.lastUse.set(o, Infinity);
  }

  /** Number of primitive evaluations per run. */
  get nodeCount(): number {
    return this.order.length;
  }

  /** The nodes evaluated, in order (inputs excluded). */
  get evaluated(): readonly Tensor[] {
    return this.order.filter((n) => n.prim !== "input");
  }

  /** The most bytes of values alive at once during a run (inputs included). */
  get peakBytes(): number {
    let live = 0;
    let peak = 0;
    this.order.forEach((n, step) => {
      live += hostBytes(n);
      peak = Math.max(peak, live);
      for (const i of n.inputs) if (this.lastUse.get(i) === step) live -= hostBytes(i);
    });
    return peak;
  }

  /** Evaluates the graph on flat inputs (already checked) and returns flat outputs; `time`, if given, gets each node's milliseconds. */
  run(inputs: readonly HostData[], time?: (node: Tensor, ms: number) => void): HostData[] {
    const values = new Map<Tensor, HostData>();
    this.graph.inputs.forEach((ph, i) => values.set(ph, inputs[i]));
    this.order.forEach((node, step) => {
      if (node.prim !== "input") {
        const args = node.inputs.map((i) => values.get(i)!);
        const t0 = time ? performance.now() : 0;
        values.set(node, dispatch(evalRules, node, args));
        if (time) time(node, performance.now() - t0);
      }
      for (const i of node.inputs) if (this.lastUse.get(i) === step) values.delete(i);
    });
    return this.graph.outputs.map((o) => values.get(o)!);
  }
}

export { hostBytes };
