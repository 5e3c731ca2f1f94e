import { ArgumentError, ShapeError, describeValue } from "./errors.js";

/** A static shape: the size of each axis, outermost first. */
export type Shape = readonly number[];

/** The number of elements of `shape`: the product of its sizes (1 for a scalar, []). */
export const sizeOf = (shape: Shape): number => shape.reduce((a, b) => a * b, 1);

export const shapesEqual = (a: Shape, b: Shape): boolean => a.length === b.length && a.every((d, i) => d === b[i]);

/** Row-major strides in elements. */
export function stridesOf(shape: Shape): number[] {
  const s = new Array<number>(shape.length);
  let acc = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    s[i] = acc;
    acc *= shape[i];
  }
  return s;
}

/** NumPy broadcasting of several shapes; throws a ShapeError naming `op` when they do not broadcast. */
export function broadcastShapes(op: string, ...shapes: Shape[]): number[] {
  const rank = Math.max(0, ...shapes.map((s) => s.length));
  const out = new Array<number>(rank).fill(1);
  for (const s of shapes) {
    for (let i = 0; i < s.length; i++) {
      const o = rank - s.length + i;
      const d = s[i];
      if (out[o] === 1) out[o] = d;
      else if (d !== 1 && d !== out[o])
        throw new ShapeError(
          op,
          shapes,
          `shapes do not broadcast at axis ${o - rank} (${out[o]} vs ${d})`,
          "Sizes must match or be 1; reshape or broadcastTo an operand first",
        );
    }
  }
  return out;
}

/** Normalises a possibly negative axis against `rank`; throws naming `op` if it is out of range. */
export function normalizeAxis(op: string, axis: number, rank: number): number {
  if (!Number.isInteger(axis) || axis < -rank || axis >= rank)
    throw new ArgumentError(op, `axis ${axis} is out of range for a tensor of rank ${rank} (valid: ${-rank}..${rank - 1})`);
  return axis < 0 ? axis + rank : axis;
}

/** Normalised, sorted, de-duplicated axes; `undefined` means every axis. */
export function normalizeAxes(op: string, axes: number | readonly number[] | undefined, rank: number): number[] {
  if (axes === undefined) return Array.from({ length: rank }, (_, i) => i);
  const list = typeof axes === "number" ? [axes] : axes;
  const norm = list.map((a) => normalizeAxis(op, a, rank));
  if (new Set(norm).size !== norm.length) throw new ArgumentError(op, `repeated axis in [${list.join(",")}]`);
  return norm.sort((a, b) => a - b);
}

/** Checks a static shape: a list of non-negative integer sizes (a null or a string one is named, not iterated). */
export function checkShape(op: string, shape: Shape): void {
  if (shape === null || typeof shape !== "object") throw new ArgumentError(op, `the shape must be a list of sizes, got ${describeValue(shape)}`);
  for (const d of shape) if (!Number.isInteger(d) || d < 0) throw new ArgumentError(op, `shape [${shape.join(",")}] must hold non-negative integers`);
}
