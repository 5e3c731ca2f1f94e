/**
 * Writes test/fixtures/prices-sample.csv: the regimes simulator's market (seed 7, 3 assets, 300
 * steps) as daily closes from 2020-01-01, in the format `wgrad regimes --prices` reads.
 * Run: node --import tsx scripts/prices-sample.ts (test/prices.test.ts checks the file matches).
 */
import { writeFileSync } from "node:fs";
import { DEFAULT_MARKET, marketToCsv, simulateMarket } from "../src/data/index.js";

/** The fixture's market and first date. */
export const PRICES_SAMPLE = { seed: 7, market: { ...DEFAULT_MARKET, assets: 3, steps: 300 }, startDate: "2020-01-01" } as const;

/** The fixture's text. */
export const pricesSampleCsv = (): string => marketToCsv(simulateMarket(PRICES_SAMPLE.seed, PRICES_SAMPLE.market), PRICES_SAMPLE.startDate);

if (import.meta.url === `file://${process.argv[1]}`) {
  const path = new URL("../test/fixtures/prices-sample.csv", import.meta.url);
  writeFileSync(path, pricesSampleCsv());
  console.log(`wrote ${path.pathname}`);
}
