/**
 * The tiny pre-training run the CPU tests share: a 16-wide, one-block ViT with a 64-prototype
 * head on 96 images in batches of 16 (6 steps an epoch), evaluated on 300 bank images and 100
 * queries. Each test adds what it is about (epochs, schedules, out-dir).
 */
import * as E from "fp-ts/lib/Either.js";
import { decodeConfig, type PretrainConfig } from "../src/train/config.js";

export const TINY_RUN = {
  backend: "cpu",
  trainSubset: 96,
  batchSize: 16,
  width: 16,
  depth: 1,
  heads: 2,
  mlpRatio: 2,
  headHidden: 32,
  headBottleneck: 16,
  outDim: 64,
  localCrops: 2,
  knnBank: 300,
  knnQueries: 100,
} as const;

/** The tiny run with `fields` on top, decoded (a bad field throws its ConfigError). */
export function tinyConfig(fields: Record<string, unknown>): PretrainConfig {
  const c = decodeConfig({ ...TINY_RUN, ...fields });
  if (E.isLeft(c)) throw c.left;
  return c.right;
}

/** The tiny regimes model the CPU tests share: a 16-wide, one-block ViT over 16-step windows, 3 steps of batch 8. */
export const TINY_REGIMES = {
  window: 16,
  width: 16,
  depth: 1,
  heads: 2,
  headHidden: 32,
  headBottleneck: 8,
  outDim: 16,
  vqCodebooks: [4, 6],
  epochs: 1,
  itersPerEpoch: 3,
  batchSize: 8,
};
