import { checkClosed, topoSort, type Graph, type HostData, type Node, type Prim, type Tensor } from "../../dsl/index.js";
import { evalRules } from "./interpret.js";

type Rule = (node: Node<Prim>, args: readonly HostData[]) => HostData;

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

  /** Evaluates the graph on flat inputs (already checked) and returns flat outputs. */
  run(inputs: readonly HostData[]): HostData[] {
    const values = new Map<Tensor, HostData>();
    this.graph.inputs.forEach((ph, i) => values.set(ph, inputs[i]));
    this.order.forEach((node, step) => {
      if (node.prim !== "input") {
        const args = node.inputs.map((i) => values.get(i)!);
        values.set(node, (evalRules[node.prim] as Rule)(node as Node<Prim>, args));
      }
      for (const i of node.inputs) if (this.lastUse.get(i) === step) values.delete(i);
    });
    return this.graph.outputs.map((o) => values.get(o)!);
  }
}
