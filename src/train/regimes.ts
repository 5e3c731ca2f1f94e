/**
 * iBOT on market time series (spec §11): the same step functions with a 1-D patch embedding,
 * pre-trained on a simulated market whose hidden regimes and injected anomalies are known, then
 * scored against that truth: how well the teacher's patch tokens agree with the regimes (NMI),
 * how well a patch's token log-probability under masking flags the anomalies (AUROC), and both
 * again on an asset held out of training (a shared vocabulary should transfer).
 */
import { appendFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import * as E from "fp-ts/lib/Either.js";
import { pipe } from "fp-ts/lib/function.js";
import * as t from "io-ts";
import { compile, evaluate, specsOf, type GpuContext, type RunResult } from "../backend/index.js";
import { randomKey, spec, type Tensor } from "../dsl/index.js";
import { DEFAULT_MARKET, mixSeeds, seriesViews, simulateMarket, standardise, DEFAULT_SERIES_VIEWS, type Market } from "../data/index.js";
import { auroc, normalizedMutualInformation } from "../eval/agreement.js";
import {
  initIbotState,
  learningRateSchedule,
  maskBatch,
  teacherMomentumSchedule,
  teacherTokens,
  tokenLogProb,
  weightDecaySchedule,
  type IbotModelConfig,
  type IbotState,
  type StudentParams,
  type TeacherParams,
} from "../models/index.js";
import { ConfigError, decodeWith, DEFAULT_TOKENIZER, Fraction, NonNegInt, optimizerProps, Positive, PositiveInt, tokenizerProps, vqOf } from "./config.js";
import { chooseBackend, toHostValues } from "./features.js";
import { IbotTrainer, scheduleValues, type Schedules } from "./loop.js";
import { regimesPlot } from "./plots.js";
import { inRunDir, systemRunDirEnv } from "./runDir.js";

export const RegimesConfig = t.type({
  seed: t.number,
  backend: t.keyof({ auto: null, webgpu: null, cpu: null }),
  outDir: t.string,
  // The simulated market
  assets: PositiveInt,
  steps: PositiveInt,
  /** The asset never trained on (its tokens are scored for transfer). */
  heldOutAsset: NonNegInt,
  /** Training uses the first share of the steps; scores come from the rest. */
  trainFraction: Fraction,
  // Model: a ViT over windows of returns, patches of patchSize steps
  /** Input channels per step: the standardised return, or the return and its absolute value. */
  features: t.keyof({ returns: null, "returns+abs": null }),
  window: PositiveInt,
  patchSize: PositiveInt,
  width: PositiveInt,
  depth: PositiveInt,
  heads: PositiveInt,
  headHidden: PositiveInt,
  headBottleneck: PositiveInt,
  outDim: PositiveInt,
  ...tokenizerProps,
  // Training
  epochs: PositiveInt,
  itersPerEpoch: PositiveInt,
  batchSize: PositiveInt,
  predRatio: Fraction,
  ...optimizerProps,
  momentumTeacher: Fraction,
  teacherTemp: Positive,
});
export type RegimesConfig = t.TypeOf<typeof RegimesConfig>;

/** About two minutes on lavapipe here: a small ViT over 64-step windows, 8 VQ regime tokens. */
export const DEFAULT_REGIMES: RegimesConfig = {
  seed: 0,
  backend: "auto",
  outDir: "runs/regimes",
  assets: DEFAULT_MARKET.assets,
  steps: DEFAULT_MARKET.steps,
  heldOutAsset: DEFAULT_MARKET.assets - 1,
  trainFraction: 0.75,
  features: "returns+abs",
  window: DEFAULT_SERIES_VIEWS.length,
  patchSize: 4,
  width: 64,
  depth: 2,
  heads: 2,
  headHidden: 256,
  headBottleneck: 32,
  outDim: 64,
  ...DEFAULT_TOKENIZER,
  tokenizer: "vq",
  vqCodebooks: [8],
  vqMomentum: 0.99,
  epochs: 5,
  itersPerEpoch: 40,
  batchSize: 64,
  predRatio: 0.3,
  lr: 2e-3,
  minLr: 1e-5,
  warmupEpochs: 1,
  weightDecay: 0.04,
  weightDecayEnd: 0.1,
  clipGrad: 3,
  momentumTeacher: 0.99,
  teacherTemp: 0.04,
};

/** Overrides decoded against the defaults, with the cross-field checks: errors name the fields. */
export function decodeRegimes(...overrides: readonly Record<string, unknown>[]): E.Either<ConfigError, RegimesConfig> {
  return pipe(
    decodeWith(RegimesConfig, DEFAULT_REGIMES, overrides),
    E.chain((c) => {
      const problem =
        c.heldOutAsset >= c.assets
          ? `heldOutAsset ${c.heldOutAsset} must be below assets ${c.assets}`
          : c.assets < 2
            ? "needs at least 2 assets (one is held out)"
            : c.window % c.patchSize !== 0
              ? `window ${c.window} must be a multiple of patchSize ${c.patchSize}`
              : c.width % c.heads !== 0
                ? `width ${c.width} must be divisible by heads ${c.heads}`
                : c.steps * (1 - c.trainFraction) < c.window || c.steps * c.trainFraction < c.window + DEFAULT_SERIES_VIEWS.maxShift
                  ? `steps ${c.steps} with trainFraction ${c.trainFraction} leave less than a window (${c.window}) for training or scoring`
                  : undefined;
      return problem ? E.left(new ConfigError(`invalid config: ${problem}`)) : E.right(c);
    }),
  );
}

export interface TokenScores {
  /** NMI between patch tokens and the true regimes. */
  readonly nmi: number;
  /** AUROC of −log p(token | context) against the injected anomalies. */
  readonly anomalyAuroc: number;
  readonly patches: number;
  readonly tokensUsed: number;
}

export interface RegimesReport {
  readonly backend: string;
  readonly steps: number;
  readonly seconds: number;
  /** The random-init model and simple statistics of the raw returns, through the same scores. */
  readonly baselines: {
    readonly randomInit: { readonly train: TokenScores; readonly heldOut: TokenScores };
    readonly volatilityTerciles: number;
    readonly maxAbsReturnAuroc: number;
  };
  /** Assets seen in training (on the held-out period of time) and the held-out asset. */
  readonly train: TokenScores;
  readonly heldOut: TokenScores;
}

export const regimesModelConfig = (c: RegimesConfig): IbotModelConfig => ({
  vit: {
    dims: 1,
    imageSize: c.window,
    channels: channelsOf(c),
    patchSize: c.patchSize,
    width: c.width,
    depth: c.depth,
    heads: c.heads,
    mlpRatio: 4,
    qkvBias: true,
  },
  head: { inDim: c.width, hiddenDim: c.headHidden, bottleneckDim: c.headBottleneck, outDim: c.outDim },
  globalCrops: 2,
  localCrops: 0,
  dropPath: 0,
  clipGrad: c.clipGrad,
  ...(c.tokenizer === "vq" ? { vq: vqOf(c) } : {}),
});

const channelsOf = (c: RegimesConfig) => (c.features === "returns" ? 1 : 2);

/** Windows [n, 1, L] → the model's input [n, C, L]: with "returns+abs", each return's absolute value as a second channel. */
function inputChannels(x: Float32Array, length: number, c: RegimesConfig): Float32Array {
  if (c.features === "returns") return x;
  const n = x.length / length;
  const out = new Float32Array(2 * x.length);
  for (let i = 0; i < n; i++) {
    const row = x.subarray(i * length, (i + 1) * length);
    out.set(row, 2 * i * length);
    out.set(row.map(Math.abs), (2 * i + 1) * length);
  }
  return out;
}

/** Non-overlapping windows of the held-out period for some assets, with per-patch truth. */
interface EvalSet {
  readonly inputs: Float32Array; // [W, 1, window]
  readonly count: number;
  readonly regimes: Int32Array; // per patch, the majority regime
  readonly anomalies: Uint8Array; // per patch, 1 if any step holds a jump
  readonly realizedVol: Float32Array; // per patch, the mean |standardised return|
  readonly maxAbs: Float32Array; // per patch, the largest |standardised return|
  readonly asset: Int32Array; // per window
  readonly start: Int32Array; // per window
}

function evalSet(m: Market, series: Float32Array, assets: readonly number[], from: number, c: RegimesConfig): EvalSet {
  const T = m.config.steps;
  const per = Math.floor((T - from) / c.window);
  const n = c.window / c.patchSize;
  const count = per * assets.length;
  const inputs = new Float32Array(count * c.window);
  const regimes = new Int32Array(count * n);
  const anomalies = new Uint8Array(count * n);
  const realizedVol = new Float32Array(count * n);
  const maxAbs = new Float32Array(count * n);
  const asset = new Int32Array(count);
  const start = new Int32Array(count);
  let w = 0;
  for (const a of assets)
    for (let k = 0; k < per; k++, w++) {
      const s = from + k * c.window;
      asset[w] = a;
      start[w] = s;
      inputs.set(series.subarray(a * T + s, a * T + s + c.window), w * c.window);
      for (let p = 0; p < n; p++) {
        const votes = new Map<number, number>();
        let vol = 0;
        let peak = 0;
        for (let q = 0; q < c.patchSize; q++) {
          const step = s + p * c.patchSize + q;
          votes.set(m.regimes[step], (votes.get(m.regimes[step]) ?? 0) + 1);
          if (m.anomalies[a * T + step]) anomalies[w * n + p] = 1;
          vol += Math.abs(series[a * T + step]) / c.patchSize;
          peak = Math.max(peak, Math.abs(series[a * T + step]));
        }
        regimes[w * n + p] = [...votes].sort((x, y) => y[1] - x[1])[0][0];
        realizedVol[w * n + p] = vol;
        maxAbs[w * n + p] = peak;
      }
    }
  return { inputs, count, regimes, anomalies, realizedVol, maxAbs, asset, start };
}

/** Teacher tokens of every patch, and −log p of each under masking (every 4th patch hidden per pass, 4 passes). */
async function tokenEval(state: Pick<RunResult<IbotState>, "student" | "teacher">, e: EvalSet, mc: IbotModelConfig, gpu: GpuContext | null, c: RegimesConfig) {
  const inputs = inputChannels(e.inputs, c.window, c);
  const n = mc.vit.imageSize / mc.vit.patchSize;
  const x = spec([e.count, mc.vit.channels, mc.vit.imageSize]);
  const backend = gpu ?? "cpu";
  const tokensExe = compile((tp: TeacherParams, inputs: Tensor) => teacherTokens(inputs, tp, mc), [specsOf(state.teacher), x], { backend });
  const tokens = Int32Array.from(await toHostValues(tokensExe.run(state.teacher, inputs)));
  const logpExe = compile(
    (sp: StudentParams, tp: TeacherParams, inputs: Tensor, masks: Tensor) => tokenLogProb(inputs, masks, sp, tp, mc),
    [specsOf(state.student), specsOf(state.teacher), x, spec([e.count, n])],
    { backend },
  );
  const surprise = new Float32Array(e.count * n);
  const passes = 4;
  for (let r = 0; r < passes; r++) {
    const masks = Float32Array.from({ length: e.count * n }, (_, i) => ((i % n) % passes === r ? 1 : 0));
    const logp = await toHostValues(logpExe.run(state.student, state.teacher, inputs, masks));
    for (let i = 0; i < masks.length; i++) if (masks[i]) surprise[i] = -logp[i];
  }
  return { tokens, surprise };
}

function scores(e: EvalSet, tokens: Int32Array, surprise: Float32Array, select: (window: number) => boolean, n: number): TokenScores {
  const idx: number[] = [];
  for (let w = 0; w < e.count; w++) if (select(w)) for (let p = 0; p < n; p++) idx.push(w * n + p);
  const pick = <A extends ArrayLike<number>>(a: A) => idx.map((i) => a[i]);
  const anomalies = pick(e.anomalies);
  return {
    nmi: normalizedMutualInformation(pick(tokens), pick(e.regimes)),
    anomalyAuroc: anomalies.some((v) => v) && anomalies.some((v) => !v) ? auroc(pick(surprise), anomalies) : NaN,
    patches: idx.length,
    tokensUsed: new Set(pick(tokens)).size,
  };
}

/** Tercile buckets of a statistic: a label-free "regime detector" baseline. */
function terciles(v: Float32Array): Int32Array {
  const sorted = Float32Array.from(v).sort();
  const [a, b] = [sorted[Math.floor(v.length / 3)], sorted[Math.floor((2 * v.length) / 3)]];
  return Int32Array.from(v, (x) => (x < a ? 0 : x < b ? 1 : 2));
}

export interface RegimesHooks {
  readonly log?: (line: string) => void;
  readonly onStep?: (step: number, total: number, loss: number) => void;
}

/** What a run writes in its out-dir: any of them there means the folder holds a run (src/train/runDir.ts). */
export const REGIMES_OUTPUTS = ["metrics.jsonl", "report.json", "regimes.svg"] as const;

/** The run's per-step schedules: cosine lr, weight decay and teacher momentum over its epochs, a constant teacher temperature, no frozen prototypes. */
function regimesSchedules(c: RegimesConfig): Schedules {
  const run = { epochs: c.epochs, itersPerEpoch: c.itersPerEpoch };
  const temp = new Float64Array(c.epochs * c.itersPerEpoch).fill(c.teacherTemp);
  return {
    lr: learningRateSchedule({ ...run, batchSize: c.batchSize, lr: c.lr, minLr: c.minLr, warmupEpochs: c.warmupEpochs }),
    weightDecay: weightDecaySchedule({ ...run, weightDecay: c.weightDecay, weightDecayEnd: c.weightDecayEnd }),
    momentum: teacherMomentumSchedule({ ...run, momentum: c.tokenizer === "vq" ? c.vqMomentum : c.momentumTeacher }),
    teacherTemp: temp,
    teacherPatchTemp: temp,
    frozenSteps: 0,
  };
}

export async function trainRegimes(c: RegimesConfig, hooks: RegimesHooks = {}): Promise<RegimesReport> {
  const log = hooks.log ?? ((s: string) => console.log(s));
  // Before any work: a writable folder that no other run uses and no earlier run's outputs fill.
  return inRunDir(c.outDir, { command: "wgrad regimes", outputs: REGIMES_OUTPUTS }, systemRunDirEnv(log), () => trainRegimesIn(c, hooks, log));
}

async function trainRegimesIn(c: RegimesConfig, hooks: RegimesHooks, log: (line: string) => void): Promise<RegimesReport> {
  const t0 = performance.now();
  const market = simulateMarket(c.seed, { ...DEFAULT_MARKET, assets: c.assets, steps: c.steps });
  const trainEnd = Math.floor(c.steps * c.trainFraction);
  const series = standardise(market, 0, trainEnd); // statistics of the training period only
  const trainAssets = Array.from({ length: c.assets }, (_, a) => a).filter((a) => a !== c.heldOutAsset);
  log(
    `market: ${c.assets} assets × ${c.steps} steps, regimes ${market.config.regimes.map((r) => r.name).join("/")}, ${market.anomalies.reduce((s, v) => s + v, 0)} injected jumps; training on assets ${trainAssets.join(",")} over steps 0–${trainEnd}, asset ${c.heldOutAsset} held out`,
  );
  const gpu = await chooseBackend(c.backend, log);
  log(`backend: ${gpu ? `webgpu on ${gpu.adapterName}` : "cpu"}`);

  const mc = regimesModelConfig(c);
  const n = c.window / c.patchSize;
  const B = c.batchSize;
  const init = evaluate(() => initIbotState(randomKey(c.seed), mc));
  const test = evalSet(market, series, [...trainAssets, c.heldOutAsset], trainEnd, c);
  const isHeldOut = (w: number) => test.asset[w] === c.heldOutAsset;
  const both = async (st: Pick<RunResult<IbotState>, "student" | "teacher">) => {
    const r = await tokenEval(st, test, mc, gpu, c);
    return { r, train: scores(test, r.tokens, r.surprise, (w) => !isHeldOut(w), n), heldOut: scores(test, r.tokens, r.surprise, isHeldOut, n) };
  };
  const before = await both(init);
  const volatilityTerciles = normalizedMutualInformation(terciles(test.realizedVol), test.regimes);
  const maxAbsReturnAuroc = auroc(test.maxAbs, test.anomalies);
  log(
    `baselines: random-init tokens NMI ${before.train.nmi.toFixed(3)} (held-out asset ${before.heldOut.nmi.toFixed(3)}); realised-volatility terciles NMI ${volatilityTerciles.toFixed(3)}; max |return| anomaly AUROC ${maxAbsReturnAuroc.toFixed(3)}`,
  );

  const total = c.epochs * c.itersPerEpoch;
  const sch = regimesSchedules(c);
  const batchSpec = { globals: spec([2 * B, channelsOf(c), c.window]), masks: spec([2 * B, n]) };
  const trainer = new IbotTrainer(mc, init, batchSpec, gpu);
  const metricsPath = join(c.outDir, "metrics.jsonl");
  writeFileSync(metricsPath, "");
  for (let step = 0; step < total; step++) {
    const views = seriesViews(series, c.steps, trainAssets, B, 2, [0, trainEnd], mixSeeds(c.seed, step, 5), { ...DEFAULT_SERIES_VIEWS, length: c.window });
    const globals = inputChannels(views, c.window, c);
    const m = maskBatch(mixSeeds(c.seed, step, 6), 2 * B, 1, n, { predRatio: c.predRatio, predRatioVar: 0, epoch: 0, shape: "rand" });
    const { loss } = await trainer.step({ globals, masks: Float32Array.from(m.masks) }, scheduleValues(sch, step, c.seed));
    if (!Number.isFinite(loss)) throw new Error(`regimes: the loss became ${loss} at step ${step}`);
    appendFileSync(metricsPath, JSON.stringify({ kind: "step", step, loss }) + "\n");
    hooks.onStep?.(step, total, loss);
  }
  const after = await both(trainer.state);
  const report: RegimesReport = {
    backend: gpu ? `webgpu (${gpu.adapterName})` : "cpu",
    steps: total,
    seconds: (performance.now() - t0) / 1000,
    baselines: { randomInit: { train: before.train, heldOut: before.heldOut }, volatilityTerciles, maxAbsReturnAuroc },
    train: after.train,
    heldOut: after.heldOut,
  };
  writeFileSync(join(c.outDir, "report.json"), JSON.stringify(report, null, 2));
  // The held-out asset over the scored period: its price path coloured by token, the true regime beneath.
  const windows = Array.from({ length: test.count }, (_, w) => w).filter(isHeldOut);
  const points = windows.flatMap((w) =>
    Array.from({ length: c.window }, (_, k) => {
      const step = test.start[w] + k;
      const p = Math.floor(k / c.patchSize);
      return {
        step,
        logReturn: market.returns[c.heldOutAsset * c.steps + step],
        token: after.r.tokens[w * n + p],
        regime: market.config.regimes[market.regimes[step]].name,
        anomaly: market.anomalies[c.heldOutAsset * c.steps + step] === 1,
      };
    }),
  );
  writeFileSync(join(c.outDir, "regimes.svg"), await regimesPlot(points, `asset ${c.heldOutAsset} (held out of training)`));
  return report;
}
