/**
 * Code generation: one planned kernel to WGSL, through its primitive's template (kernels.ts) or
 * the elementwise template, with the inline rules of lower.ts for everything it fuses. It reports
 * what the planner must change instead of failing: too many bindings, or an epilogue that reads
 * its core at another element.
 */
import type { Tensor } from "../../dsl/index.js";
import { KernelGen } from "./gen.js";
import { InlineRefused, inlineRule, ownKernel } from "./lower.js";
import type { KernelPlan, PlannedKernel } from "./plan.js";
import type { Target } from "./target.js";
import { elementwiseKernel, type KernelBody } from "./templates.js";

/** A generated kernel: its body, the node it is built around, and the primitives it fuses (its name). */
export interface Generated {
  readonly kernel: PlannedKernel;
  readonly body: KernelBody;
  /** The core's primitive first, then each primitive inlined, in the order first met. */
  readonly fused: readonly string[];
  readonly refused?: undefined;
}

/** Why a kernel could not be generated as planned. */
export interface Refusal {
  readonly refused: "epilogue" | "bindings";
}

/**
 * Generates kernel `k` of plan `p`. With `alias`, that stored node (a donated input the kernel
 * updates in place) is read through the output binding.
 */
export function codegen(p: KernelPlan, k: PlannedKernel, target: Target, alias?: Tensor): Generated | Refusal {
  const { root, core } = k;
  const node = core ?? root;
  const isMat = (n: Tensor) => p.sched.materialized.has(n) && n !== core && n !== root;
  const g = new KernelGen(p.ids, isMat, inlineRule, alias);
  let body: KernelBody;
  try {
    const own = ownKernel(node);
    body = own ? own.template({ g, node, epilogue: root, target, isMat }) : elementwiseKernel(g, root);
  } catch (e) {
    if (core && e instanceof InlineRefused) return { refused: "epilogue" };
    throw e;
  }
  if (body.reads.length + 1 > target.limits.maxStorageBuffersPerShaderStage) return { refused: "bindings" };
  return { kernel: k, body, fused: [node.prim, ...g.fused.filter((q) => q !== node.prim)] };
}
