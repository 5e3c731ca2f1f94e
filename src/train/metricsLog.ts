/**
 * `metrics.jsonl`, a pre-training run's log: one JSON row per training step (`kind: "step"`), per
 * epoch's token usage (`"tokens"`) and per evaluation (`"eval"`), appended as the run goes, each
 * with `seconds`, the wall-clock time the run had spent when the row was written, summed over
 * every process that ran it (a run killed and resumed is several processes).
 *
 * A killed run leaves rows written after its last checkpoint, and maybe a torn last line (a row cut
 * off mid-write). Resuming reads the log back (`parseMetricsLog`), keeps the rows up to the
 * checkpoint (`rowsUpTo`: the steps before its step, the epochs before its epoch), and replaces the
 * file by them before it writes anything new (`MetricsWriter`, atomically), so that after any
 * sequence of kills and resumes the log holds the rows of an uninterrupted run, in its order.
 */
import { appendFileSync, renameSync, unlinkSync, writeFileSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { WgradError } from "../dsl/errors.js";
import type { EvalLog, StepLog, TokenLog } from "./pretrain.js";

/** When a row was written: the run's seconds so far, over all its processes (a timing). */
interface Timed {
  readonly seconds?: number;
}

export type StepRow = { readonly kind: "step" } & StepLog & Timed;
export type TokensRow = { readonly kind: "tokens" } & TokenLog & Timed;
export type EvalRow = { readonly kind: "eval" } & EvalLog & Timed;
export type MetricsRow = StepRow | TokensRow | EvalRow;

/**
 * The fields of a metrics.jsonl row that are timings: they differ between two runs with the same
 * settings, and between an uninterrupted run and one killed and resumed. Every other field of
 * every row is fixed by the settings (on the same backend).
 */
export const ROW_TIMING_FIELDS = ["imagesPerSecond", "seconds"] as const;

/** A line of metrics.jsonl that is not a row this program writes. The message names the file and the line (from 1). */
export class MetricsLogError extends WgradError {
  override readonly name = "MetricsLogError";
  constructor(
    readonly file: string,
    readonly line: number,
    detail: string,
  ) {
    super(`${file} line ${line}: ${detail}. The run's log was edited or damaged: restore that line, or delete it to resume without it`);
  }
}

export interface LoggedRow {
  /** 1-based line number in the file. */
  readonly line: number;
  readonly text: string;
  readonly row: MetricsRow;
}

export interface ParsedLog {
  readonly rows: readonly LoggedRow[];
  /** A last line cut off mid-write (no newline after it, not JSON): a process killed while appending it. */
  readonly torn?: { readonly line: number; readonly text: string };
}

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);
const isCount = (v: unknown): v is number => typeof v === "number" && Number.isSafeInteger(v) && v >= 0;
const isNumberArray = (v: unknown): boolean => Array.isArray(v) && v.every((x) => typeof x === "number");
const show = (v: unknown) => (v === undefined ? "missing" : JSON.stringify(v));

/** The row a line holds, or what is wrong with it. */
function rowOf(value: unknown): MetricsRow | string {
  if (!isRecord(value)) return `holds ${JSON.stringify(value)}, not a JSON object`;
  const { kind } = value;
  if (kind !== "step" && kind !== "tokens" && kind !== "eval") return `has kind ${show(kind)}, not "step", "tokens" or "eval"`;
  if (!isCount(value.epoch)) return `a ${kind} row whose epoch is ${show(value.epoch)}, not a non-negative integer`;
  if (value.seconds !== undefined && typeof value.seconds !== "number") return `a ${kind} row whose seconds are ${show(value.seconds)}, not a number`;
  if (kind === "step") {
    if (!isCount(value.step)) return `a step row whose step is ${show(value.step)}, not a non-negative integer`;
    for (const f of ["loss", "cls", "patch"]) if (typeof value[f] !== "number") return `a step row whose ${f} is ${show(value[f])}, not a number`;
  }
  if (kind === "tokens")
    for (const f of ["used", "vocabulary", "perplexity"])
      if (!isNumberArray(value[f])) return `a tokens row whose ${f} is ${show(value[f])}, not a list of numbers`;
  if (kind === "eval")
    for (const f of ["knnTeacher", "knnStudent"]) if (typeof value[f] !== "number") return `an eval row whose ${f} is ${show(value[f])}, not a number`;
  return value as unknown as MetricsRow;
}

/**
 * Parses metrics.jsonl's text; `file` names it in errors. Blank lines are skipped. A last line
 * without a newline that is not JSON is torn (returned apart, to be dropped); any other line that
 * is not a row is a `MetricsLogError` naming the file and the line.
 */
export function parseMetricsLog(text: string, file: string): ParsedLog {
  const lines = text.split("\n");
  const last = lines.pop() ?? ""; // "" when the text ends with a newline
  const rows: LoggedRow[] = [];
  const take = (t: string, line: number, parsed: unknown) => {
    const row = rowOf(parsed);
    if (typeof row === "string") throw new MetricsLogError(file, line, row);
    rows.push({ line, text: t, row });
  };
  lines.forEach((t, i) => {
    if (!t.trim()) return;
    let parsed: unknown;
    try {
      parsed = JSON.parse(t);
    } catch (e) {
      throw new MetricsLogError(file, i + 1, `is not JSON (${e instanceof Error ? e.message : String(e)})`);
    }
    take(t, i + 1, parsed);
  });
  if (!last.trim()) return { rows };
  let parsed: unknown;
  try {
    parsed = JSON.parse(last);
  } catch {
    return { rows, torn: { line: lines.length + 1, text: last } };
  }
  take(last, lines.length + 1, parsed); // complete, only its newline missing
  return { rows };
}

/** What a resumed run keeps of the log. */
export interface ResumedLog {
  /** The rows up to the checkpoint, one per step, epoch's tokens and evaluation, in the order written. */
  readonly rows: readonly MetricsRow[];
  /** Their lines, as they were in the file. */
  readonly lines: readonly string[];
  /** The run's seconds so far: the most any row recorded, rows after the checkpoint included (that time was spent). */
  readonly seconds: number;
  /** Rows written after the checkpoint, dropped. */
  readonly dropped: number;
  /** Rows that repeat an earlier one's step or epoch (a log resumed by an older version without truncating it), the later kept. */
  readonly duplicates: number;
  /** Whether the file must be rewritten to hold just `lines`. */
  readonly changed: boolean;
}

const keyOf = (r: MetricsRow) => (r.kind === "step" ? `step ${r.step}` : `${r.kind} ${r.epoch}`);

/**
 * The rows of a log up to a checkpoint written after `epoch` epochs and `step` steps: step rows
 * of steps before `step`, tokens and eval rows of epochs before `epoch`.
 */
export function rowsUpTo(log: ParsedLog, at: { readonly epoch: number; readonly step: number }): ResumedLog {
  const kept = new Map<string, LoggedRow>();
  let seconds = 0;
  let dropped = 0;
  let duplicates = 0;
  for (const r of log.rows) {
    seconds = Math.max(seconds, r.row.seconds ?? 0);
    if (r.row.kind === "step" ? r.row.step >= at.step : r.row.epoch >= at.epoch) {
      dropped++;
      continue;
    }
    const key = keyOf(r.row);
    if (kept.delete(key)) duplicates++;
    kept.set(key, r);
  }
  const rows = [...kept.values()];
  return {
    rows: rows.map((r) => r.row),
    lines: rows.map((r) => r.text),
    seconds,
    dropped,
    duplicates,
    changed: dropped > 0 || duplicates > 0 || log.torn !== undefined,
  };
}

/** The step log a row records (for the plots and the report): its fields without `kind` and `seconds`. */
export function stepLogOf(r: StepRow): StepLog {
  const { kind: _k, seconds: _s, ...s } = r;
  return s;
}

/** An eval row as the report lists it: epoch, images (where recorded), the two accuracies, nothing else. */
export const evalLogOf = (r: EvalRow): EvalLog => ({
  epoch: r.epoch,
  ...(r.images !== undefined ? { images: r.images } : {}),
  knnTeacher: r.knnTeacher,
  knnStudent: r.knnStudent,
});

/** A tokens row as the report lists it. */
export const tokenLogOf = (r: TokensRow): TokenLog => ({ epoch: r.epoch, used: r.used, vocabulary: r.vocabulary, perplexity: r.perplexity });

/** Replaces `path` by `text` atomically: a temp file `.<name>.<pid>.tmp` beside it, then a rename (the scheme of src/io/safetensors.ts, whose stale leftovers a run removes). */
export function writeAtomically(path: string, text: string): void {
  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.tmp`);
  try {
    writeFileSync(tmp, text);
    renameSync(tmp, path);
  } catch (e) {
    try {
      unlinkSync(tmp);
    } catch {
      // never created, or already renamed
    }
    throw e;
  }
}

/**
 * Appends rows to metrics.jsonl, each stamped with `seconds` (the run's time so far, from `clock`).
 * Given `rewrite` (a resumed run's kept lines), the first append, or `flush`, first replaces the
 * file by those lines, atomically: until then the file stays as the killed run left it, so a
 * process killed again before it logs anything loses nothing a later resume needs (the time spent
 * after the checkpoint included).
 */
export class MetricsWriter {
  private pending: readonly string[] | undefined;

  constructor(
    readonly path: string,
    private readonly clock: () => number,
    rewrite?: readonly string[],
  ) {
    this.pending = rewrite;
  }

  append(row: MetricsRow): void {
    const line = `${JSON.stringify({ ...row, seconds: Math.round(1000 * this.clock()) / 1000 })}\n`;
    if (this.pending) this.replace(line);
    else appendFileSync(this.path, line);
  }

  /** Writes a pending rewrite (a resumed run that ends without logging a row). */
  flush(): void {
    if (this.pending) this.replace("");
  }

  private replace(after: string): void {
    writeAtomically(this.path, this.pending!.map((l) => `${l}\n`).join("") + after);
    this.pending = undefined;
  }
}
