import { isFloat, type DType } from "./dtype.js";
import { ArgumentError, DTypeError, ShapeError, formatShape } from "./errors.js";
import type { BinaryPrim, ComparePrim, Prim, PrimParams, UnaryPrim } from "./prims.js";
import { broadcastShapes, checkShape, normalizeAxis, shapesEqual, sizeOf, type Shape } from "./shape.js";
import { Tensor, tensorOperand } from "./tensor.js";

interface Abstract {
  readonly shape: Shape;
  readonly dtype: DType;
}
type InferRule<P extends Prim> = (params: PrimParams[P], inputs: readonly Tensor[]) => Abstract;

const shapes = (xs: readonly Tensor[]) => xs.map((x) => x.shape);
const dtypes = (xs: readonly Tensor[]) => xs.map((x) => x.dtype);

function sameDType(op: string, xs: readonly Tensor[]): DType {
  const d = xs[0].dtype;
  if (xs.some((x) => x.dtype !== d)) throw new DTypeError(op, dtypes(xs), "operands must share a dtype", `Cast one with cast(x, "${d}")`);
  return d;
}

const unary =
  (floatOnly: boolean) =>
  (op: UnaryPrim): InferRule<UnaryPrim> =>
  (_p, [x]) => {
    if (floatOnly && !isFloat(x.dtype)) throw new DTypeError(op, [x.dtype], "needs a float operand", `Cast it with cast(x, "f32")`);
    if (x.dtype === "bool") throw new DTypeError(op, [x.dtype], "is not defined on bool", `Cast it with cast(x, "f32")`);
    return { shape: x.shape, dtype: x.dtype };
  };
const floatUnary = unary(true);
const numUnary = unary(false);

const binary =
  (op: BinaryPrim, floatOnly = false): InferRule<BinaryPrim> =>
  (_p, xs) => {
    const dtype = sameDType(op, xs);
    if (dtype === "bool") throw new DTypeError(op, dtypes(xs), "is not defined on bool", `Cast the operands with cast(x, "f32")`);
    if (floatOnly && !isFloat(dtype)) throw new DTypeError(op, dtypes(xs), "needs float operands", `Cast them with cast(x, "f32")`);
    return { shape: broadcastShapes(op, ...shapes(xs)), dtype };
  };

const compare =
  (op: ComparePrim): InferRule<ComparePrim> =>
  (_p, xs) => {
    sameDType(op, xs);
    return { shape: broadcastShapes(op, ...shapes(xs)), dtype: "bool" };
  };

function reduceShape(op: string, x: Tensor, axes: readonly number[]): number[] {
  for (const a of axes) {
    normalizeAxis(op, a, x.rank);
    if (a < 0) throw new ArgumentError(op, "primitive axes must be normalised (non-negative)");
  }
  if (op === "max" || op === "argmax" || op === "argmin")
    for (const a of axes) if (x.shape[a] === 0) throw new ShapeError(op, [x.shape], `cannot reduce over the empty axis ${a}`);
  return x.shape.filter((_, i) => !axes.includes(i));
}

function randomKey(op: string, key: Tensor): void {
  if (key.dtype !== "i32" || !shapesEqual(key.shape, [2]))
    throw new ShapeError(
      op,
      [key.shape],
      `a key must be i32[2], got ${key.dtype}${formatShape(key.shape)}`,
      "Make one with randomKey(seed) and derive more with split(key, n)",
    );
}

function gatherIndices(op: string, idx: Tensor, others: readonly Tensor[]): void {
  if (idx.dtype !== "i32") throw new DTypeError(op, dtypes([...others, idx]), "indices must be i32", `Cast them with cast(indices, "i32")`);
}

/** Shape and dtype inference for every primitive; it is where build-time errors come from. */
export const inferRules: { readonly [P in Prim]: InferRule<P> } = {
  input: (p) => (checkShape("input", p.shape), { shape: p.shape, dtype: p.dtype }),
  constant: (p) => {
    checkShape("constant", p.shape);
    if (p.data.length !== sizeOf(p.shape))
      throw new ShapeError("constant", [p.shape], `${p.data.length} values do not fill shape ${formatShape(p.shape)} (${sizeOf(p.shape)} elements)`);
    return { shape: p.shape, dtype: p.dtype };
  },
  iota: (p) => (checkShape("iota", p.shape), normalizeAxis("iota", p.axis, p.shape.length), { shape: p.shape, dtype: p.dtype }),
  randomBits: (p, [key]) => (randomKey("randomBits", key), checkShape("randomBits", p.shape), { shape: p.shape, dtype: "i32" }),
  randomUniform: (p, [key]) => {
    randomKey("randomUniform", key);
    checkShape("randomUniform", p.shape);
    if (!isFloat(p.dtype)) throw new DTypeError("randomUniform", [p.dtype], "draws floats only");
    return { shape: p.shape, dtype: p.dtype };
  },
  neg: numUnary("neg"),
  exp: floatUnary("exp"),
  log: floatUnary("log"),
  sqrt: floatUnary("sqrt"),
  tanh: floatUnary("tanh"),
  erf: floatUnary("erf"),
  abs: numUnary("abs"),
  sign: numUnary("sign"),
  reciprocal: floatUnary("reciprocal"),
  add: binary("add"),
  sub: binary("sub"),
  mul: binary("mul"),
  div: binary("div"),
  pow: binary("pow", true),
  maximum: binary("maximum"),
  minimum: binary("minimum"),
  atan2: binary("atan2", true),
  less: compare("less"),
  lessEqual: compare("lessEqual"),
  greater: compare("greater"),
  greaterEqual: compare("greaterEqual"),
  equal: compare("equal"),
  notEqual: compare("notEqual"),
  where: (_p, [c, a, b]) => {
    if (c.dtype !== "bool") throw new DTypeError("where", dtypes([c, a, b]), "the condition must be bool", "Compare first, e.g. greater(x, 0)");
    const dtype = sameDType("where", [a, b]);
    return { shape: broadcastShapes("where", c.shape, a.shape, b.shape), dtype };
  },
  cast: (p, [x]) => ({ shape: x.shape, dtype: p.dtype }),
  stopGradient: (_p, [x]) => ({ shape: x.shape, dtype: x.dtype }),
  sum: (p, [x]) => {
    if (x.dtype === "bool") throw new DTypeError("sum", [x.dtype], "is not defined on bool", `Cast first with cast(x, "i32")`);
    return { shape: reduceShape("sum", x, p.axes), dtype: x.dtype };
  },
  max: (p, [x]) => ({ shape: reduceShape("max", x, p.axes), dtype: x.dtype }),
  argmax: (p, [x]) => ({ shape: reduceShape("argmax", x, [p.axis]), dtype: "i32" }),
  argmin: (p, [x]) => ({ shape: reduceShape("argmin", x, [p.axis]), dtype: "i32" }),
  reshape: (p, [x]) => {
    checkShape("reshape", p.shape);
    if (sizeOf(p.shape) !== x.size)
      throw new ShapeError("reshape", [x.shape], `cannot reshape ${x.size} elements into ${formatShape(p.shape)} (${sizeOf(p.shape)} elements)`);
    return { shape: p.shape, dtype: x.dtype };
  },
  permute: (p, [x]) => {
    const ok = p.perm.length === x.rank && [...p.perm].sort((a, b) => a - b).every((v, i) => v === i);
    if (!ok) throw new ShapeError("permute", [x.shape], `[${p.perm.join(",")}] is not a permutation of the ${x.rank} axes`);
    return { shape: p.perm.map((a) => x.shape[a]), dtype: x.dtype };
  },
  broadcastTo: (p, [x]) => {
    checkShape("broadcastTo", p.shape);
    const ok = x.rank <= p.shape.length && x.shape.every((d, i) => d === 1 || d === p.shape[p.shape.length - x.rank + i]);
    if (!ok) throw new ShapeError("broadcastTo", [x.shape], `cannot broadcast to ${formatShape(p.shape)}`, "Only size-1 or missing leading axes can grow");
    return { shape: p.shape, dtype: x.dtype };
  },
  slice: (p, [x]) => {
    if (p.starts.length !== x.rank || p.stops.length !== x.rank || p.steps.length !== x.rank)
      throw new ShapeError("slice", [x.shape], `needs one start, stop and step per axis (${x.rank})`);
    const shape = x.shape.map((d, i) => {
      const [s, e, st] = [p.starts[i], p.stops[i], p.steps[i]];
      if (!(st >= 1) || s < 0 || e > d || s > e || !Number.isInteger(s + e + st))
        throw new ShapeError("slice", [x.shape], `bad range ${s}:${e}:${st} on axis ${i} of size ${d}`, "Need 0 <= start <= stop <= size and step >= 1");
      return Math.ceil((e - s) / st);
    });
    return { shape, dtype: x.dtype };
  },
  pad: (p, [x]) => {
    if (p.lo.length !== x.rank || p.hi.length !== x.rank || p.interior.length !== x.rank)
      throw new ShapeError("pad", [x.shape], `needs lo, hi and interior padding per axis (${x.rank})`);
    if ([...p.lo, ...p.hi, ...p.interior].some((v) => !Number.isInteger(v) || v < 0))
      throw new ArgumentError("pad", "padding amounts must be non-negative integers; use slice to crop");
    const shape = x.shape.map((d, i) => p.lo[i] + p.hi[i] + d + Math.max(0, d - 1) * p.interior[i]);
    return { shape, dtype: x.dtype };
  },
  concat: (p, xs) => {
    if (xs.length === 0) throw new ArgumentError("concat", "needs at least one tensor");
    const dtype = sameDType("concat", xs);
    const r = xs[0].rank;
    const axis = normalizeAxis("concat", p.axis, r);
    for (const x of xs)
      if (x.rank !== r || x.shape.some((d, i) => i !== axis && d !== xs[0].shape[i]))
        throw new ShapeError("concat", shapes(xs), `all axes but ${axis} must match`);
    const shape = [...xs[0].shape];
    shape[axis] = xs.reduce((a, x) => a + x.shape[axis], 0);
    return { shape, dtype };
  },
  gather: (p, [x, idx]) => {
    gatherIndices("gather", idx, [x]);
    const axis = normalizeAxis("gather", p.axis, x.rank);
    if (x.shape[axis] === 0) throw new ShapeError("gather", [x.shape, idx.shape], `cannot gather from the empty axis ${axis}`);
    return { shape: [...x.shape.slice(0, axis), ...idx.shape, ...x.shape.slice(axis + 1)], dtype: x.dtype };
  },
  scatterAdd: (p, [u, idx]) => {
    gatherIndices("scatterAdd", idx, [u]);
    const ir = idx.rank;
    const ok = p.axis >= 0 && p.axis + ir <= u.rank && idx.shape.every((d, i) => d === u.shape[p.axis + i]);
    if (!ok) throw new ShapeError("scatterAdd", [u.shape, idx.shape], `updates must hold the index shape at axis ${p.axis}`);
    return { shape: [...u.shape.slice(0, p.axis), p.size, ...u.shape.slice(p.axis + ir)], dtype: u.dtype };
  },
  matmul: (_p, [a, b]) => {
    const dtype = sameDType("matmul", [a, b]);
    if (dtype === "bool") throw new DTypeError("matmul", [a.dtype, b.dtype], "is not defined on bool");
    if (a.rank < 2 || b.rank < 2)
      throw new ShapeError("matmul", [a.shape, b.shape], "operands need rank >= 2", "Add an axis with expandDims (a vector v becomes [1,n] or [n,1])");
    const [m, k1] = a.shape.slice(-2);
    const [k2, n] = b.shape.slice(-2);
    if (k1 !== k2)
      throw new ShapeError(
        "matmul",
        [a.shape, b.shape],
        `contraction sizes differ: a has ${k1} columns, b has ${k2} rows`,
        "Transpose or reshape an operand so they match",
      );
    const batch = broadcastShapes("matmul", a.shape.slice(0, -2), b.shape.slice(0, -2));
    return { shape: [...batch, m, n], dtype };
  },
  customVjp: (_p, [body]) => ({ shape: body.shape, dtype: body.dtype }),
};

/** Builds a node, checking its operands through the primitive's inference rule. */
export function make<P extends Prim>(prim: P, params: PrimParams[P], inputs: readonly Tensor[]): Tensor {
  inputs.forEach((x, i) => tensorOperand(prim, x, i));
  const rule: InferRule<P> = inferRules[prim];
  const { shape, dtype } = rule(params, inputs);
  return new Tensor(prim, params, inputs, Object.freeze([...shape]), dtype);
}
