/**
 * Composite operations: plain functions of primitives, so every backend and the autodiff get
 * them for free. Two carry a custom VJP for numerics (logSumExp, l2Normalize).
 */
import type { DType } from "./dtype.js";
import { ArgumentError, DTypeError, ShapeError } from "./errors.js";
import {
  abs,
  add,
  cast,
  greaterEqual,
  sign,
  tanh,
  customVjp,
  div,
  equal,
  erf,
  exp,
  expandDims,
  greater,
  iota,
  log,
  matmul,
  max,
  maximum,
  minimum,
  mul,
  neg,
  reciprocal,
  reshape,
  sliceAxis,
  sqrt,
  stopGradient,
  sub,
  sum,
  swapAxes,
  transpose,
  where,
  type Axes,
} from "./ops.js";
import { normalizeAxes, normalizeAxis, sizeOf } from "./shape.js";
import { tensorOperand, type Tensor } from "./tensor.js";

// ---------------------------------------------------------------- logic and arithmetic

function boolOperands(op: string, xs: readonly Tensor[]): void {
  xs.forEach((x, i) => tensorOperand(op, x, i));
  if (xs.some((x) => x.dtype !== "bool"))
    throw new DTypeError(
      op,
      xs.map((x) => x.dtype),
      "needs bool operands",
      "Compare first, e.g. greater(x, 0)",
    );
}
/** Elementwise a AND b of bool tensors (broadcast). */
export const logicalAnd = (a: Tensor, b: Tensor): Tensor => (boolOperands("logicalAnd", [a, b]), where(a, b, 0));
/** Elementwise a OR b of bool tensors (broadcast). */
export const logicalOr = (a: Tensor, b: Tensor): Tensor => (boolOperands("logicalOr", [a, b]), where(a, 1, b));
/** Elementwise NOT of a bool tensor. */
export const logicalNot = (a: Tensor): Tensor => (boolOperands("logicalNot", [a]), equal(a, 0));

/** Elementwise x². */
export const square = (x: Tensor): Tensor => mul(x, x);
/** Elementwise 1/√x (float only). */
export const rsqrt = (x: Tensor): Tensor => reciprocal(sqrt(x));
/** max(x, 0) elementwise; its gradient at 0 is ½ (maximum splits ties, as JAX does). */
export const relu = (x: Tensor): Tensor => maximum(x, 0);
/** 1/(1 + e^(−x)), with exp only of non-positive values so neither value nor gradient overflows. */
export function sigmoid(x: Tensor): Tensor {
  const pos = greater(x, 0);
  const en = exp(where(pos, 0, x)); // e^x for x <= 0
  return where(pos, reciprocal(add(exp(neg(where(pos, x, 0))), 1)), div(en, add(en, 1)));
}
/** Clamps x into [lo, hi] elementwise (jnp.clip); the gradient is 0 outside, ½ on the bounds. */
export const clip = (x: Tensor, lo: number, hi: number): Tensor => minimum(maximum(x, lo), hi);

/** Number of elements the given axes hold. */
const countOf = (x: Tensor, axes: Axes): number => sizeOf(normalizeAxes("mean", axes, x.rank).map((a) => x.shape[a]));

/** Arithmetic mean over `axes` (all by default), dropping them unless `keepDims` (jnp.mean); for floats (on i32 the division truncates). */
export const mean = (x: Tensor, axes?: Axes, keepDims = false): Tensor => div(sum(x, axes, keepDims), countOf(x, axes));

/** Variance with `ddof` degrees of freedom removed (0: the biased estimator LayerNorm uses). */
export function variance(x: Tensor, axes?: Axes, keepDims = false, ddof = 0): Tensor {
  const centred = sub(x, mean(x, axes, true));
  return div(sum(mul(centred, centred), axes, keepDims), countOf(x, axes) - ddof);
}

// ---------------------------------------------------------------- softmax family

/** log Σ exp(x) over `axes`, stable; its gradient is softmax, given by a custom VJP. */
export function logSumExp(x: Tensor, axes: Axes = -1, keepDims = false): Tensor {
  const ax = normalizeAxes("logSumExp", axes, tensorOperand("logSumExp", x).rank);
  const keep = x.shape.map((d, i) => (ax.includes(i) ? 1 : d));
  const lse = customVjp(
    "logSumExp",
    (v) => {
      const m = stopGradient(max(v, ax, true));
      return reshape(add(log(sum(exp(sub(v, m)), ax, true)), m), keep);
    },
    ([v], out, ct) => [mul(ct, exp(sub(v, out)))],
  )(x);
  return keepDims
    ? lse
    : reshape(
        lse,
        x.shape.filter((_, i) => !ax.includes(i)),
      );
}

/** log(softmax(x)) along `axis`, computed stably as x − logSumExp(x) (PyTorch's F.log_softmax). */
export const logSoftmax = (x: Tensor, axis = -1): Tensor => sub(x, logSumExp(x, axis, true));
/** e^x normalised to sum to 1 along `axis` (last by default), as exp(logSoftmax(x)): stable for large logits. */
export const softmax = (x: Tensor, axis = -1): Tensor => exp(logSoftmax(x, axis));

/**
 * Cross-entropy along `axis` without reduction over the batch. `targets` is either a probability
 * distribution with the logits' shape (soft targets; float) or integer class labels with the
 * logits' shape minus `axis` (i32).
 */
export function crossEntropy(logits: Tensor, targets: Tensor, axis = -1): Tensor {
  const a = normalizeAxis("crossEntropy", axis, tensorOperand("crossEntropy", logits).rank);
  tensorOperand("crossEntropy", targets, 1);
  const logp = logSoftmax(logits, a);
  if (targets.dtype === "i32") {
    const expected = logits.shape.filter((_, i) => i !== a);
    if (expected.length !== targets.rank || expected.some((d, i) => d !== targets.shape[i]))
      throw new ShapeError("crossEntropy", [logits.shape, targets.shape], `integer labels must have the logits' shape without axis ${a}`);
    return neg(sum(mul(oneHot(targets, logits.shape[a], logits.dtype, a), logp), a));
  }
  if (targets.dtype !== logits.dtype)
    throw new DTypeError("crossEntropy", [logits.dtype, targets.dtype], "soft targets must have the logits' dtype (or be i32 labels)");
  if (targets.rank !== logits.rank || targets.shape.some((d, i) => d !== logits.shape[i]))
    throw new ShapeError("crossEntropy", [logits.shape, targets.shape], "soft targets must have the logits' shape");
  return neg(sum(mul(targets, logp), a));
}

/** One-hot encoding of i32 labels, with the classes on a new axis (last by default). */
export function oneHot(labels: Tensor, numClasses: number, dtype: DType = "f32", axis = -1): Tensor {
  if (tensorOperand("oneHot", labels).dtype !== "i32") throw new DTypeError("oneHot", [labels.dtype], "labels must be i32");
  const a = normalizeAxis("oneHot", axis, labels.rank + 1);
  const shape = [...labels.shape.slice(0, a), numClasses, ...labels.shape.slice(a)];
  return cast(equal(expandDims(labels, a), iota(shape, a)), dtype);
}

// ---------------------------------------------------------------- normalisation and activations

/** x / max(‖x‖₂, eps) along `axis` (PyTorch's F.normalize), with a custom VJP. */
export function l2Normalize(x: Tensor, axis = -1, eps = 1e-12): Tensor {
  const a = normalizeAxis("l2Normalize", axis, tensorOperand("l2Normalize", x).rank);
  const norm = (v: Tensor) => maximum(sqrt(sum(mul(v, v), a, true)), eps);
  return customVjp(
    "l2Normalize",
    (v) => div(v, norm(v)),
    ([v], y, ct) => {
      const n = norm(v);
      // Inside the eps clamp the norm is constant, so the map is just v/eps.
      const tangential = sub(ct, mul(y, sum(mul(ct, y), a, true)));
      return [div(where(greater(sqrt(sum(mul(v, v), a, true)), eps), tangential, ct), n)];
    },
  )(x);
}

/** LayerNorm over the last axis: (x − mean)/sqrt(var + eps)·gamma + beta. */
export function layerNorm(x: Tensor, gamma?: Tensor, beta?: Tensor, eps = 1e-5): Tensor {
  const mu = mean(x, -1, true);
  const centred = sub(x, mu);
  const y = mul(centred, rsqrt(add(mean(mul(centred, centred), -1, true), eps)));
  const scaled = gamma ? mul(y, gamma) : y;
  return beta ? add(scaled, beta) : scaled;
}

/** Exact GELU: x·Φ(x) = 0.5·x·(1 + erf(x/√2)). */
export const gelu = (x: Tensor): Tensor => mul(mul(x, 0.5), add(erf(mul(x, Math.SQRT1_2)), 1));

/** The tanh approximation of GELU (for comparison with models trained with it). */
export const geluTanh = (x: Tensor): Tensor => mul(mul(x, 0.5), add(tanh(mul(add(x, mul(mul(mul(x, x), x), 0.044715)), Math.sqrt(2 / Math.PI))), 1));

/** x·w + b with w laid out [in, out] (PyTorch stores [out, in]; transpose when importing). */
export function linear(x: Tensor, w: Tensor, b?: Tensor): Tensor {
  [x, w].forEach((t, i) => tensorOperand("linear", t, i));
  if (w.rank !== 2) throw new ShapeError("linear", [x.shape, w.shape], "the weight must be a matrix [in, out]");
  if (x.shape[x.rank - 1] !== w.shape[0])
    throw new ShapeError(
      "linear",
      [x.shape, w.shape],
      `input features ${x.shape[x.rank - 1]} ≠ weight rows ${w.shape[0]}`,
      "The weight is [in, out]; transpose a PyTorch [out, in] weight",
    );
  const flat = x.rank === 2 ? x : reshape(x, [-1, w.shape[0]]);
  const y = reshape(matmul(flat, w), [...x.shape.slice(0, -1), w.shape[1]]);
  return b ? add(y, b) : y;
}

// ---------------------------------------------------------------- attention

/**
 * softmax(q·kᵀ·scale + bias)·v over the last two axes: q [..., Tq, d], k [..., Tk, d],
 * v [..., Tk, dv]. `bias` (broadcast to [..., Tq, Tk]) adds to the logits, e.g. −1e9 to mask.
 */
export function scaledDotProductAttention(q: Tensor, k: Tensor, v: Tensor, opts: { scale?: number; bias?: Tensor } = {}): Tensor {
  [q, k, v].forEach((t, i) => tensorOperand("attention", t, i));
  const d = q.shape[q.rank - 1];
  if (k.shape[k.rank - 1] !== d) throw new ShapeError("attention", [q.shape, k.shape, v.shape], "queries and keys need the same feature size");
  const logits = mul(matmul(q, swapAxes(k)), opts.scale ?? 1 / Math.sqrt(d));
  return matmul(softmax(opts.bias ? add(logits, opts.bias) : logits, -1), v);
}

/** [B, T, H·d] → [B, H, T, d]. */
export function splitHeads(x: Tensor, heads: number): Tensor {
  const [b, t, c] = tensorOperand("splitHeads", x).shape;
  if (x.rank !== 3 || c % heads !== 0) throw new ShapeError("splitHeads", [x.shape], `needs [B, T, C] with C divisible by ${heads} heads`);
  return transpose(reshape(x, [b, t, heads, c / heads]), [0, 2, 1, 3]);
}

/** [B, H, T, d] → [B, T, H·d]. */
export function mergeHeads(x: Tensor): Tensor {
  const [b, h, t, d] = tensorOperand("mergeHeads", x).shape;
  if (x.rank !== 4) throw new ShapeError("mergeHeads", [x.shape], "needs [B, H, T, d]");
  return reshape(transpose(x, [0, 2, 1, 3]), [b, t, h * d]);
}

/** Weights of a multi-head self-attention layer (weights laid out [in, out]). */
export interface AttentionParams {
  readonly wQkv: Tensor; // [C, 3C]
  readonly bQkv?: Tensor; // [3C]
  readonly wOut: Tensor; // [C, C]
  readonly bOut?: Tensor; // [C]
}

/**
 * Multi-head self-attention on x [B, T, C]: a fused qkv projection, `heads` heads of size C/heads
 * with scale (C/heads)^−½, and an output projection.
 */
export function multiHeadAttention(x: Tensor, p: AttentionParams, heads: number, bias?: Tensor): Tensor {
  const c = tensorOperand("multiHeadAttention", x).shape[x.rank - 1];
  if (p.wQkv.shape[1] !== 3 * c) throw new ShapeError("multiHeadAttention", [x.shape, p.wQkv.shape], "wQkv must be [C, 3C]");
  if (!Number.isInteger(c / heads)) throw new ArgumentError("multiHeadAttention", `width ${c} is not divisible by ${heads} heads`);
  const qkv = linear(x, p.wQkv, p.bQkv);
  const part = (i: number) => splitHeads(sliceLast(qkv, i * c, (i + 1) * c), heads);
  const o = scaledDotProductAttention(part(0), part(1), part(2), bias ? { bias } : {});
  return linear(mergeHeads(o), p.wOut, p.bOut);
}

const sliceLast = (x: Tensor, start: number, stop: number): Tensor => sliceAxis(x, -1, start, stop);

// ---------------------------------------------------------------- special functions

/**
 * Inverse error function on [−1, 1]: Giles' single-precision approximation ("Approximating the
 * erfinv function", 2010), then two Newton steps on erf (a primitive) that bring float64 results
 * to ~1e-15 for |x| < 1 − 1e-12. ±1 map to ±∞. Written with primitives, so it runs and differentiates everywhere.
 */
export function erfinv(x: Tensor): Tensor {
  const edge = greaterEqual(abs(x), 1);
  const inside = where(edge, 0, x); // keeps the gradient finite at ±1
  const w = neg(log(mul(sub(1, inside), add(inside, 1))));
  const poly = (t: Tensor, cs: readonly number[]) => cs.slice(2).reduce((p, c) => add(mul(p, t), c), add(mul(t, cs[0]), cs[1]));
  // Each branch sees only inputs from its own domain, so the unused one stays finite (no NaN in gradients).
  const central = poly(
    sub(minimum(w, 5), 2.5),
    [2.81022636e-8, 3.43273939e-7, -3.5233877e-6, -4.39150654e-6, 2.1858087e-4, -1.25372503e-3, -4.17768164e-3, 0.246640727, 1.50140941],
  );
  const tail = poly(
    sub(sqrt(maximum(w, 5)), 3),
    [-2.00214257e-4, 1.00950558e-4, 1.34934322e-3, -3.67342844e-3, 5.73950773e-3, -7.6224613e-3, 9.43887047e-3, 1.00167406, 2.83297682],
  );
  const newton = (y: Tensor) => sub(y, div(sub(erf(y), inside), mul(exp(neg(mul(y, y))), 2 / Math.sqrt(Math.PI))));
  const y = newton(newton(mul(where(greater(w, 5), tail, central), inside)));
  return where(edge, mul(sign(x), Infinity), y);
}
