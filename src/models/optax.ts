/**
 * An optimizer kit in optax's spirit: gradient transformations over parameter pytrees, composed
 * with `chain`, and schedules counted in steps.
 *
 * A transformation is a pair of pure functions, `init(params) → state` and
 * `update(updates, state, params?, step?) → { updates, state }`, over trees of Tensors built
 * inside a traced graph, so a whole training step (loss, gradients, clipping, the optimizer, the
 * parameter update) compiles into one executable, as ibotStep does. States are trees of tensors
 * too (moments, momentum buffers, i32 step counts): compile arguments and results like the
 * parameters, saved with them, donated on the GPU.
 *
 * Updates flow down a chain: gradients go in, and what leaves the last transformation is the
 * additive change to the parameters (scaled by the learning rate and negated), which
 * `applyUpdates` adds. `adamw` (optim.ts) stays as it is; `adamwTransform` is its arithmetic as a
 * chain and gives the same bits.
 */
import type { AdamState } from "./optim.js";
import {
  add,
  ArgumentError,
  cast,
  describeValue,
  div,
  flatten,
  full,
  isFloat,
  isTensor,
  less,
  mapTree,
  maximum,
  minimum,
  mul,
  neg,
  pow,
  sqrt,
  sub,
  sum,
  tensorOperand,
  unflatten,
  where,
  zeros,
  zerosLike,
  type DType,
  type Tensor,
  type TensorLike,
  type Tree,
  type TreeDef,
} from "../dsl/index.js";

// ---------------------------------------------------------------- transformations

/** What a transformation's update returns: the transformed updates, shaped like the incoming ones, and the next state. */
export interface TransformResult<P, S> {
  readonly updates: P;
  readonly state: S;
}

/**
 * A state's type as a function of the parameters' type: `state` may use `this["params"]` for P,
 * as a type argument (`interface BufKind extends StateKind { readonly state: Buf<this["params"]> }`
 * with `interface Buf<P> { buf: P }`; a `this` inside an object type literal is refused). States are
 * typed by the actual parameter type, not by Tree<Tensor>, so they go through compile's typing
 * (specsOf, run results) like the parameters do; a Tree<Tensor> there sends TypeScript's type
 * mapping into an endless recursion (TS2589).
 */
export interface StateKind {
  readonly params: unknown;
  readonly state: unknown;
}

/** The state of kind K for parameters of type P. */
export type StateFor<K extends StateKind, P> = (K & { readonly params: P })["state"];

/** The kind of a state that does not depend on the parameters (a count, or nothing). */
export interface FixedKind<S> extends StateKind {
  readonly state: S;
}

/**
 * A gradient transformation (optax's GradientTransformation): `init` builds the state for a tree
 * of parameters, `update` maps incoming updates (gradients, or the previous transformation's
 * output) and a state to new updates and the next state. Both build graph nodes: call them inside
 * the function you trace or compile, the state going in and out as arguments. K says what the
 * state looks like for parameters of a given type (StateOf gives it).
 */
export interface GradientTransformation<K extends StateKind = StateKind> {
  /** The state before the first update for parameters shaped like `params` (zeros, counts at 0). */
  init<P>(params: P): StateFor<K, P>;
  /**
   * One update. `params` are the current parameters (addDecayedWeights needs them; chain passes
   * them to each of its transformations). `step`, a scalar tensor, is the number of updates
   * before this one (0 on the first); when given it replaces the counts the states keep for
   * schedules and bias corrections (those counts still advance), e.g. to follow a global step.
   */
  update<P>(updates: P, state: StateFor<K, P>, params?: P, step?: Tensor): TransformResult<P, StateFor<K, P>>;
}

/** The state of transformation T for parameters of type P: `StateOf<typeof tx, Params>`, for the arguments of a compiled step. */
export type StateOf<T extends GradientTransformation, P> = T extends GradientTransformation<infer K> ? StateFor<K, P> : never;

/** The state of a transformation that keeps none: an empty object (no arrays to pass around). */
export type EmptyState = Record<string, never>;

/** A step count: an i32 scalar, the number of updates done so far (what schedules are evaluated at). */
export interface CountState {
  readonly count: Tensor;
}

/** `momentum`'s state: the momentum buffer (PyTorch's momentum_buffer), shaped like the parameters P. */
export interface MomentumState<P> {
  readonly trace: P;
}

/** The kind of `momentum`'s state. */
export interface MomentumKind extends StateKind {
  readonly state: MomentumState<this["params"]>;
}

/** `scaleByAdam`'s state: the step count (for bias correction) and the first and second moments, each shaped like the parameters P. */
export interface ScaleByAdamState<P> extends AdamState<P>, CountState {}

/** The kind of `scaleByAdam`'s state. */
export interface ScaleByAdamKind extends StateKind {
  readonly state: ScaleByAdamState<this["params"]>;
}

/** The kind of `chain(t1, t2, ...)`'s state: the list of each transformation's state, in order. */
export interface ChainKind<T extends readonly GradientTransformation[]> extends StateKind {
  readonly state: { -readonly [I in keyof T]: T[I] extends GradientTransformation<infer K> ? StateFor<K, this["params"]> : never };
}

/**
 * Which leaves a transformation applies to: a tree of booleans with the parameters' structure, where
 * a boolean may also stand for a whole subtree (`{ backbone: true, head: { w: true, b: false } }`),
 * or a function from the parameters to such a tree (see `rankMask`). Trees, not leaf indices, so
 * a mask survives parameters being added or reordered.
 */
export type Mask<P = unknown> = Tree<boolean> | ((params: P) => Tree<boolean>);

/** A learning rate or weight decay: a number, a tensor of the traced step (e.g. scheduled on the host and fed in as an input), or a schedule of the step. */
export type ScheduleLike = number | Tensor | Schedule;

/**
 * A transformation as this module writes one: over Tree<Tensor>, with its state's type for those.
 * `transformation` gives it its kind, the type users see (a cast: the kind's state for
 * Tree<Tensor> is the implementation's).
 */
interface Impl<S> {
  init(params: Tree<Tensor>): S;
  update(updates: Tree<Tensor>, state: S, params?: Tree<Tensor>, step?: Tensor): TransformResult<Tree<Tensor>, S>;
}
const transformation = <K extends StateKind>(impl: Impl<StateFor<K, Tree<Tensor>>>): GradientTransformation<K> => impl as unknown as GradientTransformation<K>;

const isPlainObject = (x: unknown): x is Record<string, unknown> =>
  typeof x === "object" && x !== null && (Object.getPrototypeOf(x) === Object.prototype || Object.getPrototypeOf(x) === null);

/** A tree's tensor leaves and structure; anything else at a leaf is an ArgumentError naming `op` and the path from `root`. */
const leavesOf = (tree: unknown, op: string, root: string) => flatten(tree, isTensor, "tensor", { op, root });

/** The leaves of `tree`, which must have the structure `def` of the updates (the same leaves, in the same places). */
function leavesLike(tree: unknown, def: TreeDef, op: string, what: string): Tensor[] {
  const f = leavesOf(tree, op, what);
  if (JSON.stringify(f.def) !== JSON.stringify(def)) throw new ArgumentError(op, `${what} do not have the updates' structure (${f.leaves.length} leaves)`);
  return f.leaves;
}

/** `f` memoised by dtype: one schedule value or bias correction per float dtype among the leaves, not one per leaf. */
function perDtype<T>(f: (dtype: DType) => T): (dtype: DType) => T {
  const memo = new Map<DType, T>();
  return (d) => {
    if (!memo.has(d)) memo.set(d, f(d));
    return memo.get(d) as T;
  };
}

/** The value of a number, tensor or schedule at step `n`, for leaves of `dtype` (a tensor is cast to it; a cast to its own dtype is no node). */
const valueAt = (x: ScheduleLike, n: Tensor, dtype: DType): TensorLike => (typeof x === "number" ? x : isTensor(x) ? cast(x, dtype) : x(cast(n, dtype)));

const counter = (): CountState => ({ count: zeros([], "i32") });
const advance = (s: CountState): CountState => ({ count: add(s.count, 1) });

function checkNumber(op: string, name: string, x: number, ok: (x: number) => boolean, what: string) {
  if (typeof x !== "number" || !Number.isFinite(x) || !ok(x)) throw new ArgumentError(op, `${name} must be ${what}, got ${describeValue(x)}`);
}

/** The transformation that changes nothing (a placeholder in a chain, e.g. SGD without momentum). */
export const identity = (): GradientTransformation<FixedKind<EmptyState>> =>
  transformation<FixedKind<EmptyState>>({
    init: () => ({}),
    update: (updates, state) => ({ updates, state }),
  });

/** Multiplies every update by `factor` (a number, or a tensor of the traced step). */
export const scale = (factor: number | Tensor): GradientTransformation<FixedKind<EmptyState>> =>
  transformation<FixedKind<EmptyState>>({
    init: () => ({}),
    update(updates, state) {
      const { leaves, def } = leavesOf(updates, "scale", "updates");
      const f = perDtype((d) => (typeof factor === "number" ? factor : cast(factor, d)));
      return {
        updates: unflatten(
          def,
          leaves.map((u) => mul(u, f(u.dtype))),
        ),
        state,
      };
    },
  });

/**
 * Scales updates by −lr (by lr with `flipSign: false`), lr a number, a tensor or a schedule of the
 * step count: the last link of most chains, turning a descent direction into a parameter change.
 * It keeps a count even for a constant rate, so an optimizer's state has the same structure
 * whether its rate is a number, a tensor or a schedule.
 */
export function scaleByLearningRate(
  lr: ScheduleLike,
  { flipSign = true }: { readonly flipSign?: boolean } = {},
): GradientTransformation<FixedKind<CountState>> {
  return transformation<FixedKind<CountState>>({
    init: counter,
    update(updates, state, _params, step) {
      const { leaves, def } = leavesOf(updates, "scaleByLearningRate", "updates");
      const n = step ?? state.count;
      const factor = perDtype((d) => {
        const v = valueAt(lr, n, d);
        if (!flipSign) return v;
        return typeof v === "number" ? -v : neg(v);
      });
      // u·(−lr), then p + u in applyUpdates: the same bits as PyTorch's p − lr·u (negation is exact).
      return {
        updates: unflatten(
          def,
          leaves.map((u) => mul(u, factor(u.dtype))),
        ),
        state: advance(state),
      };
    },
  });
}

/**
 * Heavy-ball momentum as torch.optim.SGD keeps it (no dampening): buf ← decay·buf + g, and the
 * update is buf, or g + decay·buf with `nesterov`. The buffer starts at zero, so the first buffer
 * is g, as PyTorch's first step sets it.
 */
export function momentum(decay: number, { nesterov = false }: { readonly nesterov?: boolean } = {}): GradientTransformation<MomentumKind> {
  checkNumber("momentum", "decay", decay, (x) => x >= 0, "a non-negative number");
  return transformation<MomentumKind>({
    init: (params) => ({ trace: mapTree(params, isTensor, zerosLike) }),
    update(updates, state) {
      const { leaves: gs, def } = leavesOf(updates, "momentum", "updates");
      const bufs = leavesLike(state.trace, def, "momentum", "the momentum buffers");
      const trace = gs.map((g, i) => add(mul(bufs[i], decay), g));
      const out = nesterov ? gs.map((g, i) => add(g, mul(trace[i], decay))) : trace;
      return { updates: unflatten(def, out), state: { trace: unflatten(def, trace) } };
    },
  });
}

/** Adam's moment hyperparameters, PyTorch's defaults: beta1 0.9, beta2 0.999, eps 1e-8. */
export interface AdamOptions {
  readonly beta1?: number;
  readonly beta2?: number;
  readonly eps?: number;
}

/**
 * Adam's direction without the learning rate: moments m, v and m̂/(√v̂ + eps) with bias
 * correction at step count + 1. The arithmetic is `adamw`'s, op for op, so that chains built on it
 * reproduce adamw (and PyTorch) to the bit. Corrections are computed once per dtype, in that dtype.
 */
export function scaleByAdam({ beta1 = 0.9, beta2 = 0.999, eps = 1e-8 }: AdamOptions = {}): GradientTransformation<ScaleByAdamKind> {
  checkNumber("scaleByAdam", "beta1", beta1, (x) => x >= 0 && x < 1, "in [0, 1)");
  checkNumber("scaleByAdam", "beta2", beta2, (x) => x >= 0 && x < 1, "in [0, 1)");
  checkNumber("scaleByAdam", "eps", eps, (x) => x >= 0, "a non-negative number");
  return transformation<ScaleByAdamKind>({
    init: (params) => {
      const z = () => mapTree(params, isTensor, zerosLike);
      return { ...counter(), m: z(), v: z() };
    },
    update(updates, state, _params, step) {
      const { leaves: gs, def } = leavesOf(updates, "scaleByAdam", "updates");
      const ms = leavesLike(state.m, def, "scaleByAdam", "the first moments");
      const vs = leavesLike(state.v, def, "scaleByAdam", "the second moments");
      const n = step ?? state.count;
      const corrections = perDtype((d) => {
        const t = add(cast(n, d), 1); // the 1-based step adamw takes
        return [sub(1, pow(full([], beta1, d), t)), sub(1, pow(full([], beta2, d), t))]; // 1 − β^t
      });
      const out = gs.map((g, i) => {
        const [c1, c2] = corrections(g.dtype);
        const m = add(mul(ms[i], beta1), mul(g, 1 - beta1));
        const v = add(mul(vs[i], beta2), mul(mul(g, g), 1 - beta2));
        return { u: div(div(m, c1), add(sqrt(div(v, c2)), eps)), m, v };
      });
      const rebuild = (xs: Tensor[]) => unflatten(def, xs);
      return {
        updates: rebuild(out.map((o) => o.u)),
        state: { ...advance(state), m: rebuild(out.map((o) => o.m)), v: rebuild(out.map((o) => o.v)) },
      };
    },
  });
}

/** For each leaf of `params` in flatten's order, the mask's boolean: the mask follows the parameters' structure, a boolean covering a subtree. */
function maskLeaves(params: unknown, mask: Tree<boolean>, op: string): boolean[] {
  const out: boolean[] = [];
  const go = (p: unknown, m: unknown, path: string) => {
    const where = path || "the root";
    if (typeof m === "boolean") {
      out.push(...Array<boolean>(leavesOf(p, op, `the parameters${path}`).leaves.length).fill(m));
    } else if (isTensor(p)) {
      throw new ArgumentError(op, `the mask has ${describeValue(m)} at ${where}, where the parameters have a tensor: give a boolean`);
    } else if (Array.isArray(p)) {
      if (!Array.isArray(m) || m.length !== p.length)
        throw new ArgumentError(op, `the mask has ${describeValue(m)} at ${where}, where the parameters have a list of ${p.length}`);
      p.forEach((c, i) => go(c, m[i], `${path}[${i}]`));
    } else if (isPlainObject(p)) {
      const keys = Object.keys(p);
      const mk = isPlainObject(m) ? Object.keys(m) : undefined;
      if (!mk || mk.length !== keys.length || keys.some((k) => !(k in (m as object))))
        throw new ArgumentError(op, `the mask has ${describeValue(m)} at ${where}, where the parameters have an object with keys {${keys.join(", ")}}`);
      for (const k of keys) go(p[k], (m as Record<string, unknown>)[k], `${path}.${k}`);
    } else {
      leavesOf(p, op, `the parameters${path}`); // throws, naming what is there
    }
  };
  go(params, mask, "");
  return out;
}

/**
 * A mask (for addDecayedWeights) that is true on leaves of rank ≥ minRank: with the default 2,
 * weight matrices and kernels decay while biases, norm scales and other vectors do not (the usual
 * rule, and iBOT's).
 */
export const rankMask =
  (minRank = 2) =>
  (params: unknown): Tree<boolean> =>
    mapTree(params as Tree<Tensor>, isTensor, (t) => t.rank >= minRank);

/**
 * Adds weightDecay·p to the update of every parameter p the mask selects (all by default):
 * before the learning rate it is AdamW's decoupled decay (PyTorch's p ← p − lr·(u + wd·p)); before
 * the momentum of `sgd` it is torch.optim.SGD's coupled weight_decay. The weight decay may be a
 * schedule of the step count. A weight decay of the number 0 adds nothing, as adamw.
 */
export function addDecayedWeights<P = unknown>(weightDecay: ScheduleLike, mask?: Mask<P>): GradientTransformation<FixedKind<CountState>> {
  return transformation<FixedKind<CountState>>({
    init: counter,
    update(updates, state, params, step) {
      if (params === undefined) throw new ArgumentError("addDecayedWeights", "needs the parameters: pass them as update's third argument");
      const { leaves: us, def } = leavesOf(updates, "addDecayedWeights", "updates");
      const ps = leavesLike(params, def, "addDecayedWeights", "the parameters");
      const decays =
        mask === undefined ? us.map(() => true) : maskLeaves(params, typeof mask === "function" ? mask(params as unknown as P) : mask, "addDecayedWeights");
      const n = step ?? state.count;
      const wd = perDtype((d) => valueAt(weightDecay, n, d));
      const out = us.map((u, i) => (decays[i] && weightDecay !== 0 ? add(u, mul(ps[i], wd(u.dtype))) : u));
      return { updates: unflatten(def, out), state: advance(state) };
    },
  });
}

/**
 * The Euclidean norm of all the leaves of a tree together, √(Σ g²) over every element of every
 * leaf, as a scalar: f64 when any leaf is f64, else f32.
 */
export function globalNorm(tree: unknown): Tensor {
  const { leaves } = leavesOf(tree, "globalNorm", "the tree");
  const wide: DType = leaves.some((l) => l.dtype === "f64") ? "f64" : "f32";
  if (leaves.length === 0) return zeros([], wide);
  return sqrt(leaves.map((g) => cast(sum(mul(g, g)), wide)).reduce((a, b) => add(a, b)));
}

/**
 * Scales every update by min(1, maxNorm/‖g‖₂), ‖g‖₂ the norm of the whole tree (globalNorm):
 * PyTorch's clip_grad_norm_ and optax's clip_by_global_norm. The direction is kept (one factor for
 * all leaves); below maxNorm the factor is exactly 1. It is computed as maxNorm/max(‖g‖, maxNorm),
 * so a zero gradient divides nothing by zero. (nn's `clip` is elementwise; ibotStep clips each tensor.)
 */
export function clipByGlobalNorm(maxNorm: number): GradientTransformation<FixedKind<EmptyState>> {
  checkNumber("clipByGlobalNorm", "maxNorm", maxNorm, (x) => x > 0, "a positive number");
  return transformation<FixedKind<EmptyState>>({
    init: () => ({}),
    update(updates, state) {
      const { leaves, def } = leavesOf(updates, "clipByGlobalNorm", "updates");
      if (leaves.length === 0) return { updates, state };
      const norm = globalNorm(updates);
      const factor = div(maxNorm, maximum(norm, maxNorm));
      return {
        updates: unflatten(
          def,
          leaves.map((g) => mul(g, cast(factor, g.dtype))),
        ),
        state,
      };
    },
  });
}

/**
 * Composes transformations left to right: each one's updates feed the next, every one sees the
 * same params and step, and the state is the list of their states. `chain(clipByGlobalNorm(1),
 * sgd(lr))` clips first.
 */
export function chain<const T extends readonly GradientTransformation[]>(...ts: T): GradientTransformation<ChainKind<T>> {
  // An empty list would be read back from a run as a host array, not as an empty state.
  if (ts.length === 0) throw new ArgumentError("chain", "give at least one transformation (identity() for none)");
  return transformation<ChainKind<T>>({
    init: (params) => ts.map((t) => t.init(params)) as StateFor<ChainKind<T>, Tree<Tensor>>,
    update(updates, state, params, step) {
      const states = state as readonly unknown[];
      if (!Array.isArray(states) || states.length !== ts.length)
        throw new ArgumentError("chain", `expected a list of ${ts.length} states (one per transformation), got ${describeValue(state)}`);
      let u = updates;
      const next = ts.map((t, i) => {
        const r = t.update(u, states[i], params, step);
        u = r.updates;
        return r.state;
      });
      return { updates: u, state: next as StateFor<ChainKind<T>, Tree<Tensor>> };
    },
  });
}

/** The parameters after an update: p + u, leaf by leaf (the updates already carry the sign and the learning rate). */
export function applyUpdates<P>(params: P, updates: P): P {
  const { leaves: ps, def } = leavesOf(params, "applyUpdates", "the parameters");
  const us = leavesLike(updates, def, "applyUpdates", "the updates");
  return unflatten(
    def,
    ps.map((p, i) => add(p, us[i])),
  ) as P;
}

/** `sgd`'s options, torch.optim.SGD's: momentum (default 0, none) and Nesterov momentum. */
export interface SgdOptions {
  readonly momentum?: number;
  readonly nesterov?: boolean;
}

/**
 * Stochastic gradient descent with torch.optim.SGD's semantics: buf ← momentum·buf + g, then
 * p ← p − lr·buf (p ← p − lr·(g + momentum·buf) with nesterov); lr a number, tensor or schedule.
 * For PyTorch's weight_decay put addDecayedWeights(wd) before it in a chain. The state is
 * [momentum's (or identity's without momentum), the learning rate's count].
 */
export function sgd(lr: ScheduleLike, { momentum: beta = 0, nesterov = false }: SgdOptions = {}) {
  checkNumber("sgd", "momentum", beta, (x) => x >= 0, "a non-negative number");
  if (nesterov && beta === 0) throw new ArgumentError("sgd", "Nesterov momentum needs a momentum above 0 (as torch.optim.SGD)");
  return chain(beta > 0 ? momentum(beta, { nesterov }) : identity(), scaleByLearningRate(lr));
}

/** Adam without weight decay: chain(scaleByAdam(options), scaleByLearningRate(lr)). */
export const adam = (lr: ScheduleLike, options: AdamOptions = {}) => chain(scaleByAdam(options), scaleByLearningRate(lr));

/** `adamwTransform`'s options: Adam's, the decoupled weight decay (default 0.01, torch.optim.AdamW's) and which leaves decay. */
export interface AdamWOptions<P = unknown> extends AdamOptions {
  readonly weightDecay?: ScheduleLike;
  readonly mask?: Mask<P>;
}

/**
 * AdamW as a chain: scaleByAdam, addDecayedWeights(weightDecay, mask), scaleByLearningRate(lr).
 * The transformation form of `adamw`, with the same bits for the same inputs (step count k here
 * is adamw's step k + 1).
 */
export const adamwTransform = <P = unknown>(lr: ScheduleLike, { weightDecay = 0.01, mask, ...options }: AdamWOptions<P> = {}) =>
  chain(scaleByAdam(options), addDecayedWeights(weightDecay, mask), scaleByLearningRate(lr));

// ---------------------------------------------------------------- schedules

/**
 * A schedule: a value for each step, counted from 0 (the first update). Called with a number it
 * computes on the host; called with a tensor of steps (a scalar, or any shape to tabulate many at
 * once; integer steps are taken as f32) it builds the same formula into the graph and returns a
 * float tensor of that shape, so a compiled step can schedule its own learning rate.
 */
export interface Schedule {
  (step: number): number;
  (step: Tensor): Tensor;
}

type Value = number | Tensor;

/** One formula for both sides: numbers stay on the host, and any tensor operand makes a graph node. */
const arith =
  (h: (a: number, b: number) => number, g: (a: TensorLike, b: TensorLike) => Tensor) =>
  (a: Value, b: Value): Value =>
    typeof a === "number" && typeof b === "number" ? h(a, b) : g(a, b);
const plus = arith((a, b) => a + b, add);
const times = arith((a, b) => a * b, mul);
const over = arith((a, b) => a / b, div);
const lesser = arith(Math.min, minimum);
const greater = arith(Math.max, maximum);
/** `then` where s < x, else `otherwise`. */
const ifBelow = (s: Value, x: number, then: Value, otherwise: Value): Value =>
  typeof s === "number" ? (s < x ? then : otherwise) : where(less(s, x), then, otherwise);
/** s/steps clamped to [0, 1]: how far along a phase of `steps` steps is. */
const progress = (s: Value, steps: number): Value => lesser(greater(over(s, steps), 0), 1);

/** The Taylor coefficients of sin: (−1)^k/(2k + 1)!, k = 0..8. */
const SIN_TAYLOR = Array.from({ length: 9 }, (_, k) => {
  let c = k % 2 ? -1 : 1;
  for (let j = 2; j <= 2 * k + 1; j++) c /= j;
  return c;
});

/**
 * ½(1 + cos(π·t)) for t in [0, 1], the cosine's fall from 1 to 0; the host computes it so, with
 * Math.cos. The DSL has no cosine primitive, so the graph computes the same value as cos²(πt/2):
 * 1 − sin²(πt/2) for t < ½ and sin²(π(1 − t)/2) above, sin(x) for x in [0, π/4] by its Taylor
 * polynomial to x¹⁷ (Horner in x², mul and add only, so it lowers on every backend). The truncation
 * error is below (π/4)¹⁹/19! ≈ 1e-19, so the value is Math.cos's up to rounding (about 1e-16 in
 * f64, 1e-7 in f32), and the ends are exact: 1 at t = 0, 0 at t = 1, in f32 too, so a schedule
 * starts at its peak and ends at its end value to the bit.
 */
function halfCosine(t: Value): Value {
  if (typeof t === "number") return 0.5 * (1 + Math.cos(Math.PI * t));
  const x = mul(minimum(t, sub(1, t)), Math.PI / 2);
  const y = mul(x, x);
  let p = add(mul(y, SIN_TAYLOR[8]), SIN_TAYLOR[7]);
  for (let k = 6; k >= 0; k--) p = add(mul(p, y), SIN_TAYLOR[k]);
  const sin = mul(x, p);
  const sin2 = mul(sin, sin);
  return where(less(t, 0.5), sub(1, sin2), sin2);
}

/** A Schedule from a formula over Value: a tensor step is first made float, and a formula that does not depend on the step is broadcast to its shape. */
function schedule(f: (s: Value) => Value): Schedule {
  return ((s: Value) => {
    if (typeof s === "number") return f(s);
    const t = isFloat(tensorOperand("schedule", s).dtype) ? s : cast(s, "f32");
    const r = f(t);
    return typeof r === "number" ? full(t.shape, r, t.dtype) : r;
  }) as Schedule;
}

const checkSteps = (op: string, name: string, n: number) => checkNumber(op, name, n, (x) => x > 0, "a positive number of steps");

/** The same value at every step. */
export const constantSchedule = (value: number): Schedule => schedule(() => value);

/** From `from` to `to` linearly over `steps` steps (optax's linear_schedule): from + (to − from)·min(step/steps, 1), then `to`. */
export function linearSchedule(from: number, to: number, steps: number): Schedule {
  checkSteps("linearSchedule", "steps", steps);
  return schedule((s) => plus(from, times(to - from, progress(s, steps))));
}

/**
 * Cosine decay from `init` (optax's cosine_decay_schedule): init·((1 − alpha)·½(1 + cos(π·t)) + alpha)
 * with t = min(step/steps, 1), so it ends at alpha·init and stays there.
 */
export function cosineDecay(init: number, steps: number, alpha = 0): Schedule {
  checkSteps("cosineDecay", "steps", steps);
  return schedule((s) => times(init, plus(times(1 - alpha, halfCosine(progress(s, steps))), alpha)));
}

/**
 * Linear warm-up from `init` (default 0) to `peak` over `warmupSteps` steps, then cosine decay to
 * `end` at `totalSteps` (warm-up included) and `end` after: optax's warmup_cosine_decay_schedule.
 * Value at step s: init + (peak − init)·s/w for s < w, then end + (peak − end)·½(1 + cos(π·min((s − w)/(T − w), 1))).
 * Steps need not be whole: a warm-up of 0.2 epochs is simply 0.2·itersPerEpoch steps, fraction or not.
 */
export function warmupCosine(peak: number, warmupSteps: number, totalSteps: number, end = 0, init = 0): Schedule {
  checkNumber("warmupCosine", "warmupSteps", warmupSteps, (x) => x >= 0, "a non-negative number of steps");
  checkNumber("warmupCosine", "totalSteps", totalSteps, (x) => x > warmupSteps, `a number of steps above warmupSteps (${warmupSteps})`);
  const decay = (s: Value) => plus(end, times(peak - end, halfCosine(progress(plus(s, -warmupSteps), totalSteps - warmupSteps))));
  if (warmupSteps === 0) return schedule(decay);
  return schedule((s) => ifBelow(s, warmupSteps, plus(init, times(peak - init, progress(s, warmupSteps))), decay(s)));
}
