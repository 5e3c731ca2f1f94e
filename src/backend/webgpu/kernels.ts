/**
 * The primitives that need a kernel template of their own (reductions, matmul, scatterAdd), each
 * with its template and its fusion rule. The lowering table (lower.ts) names one of these for
 * every primitive it does not inline, so a new primitive with a kernel of its own is a new entry
 * here, typed by its node: a template cannot be handed a primitive it was not written for.
 */
import type { Node, Prim, Tensor } from "../../dsl/index.js";
import type { KernelGen } from "./gen.js";
import { matmulClass } from "./matmulClass.js";
import { matmulTiledKernel, tiledApplicable } from "./matmulTiled.js";
import { matmulVec4Kernel, vec4Applicable } from "./matmulVec4.js";
import type { Target } from "./target.js";
import {
  DEFAULT_MATMUL,
  fitColumns,
  matmulKernel,
  reduceKernel,
  scatterKernel,
  threadPerOutput,
  type KernelBody,
  type MatmulParams,
  type ReducePrim,
} from "./templates.js";

/** How a kernel template is asked for a kernel: the node it computes and what it stores. */
export interface KernelRequest<P extends Prim> {
  readonly g: KernelGen;
  readonly node: Node<P>;
  /** The node stored: `node` itself, or an elementwise consumer fused after it (bias + GELU after a matmul). */
  readonly epilogue: Tensor;
  readonly target: Target;
  /** Whether a node is read from a buffer of its own in this kernel. */
  readonly isMat: (n: Tensor) => boolean;
}

export interface OwnKernel<P extends Prim> {
  readonly template: (r: KernelRequest<P>) => KernelBody;
  /** Whether the kernel can store an elementwise consumer of the node instead of the node (epilogue fusion). */
  readonly takesEpilogue: (node: Node<P>, target: Target) => boolean;
}

/** Tile parameters for the scalar template: a 4×4 register block where the output is large enough, smaller otherwise. */
function scalarTiles(n: Tensor, t: Target): MatmulParams {
  const [M, N] = n.shape.slice(-2);
  // On CPU adapters, rows shared by subgroup broadcast (as in the vec4 kernel): 3-5× faster there.
  if (t.cpu && t.subgroupSize >= 8) return fitColumns({ tm: M <= 8 ? 8 : 16, tn: Math.min(4, N), wx: 16, wy: 1, subgroup: 8 }, N);
  return { tm: Math.min(4, M), tn: Math.min(4, N), wx: 8, wy: 8 };
}

/**
 * The forced, tuned or default tiles (in workgroup memory where they have a depth bk); 4×4 vec4
 * blocks where those do not fit (a subgroup kernel needs rows in multiples of its lanes); the
 * scalar template where no vec4 kernel does.
 */
function matmulTemplate({ g, node, epilogue, target, isMat }: KernelRequest<"matmul">): KernelBody {
  const want = target.matmulFor(matmulClass(node, isMat));
  const p = [want, DEFAULT_MATMUL].find((q) => vec4Applicable(node, q, isMat, target.subgroupSize));
  if (tiledApplicable(node, want, target.limits)) return matmulTiledKernel(g, node, epilogue, want, isMat);
  if (p) return matmulVec4Kernel(g, node, epilogue, p, isMat);
  const forced = target.forcedMatmul;
  return matmulKernel(g, node, epilogue, forced && !forced.subgroup && !forced.bk ? forced : scalarTiles(node, target));
}

/** A reduction: a thread per output or a workgroup per output; only the first can take an epilogue. */
const reduction = <P extends ReducePrim>(epilogue: boolean): OwnKernel<P> => ({
  template: (r) => reduceKernel(r.g, r.node, r.epilogue, r.target.cpu),
  takesEpilogue: (n, t) => epilogue && threadPerOutput(n, t.cpu),
});

/** Every primitive with a kernel of its own. */
export const OWN_KERNELS = {
  sum: reduction<"sum">(true),
  max: reduction<"max">(true),
  argmax: reduction<"argmax">(false),
  argmin: reduction<"argmin">(false),
  matmul: { template: matmulTemplate, takesEpilogue: (_, t) => t.matmulEpilogues },
  scatterAdd: { template: (r) => scatterKernel(r.g, r.node), takesEpilogue: () => false },
} as const satisfies { readonly [P in Prim]?: OwnKernel<P> };

/** The primitives with a kernel template of their own. */
export type KernelPrim = keyof typeof OWN_KERNELS;
