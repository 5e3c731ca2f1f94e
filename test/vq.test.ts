/** The VQ codebook tokenizer (spec §11): nearest codes, straight-through gradients, loss placement, EMA updates, usage. */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import * as w from "../src/internals.js";
import { arbTensor } from "../src/testing/index.js";
import type { Tensor } from "../src/internals.js";

const close = (a: ArrayLike<number>, b: ArrayLike<number>, tol = 1e-9) => {
  assert.equal(a.length, b.length);
  for (let i = 0; i < a.length; i++) assert.ok(Math.abs(a[i] - b[i]) <= tol * (1 + Math.abs(b[i])), `element ${i}: ${a[i]} vs ${b[i]}`);
};

test("quantize picks the nearest code (against brute force)", () => {
  const arb = fc
    .tuple(fc.integer({ min: 1, max: 6 }), fc.integer({ min: 2, max: 7 }), fc.integer({ min: 1, max: 4 }))
    .chain(([n, k, d]) => fc.tuple(arbTensor([n, d]), arbTensor([k, d])));
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
    z,
    e,
    wt,
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
      (a: Tensor, b: Tensor) =>
        w.grad((x: Tensor, y: Tensor) => w.vqLoss(x, w.quantize(x, y).codes, { beta: 0.25, placement }).loss, { argnums: [0, 1] })(a, b),
      z,
      e,
    );
    // Codes 0 and 1 are the nearest of rows 0 and 1: d‖a−b‖²/da / (N·D) = 2(a−b)/4.
    const diff = [0.1, -0.1, 0.2, -0.3];
    const [zw, ew] = placement === "standard" ? [0.25, 1] : [1, 0.25];
    close(
      gz.data,
      diff.map((v) => (zw * 2 * v) / 4),
    );
    close(
      ge.data,
      diff.map((v) => (-ew * 2 * v) / 4),
    );
  }
});

test("EMA codebook update with Laplace smoothing, by hand", () => {
  const [counts, sums, codebook] = w.evaluate(() => {
    const state = {
      counts: w.constant([1, 1, 1], "f64"),
      sums: w.constant(
        [
          [1, 0],
          [0, 1],
          [1, 1],
        ],
        "f64",
      ),
    };
    const z = w.constant(
      [
        [2, 0],
        [4, 0],
        [0, 2],
      ],
      "f64",
    );
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

// ---- The VQ variant of iBOT's patch targets (spec §11) ----

const vqCfg = (o: Partial<w.VqTokenizerConfig> = {}): w.VqTokenizerConfig => ({
  codebooks: [6, 4],
  beta: 0.25,
  placement: "standard",
  alpha: 1,
  ema: false,
  decay: 0.9,
  deadThreshold: 0,
  ...o,
});

test("VQ patch loss: hard targets are the teacher's nearest codes; −log p at masked positions, per image then over images", () => {
  const cfg = vqCfg({ codebooks: [5] });
  const [gb, n, d] = [2, 3, 4];
  const r = w.evaluate(() => {
    const studentZ = w.normal(w.randomKey(1), [gb, n, d], "f64");
    const teacherZ = w.normal(w.randomKey(2), [gb, n, d], "f64");
    const vq = w.initVq(w.randomKey(3), d, cfg);
    const teacher = { codebooks: [w.cast(w.normal(w.randomKey(4), [5, d]), "f64")], predictors: vq.predictors };
    const student = {
      codebooks: vq.codebooks.map((e) => w.cast(e, "f64")),
      predictors: vq.predictors.map((p) => ({ w: w.cast(p.w, "f64"), b: w.cast(p.b!, "f64") })),
    };
    const masks = w.constant(
      [
        [1, 0, 1],
        [0, 0, 0],
      ],
      "f64",
    );
    const l = w.vqPatchLoss({ studentZ, teacherZ, masks, student, teacher }, cfg);
    return { l, studentZ, teacherZ, tc: teacher.codebooks[0], pw: student.predictors[0].w, pb: student.predictors[0].b };
  });
  const { l } = r;
  const row = (t: w.HostTensor, i: number, len: number) => Array.from(t.data.subarray(i * len, (i + 1) * len));
  const targets = [...l.targets[0].data];
  for (let i = 0; i < gb * n; i++) {
    const zt = row(r.teacherZ, i, d);
    const dist = (k: number) => row(r.tc, k, d).reduce((a, e, c) => a + (zt[c] - e) ** 2, 0);
    const best = [0, 1, 2, 3, 4].reduce((a, k) => (dist(k) < dist(a) ? k : a), 0);
    assert.equal(targets[i], best, `target of patch ${i}`);
  }
  // −log softmax(W z + b)[target] at the masked patches of image 0 (patches 0 and 2); image 1 has none and counts as 0.
  const nll = (i: number) => {
    const z = row(r.studentZ, i, d);
    const logits = [0, 1, 2, 3, 4].map((k) => r.pb.data[k] + z.reduce((a, zc, c) => a + zc * r.pw.data[c * 5 + k], 0));
    const m = Math.max(...logits);
    return m + Math.log(logits.reduce((a, v) => a + Math.exp(v - m), 0)) - logits[targets[i]];
  };
  const expected = ((nll(0) + nll(2)) / 2 + 0) / 2;
  assert.ok(Math.abs(l.recon.item() - expected) < 1e-9, `${l.recon.item()} vs ${expected}`);
  // The tokenizer terms see the visible patches only (4 of 6).
  assert.ok(Number.isFinite(l.tokenizer.item()) && l.tokenizer.item() > 0);
  assert.ok(Math.abs(l.loss.item() - (l.recon.item() + l.tokenizer.item())) < 1e-9);
});

test("dead codes restart at teacher features of the batch; live codes and a zero threshold leave the codebook alone", () => {
  const run = (threshold: number, ema: boolean) =>
    w.evaluate(() => {
      const cfg = vqCfg({ codebooks: [6], deadThreshold: threshold, ema });
      const z = w.normal(w.randomKey(5), [10, 3]);
      const teacherZ = w.normal(w.randomKey(6), [10, 3]);
      const e = w.normal(w.randomKey(7), [6, 3]);
      const indices = w.quantize(z, e).indices;
      const state = w.initVqState({ codebooks: [e], predictors: [] }, cfg);
      const online = { z, weights: w.ones([10]), indices: [indices], teacherZ };
      return { e, teacherZ, u: w.updateCodebooks([e], state, online, w.randomKey(8), cfg) };
    });
  const kept = run(0, false);
  assert.deepEqual([...kept.u.codebooks[0].data], [...kept.e.data]);
  assert.equal(kept.u.restarts.item(), 0);
  const all = run(1e9, false); // every code counts as dead
  assert.equal(all.u.restarts.item(), 6);
  const rows = Array.from({ length: 10 }, (_, i) => Array.from(all.teacherZ.data.subarray(3 * i, 3 * i + 3)).join());
  for (let k = 0; k < 6; k++) assert.ok(rows.includes(Array.from(all.u.codebooks[0].data.subarray(3 * k, 3 * k + 3)).join()), `code ${k} is a teacher feature`);
  // EMA mode: restarted codes take the feature too (m/N with N reset).
  const ema = run(1e9, true);
  for (let k = 0; k < 6; k++) {
    const code = Array.from(ema.u.codebooks[0].data.subarray(3 * k, 3 * k + 3));
    assert.ok(
      rows.some((r) => r.split(",").every((v, c) => Math.abs(Number(v) - code[c]) < 1e-5)),
      `EMA code ${k}`,
    );
  }
});

describe("iBOT with VQ tokens", () => {
  const cfg: w.IbotModelConfig = {
    vit: { imageSize: 8, channels: 1, patchSize: 4, width: 8, depth: 1, heads: 2, mlpRatio: 2, qkvBias: true },
    head: { inDim: 8, hiddenDim: 16, bottleneckDim: 8, outDim: 16 },
    globalCrops: 2,
    localCrops: 1,
    dropPath: 0,
    clipGrad: 3,
    vq: vqCfg({ codebooks: [6, 4], deadThreshold: 0 }), // restarts would move the targets of this fixed batch (tested on their own above)
  };
  const B = 3;

  test("one compiled step: the reconstruction loss falls on a fixed batch, two heads each report their token histogram, the momentum tokenizer follows by EMA", () => {
    const init = w.evaluate(() => w.initIbotState(w.randomKey(1), cfg));
    assert.equal(init.student.vq!.codebooks.length, 2);
    const batchSpec = { globals: w.spec([2 * B, 1, 8, 8]), locals: w.spec([B, 1, 4, 4]), masks: w.spec([2 * B, 4]) };
    const exe = w.compile((st: w.IbotState, b: w.IbotBatch, s: w.IbotSchedule) => w.ibotStep(st, b, s, cfg), [w.specsOf(init), batchSpec, w.scheduleSpec()]);
    const batch = w.evaluate(() => {
      const x = w.uniform(w.randomKey(2), [B, 1, 8, 8]);
      return {
        globals: w.concat([x, x], 0),
        locals: w.mean(w.reshape(x, [B, 1, 4, 2, 4, 2]), [3, 5]),
        masks: w.cast(w.bernoulli(w.randomKey(5), 0.5, [2 * B, 4]), "f32"),
      };
    });
    let state = init;
    const losses: number[] = [];
    const recon: number[] = [];
    let last: ReturnType<typeof exe.run> | null = null;
    for (let i = 1; i <= 30; i++) {
      const sched = {
        lr: 2e-3,
        weightDecay: 0.04,
        momentum: 0.9,
        teacherTemp: 0.04,
        teacherPatchTemp: 0.07,
        step: i,
        lastLayerStep: i,
        key: new Int32Array([0, i]),
      };
      last = exe.run(state, batch, sched);
      losses.push(last.metrics.loss.item());
      recon.push(last.metrics.patch.item());
      state = last.state;
    }
    assert.ok(losses.every(Number.isFinite));
    // The reconstruction of the momentum tokenizer's tokens is learned (until the moving tokenizer changes a target; the [CLS] part oscillates with its centre on a fixed batch).
    assert.ok(Math.min(...recon.slice(0, 20)) < recon[0] * 0.92, `reconstruction loss ${recon.map((l) => l.toFixed(3)).join(" ")}`);
    const counts = last!.metrics.tokenCounts;
    assert.deepEqual(
      counts.map((c) => c.size),
      [6, 4],
    );
    for (const c of counts)
      assert.equal(
        [...c.data].reduce((a, b) => a + b),
        2 * B * 4,
        "every patch has one token per head",
      );
    assert.ok(Number.isFinite(last!.metrics.tokenizer!.item()), "VQ mode reports the tokenizer terms");
    assert.equal(last!.metrics.restarts!.item(), 0);
    // The teacher's codebook is an EMA of the student's: it moved, and not onto the student's.
    const t = last!.state.teacher.vq!.codebooks[0];
    const s = last!.state.student.vq!.codebooks[0];
    const t0 = init.teacher.vq!.codebooks[0];
    assert.ok(t.data.some((v, i) => v !== t0.data[i]) && t.data.some((v, i) => v !== s.data[i]));
  });

  test("no gradient reaches the teacher's codebooks or predictors; the student's codebook learns only from the tokenizer terms", () => {
    const g = w.evaluate(() => {
      const st = w.initIbotState(w.randomKey(3), cfg);
      const batch = { globals: w.uniform(w.randomKey(2), [2 * B, 1, 8, 8]), locals: w.uniform(w.randomKey(3), [B, 1, 4, 4]), masks: w.full([2 * B, 4], 1) };
      const s = {
        lr: w.scalar(0),
        weightDecay: w.scalar(0),
        momentum: w.scalar(1),
        teacherTemp: w.scalar(0.04),
        teacherPatchTemp: w.scalar(0.07),
        step: w.scalar(1),
        lastLayerStep: w.scalar(1),
        key: w.randomKey(4),
      };
      const loss = (student: w.StudentParams, teacher: w.TeacherParams) => w.studentLoss(student, teacher, st.centers, batch, s, cfg)[0];
      return w.grad(loss, { argnums: [0, 1] })(st.student, st.teacher);
    });
    const [gs, gt] = g as unknown as [w.StudentParams, w.TeacherParams];
    for (const x of [...gt.vq!.codebooks, ...gt.vq!.predictors.map((p) => p.w)]) assert.ok([...(x as unknown as w.HostTensor).data].every((v) => v === 0));
    // Every patch is masked here, so no visible patch feeds the codebook terms: the codebook gets no gradient; the predictors do.
    assert.ok([...(gs.vq!.codebooks[0] as unknown as w.HostTensor).data].every((v) => v === 0));
    assert.ok([...(gs.vq!.predictors[0].w as unknown as w.HostTensor).data].some((v) => v !== 0));
  });

  test("checkpoints keep codebooks as [K, d], predictors in PyTorch's Linear layout, and the VQ statistics for resuming", async () => {
    const { checkpointTensors, stateFromCheckpoint } = await import("../src/train/checkpoint.js");
    const st = w.evaluate(() => w.initIbotState(w.randomKey(1), cfg));
    const t = await checkpointTensors(st as never, { channels: 1, size: 4 });
    assert.deepEqual(t["student.vq.codebooks.1"].shape, [4, 8]);
    assert.deepEqual(t["teacher.vq.predictors.0.weight"].shape, [6, 8]);
    assert.ok(t["wgrad.vq.usage.0"]);
    const back = stateFromCheckpoint(st, t);
    assert.deepEqual(
      [...(back.student.vq!.predictors[0].w as unknown as w.HostTensor).data],
      [...(st.student.vq!.predictors[0].w as unknown as w.HostTensor).data],
    );
    assert.deepEqual([...(back.vq!.usage[1] as unknown as w.HostTensor).data], [...(st.vq!.usage[1] as unknown as w.HostTensor).data]);
  });
});
