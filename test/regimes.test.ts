/** iBOT on market time series: the simulator's truth, the agreement scores, the 1-D patch embedding, and a short end-to-end run. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import * as w from "../src/internals.js";
import { DEFAULT_MARKET, HARD_MARKET, seriesViews, simulateMarket, standardise } from "../src/data/index.js";
import { auroc, normalizedMutualInformation } from "../src/eval/agreement.js";
import { TINY_REGIMES } from "./tinyRun.js";

test("the market simulator is seeded and its regimes, volatilities, correlations and jumps follow its configuration", () => {
  const m = simulateMarket(3);
  assert.deepEqual(simulateMarket(3).returns, m.returns);
  assert.notDeepEqual(simulateMarket(4).returns, m.returns);
  const { assets: A, steps: T, regimes, stay, factorLoading } = DEFAULT_MARKET;
  // Dwell times of the Markov chain: mean 1/(1 − stay).
  let switches = 0;
  for (let t = 1; t < T; t++) if (m.regimes[t] !== m.regimes[t - 1]) switches++;
  const dwell = T / (switches + 1);
  assert.ok(Math.abs(dwell - 1 / (1 - stay)) < 0.35 / (1 - stay), `mean dwell ${dwell}`);
  // Per regime and asset, the return std (without jumps) is vol × the asset's scale.
  for (let r = 0; r < regimes.length; r++)
    for (let a = 0; a < A; a++) {
      const xs: number[] = [];
      for (let t = 0; t < T; t++) if (m.regimes[t] === r && !m.anomalies[a * T + t]) xs.push(m.returns[a * T + t]);
      const mean = xs.reduce((s, v) => s + v, 0) / xs.length;
      const std = Math.sqrt(xs.reduce((s, v) => s + (v - mean) ** 2, 0) / xs.length);
      assert.ok(Math.abs(std / (regimes[r].vol * m.scales[a]) - 1) < 0.15, `regime ${r}, asset ${a}: std ${std}`);
    }
  // Assets co-move through the factor: correlation ≈ loading² within the calm regime.
  const calm = Array.from({ length: T }, (_, t) => t).filter((t) => m.regimes[t] === 0 && !m.anomalies[t] && !m.anomalies[T + t]);
  const x = calm.map((t) => m.returns[t]);
  const y = calm.map((t) => m.returns[T + t]);
  const mx = x.reduce((s, v) => s + v, 0) / x.length;
  const my = y.reduce((s, v) => s + v, 0) / y.length;
  const cov = x.reduce((s, v, i) => s + (v - mx) * (y[i] - my), 0);
  const corr = cov / Math.sqrt(x.reduce((s, v) => s + (v - mx) ** 2, 0) * y.reduce((s, v) => s + (v - my) ** 2, 0));
  assert.ok(Math.abs(corr - factorLoading ** 2) < 0.1, `correlation ${corr}`);
  const jumps = m.anomalies.reduce((s, v) => s + v, 0);
  const expected = DEFAULT_MARKET.anomalyRate * A * T;
  assert.ok(Math.abs(jumps - expected) < 4 * Math.sqrt(expected), `${jumps} jumps, expected ≈ ${expected}`);
});

test("the hard market: regimes of one volatility that differ in autocorrelation and cross-asset correlation, with heavy tails", () => {
  const m = simulateMarket(5, { ...HARD_MARKET, steps: 30000, anomalyRate: 0 });
  const T = 30000;
  HARD_MARKET.regimes.forEach((regime, k) => {
    let [l, s2, x, s1, f4, n] = [0, 0, 0, 0, 0, 0];
    for (let t = 1; t < T; t++)
      if (m.regimes[t] === k && m.regimes[t - 1] === k) {
        const r0 = m.returns[t] / m.scales[0];
        const r1 = m.returns[T + t] / m.scales[1];
        l += r0 * (m.returns[t - 1] / m.scales[0]);
        s2 += r0 * r0;
        x += r0 * r1;
        s1 += r1 * r1;
        f4 += r0 ** 4;
        n++;
      }
    const vol = Math.sqrt(s2 / n);
    assert.ok(Math.abs(vol / regime.vol - 1) < 0.1, `${regime.name}: volatility ${vol} against ${regime.vol}`);
    assert.ok(Math.abs(l / s2 - regime.ar!) < 0.06, `${regime.name}: lag-1 autocorrelation ${l / s2} against ${regime.ar}`);
    assert.ok(Math.abs(x / Math.sqrt(s2 * s1) - regime.factorLoading! ** 2) < 0.08, `${regime.name}: correlation against ${regime.factorLoading! ** 2}`);
    // Student-t(4) noise: excess kurtosis well above a Gaussian's 0.
    assert.ok(f4 / n / (s2 / n) ** 2 > 4, `${regime.name}: kurtosis ${f4 / n / (s2 / n) ** 2}`);
  });
  const jumps = simulateMarket(5, HARD_MARKET).anomalies.reduce((a, v) => a + v, 0);
  assert.ok(Math.abs(jumps / (HARD_MARKET.assets * HARD_MARKET.steps) - HARD_MARKET.anomalyRate) < 0.0015, `jump rate ${jumps}`);
});

test("series views: G views of B windows, crop-major; the views of one window agree up to shift, scale and noise", () => {
  const m = simulateMarket(1, { ...DEFAULT_MARKET, assets: 2, steps: 500 });
  const s = standardise(m);
  const v = seriesViews(s, 500, [0, 1], 8, 2, [0, 500], 9, { length: 32, maxShift: 0, scaleJitter: 0, noise: 0 });
  assert.equal(v.length, 2 * 8 * 32);
  assert.deepEqual(v.subarray(0, 8 * 32), v.subarray(8 * 32));
  const noisy = seriesViews(s, 500, [0, 1], 8, 2, [0, 500], 9);
  assert.ok(noisy.every(Number.isFinite) && noisy.some((x, i) => x !== noisy[(i + 8 * 64) % noisy.length]));
});

test("NMI: 1 for a renamed copy, near 0 for independent labels, and the textbook value on a small case", () => {
  fc.assert(
    fc.property(fc.array(fc.integer({ min: 0, max: 4 }), { minLength: 2, maxLength: 60 }), (a) => {
      const renamed = a.map((v) => 10 - 3 * v);
      assert.ok(Math.abs(normalizedMutualInformation(a, renamed) - 1) < 1e-12 || new Set(a).size === 1);
    }),
  );
  const a = Array.from({ length: 4000 }, (_, i) => i % 3);
  const b = Array.from({ length: 4000 }, (_, i) => Math.floor(i / 3) % 2);
  assert.ok(normalizedMutualInformation(a, b) < 0.01);
  // a = [0,0,1,1], b = [0,0,0,1]: I = 1.5·ln 2 − 0.75·ln 3 (nats), H(a) = ln 2, H(b) = 2 ln 2 − 0.75 ln 3.
  const hb = 2 * Math.log(2) - 0.75 * Math.log(3);
  const i = 1.5 * Math.log(2) - 0.75 * Math.log(3);
  assert.ok(Math.abs(normalizedMutualInformation([0, 0, 1, 1], [0, 0, 0, 1]) - i / Math.sqrt(Math.log(2) * hb)) < 1e-12);
});

test("AUROC equals the share of positive–negative pairs ranked right (ties half)", () => {
  fc.assert(
    fc.property(fc.array(fc.tuple(fc.integer({ min: 0, max: 5 }), fc.boolean()), { minLength: 2, maxLength: 40 }), (xs) => {
      const pos = xs.filter(([, l]) => l).map(([s]) => s);
      const neg = xs.filter(([, l]) => !l).map(([s]) => s);
      if (!pos.length || !neg.length) return;
      let pairs = 0;
      for (const p of pos) for (const q of neg) pairs += p > q ? 1 : p === q ? 0.5 : 0;
      const got = auroc(
        xs.map(([s]) => s),
        xs.map(([, l]) => (l ? 1 : 0)),
      );
      assert.ok(Math.abs(got - pairs / (pos.length * neg.length)) < 1e-12);
    }),
  );
  assert.throws(() => auroc([1, 2], [1, 1]), /at least one positive and one negative/);
});

test("the 1-D patch embedding is a stride-p Conv1d; a series of another length is refused by name", () => {
  const cfg: w.ViTConfig = { dims: 1, imageSize: 12, channels: 2, patchSize: 4, width: 3, depth: 1, heads: 1, mlpRatio: 2, qkvBias: true };
  const r = w.evaluate(() => {
    const x = w.normal(w.randomKey(1), [2, 2, 12], "f64");
    const p = w.initViT(w.randomKey(2), cfg);
    const wt = w.cast(p.patchEmbed.w, "f64");
    return { x, wt, y: w.linear(w.patchify1d(x, 4), wt) };
  });
  // conv1d: y[b, n, d] = Σ_c Σ_k x[b, c, 4n + k] · W[(c, k), d]
  for (let b = 0; b < 2; b++)
    for (let n = 0; n < 3; n++)
      for (let d = 0; d < 3; d++) {
        let s = 0;
        for (let c = 0; c < 2; c++) for (let k = 0; k < 4; k++) s += r.x.data[b * 24 + c * 12 + 4 * n + k] * r.wt.data[(c * 4 + k) * 3 + d];
        assert.ok(Math.abs(r.y.data[(b * 3 + n) * 3 + d] - s) < 1e-12);
      }
  assert.throws(
    () => w.evaluate(() => w.backbone(w.zeros([1, 2, 16]), w.initViT(w.randomKey(2), cfg), cfg)),
    (e: Error) => e instanceof w.ShapeError && /series of 4 patches.*made for 3/.test(e.message),
  );
});

test("wgrad regimes end to end on the CPU backend: a report against the truth and a plot of tokens over a price path", async () => {
  const { trainRegimes, DEFAULT_REGIMES } = await import("../src/train/regimes.js");
  const dir = mkdtempSync(join(tmpdir(), "wgrad-regimes-"));
  try {
    const c = {
      ...DEFAULT_REGIMES,
      backend: "cpu" as const,
      outDir: dir,
      assets: 3,
      heldOutAsset: 2,
      steps: 800,
      ...TINY_REGIMES,
    };
    const r = await trainRegimes(c, { log: () => {} });
    for (const s of [r.train, r.heldOut, r.baselines.randomInit.train]) {
      assert.ok(s.nmi >= 0 && s.nmi <= 1, `nmi ${s.nmi}`);
      for (const roc of [s.anomalyAuroc, s.tokenSurpriseAuroc]) assert.ok(Number.isNaN(roc) || (roc >= 0 && roc <= 1));
      assert.ok(s.tokensUsed >= 1 && s.tokensUsed <= 4);
    }
    assert.equal(r.heldOut.patches, Math.floor(200 / 16) * 4);
    assert.equal(readFileSync(join(dir, "metrics.jsonl"), "utf8").trim().split("\n").length, 3);
    assert.match(readFileSync(join(dir, "regimes.svg"), "utf8"), /^<svg[\s\S]*true regime/);
    assert.ok(existsSync(join(dir, "report.json")));
    assert.ok(r.baselines.autocorrelationTerciles >= 0 && r.baselines.autocorrelationTerciles <= 1);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
