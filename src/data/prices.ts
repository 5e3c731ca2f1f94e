/**
 * Real prices for the regimes variant: a CSV of daily closes in long format (one row per date and
 * asset), read strictly so that a bad row stops the run with the file, line and field at fault;
 * log returns from the closes; and the simulator's market written in the same format (the test
 * fixture test/fixtures/prices-sample.csv).
 *
 * The format (RFC 4180 CSV, UTF-8, a leading byte-order mark allowed, CRLF or LF line ends):
 * - a header row naming the columns `date`, `asset` and `close` in any order and any letter case;
 *   other columns are ignored;
 * - one row per (date, asset): an ISO date YYYY-MM-DD, the asset's name (any text, compared after
 *   trimming spaces), and the close, a finite number above 0;
 * - fields may be quoted ("…", a quote inside written twice), so a name may hold a comma;
 * - every row has as many fields as the header; empty lines are skipped;
 * - no (date, asset) pair twice, and every asset has a close on every date that appears in the
 *   file (strict: nothing is forward-filled, since a filled price is a made-up zero return);
 * - rows may come in any order: dates are sorted, assets keep the order of their first row.
 */
import { readFileSync } from "node:fs";
import { DataError } from "./errors.js";
import type { Market } from "./market.js";

/** Daily closes of some assets, all on the same sorted dates. */
export interface PriceTable {
  /** Where the table came from (the file's path), as error messages name it. */
  readonly source: string;
  /** Asset names in the order of their first row in the file. */
  readonly assets: readonly string[];
  /** The dates, ISO YYYY-MM-DD, ascending, each once. */
  readonly dates: readonly string[];
  /** Closes, asset-major [assets, dates]. */
  readonly closes: Float64Array;
}

/** One CSV record: its fields and the line it starts on (1-based). */
interface CsvRecord {
  readonly line: number;
  readonly fields: readonly string[];
}

function fail(message: string): never {
  throw new DataError("bad-source-data", message);
}

/** RFC 4180 records; a quote that opens and never closes, or text after a closing quote, is refused with its line. */
function csvRecords(text: string, source: string): CsvRecord[] {
  const records: CsvRecord[] = [];
  let i = text.charCodeAt(0) === 0xfeff ? 1 : 0;
  let line = 1;
  while (i < text.length) {
    const start = line;
    const fields: string[] = [];
    for (;;) {
      let field = "";
      if (text[i] === '"') {
        const opened = line;
        i++;
        for (;;) {
          if (i >= text.length)
            fail(`${source} line ${opened}: a quoted field opened here never closes; end it with a " (a quote inside a field is written "")`);
          const ch = text[i];
          if (ch === '"') {
            if (text[i + 1] === '"') {
              field += '"';
              i += 2;
              continue;
            }
            i++;
            break;
          }
          if (ch === "\n" || (ch === "\r" && text[i + 1] !== "\n")) line++;
          field += ch;
          i++;
        }
        if (i < text.length && text[i] !== "," && text[i] !== "\n" && text[i] !== "\r")
          fail(`${source} line ${line}: text after the closing quote of field ${fields.length + 1}; quote the whole field, writing a quote inside it as ""`);
      } else {
        while (i < text.length && text[i] !== "," && text[i] !== "\n" && text[i] !== "\r") {
          if (text[i] === '"')
            fail(`${source} line ${line}: a quote inside unquoted field ${fields.length + 1}; quote the whole field, writing the quote as ""`);
          field += text[i];
          i++;
        }
      }
      fields.push(field);
      if (text[i] === ",") {
        i++;
        continue;
      }
      // End of the record: CRLF, LF, a lone CR, or the end of the text.
      if (text[i] === "\r") i++;
      if (text[i] === "\n") i++;
      line++;
      break;
    }
    if (!(fields.length === 1 && fields[0].trim() === "")) records.push({ line: start, fields });
  }
  return records;
}

const ISO_DATE = /^(\d{4})-(\d{2})-(\d{2})$/;
const NUMBER = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;

function isCalendarDate(s: string): boolean {
  const m = ISO_DATE.exec(s);
  if (!m) return false;
  const [y, mo, d] = [Number(m[1]), Number(m[2]), Number(m[3])];
  const t = new Date(Date.UTC(y, mo - 1, d));
  return t.getUTCFullYear() === y && t.getUTCMonth() === mo - 1 && t.getUTCDate() === d;
}

const COLUMNS = ["date", "asset", "close"] as const;

/**
 * Reads a CSV of closes (the format in this module's comment). `source` names the text in errors
 * (a path). Throws a DataError (kind "bad-source-data") whose message names the source, the line
 * and the column at fault and what to change, at the first problem found.
 */
export function parsePricesCsv(text: string, source: string): PriceTable {
  const records = csvRecords(text, source);
  if (records.length === 0) fail(`${source}: the file is empty; it needs a header row "date,asset,close" and one row per date and asset`);
  const header = records[0];
  const names = header.fields.map((f) => f.trim().toLowerCase());
  const col = {} as Record<(typeof COLUMNS)[number], number>;
  for (const c of COLUMNS) {
    const at = names.indexOf(c);
    if (at < 0)
      fail(
        `${source} line ${header.line}: the header has no "${c}" column (it names ${header.fields.map((f) => JSON.stringify(f)).join(", ")}); the first row must name the columns date, asset and close`,
      );
    if (names.indexOf(c, at + 1) >= 0) fail(`${source} line ${header.line}: the header names the "${c}" column twice; keep one`);
    col[c] = at;
  }
  if (records.length === 1) fail(`${source}: no price rows after the header (line ${header.line}); add one row per date and asset`);

  const assetIndex = new Map<string, number>();
  const dateSet = new Set<string>();
  // (asset, date) → close and the line it came from.
  const rows = new Map<string, { close: number; line: number }>();
  const dateLine = new Map<string, number>();
  for (const r of records.slice(1)) {
    const at = `${source} line ${r.line}`;
    if (r.fields.length !== header.fields.length)
      fail(
        `${at}: ${r.fields.length} field${r.fields.length === 1 ? "" : "s"} where the header (line ${header.line}) has ${header.fields.length}; every row needs one value per column, and a value holding a comma must be quoted ("…")`,
      );
    const date = r.fields[col.date].trim();
    const asset = r.fields[col.asset].trim();
    const closeText = r.fields[col.close].trim();
    if (!isCalendarDate(date)) fail(`${at}, column date: ${JSON.stringify(date)} is not a date written YYYY-MM-DD (e.g. 2024-03-01)`);
    if (asset === "") fail(`${at}, column asset: the asset name is empty; name the asset this close belongs to`);
    const close = NUMBER.test(closeText) ? Number(closeText) : NaN;
    if (!Number.isFinite(close)) fail(`${at}, column close: ${JSON.stringify(closeText)} is not a number; write the close as a plain number such as 101.25`);
    if (!(close > 0))
      fail(`${at}, column close: ${closeText} is not above 0; closes must be positive prices (log returns are taken), so fix or remove the row`);
    const key = `${asset}\u0000${date}`;
    const earlier = rows.get(key);
    if (earlier)
      fail(`${at}: a second close for asset ${JSON.stringify(asset)} on ${date} (the first is on line ${earlier.line}); keep one row per date and asset`);
    rows.set(key, { close, line: r.line });
    if (!assetIndex.has(asset)) assetIndex.set(asset, assetIndex.size);
    if (!dateSet.has(date)) {
      dateSet.add(date);
      dateLine.set(date, r.line);
    }
  }
  const assets = [...assetIndex.keys()];
  const dates = [...dateSet].sort();
  if (dates.length < 2) fail(`${source}: all rows are on ${dates[0]}; returns need closes on at least 2 dates`);
  const closes = new Float64Array(assets.length * dates.length);
  for (let a = 0; a < assets.length; a++)
    for (let t = 0; t < dates.length; t++) {
      const row = rows.get(`${assets[a]}\u0000${dates[t]}`);
      if (!row)
        fail(
          `${source}: asset ${JSON.stringify(assets[a])} has no close on ${dates[t]} (which line ${dateLine.get(dates[t])} has for another asset); every asset needs a close on every date, so add the row or remove ${dates[t]} for all assets`,
        );
      closes[a * dates.length + t] = row.close;
    }
  return { source, assets, dates, closes };
}

/** Reads and parses a prices CSV file (parsePricesCsv); a file that cannot be read is a DataError of kind "read-failed". */
export function loadPricesCsv(path: string): PriceTable {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (e) {
    throw new DataError(
      "read-failed",
      `could not read the prices file ${path}: ${(e as Error).message}; check the path (a CSV with columns date, asset, close)`,
    );
  }
  return parsePricesCsv(text, path);
}

/** Log returns ln(close[t] / close[t − 1]), asset-major [assets, dates − 1]: step t is the return into date t + 1. */
export function logReturns(p: PriceTable): Float32Array {
  const D = p.dates.length;
  const T = D - 1;
  const out = new Float32Array(p.assets.length * T);
  for (let a = 0; a < p.assets.length; a++) for (let t = 0; t < T; t++) out[a * T + t] = Math.log(p.closes[a * D + t + 1] / p.closes[a * D + t]);
  return out;
}

/** How marketToCsv names, prices and prints: asset names, the first close, significant digits. */
export interface MarketCsvOptions {
  /** The assets' names; default asset0, asset1, …. */
  readonly names?: readonly string[];
  /** Every asset's close on the first date; default 100. */
  readonly initialClose?: number;
  /** Significant digits of the printed closes; default 10. */
  readonly digits?: number;
}

/**
 * A simulated market as a prices CSV: closes on `steps + 1` consecutive calendar days from
 * `startDate` (YYYY-MM-DD), the first at `initialClose`, each next one the last times exp(return),
 * rows ordered by date then asset. Parsing it back and taking logReturns gives the market's
 * returns to the printed precision.
 */
export function marketToCsv(market: Pick<Market, "config" | "returns">, startDate: string, o: MarketCsvOptions = {}): string {
  const { assets: A, steps: T } = market.config;
  if (!isCalendarDate(startDate)) throw new RangeError(`marketToCsv: startDate ${JSON.stringify(startDate)} is not a date written YYYY-MM-DD`);
  const names = o.names ?? Array.from({ length: A }, (_, a) => `asset${a}`);
  if (names.length !== A) throw new RangeError(`marketToCsv: ${names.length} names for ${A} assets`);
  const digits = o.digits ?? 10;
  const quote = (s: string) => (/[",\r\n]/.test(s) || s !== s.trim() ? `"${s.replace(/"/g, '""')}"` : s);
  const level = new Float64Array(A).fill(Math.log(o.initialClose ?? 100));
  const t0 = Date.parse(`${startDate}T00:00:00Z`);
  const lines = ["date,asset,close"];
  for (let t = 0; t <= T; t++) {
    const date = new Date(t0 + t * 86_400_000).toISOString().slice(0, 10);
    for (let a = 0; a < A; a++) {
      if (t > 0) level[a] += market.returns[a * T + t - 1];
      lines.push(`${date},${quote(names[a])},${Number(Math.exp(level[a]).toPrecision(digits))}`);
    }
  }
  return lines.join("\n") + "\n";
}
