/**
 * A seeded market simulator that knows the truth (spec §11's "market regimes"): a hidden Markov
 * chain of regimes sets every asset's drift and volatility; assets are correlated through one
 * common factor and differ in volatility scale; isolated jumps are injected as labelled anomalies.
 * Also the views iBOT trains on: windows of returns with amplitude jitter and noise.
 */
import { createRng, type Rng } from "./rng.js";

/** One hidden market regime: its name and the per-step return distribution it sets. */
export interface Regime {
  readonly name: string;
  /** Per-step mean return and volatility. */
  readonly drift: number;
  readonly vol: number;
  /** AR(1) coefficient φ of the returns' noise (0: independent steps); `vol` stays the unconditional volatility. */
  readonly ar?: number;
  /** This regime's loading on the common factor, overriding the market's `factorLoading`. */
  readonly factorLoading?: number;
}

/** The simulated market: size, regimes and their Markov chain, cross-asset correlation, and injected jumps. */
export interface MarketConfig {
  readonly assets: number;
  readonly steps: number;
  readonly regimes: readonly Regime[];
  /** Probability that the chain stays in its regime at each step (the rest is spread evenly over the others). */
  readonly stay: number;
  /** Loading of every asset on the common factor (pairwise return correlation ≈ loading²). */
  readonly factorLoading: number;
  /** Per-asset, per-step probability of an injected jump. */
  readonly anomalyRate: number;
  /** Jump size in units of the asset's current volatility (its sign is random). */
  readonly anomalySize: number;
  /** With this, each jump's size is uniform in [anomalySize, anomalySizeMax]. */
  readonly anomalySizeMax?: number;
  /** Degrees of freedom of Student-t noise scaled to unit variance (an integer above 2); absent: Gaussian. */
  readonly tailDf?: number;
}

/** Six assets over 6000 steps in three regimes (calm, trending, turbulent) with rare 8σ jumps: the regimes variant's market. */
export const DEFAULT_MARKET: MarketConfig = {
  assets: 6,
  steps: 6000,
  regimes: [
    { name: "calm", drift: 0.0002, vol: 0.004 },
    { name: "trending", drift: 0.002, vol: 0.01 },
    { name: "turbulent", drift: -0.003, vol: 0.03 },
  ],
  stay: 0.985,
  factorLoading: 0.7,
  anomalyRate: 0.005,
  anomalySize: 8,
};

/**
 * A market where simple statistics fail (`wgrad regimes --market hard`): three regimes of equal
 * volatility that differ in autocorrelation (mean-reverting, independent, trending) and in
 * cross-asset correlation, heavy-tailed Student-t noise (4 degrees of freedom), and jumps of 3–6σ.
 */
export const HARD_MARKET: MarketConfig = {
  ...DEFAULT_MARKET,
  regimes: [
    { name: "mean-reverting", drift: 0, vol: 0.01, ar: -0.5, factorLoading: 0.3 },
    { name: "independent", drift: 0, vol: 0.01, ar: 0, factorLoading: 0.6 },
    { name: "trending", drift: 0, vol: 0.01, ar: 0.5, factorLoading: 0.9 },
  ],
  anomalySize: 3,
  anomalySizeMax: 6,
  tailDf: 4,
};

/** A simulated market: its returns and the truth behind them (regime per step, injected jumps, volatility scales). */
export interface Market {
  readonly config: MarketConfig;
  /** Log returns, asset-major [assets, steps]. */
  readonly returns: Float32Array;
  /** The hidden regime at each step [steps]. */
  readonly regimes: Int32Array;
  /** 1 where a jump was injected, asset-major [assets, steps]. */
  readonly anomalies: Uint8Array;
  /** Each asset's volatility multiplier. */
  readonly scales: Float32Array;
}

const gaussian = (rng: Rng): number => {
  const u = 1 - rng.next();
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * rng.next());
};

/** Student-t draws with `df` degrees of freedom scaled to unit variance (df > 2): a Gaussian over √(χ²_df / df). */
const studentT =
  (df: number) =>
  (rng: Rng): number => {
    let chi = 0;
    for (let i = 0; i < df; i++) chi += gaussian(rng) ** 2;
    return (gaussian(rng) / Math.sqrt(chi / df)) * Math.sqrt((df - 2) / df);
  };

/** Simulates a market; the same seed gives the same market. */
export function simulateMarket(seed: number, c: MarketConfig = DEFAULT_MARKET): Market {
  const rng = createRng(seed);
  const { assets: A, steps: T } = c;
  const R = c.regimes.length;
  const regimes = new Int32Array(T);
  regimes[0] = rng.int(0, R - 1);
  for (let t = 1; t < T; t++) {
    const r = regimes[t - 1];
    regimes[t] = R > 1 && !(rng.next() < c.stay) ? (r + 1 + rng.int(0, R - 2)) % R : r;
  }
  const scales = Float32Array.from({ length: A }, () => 0.7 + 0.7 * rng.next());
  const returns = new Float32Array(A * T);
  const anomalies = new Uint8Array(A * T);
  const noise = c.tailDf === undefined ? gaussian : studentT(c.tailDf);
  const previous = new Float64Array(A); // each asset's last noise term, for AR(1) regimes
  for (let t = 0; t < T; t++) {
    const { drift, vol, ar = 0, factorLoading = c.factorLoading } = c.regimes[regimes[t]];
    const idio = Math.sqrt(1 - factorLoading ** 2);
    const f = noise(rng);
    for (let a = 0; a < A; a++) {
      const sigma = vol * scales[a];
      // φ·previous + √(1 − φ²)·innovation keeps the unconditional variance at sigma².
      const e = ar * previous[a] + Math.sqrt(1 - ar * ar) * (factorLoading * f + idio * noise(rng));
      previous[a] = e;
      let r = drift + sigma * e;
      if (rng.next() < c.anomalyRate) {
        const size = c.anomalySizeMax === undefined ? c.anomalySize : c.anomalySize + (c.anomalySizeMax - c.anomalySize) * rng.next();
        r += (rng.next() < 0.5 ? -1 : 1) * size * sigma;
        anomalies[a * T + t] = 1;
      }
      returns[a * T + t] = r;
    }
  }
  return { config: c, returns, regimes, anomalies, scales };
}

/** Each asset's returns z-scored with its own mean and std over steps [from, to) (no labels used). */
export function standardise(m: Market, from = 0, to = m.config.steps): Float32Array {
  const T = m.config.steps;
  const out = new Float32Array(m.returns.length);
  for (let a = 0; a < m.config.assets; a++) {
    const row = m.returns.subarray(a * T + from, a * T + to);
    const mean = row.reduce((s, v) => s + v, 0) / row.length;
    const std = Math.sqrt(row.reduce((s, v) => s + (v - mean) ** 2, 0) / row.length) || 1;
    for (let t = 0; t < T; t++) out[a * T + t] = (m.returns[a * T + t] - mean) / std;
  }
  return out;
}

/** How seriesViews cuts and augments windows: length, shift between views, amplitude jitter, noise. */
export interface SeriesViewOptions {
  /** Window length in steps. */
  readonly length: number;
  /** Views of one window start up to this many steps apart. */
  readonly maxShift: number;
  /** Amplitude jitter: each view is scaled by a factor in [1 − s, 1 + s]. */
  readonly scaleJitter: number;
  /** Standard deviation of added Gaussian noise (in standardised units). */
  readonly noise: number;
}

/** Windows of 64 steps, views up to 4 steps apart, ±20% amplitude jitter and noise of std 0.1. */
export const DEFAULT_SERIES_VIEWS: SeriesViewOptions = { length: 64, maxShift: 4, scaleJitter: 0.2, noise: 0.1 };

/**
 * A batch of G views of B random windows, crop-major [G·B, 1, length]: windows of the given assets
 * starting in [from, to − length − maxShift], each view shifted, scaled and noised on its own.
 */
export function seriesViews(
  series: Float32Array,
  steps: number,
  assets: readonly number[],
  batch: number,
  views: number,
  range: readonly [number, number],
  seed: number,
  o: SeriesViewOptions = DEFAULT_SERIES_VIEWS,
): Float32Array {
  const rng = createRng(seed);
  const out = new Float32Array(views * batch * o.length);
  for (let b = 0; b < batch; b++) {
    const a = assets[rng.int(0, assets.length - 1)];
    const start = rng.int(range[0], range[1] - o.length - o.maxShift);
    for (let v = 0; v < views; v++) {
      const s = start + rng.int(0, o.maxShift);
      const scale = 1 + o.scaleJitter * (2 * rng.next() - 1);
      const dst = (v * batch + b) * o.length;
      for (let t = 0; t < o.length; t++) out[dst + t] = scale * series[a * steps + s + t] + o.noise * gaussian(rng);
    }
  }
  return out;
}
