/** iBOT's loss, head, positional-embedding resize and training step, on the CPU reference backend. */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import * as w from "../src/internals.js";
import { arbTensor, checkGrads, hostRng } from "../src/testing/index.js";
import type { Tensor } from "../src/internals.js";

const softmax = (xs: number[], t: number) => {
  const m = Math.max(...xs.map((x) => x / t));
  const e = xs.map((x) => Math.exp(x / t - m));
  const s = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / s);
};
const xent = (p: number[], logits: number[], t: number) => -p.reduce((a, pi, k) => a + pi * Math.log(softmax(logits, t)[k]), 0);

describe("iBOT loss", () => {
  // G = 2 global crops, no local crops, B = 2 images, N = 2 patches, K = 3 prototypes.
  const tc = [
    [1, 0, -1],
    [0.5, 0.2, 0],
    [0, 1, 0],
    [-1, 0.3, 0.8],
  ]; // teacher [CLS], crop-major [G·B, K]
  const sc = [
    [0.2, 0.1, 0],
    [0, 0, 1],
    [1, -1, 0.5],
    [0.3, 0.3, 0.3],
  ];
  const tp = [
    [
      [1, 0, 0],
      [0, 1, 0],
    ],
    [
      [0, 0, 1],
      [1, 1, 0],
    ],
    [
      [0.5, 0, 0],
      [0, 0, 2],
    ],
    [
      [1, 2, 3],
      [3, 2, 1],
    ],
  ]; // [G·B, N, K]
  const sp = [
    [
      [0, 1, 0],
      [1, 0, 0],
    ],
    [
      [2, 0, 0],
      [0, 1, 1],
    ],
    [
      [0, 0, 0.5],
      [1, 0, 0],
    ],
    [
      [0, 1, 0],
      [0, 0, 1],
    ],
  ];
  const masks = [
    [1, 0],
    [0, 0],
    [1, 1],
    [0, 1],
  ]; // image 1 of crop 0 has no masked patch
  const c = [0.1, -0.2, 0.05];
  const c2 = [0, 0.3, -0.1];
  const [tt, tpt, st] = [0.04, 0.07, 0.1];

  const run = () =>
    w.evaluate(() => {
      const out = w.ibotLoss(
        {
          teacherCls: w.constant(tc),
          teacherPatch: w.constant(tp),
          studentCls: w.constant(sc),
          studentPatch: w.constant(sp),
          masks: w.constant(masks),
          center: w.constant([c]),
          center2: w.constant([[c2]]),
          teacherTemp: tt,
          teacherPatchTemp: tpt,
        },
        { globalCrops: 2 },
      );
      return [out.loss, out.cls, out.patch, out.center, out.center2];
    });

  test("matches a hand computation: cross-view [CLS] terms, same-view masked patches, unmasked images counted", () => {
    const [loss, cls, patch] = run();
    const center = (row: number[], cc: number[]) => row.map((v, k) => v - cc[k]);
    // [CLS]: q=0 vs v=1 and q=1 vs v=0, each averaged over B, divided by n1 = 2.
    const clsTerm = (q: number, v: number) =>
      (xent(softmax(center(tc[q * 2], c), tt), sc[v * 2], st) + xent(softmax(center(tc[q * 2 + 1], c), tt), sc[v * 2 + 1], st)) / 2;
    const expectedCls = (clsTerm(0, 1) + clsTerm(1, 0)) / 2;
    // Patches: per image, the mean CE over its masked patches (0 if none), then the mean over all B images, then over G.
    const perImage = (r: number) => {
      const ces = [0, 1].map((i) => masks[r][i] * xent(softmax(center(tp[r][i], c2), tpt), sp[r][i], st));
      return ces.reduce((a, b) => a + b, 0) / Math.max(1, masks[r][0] + masks[r][1]);
    };
    const expectedPatch = ((perImage(0) + perImage(1)) / 2 + (perImage(2) + perImage(3)) / 2) / 2;
    assert.ok(Math.abs(cls.item() - expectedCls) < 1e-5, `${cls.item()} vs ${expectedCls}`);
    assert.ok(Math.abs(patch.item() - expectedPatch) < 1e-5, `${patch.item()} vs ${expectedPatch}`);
    assert.ok(Math.abs(loss.item() - (expectedCls + expectedPatch)) < 1e-5);
    assert.equal(perImage(1), 0); // the unmasked image contributes 0 but still counts in the mean over B
  });

  test("the centres update after the loss, from the raw teacher logits", () => {
    const [, , , center, center2] = run();
    const meanCls = [0, 1, 2].map((k) => tc.reduce((a, r) => a + r[k], 0) / 4);
    const meanPatch = [0, 1, 2].map((k) => tp.reduce((a, img) => a + (img[0][k] + img[1][k]) / 2, 0) / 4);
    [...center.data].forEach((v, k) => assert.ok(Math.abs(v - (0.9 * c[k] + 0.1 * meanCls[k])) < 1e-6));
    [...center2.data].forEach((v, k) => assert.ok(Math.abs(v - (0.9 * c2[k] + 0.1 * meanPatch[k])) < 1e-6));
  });

  test("no gradient reaches the teacher's outputs (a property over random logits)", () => {
    const arb = fc.tuple(
      arbTensor([4, 5], { dtype: "f32" }),
      arbTensor([4, 3, 5], { dtype: "f32" }),
      arbTensor([4, 5], { dtype: "f32" }),
      arbTensor([4, 3, 5], { dtype: "f32" }),
    );
    fc.assert(
      fc.property(arb, ([a, b, cc, d]) => {
        const g = w.evaluate(
          (ta: Tensor, tb: Tensor, sa: Tensor, sb: Tensor) =>
            w.grad(
              (x: Tensor, y: Tensor, u: Tensor, v: Tensor) =>
                w.ibotLoss(
                  {
                    teacherCls: x,
                    teacherPatch: y,
                    studentCls: u,
                    studentPatch: v,
                    masks: w.ones([4, 3]),
                    center: w.zeros([1, 5]),
                    center2: w.zeros([1, 1, 5]),
                    teacherTemp: 0.04,
                    teacherPatchTemp: 0.07,
                  },
                  { globalCrops: 2 },
                ).loss,
              { argnums: [0, 1, 2, 3] },
            )(ta, tb, sa, sb),
          a,
          b,
          cc,
          d,
        );
        assert.ok(
          [...g[0].data, ...g[1].data].every((v) => v === 0),
          "teacher gradients must be zero",
        );
        assert.ok(
          [...g[2].data, ...g[3].data].some((v) => v !== 0),
          "student gradients must not all be zero",
        );
      }),
      { numRuns: 10 },
    );
  });
});

describe("positional-embedding resize", () => {
  test("bicubic rows sum to one, and a constant embedding stays constant", () => {
    const r = w.bicubicMatrix(7, 3, 3.1 / 7);
    for (const row of r) assert.ok(Math.abs(row.reduce((a, b) => a + b, 0) - 1) < 1e-12);
    const out = w.evaluate(() => w.interpolatePosEmbed(w.full([1, 50, 4], 0.25), 3));
    assert.deepEqual(out.shape, [1, 10, 4]);
    assert.ok([...out.data].every((v) => Math.abs(v - 0.25) < 1e-6));
  });

  test("the same grid is the identity; rows place Keys' cubic kernel at the official source coordinate (dst + 0.5)·7/3.1 − 0.5", () => {
    const pe = w.constant(
      Array.from({ length: 50 * 2 }, (_, i) => Math.sin(i)),
      "f32",
      [1, 50, 2],
    );
    assert.ok(w.interpolatePosEmbed(pe, 7) === pe);
    const r = w.bicubicMatrix(7, 3, 3.1 / 7);
    // Row 1 puts Keys' cubic kernel (a = −0.75) at the distances from its source coordinate.
    const src = (1 + 0.5) * (7 / 3.1) - 0.5;
    const keys = (d: number) => (d <= 1 ? 1.25 * d ** 3 - 2.25 * d ** 2 + 1 : d < 2 ? -0.75 * (d ** 3 - 5 * d ** 2 + 8 * d - 4) : 0);
    r[1].forEach((v, j) => assert.ok(Math.abs(v - keys(Math.abs(j - src))) < 1e-12, `tap ${j}`));
    const id = w.bicubicMatrix(7, 7, 1);
    id.forEach((row, i) => row.forEach((v, j) => assert.ok(Math.abs(v - (i === j ? 1 : 0)) < 1e-12)));
  });
});

describe("iBOT step", () => {
  const cfg: w.IbotModelConfig = {
    vit: { imageSize: 8, channels: 1, patchSize: 4, width: 8, depth: 2, heads: 2, mlpRatio: 2, qkvBias: true },
    head: { inDim: 8, hiddenDim: 16, bottleneckDim: 8, outDim: 16 },
    globalCrops: 2,
    localCrops: 2,
    dropPath: 0.1,
    clipGrad: 3,
  };
  const B = 3;

  test("the mask token receives gradient exactly when patches are masked", () => {
    const grads = (maskValue: number) =>
      w.evaluate(() => {
        const student = w.initStudent(w.randomKey(1), cfg);
        const batch = {
          globals: w.uniform(w.randomKey(2), [2 * B, 1, 8, 8]),
          locals: w.uniform(w.randomKey(3), [2 * B, 1, 4, 4]),
          masks: w.full([2 * B, 4], maskValue),
        };
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
        const g = w.grad((st: w.StudentParams) => w.studentLoss(st, w.teacherOf(student), w.initCenters(16), batch, s, cfg)[0])(student);
        return g.maskedEmbed;
      });
    assert.ok([...grads(1).data].some((v) => v !== 0));
    assert.ok([...grads(0).data].every((v) => v === 0));
  });

  test("lambda1 and lambda2 weight the [CLS] and patch losses; the logged parts stay unweighted", () => {
    const lossOf = (lambda1?: number, lambda2?: number) =>
      w
        .evaluate(() => {
          const student = w.initStudent(w.randomKey(1), cfg);
          const batch = {
            globals: w.uniform(w.randomKey(2), [2 * B, 1, 8, 8]),
            locals: w.uniform(w.randomKey(3), [2 * B, 1, 4, 4]),
            masks: w.full([2 * B, 4], 1),
          };
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
          const weighted = { ...cfg, ...(lambda1 === undefined ? {} : { lambda1 }), ...(lambda2 === undefined ? {} : { lambda2 }) };
          const [loss, aux] = w.studentLoss(student, w.teacherOf(student), w.initCenters(16), batch, s, weighted);
          return [loss, aux.cls, aux.patch];
        })
        .map((t) => t.item());
    const [plain, cls, patch] = lossOf();
    assert.ok(Math.abs(plain - (cls + patch)) < 1e-5);
    const [weighted, cls2, patch2] = lossOf(2, 0.5);
    assert.ok(Math.abs(weighted - (2 * cls + 0.5 * patch)) < 1e-5, `${weighted} vs ${2 * cls + 0.5 * patch}`);
    assert.deepEqual([cls2, patch2], [cls, patch]);
  });

  test("training on a fixed batch lowers the loss; the teacher follows by EMA; frozen prototypes do not move", () => {
    const init = w.evaluate(() => {
      const student = w.initStudent(w.randomKey(1), cfg);
      return { student, teacher: w.teacherOf(student), opt: w.adamInit(student), centers: w.initCenters(16) };
    });
    const batchSpec = { globals: w.spec([2 * B, 1, 8, 8]), locals: w.spec([2 * B, 1, 4, 4]), masks: w.spec([2 * B, 4]) };
    const exe = w.compile((st: w.IbotState, b: w.IbotBatch, s: w.IbotSchedule) => w.ibotStep(st, b, s, cfg), [w.specsOf(init), batchSpec, w.scheduleSpec()]);
    // Views that share content (the same images, and pooled copies as local crops), so that they can agree.
    const batch = w.evaluate(() => {
      const x = w.uniform(w.randomKey(2), [B, 1, 8, 8]);
      const small = w.mean(w.reshape(x, [B, 1, 4, 2, 4, 2]), [3, 5]);
      return { globals: w.concat([x, x], 0), locals: w.concat([small, small], 0), masks: w.cast(w.bernoulli(w.randomKey(5), 0.4, [2 * B, 4]), "f32") };
    });
    let state = init;
    const losses: number[] = [];
    let last: typeof init | null = null;
    for (let i = 1; i <= 40; i++) {
      const sched = {
        lr: 3e-4,
        weightDecay: 0.04,
        momentum: 0.99,
        teacherTemp: 0.04,
        teacherPatchTemp: 0.07,
        step: i,
        lastLayerStep: Math.max(0, i - 5),
        key: new Int32Array([0, i]),
      };
      const r = exe.run(state, batch, sched);
      if (i === 5) assert.deepEqual([...r.state.student.head.lastLayer.v.data], [...init.student.head.lastLayer.v.data], "prototypes frozen");
      losses.push(r.metrics.loss.item());
      state = r.state;
      last = r.state;
    }
    assert.ok(losses.every(Number.isFinite));
    const tail = losses.slice(-5).reduce((a, b) => a + b, 0) / 5;
    assert.ok(tail < losses[0] / 2, `loss ${losses.map((l) => l.toFixed(3)).join(" ")}`);
    // The teacher is an EMA of the student: it moved, but not onto the student.
    const t = last!.teacher.backbone.patchEmbed.w.data;
    const s0 = init.student.backbone.patchEmbed.w.data;
    const s1 = last!.student.backbone.patchEmbed.w.data;
    assert.ok(t.some((v, i) => v !== s0[i]) && t.some((v, i) => v !== s1[i]));
  });
});

describe("KoLeo (an option against collapse)", () => {
  // Gaussian rows from a random seed (shrinking-biased doubles would make many rows coincide).
  const rowsOf = (b: number) =>
    fc.integer().map((seed) => {
      const rng = hostRng(seed);
      return w.hostTensor(
        Float64Array.from({ length: 3 * b }, () => rng.normal()),
        [b, 3],
        "f64",
      );
    });
  // Rows of clear length whose nearest neighbours are unambiguous (the max is not differentiable at ties).
  const wellPosed = (x: w.HostTensor) => {
    const [b, d] = x.shape;
    const rows = Array.from({ length: b }, (_, i) => Array.from(x.data.subarray(i * d, (i + 1) * d)));
    if (rows.some((r) => Math.hypot(...r) < 0.1)) return false;
    const unit = rows.map((r) => r.map((v) => v / Math.hypot(...r)));
    return unit.every((u, i) => {
      const sims = unit.flatMap((v, j) => (j === i ? [] : [u.reduce((a, c, k) => a + c * v[k], 0)])).sort((p, q) => q - p);
      return sims.length < 2 || sims[0] - sims[1] > 1e-3;
    });
  };
  test("−mean log of each row's distance to its nearest other row, after L2 normalisation (against brute force)", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 2, max: 6 }).chain((b) => rowsOf(b)),
        (x) => {
          fc.pre(wellPosed(x));
          const got = w.evaluate((t: Tensor) => w.koleoLoss(t), x).item();
          const [b, d] = x.shape;
          const rows = Array.from({ length: b }, (_, i) => {
            const r = Array.from(x.data.subarray(i * d, (i + 1) * d));
            const n = Math.hypot(...r) || 1;
            return r.map((v) => v / Math.max(n, 1e-12));
          });
          // ‖a − b‖, its square clamped at 1e-8 as in koleoLoss
          const dist = (i: number, j: number) =>
            Math.sqrt(
              Math.max(
                rows[i].reduce((a, v, k) => a + (v - rows[j][k]) ** 2, 0),
                1e-8,
              ),
            );
          const expected =
            -rows.map((_, i) => Math.log(Math.min(...rows.map((__, j) => (j === i ? Infinity : dist(i, j)))) + 1e-8)).reduce((a, v) => a + v, 0) / b;
          assert.ok(Math.abs(got - expected) < 1e-6 * (1 + Math.abs(expected)), `${got} vs ${expected}`);
        },
      ),
      { numRuns: 50 },
    );
  });

  test("its gradient passes the finite-difference check", () => {
    fc.assert(
      fc.property(rowsOf(4), (x) => {
        fc.pre(wellPosed(x));
        checkGrads((t: Tensor) => w.koleoLoss(t), [x], { order: 1 });
      }),
      { numRuns: 30 },
    );
  });
});

describe("Sinkhorn-Knopp teacher targets (an option, DINOv2's)", () => {
  // DINOv2's sinkhorn_knopp_teacher in float64, written out: Q = exp(L/T)ᵀ, Q /= ΣQ, then 3 × (rows of Q to 1/K, columns to 1/B), Q·B.
  const reference = (logits: number[][], t: number): number[][] => {
    const [b, k] = [logits.length, logits[0].length];
    let q = logits.map((r) => r.map((v) => Math.exp(v / t)));
    const total = q.flat().reduce((a, v) => a + v, 0);
    q = q.map((r) => r.map((v) => v / total));
    for (let it = 0; it < 3; it++) {
      const col = Array.from({ length: k }, (_, j) => q.reduce((a, r) => a + r[j], 0));
      q = q.map((r) => r.map((v, j) => v / col[j] / k));
      q = q.map((r) => {
        const s = r.reduce((a, v) => a + v, 0);
        return r.map((v) => v / s / b);
      });
    }
    return q.map((r) => r.map((v) => v * b));
  };
  const logitsOf = fc.record({ b: fc.integer({ min: 2, max: 6 }), k: fc.integer({ min: 2, max: 7 }), seed: fc.integer() }).map(({ b, k, seed }) => {
    const rng = hostRng(seed);
    return Array.from({ length: b }, () => Array.from({ length: k }, () => Math.tanh(rng.normal()))); // cosine-like logits in (−1, 1)
  });

  test("equals the written-out algorithm, and its rows are distributions", () => {
    fc.assert(
      fc.property(logitsOf, fc.constantFrom(0.04, 0.07, 0.2), (l, t) => {
        const got = w.evaluate(() => w.sinkhornKnopp(w.constant(l, "f64"), t));
        const want = reference(l, t);
        const [b, k] = got.shape;
        for (let i = 0; i < b; i++)
          for (let j = 0; j < k; j++) assert.ok(Math.abs(got.data[i * k + j] - want[i][j]) < 1e-9, `[${i},${j}] ${got.data[i * k + j]} vs ${want[i][j]}`);
        for (let i = 0; i < b; i++) assert.ok(Math.abs([...got.data.subarray(i * k, (i + 1) * k)].reduce((a, v) => a + v, 0) - 1) < 1e-12);
      }),
      { numRuns: 60 },
    );
    assert.throws(() => w.evaluate(() => w.sinkhornKnopp(w.zeros([2, 3, 4]), 0.1)), /sinkhornKnopp: logits must be \[batch, prototypes\], got \[2,3,4\]/);
  });

  test("with the centre still at zero (the EMA's lag at the start), centring hands every row to one prototype; Sinkhorn-Knopp spreads them", () => {
    const rng = hostRng(7);
    const base = Array.from({ length: 16 }, () => Math.tanh(rng.normal()));
    const rows = Array.from({ length: 32 }, () => base.map((v) => v + 0.01 * rng.normal())); // rows nearly alike, as at init
    const t = 0.005;
    const [sk, centred] = w.evaluate(() => {
      const x = w.constant(rows, "f64");
      return [w.sinkhornKnopp(x, t), w.softmax(w.div(x, t), -1)];
    });
    const shares = (p: ArrayLike<number>) =>
      Array.from({ length: 16 }, (_, j) => {
        let c = 0;
        for (let i = 0; i < 32; i++) c += p[i * 16 + j];
        return c;
      });
    const entropy = (p: ArrayLike<number>) => {
      let h = 0;
      for (let i = 0; i < 32 * 16; i++) if (p[i] > 0) h -= p[i] * Math.log(p[i]);
      return h / 32;
    };
    assert.ok(Math.max(...shares(centred.data)) > 0.9 * 32, `centring: one prototype takes ${Math.max(...shares(centred.data))} of 32 rows`);
    // Every prototype holds between half and one and a half of its share (2 of 32 rows), and each row is still confident.
    for (const [j, c] of shares(sk.data).entries()) assert.ok(c > 1 && c < 3, `prototype ${j} holds ${c}`);
    assert.ok(entropy(sk.data) < 0.8 * Math.log(16), `Sinkhorn rows are confident: entropy ${entropy(sk.data)}`);
  });

  test("the [CLS] loss with Sinkhorn targets sends no gradient to the teacher", () => {
    const t = w.hostTensor(
      Float32Array.from({ length: 4 * 5 }, (_, i) => Math.sin(i)),
      [4, 5],
    );
    const s = w.hostTensor(
      Float32Array.from({ length: 4 * 5 }, (_, i) => Math.cos(i)),
      [4, 5],
    );
    const [gt, gs] = w.evaluate(
      (a: Tensor, b: Tensor) =>
        w.grad(
          (x: Tensor, y: Tensor) =>
            w.clsLoss({ teacherCls: x, studentCls: y, center: w.zeros([1, 5]), teacherTemp: 0.04 }, { globalCrops: 2, teacherTargets: "sinkhorn" }).cls,
          { argnums: [0, 1] },
        )(a, b),
      t,
      s,
    );
    assert.ok([...gt.data].every((v) => v === 0));
    assert.ok([...gs.data].some((v) => v !== 0));
  });
});
