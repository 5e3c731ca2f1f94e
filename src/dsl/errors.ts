import * as E from "fp-ts/lib/Either.js";
import type { DType } from "./dtype.js";

/** The base of every error wgrad throws on bad input. */
export class WgradError extends Error {
  override readonly name: string = "WgradError";
}

export const formatShape = (s: readonly number[]): string => `[${s.join(",")}]`;

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
