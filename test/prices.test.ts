/** Real prices for `wgrad regimes --prices`: the CSV reader's rules and errors, the simulator's fixture, and a tiny run on it. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import fc from "fast-check";
import { DataError, logReturns, loadPricesCsv, marketToCsv, parsePricesCsv, simulateMarket } from "../src/data/index.js";
import { ConfigError } from "../src/train/config.js";
import { PRICES_SAMPLE, pricesSampleCsv } from "../scripts/prices-sample.js";
import { TINY_REGIMES } from "./tinyRun.js";

const FIXTURE = fileURLToPath(new URL("./fixtures/prices-sample.csv", import.meta.url));

test("the fixture is the simulator's market written by marketToCsv, and parses back to its closes and returns", () => {
  const text = readFileSync(FIXTURE, "utf8");
  assert.equal(text, pricesSampleCsv(), "test/fixtures/prices-sample.csv is stale: rerun node --import tsx scripts/prices-sample.ts");
  const p = loadPricesCsv(FIXTURE);
  const m = simulateMarket(PRICES_SAMPLE.seed, PRICES_SAMPLE.market);
  const { assets: A, steps: T } = m.config;
  assert.deepEqual(p.assets, ["asset0", "asset1", "asset2"]);
  assert.equal(p.dates.length, T + 1);
  assert.equal(p.dates[0], "2020-01-01");
  assert.equal(p.dates[T], "2020-10-27");
  // The closes the simulator's returns give, to the printed 10 significant digits.
  for (let a = 0; a < A; a++) {
    let level = Math.log(100);
    for (let t = 0; t <= T; t++) {
      if (t > 0) level += m.returns[a * T + t - 1];
      const got = p.closes[a * (T + 1) + t];
      assert.ok(Math.abs(got / Math.exp(level) - 1) <= 5e-10, `asset ${a}, date ${t}: ${got} against ${Math.exp(level)}`);
    }
  }
  const r = logReturns(p);
  assert.equal(r.length, A * T);
  assert.ok(
    r.every((v, i) => Math.abs(v - m.returns[i]) < 1e-8),
    "log returns of the parsed closes are the simulator's",
  );
});

test("rows in any order, any column order and case, extra columns, quoting and CRLF: dates sorted, assets in order of first row", () => {
  const a = parsePricesCsv("date,asset,close\n2024-01-02,X,10\n2024-01-02,Y,20\n2024-01-03,X,11\n2024-01-03,Y,19\n", "a.csv");
  const b = parsePricesCsv(
    '\ufeffVolume,Close,ASSET, Date \r\n5,19,Y,2024-01-03\r\n1,"11",X,2024-01-03\r\n\r\n7,20,"Y",2024-01-02\r\n0,1e1,X,2024-01-02',
    "b.csv",
  );
  assert.deepEqual(a, { source: "a.csv", assets: ["X", "Y"], dates: ["2024-01-02", "2024-01-03"], closes: Float64Array.from([10, 11, 20, 19]) });
  assert.deepEqual(b, { source: "b.csv", assets: ["Y", "X"], dates: ["2024-01-02", "2024-01-03"], closes: Float64Array.from([20, 19, 10, 11]) });
  // A quoted name holds commas, quotes and a line break; a record spanning lines keeps later line numbers right.
  const acme = '2024-01-02,"Acme, ""Inc""\nB",5\n2024-01-03,"Acme, ""Inc""\nB",6\n2024-01-02,x,7\n';
  const q = parsePricesCsv(`date,asset,close\n${acme}2024-01-03,x,8\n`, "q.csv");
  assert.deepEqual(q.assets, ['Acme, "Inc"\nB', "x"]);
  assert.deepEqual(Array.from(q.closes), [5, 6, 7, 8]);
  assert.throws(
    () => parsePricesCsv(`date,asset,close\n${acme}2024-01-03,x,-1\n`, "q.csv"),
    (e: unknown) => e instanceof DataError && /^q\.csv line 7, column close: -1 is not above 0/.test(e.message),
  );
});

test("bad input is refused with a DataError naming the file, the line and the field", () => {
  const ok = ["date,asset,close", "2024-01-02,A,10", "2024-01-02,B,20", "2024-01-03,A,11", "2024-01-03,B,21"];
  // Line 4 (the third data row) replaced, or the whole text given.
  const cases: readonly [string, string | readonly string[], RegExp][] = [
    ["missing column", ["date,asset,price", ...ok.slice(1)], /^bad\.csv line 1: the header has no "close" column \(it names "date", "asset", "price"\)/],
    ["column named twice", ["date,asset,close,Close", ...ok.slice(1).map((l) => `${l},1`)], /line 1: the header names the "close" column twice/],
    ["bad date", "2024-1-03,A,11", /^bad\.csv line 4, column date: "2024-1-03" is not a date written YYYY-MM-DD/],
    ["impossible date", "2023-02-29,A,11", /line 4, column date: "2023-02-29" is not a date/],
    ["non-numeric close", "2024-01-03,A,eleven", /^bad\.csv line 4, column close: "eleven" is not a number/],
    ["empty close", "2024-01-03,A,", /line 4, column close: "" is not a number/],
    ["infinite close", "2024-01-03,A,1e999", /line 4, column close: "1e999" is not a number/],
    ["zero close", "2024-01-03,A,0", /^bad\.csv line 4, column close: 0 is not above 0; closes must be positive/],
    ["negative close", "2024-01-03,A,-3.5", /line 4, column close: -3.5 is not above 0/],
    ["empty asset", "2024-01-03, ,11", /line 4, column asset: the asset name is empty/],
    ["duplicate row", "2024-01-02,A,10.5", /^bad\.csv line 4: a second close for asset "A" on 2024-01-02 \(the first is on line 2\)/],
    ["ragged row", "2024-01-03,A,11,extra", /^bad\.csv line 4: 4 fields where the header \(line 1\) has 3; .*quoted/],
    ["short row", "2024-01-03,A", /line 4: 2 fields where the header \(line 1\) has 3/],
    ["unquoted comma", "2024-01-03,Acme, Inc,11", /line 4: 4 fields where the header \(line 1\) has 3/],
    ["quote inside a field", '2024-01-03,A"x,11', /line 4: a quote inside unquoted field 2/],
    ["text after a closing quote", '2024-01-03,"A"x,11', /line 4: text after the closing quote of field 2/],
    ["unclosed quote", '2024-01-03,"A,11', /^bad\.csv line 4: a quoted field opened here never closes/],
    ["missing pair", [...ok.slice(0, 3), ...ok.slice(4)], /^bad\.csv: asset "A" has no close on 2024-01-03 \(which line 4 has for another asset\)/],
    ["one date", ok.slice(0, 3), /all rows are on 2024-01-02; returns need closes on at least 2 dates/],
    ["header only", ok.slice(0, 1), /no price rows after the header/],
    ["empty file", [], /^bad\.csv: the file is empty/],
  ];
  for (const [name, change, pattern] of cases) {
    const text = typeof change === "string" ? [...ok.slice(0, 3), change, ...ok.slice(4)].join("\n") : change.join("\n");
    assert.throws(
      () => parsePricesCsv(text, "bad.csv"),
      (e: unknown) => e instanceof DataError && e.kind === "bad-source-data" && pattern.test(e.message),
      `${name}: ${JSON.stringify(text)}`,
    );
  }
  assert.throws(
    () => loadPricesCsv(join(tmpdir(), "no-such-prices.csv")),
    (e: unknown) => e instanceof DataError && e.kind === "read-failed" && /could not read the prices file .*no-such-prices\.csv/.test(e.message),
  );
});

test("any bad close on any data line is refused naming that line (property)", () => {
  const bad = fc.oneof(fc.constantFrom("0", "-1", "abc", "", "NaN", "Infinity", "1,5", "1e400", "0x10", "--2"), fc.double({ max: 0, noNaN: true }).map(String));
  fc.assert(
    fc.property(fc.integer({ min: 2, max: 4 }), fc.integer({ min: 2, max: 6 }), fc.nat(), bad, (assets, dates, at, close) => {
      const rows: string[] = [];
      for (let t = 0; t < dates; t++) for (let a = 0; a < assets; a++) rows.push(`2024-03-${String(t + 1).padStart(2, "0")},A${a},${100 + t + a}`);
      const k = at % rows.length;
      const parts = rows[k].split(",");
      rows[k] = `${parts[0]},${parts[1]},${/[,]/.test(close) ? `"${close}"` : close}`;
      const line = k + 2;
      assert.throws(
        () => parsePricesCsv(["date,asset,close", ...rows].join("\n"), "p.csv"),
        (e: unknown) => e instanceof DataError && e.message.startsWith(`p.csv line ${line}, column close: `),
      );
    }),
  );
});

test("marketToCsv quotes names that need it, and what it writes parses back", () => {
  const m = simulateMarket(2, { ...simulateMarket(0).config, assets: 2, steps: 5 });
  const csv = marketToCsv(m, "2023-12-30", { names: ['Acme, "A"', "B"], initialClose: 50, digits: 12 });
  assert.match(csv, /^date,asset,close\n2023-12-30,"Acme, ""A""",50\n2023-12-30,B,50\n2023-12-31,/);
  const p = parsePricesCsv(csv, "m.csv");
  assert.deepEqual(p.dates, ["2023-12-30", "2023-12-31", "2024-01-01", "2024-01-02", "2024-01-03", "2024-01-04"]);
  assert.ok(logReturns(p).every((v, i) => Math.abs(v - m.returns[i]) < 1e-9));
  assert.throws(() => marketToCsv(m, "2023-13-01"), /startDate "2023-13-01" is not a date/);
});

const tiny = (outDir: string) => ({
  backend: "cpu" as const,
  outDir,
  prices: FIXTURE,
  heldOutAsset: 2,
  ...TINY_REGIMES,
});

test("wgrad regimes --prices on the fixture: trains, scores without labels, and says it has none", async () => {
  const { trainRegimes, DEFAULT_REGIMES } = await import("../src/train/regimes.js");
  const dir = mkdtempSync(join(tmpdir(), "wgrad-prices-"));
  try {
    const lines: string[] = [];
    const r = await trainRegimes({ ...DEFAULT_REGIMES, ...tiny(dir) }, { log: (l) => void lines.push(l) });
    assert.ok("prices" in r, "a prices run gives the label-free report");
    assert.equal(r.labels, "none");
    assert.match(r.note, /no true regimes or injected anomalies/);
    assert.match(lines[0], /asset0, asset1 over 2020-01-02 to .*asset2 \(asset 2\) held out/);
    assert.deepEqual(r.prices.assets, ["asset0", "asset1", "asset2"]);
    assert.equal(r.prices.heldOutAsset, "asset2");
    // 300 returns (2020 is a leap year): training on the first 225, into 2020-01-02 … 2020-08-13; 4 windows of 16 scored after.
    assert.deepEqual(r.prices.trainDates, ["2020-01-02", "2020-08-13"]);
    assert.deepEqual(r.prices.scoredDates, ["2020-08-14", "2020-10-16"]);
    assert.equal(r.heldOut.patches, 4 * 4);
    assert.equal(r.train.patches, 2 * 4 * 4);
    for (const s of [r.train, r.heldOut, r.baselines.randomInit.train, r.baselines.randomInit.heldOut]) {
      assert.ok(s.tokensUsed >= 1 && s.tokensUsed <= 4);
      assert.ok(s.perplexity >= 1 && s.perplexity <= s.tokensUsed + 1e-9);
      assert.ok(s.volatilityNmi >= 0 && s.volatilityNmi <= 1);
      assert.ok(s.surprise.median <= s.surprise.p90 && s.surprise.p90 <= s.surprise.max && Number.isFinite(s.surprise.mean));
      assert.ok(!("nmi" in s) && !("anomalyAuroc" in s));
    }
    assert.equal(r.mostSurprising.length, 10);
    const report = JSON.parse(readFileSync(join(dir, "report.json"), "utf8"));
    assert.equal(report.labels, "none");
    assert.doesNotMatch(JSON.stringify(report), /"nmi"|Auroc/);
    const tokens = readFileSync(join(dir, "tokens.csv"), "utf8").trim().split("\n");
    assert.equal(tokens[0], "asset,from,to,token,surprise");
    assert.equal(tokens.length, 1 + 3 * 4 * 4);
    assert.match(tokens[1], /^asset0,2020-08-14,2020-08-17,\d,[\d.e-]+$/);
    assert.equal(readFileSync(join(dir, "metrics.jsonl"), "utf8").trim().split("\n").length, 3);
    assert.ok(!existsSync(join(dir, "regimes.svg")), "no plot of true regimes for real prices");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a prices file the config does not fit is a ConfigError naming the file, before the out-dir is touched", async () => {
  const { trainRegimes, DEFAULT_REGIMES } = await import("../src/train/regimes.js");
  const dir = join(tmpdir(), `wgrad-prices-never-${process.pid}`);
  const run = (o: object) => trainRegimes({ ...DEFAULT_REGIMES, ...tiny(dir), ...o }, { log: () => {} });
  await assert.rejects(
    run({ heldOutAsset: 3 }),
    (e: unknown) =>
      e instanceof ConfigError && /heldOutAsset 3 must be below the 3 assets of .*prices-sample\.csv \(0 asset0, 1 asset1, 2 asset2\)/.test(e.message),
  );
  await assert.rejects(
    run({ window: 128, patchSize: 4 }),
    (e: unknown) => e instanceof ConfigError && /has 300 returns \(301 dates\).*smaller --window/.test(e.message),
  );
  await assert.rejects(run({ prices: join(dir, "missing.csv") }), (e: unknown) => e instanceof DataError && e.kind === "read-failed");
  assert.ok(!existsSync(dir));
});
