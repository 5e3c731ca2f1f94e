/** The DSL: build-time errors, shape inference, immutability, pytrees. */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import * as E from "fp-ts/lib/Either.js";
import * as w from "../src/internals.js";
import { arbGraph } from "../src/testing/index.js";
import type { Tensor } from "../src/internals.js";

const x23 = () => w.input([2, 3], "f32", "x");

/** Asserts that `build` throws `kind` with a message matching every pattern. */
function throwsClearly(build: () => unknown, kind: new (...a: never[]) => Error, ...patterns: RegExp[]) {
  assert.throws(build, (e: unknown) => {
    assert.ok(e instanceof kind, `expected ${kind.name}, got ${String(e)}`);
    for (const p of patterns) assert.match((e as Error).message, p);
    return true;
  });
}

describe("bad input gives a clear error at graph-build time", () => {
  test("matmul with mismatched contraction sizes names the op, both shapes and a fix", () =>
    throwsClearly(() => w.matmul(x23(), w.input([4, 5])), w.ShapeError, /^matmul:/, /\[2,3\], \[4,5\]/, /3 columns, b has 4 rows/, /Transpose/));
  test("matmul of a vector asks for an axis", () => throwsClearly(() => w.matmul(w.input([3]), w.input([3, 2])), w.ShapeError, /rank >= 2/, /expandDims/));
  test("shapes that do not broadcast", () =>
    throwsClearly(() => w.add(x23(), w.input([4, 3])), w.ShapeError, /^add:/, /axis -2 \(2 vs 4\)/, /\[2,3\], \[4,3\]/));
  test("reshape to a different element count", () =>
    throwsClearly(() => w.reshape(x23(), [4, 2]), w.ShapeError, /^reshape:/, /6 elements into \[4,2\] \(8 elements\)/));
  test("operands of different dtypes", () => throwsClearly(() => w.add(x23(), w.input([2, 3], "i32")), w.DTypeError, /^add:/, /f32, i32/, /cast/));
  test("a float-only op on integers", () => throwsClearly(() => w.log(w.input([2], "i32")), w.DTypeError, /^log: needs a float operand/));
  test("an axis out of range", () =>
    throwsClearly(() => w.sum(x23(), 2), w.ArgumentError, /^sum: axis 2 is out of range for a tensor of rank 2 \(valid: -2..1\)/));
  test("a permutation that is not one", () => throwsClearly(() => w.transpose(x23(), [0, 0]), w.ShapeError, /^permute:/, /not a permutation/));
  test("concat with mismatched axes", () => throwsClearly(() => w.concat([x23(), w.input([3, 3])], 1), w.ShapeError, /^concat:/, /all axes but 1 must match/));
  test("gather with float indices", () => throwsClearly(() => w.gather(x23(), w.input([2], "f32")), w.DTypeError, /^gather: indices must be i32/));
  test("where with a non-bool condition", () =>
    throwsClearly(() => w.where(x23(), x23(), x23()), w.DTypeError, /^where: the condition must be bool/, /greater/));
  test("a slice range outside the axis", () =>
    throwsClearly(
      () => w.make("slice", { starts: [0, 2], stops: [2, 5], steps: [1, 1] }, [x23()]),
      w.ShapeError,
      /^slice: bad range 2:5:1 on axis 1 of size 3/,
    ));
  test("broadcastTo a shape that cannot hold the operand", () =>
    throwsClearly(() => w.broadcastTo(x23(), [3, 3]), w.ShapeError, /^broadcastTo: cannot broadcast to \[3,3\]/));
  test("a random key of the wrong shape", () => throwsClearly(() => w.uniform(w.input([3], "i32"), [2]), w.ShapeError, /a key must be i32\[2\]/, /randomKey/));
  test("a ragged constant names the first ragged row", () => {
    throwsClearly(
      () => w.constant([[1, 2], [3]]),
      w.ShapeError,
      /^constant: ragged nested list: \[1\] is a list of 1, expected a list of 2 like \[0\]/,
      /same length/,
    );
    throwsClearly(
      () =>
        w.constant([
          [[1], [2]],
          [[3], 4],
        ]),
      w.ShapeError,
      /\[1\]\[1\] is the number 4, expected a list of 1 like \[0\]\[0\]/,
    );
    throwsClearly(
      () =>
        w.constant([
          [1, 2],
          ["a", 3],
        ] as never),
      w.ArgumentError,
      /^constant: \[1\]\[0\] is the string "a", expected a number/,
    );
  });
  test("linear with a PyTorch-layout weight says to transpose it", () =>
    throwsClearly(() => w.linear(x23(), w.input([4, 3])), w.ShapeError, /^linear: input features 3 ≠ weight rows 4/, /transpose/));
  test("grad of a non-scalar function", () =>
    throwsClearly(
      () => w.grad((t: Tensor) => w.exp(t))(x23()),
      w.ArgumentError,
      /^grad: the function must return a float scalar tensor, got f32\[2,3\]/,
      /sum or mean/,
    ));
  test("crossEntropy labels of the wrong shape", () =>
    throwsClearly(() => w.crossEntropy(x23(), w.input([3], "i32")), w.ShapeError, /^crossEntropy: integer labels must have the logits' shape without axis 1/));
  test("running with an argument of the wrong shape names the argument", () => {
    const exe = w.compile((p: { w: Tensor }) => w.sum(p.w), [{ w: w.spec([2, 2]) }]);
    throwsClearly(() => exe.run({ w: [1, 2, 3] }), w.ArgumentError, /argument 0\.w expects f32\[2,2\] \(4 values\), got 3 values/);
    throwsClearly(
      () => exe.run({ w: new Float64Array(4) }),
      w.ArgumentError,
      /argument 0\.w expects f32\[2,2\], got a Float64Array \(f64\); pass a Float32Array/,
    );
    throwsClearly(
      () => exe.run([1, 2, 3, 4] as never),
      w.ArgumentError,
      /argument 0 is an array, compiled with an object with keys \{w\}: pass the structure it was compiled with/,
    );
  });
  test("a compiled function closing over a foreign placeholder", () => {
    const outside = w.input([2]);
    throwsClearly(() => w.compile((t: Tensor) => w.add(t, outside), [w.spec([2])]), w.ArgumentError, /not one of its arguments/);
  });
  test("a compiled function closing over a tensor of another trace is refused when compiled", () => {
    let kept: Tensor | undefined;
    w.trace((t: Tensor) => (kept = w.exp(t)), [w.spec([2])]);
    throwsClearly(
      () => w.compile((t: Tensor) => w.add(t, kept!), [w.spec([2])]),
      w.ArgumentError,
      /^compile: the function uses a placeholder/,
      /"arg0\.0"/,
      /another trace/,
      /pass it as an argument/,
    );
  });
  test("an unknown backend", () =>
    throwsClearly(() => w.compile((t: Tensor) => t, [w.spec([1])], { backend: "tpu" as "cpu" }), w.ArgumentError, /unknown backend "tpu"/));

  test("attempt returns errors as an fp-ts Either", () => {
    const bad = w.attempt(() => w.matmul(x23(), x23()));
    assert.ok(E.isLeft(bad) && bad.left instanceof w.ShapeError && bad.left.op === "matmul");
    assert.deepEqual(bad._tag === "Left" && (bad.left as w.ShapeError).shapes, [
      [2, 3],
      [2, 3],
    ]);
    const good = w.attempt(() => w.matmul(x23(), w.input([3, 1])));
    assert.ok(E.isRight(good) && good.right.shape.join() === "2,1");
  });
});

describe("API misuse gives a WgradError naming the argument and what was given", () => {
  const given = ["a string", "null"] as const;
  const bad = { "a string": "ab", null: null } as const;
  for (const g of given) {
    test(`ops given ${g} where a tensor goes`, () => {
      const v = bad[g] as never;
      const what = g === "null" ? /null/ : /the string "ab"/;
      throwsClearly(() => w.exp(v), w.ArgumentError, /^exp: operand 0 is/, what, /expected a Tensor/);
      throwsClearly(() => w.add(x23(), v), w.ArgumentError, /^add: operand 1 is/, what);
      throwsClearly(() => w.matmul(v, x23()), w.ArgumentError, /^matmul: operand 0 is/, what);
      throwsClearly(() => w.sum(v), w.ArgumentError, /^sum: operand 0 is/, what);
      throwsClearly(() => w.transpose(v), w.ArgumentError, /^transpose: operand 0 is/, what);
      throwsClearly(() => w.concat([x23(), v]), w.ArgumentError, /^concat: operand 1 is/, what);
      throwsClearly(() => w.softmax(v), w.ArgumentError, /operand 0 is/, what);
      throwsClearly(() => w.linear(x23(), v), w.ArgumentError, /^linear: operand 1 is/, what);
    });
    test(`compile, run and evaluate given ${g} name the argument's path`, () => {
      const v = bad[g] as never;
      const what = g === "null" ? /got null/ : /got the string "ab"/;
      throwsClearly(() => w.compile((t: Tensor) => t, [v]), w.ArgumentError, /^compile: expected a spec/, /at argument 0,/, what);
      const exe = w.compile((p: { w: Tensor }) => w.sum(p.w), [{ w: w.spec([2]) }]);
      throwsClearly(() => exe.run(v), w.ArgumentError, /^run: expected a host array/, /at argument 0,/, what);
      throwsClearly(() => exe.run({ w: v }), w.ArgumentError, /^run: /, /at argument 0\.w,/, what);
      throwsClearly(() => w.evaluate((t: Tensor) => t, [1, 2], [v]), w.ArgumentError, /^evaluate: /, /at argument 1\[0\],/, what);
      throwsClearly(() => new w.HostTensor(v, [2]), w.ArgumentError, /^HostTensor: the data must be a Float32Array/, what);
    });
  }
  test("compile given a bare spec or no function says what it expects", () => {
    throwsClearly(
      () => w.compile((t: Tensor) => t, w.spec([2]) as never),
      w.ArgumentError,
      /^compile: the specs must be a list/,
      /got a TensorSpec/,
      /\[spec\(shape\)\]/,
    );
    throwsClearly(() => w.compile(w.spec([2]) as never, [w.spec([2])]), w.ArgumentError, /^compile: the first argument must be the function/);
  });
  test("evaluate with no arguments, or a function given no values", () => {
    throwsClearly(
      () => (w.evaluate as (...a: unknown[]) => unknown)(),
      w.ArgumentError,
      /^evaluate: the first argument must be the function to evaluate, got undefined/,
      /evaluate\(f, \.\.\.values\)/,
    );
    throwsClearly(() => w.evaluate((t: Tensor) => w.exp(t)), w.ArgumentError, /^evaluate: the function takes 1 argument but no values were given/);
    assert.equal(w.evaluate(() => w.constant(2)).item(), 2); // a function of no arguments needs none
  });
  test("evaluate takes a nested list as a tensor of its shape, and names the first ragged row", () => {
    assert.deepEqual(
      w
        .evaluate(
          (t: Tensor) => w.sum(t, 1),
          [
            [1, 2],
            [3, 4],
          ],
        )
        .toNested(),
      [3, 7],
    );
    assert.deepEqual(w.evaluate((t: Tensor) => t, [[[1], [2]]]).shape, [1, 2, 1]);
    throwsClearly(
      () => w.evaluate((t: Tensor) => t, [[1, 2], [3]]),
      w.ShapeError,
      /^evaluate: ragged nested list: argument 0\[1\] is a list of 1, expected a list of 2 like argument 0\[0\]/,
    );
    throwsClearly(() => w.evaluate((_a: Tensor, t: Tensor) => t, 1, { x: [[1, 2], [3, 4], [5]] }), w.ShapeError, /argument 1\.x\[2\] is a list of 1/);
    throwsClearly(() => w.evaluate((t: Tensor) => t, [[1, 2], 3] as never), w.ShapeError, /argument 0\[1\] is the number 3, expected a list of 2/);
  });
});

describe("shape inference", () => {
  test("numpy broadcasting, reductions, movement", () => {
    assert.deepEqual(w.add(w.input([4, 1, 3]), w.input([5, 1])).shape, [4, 5, 3]);
    assert.deepEqual(w.sum(w.input([2, 3, 4]), [0, 2]).shape, [3]);
    assert.deepEqual(w.sum(w.input([2, 3, 4]), -1, true).shape, [2, 3, 1]);
    assert.deepEqual(w.matmul(w.input([7, 1, 2, 3]), w.input([5, 3, 4])).shape, [7, 5, 2, 4]);
    assert.deepEqual(
      w.slice(w.input([10, 4]), [
        [1, 8, 3],
        [-2, 4],
      ]).shape,
      [3, 2],
    );
    assert.deepEqual(w.gather(w.input([5, 6, 7]), w.input([2, 3], "i32"), 1).shape, [5, 2, 3, 7]);
    assert.deepEqual(w.scatterAdd(w.input([5, 2, 3, 7]), w.input([2, 3], "i32"), 1, 6).shape, [5, 6, 7]);
    assert.deepEqual(w.make("pad", { lo: [1], hi: [2], interior: [2], value: 0 }, [w.input([3])]).shape, [10]);
    assert.deepEqual(w.reshape(w.input([4, 6]), [-1, 3]).shape, [8, 3]);
    assert.deepEqual(w.argmax(w.input([4, 6]), 0).dtype, "i32");
  });

  test("the inferred shape is the shape evaluation produces, on random graphs", () => {
    fc.assert(
      fc.property(arbGraph({ maxOps: 10 }), (g) => {
        const outs = g.build(...g.inputs.map((x) => w.input(x.shape, x.dtype)));
        const inferred = outs.map((o) => [...o.shape]);
        // evaluate() builds HostTensors from the raw arrays; count the elements independently.
        const exe = new w.CpuProgram(
          w.trace(
            g.build,
            g.inputs.map((x) => w.spec(x.shape, x.dtype)),
          ),
        );
        const raw = exe.run(g.inputs.map((x) => x.data));
        raw.forEach((r, i) =>
          assert.equal(
            r.length,
            inferred[i].reduce((a, b) => a * b, 1),
            `output ${i} after ${g.ops.join("; ")}`,
          ),
        );
      }),
      { numRuns: 60 },
    );
  });
});

describe("graphs are immutable values", () => {
  test("tensors are frozen and ops return new nodes", () => {
    const x = x23();
    const y = w.exp(x);
    assert.ok(Object.isFrozen(x) && Object.isFrozen(y));
    assert.notEqual(w.exp(x), y);
    assert.throws(() => ((x as unknown as { shape: number[] }).shape as number[]).push(1));
    assert.equal(y.inputs[0], x);
  });

  test("building a graph runs nothing", () => {
    let calls = 0;
    const body = (t: Tensor) => (calls++, w.exp(t));
    const exe = w.compile(body, [w.spec([3])]);
    assert.equal(calls, 1); // traced once
    exe.run([1, 2, 3]);
    exe.run([4, 5, 6]);
    assert.equal(calls, 1);
  });
});

describe("pytrees", () => {
  test("flatten and unflatten round-trip nested structures", () => {
    const tree = { a: [1, { b: 2, c: [3, 4] }], d: 5 };
    const { leaves, def } = w.flatten(tree, (x): x is number => typeof x === "number");
    assert.deepEqual(leaves, [1, 2, 3, 4, 5]);
    assert.deepEqual(
      w.unflatten(
        def,
        leaves.map((l) => l * 10),
      ),
      { a: [10, { b: 20, c: [30, 40] }], d: 50 },
    );
  });

  test("a non-tree value names its path", () => {
    throwsClearly(
      () => w.flatten({ a: [1, new Map()] }, (x): x is number => typeof x === "number", "number"),
      w.ArgumentError,
      /expected a number, an array or a plain object at \.a\[1\], got a Map/,
    );
  });

  test("compile takes and returns pytrees", () => {
    const exe = w.compile(
      (p: { w: Tensor; b: Tensor }, xs: Tensor[]) => ({ y: xs.map((x) => w.add(w.mul(x, p.w), p.b)) }),
      [{ w: w.spec([2]), b: w.spec([]) }, [w.spec([2]), w.spec([2])]],
    );
    const r = exe.run({ w: [1, 2], b: 1 }, [
      [1, 1],
      [2, 3],
    ]);
    assert.deepEqual(
      r.y.map((t) => [...t.data]),
      [
        [2, 3],
        [3, 7],
      ],
    );
  });
});

test("where with two number branches takes them as f32 scalars broadcast against the condition", () => {
  const out = w.evaluate((c: Tensor) => w.where(w.greater(c, 0), 0.5, -2), [1, -1, 3]) as w.HostTensor;
  assert.equal(out.dtype, "f32");
  assert.deepEqual([...out.data], [0.5, -2, 0.5]);
});
