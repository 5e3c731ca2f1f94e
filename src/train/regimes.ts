/**
 * iBOT on market time series (spec §11): the same step functions with a 1-D patch embedding,
 * pre-trained on a simulated market whose hidden regimes and injected anomalies are known, then
 * scored against that truth: how well the teacher's patch tokens agree with the regimes (NMI),
 * how well a patch's token log-probability under masking flags the anomalies (AUROC), and both
 * again on an asset held out of training (a shared vocabulary should transfer).
 *
 * With `prices` (a CSV of real closes, src/data/prices.ts) the same model trains and is scored on
 * the file's log returns instead. Real prices carry no true regimes or injected anomalies, so that
 * run reports no NMI or AUROC: it reports what needs no labels (tokens used, their perplexity,
 * their agreement with realised-volatility terciles, the surprise distribution and the most
 * surprising patches) and writes every scored patch's token to tokens.csv.
 */
import { appendFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import * as E from "fp-ts/lib/Either.js";
import { pipe } from "fp-ts/lib/function.js";
import * as t from "io-ts";
import { compile, evaluate, specsOf, type GpuContext, type RunResult } from "../backend/index.js";
import { randomKey, spec, type Tensor } from "../dsl/index.js";
import {
  DEFAULT_MARKET,
  HARD_MARKET,
  loadPricesCsv,
  logReturns,
  mixSeeds,
  seriesViews,
  simulateMarket,
  standardise,
  DEFAULT_SERIES_VIEWS,
  type Market,
  type PriceTable,
} from "../data/index.js";
import { auroc, normalizedMutualInformation } from "../eval/agreement.js";
import {
  initIbotState,
  learningRateSchedule,
  maskBatch,
  teacherMomentumSchedule,
  teacherTokens,
  tokenPrediction,
  weightDecaySchedule,
  type IbotModelConfig,
  type IbotState,
  type StudentParams,
  type TeacherParams,
} from "../models/index.js";
import { ConfigError, decodeWith, DEFAULT_TOKENIZER, Fraction, NonNegInt, optimizerProps, Positive, PositiveInt, tokenizerProps, vqOf } from "./config.js";
import { chooseBackend, toHostValues } from "./features.js";
import { histogramUsage } from "./logs.js";
import { IbotTrainer, scheduleValues, type Schedules } from "./loop.js";
import { regimesPlot } from "./plots.js";
import { inRunDir, systemRunDirEnv } from "./runDir.js";

export const RegimesConfig = t.type({
  seed: t.number,
  backend: t.keyof({ auto: null, webgpu: null, cpu: null }),
  outDir: t.string,
  /**
   * A CSV of closes (columns date, asset, close; src/data/prices.ts) to train and score on instead of
   * the simulator; "" simulates. With a file, `market`, `assets` and `steps` are ignored: the file sets them.
   */
  prices: t.string,
  // The simulated market
  /** DEFAULT_MARKET (regimes of different volatility) or HARD_MARKET (equal volatility; autocorrelation, correlation, heavy tails). */
  market: t.keyof({ default: null, hard: null }),
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

/**
 * About two minutes on lavapipe here: a small ViT over 64-step windows, 8 VQ regime tokens, on the
 * simulated market (`prices` is "", which its type records, so a run of these defaults has a report against the truth).
 */
export const DEFAULT_REGIMES: RegimesConfig & { readonly prices: "" } = {
  seed: 0,
  backend: "auto",
  outDir: "runs/regimes",
  prices: "",
  market: "default",
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
      // With a prices file, assets and steps come from it: pricesProblem checks them once it is read.
      const simulated = c.prices === "";
      const problem =
        simulated && c.heldOutAsset >= c.assets
          ? `heldOutAsset ${c.heldOutAsset} must be below assets ${c.assets}`
          : simulated && c.assets < 2
            ? "needs at least 2 assets (one is held out)"
            : c.window % c.patchSize !== 0
              ? `window ${c.window} must be a multiple of patchSize ${c.patchSize}`
              : c.width % c.heads !== 0
                ? `width ${c.width} must be divisible by heads ${c.heads}`
                : simulated && tooShort(c, c.steps)
                  ? `steps ${c.steps} with trainFraction ${c.trainFraction} leave less than a window (${c.window}) for training or scoring`
                  : undefined;
      return problem ? E.left(new ConfigError(`invalid config: ${problem}`)) : E.right(c);
    }),
  );
}

/** Whether `steps` returns split by trainFraction leave less than a window for training (views shift) or scoring. */
const tooShort = (c: RegimesConfig, steps: number) =>
  steps * (1 - c.trainFraction) < c.window || steps * c.trainFraction < c.window + DEFAULT_SERIES_VIEWS.maxShift;

/** What a prices file and the config disagree on (the checks decodeRegimes leaves to the file), or undefined. */
function pricesProblem(c: RegimesConfig, p: PriceTable): string | undefined {
  const A = p.assets.length;
  const T = p.dates.length - 1;
  const names = p.assets.map((a, i) => `${i} ${a}`).join(", ");
  return A < 2
    ? `${p.source} has 1 asset (${p.assets[0]}); regimes holds one asset out of training, so it needs at least 2`
    : c.heldOutAsset >= A
      ? `heldOutAsset ${c.heldOutAsset} must be below the ${A} assets of ${p.source} (${names}); pass --held-out-asset 0 to ${A - 1}`
      : tooShort(c, T)
        ? `${p.source} has ${T} returns (${p.dates.length} dates); with trainFraction ${c.trainFraction} that leaves less than a window (${c.window}) for training or scoring: use a longer file or a smaller --window`
        : undefined;
}

export interface TokenScores {
  /** NMI between patch tokens and the true regimes. */
  readonly nmi: number;
  /**
   * AUROC against the injected anomalies of the model's surprise at a hidden patch's returns,
   * −log p(x | context) = −log Σ_k p(k | context)·N(x; μ_k, σ_k²) (the student's token prediction,
   * each token's Gaussian fit to the training patches the teacher gave it).
   */
  readonly anomalyAuroc: number;
  /** AUROC of the token's surprise alone, −log p(token | context). */
  readonly tokenSurpriseAuroc: number;
  readonly patches: number;
  readonly tokensUsed: number;
}

/** A simulated run's report: the tokens against the simulator's truth. */
export interface RegimesReport {
  readonly backend: string;
  readonly steps: number;
  readonly seconds: number;
  /** The random-init model and simple statistics of the raw returns, through the same scores. */
  readonly baselines: {
    readonly randomInit: { readonly train: TokenScores; readonly heldOut: TokenScores };
    /** NMI of each patch's realised-volatility (mean |return|) terciles with the regimes. */
    readonly volatilityTerciles: number;
    /** NMI of each patch's lag-1 autocorrelation terciles with the regimes. */
    readonly autocorrelationTerciles: number;
    /** AUROC of each patch's largest |return| against the jumps. */
    readonly maxAbsReturnAuroc: number;
  };
  /** Assets seen in training (on the held-out period of time) and the held-out asset. */
  readonly train: TokenScores;
  readonly heldOut: TokenScores;
}

/** Label-free scores of some patches' tokens (a prices run, where no truth is known). */
export interface UnlabelledTokenScores {
  readonly patches: number;
  readonly tokensUsed: number;
  /** exp(entropy) of the tokens' histogram over these patches: the number of equally used tokens it matches. */
  readonly perplexity: number;
  /** NMI between the tokens and the terciles of the patches' realised volatility (mean |standardised return|), terciles over all scored patches. */
  readonly volatilityNmi: number;
  /** −log p(token | context) under masking, over these patches. */
  readonly surprise: { readonly mean: number; readonly median: number; readonly p90: number; readonly p99: number; readonly max: number };
}

/** One scored patch: its asset, the dates of its returns (each return is into its date), its token and −log p. */
export interface ScoredPatch {
  readonly asset: string;
  readonly from: string;
  readonly to: string;
  readonly token: number;
  readonly surprise: number;
}

/** A prices run's report: what can be said without true labels. */
export interface PricesRegimesReport {
  /** Real prices hold no true regimes or injected anomalies, so nothing is scored against labels (no NMI, no AUROC). */
  readonly labels: "none";
  readonly note: string;
  /** The file and how it was split: training assets over the first dates, every asset scored on the rest. */
  readonly prices: {
    readonly source: string;
    readonly assets: readonly string[];
    readonly heldOutAsset: string;
    /** First and last date of the file, and of the returns trained on and scored. */
    readonly dates: readonly [string, string];
    readonly trainDates: readonly [string, string];
    readonly scoredDates: readonly [string, string];
  };
  readonly backend: string;
  readonly steps: number;
  readonly seconds: number;
  /** The random-init model through the same scores. */
  readonly baselines: { readonly randomInit: { readonly train: UnlabelledTokenScores; readonly heldOut: UnlabelledTokenScores } };
  /** Assets seen in training (on the scored period of time) and the held-out asset. */
  readonly train: UnlabelledTokenScores;
  readonly heldOut: UnlabelledTokenScores;
  /** The ten scored patches with the highest surprise after training, the places to look at first. */
  readonly mostSurprising: readonly ScoredPatch[];
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

/** Non-overlapping windows of steps [from, to) for some assets, with per-patch statistics. */
interface EvalSet {
  readonly inputs: Float32Array; // [W, 1, window]
  readonly count: number;
  readonly realizedVol: Float32Array; // per patch, the mean |standardised return|
  readonly maxAbs: Float32Array; // per patch, the largest |standardised return|
  readonly autocorrelation: Float32Array; // per patch, Σ r_t·r_{t−1} / Σ r_t² over its steps (r_{t−1} may precede the patch)
  readonly asset: Int32Array; // per window
  readonly start: Int32Array; // per window
}

function evalSet(T: number, series: Float32Array, assets: readonly number[], from: number, c: RegimesConfig, to = T): EvalSet {
  const per = Math.floor((to - from) / c.window);
  const n = c.window / c.patchSize;
  const count = per * assets.length;
  const inputs = new Float32Array(count * c.window);
  const realizedVol = new Float32Array(count * n);
  const maxAbs = new Float32Array(count * n);
  const autocorrelation = new Float32Array(count * n);
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
        let vol = 0;
        let peak = 0;
        let [lagged, squares] = [0, 1e-12];
        for (let q = 0; q < c.patchSize; q++) {
          const step = s + p * c.patchSize + q;
          const r = series[a * T + step];
          vol += Math.abs(r) / c.patchSize;
          peak = Math.max(peak, Math.abs(r));
          lagged += step > 0 ? r * series[a * T + step - 1] : 0;
          squares += r * r;
        }
        realizedVol[w * n + p] = vol;
        maxAbs[w * n + p] = peak;
        autocorrelation[w * n + p] = lagged / squares;
      }
    }
  return { inputs, count, realizedVol, maxAbs, autocorrelation, asset, start };
}

/** The simulator's truth per patch of an EvalSet. */
interface PatchLabels {
  readonly regimes: Int32Array; // per patch, the majority regime
  readonly anomalies: Uint8Array; // per patch, 1 if any step holds a jump
}

function patchLabels(m: Market, e: EvalSet, c: RegimesConfig): PatchLabels {
  const T = m.config.steps;
  const n = c.window / c.patchSize;
  const regimes = new Int32Array(e.count * n);
  const anomalies = new Uint8Array(e.count * n);
  for (let w = 0; w < e.count; w++)
    for (let p = 0; p < n; p++) {
      const votes = new Map<number, number>();
      for (let q = 0; q < c.patchSize; q++) {
        const step = e.start[w] + p * c.patchSize + q;
        votes.set(m.regimes[step], (votes.get(m.regimes[step]) ?? 0) + 1);
        if (m.anomalies[e.asset[w] * T + step]) anomalies[w * n + p] = 1;
      }
      regimes[w * n + p] = [...votes].sort((x, y) => y[1] - x[1])[0][0];
    }
  return { regimes, anomalies };
}

/**
 * Teacher tokens of every patch; −log p of each under masking (every 4th patch hidden per pass,
 * 4 passes); and the student's whole prediction log p(k | context) [patches, K] of each hidden patch.
 */
async function tokenEval(state: Pick<RunResult<IbotState>, "student" | "teacher">, e: EvalSet, mc: IbotModelConfig, gpu: GpuContext | null, c: RegimesConfig) {
  const inputs = inputChannels(e.inputs, c.window, c);
  const n = mc.vit.imageSize / mc.vit.patchSize;
  const x = spec([e.count, mc.vit.channels, mc.vit.imageSize]);
  const backend = gpu ?? "cpu";
  const tokens = await tokensOf(state.teacher, inputs, e.count, mc, gpu);
  const predictExe = compile(
    (sp: StudentParams, inputs: Tensor, masks: Tensor) => tokenPrediction(inputs, masks, sp, mc),
    [specsOf(state.student), x, spec([e.count, n])],
    { backend },
  );
  const k = vocabularyOf(mc);
  const prediction = new Float32Array(e.count * n * k);
  const surprise = new Float32Array(e.count * n);
  const passes = 4;
  for (let r = 0; r < passes; r++) {
    const masks = Float32Array.from({ length: e.count * n }, (_, i) => ((i % n) % passes === r ? 1 : 0));
    const logp = await toHostValues(predictExe.run(state.student, inputs, masks));
    for (let i = 0; i < masks.length; i++)
      if (masks[i]) {
        for (let j = i * k; j < (i + 1) * k; j++) prediction[j] = logp[j];
        surprise[i] = -logp[i * k + tokens[i]];
      }
  }
  return { tokens, surprise, prediction };
}

/** The teacher's token of every patch of `count` windows of model inputs (inputChannels' output). */
async function tokensOf(
  teacher: RunResult<IbotState>["teacher"],
  inputs: Float32Array,
  count: number,
  mc: IbotModelConfig,
  gpu: GpuContext | null,
): Promise<Int32Array> {
  const x = spec([count, mc.vit.channels, mc.vit.imageSize]);
  const exe = compile((tp: TeacherParams, inputs: Tensor) => teacherTokens(inputs, tp, mc), [specsOf(teacher), x], { backend: gpu ?? "cpu" });
  return Int32Array.from(await toHostValues(exe.run(teacher, inputs)));
}

/** The number of tokens the model predicts over: the first codebook's (VQ) or the prototypes (iBOT). */
const vocabularyOf = (mc: IbotModelConfig) => mc.vq?.codebooks[0] ?? mc.head.outDim;

/** What each token says of a patch's standardised returns: a Gaussian per token, fit to the patches the teacher gave it. */
interface Emission {
  readonly mean: Float64Array;
  readonly variance: Float64Array;
}

/**
 * Each token's Gaussian over the returns of its patches (of `e`, by `tokens`), shrunk towards the
 * pooled Gaussian with the weight of one window's steps so a rare token gets a sane variance.
 */
function fitEmission(e: EvalSet, tokens: Int32Array, k: number, c: RegimesConfig): Emission {
  const n = c.window / c.patchSize;
  const [count, sum, sq] = [new Float64Array(k), new Float64Array(k), new Float64Array(k)];
  for (let i = 0; i < e.count * n; i++)
    for (let q = 0; q < c.patchSize; q++) {
      const v = e.inputs[i * c.patchSize + q]; // patch i's q-th return: a window is its patches end to end
      count[tokens[i]]++;
      sum[tokens[i]] += v;
      sq[tokens[i]] += v * v;
    }
  const total = count.reduce((a, v) => a + v, 0);
  const mean0 = sum.reduce((a, v) => a + v, 0) / total;
  const second0 = sq.reduce((a, v) => a + v, 0) / total;
  const prior = c.window;
  const mean = Float64Array.from(sum, (s, j) => (s + prior * mean0) / (count[j] + prior));
  const variance = Float64Array.from(sq, (s, j) => Math.max(1e-4, (s + prior * second0) / (count[j] + prior) - mean[j] ** 2));
  return { mean, variance };
}

/**
 * The model's surprise at each hidden patch's returns, −log p(x | context) = −log Σ_k p(k | context)·N(x; μ_k, σ_k²):
 * the student's token prediction from the visible patches, each token emitting returns by `emission`.
 * A jump is surprising against the volatility its context predicts, not against the whole series'.
 */
function predictiveSurprise(e: EvalSet, prediction: Float32Array, emission: Emission, c: RegimesConfig): Float32Array {
  const n = c.window / c.patchSize;
  const k = emission.mean.length;
  const out = new Float32Array(e.count * n);
  const terms = new Float64Array(k);
  for (let i = 0; i < out.length; i++) {
    for (let j = 0; j < k; j++) {
      let ll = 0;
      for (let q = 0; q < c.patchSize; q++) {
        const v = e.inputs[i * c.patchSize + q];
        ll -= 0.5 * (Math.log(2 * Math.PI * emission.variance[j]) + (v - emission.mean[j]) ** 2 / emission.variance[j]);
      }
      terms[j] = prediction[i * k + j] + ll;
    }
    const top = terms.reduce((a, v) => Math.max(a, v), -Infinity);
    out[i] = -(top + Math.log(terms.reduce((a, v) => a + Math.exp(v - top), 0)));
  }
  return out;
}

/** tokenEval's result with the predictive surprise of every hidden patch's returns. */
interface TokenEval {
  readonly tokens: Int32Array;
  readonly surprise: Float32Array;
  readonly predictiveSurprise: Float32Array;
}

/** The patch indices of the windows `select` picks. */
function patchesOf(e: EvalSet, select: (window: number) => boolean, n: number): number[] {
  const idx: number[] = [];
  for (let w = 0; w < e.count; w++) if (select(w)) for (let p = 0; p < n; p++) idx.push(w * n + p);
  return idx;
}

function scores(e: EvalSet, l: PatchLabels, r: TokenEval, select: (window: number) => boolean, n: number): TokenScores {
  const idx = patchesOf(e, select, n);
  const pick = <A extends ArrayLike<number>>(a: A) => idx.map((i) => a[i]);
  const anomalies = pick(l.anomalies);
  const rocOf = (score: Float32Array) => (anomalies.some((v) => v) && anomalies.some((v) => !v) ? auroc(pick(score), anomalies) : NaN);
  return {
    nmi: normalizedMutualInformation(pick(r.tokens), pick(l.regimes)),
    anomalyAuroc: rocOf(r.predictiveSurprise),
    tokenSurpriseAuroc: rocOf(r.surprise),
    patches: idx.length,
    tokensUsed: new Set(pick(r.tokens)).size,
  };
}

function unlabelledScores(
  e: EvalSet,
  volTerciles: Int32Array,
  tokens: Int32Array,
  surprise: Float32Array,
  select: (window: number) => boolean,
  n: number,
): UnlabelledTokenScores {
  const idx = patchesOf(e, select, n);
  const picked = idx.map((i) => tokens[i]);
  const counts = new Map<number, number>();
  for (const k of picked) counts.set(k, (counts.get(k) ?? 0) + 1);
  const s = Float64Array.from(idx, (i) => surprise[i]).sort();
  const q = (f: number) => s[Math.min(s.length - 1, Math.floor(f * s.length))];
  return {
    patches: idx.length,
    tokensUsed: counts.size,
    perplexity: histogramUsage([...counts.values()]).perplexity,
    volatilityNmi: normalizedMutualInformation(
      picked,
      idx.map((i) => volTerciles[i]),
    ),
    surprise: { mean: s.reduce((a, v) => a + v, 0) / s.length, median: q(0.5), p90: q(0.9), p99: q(0.99), max: s[s.length - 1] },
  };
}

/** Each asset's returns z-scored over steps [from, to): standardise (src/data/market.ts) for returns that carry no simulator truth. */
function standardiseReturns(returns: Float32Array, assets: number, T: number, from: number, to: number): Float32Array {
  const out = new Float32Array(returns.length);
  for (let a = 0; a < assets; a++) {
    const row = returns.subarray(a * T + from, a * T + to);
    const mean = row.reduce((s, v) => s + v, 0) / row.length;
    const std = Math.sqrt(row.reduce((s, v) => s + (v - mean) ** 2, 0) / row.length) || 1;
    for (let t = 0; t < T; t++) out[a * T + t] = (returns[a * T + t] - mean) / std;
  }
  return out;
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
export const REGIMES_OUTPUTS = ["metrics.jsonl", "report.json", "regimes.svg", "tokens.csv"] as const;

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

/**
 * Trains iBOT on the simulated market (`prices` "") and scores its tokens against the truth, or on
 * the closes of a prices CSV and scores them without labels; writes metrics.jsonl and report.json,
 * and regimes.svg (simulated) or tokens.csv (prices) in `outDir`. A prices file is read and checked
 * against the config before the out-dir is touched: a bad row is a DataError naming its line, a file
 * the config does not fit (too few assets or dates, heldOutAsset past its assets) a ConfigError.
 */
export function trainRegimes(c: RegimesConfig & { readonly prices: "" }, hooks?: RegimesHooks): Promise<RegimesReport>;
export function trainRegimes(c: RegimesConfig, hooks?: RegimesHooks): Promise<RegimesReport | PricesRegimesReport>;
export async function trainRegimes(c: RegimesConfig, hooks: RegimesHooks = {}): Promise<RegimesReport | PricesRegimesReport> {
  const log = hooks.log ?? ((s: string) => console.log(s));
  const run = { command: "wgrad regimes", outputs: REGIMES_OUTPUTS };
  if (c.prices === "")
    // Before any work: a writable folder that no other run uses and no earlier run's outputs fill.
    return inRunDir(c.outDir, run, systemRunDirEnv(log), () => trainSimulated(c, hooks, log));
  const p = loadPricesCsv(c.prices);
  const problem = pricesProblem(c, p);
  if (problem) throw new ConfigError(`invalid config: ${problem}`);
  return inRunDir(c.outDir, run, systemRunDirEnv(log), () => trainOnPrices(c, p, hooks, log));
}

/** The training loop over windows of `series` [assets, T] of the training assets and steps [0, trainEnd); the trained state. */
async function trainLoop(
  c: RegimesConfig,
  mc: IbotModelConfig,
  init: RunResult<IbotState>,
  series: Float32Array,
  T: number,
  trainAssets: readonly number[],
  trainEnd: number,
  gpu: GpuContext | null,
  hooks: RegimesHooks,
) {
  const n = c.window / c.patchSize;
  const B = c.batchSize;
  const total = c.epochs * c.itersPerEpoch;
  const sch = regimesSchedules(c);
  const batchSpec = { globals: spec([2 * B, channelsOf(c), c.window]), masks: spec([2 * B, n]) };
  const trainer = new IbotTrainer(mc, init, batchSpec, gpu);
  const metricsPath = join(c.outDir, "metrics.jsonl");
  writeFileSync(metricsPath, "");
  for (let step = 0; step < total; step++) {
    const views = seriesViews(series, T, trainAssets, B, 2, [0, trainEnd], mixSeeds(c.seed, step, 5), { ...DEFAULT_SERIES_VIEWS, length: c.window });
    const globals = inputChannels(views, c.window, c);
    const m = maskBatch(mixSeeds(c.seed, step, 6), 2 * B, 1, n, { predRatio: c.predRatio, predRatioVar: 0, epoch: 0, shape: "rand" });
    const { loss } = await trainer.step({ globals, masks: Float32Array.from(m.masks) }, scheduleValues(sch, step, c.seed));
    if (!Number.isFinite(loss)) throw new Error(`regimes: the loss became ${loss} at step ${step}`);
    appendFileSync(metricsPath, JSON.stringify({ kind: "step", step, loss }) + "\n");
    hooks.onStep?.(step, total, loss);
  }
  return { state: trainer.state, total };
}

async function trainSimulated(c: RegimesConfig, hooks: RegimesHooks, log: (line: string) => void): Promise<RegimesReport> {
  const t0 = performance.now();
  const market = simulateMarket(c.seed, { ...(c.market === "hard" ? HARD_MARKET : DEFAULT_MARKET), assets: c.assets, steps: c.steps });
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
  const init = evaluate(() => initIbotState(randomKey(c.seed), mc));
  const test = evalSet(c.steps, series, [...trainAssets, c.heldOutAsset], trainEnd, c);
  const labels = patchLabels(market, test, c);
  const isHeldOut = (w: number) => test.asset[w] === c.heldOutAsset;
  const fit = evalSet(c.steps, series, trainAssets, 0, c, trainEnd); // where each token's emission is fit
  const fitInputs = inputChannels(fit.inputs, c.window, c);
  const both = async (st: Pick<RunResult<IbotState>, "student" | "teacher">) => {
    const t = await tokenEval(st, test, mc, gpu, c);
    const emission = fitEmission(fit, await tokensOf(st.teacher, fitInputs, fit.count, mc, gpu), vocabularyOf(mc), c);
    const r: TokenEval = { ...t, predictiveSurprise: predictiveSurprise(test, t.prediction, emission, c) };
    return {
      r,
      train: scores(test, labels, r, (w) => !isHeldOut(w), n),
      heldOut: scores(test, labels, r, isHeldOut, n),
    };
  };
  const before = await both(init);
  const volatilityTerciles = normalizedMutualInformation(terciles(test.realizedVol), labels.regimes);
  const autocorrelationTerciles = normalizedMutualInformation(terciles(test.autocorrelation), labels.regimes);
  const maxAbsReturnAuroc = auroc(test.maxAbs, labels.anomalies);
  log(
    `baselines: random-init tokens NMI ${before.train.nmi.toFixed(3)} (held-out asset ${before.heldOut.nmi.toFixed(3)}); realised-volatility terciles NMI ${volatilityTerciles.toFixed(3)}, autocorrelation terciles NMI ${autocorrelationTerciles.toFixed(3)}; max |return| anomaly AUROC ${maxAbsReturnAuroc.toFixed(3)}`,
  );

  const trained = await trainLoop(c, mc, init, series, c.steps, trainAssets, trainEnd, gpu, hooks);
  const after = await both(trained.state);
  const report: RegimesReport = {
    backend: gpu ? `webgpu (${gpu.adapterName})` : "cpu",
    steps: trained.total,
    seconds: (performance.now() - t0) / 1000,
    baselines: { randomInit: { train: before.train, heldOut: before.heldOut }, volatilityTerciles, autocorrelationTerciles, maxAbsReturnAuroc },
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

const NO_LABELS_NOTE =
  "real prices carry no true regimes or injected anomalies, so the tokens are not scored against labels (no NMI, no AUROC): the report gives tokens used, their perplexity, their NMI with realised-volatility terciles, the surprise −log p(token | context) and the most surprising patches";

async function trainOnPrices(c: RegimesConfig, p: PriceTable, hooks: RegimesHooks, log: (line: string) => void): Promise<PricesRegimesReport> {
  const t0 = performance.now();
  const A = p.assets.length;
  const T = p.dates.length - 1;
  // Return t is the one into date t + 1.
  const dateOf = (step: number) => p.dates[step + 1];
  const trainEnd = Math.floor(T * c.trainFraction);
  const series = standardiseReturns(logReturns(p), A, T, 0, trainEnd); // statistics of the training period only
  const trainAssets = Array.from({ length: A }, (_, a) => a).filter((a) => a !== c.heldOutAsset);
  const heldOutName = p.assets[c.heldOutAsset];
  log(
    `prices: ${p.source}: ${A} assets × ${p.dates.length} dates (${p.dates[0]} to ${p.dates[T]}), ${T} log returns each; no true regimes or anomalies, so the tokens are scored without labels; training on ${trainAssets.map((a) => p.assets[a]).join(", ")} over ${dateOf(0)} to ${dateOf(trainEnd - 1)}, ${heldOutName} (asset ${c.heldOutAsset}) held out`,
  );
  const gpu = await chooseBackend(c.backend, log);
  log(`backend: ${gpu ? `webgpu on ${gpu.adapterName}` : "cpu"}`);

  const mc = regimesModelConfig(c);
  const n = c.window / c.patchSize;
  const init = evaluate(() => initIbotState(randomKey(c.seed), mc));
  const test = evalSet(T, series, [...trainAssets, c.heldOutAsset], trainEnd, c);
  const volTerciles = terciles(test.realizedVol);
  const isHeldOut = (w: number) => test.asset[w] === c.heldOutAsset;
  const both = async (st: Pick<RunResult<IbotState>, "student" | "teacher">) => {
    const r = await tokenEval(st, test, mc, gpu, c);
    return {
      r,
      train: unlabelledScores(test, volTerciles, r.tokens, r.surprise, (w) => !isHeldOut(w), n),
      heldOut: unlabelledScores(test, volTerciles, r.tokens, r.surprise, isHeldOut, n),
    };
  };
  const before = await both(init);
  log(
    `baselines (no labels): random-init tokens used ${before.train.tokensUsed} (held-out asset ${before.heldOut.tokensUsed}), NMI with realised-volatility terciles ${before.train.volatilityNmi.toFixed(3)} (held-out asset ${before.heldOut.volatilityNmi.toFixed(3)})`,
  );

  const trained = await trainLoop(c, mc, init, series, T, trainAssets, trainEnd, gpu, hooks);
  const after = await both(trained.state);
  const patches: ScoredPatch[] = [];
  for (let w = 0; w < test.count; w++)
    for (let q = 0; q < n; q++) {
      const s = test.start[w] + q * c.patchSize;
      patches.push({
        asset: p.assets[test.asset[w]],
        from: dateOf(s),
        to: dateOf(s + c.patchSize - 1),
        token: after.r.tokens[w * n + q],
        surprise: after.r.surprise[w * n + q],
      });
    }
  const scoredEnd = trainEnd + Math.floor((T - trainEnd) / c.window) * c.window;
  const report: PricesRegimesReport = {
    labels: "none",
    note: NO_LABELS_NOTE,
    prices: {
      source: p.source,
      assets: p.assets,
      heldOutAsset: heldOutName,
      dates: [p.dates[0], p.dates[T]],
      trainDates: [dateOf(0), dateOf(trainEnd - 1)],
      scoredDates: [dateOf(trainEnd), dateOf(scoredEnd - 1)],
    },
    backend: gpu ? `webgpu (${gpu.adapterName})` : "cpu",
    steps: trained.total,
    seconds: (performance.now() - t0) / 1000,
    baselines: { randomInit: { train: before.train, heldOut: before.heldOut } },
    train: after.train,
    heldOut: after.heldOut,
    mostSurprising: [...patches].sort((a, b) => b.surprise - a.surprise).slice(0, 10),
  };
  writeFileSync(join(c.outDir, "report.json"), JSON.stringify(report, null, 2));
  // Every scored patch's token, for plotting against the prices elsewhere (regimes.svg draws a true regime, which real prices lack).
  const quote = (v: string) => (/[",\r\n]/.test(v) ? `"${v.replace(/"/g, '""')}"` : v);
  const rows = patches.map((q) => `${quote(q.asset)},${q.from},${q.to},${q.token},${q.surprise}`);
  writeFileSync(join(c.outDir, "tokens.csv"), ["asset,from,to,token,surprise", ...rows].join("\n") + "\n");
  return report;
}
