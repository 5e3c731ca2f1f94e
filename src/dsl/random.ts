/**
 * Counter-based random numbers (threefry2x32, as in JAX) from splittable keys. A key is an
 * i32[2] tensor; the same key gives the same bits on every backend, and keys are split, never
 * mutated, so randomness stays a pure function of its key.
 */
import { isFloat, type DType } from "./dtype.js";
import { DTypeError } from "./errors.js";
import { make } from "./infer.js";
import { erfinv, logicalAnd } from "./nn.js";
import { add, cast, constant, equal, expandDims, iota, less, maximum, minimum, mul, reshape, sliceAxis, sum } from "./ops.js";
import type { Shape } from "./shape.js";
import { tensorOperand, type Tensor } from "./tensor.js";
import { hostErf } from "./hostmath.js";

/** A key from an integer seed (like jax.random.PRNGKey). */
export const randomKey = (seed: number): Tensor => constant([Math.floor(seed / 2 ** 32) | 0, seed | 0], "i32");

/** `n` independent keys stacked as i32[n, 2] (handy as one input of a compiled step). */
export const splitKeys = (key: Tensor, n: number): Tensor => make("randomBits", { shape: [n, 2], counterHi: 0 }, [key]);

/** `n` independent keys as separate tensors. */
export function split(key: Tensor, n = 2): Tensor[] {
  const ks = splitKeys(key, n);
  return Array.from({ length: n }, (_, i) => reshape(sliceAxis(ks, 0, i, i + 1), [2]));
}

/** The key derived from `key` and the integer `data` (a step number, a layer index...). */
export const foldIn = (key: Tensor, data: number): Tensor => make("randomBits", { shape: [2], counterHi: ((data | 0) + 1) | 0 || 1 }, [key]);

/** Raw 32-bit random words, as i32. */
export const randomBits = (key: Tensor, shape: Shape): Tensor => make("randomBits", { shape, counterHi: 0 }, [key]);

/** Uniform floats in [lo, hi). */
export function uniform(key: Tensor, shape: Shape, lo = 0, hi = 1, dtype: DType = "f32"): Tensor {
  const u = make("randomUniform", { shape, dtype }, [key]);
  return lo === 0 && hi === 1 ? u : add(mul(u, hi - lo), lo);
}

/** Standard normal samples, by the inverse CDF sqrt(2)·erfinv(2u − 1) (as JAX does). */
export function normal(key: Tensor, shape: Shape, dtype: DType = "f32"): Tensor {
  const lo = dtype === "f64" ? -1 + 2 ** -52 : Math.fround(-1 + 2 ** -23);
  return mul(erfinv(uniform(key, shape, lo, 1, dtype)), Math.SQRT2);
}

/**
 * Normal samples truncated to [lower, upper] standard deviations, by inverse CDF: exact support,
 * no rejection (as JAX does). PyTorch's trunc_normal_(std=0.02, a=-2σ, b=2σ) is
 * `mul(truncatedNormal(key, shape, -2, 2), 0.02)`.
 */
export function truncatedNormal(key: Tensor, shape: Shape, lower = -2, upper = 2, dtype: DType = "f32"): Tensor {
  const u = uniform(key, shape, hostErf(lower / Math.SQRT2), hostErf(upper / Math.SQRT2), dtype);
  // Rounding can push a sample a hair outside the support; clamp it back.
  return minimum(maximum(mul(erfinv(u), Math.SQRT2), lower), upper);
}

/** True with probability `p`. */
export function bernoulli(key: Tensor, p: number | Tensor, shape: Shape): Tensor {
  const dtype: DType = typeof p === "number" ? "f32" : tensorOperand("bernoulli", p, 1).dtype;
  if (!isFloat(dtype)) throw new DTypeError("bernoulli", [dtype], "p must be a float");
  return less(uniform(key, shape, 0, 1, dtype), p);
}

/**
 * A uniformly random permutation of 0..n-1 (i32[n]): the rank of each of n random 32-bit words,
 * ties broken by position. O(n²) work, fine for patch-sized n.
 */
export function permutation(key: Tensor, n: number): Tensor {
  const bits = randomBits(key, [n]);
  const mine = expandDims(bits, 1); // [n,1]: word i
  const other = expandDims(bits, 0); // [1,n]: word j
  const earlierTie = logicalAnd(equal(other, mine), less(iota([n, n], 1), iota([n, n], 0)));
  return sum(add(cast(less(other, mine), "i32"), cast(earlierTie, "i32")), 1);
}
