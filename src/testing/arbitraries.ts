/** fast-check arbitraries for shapes and tensors, for writing gradient and backend properties. */
import fc from "fast-check";
import type { DType, Shape } from "../dsl/index.js";
import { HostTensor, hostTensor } from "../backend/index.js";

/** Bounds on the shapes arbShape draws: rank in [minRank, maxRank] (default 0..3), sizes in [minDim, maxDim] (default 1..4). */
export interface ShapeOptions {
  readonly minRank?: number;
  readonly maxRank?: number;
  readonly minDim?: number;
  readonly maxDim?: number;
}

/** A shape with rank in [minRank, maxRank] (default 0..3) and sizes in [minDim, maxDim] (default 1..4). */
export const arbShape = ({ minRank = 0, maxRank = 3, minDim = 1, maxDim = 4 }: ShapeOptions = {}): fc.Arbitrary<number[]> =>
  fc.array(fc.integer({ min: minDim, max: maxDim }), { minLength: minRank, maxLength: maxRank });

/**
 * Two shapes that broadcast together: a full shape, and for each operand a suffix of it with
 * some axes shrunk to 1.
 */
export const arbBroadcastShapes = (opts: ShapeOptions = {}): fc.Arbitrary<[number[], number[]]> =>
  arbShape(opts).chain((full) => {
    const derived = fc
      .tuple(fc.integer({ min: 0, max: full.length }), fc.array(fc.boolean(), { minLength: full.length, maxLength: full.length }))
      .map(([drop, ones]) => full.map((d, i) => (ones[i] ? 1 : d)).slice(drop));
    return fc.tuple(derived, derived);
  });

/** What arbTensor draws: the dtype (default f64) and the value range. */
export interface TensorOptions {
  readonly dtype?: DType;
  /** Value range for floats (default −2..2) and ints (default −5..5). */
  readonly min?: number;
  readonly max?: number;
  /** Keep values at least this far from zero in magnitude (for log, division, kinks). */
  readonly awayFromZero?: number;
}

/** A HostTensor of `shape` with values in [min, max]. */
export function arbTensor(shape: Shape, opts: TensorOptions = {}): fc.Arbitrary<HostTensor> {
  const dtype = opts.dtype ?? "f64";
  const n = shape.reduce((a, b) => a * b, 1);
  if (dtype === "bool") return fc.array(fc.boolean(), { minLength: n, maxLength: n }).map((v) => hostTensor(v.map(Number), shape, "bool"));
  if (dtype === "i32")
    return fc.array(fc.integer({ min: opts.min ?? -5, max: opts.max ?? 5 }), { minLength: n, maxLength: n }).map((v) => hostTensor(v, shape, "i32"));
  const [min, max, away] = [opts.min ?? -2, opts.max ?? 2, opts.awayFromZero ?? 0];
  const value = fc.double({ min, max, noNaN: true, noDefaultInfinity: true }).map((v) => (Math.abs(v) < away ? (v < 0 ? -away : away) : v));
  return fc.array(value, { minLength: n, maxLength: n }).map((v) => hostTensor(v, shape, dtype));
}

/** A random shape and a tensor of it. */
export const arbShapedTensor = (shapeOpts: ShapeOptions = {}, tensorOpts: TensorOptions = {}): fc.Arbitrary<HostTensor> =>
  arbShape(shapeOpts).chain((s) => arbTensor(s, tensorOpts));
