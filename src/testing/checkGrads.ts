/**
 * Gradient checking by finite differences in float64, along random directions, through the VJP
 * inner-product identity (the method of JAX's check_grads):
 *   ⟨t, Jᵀc⟩ ≈ ⟨J·t, c⟩,  J·t ≈ (f(x + εt) − f(x − εt)) / 2ε
 * for a random tangent t and a random output cotangent c. Order 2 checks the VJP itself the same way.
 * The finite difference is Richardson-extrapolated from steps ε and 2ε (a four-point central
 * difference, error O(ε⁴)), and the two steps' disagreement is allowed on top of the tolerances.
 */
import fc from "fast-check";
import { vjp } from "../autodiff/index.js";
import { compile, HostTensor, hostTensor } from "../backend/index.js";
import {
  add,
  cast,
  constant,
  flatten,
  formatShape,
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

/**
 * checkGrads's defaults. The tolerances are JAX check_grads's for float64 (jax._src.public_test_util:
 * `default_gradient_tolerance[float64]` = 1e-5 for both atol and rtol, compared as NumPy's
 * assert_allclose does, |a − n| ≤ atol + rtol·|n|). The step is smaller than JAX's `EPS` (1e-4):
 * the extrapolated difference's truncation error is O(eps⁴), so a small step costs no accuracy
 * and keeps the probes (x ± eps·t, x ± 2·eps·t) clear of kinks and ties near the point.
 */
export const CHECK_GRADS_DEFAULTS = { order: 1, eps: 1e-5, rtol: 1e-5, atol: 1e-5, seed: 0, samples: 2 } as const;

/**
 * checkGrads's settings (JAX check_grads's, by the same names where they exist); every one has a
 * default (CHECK_GRADS_DEFAULTS). An inner product passes when
 * |analytic − numerical| ≤ atol + rtol·|numerical| + |D(eps) − D(2·eps)|,
 * D(h) being the central difference with step h.
 */
export interface CheckGradsOptions {
  /** 1 checks the VJP; 2 also checks the VJP's own VJP. Default 1. */
  readonly order?: 1 | 2;
  /** Finite-difference step (the probes are x ± eps·t and x ± 2·eps·t). Default 1e-5. */
  readonly eps?: number;
  /** Relative tolerance on the two inner products, as JAX's float64 default. Default 1e-5. */
  readonly rtol?: number;
  /** Absolute tolerance on the two inner products, as JAX's float64 default. Default 1e-5. */
  readonly atol?: number;
  /** Seed of the random directions. Default 0. */
  readonly seed?: number;
  /** How many random (tangent, cotangent) pairs to try. Default 2. */
  readonly samples?: number;
  /** Which arguments to differentiate. Default: every float argument. */
  readonly argnums?: readonly number[];
  /** The arguments' names in failure messages. Default: `f`'s parameter names, where its source shows them. */
  readonly names?: readonly string[];
}

/** What a failed gradient check measured: GradientCheckError's `details`. */
export interface GradientCheckDetails {
  /** 1: the VJP disagreed; 2: the VJP's own VJP did. */
  readonly order: 1 | 2;
  /** Which (tangent, cotangent) sample failed, from 0. */
  readonly sample: number;
  /** The arguments whose own directional derivative disagrees (every checked one, if none does alone). */
  readonly argnums: readonly number[];
  /** ⟨t, Jᵀc⟩ by reverse mode, along the tangent of every checked argument. */
  readonly analytic: number;
  /** ⟨J·t, c⟩ by finite differences, along the same tangent. */
  readonly numerical: number;
  /** The bound |analytic − numerical| had to stay within. */
  readonly allowed: number;
  /** The settings the check ran with. */
  readonly options: Required<Omit<CheckGradsOptions, "names">>;
}

/** Thrown when a gradient disagrees with finite differences; the message is the full report. */
export class GradientCheckError extends WgradError {
  override readonly name = "GradientCheckError";
  /** What the check measured, for tests that inspect a failure. */
  readonly details: GradientCheckDetails;

  constructor(message: string, details: GradientCheckDetails, options?: ErrorOptions) {
    super(message, options);
    this.details = details;
  }
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
type Shaped = { shape: readonly number[]; size: number };

const randomLike = (t: Shaped, rng: ReturnType<typeof hostRng>) =>
  hostTensor(
    Float64Array.from({ length: t.size }, () => rng.normal()),
    t.shape,
    "f64",
  );
const zerosLike = (t: Shaped) => hostTensor(new Float64Array(t.size), t.shape, "f64");

const dot = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s;
};

/**
 * Checks the reverse-mode gradients of `f` at `args` against finite differences in float64.
 * Float arguments are promoted to f64; `f` must therefore be written dtype-generically (it is,
 * if it builds constants from its inputs or from plain numbers).
 *
 * For `samples` random tangents t (standard normal, on every argument in `argnums`) and output
 * cotangents c, it compares ⟨t, Jᵀc⟩ from the VJP with ⟨J·t, c⟩ from central differences
 * Richardson-extrapolated from steps eps and 2·eps: (4·D(eps) − D(2·eps))/3. They must satisfy
 * |analytic − numerical| ≤ atol + rtol·|numerical| + |D(eps) − D(2·eps)|; the last term is the
 * finite differences' own uncertainty, so a correct gradient near a point where `f` curves on the
 * scale of eps (LayerNorm of a near-constant row, say) passes, where a plain central difference
 * would blame the gradient. Defaults (CHECK_GRADS_DEFAULTS): rtol = atol = 1e-5 (JAX check_grads's
 * float64 tolerances), eps = 1e-5, samples = 2, seed = 0, order = 1.
 *
 * With several arguments it also checks each one's directional derivative on its own (its tangent
 * alone, the others' zero), which names the argument at fault and catches an error the other
 * arguments' terms would hide. On a mismatch it throws GradientCheckError, whose message names the
 * argument(s) at fault ("argument 1 (w, f64[3,4])"), gives both inner products and their relative
 * error, the gradient element by element for a small argument, the arguments' values (up to 16
 * elements, else summary statistics), and the tolerances with how to change them.
 */
export function checkGrads(f: Fn, args: readonly HostTensor[], opts: CheckGradsOptions = {}): void {
  const d = CHECK_GRADS_DEFAULTS;
  const { order = d.order, eps = d.eps, rtol = d.rtol, atol = d.atol, seed = d.seed, samples = d.samples } = opts;
  const x64 = args.map((a) => (isFloat(a.dtype) ? hostTensor(a.data, a.shape, "f64") : a));
  const argnums = opts.argnums ?? x64.flatMap((a, i) => (isFloat(a.dtype) ? [i] : []));
  const names = opts.names ?? parameterNames(f, args.length);
  const ctx: Context = { args, names, options: { order, eps, rtol, atol, seed, samples, argnums } };
  checkOrder(f, x64, { ...ctx, order: 1, seed });
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
    checkOrder(pullback, x64, { ...ctx, order: 2, seed: seed + 1 });
  }
}

/**
 * A fast-check property that `f`'s gradients pass checkGrads at the tensors `arbs` draws: either
 * one arbitrary per argument, or one arbitrary of the whole argument list. fast-check's own
 * report keeps the checkGrads report in the error's `cause`; assertGradProperty puts both in one
 * message.
 */
export function gradProperty(
  f: Fn,
  arbs: readonly fc.Arbitrary<HostTensor>[] | fc.Arbitrary<readonly HostTensor[]>,
  opts: CheckGradsOptions = {},
): fc.IPropertyWithHooks<unknown[]> {
  if (!Array.isArray(arbs)) return fc.property(arbs as fc.Arbitrary<readonly HostTensor[]>, (xs) => checkGrads(f, xs, opts));
  // One arbitrary per argument: fast-check's variadic form, so a counterexample prints as the argument list.
  const variadic = fc.property as unknown as (...a: unknown[]) => fc.IPropertyWithHooks<unknown[]>;
  return variadic(...arbs, (...xs: HostTensor[]) => checkGrads(f, xs, opts));
}

/**
 * Runs gradProperty(f, arbs, opts) with fast-check's `params` (numRuns, seed, ...) and, if it
 * fails, throws one error whose message is fast-check's report (seed, path, the shrunk
 * counterexample with the tensors' values) followed by the checkGrads report: a GradientCheckError
 * for a gradient mismatch, else an Error with what `f` threw. Either keeps the original in `cause`.
 */
export function assertGradProperty(
  f: Fn,
  arbs: readonly fc.Arbitrary<HostTensor>[] | fc.Arbitrary<readonly HostTensor[]>,
  opts: CheckGradsOptions = {},
  params: fc.Parameters<unknown[]> = {},
): void {
  const out = fc.check(gradProperty(f, arbs, opts), params);
  if (!out.failed) return;
  const report = fc.defaultReportMessage(out) ?? "the property failed";
  const e = out.errorInstance;
  if (e instanceof GradientCheckError) throw new GradientCheckError(`${report}\n\n${e.message}`, e.details, { cause: e });
  const what = e instanceof Error ? `${e.name}: ${e.message}` : e === null || e === undefined ? "" : String(e);
  throw new Error(what ? `${report}\n\nGot ${what}` : report, { cause: e ?? undefined });
}

/** A tree of `tree`'s structure with `leaves` in its places. */
const rebuildLike = (tree: Tree<Tensor>, leaves: readonly Tensor[]): Tree<Tensor> => unflatten(flatten(tree, isTensor).def, leaves);

function shapesOf(f: Fn, xs: readonly HostTensor[]): Shaped[] {
  const specs = xs.map((x) => spec(x.shape, x.dtype));
  let outs: Tensor[] = [];
  compile((...ys: Tensor[]) => {
    const o = f(...ys);
    outs = flatten(o, isTensor).leaves;
    return o;
  }, specs as TensorSpec[]);
  return outs.map((o) => ({ shape: o.shape, size: o.size }));
}

interface Context {
  /** The arguments as given (for their dtypes and values in messages). */
  readonly args: readonly HostTensor[];
  readonly names: readonly (string | undefined)[];
  readonly options: Required<Omit<CheckGradsOptions, "names">>;
}

/** One comparison of ⟨t, Jᵀc⟩ with ⟨J·t, c⟩. */
interface Measurement {
  analytic: number;
  numerical: number;
  /** |D(eps) − D(2·eps)|: the finite differences' own uncertainty. */
  spread: number;
  allowed: number;
  ok: boolean;
}

/** One compiled program gives the VJP at x for a cotangent c and f(x ± eps·t), f(x ± 2·eps·t) for a tangent t. */
function probe(f: Fn, xs: readonly HostTensor[], argnums: readonly number[], eps: number) {
  const specs = xs.map((x) => spec(x.shape, x.dtype));
  const outs = shapesOf(f, xs);
  const exe = compile(
    (xsT: Tensor[], ts: Tensor[], cs: Tensor[]) => {
      const shifted = (k: number) => xsT.map((x, i) => (argnums.includes(i) ? add(x, mul(ts[argnums.indexOf(i)], k * eps)) : x));
      const [outTree, back] = vjp((...ys: Tensor[]) => f(...ys), ...xsT);
      const outLeaves = flatten(outTree, isTensor).leaves;
      const grads = back(
        rebuildLike(
          outTree,
          cs.map((c, i) => cast(c, outLeaves[i].dtype)),
        ) as never,
      ) as readonly Tensor[];
      const diff = (k: number) => {
        const plus = flatten(f(...shifted(k)), isTensor).leaves;
        const minus = flatten(f(...shifted(-k)), isTensor).leaves;
        return plus.map((p, i) => cast(sub(p, minus[i]), "f64"));
      };
      return { d1: diff(1), d2: diff(2), grads: argnums.map((i) => cast(grads[i], "f64")) };
    },
    [specs, argnums.map((i) => spec(xs[i].shape, "f64")), outs.map((o) => spec(o.shape, "f64"))] as const,
  );
  const run = (ts: readonly HostTensor[], cs: readonly HostTensor[]) =>
    exe.run([...xs], [...ts], [...cs]) as unknown as { d1: HostTensor[]; d2: HostTensor[]; grads: HostTensor[] };
  return { outs, run };
}

function checkOrder(f: Fn, xs: readonly HostTensor[], ctx: Context & { order: 1 | 2; seed: number }): void {
  const { eps, rtol, atol, samples, argnums } = ctx.options;
  if (argnums.length === 0) return;
  const rng = hostRng(ctx.seed);
  const { outs, run } = probe(f, xs, argnums, eps);
  const numerical = (r: ReturnType<typeof run>, cs: readonly HostTensor[]) => {
    const dh = r.d1.reduce((acc, v, i) => acc + dot(v.data, cs[i].data), 0) / (2 * eps);
    const d2h = r.d2.reduce((acc, v, i) => acc + dot(v.data, cs[i].data), 0) / (4 * eps);
    return { value: (4 * dh - d2h) / 3, spread: Math.abs(dh - d2h) };
  };
  const judge = (analytic: number, n: { value: number; spread: number }): Measurement => {
    const allowed = atol + rtol * Math.abs(n.value) + n.spread;
    return { analytic, numerical: n.value, spread: n.spread, allowed, ok: Math.abs(analytic - n.value) <= allowed };
  };
  for (let s = 0; s < samples; s++) {
    const ts = argnums.map((i) => randomLike(xs[i], rng));
    const cs = outs.map((o) => randomLike(o, rng));
    const r = run(ts, cs);
    const joint = judge(
      r.grads.reduce((acc, g, i) => acc + dot(g.data, ts[i].data), 0),
      numerical(r, cs),
    );
    // Each argument's directional derivative alone (the others' tangents zero): it names the argument
    // at fault, and catches an error the other arguments' terms (or their finite differences' spread) hide.
    const alone = (k: number, t: HostTensor) =>
      numerical(
        run(
          argnums.map((i, j) => (j === k ? t : zerosLike(xs[i]))),
          cs,
        ),
        cs,
      );
    const perArg = argnums.length === 1 ? [joint] : argnums.map((_, k) => judge(dot(r.grads[k].data, ts[k].data), alone(k, ts[k])));
    if (joint.ok && perArg.every((m) => m.ok)) continue;
    const culprits = argnums.filter((_, k) => !perArg[k].ok);
    // The gradient element by element, for a small argument at fault: basis tangents.
    const elementwise = argnums.flatMap((i, k) => {
      if (perArg[k].ok && culprits.length > 0) return [];
      if (xs[i].size > 16) return [];
      const fd = Array.from({ length: xs[i].size }, (_, e) => {
        const t = zerosLike(xs[i]);
        (t.data as Float64Array)[e] = 1;
        return alone(k, t).value;
      });
      return [{ i, vjp: r.grads[k], fd: hostTensor(Float64Array.from(fd), xs[i].shape, "f64") }];
    });
    const details: GradientCheckDetails = {
      order: ctx.order,
      sample: s,
      argnums: culprits.length > 0 ? culprits : argnums,
      analytic: joint.analytic,
      numerical: joint.numerical,
      allowed: joint.allowed,
      options: ctx.options,
    };
    throw new GradientCheckError(report(ctx, details, joint, perArg, culprits, elementwise), details);
  }
}

// ---- the report ----

/** A number in short: `digits` significant digits, no trailing zeros, exponent notation outside [1e-3, 1e7). */
function num(v: number, digits = 9): string {
  if (!Number.isFinite(v) || v === 0) return String(v);
  const r = Number(v.toPrecision(digits));
  return Math.abs(r) < 1e-3 || Math.abs(r) >= 1e7 ? r.toExponential() : String(r);
}
/** A value exactly (round-trips), -0 kept. */
const exact = (v: number) => (Object.is(v, -0) ? "-0" : String(v));

/** A tensor's values as nested lists, each number by `fmt`. */
function nested(x: HostTensor, fmt: (v: number) => string): string {
  const go = (axis: number, offset: number): string => {
    if (axis === x.shape.length) return fmt(x.data[offset]);
    const stride = x.shape.slice(axis + 1).reduce((a, b) => a * b, 1);
    return `[${Array.from({ length: x.shape[axis] }, (_, i) => go(axis + 1, offset + i * stride)).join(", ")}]`;
  };
  return go(0, 0);
}

/** Up to 16 values exactly, else the count, range, mean and RMS. */
function describeValues(x: HostTensor): string {
  if (x.size <= 16) return nested(x, exact);
  const v = Array.from(x.data);
  const mean = v.reduce((a, b) => a + b, 0) / v.length;
  const rms = Math.sqrt(v.reduce((a, b) => a + b * b, 0) / v.length);
  const zeros = v.filter((e) => e === 0).length;
  return (
    `${v.length} values in [${num(Math.min(...v), 6)}, ${num(Math.max(...v), 6)}], mean ${num(mean, 6)}, RMS ${num(rms, 6)}` +
    `${zeros ? `, ${zeros} zero` : ""}; first ${v.slice(0, 4).map(exact).join(", ")}, …`
  );
}

/** r if reverse mode is r × finite differences in every element (r not 1), else undefined. */
function commonRatio(g: HostTensor, fd: HostTensor): number | undefined {
  const scale = Math.max(...Array.from(fd.data, Math.abs));
  if (!(scale > 0)) return undefined;
  let ratio: number | undefined;
  for (let e = 0; e < fd.size; e++) {
    const [a, n] = [g.data[e], fd.data[e]];
    if (Math.abs(n) <= 1e-6 * scale) {
      if (Math.abs(a) > 1e-5 * scale) return undefined;
      continue;
    }
    const r = a / n;
    if (ratio === undefined) ratio = r;
    else if (!(Math.abs(r - ratio) <= 1e-4 * Math.abs(ratio))) return undefined;
  }
  return ratio !== undefined && Math.abs(ratio - 1) > 1e-4 ? ratio : undefined;
}

function argLabel(ctx: Context, i: number): string {
  const a = ctx.args[i];
  const name = ctx.names[i];
  return `argument ${i} (${name ? `${name}, ` : ""}${a.dtype}${formatShape(a.shape)})`;
}

function relError(m: Measurement): string {
  const gap = Math.abs(m.analytic - m.numerical);
  if (!Number.isFinite(gap)) return "not finite";
  if (m.numerical === 0) return gap === 0 ? "0" : "∞ (the finite difference is 0)";
  return num(gap / Math.abs(m.numerical), 3);
}

function report(
  ctx: Context,
  d: GradientCheckDetails,
  joint: Measurement,
  perArg: readonly Measurement[],
  culprits: readonly number[],
  elementwise: readonly { i: number; vjp: HostTensor; fd: HostTensor }[],
): string {
  const { argnums, eps, rtol, atol, samples, seed } = d.options;
  const what = d.order === 1 ? "gradient" : "second-order gradient (the VJP's own VJP, at a fixed random output cotangent)";
  const list = (is: readonly number[]) => is.map((i) => argLabel(ctx, i)).join(", ");
  const head =
    culprits.length > 0
      ? `checkGrads: the ${what} with respect to ${list(culprits)} disagrees with finite differences (order ${d.order} check, sample ${d.sample + 1} of ${samples}).`
      : `checkGrads: the ${what} along a joint direction of ${list(argnums)} disagrees with finite differences, though no argument's does on its own (order ${d.order} check, sample ${d.sample + 1} of ${samples}).`;
  const gap = Math.abs(joint.analytic - joint.numerical);
  const lines: string[] = [
    head,
    `  Along a random tangent t of ${argnums.length === 1 ? "the argument" : "every checked argument"} and a random output cotangent c:`,
    `    reverse mode (VJP):  ⟨t, Jᵀc⟩ = ${num(joint.analytic)}`,
    `    finite differences:  ⟨J·t, c⟩ = ${num(joint.numerical)}`,
    `    |difference| ${num(gap, 3)}, relative error ${relError(joint)}; allowed atol + rtol·|fd| + fd spread = ${num(atol, 3)} + ${num(rtol, 3)}·${num(Math.abs(joint.numerical), 3)} + ${num(joint.spread, 3)} = ${num(joint.allowed, 4)}` +
      (joint.ok ? " (within it: the other arguments' terms hide the error, see below)" : ""),
  ];
  if (argnums.length > 1) {
    lines.push("  Each argument alone (the others' tangents zero):");
    argnums.forEach((i, k) => {
      const m = perArg[k];
      lines.push(
        `    ${argLabel(ctx, i)}: reverse mode ${num(m.analytic)}, finite differences ${num(m.numerical)}, relative error ${relError(m)}: ${m.ok ? "agrees" : "DISAGREES"}`,
      );
    });
  }
  const of = d.order === 1 ? "⟨c, f⟩" : "⟨c, VJP⟩";
  for (const { i, vjp: g, fd } of elementwise) {
    const ratio = commonRatio(g, fd);
    lines.push(
      `  ∂${of}/∂${ctx.names[i] ?? `argument ${i}`} element by element${ratio === undefined ? "" : ` (reverse mode is ${num(ratio, 6)} × finite differences in every element)`}:`,
    );
    lines.push(`    reverse mode:       ${nested(g, (v) => num(v, 6))}`);
    lines.push(`    finite differences: ${nested(fd, (v) => num(v, 6))}`);
  }
  lines.push("  At:");
  ctx.args.forEach((a, i) => lines.push(`    ${argLabel(ctx, i)} = ${describeValues(a)}${argnums.includes(i) ? "" : " (not differentiated)"}`));
  if (culprits.length === 0 && argnums.length > 1)
    lines.push(
      "  Every argument agrees on its own, and a directional derivative is linear in the direction: the finite differences are what is off here (their step crosses a kink or the function curves on the scale of eps); try a smaller eps.",
    );
  else {
    // Judged on the measurements that failed: the culprits' own, else the joint one.
    const failed = culprits.length > 0 && argnums.length > 1 ? culprits.map((i) => perArg[argnums.indexOf(i)]) : [joint];
    const spread = Math.max(...failed.map((m) => m.spread));
    if (failed.some((m) => m.spread >= 0.1 * Math.abs(m.analytic - m.numerical)))
      lines.push(
        `  The steps eps and 2·eps disagree by ${num(spread, 3)}, a sizeable part of the difference: the function curves on the scale of eps here (a kink or a singular point nearby), so finite differences are unreliable; try a smaller eps or another point.`,
      );
    else lines.push(`  The steps eps and 2·eps agree to ${num(spread, 3)}, far below the difference: it is not finite-difference error.`);
  }
  lines.push(
    `  Tolerances: rtol ${num(rtol)}, atol ${num(atol)} (JAX check_grads's float64 defaults are 1e-5 for both), eps ${num(eps)}, ${samples} sample(s), seed ${seed}.` +
      ` To change them pass them in checkGrads's options, e.g. checkGrads(f, args, { rtol: 1e-4, atol: 1e-4 }); the defaults are CHECK_GRADS_DEFAULTS.`,
  );
  return lines.join("\n");
}

/**
 * `f`'s parameter names from its source, where it shows them ("(x, w) => …", "function f(a, b)");
 * a rest parameter `...xs` names the rest `xs[0]`, `xs[1]`, …. Anything else (destructuring,
 * native or bound functions) leaves the name out.
 */
function parameterNames(f: Fn, count: number): (string | undefined)[] {
  let src: string;
  try {
    src = Function.prototype.toString.call(f).replace(/\/\*[\s\S]*?\*\/|\/\/[^\n]*/g, "");
  } catch {
    return [];
  }
  const single = /^\s*(?:async\s+)?([A-Za-z_$][\w$]*)\s*=>/.exec(src);
  let params: string[];
  if (single) params = [single[1]];
  else {
    const open = src.indexOf("(");
    if (open < 0 || !/^\s*(?:async\s*)?(?:function\b\s*\*?\s*[\w$]*|[\w$]+)?\s*$/.test(src.slice(0, open))) return [];
    params = [];
    let depth = 0;
    let start = open + 1;
    for (let i = open; i < src.length; i++) {
      const ch = src[i];
      if (ch === "(" || ch === "[" || ch === "{") depth++;
      else if (ch === ")" || ch === "]" || ch === "}") {
        depth--;
        if (depth === 0) {
          params.push(src.slice(start, i));
          break;
        }
      } else if (ch === "," && depth === 1) {
        params.push(src.slice(start, i));
        start = i + 1;
      }
    }
  }
  const names: (string | undefined)[] = [];
  for (const p of params.map((q) => q.trim()).filter((q) => q !== "")) {
    const m = /^(\.\.\.)?([A-Za-z_$][\w$]*)\s*(?:=|$)/.exec(p);
    if (m?.[1]) {
      for (let k = 0; names.length < count; k++) names.push(`${m[2]}[${k}]`);
      break;
    }
    names.push(m ? m[2] : undefined);
  }
  return names.slice(0, count);
}
