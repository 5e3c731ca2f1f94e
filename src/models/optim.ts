/** Optimizers as pure functions over parameter pytrees: state in, state out. */
import { add, div, flatten, full, isTensor, mul, pow, sqrt, sub, unflatten, zerosLike, type Tensor } from "../dsl/index.js";

/** Adam's first and second moment estimates, each a tree shaped like the parameters `P`. */
export interface AdamState<P> {
  readonly m: P;
  readonly v: P;
}

/** AdamW's hyperparameters, PyTorch's defaults: beta1 0.9, beta2 0.999, eps 1e-8, weight decay 0. */
export interface AdamHyper {
  /** Learning rate (a tensor to schedule it without recompiling). */
  readonly lr: Tensor | number;
  readonly beta1?: number;
  readonly beta2?: number;
  readonly eps?: number;
  /** Decoupled weight decay (AdamW); a tensor to schedule it. Applied to leaves where `decay` says so. */
  readonly weightDecay?: Tensor | number;
  /** The 1-based step number, for bias correction (a tensor, as it changes every step). */
  readonly step: Tensor;
  /**
   * A leaf's own step where it differs from `step` (undefined: `step`). PyTorch counts steps per
   * parameter, and a parameter that sat out steps (no gradient, e.g. frozen) starts its bias
   * correction afresh when it rejoins.
   */
  readonly leafStep?: (leafIndex: number) => Tensor | undefined;
}

/** Adam's initial state for `params`: zero moments shaped like each leaf (torch.optim.AdamW's state before its first step). */
export const adamInit = <P>(params: P): AdamState<P> => {
  const { leaves, def } = flatten(params, isTensor);
  const z = () => unflatten(def, leaves.map(zerosLike)) as P;
  return { m: z(), v: z() };
};

/**
 * One AdamW step (PyTorch's formulation): m, v moments with bias correction, then
 * p ← p − lr·(m̂/(√v̂ + eps) + wd·p), with decay only on leaves where `decay(leafIndex)` is true.
 */
export function adamw<P>(
  params: P,
  grads: P,
  state: AdamState<P>,
  h: AdamHyper,
  decay: (leafIndex: number) => boolean = () => true,
): { params: P; state: AdamState<P> } {
  const { beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weightDecay = 0 } = h;
  const { leaves: ps, def } = flatten(params, isTensor);
  const gs = flatten(grads, isTensor).leaves;
  const ms = flatten(state.m, isTensor).leaves;
  const vs = flatten(state.v, isTensor).leaves;
  const corrections = (t: Tensor) => [sub(1, pow(full([], beta1, t.dtype), t)), sub(1, pow(full([], beta2, t.dtype), t))]; // 1 − β^t
  const global = corrections(h.step);
  const out = ps.map((p, i) => {
    const own = h.leafStep?.(i);
    const [c1, c2] = own ? corrections(own) : global;
    const m = add(mul(ms[i], beta1), mul(gs[i], 1 - beta1));
    const v = add(mul(vs[i], beta2), mul(mul(gs[i], gs[i]), 1 - beta2));
    const update = div(div(m, c1), add(sqrt(div(v, c2)), eps));
    const decayed = decay(i) && weightDecay !== 0 ? add(update, mul(p, weightDecay)) : update;
    return { p: sub(p, mul(decayed, h.lr)), m, v };
  });
  const rebuild = (xs: Tensor[]) => unflatten(def, xs) as P;
  return { params: rebuild(out.map((o) => o.p)), state: { m: rebuild(out.map((o) => o.m)), v: rebuild(out.map((o) => o.v)) } };
}
