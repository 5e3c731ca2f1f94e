/**
 * grad, valueAndGrad and vjp: function transformations over pytrees of tensors, in the manner of
 * JAX. They build the backward graph symbolically (nothing runs), so results compile, fuse and
 * differentiate again like any other graph.
 */
import {
  add,
  ArgumentError,
  describeValue,
  flatten,
  isFloat,
  isTensor,
  leafPaths,
  make,
  mul,
  ones,
  sum,
  unflatten,
  zerosLike,
  type Tensor,
  type Tree,
  type TreeDef,
} from "../dsl/index.js";
import { backprop } from "./backprop.js";

/** A fresh node equal to `x`, so a transformation differentiates with respect to its own argument only. */
const fresh = (x: Tensor): Tensor => make("reshape", { shape: x.shape }, [x]);

interface Prepared {
  args: unknown[];
  wrt: Tensor[][]; // per differentiated argument, its fresh leaves
  defs: ReturnType<typeof flatten>["def"][];
}

/**
 * Refuses to differentiate with respect to integer or bool leaves, as JAX's grad does: their
 * gradient is not defined, and zeros would hide that a wrong argument was differentiated.
 * `argnums` leaves such an argument out; vjp, whose cotangents are defined for every primal, allows them.
 */
function checkRealValued(op: string, leaves: readonly Tensor[], def: TreeDef, a: number): void {
  const paths = leafPaths(def, `argument ${a}`);
  leaves.forEach((l, i) => {
    if (!isFloat(l.dtype))
      throw new ArgumentError(
        op,
        `${op} requires real-valued inputs; ${paths[i]} has dtype ${l.dtype}; pass it as a non-differentiated argument (leave it out of argnums) or cast it to f32`,
      );
  });
}

function prepare(op: string, args: readonly unknown[], argnums: readonly number[], realOnly: boolean): Prepared {
  const out = [...args];
  const wrt: Tensor[][] = [];
  const defs: Prepared["defs"] = [];
  for (const a of argnums) {
    if (!Number.isInteger(a) || a < 0 || a >= args.length) throw new ArgumentError(op, `argnums ${a} is out of range for ${args.length} arguments`);
    const { leaves, def } = flatten(args[a], isTensor, "Tensor", { op, root: `argument ${a}` });
    if (realOnly) checkRealValued(op, leaves, def, a);
    const fr = leaves.map(fresh);
    wrt.push(fr);
    defs.push(def);
    out[a] = unflatten(def, fr);
  }
  return { args: out, wrt, defs };
}

/** Gradients back in each argument's tree structure; non-float leaves (vjp's integer primals) get zeros. */
function collect(p: Prepared, grads: readonly (Tensor | null)[]): Tree<Tensor>[] {
  let k = 0;
  return p.wrt.map((leaves, i) =>
    unflatten(
      p.defs[i],
      leaves.map((l) => grads[k++] ?? zerosLike(l)),
    ),
  );
}

function scalarLoss(op: string, y: unknown): Tensor {
  if (!isTensor(y) || y.rank !== 0 || !isFloat(y.dtype))
    throw new ArgumentError(
      op,
      `the function must return a float scalar tensor, got ${isTensor(y) ? `${y.dtype}[${y.shape.join(",")}]` : typeof y}; reduce it with sum or mean (or use vjp)`,
    );
  return y;
}

/** Options of grad and valueAndGrad (JAX's `argnums`). */
export interface GradOptions<N extends number | readonly number[]> {
  /** Which arguments to differentiate: an index (the result is that argument's gradient) or a list (a tuple). Default 0. */
  readonly argnums?: N;
}

/** valueAndGrad's `hasAux` (as JAX's): the function returns [loss, aux] and only the loss is differentiated. */
export interface AuxOptions {
  /** The function returns [loss, aux]; aux is passed through undifferentiated. */
  readonly hasAux: true;
}

type GradOf<A extends readonly unknown[], N> = N extends number ? A[N] : { -readonly [K in keyof N]: N[K] extends number ? A[N[K]] : never };

type Fn<A extends readonly unknown[], R> = (...args: A) => R;

/** A transformation's function argument, checked when it is transformed rather than when it is first called. */
function checkFunction(op: string, f: unknown): void {
  if (typeof f !== "function") throw new ArgumentError(op, `the first argument must be the function to differentiate, got ${describeValue(f)}`);
}

function valueAndGradImpl(op: string, f: (...a: unknown[]) => unknown, argnums: number | readonly number[], hasAux: boolean) {
  checkFunction(op, f);
  const list = typeof argnums === "number" ? [argnums] : argnums;
  return (...args: unknown[]) => {
    const p = prepare(op, args, list, true);
    const result = f(...p.args);
    if (hasAux && (!Array.isArray(result) || result.length !== 2)) throw new ArgumentError(op, "with hasAux the function must return [loss, aux]");
    const loss = scalarLoss(op, hasAux ? (result as unknown[])[0] : result);
    const grads = collect(p, backprop([loss], [ones([], loss.dtype)], p.wrt.flat()));
    return [result, typeof argnums === "number" ? grads[0] : grads] as const;
  };
}

/**
 * The gradient of a scalar-valued function. `grad(f)(x)` has x's tree structure; with
 * `{ argnums: [0, 2] }` it is a tuple of gradients.
 */
export function grad<A extends readonly unknown[], const N extends number | readonly number[] = 0>(
  f: Fn<A, Tensor>,
  opts: GradOptions<N> = {},
): (...args: A) => GradOf<A, N> {
  const vg = valueAndGradImpl("grad", f as unknown as (...a: unknown[]) => unknown, opts.argnums ?? 0, false);
  return (...args) => vg(...args)[1] as GradOf<A, N>;
}

/** Like grad, returning [value, gradient]; with `hasAux`, f returns [loss, aux] and so does the value. */
export function valueAndGrad<A extends readonly unknown[], const N extends number | readonly number[] = 0>(
  f: Fn<A, Tensor>,
  opts?: GradOptions<N>,
): (...args: A) => [Tensor, GradOf<A, N>];
export function valueAndGrad<A extends readonly unknown[], X, const N extends number | readonly number[] = 0>(
  f: Fn<A, readonly [Tensor, X]>,
  opts: GradOptions<N> & AuxOptions,
): (...args: A) => [readonly [Tensor, X], GradOf<A, N>];
export function valueAndGrad(f: (...a: unknown[]) => unknown, opts: GradOptions<number | readonly number[]> & Partial<AuxOptions> = {}) {
  return valueAndGradImpl("valueAndGrad", f, opts.argnums ?? 0, opts.hasAux ?? false);
}

/**
 * The value of `f` at `primals` and its pullback: a function from an output cotangent (a tree
 * shaped like the output) to one cotangent tree per primal.
 */
export function vjp<A extends readonly unknown[], R extends Tree<Tensor>>(
  f: Fn<A, R>,
  ...primals: A
): [R, (cotangent: R) => { -readonly [K in keyof A]: A[K] }] {
  checkFunction("vjp", f);
  const p = prepare(
    "vjp",
    primals,
    primals.map((_, i) => i),
    false,
  );
  const out = (f as unknown as (...a: unknown[]) => R)(...p.args);
  const outs = flatten(out, isTensor, "Tensor", { op: "vjp", root: "the function's result" }).leaves;
  const pullback = (ct: R) => {
    const { leaves: cts } = flatten(ct, isTensor, "Tensor", { op: "vjp", root: "the cotangent" });
    if (cts.length !== outs.length) throw new ArgumentError("vjp", `the cotangent has ${cts.length} leaves, the output ${outs.length}`);
    cts.forEach((c, i) => {
      if (c.rank !== outs[i].rank || c.shape.some((d, j) => d !== outs[i].shape[j]))
        throw new ArgumentError("vjp", `cotangent leaf ${i} has shape [${c.shape}] but the output has [${outs[i].shape}]`);
    });
    return collect(p, backprop(outs, cts, p.wrt.flat())) as { -readonly [K in keyof A]: A[K] };
  };
  return [out, pullback];
}

/** Hessian-vector product of a scalar function of one tensor tree: ∇²f(x)·v, by reverse over reverse. */
export function hvp<T extends Tree<Tensor>>(f: (x: T) => Tensor, x: T, v: T): T {
  const g = grad(f);
  const dot = (y: T) => {
    const gs = flatten(g(y), isTensor).leaves;
    const vs = flatten(v, isTensor).leaves;
    return gs.map((gi, i) => sum(mul(gi, vs[i]))).reduce((a, b) => add(a, b));
  };
  return grad(dot)(x) as T;
}
