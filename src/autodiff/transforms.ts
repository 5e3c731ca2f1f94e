/**
 * grad, valueAndGrad, vjp, jvp and the Jacobians: function transformations over pytrees of tensors, in the manner of
 * JAX. They build the backward graph symbolically (nothing runs), so results compile, fuse and
 * differentiate again like any other graph.
 */
import {
  add,
  ArgumentError,
  constant,
  reshape,
  stack,
  zeros,
  type DType,
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

/** Refuses tangents that are not one tree per primal with the primal's structure and shapes. */
function checkTangents(primals: readonly unknown[], tangents: readonly unknown[]): void {
  if (tangents.length !== primals.length) throw new ArgumentError("jvp", `expected ${primals.length} tangents (one per primal), got ${tangents.length}`);
  primals.forEach((p, a) => {
    const ps = flatten(p, isTensor, "Tensor", { op: "jvp", root: `primal ${a}` });
    const ts = flatten(tangents[a], isTensor, "Tensor", { op: "jvp", root: `tangent ${a}` });
    const paths = leafPaths(ps.def, `tangent ${a}`);
    if (ts.leaves.length !== ps.leaves.length) throw new ArgumentError("jvp", `tangent ${a} has ${ts.leaves.length} leaves, its primal ${ps.leaves.length}`);
    ts.leaves.forEach((t, i) => {
      const x = ps.leaves[i];
      if (t.rank !== x.rank || t.shape.some((d, k) => d !== x.shape[k]))
        throw new ArgumentError("jvp", `${paths[i]} has shape [${t.shape}] but its primal has [${x.shape}]: a tangent has its primal's shape`);
    });
  });
}

/**
 * Forward mode: `jvp(f, primals, tangents)` is `[f(...primals), J·tangents]`, the directional
 * derivative of `f` along one tangent tree per primal (JAX's `jvp`). It is built as the
 * transpose of the pullback: the pullback is linear in its cotangent, and differentiating it
 * gives J·t, exactly, as a graph that compiles and differentiates again like any other (two
 * reverse passes rather than one forward pass; integer primals take no tangent effect).
 */
export function jvp<A extends readonly unknown[], R extends Tree<Tensor>>(f: Fn<A, R>, primals: A, tangents: A): [R, R] {
  checkFunction("jvp", f);
  checkTangents(primals, tangents);
  const [out, pullback] = vjp(f, ...primals);
  const u0 = unflatten(flatten(out, isTensor).def, flatten(out, isTensor).leaves.map(zerosLike)) as R;
  const [, transpose] = vjp((u: R) => pullback(u) as unknown as Tree<Tensor>, u0);
  const [tangentOut] = transpose(tangents as unknown as Tree<Tensor>);
  return [out, tangentOut as R];
}

/** The shape a Jacobian of `out` with respect to `x` has: the output's axes, then the input's. */
const jacobianShape = (out: Tensor, x: Tensor) => [...out.shape, ...x.shape];

/**
 * The Jacobian of `f` at `x` (one tensor in, one tensor out), shaped [...out, ...in], by reverse
 * mode: one pullback per output element, on the rows of the identity. Cheap where the output is
 * small (a loss's few components); see jacfwd for few inputs.
 */
export function jacrev(f: (x: Tensor) => Tensor): (x: Tensor) => Tensor {
  checkFunction("jacrev", f);
  return (x) => {
    const [out, pullback] = vjp(f, x);
    const rows = Array.from({ length: out.size }, (_, i) => reshape(pullback(reshape(oneHotAt(out.size, i, out.dtype), out.shape))[0], [x.size]));
    return reshape(rows.length ? stack(rows, 0) : zeros([0, x.size], x.dtype), jacobianShape(out, x));
  };
}

/**
 * The Jacobian of `f` at `x`, shaped [...out, ...in], by forward mode: one jvp per input element,
 * along the columns of the identity. Cheap where the input is small; see jacrev for few outputs.
 */
export function jacfwd(f: (x: Tensor) => Tensor): (x: Tensor) => Tensor {
  checkFunction("jacfwd", f);
  return (x) => {
    const out = f(x);
    const cols = Array.from({ length: x.size }, (_, j) => reshape(jvp(f, [x], [reshape(oneHotAt(x.size, j, x.dtype), x.shape)])[1], [out.size]));
    return reshape(cols.length ? stack(cols, 1) : zeros([out.size, 0], out.dtype), jacobianShape(out, x));
  };
}

/** Row `i` of the n×n identity, as a constant vector of `dtype`. */
const oneHotAt = (n: number, i: number, dtype: DType): Tensor =>
  constant(
    Array.from({ length: n }, (_, k) => (k === i ? 1 : 0)),
    dtype,
  );
