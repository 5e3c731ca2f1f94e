import type { DType } from "./dtype.js";
import { ArgumentError, describeValue, formatShape } from "./errors.js";
import type { Prim, PrimParams } from "./prims.js";
import { sizeOf, type Shape } from "./shape.js";

/**
 * An immutable node of a tensor graph: the primitive that computes it, its parameters, its input
 * nodes, and its static shape and dtype. Building a tensor runs nothing; backends evaluate graphs.
 * Node identity is object identity.
 */
export class Tensor {
  /** @internal Use the op functions; they check shapes and dtypes. */
  constructor(
    readonly prim: Prim,
    readonly params: PrimParams[Prim],
    readonly inputs: readonly Tensor[],
    readonly shape: Shape,
    readonly dtype: DType,
  ) {
    Object.freeze(this);
  }

  get rank(): number {
    return this.shape.length;
  }

  get size(): number {
    return sizeOf(this.shape);
  }

  toString(): string {
    return `Tensor<${this.dtype}${formatShape(this.shape)}>(${this.prim})`;
  }
}

/** A tensor whose primitive is known to be `P`, with its parameters typed accordingly. */
export type Node<P extends Prim> = Tensor & { readonly prim: P; readonly params: PrimParams[P] };

/** A rule table: one function per primitive (of `P`, all by default), so a missing rule is a type error. */
export type RuleTable<R, Args extends unknown[] = [], P extends Prim = Prim> = { readonly [Q in P]: (node: Node<Q>, ...args: Args) => R };

/**
 * Applies the rule for `node`'s primitive. The one place a node meets its primitive's rule: the
 * table's type pairs each primitive with its rule, which TypeScript cannot follow through an index.
 */
export function dispatch<P extends Prim, R, Args extends unknown[]>(table: RuleTable<R, Args, P>, node: Node<P>, ...args: Args): R {
  const rule = table[node.prim] as (node: Node<P>, ...args: Args) => R;
  return rule(node, ...args);
}

/** True if `x` is a Tensor (a graph node); a type guard, used as the leaf test for pytrees of tensors. */
export const isTensor = (x: unknown): x is Tensor => x instanceof Tensor;

/** Whether `n` is a node of primitive `p`, narrowing its parameters to that primitive's. */
export const isPrim = <P extends Prim>(n: Tensor, p: P): n is Node<P> => n.prim === p;

/**
 * `x` if it is a Tensor, else an ArgumentError naming the op, the operand and what it got: a
 * string, null or a host array given to an op would otherwise fail deep inside as a TypeError.
 */
export function tensorOperand(op: string, x: unknown, index = 0): Tensor {
  if (x instanceof Tensor) return x;
  throw new ArgumentError(
    op,
    `operand ${index} is ${describeValue(x)}, expected a Tensor (an argument of the traced function, or constant(...) for fixed values)`,
  );
}
