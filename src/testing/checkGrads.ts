/**
 * Gradient checking by central finite differences in float64, along random directions, through
 * the VJP inner-product identity (the method of JAX's check_grads):
 *   ⟨t, Jᵀc⟩ ≈ ⟨(f(x + εt) − f(x − εt)) / 2ε, c⟩
 * for a random tangent t and a random output cotangent c. Order 2 checks the VJP itself the same way.
 */
import { vjp } from "../autodiff/index.js";
import { compile, HostTensor, hostTensor } from "../backend/index.js";
import {
  add,
  cast,
  constant,
  flatten,
  isFloat,
  isTensor,
  mul,
  spec,
  sub,
  unflatten,
  WgradError,
  type Tensor,
  type TensorSpec,
  type Tree,
} from "../dsl/index.js";

/** checkGrads's settings (JAX check_grads's, by the same names where they exist); every one has a default. */
export interface CheckGradsOptions {
  /** 1 checks the VJP; 2 also checks the VJP's own VJP. Default 1. */
  readonly order?: 1 | 2;
  /** Finite-difference step. Default 1e-5. */
  readonly eps?: number;
  /** Relative tolerance on the two inner products. Default 1e-5. */
  readonly rtol?: number;
  /** Absolute tolerance. Default 1e-7. */
  readonly atol?: number;
  /** Seed of the random directions. Default 0. */
  readonly seed?: number;
  /** How many random (tangent, cotangent) pairs to try. Default 2. */
  readonly samples?: number;
  /** Which arguments to differentiate. Default: every float argument. */
  readonly argnums?: readonly number[];
}

/** Thrown when a gradient disagrees with finite differences. */
export class GradientCheckError extends WgradError {
  override readonly name = "GradientCheckError";
}

/** A small seeded generator (mulberry32) for host-side directions. */
export function hostRng(seed: number): { uniform(): number; normal(): number } {
  let s = seed >>> 0 || 0x9e3779b9;
  const uniform = () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const normal = () => Math.sqrt(-2 * Math.log(1 - uniform())) * Math.cos(2 * Math.PI * uniform());
  return { uniform, normal };
}

type Fn = (...args: Tensor[]) => Tree<Tensor>;

const randomLike = (t: { shape: readonly number[]; size: number }, rng: ReturnType<typeof hostRng>) =>
  hostTensor(
    Float64Array.from({ length: t.size }, () => rng.normal()),
    t.shape,
    "f64",
  );

const dot = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s;
};

/**
 * Checks the reverse-mode gradients of `f` at `args` against central differences in float64.
 * Float arguments are promoted to f64; `f` must therefore be written dtype-generically (it is,
 * if it builds constants from its inputs or from plain numbers). Throws GradientCheckError with
 * both inner products on a mismatch.
 */
export function checkGrads(f: Fn, args: readonly HostTensor[], opts: CheckGradsOptions = {}): void {
  const { order = 1, eps = 1e-5, rtol = 1e-5, atol = 1e-7, seed = 0, samples = 2 } = opts;
  const x64 = args.map((a) => (isFloat(a.dtype) ? hostTensor(a.data, a.shape, "f64") : a));
  const argnums = opts.argnums ?? x64.flatMap((a, i) => (isFloat(a.dtype) ? [i] : []));
  checkOrder1(f, x64, argnums, { eps, rtol, atol, seed, samples }, "order 1");
  if (order === 2) {
    // The VJP at a fixed random cotangent is itself a function of x: check its gradients too.
    const rng = hostRng(seed + 7919);
    const outs = shapesOf(f, x64);
    const cts = outs.map((o) => randomLike(o, rng));
    const pullback: Fn = (...xs) => {
      const [out, back] = vjp((...ys: Tensor[]) => f(...ys), ...xs);
      const outLeaves = flatten(out, isTensor).leaves;
      const c = cts.map((ct, i) => cast(constant(ct.data, "f64", ct.shape), outLeaves[i].dtype));
      const grads = back(rebuildLike(out, c) as Tree<Tensor> as never) as readonly Tensor[];
      return argnums.map((i) => grads[i]);
    };
    checkOrder1(pullback, x64, argnums, { eps, rtol, atol, seed: seed + 1, samples }, "order 2");
  }
}

/** A tree of `tree`'s structure with `leaves` in its places. */
const rebuildLike = (tree: Tree<Tensor>, leaves: readonly Tensor[]): Tree<Tensor> => unflatten(flatten(tree, isTensor).def, leaves);

function shapesOf(f: Fn, xs: readonly HostTensor[]): { shape: readonly number[]; size: number }[] {
  const specs = xs.map((x) => spec(x.shape, x.dtype));
  let outs: Tensor[] = [];
  compile((...ys: Tensor[]) => {
    const o = f(...ys);
    outs = flatten(o, isTensor).leaves;
    return o;
  }, specs as TensorSpec[]);
  return outs.map((o) => ({ shape: o.shape, size: o.size }));
}

interface Tol {
  eps: number;
  rtol: number;
  atol: number;
  seed: number;
  samples: number;
}

function checkOrder1(f: Fn, xs: readonly HostTensor[], argnums: readonly number[], tol: Tol, label: string): void {
  const rng = hostRng(tol.seed);
  const specs = xs.map((x) => spec(x.shape, x.dtype));
  const outs = shapesOf(f, xs);
  // One compiled program gives f(x ± εt) and the VJP at x for a given (t, c).
  const exe = compile(
    (xsT: Tensor[], ts: Tensor[], cs: Tensor[]) => {
      const shifted = (sgn: number) => xsT.map((x, i) => (argnums.includes(i) ? add(x, mul(ts[argnums.indexOf(i)], sgn * tol.eps)) : x));
      const [, back] = vjp((...ys: Tensor[]) => f(...ys), ...xsT);
      const outTree = f(...xsT);
      const grads = back(
        rebuildLike(
          outTree,
          cs.map((c, i) => cast(c, flatten(outTree, isTensor).leaves[i].dtype)),
        ) as never,
      ) as readonly Tensor[];
      const plus = flatten(f(...shifted(1)), isTensor).leaves;
      const minus = flatten(f(...shifted(-1)), isTensor).leaves;
      return { fd: plus.map((p, i) => cast(sub(p, minus[i]), "f64")), grads: argnums.map((i) => cast(grads[i], "f64")) };
    },
    [specs, argnums.map((i) => spec(xs[i].shape, "f64")), outs.map((o) => spec(o.shape, "f64"))] as const,
  );
  for (let s = 0; s < tol.samples; s++) {
    const ts = argnums.map((i) => randomLike(xs[i], rng));
    const cs = outs.map((o) => randomLike(o, rng));
    const r = exe.run([...xs], ts, cs) as unknown as { fd: HostTensor[]; grads: HostTensor[] };
    const viaVjp = r.grads.reduce((acc, g, i) => acc + dot(g.data, ts[i].data), 0);
    const viaFd = r.fd.reduce((acc, d, i) => acc + dot(d.data, cs[i].data), 0) / (2 * tol.eps);
    const err = Math.abs(viaVjp - viaFd);
    const bound = tol.atol + tol.rtol * Math.max(Math.abs(viaVjp), Math.abs(viaFd));
    if (!(err <= bound))
      throw new GradientCheckError(
        `checkGrads (${label}, sample ${s}): the VJP gives ⟨t, Jᵀc⟩ = ${viaVjp} but finite differences give ${viaFd} ` +
          `(|difference| ${err.toExponential(3)} > tolerance ${bound.toExponential(3)}; arguments ${argnums.join(",")}, eps ${tol.eps})`,
      );
  }
}
