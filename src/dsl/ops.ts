/**
 * The primitive operations as pure functions, plus the thin conveniences that only reshape their
 * arguments (keepDims, negative axes, scalar operands). Nothing runs here: each call returns a new
 * immutable graph node, and bad operands throw a ShapeError/DTypeError naming the op.
 */
import { allocate, coerce, isFloat, type DType, type HostData } from "./dtype.js";
import { ArgumentError, ShapeError, describeValue } from "./errors.js";
import { make } from "./infer.js";
import type { BinaryPrim, ComparePrim, CustomBackward, UnaryPrim } from "./prims.js";
import { normalizeAxes, normalizeAxis, sizeOf, type Shape } from "./shape.js";
import { Tensor, tensorOperand } from "./tensor.js";

/** A tensor, or a JS number taken as a scalar of the other operand's dtype. */
export type TensorLike = Tensor | number;

// ---------------------------------------------------------------- leaves

/** A placeholder for a value given at run time (tracing makes these for you). */
export const input = (shape: Shape, dtype: DType = "f32", name = "x"): Tensor => make("input", { name, shape, dtype }, []);

/** A nested array of numbers, e.g. [[1, 2], [3, 4]]. */
export type NestedNumbers = number | readonly NestedNumbers[];

/** A nested number list's shape and row-major values (see nestedList). */
export interface NestedValues {
  readonly shape: number[];
  readonly values: number[];
}

/**
 * The shape and values of a nested list of numbers, [[1, 2], [3, 4]] → [2, 2]. Rows of different
 * lengths, or a number where a row is expected, are a ShapeError naming the first ragged row by its
 * path from `root` ("argument 0[1]"), since no shape holds them; anything else than numbers and
 * lists is an ArgumentError naming its path.
 */
export function nestedList(op: string, value: NestedNumbers, root = ""): NestedValues {
  const shape: number[] = [];
  const firstPath: string[] = []; // the row that fixed each axis's length
  const values: number[] = [];
  const ragged = (path: string, depth: number, got: string) => {
    const want = depth < shape.length ? `a list of ${shape[depth]} like ${firstPath[depth] || "the root"}` : `a number like the rows before it`;
    return new ShapeError(
      op,
      [shape],
      `ragged nested list: ${path || "the root"} is ${got}, expected ${want}`,
      "Every row must have the same length; pad the rows, or pass flat values with a shape",
    );
  };
  const go = (v: unknown, path: string, depth: number): void => {
    if (typeof v === "number") {
      if (depth !== shape.length) throw ragged(path, depth, `the number ${v}`);
      values.push(v);
      return;
    }
    if (!Array.isArray(v)) throw new ArgumentError(op, `${path || "the root"} is ${describeValue(v)}, expected a number or a list of numbers`);
    if (depth === shape.length && values.length === 0) {
      shape.push(v.length);
      firstPath.push(path);
    } else if (depth >= shape.length || shape[depth] !== v.length) throw ragged(path, depth, describeValue(v));
    v.forEach((e, i) => go(e, `${path}[${i}]`, depth + 1));
  };
  go(value, root, 0);
  return { shape, values };
}

/** A list holding lists (and only lists and numbers, at any depth): a tensor of rank 2 or more written as nested rows. */
export function isNestedList(x: unknown): x is readonly NestedNumbers[] {
  const numbersOrLists = (v: unknown): boolean => typeof v === "number" || (Array.isArray(v) && v.every(numbersOrLists));
  return Array.isArray(x) && x.some(Array.isArray) && numbersOrLists(x);
}

/**
 * A constant tensor from a number, a nested array, or flat values with an explicit shape.
 * Values are rounded to `dtype` (f32 by default).
 */
export function constant(value: NestedNumbers | ArrayLike<number>, dtype: DType = "f32", shape?: Shape): Tensor {
  let flat: ArrayLike<number>;
  let sh: number[];
  if (typeof value === "number" || Array.isArray(value)) {
    ({ shape: sh, values: flat } = nestedList("constant", value));
  } else {
    flat = value as ArrayLike<number>;
    sh = [flat.length];
  }
  if (shape) sh = [...shape];
  const data: HostData = allocate(dtype, flat.length);
  for (let i = 0; i < flat.length; i++) data[i] = coerce(dtype, flat[i]);
  return make("constant", { data, shape: sh, dtype }, []);
}

/** A rank-0 constant of `dtype` (f32 by default); the value is rounded to it. */
export const scalar = (v: number, dtype: DType = "f32"): Tensor => constant(v, dtype);

/** A tensor filled with one value (a scalar constant broadcast; no storage for the copies). */
export const full = (shape: Shape, value: number, dtype: DType = "f32"): Tensor => broadcastTo(scalar(value, dtype), shape);
/** A tensor of zeros (jnp.zeros; f32 by default). */
export const zeros = (shape: Shape, dtype: DType = "f32"): Tensor => full(shape, 0, dtype);
/** A tensor of ones (jnp.ones; f32 by default). */
export const ones = (shape: Shape, dtype: DType = "f32"): Tensor => full(shape, 1, dtype);
/** Zeros with `x`'s shape and dtype. */
export const zerosLike = (x: Tensor): Tensor => zeros(tensorOperand("zerosLike", x).shape, x.dtype);
/** Ones with `x`'s shape and dtype. */
export const onesLike = (x: Tensor): Tensor => ones(tensorOperand("onesLike", x).shape, x.dtype);

/** The index along `axis` at every position of `shape`. */
export const iota = (shape: Shape, axis = 0, dtype: DType = "i32"): Tensor =>
  make("iota", { shape, axis: normalizeAxis("iota", axis, shape.length), dtype }, []);

/** 0, 1, ..., n-1. */
export const arange = (n: number, dtype: DType = "i32"): Tensor => iota([n], 0, dtype);

// ---------------------------------------------------------------- elementwise

/** A number operand as a scalar of the other operand's dtype; anything but a Tensor or a number is named (operand `index`). */
const lift = (x: TensorLike, like: TensorLike, op: string, index: number): Tensor => {
  if (x instanceof Tensor) return x;
  if (typeof x !== "number") return tensorOperand(op, x, index);
  if (like instanceof Tensor) return scalar(x, like.dtype);
  throw new ArgumentError(op, "at least one operand must be a Tensor");
};

const unary = (p: UnaryPrim) => (x: Tensor) => make(p, {}, [x]);
const binary = (p: BinaryPrim) => (a: TensorLike, b: TensorLike) => make(p, {}, [lift(a, b, p, 0), lift(b, a, p, 1)]);
const compare = (p: ComparePrim) => (a: TensorLike, b: TensorLike) => make(p, {}, [lift(a, b, p, 0), lift(b, a, p, 1)]);

/** Elementwise −x (numbers only: not bool). */
export const neg = unary("neg");
/** Elementwise e^x (float only). */
export const exp = unary("exp");
/** Elementwise natural logarithm (float only). */
export const log = unary("log");
/** Elementwise square root (float only). */
export const sqrt = unary("sqrt");
/** Elementwise hyperbolic tangent (float only). */
export const tanh = unary("tanh");
/** The Gauss error function. */
export const erf = unary("erf");
/** Elementwise |x| (numbers only: not bool). */
export const abs = unary("abs");
/** -1, 0 or 1. */
export const sign = unary("sign");
/** Elementwise 1/x (float only). */
export const reciprocal = unary("reciprocal");

/** Elementwise a + b, NumPy broadcasting; operands share a dtype (a number takes the other's). */
export const add = binary("add");
/** Elementwise a − b, broadcast like add. */
export const sub = binary("sub");
/** Elementwise a · b, broadcast like add. */
export const mul = binary("mul");
/** Division; on i32 it truncates towards zero. */
export const div = binary("div");
/**
 * Elementwise a^b like Math.pow, broadcast like add (float only): a negative base needs an
 * integer exponent (else NaN). The gradient in b is taken as 0 where a <= 0.
 */
export const pow = binary("pow");
/** Elementwise larger of a and b, broadcast like add. At ties the gradient splits evenly (as JAX). */
export const maximum = binary("maximum");
/** Elementwise smaller of a and b, broadcast like add. At ties the gradient splits evenly (as JAX). */
export const minimum = binary("minimum");
/**
 * The angle of the point (x, y) from the positive x axis, in (−π, π] like Math.atan2: note the
 * order, y first. Float operands only. atan2(0, 0) is 0 on every backend (WebGPU does not keep
 * the signs of zeros that make Math.atan2(0, −0) π); its gradient there is NaN.
 */
export const atan2 = binary("atan2");

/** Elementwise a < b, broadcast like add: a bool tensor; operands share a dtype (a number takes the other's). */
export const less = compare("less");
/** Elementwise a <= b as bool (see less). */
export const lessEqual = compare("lessEqual");
/** Elementwise a > b as bool (see less). */
export const greater = compare("greater");
/** Elementwise a >= b as bool (see less). */
export const greaterEqual = compare("greaterEqual");
/** Elementwise a == b as bool (see less). */
export const equal = compare("equal");
/** Elementwise a != b as bool (see less). */
export const notEqual = compare("notEqual");

/** Elementwise choice: `a` where `cond` is true, else `b`; all three broadcast. */
export function where(cond: Tensor, a: TensorLike, b: TensorLike): Tensor {
  // Two numbers are f32 scalars (JAX's default float), broadcast against the condition.
  const both = typeof a === "number" && typeof b === "number";
  return make("where", {}, [cond, both ? scalar(a, "f32") : lift(a, b, "where", 1), both ? scalar(b, "f32") : lift(b, a, "where", 2)]);
}

/** Converts to `dtype`: floats to i32 truncate; anything to bool is `x != 0`; bool to numbers is 0/1. */
export const cast = (x: Tensor, dtype: DType): Tensor => (tensorOperand("cast", x).dtype === dtype ? x : make("cast", { dtype }, [x]));

/** Identity in the forward pass; blocks every gradient path through it. */
export const stopGradient = (x: Tensor): Tensor => make("stopGradient", {}, [x]);

// ---------------------------------------------------------------- reductions

/** Axes to reduce: one axis, a list, or undefined for all. Negative axes count from the end. */
export type Axes = number | readonly number[] | undefined;

function reduceWith(prim: "sum" | "max", x: Tensor, axes: Axes, keepDims: boolean): Tensor {
  const ax = normalizeAxes(prim, axes, tensorOperand(prim, x).rank);
  const r = ax.length === 0 ? x : make(prim, { axes: ax }, [x]);
  return keepDims
    ? reshape(
        r,
        x.shape.map((d, i) => (ax.includes(i) ? 1 : d)),
      )
    : r;
}

/** Sum over `axes` (all by default), dropping them unless `keepDims` (jnp.sum). Not defined on bool: cast to i32 to count. */
export const sum = (x: Tensor, axes?: Axes, keepDims = false): Tensor => reduceWith("sum", x, axes, keepDims);
/** Maximum over `axes` (all by default), dropping them unless `keepDims` (jnp.max); empty axes are a ShapeError. Ties share the gradient evenly. */
export const max = (x: Tensor, axes?: Axes, keepDims = false): Tensor => reduceWith("max", x, axes, keepDims);
/** Minimum over `axes` (all by default), dropping them unless `keepDims` (jnp.min): max of −x, so numbers only. */
export const min = (x: Tensor, axes?: Axes, keepDims = false): Tensor => neg(max(neg(x), axes, keepDims));

function argReduce(prim: "argmax" | "argmin", x: Tensor, axis: number, keepDims: boolean): Tensor {
  const a = normalizeAxis(prim, axis, tensorOperand(prim, x).rank);
  const r = make(prim, { axis: a }, [x]);
  return keepDims ? expandDims(r, a) : r;
}

/** Index of the first maximum along `axis` (i32). Not differentiable. */
export const argmax = (x: Tensor, axis = -1, keepDims = false): Tensor => argReduce("argmax", x, axis, keepDims);
/** Index of the first minimum along `axis` (i32). Not differentiable. */
export const argmin = (x: Tensor, axis = -1, keepDims = false): Tensor => argReduce("argmin", x, axis, keepDims);

// ---------------------------------------------------------------- movement

/** Same elements, new shape; one entry may be -1 to infer it. */
export function reshape(x: Tensor, shape: Shape): Tensor {
  tensorOperand("reshape", x);
  const free = shape.filter((d) => d === -1).length;
  if (free > 1) throw new ArgumentError("reshape", `only one -1 allowed in [${shape.join(",")}]`);
  let sh = shape;
  if (free === 1) {
    const known = sizeOf(shape.filter((d) => d !== -1));
    sh = shape.map((d) => (d === -1 ? (known === 0 ? 0 : x.size / known) : d));
  }
  if (sh.length === x.rank && sh.every((d, i) => d === x.shape[i])) return x;
  return make("reshape", { shape: sh }, [x]);
}

/** Reorders axes: output axis i is input axis perm[i]. Default: reverse all axes. */
export function transpose(x: Tensor, perm?: readonly number[]): Tensor {
  const rank = tensorOperand("transpose", x).rank;
  const p = perm ? perm.map((a) => normalizeAxis("transpose", a, rank)) : [...Array(rank).keys()].reverse();
  if (p.every((a, i) => a === i) && p.length === x.rank) return x;
  return make("permute", { perm: p }, [x]);
}
/** transpose under PyTorch's name: output axis i is input axis perm[i]. */
export const permute = transpose;

/** Swaps two axes (by default the last two: a matrix transpose over batch axes). */
export function swapAxes(x: Tensor, a = -2, b = -1): Tensor {
  const p = [...Array(tensorOperand("swapAxes", x).rank).keys()];
  const [i, j] = [normalizeAxis("swapAxes", a, x.rank), normalizeAxis("swapAxes", b, x.rank)];
  [p[i], p[j]] = [p[j], p[i]];
  return transpose(x, p);
}

/** Broadcasts to `shape` by NumPy rules: size-1 axes grow and missing leading axes are added (no copy is made). */
export const broadcastTo = (x: Tensor, shape: Shape): Tensor =>
  tensorOperand("broadcastTo", x).rank === shape.length && x.shape.every((d, i) => d === shape[i]) ? x : make("broadcastTo", { shape }, [x]);

/** Inserts a size-1 axis at `axis` (negative counts from the end of the result). */
export function expandDims(x: Tensor, axis: number): Tensor {
  const a = normalizeAxis("expandDims", axis, tensorOperand("expandDims", x).rank + 1);
  return reshape(x, [...x.shape.slice(0, a), 1, ...x.shape.slice(a)]);
}

/** Removes size-1 axes (the given ones, or all). */
export function squeeze(x: Tensor, axes?: Axes): Tensor {
  const ax = axes === undefined ? tensorOperand("squeeze", x).shape.flatMap((d, i) => (d === 1 ? [i] : [])) : normalizeAxes("squeeze", axes, x.rank);
  for (const a of ax) if (x.shape[a] !== 1) throw new ArgumentError("squeeze", `axis ${a} has size ${x.shape[a]}, not 1`);
  return reshape(
    x,
    x.shape.filter((_, i) => !ax.includes(i)),
  );
}

/** One axis of a slice spec: [start, stop] or [start, stop, step]; negative bounds count from the end. */
export type SliceRange = readonly [number, number] | readonly [number, number, number] | null;

/**
 * Strided slice, one range per leading axis (null or omitted: the whole axis). Bounds are
 * clamped like Python's; steps must be positive.
 */
export function slice(x: Tensor, ranges: readonly SliceRange[]): Tensor {
  if (ranges.length > tensorOperand("slice", x).rank) throw new ArgumentError("slice", `${ranges.length} ranges for a tensor of rank ${x.rank}`);
  const starts: number[] = [];
  const stops: number[] = [];
  const steps: number[] = [];
  x.shape.forEach((d, i) => {
    const r = ranges[i] ?? [0, d, 1];
    const norm = (v: number) => Math.min(d, Math.max(0, v < 0 ? v + d : v));
    const s = norm(r[0]);
    starts.push(s);
    stops.push(Math.max(s, norm(r[1])));
    steps.push(r[2] ?? 1);
  });
  if (starts.every((s, i) => s === 0 && stops[i] === x.shape[i] && steps[i] === 1)) return x;
  return make("slice", { starts, stops, steps }, [x]);
}

/** Takes `length` elements from `start` along one axis. */
export function sliceAxis(x: Tensor, axis: number, start: number, stop: number, step = 1): Tensor {
  const a = normalizeAxis("sliceAxis", axis, tensorOperand("sliceAxis", x).rank);
  const ranges: SliceRange[] = x.shape.map(() => null);
  ranges[a] = [start, stop, step];
  return slice(x, ranges);
}

/** Pads each axis with [lo, hi] copies of `value` (default 0). */
export function pad(x: Tensor, widths: readonly (readonly [number, number])[], value = 0): Tensor {
  if (widths.length !== tensorOperand("pad", x).rank) throw new ArgumentError("pad", `needs ${x.rank} [lo, hi] pairs, got ${widths.length}`);
  return make("pad", { lo: widths.map((w) => w[0]), hi: widths.map((w) => w[1]), interior: widths.map(() => 0), value }, [x]);
}

/** Joins tensors along an existing axis. */
export function concat(xs: readonly Tensor[], axis = 0): Tensor {
  if (!Array.isArray(xs)) throw new ArgumentError("concat", `needs a list of tensors, got ${describeValue(xs)}`);
  if (xs.length === 0) throw new ArgumentError("concat", "needs at least one tensor");
  if (xs.length === 1) return tensorOperand("concat", xs[0]);
  return make("concat", { axis: normalizeAxis("concat", axis, tensorOperand("concat", xs[0]).rank) }, xs);
}

/** Joins tensors along a new axis. */
export function stack(xs: readonly Tensor[], axis = 0): Tensor {
  if (!Array.isArray(xs)) throw new ArgumentError("stack", `needs a list of tensors, got ${describeValue(xs)}`);
  if (xs.length === 0) throw new ArgumentError("stack", "needs at least one tensor");
  const a = normalizeAxis("stack", axis, tensorOperand("stack", xs[0]).rank + 1);
  return concat(
    xs.map((x) => expandDims(x, a)),
    a,
  );
}

/** x[..., indices, ...] along `axis`; the index tensor's shape replaces that axis. Indices are clamped. */
export const gather = (x: Tensor, indices: Tensor, axis = 0): Tensor =>
  make("gather", { axis: normalizeAxis("gather", axis, tensorOperand("gather", x).rank) }, [x, indices]);

/**
 * The adjoint of gather: adds each update into position indices[...] of an axis of length `size`
 * placed at `axis`. `updates` holds the index shape at `axis`.
 */
export const scatterAdd = (updates: Tensor, indices: Tensor, axis: number, size: number): Tensor => make("scatterAdd", { axis, size }, [updates, indices]);

/** Batched matrix product [..., m, k] x [..., k, n] -> [..., m, n], batch axes broadcast. */
export const matmul = (a: Tensor, b: Tensor): Tensor => make("matmul", {}, [a, b]);

/**
 * Wraps a composite with its own backward rule. `forward` builds the value from primitives;
 * `backward(inputs, output, cotangent)` returns the inputs' cotangents. Gradients use `backward`
 * and never look inside `forward`.
 */
export function customVjp(name: string, forward: (...xs: Tensor[]) => Tensor, backward: CustomBackward): (...xs: Tensor[]) => Tensor {
  return (...xs) => make("customVjp", { name, backward }, [forward(...xs), ...xs]);
}

/** True if `x`'s dtype is f32 or f64. */
export const isFloating = (x: Tensor): boolean => isFloat(tensorOperand("isFloating", x).dtype);
