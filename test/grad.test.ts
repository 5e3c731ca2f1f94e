/**
 * Gradient properties: every differentiable primitive and composite against central finite
 * differences in float64 (wgrad/testing's checkGrads), on random shapes and values, first and
 * second order; stopGradient cuts exactly the paths through it.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import * as w from "../src/internals.js";
import { arbBroadcastShapes, arbShape, arbShapedTensor, arbTensor, checkGrads, type CheckGradsOptions, type TensorOptions } from "../src/testing/index.js";
import type { Tensor } from "../src/internals.js";

const RUNS = { numRuns: 25 };

/** Asserts that `build` throws `kind` with a message matching every pattern. */
function throwsClearly(build: () => unknown, kind: new (...a: never[]) => Error, ...patterns: RegExp[]) {
  assert.throws(build, (e: unknown) => {
    assert.ok(e instanceof kind, `expected ${kind.name}, got ${String(e)}`);
    for (const p of patterns) assert.match((e as Error).message, p);
    return true;
  });
}
const shapeOpts = { maxRank: 3, maxDim: 4 };

/** min |a − b| over the broadcast pairs, via the library itself. */
const minGap = (a: w.HostTensor, b: w.HostTensor) => w.evaluate((x: Tensor, y: Tensor) => w.min(w.abs(w.sub(x, y))), a, b).item();
/** The smallest variance of a row (last axis): LayerNorm's curvature grows as it shrinks. */
const minRowVariance = (x: w.HostTensor) => w.evaluate((t: Tensor) => w.min(w.variance(t, -1)), x).item();
/** min |x_i − x_j| over distinct elements (to avoid ties in max). */
const minSpread = (x: w.HostTensor) => {
  const v = [...x.data].sort((p, q) => p - q);
  return v.slice(1).reduce((m, e, i) => Math.min(m, e - v[i]), Infinity);
};

describe("unary primitives", () => {
  const cases: [string, (x: Tensor) => Tensor, TensorOptions][] = [
    ["neg", w.neg, {}],
    ["exp", w.exp, {}],
    ["log", w.log, { min: 0.2, max: 3 }],
    ["sqrt", w.sqrt, { min: 0.2, max: 3 }],
    ["tanh", w.tanh, {}],
    ["erf", w.erf, {}],
    ["abs", w.abs, { awayFromZero: 0.05 }],
    ["reciprocal", w.reciprocal, { awayFromZero: 0.3 }],
  ];
  for (const [name, f, opts] of cases)
    test(`${name}: first and second order`, () => {
      fc.assert(
        fc.property(arbShapedTensor(shapeOpts, opts), (x) => checkGrads(f, [x], { order: 2 })),
        RUNS,
      );
    });

  test("sign has a zero gradient", () => {
    const g = w.evaluate((x: Tensor) => w.grad((y: Tensor) => w.sum(w.sign(y)))(x), [-1, 0.5, 2]);
    assert.deepEqual([...g.data], [0, 0, 0]);
  });
});

describe("binary primitives with broadcasting", () => {
  const cases: [string, (a: Tensor, b: Tensor) => Tensor, TensorOptions, TensorOptions][] = [
    ["add", w.add, {}, {}],
    ["sub", w.sub, {}, {}],
    ["mul", w.mul, {}, {}],
    ["div", w.div, {}, { awayFromZero: 0.3 }],
    ["pow", w.pow, { min: 0.3, max: 2 }, { min: -2, max: 2 }],
    ["maximum", w.maximum, {}, {}],
    ["minimum", w.minimum, {}, {}],
    // Both operands off zero: x²+y² >= 0.34 keeps off the origin, and y off the branch cut (y = 0, x < 0) that a finite difference would cross.
    ["atan2", w.atan2, { awayFromZero: 0.3 }, { awayFromZero: 0.5 }],
  ];
  for (const [name, f, oa, ob] of cases)
    test(`${name}: first and second order`, () => {
      const arb = arbBroadcastShapes(shapeOpts).chain(([sa, sb]) => fc.tuple(arbTensor(sa, oa), arbTensor(sb, ob)));
      fc.assert(
        fc.property(arb, ([a, b]) => {
          if (name === "maximum" || name === "minimum") fc.pre(minGap(a, b) > 1e-3);
          checkGrads(f, [a, b], { order: 2 });
        }),
        RUNS,
      );
    });

  test("maximum splits the gradient evenly at ties", () => {
    const g = w.evaluate((a: Tensor, b: Tensor) => w.grad((x: Tensor, y: Tensor) => w.sum(w.maximum(x, y)), { argnums: [0, 1] })(a, b), [1, 2], [1, 3]);
    assert.deepEqual([...g[0].data, ...g[1].data], [0.5, 0, 0.5, 1]);
  });

  test("pow's exponent gradient is 0 (not NaN) at a zero base", () => {
    const g = w.evaluate((a: Tensor) => w.grad((y: Tensor) => w.sum(w.pow(a, y)))(w.onesLike(a)), [0, 2]);
    assert.deepEqual(
      [...g.data].map((v) => Math.round(v * 1e6) / 1e6),
      [0, Math.round(2 * Math.log(2) * 1e6) / 1e6],
    );
  });
});

describe("where, cast, reductions", () => {
  test("where: gradients reach only the chosen branch", () => {
    const arb = arbShape(shapeOpts).chain((s) => fc.tuple(arbTensor(s, { dtype: "bool" }), arbTensor(s), arbTensor(s)));
    fc.assert(
      fc.property(arb, ([c, a, b]) => checkGrads((x, y) => w.where(w.cast(w.constant(c.data, "bool", c.shape), "bool"), x, y), [a, b], { order: 2 })),
      RUNS,
    );
  });

  test("sum over random axes, keepDims or not", () => {
    const arb = arbShapedTensor({ ...shapeOpts, minRank: 1 }).chain((x) => fc.tuple(fc.constant(x), fc.subarray([...x.shape.keys()]), fc.boolean()));
    fc.assert(
      fc.property(arb, ([x, axes, keep]) => checkGrads((t) => w.sum(w.mul(t, t), axes, keep), [x], { order: 2 })),
      RUNS,
    );
  });

  test("max over random axes (distinct values)", () => {
    const arb = arbShapedTensor({ ...shapeOpts, minRank: 1 }).chain((x) => fc.tuple(fc.constant(x), fc.subarray([...x.shape.keys()])));
    fc.assert(
      fc.property(arb, ([x, axes]) => {
        fc.pre(minSpread(x) > 1e-3);
        checkGrads((t) => w.max(w.mul(t, 3), axes), [x], { order: 2 });
      }),
      RUNS,
    );
  });

  test("cast between floats passes the cotangent through; to integers it stops", () => {
    const [g32, gInt] = w.evaluate(
      (x: Tensor) => [w.grad((y: Tensor) => w.sum(w.cast(w.mul(y, 2), "f32")))(x), w.grad((y: Tensor) => w.sum(w.mul(w.cast(w.cast(y, "i32"), "f64"), y)))(x)],
      new Float64Array([1.5, -2.5]),
    );
    assert.deepEqual([...g32.data], [2, 2]);
    assert.deepEqual([...gInt.data], [1, -2]); // only the direct path: d/dy [c·y] with c = int(y) held constant
  });
});

describe("movement primitives", () => {
  test("reshape and transpose", () => {
    const arb = arbShapedTensor({ ...shapeOpts, minRank: 1 }).chain((x) =>
      fc.tuple(fc.constant(x), fc.shuffledSubarray([...x.shape.keys()], { minLength: x.rank, maxLength: x.rank })),
    );
    fc.assert(
      fc.property(arb, ([x, perm]) => checkGrads((t) => w.mul(w.reshape(w.transpose(w.mul(t, t), perm), [-1]), 1.5), [x], { order: 2 })),
      RUNS,
    );
  });

  test("broadcastTo", () => {
    const arb = arbBroadcastShapes(shapeOpts).chain(([a]) => fc.tuple(arbTensor(a), fc.integer({ min: 1, max: 3 })));
    fc.assert(
      fc.property(arb, ([x, lead]) => checkGrads((t) => w.broadcastTo(w.mul(t, t), [lead, ...t.shape.map((d) => (d === 1 ? 2 : d))]), [x], { order: 2 })),
      RUNS,
    );
  });

  test("strided slice and interior/edge pad are adjoint and differentiable", () => {
    const arb = arbShapedTensor({ minRank: 1, maxRank: 3, maxDim: 6 }).chain((x) =>
      fc.tuple(
        fc.constant(x),
        fc.tuple(...x.shape.map((d) => fc.tuple(fc.integer({ min: 0, max: d }), fc.integer({ min: 0, max: d }), fc.integer({ min: 1, max: 3 })))),
      ),
    );
    fc.assert(
      fc.property(arb, ([x, ranges]) => {
        const r = ranges.map(([a, b, s]) => [Math.min(a, b), Math.max(a, b), s] as const);
        checkGrads((t) => w.slice(w.mul(t, t), r), [x], { order: 2 });
        checkGrads(
          (t) => w.make("pad", { lo: r.map((v) => v[2] - 1), hi: r.map((v) => v[0] % 2), interior: r.map((v) => v[2] - 1), value: 0.5 }, [w.exp(t)]),
          [x],
        );
      }),
      RUNS,
    );
  });

  test("concat along a random axis", () => {
    const arb = arbShape({ minRank: 1, maxRank: 3 }).chain((s) =>
      fc
        .integer({ min: 0, max: s.length - 1 })
        .chain((axis) => fc.tuple(arbTensor(s), arbTensor(s.map((d, i) => (i === axis ? d + 1 : d))), fc.constant(axis))),
    );
    fc.assert(
      fc.property(arb, ([a, b, axis]) => checkGrads((x, y) => w.concat([w.tanh(x), w.mul(y, y)], axis), [a, b], { order: 2 })),
      RUNS,
    );
  });

  test("gather (repeated indices accumulate) and scatterAdd", () => {
    const arb = arbShape({ minRank: 1, maxRank: 3 }).chain((s) =>
      fc
        .integer({ min: 0, max: s.length - 1 })
        .chain((axis) => fc.tuple(arbTensor(s), fc.array(fc.integer({ min: 0, max: s[axis] - 1 }), { minLength: 1, maxLength: 6 }), fc.constant(axis))),
    );
    fc.assert(
      fc.property(arb, ([x, idx, axis]) => {
        const ind = w.hostTensor(idx, [idx.length], "i32");
        checkGrads((t, i) => w.gather(w.mul(t, t), i, axis), [x, ind], { order: 2 });
        checkGrads((t, i) => w.scatterAdd(w.exp(w.gather(t, i, axis)), i, axis, x.shape[axis]), [x, ind], { order: 2 });
      }),
      RUNS,
    );
  });

  test("batched matmul with broadcast batch axes", () => {
    const arb = fc
      .tuple(arbBroadcastShapes({ maxRank: 2, maxDim: 3 }), fc.integer({ min: 1, max: 4 }), fc.integer({ min: 1, max: 4 }), fc.integer({ min: 1, max: 4 }))
      .chain(([[ba, bb], m, k, n]) => fc.tuple(arbTensor([...ba, m, k]), arbTensor([...bb, k, n])));
    fc.assert(
      fc.property(arb, ([a, b]) => checkGrads(w.matmul, [a, b], { order: 2 })),
      RUNS,
    );
  });
});

describe("composites", () => {
  const lastAxis = { minRank: 1, maxRank: 3, maxDim: 5 };
  const cases: [string, (x: Tensor) => Tensor, TensorOptions?, CheckGradsOptions?][] = [
    ["softmax", (x) => w.softmax(x)],
    ["logSoftmax", (x) => w.logSoftmax(x)],
    ["logSumExp (custom VJP)", (x) => w.logSumExp(w.mul(x, 3))],
    ["l2Normalize (custom VJP)", (x) => w.l2Normalize(x), { awayFromZero: 0.2 }],
    ["layerNorm without affine", (x) => w.layerNorm(x, undefined, undefined, 1e-6)],
    ["gelu", w.gelu],
    ["geluTanh", w.geluTanh],
    ["sigmoid", w.sigmoid],
    ["relu", w.relu, { awayFromZero: 0.05 }],
    ["mean", (x) => w.mean(w.mul(x, x), -1)],
    ["variance", (x) => w.variance(x, -1)],
    ["min", (x) => w.min(w.mul(x, x), 0)],
    // erfinv's third derivative is large near ±1: a smaller step keeps central differences exact enough.
    ["erfinv", w.erfinv, { min: -0.95, max: 0.95 }, { eps: 1e-6 }],
  ];
  for (const [name, f, opts, check] of cases)
    test(`${name}: first and second order`, () => {
      fc.assert(
        fc.property(arbShapedTensor(lastAxis, opts ?? {}), (x) => {
          if (name === "min") fc.pre(minSpread(w.evaluate((t: Tensor) => w.mul(t, t), x)) > 1e-3);
          if (name.startsWith("layerNorm")) fc.pre(minRowVariance(x) > 0.05);
          checkGrads(f, [x], { order: 2, ...check });
        }),
        RUNS,
      );
    });

  test("layerNorm with gamma and beta", () => {
    const arb = arbShape({ minRank: 1, maxRank: 3, minDim: 2 }).chain((s) => fc.tuple(arbTensor(s), arbTensor(s.slice(-1)), arbTensor(s.slice(-1))));
    fc.assert(
      fc.property(arb, ([x, g, b]) => {
        fc.pre(minRowVariance(x) > 0.05);
        checkGrads((t, gg, bb) => w.layerNorm(t, gg, bb, 1e-6), [x, g, b], { order: 2 });
      }),
      RUNS,
    );
  });

  test("linear", () => {
    const arb = fc
      .tuple(arbShape({ maxRank: 2, maxDim: 3 }), fc.integer({ min: 1, max: 4 }), fc.integer({ min: 1, max: 4 }))
      .chain(([lead, i, o]) => fc.tuple(arbTensor([...lead, i]), arbTensor([i, o]), arbTensor([o])));
    fc.assert(
      fc.property(arb, ([x, wt, b]) => checkGrads(w.linear, [x, wt, b], { order: 2 })),
      RUNS,
    );
  });

  test("crossEntropy with soft targets and with integer labels", () => {
    const arb = fc
      .tuple(fc.integer({ min: 1, max: 4 }), fc.integer({ min: 2, max: 5 }))
      .chain(([n, k]) =>
        fc.tuple(arbTensor([n, k]), arbTensor([n, k], { min: 0.1, max: 1 }), fc.array(fc.integer({ min: 0, max: k - 1 }), { minLength: n, maxLength: n })),
      );
    fc.assert(
      fc.property(arb, ([logits, t, labels]) => {
        checkGrads((x, y) => w.crossEntropy(x, w.div(y, w.sum(y, -1, true))), [logits, t], { order: 2 });
        checkGrads((x, l) => w.crossEntropy(x, l), [logits, w.hostTensor(labels, [labels.length], "i32")], { order: 2 });
      }),
      RUNS,
    );
  });

  test("scaled dot-product and multi-head attention", () => {
    const arb = fc
      .tuple(fc.integer({ min: 1, max: 2 }), fc.integer({ min: 1, max: 4 }), fc.integer({ min: 1, max: 3 }))
      .chain(([b, t, h]) =>
        fc.tuple(arbTensor([b, t, 2 * h]), arbTensor([2 * h, 6 * h], { min: -0.5, max: 0.5 }), arbTensor([6 * h]), arbTensor([2 * h, 2 * h]), fc.constant(h)),
      );
    fc.assert(
      fc.property(arb, ([x, wq, bq, wo, h]) => {
        checkGrads(
          (q, k, v) => w.scaledDotProductAttention(q, k, v),
          [x, w.evaluate((t: Tensor) => w.mul(t, 0.7), x), w.evaluate((t: Tensor) => w.tanh(t), x)],
          { order: 2 },
        );
        checkGrads((xx, a, b, o) => w.multiHeadAttention(xx, { wQkv: a, bQkv: b, wOut: o }, h), [x, wq, bq, wo]);
      }),
      { numRuns: 6 },
    );
  });
});

describe("cotangents are checked against their primals", () => {
  const gradOf = (f: (x: Tensor) => Tensor, shape: readonly number[]) => () =>
    w.evaluate((x: Tensor) => w.grad((t: Tensor) => w.sum(f(t)))(x), w.hostTensor(new Float32Array(w.sizeOf(shape)), shape));

  test("a custom VJP returning a cotangent of another shape is refused where the gradient is built, naming it and the input", () => {
    // The case: a rank-0 gradient for a [3] parameter used to broadcast into the update.
    const s2 = w.customVjp(
      "s2",
      (x) => w.mul(x, 2),
      (_x, _y, ct) => [w.sum(ct)],
    );
    assert.throws(
      gradOf(s2, [3]),
      (e: unknown) => e instanceof w.ShapeError && /customVjp "s2" returned a cotangent of shape \[\] for input 0, of shape \[3\]/.test(e.message),
    );
    fc.assert(
      fc.property(arbShape({ maxRank: 3, maxDim: 4 }), arbShape({ maxRank: 3, maxDim: 4 }), (shape, wrong) => {
        fc.pre(wrong.length !== shape.length || wrong.some((d, k) => d !== shape[k]));
        const f = w.customVjp(
          "wrong",
          (x) => w.mul(x, 2),
          () => [w.zeros(wrong)],
        );
        assert.throws(
          gradOf(f, shape),
          (e: unknown) => e instanceof w.ShapeError && e.message.includes(`returned a cotangent of shape ${w.formatShape(wrong)} for input 0`),
        );
      }),
      RUNS,
    );
  });

  test("a custom VJP with the right shapes passes; one returning too few cotangents or an integer one is refused", () => {
    const ok = w.customVjp(
      "ok",
      (x) => w.mul(x, 2),
      (_x, _y, ct) => [w.mul(ct, 2)],
    );
    assert.deepEqual([...(gradOf(ok, [3])() as w.HostTensor).data], [2, 2, 2]);
    const pair = w.customVjp(
      "pair",
      (a, b) => w.mul(a, b),
      (_xs, _y, ct) => [ct],
    );
    assert.throws(
      () => w.evaluate((a: Tensor, b: Tensor) => w.grad((x: Tensor, y: Tensor) => w.sum(pair(x, y)), { argnums: [0, 1] })(a, b), [1, 2], [3, 4]),
      /customVjp "pair" returned 1 cotangents for 2 inputs/,
    );
    const int = w.customVjp(
      "int",
      (x) => w.mul(x, 2),
      (_x, _y, ct) => [w.cast(ct, "i32")],
    );
    assert.throws(gradOf(int, [2]), (e: unknown) => e instanceof w.DTypeError && /customVjp "int" returned a i32 cotangent for input 0/.test(e.message));
  });
});

describe("stopGradient", () => {
  const fns: ((x: Tensor) => Tensor)[] = [w.tanh, w.exp, (x) => w.mul(x, x), w.sigmoid, (x) => w.softmax(x)];
  const arbFns = fc.tuple(fc.constantFrom(...fns), fc.constantFrom(...fns));

  test("d/dx [x · sg(x)] = sg(x), and d/dx sg(f(x)) = 0", () => {
    fc.assert(
      fc.property(arbShapedTensor(shapeOpts), (x) => {
        const [g1, g2] = w.evaluate(
          (t: Tensor) => [w.grad((y: Tensor) => w.sum(w.mul(y, w.stopGradient(y))))(t), w.grad((y: Tensor) => w.sum(w.stopGradient(w.exp(y))))(t)],
          x,
        );
        assert.deepEqual([...g1.data], [...x.data]);
        assert.ok([...g2.data].every((v) => v === 0));
      }),
      RUNS,
    );
  });

  test("it cuts exactly the paths through it: grad[a(x) + sg(b(x))·a(x)] = grad[a]·(1 + b)", () => {
    fc.assert(
      fc.property(arbShapedTensor({ minRank: 1, maxRank: 2 }), arbFns, (x, [a, b]) => {
        const [lhs, rhs] = w.evaluate((t: Tensor) => {
          const c = w.onesLike(t);
          const lhs = w.vjp((y: Tensor) => w.add(a(y), w.mul(w.stopGradient(b(y)), a(y))), t)[1](c);
          const pa = w.vjp(a, t)[1];
          return [lhs[0], pa(w.add(c, b(t)))[0]];
        }, x);
        lhs.data.forEach((v, i) => assert.ok(Math.abs(v - rhs.data[i]) <= 1e-12 * (1 + Math.abs(v)), `${v} vs ${rhs.data[i]}`));
      }),
      RUNS,
    );
  });

  test("second order: the Hessian of x·sg(x²) is zero beyond the direct term", () => {
    const h = w.evaluate((x: Tensor, v: Tensor) => w.hvp((y: Tensor) => w.sum(w.mul(w.mul(y, y), w.stopGradient(w.mul(y, y)))), x, v), [1, 2], [1, 1]);
    // f = Σ y²·c with c = sg(y²): H = 2·diag(c), so H·1 = 2·x²
    assert.deepEqual([...h.data], [2, 8]);
  });
});

describe("forward mode and Jacobians", () => {
  // A smooth function of two arguments mixing elementwise, reduction, movement and matmul ops.
  const f = (a: Tensor, b: Tensor) => w.add(w.tanh(w.matmul(a, b)), w.mul(w.sum(w.mul(a, a), -1, true), w.softmax(w.matmul(a, w.exp(b)))));
  const arbPair = fc
    .tuple(fc.integer({ min: 1, max: 4 }), fc.integer({ min: 1, max: 4 }))
    .chain(([m, k]) => fc.tuple(arbTensor([m, k]), arbTensor([k, m]), arbTensor([m, k]), arbTensor([k, m]), arbTensor([m, m])));

  test("jvp agrees with vjp: ⟨J·t, c⟩ = ⟨t, Jᵀ·c⟩ for random points, tangents and cotangents (f64)", () => {
    fc.assert(
      fc.property(arbPair, ([a, b, ta, tb, c]) => {
        const [lhs, rhs] = w.evaluate(
          (x: Tensor, y: Tensor, tx: Tensor, ty: Tensor, ct: Tensor) => {
            const [, jt] = w.jvp(f, [x, y], [tx, ty]);
            const [, pullback] = w.vjp(f, x, y);
            const [gx, gy] = pullback(ct);
            return [w.sum(w.mul(jt, ct)), w.add(w.sum(w.mul(tx, gx)), w.sum(w.mul(ty, gy)))];
          },
          a,
          b,
          ta,
          tb,
          c,
        );
        assert.ok(Math.abs(lhs.item() - rhs.item()) <= 1e-10 * (1 + Math.abs(rhs.item())), `${lhs.item()} vs ${rhs.item()}`);
      }),
      RUNS,
    );
  });

  test("jvp's primal output is f's, its tangent is linear in the tangent, and it composes with grad", () => {
    const r = w.evaluate(
      (x: Tensor, t: Tensor) => {
        const g = (u: Tensor) => w.sum(w.mul(w.tanh(u), w.mul(u, u)));
        const [y, jt] = w.jvp(w.exp, [x], [t]);
        const [, jt2] = w.jvp(w.exp, [x], [w.mul(t, 3)]);
        // d/dx of (∇g · t) is the Hessian-vector product: jvp of grad (forward over reverse) equals hvp.
        const [, fwdOverRev] = w.jvp(w.grad(g), [x], [t]);
        return { y, jt, jt2, fwdOverRev, hvp: w.hvp(g, x, t) };
      },
      w.hostTensor([0.5, -1, 2], [3], "f64"),
      w.hostTensor([1, 2, -0.5], [3], "f64"),
    );
    assert.deepEqual([...r.y.data], [0.5, -1, 2].map(Math.exp));
    [...r.jt.data].forEach((v, i) => assert.ok(Math.abs(v - Math.exp([0.5, -1, 2][i]) * [1, 2, -0.5][i]) < 1e-12));
    [...r.jt2.data].forEach((v, i) => assert.ok(Math.abs(v - 3 * r.jt.data[i]) < 1e-12));
    [...r.fwdOverRev.data].forEach((v, i) => assert.ok(Math.abs(v - r.hvp.data[i]) < 1e-12, `${v} vs ${r.hvp.data[i]}`));
  });

  test("jacfwd equals jacrev, shaped [...out, ...in], and matches a closed form", () => {
    fc.assert(
      fc.property(arbShapedTensor({ maxRank: 2, maxDim: 3 }), (x) => {
        const g = (u: Tensor) => w.mul(w.tanh(u), w.sum(w.mul(u, u)));
        const [jf, jr] = w.evaluate((t: Tensor) => [w.jacfwd(g)(t), w.jacrev(g)(t)], x);
        assert.deepEqual(jf.shape, [...x.shape, ...x.shape]);
        assert.deepEqual(jr.shape, jf.shape);
        jf.data.forEach((v, i) => assert.ok(Math.abs(v - jr.data[i]) < 1e-10, `element ${i}: ${v} vs ${jr.data[i]}`));
      }),
      RUNS,
    );
    // d/dx (x ⊙ x) = diag(2x).
    const j = w.evaluate((t: Tensor) => w.jacrev((u: Tensor) => w.mul(u, u))(t), w.hostTensor([1, 2], [2], "f64"));
    assert.deepEqual([...j.data], [2, 0, 0, 4]);
  });

  test("tangents must match their primals", () => {
    assert.throws(() => w.evaluate((x: Tensor) => w.jvp(w.exp, [x], [w.zeros([3])])[1], [1, 2]), /jvp: tangent 0 has shape \[3\] but its primal has \[2\]/);
  });
});

describe("transformations", () => {
  test("grad over pytrees with argnums, and valueAndGrad with aux", () => {
    const loss = (p: { w: Tensor; b: Tensor }, x: Tensor) => w.sum(w.square(w.add(w.matmul(x, p.w), p.b)));
    const r = w.evaluate(
      (pw: Tensor, pb: Tensor, x: Tensor) => {
        const [[l, aux], g] = w.valueAndGrad((p: { w: Tensor; b: Tensor }, xx: Tensor) => [loss(p, xx), w.mul(xx, 2)] as const, { argnums: 0, hasAux: true })(
          { w: pw, b: pb },
          x,
        );
        const [gp, gx] = w.grad(loss, { argnums: [0, 1] })({ w: pw, b: pb }, x);
        return { l, aux, gw: g.w, gb: g.b, gw2: gp.w, gx };
      },
      w.hostTensor([1, 2], [2, 1]),
      w.hostTensor([0.5], [1]),
      w.hostTensor([1, 1], [1, 2]),
    );
    // y = 1 + 2 + 0.5 = 3.5; loss = 12.25; dL/dw = 2y·x = [7, 7]; dL/db = 7; dL/dx = 2y·wᵀ = [7, 14]
    assert.equal(r.l.item(), 12.25);
    assert.deepEqual([...r.aux.data], [2, 2]);
    assert.deepEqual([...r.gw.data], [7, 7]);
    assert.deepEqual([...r.gw2.data], [7, 7]);
    assert.deepEqual([...r.gb.data], [7]);
    assert.deepEqual([...r.gx.data], [7, 14]);
  });

  test("fan-out accumulates and unused arguments get zero gradients", () => {
    const g = w.evaluate(
      (x: Tensor, y: Tensor) => w.grad((a: Tensor, _b: Tensor) => w.sum(w.add(w.mul(a, a), w.mul(a, 3))), { argnums: [0, 1] })(x, y),
      [1, 2],
      [5],
    );
    assert.deepEqual([...g[0].data, ...g[1].data], [5, 7, 0]);
  });

  test("nested grad does not confuse perturbations: d/dx [x · d/dy (x·y)] = 2x", () => {
    const g = w.evaluate((x: Tensor) => w.grad((a: Tensor) => w.mul(a, w.grad((b: Tensor) => w.mul(a, b))(a)))(x), 3);
    assert.equal(g.item(), 6);
  });

  test("grad and valueAndGrad refuse integer and bool arguments, naming the leaf; argnums and vjp take them", () => {
    const loss = (x: Tensor, labels: Tensor) => w.sum(w.crossEntropy(x, labels));
    const [x, labels] = [w.input([2, 3]), w.input([2], "i32")];
    throwsClearly(
      () => w.grad(loss, { argnums: 1 })(x, labels),
      w.ArgumentError,
      /^grad: grad requires real-valued inputs; argument 1 has dtype i32; pass it as a non-differentiated argument \(leave it out of argnums\) or cast it to f32/,
    );
    throwsClearly(
      () => w.valueAndGrad((p: { w: Tensor; mask: Tensor }) => w.sum(w.where(p.mask, p.w, 0)))({ w: x, mask: w.input([2, 3], "bool") }),
      w.ArgumentError,
      /^valueAndGrad: valueAndGrad requires real-valued inputs; argument 0\.mask has dtype bool/,
    );
    assert.deepEqual(w.grad(loss)(x, labels).shape, [2, 3]); // the labels are not differentiated
    const [, back] = w.vjp(loss, x, labels); // JAX's vjp takes integer primals too; their cotangent is zero
    assert.equal(back(w.scalar(1))[1].dtype, "i32");
  });

  test("transformations given no function, or a string or null argument, say so", () => {
    throwsClearly(() => w.grad(null as never), w.ArgumentError, /^grad: the first argument must be the function to differentiate, got null/);
    throwsClearly(
      () => w.grad((t: Tensor) => w.sum(t))("ab" as never),
      w.ArgumentError,
      /^grad: expected a Tensor, an array or a plain object at argument 0, got the string "ab"/,
    );
    throwsClearly(() => w.vjp((t: Tensor) => t, null as never), w.ArgumentError, /^vjp: expected a Tensor, .* at argument 0, got null/);
  });

  test("vjp checks the cotangent's shape", () => {
    const [, back] = w.vjp((x: Tensor) => w.exp(x), w.input([3]));
    assert.throws(() => back(w.input([4])), /cotangent leaf 0 has shape \[4\] but the output has \[3\]/);
  });

  test("a deep chain (20 000 nodes) differentiates without overflowing the stack", () => {
    const g = w.evaluate(
      (x: Tensor) =>
        w.grad((y: Tensor) => {
          let z = y;
          for (let i = 0; i < 10_000; i++) z = w.add(z, 1e-4);
          return w.sum(w.mul(z, z));
        })(x),
      new Float64Array([0]),
    );
    assert.ok(Math.abs(g.item() - 2) < 1e-5);
  });
});
