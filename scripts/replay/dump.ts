/**
 * Writes what `wgrad pretrain` feeds its training step, for a replay in PyTorch (replay.py): the
 * student's initial parameters, every step's crops and masks, the training images and their order
 * per epoch, and the k-NN bank and queries, all made exactly as pretrain makes them.
 *
 *   node --import tsx scripts/replay/dump.ts OUT_DIR ['{"seed": 1, ...config fields}']
 *
 * Files are raw little-endian arrays described by OUT_DIR/meta.json.
 */
import { closeSync, mkdirSync, openSync, writeFileSync, writeSync } from "node:fs";
import { evaluate, HostTensor } from "../../src/backend/index.js";
import { loadDataset, mixSeeds, multiCropBatch, multiCropConfig, pixelStats } from "../../src/data/index.js";
import { randomKey } from "../../src/dsl/index.js";
import {
  initIbotState,
  learningRateSchedule,
  maskBatch,
  teacherMomentumSchedule,
  teacherTempPerIteration,
  weightDecaySchedule,
} from "../../src/models/index.js";
import { decodeConfig } from "../../src/train/config.js";
import { normalise, sampleSplit, shuffled } from "../../src/train/features.js";
import { modelConfig } from "../../src/train/pretrain.js";

const [out, json = "{}"] = process.argv.slice(2);
if (!out) throw new Error("usage: dump.ts OUT_DIR [CONFIG_JSON]");
const decoded = decodeConfig(JSON.parse(json) as Record<string, unknown>);
if (decoded._tag === "Left") throw decoded.left;
const c = decoded.right;
const loaded = await loadDataset(c.dataset)();
if (loaded._tag === "Left") throw loaded.left;
const data = loaded.right;
mkdirSync(out, { recursive: true });

// The same samples, statistics and augmentation as pretrain().
const train = sampleSplit(data.train, c.trainSubset, c.seed, 101);
const stats = pixelStats(data.train);
const crops = multiCropConfig(stats, { localCrops: c.localCrops, localSize: c.localSize });
const bank = sampleSplit(data.train, c.knnBank, c.seed, 102);
const queries = sampleSplit(data.test, c.knnQueries, c.seed, 103);
const write = (name: string, a: ArrayBufferView) => writeFileSync(`${out}/${name}`, Buffer.from(a.buffer, a.byteOffset, a.byteLength));
write("bank.bin", normalise(bank, 0, bank.count, stats.mean, stats.std));
write("queries.bin", normalise(queries, 0, queries.count, stats.mean, stats.std));
write("bank_labels.bin", bank.labels);
write("query_labels.bin", queries.labels);
write("train.bin", train.images);

// Student parameters in sorted-key order, with their paths.
const init = evaluate(() => initIbotState(randomKey(c.seed), modelConfig(c)));
const leaves: { path: string; tensor: HostTensor }[] = [];
const walk = (x: unknown, path: string): void => {
  if (x instanceof HostTensor) leaves.push({ path, tensor: x });
  else if (Array.isArray(x)) x.forEach((v, i) => walk(v, `${path}.${i}`));
  else if (x && typeof x === "object") for (const k of Object.keys(x).sort()) walk((x as Record<string, unknown>)[k], path ? `${path}.${k}` : k);
};
walk(init.student, "");
write("init.bin", Float32Array.from(leaves.flatMap((l) => Array.from(l.tensor.data as ArrayLike<number>))));

// Every step's views and masks, in pretrain's order.
const B = c.batchSize;
const G = 2;
const grid = 28 / c.patchSize;
const itersPerEpoch = Math.floor(train.count / B);
const orders = new Int32Array(c.epochs * train.count);
const fd = openSync(`${out}/batches.bin`, "w");
for (let epoch = 0, step = 0; epoch < c.epochs; epoch++) {
  const order = shuffled(train.count, mixSeeds(c.seed, epoch, 17));
  orders.set(order, epoch * train.count);
  for (let it = 0; it < itersPerEpoch; it++, step++) {
    const views = multiCropBatch(train, order.subarray(it * B, (it + 1) * B), mixSeeds(c.seed, step), crops);
    const m = maskBatch(mixSeeds(c.seed, step, 3), G * B, grid, grid, { predRatio: c.predRatio, predRatioVar: c.predRatioVar, epoch, shape: "block" });
    for (const a of [views.globals, views.locals, Float32Array.from(m.masks)]) writeSync(fd, Buffer.from(a.buffer, a.byteOffset, a.byteLength));
  }
}
closeSync(fd);
write("orders.bin", orders);
// pretrain's schedules, for replay.py to check its own against.
const run = { epochs: c.epochs, itersPerEpoch };
const warm = Math.min(c.warmupTeacherTempEpochs, c.epochs);
const frozen = Math.round(c.freezeLastLayer * itersPerEpoch);
const schedules = {
  lr: [...learningRateSchedule({ ...run, batchSize: B, lr: c.lr, minLr: c.minLr, warmupEpochs: c.warmupEpochs })],
  weightDecay: [...weightDecaySchedule({ ...run, weightDecay: c.weightDecay, weightDecayEnd: c.weightDecayEnd })],
  momentum: [...teacherMomentumSchedule({ ...run, momentum: c.momentumTeacher, end: c.momentumTeacherEnd })],
  teacherTemp: [...teacherTempPerIteration(c.warmupTeacherTemp, c.teacherTemp, warm, run, c.temperatureWarmup)],
  teacherPatchTemp: [...teacherTempPerIteration(c.warmupTeacherPatchTemp, c.teacherPatchTemp, warm, run, c.temperatureWarmup)],
  lastLayerStep: Array.from({ length: itersPerEpoch * c.epochs }, (_, i) => Math.max(0, i + 1 - frozen)),
};
const meta = {
  config: c,
  schedules,
  steps: itersPerEpoch * c.epochs,
  train: train.count,
  bank: bank.count,
  queries: queries.count,
  mean: stats.mean,
  std: stats.std,
  paths: leaves.map((l) => ({ path: l.path, shape: [...l.tensor.shape] })),
};
writeFileSync(`${out}/meta.json`, JSON.stringify(meta, null, 1));
console.log(`wrote ${meta.steps} steps of batch ${B} to ${out}`);
