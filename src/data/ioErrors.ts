/** Readable io-ts decode errors that name the field at fault. */
import type * as t from "io-ts";

/** The dotted path of a validation error, e.g. `version` or `counts.train`. */
const pathOf = (e: t.ValidationError): string =>
  e.context
    .map((c) => c.key)
    .filter((k) => k !== "")
    .join(".") || "(root)";

/** One line per failing field: `version: expected 1, got 2`. */
export function formatDecodeErrors(errors: t.Errors): string {
  const lines = errors.map((e) => {
    const expected = e.context[e.context.length - 1]?.type.name ?? "a valid value";
    const got = e.value === undefined ? "nothing" : JSON.stringify(e.value)?.slice(0, 60);
    return e.message ?? `${pathOf(e)}: expected ${expected}, got ${got}`;
  });
  return [...new Set(lines)].join("; ");
}
