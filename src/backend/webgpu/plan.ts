/**
 * Planning: which nodes are stored (schedule.ts), which kernels run, and which matmuls and
 * reductions absorb their elementwise consumer as an epilogue. The plan is refined by what code
 * generation reports (a kernel over the binding limit, an epilogue that reads its core at another
 * element) until every kernel generates.
 */
import { ArgumentError, type Tensor } from "../../dsl/index.js";
import { codegen, type Generated } from "./codegen.js";
import { needsKernel, ownKernel } from "./lower.js";
import { inlinedTree, leavesOf, schedule, type Schedule } from "./schedule.js";
import type { Target } from "./target.js";

/** One kernel of a plan: the stored node it writes, and the matmul or reduction it fuses as its core. */
export interface PlannedKernel {
  readonly root: Tensor;
  /** The matmul or reduction whose result the root's expression consumes in registers (epilogue fusion). */
  readonly core: Tensor | null;
}

export interface KernelPlan {
  readonly sched: Schedule;
  /** Every node's position in evaluation order (its WGSL value names derive from it). */
  readonly ids: ReadonlyMap<Tensor, number>;
  /** Kernels in execution order. */
  readonly kernels: readonly PlannedKernel[];
}

/** What the planner was told to do differently: nodes to store, and cores not to fuse. */
interface Constraints {
  readonly materialize: ReadonlySet<Tensor>;
  readonly noFuse: ReadonlySet<Tensor>;
}

/** Schedules the graph and fuses each elementwise root with the matmul or reduction it alone consumes. */
export function plan(inputs: readonly Tensor[], outputs: readonly Tensor[], target: Target, c: Constraints): KernelPlan {
  const sched = schedule(inputs, outputs, c.materialize);
  const ids = new Map(sched.order.map((n, i) => [n, i]));
  const outSet = new Set(outputs);
  const coreOf = new Map<Tensor, Tensor>();
  const fusedAway = new Set<Tensor>();
  const readers = new Map<Tensor, Tensor[]>();
  const leaves = new Map(sched.roots.map((r) => [r, leavesOf(r, sched.materialized)]));
  for (const [r, ls] of leaves) for (const l of ls) readers.set(l, [...(readers.get(l) ?? []), r]);
  for (const r of sched.roots) {
    if (needsKernel(r)) continue;
    for (const core of leaves.get(r)!) {
      const fusable = ownKernel(core)?.takesEpilogue(core, target) ?? false;
      if (fusable && !outSet.has(core) && !c.noFuse.has(core) && !fusedAway.has(core) && core.size === r.size && readers.get(core)!.length === 1) {
        coreOf.set(r, core);
        fusedAway.add(core);
        break;
      }
    }
  }
  const kernels = sched.roots.filter((r) => !fusedAway.has(r)).map((root) => ({ root, core: coreOf.get(root) ?? null }));
  return { sched, ids, kernels };
}

/**
 * Plans and generates every kernel: where a kernel would exceed the device's storage bindings,
 * its widest inlined node is stored instead; where an epilogue reads its core at another element,
 * that fusion is given up. Either way the graph is planned again.
 */
export function planAndGenerate(
  inputs: readonly Tensor[],
  outputs: readonly Tensor[],
  target: Target,
  materialize: ReadonlySet<Tensor>,
): { plan: KernelPlan; kernels: Generated[] } {
  const extra = new Set(materialize);
  const noFuse = new Set<Tensor>();
  for (;;) {
    const p = plan(inputs, outputs, target, { materialize: extra, noFuse });
    const kernels: Generated[] = [];
    for (const k of p.kernels) {
      const r = codegen(p, k, target);
      if (!r.refused) {
        kernels.push(r);
        continue;
      }
      if (r.refused === "epilogue") noFuse.add(k.core!);
      else extra.add(widestInlined(k.root, p.sched));
      break;
    }
    if (kernels.length === p.kernels.length) return { plan: p, kernels };
  }
}

/** The inlined node whose materialisation removes the most bindings from a kernel. */
function widestInlined(root: Tensor, sched: Schedule): Tensor {
  let best: Tensor | null = null;
  let most = 0;
  for (const n of inlinedTree(root, sched.materialized)) {
    if (n === root) continue;
    const k = leavesOf(n, sched.materialized).size;
    if (k > most) [best, most] = [n, k];
  }
  if (!best) throw new ArgumentError("compile", `a kernel for ${root.prim} needs more storage bindings than the device allows`);
  return best;
}
