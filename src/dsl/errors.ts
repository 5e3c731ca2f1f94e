import * as E from "fp-ts/lib/Either.js";
import type { DType } from "./dtype.js";

/** The base of every error wgrad throws on bad input. */
export class WgradError extends Error {
  override readonly name: string = "WgradError";
}

export const formatShape = (s: readonly number[]): string => `[${s.join(",")}]`;

/**
 * What a wrong value is, in words, for error messages: `the string "ab"`, `null`, `a list of 2`,
 * `an object with keys {w, b}`, `a HostTensor`. Messages say what was given, not only what was expected.
 */
export function describeValue(x: unknown): string {
  if (x === null || x === undefined) return String(x);
  if (typeof x === "string") return `the string ${JSON.stringify(x.length > 40 ? `${x.slice(0, 40)}…` : x)}`;
  if (typeof x === "number" || typeof x === "boolean" || typeof x === "bigint") return `the ${typeof x} ${String(x)}`;
  if (typeof x === "function") return "a function";
  if (typeof x !== "object") return `a ${typeof x}`;
  if (Array.isArray(x)) return `a list of ${x.length}`;
  const proto: unknown = Object.getPrototypeOf(x);
  if (proto === Object.prototype || proto === null) return `an object with keys {${Object.keys(x).join(", ")}}`;
  const name = typeof x.constructor === "function" ? x.constructor.name : "";
  return name ? `a ${name}` : "an object";
}

/**
 * A shape mismatch found while building a graph. `op` names the operation, `shapes` the
 * operand shapes involved, and the message says what to do about it.
 */
export class ShapeError extends WgradError {
  override readonly name = "ShapeError";
  constructor(
    readonly op: string,
    readonly shapes: readonly (readonly number[])[],
    detail: string,
    hint?: string,
  ) {
    super(`${op}: ${detail} (operand shapes ${shapes.map(formatShape).join(", ") || "none"})${hint ? `. ${hint}` : ""}`);
  }
}

/** A dtype mismatch found while building a graph. */
export class DTypeError extends WgradError {
  override readonly name = "DTypeError";
  constructor(
    readonly op: string,
    readonly dtypes: readonly DType[],
    detail: string,
    hint?: string,
  ) {
    super(`${op}: ${detail} (operand dtypes ${dtypes.join(", ")})${hint ? `. ${hint}` : ""}`);
  }
}

/** A bad argument that is neither a shape nor a dtype (an axis out of range, a negative size...). */
export class ArgumentError extends WgradError {
  override readonly name = "ArgumentError";
  constructor(
    readonly op: string,
    detail: string,
  ) {
    super(`${op}: ${detail}`);
  }
}

/**
 * Runs a graph-building thunk and returns its errors as a value instead of throwing them:
 * `pipe(attempt(() => matmul(a, b)), E.map(...))`. Errors that are not wgrad's are rethrown.
 */
export function attempt<A>(build: () => A): E.Either<WgradError, A> {
  try {
    return E.right(build());
  } catch (e) {
    if (e instanceof WgradError) return E.left(e);
    throw e;
  }
}
