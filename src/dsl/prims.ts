import type { DType, HostData } from "./dtype.js";
import type { Shape } from "./shape.js";
import type { Tensor } from "./tensor.js";

/** Elementwise primitives of one operand. */
export const UNARY_PRIMS = ["neg", "exp", "log", "sqrt", "tanh", "erf", "abs", "sign", "reciprocal"] as const;
/** Elementwise arithmetic of two broadcast operands; the result has the operands' dtype. */
export const BINARY_PRIMS = ["add", "sub", "mul", "div", "pow", "maximum", "minimum", "atan2"] as const;
/** Elementwise comparisons of two broadcast operands; the result is bool. */
export const COMPARE_PRIMS = ["less", "lessEqual", "greater", "greaterEqual", "equal", "notEqual"] as const;

export type UnaryPrim = (typeof UNARY_PRIMS)[number];
export type BinaryPrim = (typeof BINARY_PRIMS)[number];
export type ComparePrim = (typeof COMPARE_PRIMS)[number];

/**
 * A custom backward rule: given the primal inputs, the primal output and the output's cotangent,
 * returns one cotangent per input (`null` for none). Built from DSL ops, so it is differentiable too.
 */
export type CustomBackward = (inputs: readonly Tensor[], output: Tensor, cotangent: Tensor) => readonly (Tensor | null)[];

/**
 * The parameters of every primitive. The keys of this interface are the closed primitive set:
 * every rule table (shapes, VJPs, interpreters, lowerings) is a mapped type over them, so a
 * primitive without a rule is a type error.
 */
export interface PrimParams {
  // Leaves
  /** A placeholder for a value supplied at run time. */
  input: { readonly name: string; readonly shape: Shape; readonly dtype: DType };
  constant: { readonly data: HostData; readonly shape: Shape; readonly dtype: DType };
  /** Index along `axis`, broadcast over the other axes. */
  iota: { readonly shape: Shape; readonly axis: number; readonly dtype: DType };
  // Counter-based random numbers (threefry2x32); input 0 is a key (i32[2]).
  /** Raw 32-bit words (as i32): word i is threefry2x32(key, (counterHi, i))[0]. */
  randomBits: { readonly shape: Shape; readonly counterHi: number };
  /** Uniform floats in [0, 1): the top 24 bits of the randomBits word, times 2^-24. */
  randomUniform: { readonly shape: Shape; readonly dtype: DType };
  // Elementwise
  neg: {};
  exp: {};
  log: {};
  sqrt: {};
  tanh: {};
  erf: {};
  abs: {};
  sign: {};
  reciprocal: {};
  add: {};
  sub: {};
  mul: {};
  div: {};
  pow: {};
  maximum: {};
  minimum: {};
  /** atan2(y, x): the angle of the point (x, y), in (−π, π] like Math.atan2; float operands only. */
  atan2: {};
  less: {};
  lessEqual: {};
  greater: {};
  greaterEqual: {};
  equal: {};
  notEqual: {};
  /** where(cond, a, b), all three broadcast. */
  where: {};
  cast: { readonly dtype: DType };
  /** Identity forward; no cotangent flows back. */
  stopGradient: {};
  // Reductions (the reduced axes are removed)
  sum: { readonly axes: readonly number[] };
  max: { readonly axes: readonly number[] };
  argmax: { readonly axis: number };
  argmin: { readonly axis: number };
  // Movement
  reshape: { readonly shape: Shape };
  permute: { readonly perm: readonly number[] };
  broadcastTo: { readonly shape: Shape };
  /** Strided slice: along axis i, start[i], start[i]+step[i], ... below stop[i]; steps are positive. */
  slice: { readonly starts: readonly number[]; readonly stops: readonly number[]; readonly steps: readonly number[] };
  /** Pads with `value`: lo/hi elements at each end and `interior` between neighbours (the adjoint of a strided slice). */
  pad: { readonly lo: readonly number[]; readonly hi: readonly number[]; readonly interior: readonly number[]; readonly value: number };
  concat: { readonly axis: number };
  /** gather(x, indices): out[pre, idx..., post] = x[pre, indices[idx...], post]; indices are clamped into range. */
  gather: { readonly axis: number };
  /** scatterAdd(updates, indices): the adjoint of gather into an axis of length `size`; indices are clamped. */
  scatterAdd: { readonly axis: number; readonly size: number };
  /** Batched matmul: [...a, m, k] x [...b, k, n] with broadcast batch axes. */
  matmul: {};
  /**
   * A composite with its own backward rule. Input 0 is the forward body's result, the rest are the
   * composite's inputs; it evaluates as input 0 and differentiates through `backward` instead of the body.
   */
  customVjp: { readonly name: string; readonly backward: CustomBackward };
}

export type Prim = keyof PrimParams;
