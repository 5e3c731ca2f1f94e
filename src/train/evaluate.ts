/**
 * Evaluating a checkpoint: the teacher's [CLS] features through k-NN (k = 20, T = 0.07, the same
 * bank and queries as during pre-training) and through a linear probe.
 */
import * as E from "fp-ts/lib/Either.js";
import { evaluate, type HostResult } from "../backend/index.js";
import { loadDataset, pixelStats } from "../data/index.js";
import { randomKey } from "../dsl/index.js";
import { knnClassify } from "../eval/knn.js";
import { linearProbe } from "../eval/linearProbe.js";
import { readSafetensors } from "../io/safetensors.js";
import { initIbotState, type TeacherParams } from "../models/index.js";
import { stateFromCheckpoint } from "./checkpoint.js";
import { ConfigError, decodeConfig, type PretrainConfig } from "./config.js";
import { chooseBackend, features, sampleSplit } from "./features.js";
import { modelConfig } from "./pretrain.js";

export interface EvalReport {
  readonly epoch: number;
  readonly knn: number;
  readonly linearProbe: number;
  readonly bank: number;
  readonly queries: number;
}

/** A checkpoint written by `pretrain`: its configuration (with `overrides`) and its teacher's parameters. */
export async function loadCheckpoint(
  path: string,
  overrides: Record<string, unknown> = {},
): Promise<{ config: PretrainConfig; teacher: HostResult<TeacherParams>; epoch: number }> {
  const ck = await readSafetensors(path)();
  if (E.isLeft(ck)) throw ck.left;
  let saved: Record<string, unknown>;
  try {
    saved = JSON.parse(ck.right.metadata.config ?? "");
  } catch {
    throw new ConfigError(`${path} has no wgrad config in its metadata; was it written by wgrad pretrain?`);
  }
  const cfg = decodeConfig(saved, overrides);
  if (E.isLeft(cfg)) throw cfg.left;
  const c = cfg.right;
  const mc = modelConfig(c);
  const like = evaluate(() => initIbotState(randomKey(0), mc));
  const state = stateFromCheckpoint(like, ck.right.tensors, path);
  return { config: c, teacher: state.teacher, epoch: Number(ck.right.metadata.epoch) };
}

/** Evaluates the teacher of a checkpoint written by `pretrain`; `overrides` may change the backend and the k-NN sample sizes. */
export async function evaluateCheckpoint(
  path: string,
  overrides: Partial<Pick<PretrainConfig, "backend" | "knnBank" | "knnQueries">> = {},
): Promise<EvalReport> {
  const { config: c, teacher, epoch } = await loadCheckpoint(path, overrides);
  const mc = modelConfig(c);
  const data = await loadDataset(c.dataset)();
  if (E.isLeft(data)) throw data.left;
  const gpu = await chooseBackend(c.backend, () => {});
  const stats = pixelStats(data.right.train);
  const bank = sampleSplit(data.right.train, c.knnBank, c.seed, 102);
  const queries = sampleSplit(data.right.test, c.knnQueries, c.seed, 103);
  const fb = await features(teacher.backbone, bank, bank.count, mc, stats, gpu);
  const fq = await features(teacher.backbone, queries, queries.count, mc, stats, gpu);
  const knn = await knnClassify(fb, bank.labels, fq, queries.labels, c.width, {
    k: c.knnK,
    temperature: c.knnTemperature,
    numClasses: 10,
    ...(gpu ? { gpu } : {}),
  });
  const probe = linearProbe(fb, bank.labels, fq, queries.labels, c.width, { numClasses: 10 });
  return { epoch, knn: knn.accuracy, linearProbe: probe, bank: bank.count, queries: queries.count };
}
