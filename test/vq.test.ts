/** The VQ codebook tokenizer (spec §11): nearest codes, straight-through gradients, loss placement, EMA updates, usage. */
import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import * as w from "../src/index.js";
import { arbTensor } from "../src/testing/index.js";
import type { Tensor } from "../src/index.js";

const close = (a: ArrayLike<number>, b: ArrayLike<number>, tol = 1e-9) => {
  assert.equal(a.length, b.length);
  for (let i = 0; i < a.length; i++) assert.ok(Math.abs(a[i] - b[i]) <= tol * (1 + Math.abs(b[i])), `element ${i}: ${a[i]} vs ${b[i]}`);
};

test("quantize picks the nearest code (against brute force)", () => {
  const arb = fc.tuple(fc.integer({ min: 1, max: 6 }), fc.integer({ min: 2, max: 7 }), fc.integer({ min: 1, max: 4 })).chain(([n, k, d]) => fc.tuple(arbTensor([n, d]), arbTensor([k, d])));
  fc.assert(
    fc.property(arb, ([z, e]) => {
      const idx = w.evaluate((a: Tensor, b: Tensor) => w.quantize(a, b).indices, z, e);
      const [n, d] = z.shape;
      const k = e.shape[0];
      for (let i = 0; i < n; i++) {
        const dist = (j: number) => Array.from({ length: d }, (_, c) => (z.data[i * d + c] - e.data[j * d + c]) ** 2).reduce((a, b) => a + b, 0);
        const best = Math.min(...Array.from({ length: k }, (_, j) => dist(j)));
        assert.ok(Math.abs(dist(idx.data[i]) - best) < 1e-9);
      }
    }),
    { numRuns: 30 },
  );
});

test("straight-through: the quantised values, with the identity gradient to z and none to the codebook", () => {
  const z = w.hostTensor(new Float64Array([0.1, 0.9, 1.2, -0.3]), [2, 2], "f64");
  const e = w.hostTensor(new Float64Array([0, 1, 1, 0]), [2, 2], "f64");
  const wt = w.hostTensor(new Float64Array([1, 2, 3, 4]), [2, 2], "f64");
  const [val, gz, ge] = w.evaluate(
    (a: Tensor, b: Tensor, c: Tensor) => {
      const f = (x: Tensor, y: Tensor) => w.sum(w.mul(w.quantize(x, y).straightThrough, c));
      return [w.quantize(a, b).straightThrough, ...w.grad(f, { argnums: [0, 1] })(a, b)];
    },
    z, e, wt,
  );
  close(val.data, [0, 1, 1, 0]);
  close(gz.data, [1, 2, 3, 4]);
  close(ge.data, [0, 0, 0, 0]);
});

test("the loss puts β on the commitment term (standard) or on the codebook term (the seed's placement)", () => {
  const z = w.hostTensor(new Float64Array([0.1, 0.9, 1.2, -0.3]), [2, 2], "f64");
  const e = w.hostTensor(new Float64Array([0, 1, 1, 0]), [2, 2], "f64");
  for (const placement of ["standard", "seed"] as const) {
    const [gz, ge] = w.evaluate(
      (a: Tensor, b: Tensor) => w.grad((x: Tensor, y: Tensor) => w.vqLoss(x, w.quantize(x, y).codes, { beta: 0.25, placement }).loss, { argnums: [0, 1] })(a, b),
      z, e,
    );
    // Codes 0 and 1 are the nearest of rows 0 and 1: d‖a−b‖²/da / (N·D) = 2(a−b)/4.
    const diff = [0.1, -0.1, 0.2, -0.3];
    const [zw, ew] = placement === "standard" ? [0.25, 1] : [1, 0.25];
    close(gz.data, diff.map((v) => (zw * 2 * v) / 4));
    close(ge.data, diff.map((v) => (-ew * 2 * v) / 4));
  }
});

test("EMA codebook update with Laplace smoothing, by hand", () => {
  const [counts, sums, codebook] = w.evaluate(() => {
    const state = { counts: w.constant([1, 1, 1], "f64"), sums: w.constant([[1, 0], [0, 1], [1, 1]], "f64") };
    const z = w.constant([[2, 0], [4, 0], [0, 2]], "f64");
    const r = w.emaCodebookUpdate(state, z, w.constant([0, 0, 1], "i32"), 0.5, 1e-5);
    return [r.state.counts, r.state.sums, r.codebook];
  });
  close(counts.data, [1.5, 1, 0.5]); // 0.5·1 + 0.5·n with n = [2, 1, 0]
  close(sums.data, [3.5, 0, 0, 1.5, 0.5, 0.5]); // 0.5·m + 0.5·Σz
  const total = 3;
  const smooth = [1.5, 1, 0.5].map((c) => ((c + 1e-5) / (total + 3e-5)) * total);
  close(codebook.data, [3.5 / smooth[0], 0, 0, 1.5 / smooth[1], 0.5 / smooth[2], 0.5 / smooth[2]]);
});

test("code usage: perplexity K when uniform, 1 when collapsed; the share of codes used", () => {
  const [pu, fu, pc, fc1] = w.evaluate(() => {
    const u = w.codeUsage(w.constant([0, 1, 2, 3], "i32"), 4);
    const c = w.codeUsage(w.constant([2, 2, 2, 2], "i32"), 8);
    return [u.perplexity, u.usedFraction, c.perplexity, c.usedFraction];
  });
  assert.ok(Math.abs(pu.item() - 4) < 1e-4 && Math.abs(fu.item() - 1) < 1e-6);
  assert.ok(Math.abs(pc.item() - 1) < 1e-4 && Math.abs(fc1.item() - 1 / 8) < 1e-6);
});
