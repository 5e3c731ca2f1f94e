/**
 * Values and gradients of the composites (autodiff on the CPU backend, float64) against an
 * independent reference: closed-form formulas in plain JavaScript, with no wgrad calls.
 * Inputs are fixed (sine waves), so every run checks the same numbers.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import * as w from "../src/internals.js";

type T = w.Tensor;
type Vec = readonly number[];

// ---------------------------------------------------------------- helpers

/** n deterministic values sin(a·i + b)·s. */
const wave = (n: number, a = 1.3, b = 0.2, s = 1.5): number[] => Array.from({ length: n }, (_, i) => Math.sin(a * i + b) * s);
const f64 = (values: Vec, shape: readonly number[]) => w.hostTensor(values, shape, "f64");
const sizeOf = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);
const sumOf = (xs: Vec) => xs.reduce((a, b) => a + b, 0);

/** Asserts max|actual − expected| ≤ tol·max(1, max|expected|), and the shape when given. */
function close(actual: w.HostTensor, expected: Vec, label: string, shape?: readonly number[], tol = 1e-12): void {
  if (shape) assert.deepEqual([...actual.shape], [...shape], `${label}: shape`);
  assert.equal(actual.dtype, "f64", `${label}: dtype`);
  assert.equal(actual.size, expected.length, `${label}: size`);
  let err = 0;
  let scale = 1;
  expected.forEach((e, i) => {
    err = Math.max(err, Math.abs(actual.data[i] - e));
    scale = Math.max(scale, Math.abs(e));
  });
  assert.ok(err <= tol * scale, `${label}: max abs diff ${err.toExponential(2)} > ${tol}·${scale.toPrecision(3)}`);
}

/**
 * For a row-major `shape` reduced over `axes`: one list of flat indices per output element (in
 * row-major order of the kept dims), each list in row-major order of the reduced dims.
 */
function groups(shape: readonly number[], axes: readonly number[]): number[][] {
  const out: number[][] = [];
  for (let i = 0; i < sizeOf(shape); i++) {
    let rem = i;
    let key = 0;
    let stride = 1;
    for (let d = shape.length - 1; d >= 0; d--) {
      const c = rem % shape[d];
      rem = Math.floor(rem / shape[d]);
      if (!axes.includes(d)) {
        key += c * stride;
        stride *= shape[d];
      }
    }
    (out[key] ??= []).push(i);
  }
  return out;
}

/** Softmax of x over each group, written into a new array. */
function softmaxRef(x: Vec, gs: readonly number[][]): number[] {
  const p = new Array<number>(x.length);
  for (const g of gs) {
    const m = Math.max(...g.map((i) => x[i]));
    const z = sumOf(g.map((i) => Math.exp(x[i] - m)));
    for (const i of g) p[i] = Math.exp(x[i] - m) / z;
  }
  return p;
}

/** log Σ exp over each group. */
const lseRef = (x: Vec, gs: readonly number[][]): number[] =>
  gs.map((g) => {
    const m = Math.max(...g.map((i) => x[i]));
    return m + Math.log(sumOf(g.map((i) => Math.exp(x[i] - m))));
  });

/** Row-major matrices: a [n, k] · b [k, m]. */
function mm(a: Vec, b: Vec, n: number, k: number, m: number): number[] {
  const c = new Array<number>(n * m).fill(0);
  for (let i = 0; i < n; i++) for (let p = 0; p < k; p++) for (let j = 0; j < m; j++) c[i * m + j] += a[i * k + p] * b[p * m + j];
  return c;
}
/** The transpose of a [r, c] matrix. */
const tr = (a: Vec, r: number, c: number): number[] => Array.from({ length: r * c }, (_, i) => a[(i % r) * c + Math.floor(i / r)]);
/** Adds a row vector to every row of a matrix. */
const addRow = (a: Vec, row: Vec): number[] => a.map((v, i) => v + row[i % row.length]);

/** erf by the all-positive series 2/√π·e^(−x²)·Σ 2ⁿx^(2n+1)/(2n+1)!! (no cancellation; for |x| ≲ 5). */
function erfRef(x: number): number {
  const t = Math.abs(x);
  let term = t;
  let s = t;
  for (let n = 1; term > 1e-18 * s; n++) {
    term *= (2 * t * t) / (2 * n + 1);
    s += term;
  }
  return (Math.sign(x) * s * Math.exp(-t * t) * 2) / Math.sqrt(Math.PI);
}
const Phi = (x: number) => 0.5 * (1 + erfRef(x / Math.SQRT2));
const phi = (x: number) => Math.exp(-0.5 * x * x) / Math.sqrt(2 * Math.PI);

// ---------------------------------------------------------------- reference self-checks

test("reference erf matches tabulated values", () => {
  const table: [number, number][] = [
    [0, 0],
    [0.1, 0.1124629160182849],
    [0.5, 0.5204998778130465],
    [1, 0.8427007929497149],
    [2, 0.9953222650189527],
    [3, 0.9999779095030014],
    [-1.5, -0.9661051464753108],
  ];
  for (const [x, e] of table) assert.ok(Math.abs(erfRef(x) - e) <= 1e-15 * Math.abs(e), `erf(${x}) = ${erfRef(x)}, expected ${e}`);
});

test("reference groups enumerate reductions in row-major order", () => {
  assert.deepEqual(groups([2, 3], [1]), [
    [0, 1, 2],
    [3, 4, 5],
  ]);
  assert.deepEqual(groups([2, 3], [0]), [
    [0, 3],
    [1, 4],
    [2, 5],
  ]);
  assert.deepEqual(groups([2, 2, 2], [0, 2]), [
    [0, 1, 4, 5],
    [2, 3, 6, 7],
  ]);
});

// ---------------------------------------------------------------- softmax family

test("softmax: value and gradient of Σ w·softmax(x), along the last axis and axis 0", () => {
  const shape = [3, 5];
  const x = wave(15);
  const wt = wave(15, 0.7, 1.1, 1);
  for (const axis of [-1, 0]) {
    const gs = groups(shape, [axis < 0 ? shape.length + axis : axis]);
    const p = softmaxRef(x, gs);
    // d/dx_i Σ_j w_j p_j = p_i (w_i − Σ_j w_j p_j) within the group.
    const dx = new Array<number>(x.length);
    for (const g of gs) {
      const wp = sumOf(g.map((j) => wt[j] * p[j]));
      for (const i of g) dx[i] = p[i] * (wt[i] - wp);
    }
    const [y, g] = w.evaluate(
      (xs: T, ws: T) => [w.softmax(xs, axis), w.grad((v: T) => w.sum(w.mul(ws, w.softmax(v, axis))))(xs)],
      f64(x, shape),
      f64(wt, shape),
    );
    close(y, p, `softmax(axis ${axis})`, shape);
    close(g, dx, `d softmax(axis ${axis})`, shape);
  }
});

test("logSoftmax: value and gradient of Σ w·logSoftmax(x), including large logits", () => {
  const shape = [4, 6];
  const x = wave(24).map((v, i) => (i < 6 ? 40 * v + 700 : v)); // row 0: exp would overflow unshifted
  const wt = wave(24, 0.9, -0.4, 2);
  const gs = groups(shape, [1]);
  const p = softmaxRef(x, gs);
  const lse = lseRef(x, gs);
  const ls = x.map((v, i) => v - lse[Math.floor(i / 6)]);
  // d/dx_i Σ_j w_j (x_j − lse) = w_i − p_i Σ_j w_j.
  const dx = new Array<number>(x.length);
  for (const g of gs) {
    const sw = sumOf(g.map((j) => wt[j]));
    for (const i of g) dx[i] = wt[i] - p[i] * sw;
  }
  const [y, g] = w.evaluate((xs: T, ws: T) => [w.logSoftmax(xs), w.grad((v: T) => w.sum(w.mul(ws, w.logSoftmax(v))))(xs)], f64(x, shape), f64(wt, shape));
  close(y, ls, "logSoftmax", shape);
  close(g, dx, "d logSoftmax", shape);
});

test("logSumExp: value and gradient over one axis and over several", () => {
  const shape = [2, 3, 4];
  const x = wave(24).map((v) => 3 * v - 50);
  for (const axes of [[1], [0, 2], [2]]) {
    const gs = groups(shape, axes);
    const outShape = shape.filter((_, i) => !axes.includes(i));
    const wt = wave(gs.length, 2.1, 0.3, 1);
    const p = softmaxRef(x, gs);
    const dx = new Array<number>(x.length);
    gs.forEach((g, o) => g.forEach((i) => (dx[i] = wt[o] * p[i])));
    const [y, g] = w.evaluate(
      (xs: T, ws: T) => [w.logSumExp(xs, axes), w.grad((v: T) => w.sum(w.mul(ws, w.logSumExp(v, axes))))(xs)],
      f64(x, shape),
      f64(wt, outShape),
    );
    close(y, lseRef(x, gs), `logSumExp(axes ${axes})`, outShape);
    close(g, dx, `d logSumExp(axes ${axes})`, shape);
  }
});

test("crossEntropy with soft targets: value and gradients for logits and targets", () => {
  const shape = [4, 5];
  const gs = groups(shape, [1]);
  const logits = wave(20);
  const targets = softmaxRef(wave(20, 0.8, 0.5, 2), gs);
  const c = [0.5, -1.25, 2, 0.75]; // per-row weights of the loss
  const p = softmaxRef(logits, gs);
  const lse = lseRef(logits, gs);
  const logp = logits.map((v, i) => v - lse[Math.floor(i / 5)]);
  const ce = gs.map((g) => -sumOf(g.map((i) => targets[i] * logp[i])));
  // L = Σ_r c_r·(−Σ_i t_i log p_i): dL/dz_i = c_r (p_i Σt − t_i), dL/dt_i = −c_r log p_i.
  const dz = new Array<number>(20);
  const dt = new Array<number>(20);
  gs.forEach((g, r) => {
    const st = sumOf(g.map((i) => targets[i]));
    for (const i of g) {
      dz[i] = c[r] * (p[i] * st - targets[i]);
      dt[i] = -c[r] * logp[i];
    }
  });
  const loss = (z: T, t: T, cs: T) => w.sum(w.mul(w.crossEntropy(z, t), cs));
  const [y, [gz, gt]] = w.evaluate(
    (z: T, t: T, cs: T) => [w.crossEntropy(z, t), w.grad(loss, { argnums: [0, 1] as const })(z, t, cs)] as const,
    f64(logits, shape),
    f64(targets, shape),
    f64(c, [4]),
  );
  close(y, ce, "crossEntropy(soft)", [4]);
  close(gz, dz, "d crossEntropy(soft)/d logits", shape);
  close(gt, dt, "d crossEntropy(soft)/d targets", shape);
});

test("crossEntropy with i32 labels: value and gradient, along the last axis and axis 0", () => {
  const cases = [
    { shape: [4, 5], axis: -1, labels: [3, 0, 4, 1] },
    { shape: [5, 3], axis: 0, labels: [2, 4, 0] },
  ];
  for (const { shape, axis, labels } of cases) {
    const a = axis < 0 ? shape.length + axis : axis;
    const gs = groups(shape, [a]);
    const logits = wave(sizeOf(shape), 1.7, -0.3, 2);
    const c = wave(labels.length, 1.1, 0.9, 1);
    const p = softmaxRef(logits, gs);
    const lse = lseRef(logits, gs);
    const ce = gs.map((g, r) => lse[r] - logits[g[labels[r]]]);
    const dz = new Array<number>(logits.length);
    gs.forEach((g, r) => g.forEach((i, k) => (dz[i] = c[r] * (p[i] - (k === labels[r] ? 1 : 0)))));
    const [y, g] = w.evaluate(
      (z: T, l: T, cs: T) => [w.crossEntropy(z, l, axis), w.grad((v: T) => w.sum(w.mul(w.crossEntropy(v, l, axis), cs)))(z)],
      f64(logits, shape),
      w.hostTensor(labels, [labels.length], "i32"),
      f64(c, [labels.length]),
    );
    close(y, ce, `crossEntropy(labels, axis ${axis})`, [labels.length]);
    close(g, dz, `d crossEntropy(labels, axis ${axis})`, shape);
  }
});

// ---------------------------------------------------------------- normalisation and activations

test("layerNorm with gamma and beta: value and gradients for x, gamma and beta", () => {
  const [rows, n] = [3, 6];
  const eps = 1e-6;
  const x = wave(rows * n).map((v, i) => v + (i % 4) * 0.3);
  const gamma = wave(n, 0.6, 1, 1).map((v) => v + 1);
  const beta = wave(n, 2.3, 0.1, 0.5);
  const wt = wave(rows * n, 0.45, -1.2, 1.3);
  const y = new Array<number>(rows * n);
  const dx = new Array<number>(rows * n);
  const dgamma = new Array<number>(n).fill(0);
  const dbeta = new Array<number>(n).fill(0);
  for (const g of groups([rows, n], [1])) {
    const mu = sumOf(g.map((i) => x[i])) / n;
    const r = 1 / Math.sqrt(sumOf(g.map((i) => (x[i] - mu) ** 2)) / n + eps);
    const xhat = g.map((i) => (x[i] - mu) * r);
    const dxhat = g.map((i, k) => wt[i] * gamma[k]);
    const meanD = sumOf(dxhat) / n;
    const meanDX = sumOf(dxhat.map((d, k) => d * xhat[k])) / n;
    g.forEach((i, k) => {
      y[i] = xhat[k] * gamma[k] + beta[k];
      dx[i] = r * (dxhat[k] - meanD - xhat[k] * meanDX);
      dgamma[k] += wt[i] * xhat[k];
      dbeta[k] += wt[i];
    });
  }
  const loss = (v: T, g: T, b: T, ws: T) => w.sum(w.mul(ws, w.layerNorm(v, g, b, eps)));
  const [val, [out, [gx, gg, gb]]] = w.evaluate(
    (v: T, g: T, b: T, ws: T) => [w.layerNorm(v, g, b, eps), w.valueAndGrad(loss, { argnums: [0, 1, 2] as const })(v, g, b, ws)] as const,
    f64(x, [rows, n]),
    f64(gamma, [n]),
    f64(beta, [n]),
    f64(wt, [rows, n]),
  );
  close(val, y, "layerNorm", [rows, n]);
  close(out, [sumOf(y.map((v, i) => v * wt[i]))], "layerNorm loss", []);
  close(gx, dx, "d layerNorm/dx", [rows, n]);
  close(gg, dgamma, "d layerNorm/d gamma", [n]);
  close(gb, dbeta, "d layerNorm/d beta", [n]);
});

test("gelu (exact): value x·Φ(x) and gradient Φ(x) + x·φ(x)", () => {
  const x = [...wave(14, 0.77, 0.1, 4.5), 0, -6, 6.5];
  const wt = wave(x.length, 1.9, 0.4, 1);
  const [y, g] = w.evaluate((xs: T, ws: T) => [w.gelu(xs), w.grad((v: T) => w.sum(w.mul(ws, w.gelu(v))))(xs)], f64(x, [x.length]), f64(wt, [x.length]));
  close(
    y,
    x.map((v) => v * Phi(v)),
    "gelu",
    [x.length],
  );
  close(
    g,
    x.map((v, i) => wt[i] * (Phi(v) + v * phi(v))),
    "d gelu",
    [x.length],
  );
});

test("l2Normalize: value x/‖x‖ and gradient (I − yyᵀ)/‖x‖, and the eps clamp", () => {
  const [rows, n] = [4, 5];
  const eps = 1e-12;
  const x = wave(rows * n).map((v, i) => (i >= 15 ? v * 1e-14 : v)); // the last row lies inside the clamp
  const wt = wave(rows * n, 0.35, 0.8, 1.2);
  const y = new Array<number>(rows * n);
  const dx = new Array<number>(rows * n);
  for (const g of groups([rows, n], [1])) {
    const norm = Math.sqrt(sumOf(g.map((i) => x[i] ** 2)));
    if (norm > eps) {
      for (const i of g) y[i] = x[i] / norm;
      const yw = sumOf(g.map((i) => y[i] * wt[i]));
      for (const i of g) dx[i] = (wt[i] - y[i] * yw) / norm;
    } else {
      // Inside the clamp the map is x/eps.
      for (const i of g) [y[i], dx[i]] = [x[i] / eps, wt[i] / eps];
    }
  }
  const [val, g] = w.evaluate(
    (xs: T, ws: T) => [w.l2Normalize(xs), w.grad((v: T) => w.sum(w.mul(ws, w.l2Normalize(v))))(xs)],
    f64(x, [rows, n]),
    f64(wt, [rows, n]),
  );
  // Compare the regular rows and the clamped row separately: their scales differ by 1e12.
  const head = (h: w.HostTensor) => w.hostTensor(h.data.slice(0, 15), [3, n], "f64");
  const tail = (h: w.HostTensor) => w.hostTensor(h.data.slice(15), [1, n], "f64");
  close(head(val), y.slice(0, 15), "l2Normalize");
  close(head(g), dx.slice(0, 15), "d l2Normalize");
  close(tail(val), y.slice(15), "l2Normalize (clamped)");
  close(tail(g), dx.slice(15), "d l2Normalize (clamped)");
  assert.deepEqual([...val.shape], [rows, n]);
});

test("sigmoid: value 1/(1 + e^−x) and gradient s(1 − s)", () => {
  const x = [...wave(12, 1.3, 0.2, 6), 30, -30];
  const wt = wave(x.length, 0.5, 0.5, 1);
  const s = x.map((v) => 1 / (1 + Math.exp(-v)));
  const [y, g] = w.evaluate((xs: T, ws: T) => [w.sigmoid(xs), w.grad((v: T) => w.sum(w.mul(ws, w.sigmoid(v))))(xs)], f64(x, [x.length]), f64(wt, [x.length]));
  close(y, s, "sigmoid", [x.length]);
  close(
    g,
    s.map((v, i) => wt[i] * v * (1 - v)),
    "d sigmoid",
    [x.length],
  );
});

test("linear on a rank-3 input: value xW + b and gradients dx = dy·Wᵀ, dW = xᵀ·dy, db = Σ dy", () => {
  const [b, t, nin, nout] = [2, 3, 4, 5];
  const rows = b * t;
  const x = wave(rows * nin);
  const W = wave(nin * nout, 0.9, 0.3, 1);
  const bias = wave(nout, 2.2, 0.7, 0.5);
  const dy = wave(rows * nout, 0.41, -0.6, 1.1);
  const y = addRow(mm(x, W, rows, nin, nout), bias);
  const dx = mm(dy, tr(W, nin, nout), rows, nout, nin);
  const dW = mm(tr(x, rows, nin), dy, nin, rows, nout);
  const db = Array.from({ length: nout }, (_, j) => sumOf(Array.from({ length: rows }, (_, r) => dy[r * nout + j])));
  const loss = (v: T, m: T, c: T, g: T) => w.sum(w.mul(g, w.linear(v, m, c)));
  const [val, [gx, gW, gb]] = w.evaluate(
    (v: T, m: T, c: T, g: T) => [w.linear(v, m, c), w.grad(loss, { argnums: [0, 1, 2] as const })(v, m, c, g)] as const,
    f64(x, [b, t, nin]),
    f64(W, [nin, nout]),
    f64(bias, [nout]),
    f64(dy, [b, t, nout]),
  );
  close(val, y, "linear", [b, t, nout]);
  close(gx, dx, "d linear/dx", [b, t, nin]);
  close(gW, dW, "d linear/dW", [nin, nout]);
  close(gb, db, "d linear/db", [nout]);
});

test("mean and variance (biased and ddof 1): values and gradients over several axes", () => {
  const shape = [3, 4, 5];
  const x = wave(60).map((v, i) => v + 0.1 * i);
  for (const axes of [[0, 2], [1]]) {
    const gs = groups(shape, axes);
    const outShape = shape.filter((_, i) => !axes.includes(i));
    const wt = wave(gs.length, 1.4, 0.6, 1);
    const n = gs[0].length;
    const mu = gs.map((g) => sumOf(g.map((i) => x[i])) / n);
    const ss = gs.map((g, o) => sumOf(g.map((i) => (x[i] - mu[o]) ** 2)));
    const dMean = new Array<number>(x.length);
    const dVar = new Array<number>(x.length);
    // d/dx_i Σ(x − μ)² = 2(x_i − μ): the μ term drops out because Σ(x − μ) = 0.
    gs.forEach((g, o) => g.forEach((i) => ((dMean[i] = wt[o] / n), (dVar[i] = (2 * wt[o] * (x[i] - mu[o])) / n))));
    const [m, v, v1, gm, gv, gv1] = w.evaluate(
      (xs: T, ws: T) => [
        w.mean(xs, axes),
        w.variance(xs, axes),
        w.variance(xs, axes, false, 1),
        w.grad((z: T) => w.sum(w.mul(ws, w.mean(z, axes))))(xs),
        w.grad((z: T) => w.sum(w.mul(ws, w.variance(z, axes))))(xs),
        w.grad((z: T) => w.sum(w.mul(ws, w.variance(z, axes, false, 1))))(xs),
      ],
      f64(x, shape),
      f64(wt, outShape),
    );
    close(m, mu, `mean(axes ${axes})`, outShape);
    close(
      v,
      ss.map((s) => s / n),
      `variance(axes ${axes})`,
      outShape,
    );
    close(
      v1,
      ss.map((s) => s / (n - 1)),
      `variance(axes ${axes}, ddof 1)`,
      outShape,
    );
    close(gm, dMean, `d mean(axes ${axes})`, shape);
    close(gv, dVar, `d variance(axes ${axes})`, shape);
    close(
      gv1,
      dVar.map((d) => (d * n) / (n - 1)),
      `d variance(axes ${axes}, ddof 1)`,
      shape,
    );
  }
});

// ---------------------------------------------------------------- attention

/** One attention block: S = QKᵀ·s + bias, P = softmax(S), O = PV. */
function attentionForward(q: Vec, k: Vec, v: Vec, tq: number, tk: number, d: number, dv: number, s: number, bias?: Vec) {
  const S = mm(q, tr(k, tk, d), tq, d, tk).map((e, i) => e * s + (bias ? bias[i] : 0));
  const P = softmaxRef(S, groups([tq, tk], [1]));
  return { P, O: mm(P, v, tq, tk, dv) };
}

/** Manual backprop of one block: dV = PᵀdO, dP = dO·Vᵀ, dS = P∘(dP − rowsum(dP∘P)), dQ = dS·K·s, dK = dSᵀ·Q·s. */
function attentionBackward(q: Vec, k: Vec, v: Vec, P: Vec, dO: Vec, tq: number, tk: number, d: number, dv: number, s: number) {
  const dV = mm(tr(P, tq, tk), dO, tk, tq, dv);
  const dP = mm(dO, tr(v, tk, dv), tq, dv, tk);
  const dS = new Array<number>(tq * tk);
  for (const g of groups([tq, tk], [1])) {
    const dot = sumOf(g.map((i) => dP[i] * P[i]));
    for (const i of g) dS[i] = P[i] * (dP[i] - dot);
  }
  const dQ = mm(dS, k, tq, tk, d).map((e) => e * s);
  const dK = mm(tr(dS, tq, tk), q, tk, tq, d).map((e) => e * s);
  return { dQ, dK, dV, dS };
}

/** The h-th contiguous block of `size` values (one (batch, head) matrix). */
const block = (a: Vec, h: number, size: number): number[] => a.slice(h * size, (h + 1) * size);

test("scaledDotProductAttention with batch and head dims: value and gradients for q, k, v and bias", () => {
  const [B, H, tq, tk, d, dv] = [2, 2, 3, 5, 4, 3];
  const bh = B * H;
  const q = wave(bh * tq * d, 1.3, 0.2, 1.2);
  const k = wave(bh * tk * d, 0.7, -0.5, 1.4);
  const v = wave(bh * tk * dv, 1.9, 0.9, 1);
  const dO = wave(bh * tq * dv, 0.55, 0.25, 1.3);
  // A bias [Tq, Tk] broadcast over batch and heads: logit (i, i + 1) masked with −1e9, the rest mild.
  const bias = wave(tq * tk, 2.7, 0.1, 0.4).map((b, i) => (i % tk === Math.floor(i / tk) + 1 ? -1e9 : b));
  for (const opts of [
    { scale: undefined, bias: false },
    { scale: 0.3, bias: true },
  ]) {
    const s = opts.scale ?? 1 / Math.sqrt(d);
    const out = { O: [] as number[], dQ: [] as number[], dK: [] as number[], dV: [] as number[], dBias: new Array<number>(tq * tk).fill(0) };
    for (let h = 0; h < bh; h++) {
      const [qh, kh, vh, dOh] = [block(q, h, tq * d), block(k, h, tk * d), block(v, h, tk * dv), block(dO, h, tq * dv)];
      const { P, O } = attentionForward(qh, kh, vh, tq, tk, d, dv, s, opts.bias ? bias : undefined);
      const gr = attentionBackward(qh, kh, vh, P, dOh, tq, tk, d, dv, s);
      out.O.push(...O);
      out.dQ.push(...gr.dQ);
      out.dK.push(...gr.dK);
      out.dV.push(...gr.dV);
      gr.dS.forEach((e, i) => (out.dBias[i] += e));
    }
    const attn = (a: T, b: T, c: T, m: T) =>
      w.scaledDotProductAttention(a, b, c, { ...(opts.scale === undefined ? {} : { scale: opts.scale }), ...(opts.bias ? { bias: m } : {}) });
    const loss = (a: T, b: T, c: T, m: T, g: T) => w.sum(w.mul(g, attn(a, b, c, m)));
    const [val, [gq, gk, gv, gb]] = w.evaluate(
      (a: T, b: T, c: T, m: T, g: T) => [attn(a, b, c, m), w.grad(loss, { argnums: [0, 1, 2, 3] as const })(a, b, c, m, g)] as const,
      f64(q, [B, H, tq, d]),
      f64(k, [B, H, tk, d]),
      f64(v, [B, H, tk, dv]),
      f64(bias, [tq, tk]),
      f64(dO, [B, H, tq, dv]),
    );
    const label = `attention(scale ${opts.scale ?? "default"}, bias ${opts.bias})`;
    close(val, out.O, label, [B, H, tq, dv]);
    close(gq, out.dQ, `${label} dq`, [B, H, tq, d]);
    close(gk, out.dK, `${label} dk`, [B, H, tk, d]);
    close(gv, out.dV, `${label} dv`, [B, H, tk, dv]);
    close(gb, opts.bias ? out.dBias : new Array<number>(tq * tk).fill(0), `${label} dbias`, [tq, tk]);
  }
});

test("multiHeadAttention: forward value against a plain-JS forward", () => {
  const [B, T, C, H] = [2, 3, 6, 3];
  const d = C / H;
  const x = wave(B * T * C);
  const wQkv = wave(C * 3 * C, 0.83, 0.4, 0.7);
  const bQkv = wave(3 * C, 1.7, -0.2, 0.3);
  const wOut = wave(C * C, 1.21, 0.6, 0.8);
  const bOut = wave(C, 2.9, 1.3, 0.2);
  const qkv = addRow(mm(x, wQkv, B * T, C, 3 * C), bQkv);
  // Head h of part p (0 q, 1 k, 2 v) in batch b: qkv[b, t, p·C + h·d + j], a [T, d] matrix.
  const part = (b: number, p: number, h: number) => Array.from({ length: T * d }, (_, i) => qkv[(b * T + Math.floor(i / d)) * 3 * C + p * C + h * d + (i % d)]);
  const merged = new Array<number>(B * T * C);
  for (let b = 0; b < B; b++)
    for (let h = 0; h < H; h++) {
      const { O } = attentionForward(part(b, 0, h), part(b, 1, h), part(b, 2, h), T, T, d, d, 1 / Math.sqrt(d));
      O.forEach((e, i) => (merged[(b * T + Math.floor(i / d)) * C + h * d + (i % d)] = e));
    }
  const expected = addRow(mm(merged, wOut, B * T, C, C), bOut);
  const y = w.evaluate(
    (xs: T, a: T, b: T, c: T, e: T) => w.multiHeadAttention(xs, { wQkv: a, bQkv: b, wOut: c, bOut: e }, H),
    f64(x, [B, T, C]),
    f64(wQkv, [C, 3 * C]),
    f64(bQkv, [3 * C]),
    f64(wOut, [C, C]),
    f64(bOut, [C]),
  );
  close(y, expected, "multiHeadAttention", [B, T, C]);
});
