/**
 * The iBOT pre-training loop on host data: multi-crop batches and masks are made on the host, the
 * whole step runs as one compiled executable on the chosen backend with its state kept there
 * (donated, updated in place), k-NN accuracy is measured on the teacher's [CLS] features.
 */
import { appendFileSync, existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { evaluate, GpuArray, HostTensor } from "../backend/index.js";
import { flatten, randomKey, spec } from "../dsl/index.js";
import { loadDataset, mixSeeds, multiCropBatch, multiCropConfig, pixelStats } from "../data/index.js";
import { knnClassify } from "../eval/knn.js";
import {
  learningRateSchedule, maskBatch, teacherMomentumSchedule, teacherTempPerIteration, weightDecaySchedule,
  ibotStep, initIbotState, scheduleSpec, type IbotModelConfig, type IbotState,
} from "../models/index.js";
import { readSafetensors } from "../io/safetensors.js";
import { checkpointTensors, saveCheckpoint, stateFromCheckpoint } from "./checkpoint.js";
import { ConfigError, vqOf, type PretrainConfig } from "./config.js";
import { chooseBackend, compileOn, features, normalise, sampleSplit, shuffled, specsOf, toHostValues } from "./features.js";
import { knnPlot, lossPlot } from "./plots.js";
import { openRunDir, systemRunDirEnv } from "./runDir.js";

export interface StepLog {
  readonly epoch: number;
  readonly step: number;
  readonly loss: number;
  readonly cls: number;
  readonly patch: number;
  readonly lr: number;
  readonly imagesPerSecond: number;
  /** Perplexity of this batch's patch tokens (first head): the vocabulary's effective size. */
  readonly tokenPerplexity: number;
  /** VQ mode: the tokenizer terms and the codes restarted this step. */
  readonly tokenizer?: number;
  readonly restarts?: number;
  /** The weighted KoLeo term, when enabled. */
  readonly koleo?: number;
  /** iBOT mode: the fraction of masked patches where the student's top prototype is the teacher's token. */
  readonly maskedAgreement?: number;
}

/** Token usage over an epoch, per head: distinct tokens used and the perplexity of their histogram. */
export interface TokenLog {
  readonly epoch: number;
  readonly used: readonly number[];
  readonly vocabulary: readonly number[];
  readonly perplexity: readonly number[];
}

export interface EvalLog {
  readonly epoch: number;
  /** Training images seen when it was measured (steps × batch). */
  readonly images?: number;
  readonly knnTeacher: number;
  readonly knnStudent: number;
}

/** Where a run's time went: the step's compile, the first step (on lavapipe mostly shader compilation), the median later step. */
export interface RunTimings {
  readonly compileSeconds: number;
  readonly firstStepSeconds: number;
  readonly steadyStepSeconds: number;
}

export interface PretrainReport {
  readonly backend: string;
  readonly baselines: { readonly rawPixels: number; readonly randomInit: number };
  readonly evals: readonly EvalLog[];
  readonly tokens: readonly TokenLog[];
  readonly steps: number;
  readonly seconds: number;
  readonly timings?: RunTimings;
  /** The [CLS] loss over the last 10 steps, against ln K, where uniform teacher targets would put it. */
  readonly finalClsLoss?: number;
  readonly lnK: number;
  readonly stoppedEarly?: string;
}

export interface PretrainHooks {
  readonly log?: (line: string) => void;
  readonly onStep?: (s: StepLog, total: number) => void;
  /** Asked after each epoch's checkpoint: true ends the run there (an interruption `resume` can continue). */
  readonly stopAfterEpoch?: (epoch: number) => boolean;
}

export const modelConfig = (c: PretrainConfig): IbotModelConfig => ({
  vit: { imageSize: 28, channels: 1, patchSize: c.patchSize, width: c.width, depth: c.depth, heads: c.heads, mlpRatio: c.mlpRatio, qkvBias: true },
  head: { inDim: c.width, hiddenDim: c.headHidden, bottleneckDim: c.headBottleneck, outDim: c.outDim },
  globalCrops: 2,
  localCrops: c.localCrops,
  dropPath: c.dropPath,
  clipGrad: c.clipGrad,
  koleo: c.koleo,
  lambda1: c.lambda1,
  lambda2: c.lambda2,
  teacherTargets: c.teacherTargets,
  ...(c.tokenizer === "vq" ? { vq: vqOf(c) } : {}),
});

const isHost = (x: unknown): x is HostTensor => x instanceof HostTensor;

/** What a run writes in its out-dir: any of them there means the folder holds a run (src/train/runDir.ts). */
export const PRETRAIN_OUTPUTS = ["metrics.jsonl", "report.json", "checkpoint.safetensors", "loss.svg", "knn.svg"] as const;

export async function pretrain(c: PretrainConfig, hooks: PretrainHooks = {}): Promise<PretrainReport> {
  const log = hooks.log ?? ((s: string) => console.log(s));
  // Before any work: the out-dir must be a writable folder that no other run uses and no earlier
  // run's outputs fill (unless this run resumes from its checkpoint); its lock is held to the end.
  const lock = openRunDir(c.outDir, { command: "wgrad pretrain", outputs: PRETRAIN_OUTPUTS, checkpoint: "checkpoint.safetensors", resume: c.resume }, systemRunDirEnv(log));
  try {
    return await pretrainIn(c, hooks, log);
  } finally {
    lock.release();
  }
}

async function pretrainIn(c: PretrainConfig, hooks: PretrainHooks, log: (line: string) => void): Promise<PretrainReport> {
  const t0 = performance.now();
  const data = await loadDataset(c.dataset)();
  if (data._tag === "Left") throw data.left;
  // The splits are ordered by class: every subset is a seeded random sample.
  const trainAll = data.right.train;
  const train = sampleSplit(trainAll, c.trainSubset, c.seed, 101);
  const stats = pixelStats(trainAll);
  const mcrop = multiCropConfig(stats, { localCrops: c.localCrops, localSize: c.localSize });
  log(`data: ${data.right.source}, training on ${train.count} images (cache ${data.right.cache.status}); pixel mean ${stats.mean.toFixed(4)}, std ${stats.std.toFixed(4)}`);

  const gpu = await chooseBackend(c.backend, log);
  log(`backend: ${gpu ? `webgpu on ${gpu.adapterName}` : "cpu"}`);

  const mc = modelConfig(c);
  const G = 2;
  const B = c.batchSize;
  const itersPerEpoch = Math.floor(train.count / B);
  const total = itersPerEpoch * c.epochs;
  const run = { epochs: c.epochs, itersPerEpoch };
  const lrs = learningRateSchedule({ epochs: c.epochs, itersPerEpoch, batchSize: B, lr: c.lr, minLr: c.minLr, warmupEpochs: c.warmupEpochs });
  const wds = weightDecaySchedule({ epochs: c.epochs, itersPerEpoch, weightDecay: c.weightDecay, weightDecayEnd: c.weightDecayEnd });
  // In VQ mode the teacher is the momentum tokenizer, with its own τ.
  const moms = teacherMomentumSchedule(c.tokenizer === "vq" ? { ...run, momentum: c.vqMomentum } : { ...run, momentum: c.momentumTeacher, end: c.momentumTeacherEnd });
  const warm = Math.min(c.warmupTeacherTempEpochs, c.epochs);
  const temps = teacherTempPerIteration(c.warmupTeacherTemp, c.teacherTemp, warm, run, c.temperatureWarmup);
  const patchTemps = teacherTempPerIteration(c.warmupTeacherPatchTemp, c.teacherPatchTemp, warm, run, c.temperatureWarmup);
  const frozenSteps = Math.round(c.freezeLastLayer * itersPerEpoch);

  // Initial state, computed once on the CPU; the first step uploads it.
  const init = evaluate(() => initIbotState(randomKey(c.seed), mc));
  const paramCount = flatten(init.student, isHost).leaves.reduce((a, t) => a + t.size, 0);
  const targets = c.tokenizer === "vq" ? `VQ tokens from ${c.vqCodebooks.length} codebook${c.vqCodebooks.length > 1 ? "s" : ""} of ${c.vqCodebooks.join(", ")} codes` : "iBOT soft tokens";
  log(`model: ViT width ${c.width}, depth ${c.depth}, ${c.heads} heads, patch ${c.patchSize}; head → ${c.outDim} prototypes; patch targets: ${targets}; ${paramCount.toLocaleString("en")} student parameters`);

  // Baselines: raw pixels and the random-init teacher through the same k-NN.
  const bank = sampleSplit(trainAll, c.knnBank, c.seed, 102);
  const queries = sampleSplit(data.right.test, c.knnQueries, c.seed, 103);
  const knn = (bankFeatures: Float32Array, queryFeatures: Float32Array, dim: number) =>
    knnClassify(bankFeatures, bank.labels, queryFeatures, queries.labels, dim, { k: c.knnK, temperature: c.knnTemperature, numClasses: 10, ...(gpu ? { gpu } : {}) });
  const raw = await knn(normalise(bank, 0, bank.count, stats.mean, stats.std), normalise(queries, 0, queries.count, stats.mean, stats.std), 784);
  const evalTeacher = async (teacher: unknown) =>
    (await knn(await features(teacher, bank, bank.count, mc, stats, gpu), await features(teacher, queries, queries.count, mc, stats, gpu), c.width)).accuracy;
  const randomInit = await evalTeacher(init.teacher);
  log(`k-NN (k=${c.knnK}, T=${c.knnTemperature}; ${bank.count} TRAIN bank, ${queries.count} TEST queries): raw pixels ${(100 * raw.accuracy).toFixed(2)}%, random-init ViT ${(100 * randomInit).toFixed(2)}%`);

  const stateSpec = specsOf(init);
  const batchSpec = { globals: spec([G * B, 1, 28, 28]), locals: spec([c.localCrops * B, 1, c.localSize, c.localSize]), masks: spec([G * B, (28 / c.patchSize) ** 2]) };
  const stepFn = (st: IbotState, b: never, s: never) => ibotStep(st, b, s, mc);
  const tc = performance.now();
  type Value = HostTensor | GpuArray;
  type Run = (...a: unknown[]) => { state: unknown; metrics: { loss: Value; cls: Value; patch: Value; tokenCounts: Value[]; tokenizer?: Value; restarts?: Value; koleo?: Value; maskedAgreement?: Value } };
  const exe = compileOn(gpu, stepFn, [stateSpec, batchSpec, scheduleSpec()], [0]) as { run: Run };
  const compileSeconds = (performance.now() - tc) / 1000;
  log(`compiled the training step in ${compileSeconds.toFixed(1)} s`);
  const stepSeconds: number[] = [];

  const metricsPath = join(c.outDir, "metrics.jsonl");
  const evals: EvalLog[] = [];
  const tokenLogs: TokenLog[] = [];
  const stepLogs: StepLog[] = [];
  let state: unknown = init;
  let step = 0;
  let firstEpoch = 0;
  if (c.resume) {
    const ck = await readSafetensors(c.resume)();
    if (ck._tag === "Left") throw ck.left;
    const saved = JSON.parse(ck.right.metadata.config ?? "{}") as Record<string, unknown>;
    const differs = Object.keys(c).filter((k) => !["resume", "outDir", "evalEvery", "backend"].includes(k) && JSON.stringify(saved[k]) !== JSON.stringify((c as Record<string, unknown>)[k]));
    if (differs.length) throw new ConfigError(`--resume: the checkpoint was made with other settings for ${differs.map((k) => `${k} (${JSON.stringify(saved[k])} there, ${JSON.stringify((c as Record<string, unknown>)[k])} here)`).join(", ")}`);
    state = stateFromCheckpoint(init, ck.right.tensors, c.resume);
    firstEpoch = Number(ck.right.metadata.epoch);
    step = Number(ck.right.metadata.step);
    log(`resuming from ${c.resume} after epoch ${firstEpoch} (step ${step})`);
    // The plots cover the whole run: take back what the interrupted run logged up to the checkpoint.
    const earlier = existsSync(metricsPath) ? readFileSync(metricsPath, "utf8").trim().split("\n").filter((l) => l) : [];
    for (const line of earlier) {
      const m = JSON.parse(line) as { kind: string } & StepLog & EvalLog;
      if (m.kind === "step" && m.step < step) stepLogs.push(m);
      if (m.kind === "eval" && m.epoch < firstEpoch) evals.push({ epoch: m.epoch, knnTeacher: m.knnTeacher, knnStudent: m.knnStudent });
      if (m.kind === "tokens" && m.epoch < firstEpoch) tokenLogs.push(m as unknown as TokenLog);
    }
  } else writeFileSync(metricsPath, "");
  let stoppedEarly: string | undefined;
  const grid = 28 / c.patchSize;
  const read = async (x: Value) => (await toHostValues(x))[0];
  outer: for (let epoch = firstEpoch; epoch < c.epochs; epoch++) {
    const order = shuffled(train.count, mixSeeds(c.seed, epoch, 17));
    const epochCounts = (c.tokenizer === "vq" ? c.vqCodebooks : [c.outDim]).map((k) => new Float64Array(k));
    for (let it = 0; it < itersPerEpoch; it++, step++) {
      const ts = performance.now();
      const idx = order.subarray(it * B, (it + 1) * B);
      const crops = multiCropBatch(train, idx, mixSeeds(c.seed, step), mcrop);
      const m = maskBatch(mixSeeds(c.seed, step, 3), G * B, grid, grid, { predRatio: c.predRatio, predRatioVar: c.predRatioVar, epoch, shape: "block" });
      const batch = { globals: crops.globals, locals: crops.locals, masks: Float32Array.from(m.masks) };
      const sched = {
        lr: lrs[step], weightDecay: wds[step], momentum: moms[step], teacherTemp: temps[step], teacherPatchTemp: patchTemps[step],
        step: step + 1, lastLayerStep: Math.max(0, step + 1 - frozenSteps), key: new Int32Array([c.seed, step]),
      };
      const r = exe.run(state, batch, sched);
      const mt = r.metrics;
      const [loss, cls, patch] = [await read(mt.loss), await read(mt.cls), await read(mt.patch)];
      const counts = await Promise.all(mt.tokenCounts.map(toHostValues));
      counts.forEach((h, i) => { for (let k = 0; k < h.length; k++) epochCounts[i][k] += h[k]; });
      const vq = mt.tokenizer && mt.restarts ? { tokenizer: await read(mt.tokenizer), restarts: await read(mt.restarts) } : {};
      const koleo = mt.koleo ? { koleo: await read(mt.koleo) } : {};
      const agreed = mt.maskedAgreement ? { maskedAgreement: await read(mt.maskedAgreement) } : {};
      if (!Number.isFinite(loss)) {
        stoppedEarly = `the loss became ${loss} at step ${step} (epoch ${epoch}); the last good checkpoint is kept`;
        log(stoppedEarly);
        break outer;
      }
      state = r.state;
      stepSeconds.push((performance.now() - ts) / 1000);
      const s: StepLog = {
        epoch, step, loss, cls, patch, lr: lrs[step], imagesPerSecond: B / ((performance.now() - ts) / 1000), tokenPerplexity: histogramUsage(counts[0]).perplexity, ...vq, ...koleo, ...agreed,
      };
      appendFileSync(metricsPath, JSON.stringify({ kind: "step", ...s }) + "\n");
      stepLogs.push(s);
      hooks.onStep?.(s, total);
    }
    const usage = epochCounts.map(histogramUsage);
    const tl: TokenLog = { epoch, used: usage.map((u) => u.used), vocabulary: epochCounts.map((h) => h.length), perplexity: usage.map((u) => u.perplexity) };
    tokenLogs.push(tl);
    appendFileSync(metricsPath, JSON.stringify({ kind: "tokens", ...tl }) + "\n");
    log(`epoch ${epoch + 1}/${c.epochs}: patch tokens used ${tl.used.map((u, i) => `${u}/${tl.vocabulary[i]}`).join(", ")} (perplexity ${tl.perplexity.map((p) => p.toFixed(1)).join(", ")})`);
    if ((epoch + 1) % c.evalEvery === 0 || epoch === c.epochs - 1) {
      // The student is evaluated through the same backbone function (its mask token is unused without masks).
      const e: EvalLog = { epoch, images: step * B, knnTeacher: await evalTeacher((state as IbotState).teacher), knnStudent: await evalTeacher((state as IbotState).student) };
      evals.push(e);
      appendFileSync(metricsPath, JSON.stringify({ kind: "eval", ...e }) + "\n");
      log(`epoch ${epoch + 1}/${c.epochs}: k-NN teacher ${(100 * e.knnTeacher).toFixed(2)}%, student ${(100 * e.knnStudent).toFixed(2)}%`);
    }
    writeFileSync(join(c.outDir, "loss.svg"), await lossPlot(stepLogs));
    if (evals.length) writeFileSync(join(c.outDir, "knn.svg"), await knnPlot(evals, { rawPixels: raw.accuracy, randomInit }));
    // A checkpoint per epoch, written atomically: a later NaN leaves the last good one in place.
    const tensors = await checkpointTensors(state as IbotState as never, { channels: 1, size: c.patchSize });
    const saved = await saveCheckpoint(join(c.outDir, "checkpoint.safetensors"), tensors, { format: "wgrad-ibot-1", epoch: String(epoch + 1), step: String(step), config: JSON.stringify(c) })();
    if (saved._tag === "Left") throw saved.left;
    if (hooks.stopAfterEpoch?.(epoch)) break;
  }
  const later = stepSeconds.slice(1).sort((a, b) => a - b);
  const lastCls = stepLogs.slice(-10).map((l) => l.cls);
  const report: PretrainReport = {
    backend: gpu ? `webgpu (${gpu.adapterName})` : "cpu",
    baselines: { rawPixels: raw.accuracy, randomInit },
    evals,
    tokens: tokenLogs,
    steps: step,
    seconds: (performance.now() - t0) / 1000,
    ...(stepSeconds.length > 1 ? { timings: { compileSeconds, firstStepSeconds: stepSeconds[0], steadyStepSeconds: later[later.length >> 1] } } : {}),
    ...(lastCls.length ? { finalClsLoss: lastCls.reduce((a, b) => a + b, 0) / lastCls.length } : {}),
    lnK: Math.log(c.outDim),
    ...(stoppedEarly ? { stoppedEarly } : {}),
  };
  writeFileSync(join(c.outDir, "report.json"), JSON.stringify(report, null, 2));
  return report;
}


/** Distinct tokens in a histogram and its perplexity exp(H). */
export function histogramUsage(counts: ArrayLike<number>): { used: number; perplexity: number } {
  let total = 0;
  let used = 0;
  for (let k = 0; k < counts.length; k++) {
    total += counts[k];
    if (counts[k] > 0) used++;
  }
  let h = 0;
  for (let k = 0; k < counts.length; k++) if (counts[k] > 0) h -= (counts[k] / total) * Math.log(counts[k] / total);
  return { used, perplexity: Math.exp(h) };
}
