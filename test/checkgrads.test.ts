/**
 * checkGrads's failures a researcher can act on (issue 19): a wrong VJP fails naming its argument,
 * with values, both inner products and the tolerances; a healthy function near a degenerate point
 * passes; fast-check counterexamples show tensors' values; the documented defaults are the ones used.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import fc from "fast-check";
import * as w from "../src/internals.js";
import { arbTensor, assertGradProperty, CHECK_GRADS_DEFAULTS, checkGrads, GradientCheckError, gradProperty, hostRng } from "../src/testing/index.js";
import type { Tensor } from "../src/internals.js";

/** A random f64 tensor (standard normal), seeded. */
const randn = (shape: number[], seed: number) => {
  const rng = hostRng(seed);
  return w.hostTensor(
    Float64Array.from({ length: w.sizeOf(shape) }, () => rng.normal()),
    shape,
    "f64",
  );
};
const zeros = (shape: number[]) => w.hostTensor(new Float64Array(w.sizeOf(shape)), shape, "f64");

/** matmul whose VJP scales one input's cotangent by `factor` (1 is the true VJP). */
const scaledMatmul = (factor: number, wrongInput: 0 | 1) =>
  w.customVjp(
    "scaledMatmul",
    (a, b) => w.matmul(a, b),
    ([a, b], _y, ct) => {
      const da = w.matmul(ct, w.transpose(b, [1, 0]));
      const db = w.matmul(w.transpose(a, [1, 0]), ct);
      return wrongInput === 0 ? [w.mul(da, factor), db] : [da, w.mul(db, factor)];
    },
  );

/** The researcher's model: sum(gelu(layerNorm(x @ w))), with the matmul `mm`. */
const model =
  (mm: (a: Tensor, b: Tensor) => Tensor = w.matmul) =>
  (x: Tensor, w_: Tensor) =>
    w.sum(w.gelu(w.layerNorm(mm(x, w_))));

/** The GradientCheckError `run` throws. */
function failure(run: () => void): GradientCheckError {
  try {
    run();
  } catch (e) {
    assert.ok(e instanceof GradientCheckError, `expected a GradientCheckError, got ${String(e)}`);
    return e;
  }
  assert.fail("the check passed");
}

describe("a wrong VJP fails, naming its argument", () => {
  test("1.1× the true cotangent of w, small arguments: named, with values, both inner products and the tolerances", () => {
    const x = w.hostTensor([0.5, -1, 0.25, 2, -0.75, 1.5], [2, 3], "f64");
    const wt = randn([3, 4], 1);
    const e = failure(() => checkGrads(model(scaledMatmul(1.1, 1)), [x, wt]));
    const m = e.message;
    assert.equal(e.cause, undefined, "the report is the message, not a cause");
    assert.deepEqual(e.details.argnums, [1]);
    assert.match(m, /^checkGrads: the gradient with respect to argument 1 \(w_, f64\[3,4\]\) disagrees with finite differences/);
    assert.match(m, /argument 0 \(x, f64\[2,3\]\): reverse mode .*: agrees/);
    assert.match(m, /argument 1 \(w_, f64\[3,4\]\): reverse mode .*relative error 0\.1: DISAGREES/);
    assert.match(m, /reverse mode \(VJP\): {2}⟨t, Jᵀc⟩ = -?[\d.e-]+\n {4}finite differences: {2}⟨J·t, c⟩ = -?[\d.e-]+/);
    assert.match(m, /∂⟨c, f⟩\/∂w_ element by element \(reverse mode is 1\.1 × finite differences in every element\)/);
    assert.ok(m.includes("argument 0 (x, f64[2,3]) = [[0.5, -1, 0.25], [2, -0.75, 1.5]]"), m);
    assert.ok(m.includes(`argument 1 (w_, f64[3,4]) = [[${[...wt.data.slice(0, 4)].join(", ")}], `), m);
    assert.match(m, /Tolerances: rtol 1e-5, atol 1e-5 .*eps 1e-5, 2 sample\(s\), seed 0/);
    assert.match(m, /checkGrads\(f, args, \{ rtol: 1e-4, atol: 1e-4 \}\)/);
    assert.match(m, /it is not finite-difference error/);
    assert.ok(Math.abs(e.details.analytic - e.details.numerical) > e.details.allowed);
  });

  test("moderately sized arguments: the wrong one is named either way round, larger tensors summarised", () => {
    const x = randn([6, 8], 2);
    const wt = randn([8, 5], 3);
    for (const wrong of [0, 1] as const) {
      const e = failure(() => checkGrads(model(scaledMatmul(1.1, wrong)), [x, wt]));
      assert.deepEqual(e.details.argnums, [wrong]);
      const label = wrong === 0 ? "argument 0 (x, f64[6,8])" : "argument 1 (w_, f64[8,5])";
      assert.ok(e.message.startsWith(`checkGrads: the gradient with respect to ${label} disagrees`), e.message);
      assert.match(e.message, /argument 1 \(w_, f64\[8,5\]\) = 40 values in \[-?[\d.]+, -?[\d.]+\], mean -?[\d.e-]+, RMS [\d.]+; first /);
      assert.doesNotMatch(e.message, /element by element/);
    }
    // The true VJP passes at the same point, to second order.
    checkGrads(model(scaledMatmul(1, 0)), [x, wt], { order: 2 });
  });

  test("a wrong second-order gradient is reported as such", () => {
    // x³ whose VJP is right (3x²·ct) but built so that its own derivative is off: 3·stopGradient(x)·x·ct.
    const cube = w.customVjp(
      "cube",
      (x) => w.mul(w.mul(x, x), x),
      ([x], _y, ct) => [w.mul(w.mul(w.mul(w.stopGradient(x), x), ct), 3)],
    );
    const x = w.hostTensor([0.5, -1.25, 2], [3], "f64");
    checkGrads((t) => w.sum(cube(t)), [x]);
    const e = failure(() => checkGrads((t) => w.sum(cube(t)), [x], { order: 2 }));
    assert.equal(e.details.order, 2);
    assert.match(e.message, /^checkGrads: the second-order gradient \(the VJP's own VJP.*\) with respect to argument 0 \(t, f64\[3\]\)/);
    assert.match(e.message, /∂⟨c, VJP⟩\/∂t element by element \(reverse mode is 0\.5 × finite differences/);
  });

  test("argument names: from f's parameters, a rest parameter, a function declaration, or the names option", () => {
    const bad = scaledMatmul(2, 1);
    const x = randn([2, 3], 4);
    const wt = randn([3, 2], 5);
    const first = (f: (...a: Tensor[]) => Tensor, names?: string[]) => failure(() => checkGrads(f, [x, wt], { names })).message.split("\n")[0];
    assert.match(
      first((...xs) => w.sum(bad(xs[0], xs[1]))),
      /argument 1 \(xs\[1\], f64\[3,2\]\)/,
    );
    function loss(input: Tensor, weight: Tensor) {
      return w.sum(bad(input, weight));
    }
    assert.match(first(loss), /argument 1 \(weight, f64\[3,2\]\)/);
    assert.match(first(loss, ["x", "W"]), /argument 1 \(W, f64\[3,2\]\)/);
    assert.match(first(loss.bind(null)), /argument 1 \(f64\[3,2\]\)/);
  });
});

describe("a healthy function near a degenerate point passes", () => {
  const f = model();

  test("sum(gelu(layerNorm(x @ w))) at x = 0, w = 0, to second order", () => {
    checkGrads(f, [zeros([2, 3]), zeros([3, 4])], { order: 2 });
    checkGrads(f, [zeros([4, 5]), zeros([5, 3])], { order: 2, samples: 4 });
  });

  test("at random points, at w = 0 and at x = 0 (fast-check)", () => {
    const arb = fc.oneof(
      fc.tuple(arbTensor([2, 3]), arbTensor([3, 4])),
      fc.tuple(arbTensor([2, 3]), fc.constant(zeros([3, 4]))),
      fc.tuple(fc.constant(zeros([2, 3])), arbTensor([3, 4])),
    );
    fc.assert(
      fc.property(arb, fc.nat(), ([x, wt], seed) => checkGrads(f, [x, wt], { order: 2, seed })),
      { numRuns: 25 },
    );
  });

  test("gradProperty: the same, as one property", () => {
    fc.assert(gradProperty(f, [arbTensor([3, 2]), arbTensor([2, 4])], { order: 2 }), { numRuns: 25 });
  });
});

describe("fast-check reports", () => {
  test("a HostTensor prints its values in a counterexample, and a large one its summary", () => {
    const t = w.hostTensor([1.5, -0, 2, 0.1], [2, 2], "f64");
    assert.ok(fc.hasToStringMethod(t));
    assert.equal(fc.stringify(t), 'hostTensor([1.5,-0,2,0.1], [2,2], "f64")');
    assert.equal(fc.stringify(w.hostTensor([1, 0], [2], "bool")), 'hostTensor([1,0], [2], "bool")');
    assert.match(
      fc.stringify(w.hostTensor(new Float32Array(100).fill(0.5), [10, 10])),
      /^HostTensor<f32\[10,10\]>\(100 values in \[0\.5, 0\.5\], mean 0\.5: 0\.5,0\.5,/,
    );
    assert.equal(String(t), "HostTensor<f64[2,2]>", "toString is unchanged");
  });

  test("a failing property's report shows the tensors' values", () => {
    const f = model(scaledMatmul(1.1, 1));
    assert.throws(
      () => fc.assert(gradProperty(f, [arbTensor([2, 3]), arbTensor([3, 4])]), { numRuns: 50, seed: 7 }),
      (e: unknown) => {
        const m = (e as Error).message;
        assert.match(m, /Counterexample: \[hostTensor\(\[[-\d.e,]+\], \[2,3\], "f64"\),hostTensor\(\[[-\d.e,]+\], \[3,4\], "f64"\)\]/);
        assert.ok((e as Error).cause instanceof GradientCheckError);
        return true;
      },
    );
  });

  test("assertGradProperty: fast-check's report and the checkGrads report in one message", () => {
    const f = model(scaledMatmul(1.1, 1));
    const e = failure(() => assertGradProperty(f, [arbTensor([2, 3]), arbTensor([3, 4])], {}, { numRuns: 50, seed: 7 }));
    assert.match(e.message, /^Property failed after \d+ tests\n\{ seed: 7, path: "[\d:]+", endOnFailure: true \}\nCounterexample: \[hostTensor\(/);
    assert.match(e.message, /\n\ncheckGrads: the gradient with respect to argument 1 \(w_, f64\[3,4\]\) disagrees/);
    assert.ok(e.cause instanceof GradientCheckError);
    assert.deepEqual(e.details.argnums, [1]);
    // A healthy function passes; another error than a mismatch keeps its own message.
    assertGradProperty(model(), [arbTensor([2, 3]), arbTensor([3, 4])], {}, { numRuns: 10 });
    assert.throws(
      () =>
        assertGradProperty(
          (x) => {
            throw new RangeError(`no gradient at ${x.shape.join("x")}`);
          },
          [arbTensor([2])],
          {},
          { numRuns: 3 },
        ),
      (err: unknown) =>
        err instanceof Error && !(err instanceof GradientCheckError) && /Counterexample[\s\S]*Got RangeError: no gradient at 2/.test(err.message),
    );
  });
});

describe("the tolerances", () => {
  test("the defaults are JAX check_grads's float64 tolerances, and the doc comments say the same", () => {
    assert.deepEqual(CHECK_GRADS_DEFAULTS, { order: 1, eps: 1e-5, rtol: 1e-5, atol: 1e-5, seed: 0, samples: 2 });
    const src = readFileSync(new URL("../src/testing/checkGrads.ts", import.meta.url), "utf8");
    const options = /export interface CheckGradsOptions \{([\s\S]*?)\n\}/.exec(src)?.[1] ?? "";
    for (const [key, value] of Object.entries(CHECK_GRADS_DEFAULTS)) {
      const doc = new RegExp(String.raw`/\*\*[^/]*Default ([\w.-]+)\.[^/]*\*/\s*readonly ${key}\?`).exec(options);
      assert.ok(doc, `CheckGradsOptions.${key} documents no default`);
      assert.equal(Number(doc[1]), value, `CheckGradsOptions.${key}'s doc says ${doc[1]}, the code uses ${value}`);
    }
  });

  test("a gap passes just inside atol + rtol·|numerical| and fails just outside it", () => {
    // A linear function, so finite differences are exact; its VJP is off by a factor 1 + δ.
    const k = randn([5], 6);
    const f = (delta: number) => {
      const g = w.customVjp(
        "scaled",
        (x) => w.mul(x, w.constant(k.data, "f64", k.shape)),
        (_x, _y, ct) => [w.mul(w.mul(ct, w.constant(k.data, "f64", k.shape)), 1 + delta)],
      );
      return (x: Tensor) => w.sum(g(x));
    };
    const x = randn([5], 7);
    const cases: [{ atol?: number; rtol?: number }, string][] = [
      [{}, "rtol 1e-5, atol 1e-5"],
      [{ atol: 1e-3, rtol: 1e-4 }, "rtol 1e-4, atol 0.001"],
    ];
    for (const [tol, printed] of cases) {
      const { atol, rtol } = { ...CHECK_GRADS_DEFAULTS, ...tol };
      const n = failure(() => checkGrads(f(1), [x], { samples: 1, ...tol })).details.numerical;
      const edge = (atol + rtol * Math.abs(n)) / Math.abs(n);
      checkGrads(f(0.9 * edge), [x], { samples: 1, ...tol });
      const e = failure(() => checkGrads(f(1.1 * edge), [x], { samples: 1, ...tol }));
      assert.deepEqual({ atol: e.details.options.atol, rtol: e.details.options.rtol }, { atol, rtol });
      assert.ok(e.message.includes(`Tolerances: ${printed}`), e.message);
    }
  });
});
