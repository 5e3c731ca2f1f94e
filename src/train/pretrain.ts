/**
 * The iBOT pre-training loop on host data: multi-crop batches and masks are made on the host, the
 * whole step runs as one compiled executable on the chosen backend with its state kept there
 * (donated, updated in place), k-NN accuracy is measured on the teacher's [CLS] features.
 */
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { evaluate, treeSize, type GpuContext, type HostTensor, type RunResult } from "../backend/index.js";
import { randomKey } from "../dsl/index.js";
import { loadDataset, mixSeeds, multiCropBatch, multiCropConfig, pixelStats, type ImageDataset, type MultiCropConfig, type PixelStats } from "../data/index.js";
import { knnClassify } from "../eval/knn.js";
import {
  learningRateSchedule,
  maskBatch,
  teacherMomentumSchedule,
  teacherTempPerIteration,
  weightDecaySchedule,
  initIbotState,
  type IbotModelConfig,
  type IbotState,
  type ViTParams,
} from "../models/index.js";
import { readSafetensors } from "../io/safetensors.js";
import { checkpointTensors, saveCheckpoint, stateFromCheckpoint } from "./checkpoint.js";
import { batchTooLarge, ConfigError, vqOf, type PretrainConfig } from "./config.js";
import { chooseBackend, features, normalise, sampleSplit, shuffled } from "./features.js";
import { batchSpecOf, geometryOf, type Geometry } from "./geometry.js";
import { histogramUsage, type EvalLog, type RunTimings, type StepLog, type TokenLog } from "./logs.js";
import { IbotTrainer, scheduleValues, type HostBatch, type Schedules, type StepMetrics } from "./loop.js";
import { knnPlot, lossPlot } from "./plots.js";
import { evalLogOf, MetricsWriter, parseMetricsLog, rowsUpTo, stepLogOf, tokenLogOf, type ResumedLog } from "./metricsLog.js";
import { inRunDir, removeStaleTemps, systemRunDirEnv } from "./runDir.js";

export type { EvalLog, RunTimings, StepLog, TokenLog } from "./logs.js";
export { histogramUsage } from "./logs.js";

export interface PretrainReport {
  readonly backend: string;
  readonly baselines: { readonly rawPixels: number; readonly randomInit: number };
  /** The evaluations of the whole run, one per evaluated epoch (a resumed run's from its log). */
  readonly evals: readonly EvalLog[];
  readonly tokens: readonly TokenLog[];
  readonly steps: number;
  /** Wall-clock seconds of the whole run, summed over its processes (each killed one counted up to its last metrics row). */
  readonly seconds: number;
  /** Of the last process only (a resumed run compiles again); absent when it ran fewer than two steps. */
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

/** The iBOT model of a run's settings, for images of `geometry` (the datasets' 28×28 by default). */
export const modelConfig = (c: PretrainConfig, geometry: Geometry = geometryOf(c)): IbotModelConfig => ({
  vit: {
    imageSize: geometry.size,
    channels: geometry.channels,
    patchSize: geometry.patch,
    width: c.width,
    depth: c.depth,
    heads: c.heads,
    mlpRatio: c.mlpRatio,
    qkvBias: true,
  },
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

/** What a run writes in its out-dir: any of them there means the folder holds a run (src/train/runDir.ts). */
export const PRETRAIN_OUTPUTS = ["metrics.jsonl", "report.json", "checkpoint.safetensors", "loss.svg", "knn.svg"] as const;

/**
 * The fields of report.json that are timings: they differ between two runs with the same settings
 * and between an uninterrupted run and one killed and resumed; all else is fixed by the settings
 * (on the same backend). metrics.jsonl's are `ROW_TIMING_FIELDS` (src/train/metricsLog.ts).
 */
export const REPORT_TIMING_FIELDS = ["seconds", "timings"] as const;

export function schedulesOf(c: PretrainConfig, itersPerEpoch: number): Schedules {
  const run = { epochs: c.epochs, itersPerEpoch };
  const warm = Math.min(c.warmupTeacherTempEpochs, c.epochs);
  return {
    lr: learningRateSchedule({ ...run, batchSize: c.batchSize, lr: c.lr, minLr: c.minLr, warmupEpochs: c.warmupEpochs }),
    weightDecay: weightDecaySchedule({ ...run, weightDecay: c.weightDecay, weightDecayEnd: c.weightDecayEnd }),
    // In VQ mode the teacher is the momentum tokenizer, with its own τ.
    momentum: teacherMomentumSchedule(
      c.tokenizer === "vq" ? { ...run, momentum: c.vqMomentum } : { ...run, momentum: c.momentumTeacher, end: c.momentumTeacherEnd },
    ),
    teacherTemp: teacherTempPerIteration(c.warmupTeacherTemp, c.teacherTemp, warm, run, c.temperatureWarmup),
    teacherPatchTemp: teacherTempPerIteration(c.warmupTeacherPatchTemp, c.teacherPatchTemp, warm, run, c.temperatureWarmup),
    frozenSteps: Math.round(c.freezeLastLayer * itersPerEpoch),
  };
}

/**
 * The config fields a resumed run may set otherwise than the checkpoint's run: where it writes,
 * how often it evaluates, the backend, and `epochs` where `checkResume` allows it.
 */
export const RESUME_MAY_CHANGE = ["resume", "outDir", "evalEvery", "backend", "epochs"] as const;

/** The first of the first `n` values where two schedules differ, or -1. */
function firstDifference(a: Float64Array, b: Float64Array, n: number): number {
  for (let i = 0; i < n; i++) if (!Object.is(a[i], b[i])) return i;
  return -1;
}

/**
 * Refuses to resume a checkpoint (`saved`: its run's config; `at`: the epochs and steps it holds)
 * with settings `c` unless the continued run is the run `c` describes: every field the same except
 * `RESUME_MAY_CHANGE`, and another `epochs` only where no schedule's values for the steps already
 * taken depend on the run's length (the cosines of lr, weight decay and teacher momentum span the
 * whole run: only a cosine that holds its value, start = end, does not). A ConfigError says which
 * fields or schedules differ and what would allow it.
 */
export function checkResume(
  saved: Readonly<Record<string, unknown>>,
  c: PretrainConfig,
  at: { readonly epoch: number; readonly step: number },
  itersPerEpoch: number,
): void {
  const here = c as unknown as Record<string, unknown>;
  const differs = Object.keys(c).filter((k) => !(RESUME_MAY_CHANGE as readonly string[]).includes(k) && JSON.stringify(saved[k]) !== JSON.stringify(here[k]));
  if (!Number.isSafeInteger(saved.epochs) || (saved.epochs as number) < 1) differs.push("epochs");
  if (differs.length)
    throw new ConfigError(
      `--resume: the checkpoint was made with other settings for ${differs.map((k) => `${k} (${JSON.stringify(saved[k])} there, ${JSON.stringify(here[k])} here)`).join(", ")}`,
    );
  const before = saved.epochs as number;
  if (at.epoch > c.epochs)
    throw new ConfigError(`--resume: the checkpoint holds ${at.epoch} epochs, more than --epochs ${c.epochs}: pass --epochs ${before} (its run's) or more`);
  if (before === c.epochs) return;
  const now = schedulesOf(c, itersPerEpoch);
  const then = schedulesOf({ ...c, epochs: before }, itersPerEpoch);
  const changed = (k: keyof Omit<Schedules, "frozenSteps">) => {
    const i = firstDifference(then[k], now[k], at.step);
    return i < 0 ? "" : ` (from step ${i}: ${then[k][i]} there, ${now[k][i]} here)`;
  };
  const base = (c.lr * c.batchSize) / 256;
  const why = [
    [
      changed("lr"),
      `the learning rate${changed("lr")} follows, after its warm-up, a cosine from lr·batchSize/256 = ${base} to minLr ${c.minLr} over the whole run (minLr ${base} holds it)`,
    ],
    [
      changed("weightDecay"),
      `the weight decay${changed("weightDecay")} follows a cosine from weightDecay ${c.weightDecay} to weightDecayEnd ${c.weightDecayEnd} over the whole run (weightDecayEnd = weightDecay holds it)`,
    ],
    [
      changed("momentum"),
      c.tokenizer === "vq"
        ? `the tokenizer momentum${changed("momentum")} follows a cosine from vqMomentum ${c.vqMomentum} to 1 over the whole run (only vqMomentum 1 holds it)`
        : `the teacher momentum${changed("momentum")} follows a cosine from momentumTeacher ${c.momentumTeacher} to momentumTeacherEnd ${c.momentumTeacherEnd} over the whole run (momentumTeacherEnd = momentumTeacher holds it)`,
    ],
    [
      changed("teacherTemp") || changed("teacherPatchTemp"),
      `the teacher temperatures${changed("teacherTemp") || changed("teacherPatchTemp")} warm up over warmupTeacherTempEpochs ${c.warmupTeacherTempEpochs} epochs, cut to the run's length (${before} epochs there)`,
    ],
  ]
    .filter(([d]) => d)
    .map(([, w]) => w);
  if (why.length)
    throw new ConfigError(
      `--resume with --epochs ${c.epochs}, the checkpoint's run having ${before}: ${why.join("; ")}. These depend on the run's length, so its ${at.step} steps so far took other values than a ${c.epochs}-epoch run gives them, and the continued run would be neither. Resume with --epochs ${before}; a run can be lengthened only when its schedules do not depend on its length`,
    );
}

/**
 * The schedules of a run whose subset fixes its epoch's length, built before anything else: a
 * warm-up that is no whole number of steps (0.3 epochs of 937) is then a ConfigError at once,
 * not a RangeError after the data, the baselines and the compile. With the whole TRAIN split
 * (trainSubset 0) the length is known only once the data is loaded, where the same check runs.
 */
export function checkSchedules(c: PretrainConfig): void {
  if (c.trainSubset === 0) return;
  const steps = Math.floor(c.trainSubset / c.batchSize);
  try {
    schedulesOf(c, steps);
  } catch (e) {
    if (!(e instanceof RangeError)) throw e;
    throw new ConfigError(
      `invalid config: ${e.message} (an epoch is floor(trainSubset ${c.trainSubset} / batchSize ${c.batchSize}) = ${steps} steps); choose epoch fractions that give whole steps, or a trainSubset that does`,
    );
  }
}

export async function pretrain(c: PretrainConfig, hooks: PretrainHooks = {}): Promise<PretrainReport> {
  const log = hooks.log ?? ((s: string) => console.log(s));
  checkSchedules(c);
  // Before any work: the out-dir must be a writable folder that no other run uses and no earlier
  // run's outputs fill (unless this run resumes from its checkpoint); its lock is held to the end.
  const claim = { command: "wgrad pretrain", outputs: PRETRAIN_OUTPUTS, checkpoint: "checkpoint.safetensors", resume: c.resume };
  return inRunDir(c.outDir, claim, systemRunDirEnv(log), () => {
    // Holding the lock, any temp file of an atomic write in the folder is a killed process's.
    removeStaleTemps(c.outDir, PRETRAIN_OUTPUTS, log);
    return pretrainIn(c, hooks, log);
  });
}

/**
 * What a resumed run takes back: the checkpoint's tensors and position, and the log up to it
 * (absent when the out-dir has no metrics.jsonl: resuming a checkpoint from elsewhere).
 */
interface Resumed {
  readonly tensors: Readonly<Record<string, HostTensor>>;
  readonly epoch: number;
  readonly step: number;
  readonly log?: ResumedLog;
}

/** Reads the checkpoint to resume, checks the settings against its run's, and reads the log back to it. */
async function resumeFrom(c: PretrainConfig, itersPerEpoch: number, metricsPath: string, log: (line: string) => void): Promise<Resumed> {
  const ck = await readSafetensors(c.resume)();
  if (ck._tag === "Left") throw ck.left;
  const meta = ck.right.metadata;
  let saved: Record<string, unknown>;
  try {
    saved = JSON.parse(meta.config ?? "{}") as Record<string, unknown>;
  } catch {
    throw new ConfigError(`--resume ${c.resume}: its metadata holds no readable config, so its settings cannot be checked against this run's`);
  }
  const epoch = Number(meta.epoch);
  const step = Number(meta.step);
  const whole = Number.isSafeInteger(epoch) && epoch >= 0 && step === epoch * itersPerEpoch;
  checkResume(saved, c, whole ? { epoch, step } : { epoch: 0, step: 0 }, itersPerEpoch);
  if (!whole)
    throw new ConfigError(
      `--resume ${c.resume}: its metadata says epoch ${JSON.stringify(meta.epoch)}, step ${JSON.stringify(meta.step)}, not a whole number of epochs of ${itersPerEpoch} steps, as this program writes them`,
    );
  log(`resuming from ${c.resume} after epoch ${epoch} (step ${step})`);
  if (!existsSync(metricsPath)) {
    log(`${metricsPath} does not exist: the log, the plots and the report start at step ${step}`);
    return { tensors: ck.right.tensors, epoch, step };
  }
  const parsed = parseMetricsLog(readFileSync(metricsPath, "utf8"), metricsPath);
  if (parsed.torn)
    log(`${metricsPath} line ${parsed.torn.line} was cut off by the interrupted run (${parsed.torn.text.length} characters, not a whole row): dropped`);
  const kept = rowsUpTo(parsed, { epoch, step });
  if (kept.dropped) log(`${metricsPath}: dropping ${kept.dropped} row${kept.dropped > 1 ? "s" : ""} written after the checkpoint (they will be written again)`);
  if (kept.duplicates) log(`${metricsPath}: dropping ${kept.duplicates} earlier cop${kept.duplicates > 1 ? "ies" : "y"} of rows that a later one repeats`);
  const steps = kept.rows.filter((r) => r.kind === "step").length;
  if (steps !== step) log(`${metricsPath} holds ${steps} step rows for the ${step} steps before the checkpoint: the plots and the report cover those`);
  return { tensors: ck.right.tensors, epoch, step, log: kept };
}

/** What a run trains and evaluates on: seeded samples of the splits, their pixel statistics and geometry, the crops. */
interface RunData {
  readonly source: string;
  readonly train: ImageDataset;
  readonly bank: ImageDataset;
  readonly queries: ImageDataset;
  readonly stats: PixelStats;
  readonly geometry: Geometry;
  readonly crops: MultiCropConfig;
  readonly itersPerEpoch: number;
}

/** Loads the dataset and draws the run's samples (the splits are ordered by class: every subset is a seeded random sample). */
async function runData(c: PretrainConfig, log: (line: string) => void): Promise<RunData> {
  const data = await loadDataset(c.dataset)();
  if (data._tag === "Left") throw data.left;
  const { train: trainAll, test } = data.right;
  const train = sampleSplit(trainAll, c.trainSubset, c.seed, 101);
  const stats = pixelStats(trainAll);
  const geometry = geometryOf(c, trainAll);
  const crops = multiCropConfig(stats, { globalSize: geometry.size, localCrops: c.localCrops, localSize: geometry.localSize });
  log(
    `data: ${data.right.source}, training on ${train.count} images (cache ${data.right.cache.status}); pixel mean ${stats.mean.toFixed(4)}, std ${stats.std.toFixed(4)}`,
  );
  const itersPerEpoch = Math.floor(train.count / c.batchSize);
  if (itersPerEpoch === 0) throw batchTooLarge(c.batchSize, train.count, `the ${train.count} training images`);
  const bank = sampleSplit(trainAll, c.knnBank, c.seed, 102);
  const queries = sampleSplit(test, c.knnQueries, c.seed, 103);
  return { source: data.right.source, train, bank, queries, stats, geometry, crops, itersPerEpoch };
}

/** k-NN on the run's bank and queries: of raw pixels, and of a network's [CLS] features (teacher or student, through the same backbone). */
function knnEvaluator(c: PretrainConfig, d: RunData, mc: IbotModelConfig, gpu: GpuContext | null) {
  const { bank, queries, stats } = d;
  const knn = (bankFeatures: Float32Array, queryFeatures: Float32Array, dim: number) =>
    knnClassify(bankFeatures, bank.labels, queryFeatures, queries.labels, dim, {
      k: c.knnK,
      temperature: c.knnTemperature,
      numClasses: 10,
      ...(gpu ? { gpu } : {}),
    });
  const pixels = async () =>
    (await knn(normalise(bank, 0, bank.count, stats.mean, stats.std), normalise(queries, 0, queries.count, stats.mean, stats.std), bank.height * bank.width))
      .accuracy;
  // The student is evaluated through the same backbone function (its mask token is unused without masks).
  const network = async ({ backbone }: { readonly backbone: RunResult<ViTParams> }) =>
    (await knn(await features(backbone, bank, bank.count, mc, stats, gpu), await features(backbone, queries, queries.count, mc, stats, gpu), c.width)).accuracy;
  return { pixels, network };
}

/** The host batch of step `step`: multi-crop views of the images `idx`, and block masks of the global crops. */
function batchAt(c: PretrainConfig, d: RunData, idx: Int32Array, step: number, epoch: number): HostBatch {
  const crops = multiCropBatch(d.train, idx, mixSeeds(c.seed, step), d.crops);
  const { grid } = d.geometry;
  const m = maskBatch(mixSeeds(c.seed, step, 3), 2 * c.batchSize, grid, grid, { predRatio: c.predRatio, predRatioVar: c.predRatioVar, epoch, shape: "block" });
  return { globals: crops.globals, locals: crops.locals, masks: Float32Array.from(m.masks) };
}

/** A step's log row from its metrics. */
function stepLog(epoch: number, step: number, lr: number, seconds: number, batch: number, m: StepMetrics): StepLog {
  const vq = m.tokenizer !== undefined && m.restarts !== undefined ? { tokenizer: m.tokenizer, restarts: m.restarts } : {};
  const koleo = m.koleo !== undefined ? { koleo: m.koleo } : {};
  const agreed = m.maskedAgreement !== undefined ? { maskedAgreement: m.maskedAgreement } : {};
  return {
    epoch,
    step,
    loss: m.loss,
    cls: m.cls,
    patch: m.patch,
    lr,
    imagesPerSecond: batch / seconds,
    tokenPerplexity: histogramUsage(m.tokenCounts[0]).perplexity,
    ...vq,
    ...koleo,
    ...agreed,
  };
}

/** Token usage over an epoch from the summed per-step histograms. */
function tokenLog(epoch: number, counts: readonly Float64Array[]): TokenLog {
  const usage = counts.map(histogramUsage);
  return { epoch, used: usage.map((u) => u.used), vocabulary: counts.map((h) => h.length), perplexity: usage.map((u) => u.perplexity) };
}

/** The log rows a run starts from: a resumed run's, up to its checkpoint; none for a new run. */
function loggedRows(resumed: Resumed | undefined) {
  const rows = resumed?.log?.rows ?? [];
  return {
    steps: rows.flatMap((r) => (r.kind === "step" ? [stepLogOf(r)] : [])),
    tokens: rows.flatMap((r) => (r.kind === "tokens" ? [tokenLogOf(r)] : [])),
    evals: rows.flatMap((r) => (r.kind === "eval" ? [evalLogOf(r)] : [])),
  };
}

const percent = (x: number) => `${(100 * x).toFixed(2)}%`;

/** The model, in the line a run logs before it trains. */
function modelLine(c: PretrainConfig, studentParams: number): string {
  const targets =
    c.tokenizer === "vq"
      ? `VQ tokens from ${c.vqCodebooks.length} codebook${c.vqCodebooks.length > 1 ? "s" : ""} of ${c.vqCodebooks.join(", ")} codes`
      : "iBOT soft tokens";
  return `model: ViT width ${c.width}, depth ${c.depth}, ${c.heads} heads, patch ${c.patchSize}; head → ${c.outDim} prototypes; patch targets: ${targets}; ${studentParams.toLocaleString("en")} student parameters`;
}

/** The loss curve, and the k-NN curve against its baselines once there is an evaluation. */
async function writePlots(outDir: string, logged: ReturnType<typeof loggedRows>, baselines: { rawPixels: number; randomInit: number }): Promise<void> {
  writeFileSync(join(outDir, "loss.svg"), await lossPlot(logged.steps));
  if (logged.evals.length) writeFileSync(join(outDir, "knn.svg"), await knnPlot(logged.evals, baselines));
}

/** The epoch's checkpoint, written atomically (a later NaN leaves the last good one in place); returns how the run names it. */
async function writeCheckpoint(c: PretrainConfig, state: RunResult<IbotState>, g: Geometry, epoch: number, step: number): Promise<string> {
  const path = join(c.outDir, "checkpoint.safetensors");
  const tensors = await checkpointTensors(state, { channels: g.channels, size: g.patch });
  const saved = await saveCheckpoint(path, tensors, { format: "wgrad-ibot-1", epoch: String(epoch + 1), step: String(step), config: JSON.stringify(c) })();
  if (saved._tag === "Left") throw saved.left;
  return `${path} (after epoch ${epoch + 1}, step ${step})`;
}

/** The report's timings: absent when the process ran fewer than two steps. */
function timingsOf(compileSeconds: number, stepSeconds: readonly number[]): { timings?: RunTimings } {
  if (stepSeconds.length < 2) return {};
  const later = stepSeconds.slice(1).sort((a, b) => a - b);
  return { timings: { compileSeconds, firstStepSeconds: stepSeconds[0], steadyStepSeconds: later[later.length >> 1] } };
}

/** The [CLS] loss over the last 10 steps, to set against ln K (uniform teacher targets). */
function finalClsOf(steps: readonly StepLog[]): { finalClsLoss?: number } {
  const last = steps.slice(-10).map((l) => l.cls);
  return last.length ? { finalClsLoss: last.reduce((a, b) => a + b, 0) / last.length } : {};
}

async function pretrainIn(c: PretrainConfig, hooks: PretrainHooks, log: (line: string) => void): Promise<PretrainReport> {
  const t0 = performance.now();
  const d = await runData(c, log);
  const B = c.batchSize;
  const total = d.itersPerEpoch * c.epochs;
  const sch = schedulesOf(c, d.itersPerEpoch);
  const metricsPath = join(c.outDir, "metrics.jsonl");
  // A resumed run is checked first: refused settings or a damaged log stop it before any long work.
  const resumed = c.resume ? await resumeFrom(c, d.itersPerEpoch, metricsPath, log) : undefined;

  const gpu = await chooseBackend(c.backend, log);
  log(`backend: ${gpu ? `webgpu on ${gpu.adapterName}` : "cpu"}`);
  const mc = modelConfig(c, d.geometry);
  // Initial state, computed once on the CPU; the first step uploads it.
  const init = evaluate(() => initIbotState(randomKey(c.seed), mc));
  log(modelLine(c, treeSize(init.student)));

  // Baselines: raw pixels and the random-init teacher through the same k-NN.
  const knn = knnEvaluator(c, d, mc, gpu);
  const rawPixels = await knn.pixels();
  const randomInit = await knn.network(init.teacher);
  log(
    `k-NN (k=${c.knnK}, T=${c.knnTemperature}; ${d.bank.count} TRAIN bank, ${d.queries.count} TEST queries): raw pixels ${percent(rawPixels)}, random-init ViT ${percent(randomInit)}`,
  );

  const tc = performance.now();
  const trainer = new IbotTrainer(mc, resumed ? stateFromCheckpoint(init, resumed.tensors, c.resume) : init, batchSpecOf(d.geometry, B, c.localCrops), gpu);
  const compileSeconds = (performance.now() - tc) / 1000;
  log(`compiled the training step in ${compileSeconds.toFixed(1)} s`);
  const stepSeconds: number[] = [];

  // The log, the plots and the report cover the whole run: a resumed run takes back the rows up to its checkpoint.
  const logged = loggedRows(resumed);
  // The run's seconds over its processes: those before this one, then this one's.
  const earlierSeconds = resumed?.log?.seconds ?? 0;
  const runSeconds = () => earlierSeconds + (performance.now() - t0) / 1000;
  const metrics = new MetricsWriter(metricsPath, runSeconds, resumed ? (resumed.log ? (resumed.log.changed ? resumed.log.lines : undefined) : []) : undefined);
  if (!resumed) writeFileSync(metricsPath, "");
  let step = resumed?.step ?? 0;
  // The checkpoint a NaN would fall back to.
  let lastCheckpoint = resumed ? `${c.resume} (after epoch ${resumed.epoch}, step ${resumed.step})` : undefined;
  let stoppedEarly: string | undefined;
  outer: for (let epoch = resumed?.epoch ?? 0; epoch < c.epochs; epoch++) {
    const order = shuffled(d.train.count, mixSeeds(c.seed, epoch, 17));
    const epochCounts = (c.tokenizer === "vq" ? c.vqCodebooks : [c.outDim]).map((k) => new Float64Array(k));
    for (let it = 0; it < d.itersPerEpoch; it++, step++) {
      const ts = performance.now();
      const m = await trainer.step(batchAt(c, d, order.subarray(it * B, (it + 1) * B), step, epoch), scheduleValues(sch, step, c.seed));
      m.tokenCounts.forEach((h, i) => {
        for (let k = 0; k < h.length; k++) epochCounts[i][k] += h[k];
      });
      if (!Number.isFinite(m.loss)) {
        stoppedEarly = `the loss became ${m.loss} at step ${step} (epoch ${epoch}); ${lastCheckpoint ? `the last good checkpoint is kept: ${lastCheckpoint}` : "this was before the first checkpoint, so no checkpoint was written"}`;
        log(stoppedEarly);
        break outer;
      }
      stepSeconds.push((performance.now() - ts) / 1000);
      const s = stepLog(epoch, step, sch.lr[step], (performance.now() - ts) / 1000, B, m);
      metrics.append({ kind: "step", ...s });
      logged.steps.push(s);
      hooks.onStep?.(s, total);
    }
    const tl = tokenLog(epoch, epochCounts);
    logged.tokens.push(tl);
    metrics.append({ kind: "tokens", ...tl });
    log(
      `epoch ${epoch + 1}/${c.epochs}: patch tokens used ${tl.used.map((u, i) => `${u}/${tl.vocabulary[i]}`).join(", ")} (perplexity ${tl.perplexity.map((p) => p.toFixed(1)).join(", ")})`,
    );
    if ((epoch + 1) % c.evalEvery === 0 || epoch === c.epochs - 1) {
      const e: EvalLog = {
        epoch,
        images: step * B,
        knnTeacher: await knn.network(trainer.state.teacher),
        knnStudent: await knn.network(trainer.state.student),
      };
      logged.evals.push(e);
      metrics.append({ kind: "eval", ...e });
      log(`epoch ${epoch + 1}/${c.epochs}: k-NN teacher ${percent(e.knnTeacher)}, student ${percent(e.knnStudent)}`);
    }
    await writePlots(c.outDir, logged, { rawPixels, randomInit });
    lastCheckpoint = await writeCheckpoint(c, trainer.state, d.geometry, epoch, step);
    if (hooks.stopAfterEpoch?.(epoch)) break;
  }
  metrics.flush();
  const report: PretrainReport = {
    backend: gpu ? `webgpu (${gpu.adapterName})` : "cpu",
    baselines: { rawPixels, randomInit },
    evals: logged.evals,
    tokens: logged.tokens,
    steps: step,
    seconds: runSeconds(),
    ...timingsOf(compileSeconds, stepSeconds),
    ...finalClsOf(logged.steps),
    lnK: Math.log(c.outDim),
    ...(stoppedEarly ? { stoppedEarly } : {}),
  };
  writeFileSync(join(c.outDir, "report.json"), JSON.stringify(report, null, 2));
  return report;
}
