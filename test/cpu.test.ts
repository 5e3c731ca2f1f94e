/** The CPU reference backend against independent naive implementations, and the random numbers. */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import * as w from "../src/internals.js";
import { arbBroadcastShapes, arbShape, arbShapedTensor, arbTensor } from "../src/testing/index.js";
import type { HostTensor, Tensor } from "../src/internals.js";

const RUNS = { numRuns: 40 };

/** Index helpers for naive reference loops. */
const strides = (s: readonly number[]) => s.map((_, i) => s.slice(i + 1).reduce((a, b) => a * b, 1));
const unravel = (i: number, s: readonly number[]) => strides(s).map((st, k) => Math.floor(i / st) % s[k]);
const ravel = (idx: readonly number[], s: readonly number[]) => idx.reduce((acc, v, k) => acc + v * strides(s)[k], 0);
const close = (a: ArrayLike<number>, b: ArrayLike<number>, tol = 1e-12) => {
  assert.equal(a.length, b.length);
  for (let i = 0; i < a.length; i++) assert.ok(Math.abs(a[i] - b[i]) <= tol * (1 + Math.abs(b[i])), `element ${i}: ${a[i]} vs ${b[i]}`);
};

describe("kernels agree with naive loops", () => {
  test("batched matmul with broadcast batch axes", () => {
    const arb = fc
      .tuple(arbBroadcastShapes({ maxRank: 2, maxDim: 3 }), fc.integer({ min: 1, max: 9 }), fc.integer({ min: 1, max: 300 }), fc.integer({ min: 1, max: 300 }))
      .chain(([[ba, bb], m, k, n]) => fc.tuple(arbTensor([...ba, m, Math.min(k, 40)]), arbTensor([...bb, Math.min(k, 40), n])));
    fc.assert(
      fc.property(arb, ([a, b]) => {
        const c = w.evaluate(w.matmul, a, b);
        const [m, k] = a.shape.slice(-2);
        const n = b.shape[b.rank - 1];
        const batch = c.shape.slice(0, -2);
        const expected = new Float64Array(c.size);
        const ib = (x: HostTensor, idx: number[]) => {
          const bs = x.shape.slice(0, -2);
          return ravel(
            idx.slice(idx.length - bs.length).map((v, q) => (bs[q] === 1 ? 0 : v)),
            bs,
          );
        };
        for (let q = 0; q < batch.reduce((p, d) => p * d, 1); q++) {
          const idx = unravel(q, batch);
          for (let i = 0; i < m; i++)
            for (let j = 0; j < n; j++) {
              let s = 0;
              for (let p = 0; p < k; p++) s += a.data[(ib(a, idx) * m + i) * k + p] * b.data[(ib(b, idx) * k + p) * n + j];
              expected[(q * m + i) * n + j] = s;
            }
        }
        close(c.data, expected);
      }),
      { numRuns: 25 },
    );
  });

  test("sum and max over any axes", () => {
    const arb = arbShapedTensor({ minRank: 1, maxRank: 4, maxDim: 4 }).chain((x) =>
      fc.tuple(fc.constant(x), fc.subarray([...x.shape.keys()], { minLength: 1 })),
    );
    fc.assert(
      fc.property(arb, ([x, axes]) => {
        const [s, m] = w.evaluate((t: Tensor) => [w.sum(t, axes), w.max(t, axes)], x);
        const outShape = x.shape.filter((_, i) => !axes.includes(i));
        const sums = new Float64Array(s.size);
        const maxs = new Float64Array(m.size).fill(-Infinity);
        for (let i = 0; i < x.size; i++) {
          const o = ravel(
            unravel(i, x.shape).filter((_, k) => !axes.includes(k)),
            outShape,
          );
          sums[o] += x.data[i];
          maxs[o] = Math.max(maxs[o], x.data[i]);
        }
        assert.deepEqual(s.shape, outShape);
        close(s.data, sums);
        close(m.data, maxs);
      }),
      RUNS,
    );
  });

  test("argmax and argmin take the first extreme", () => {
    const r = w.evaluate((t: Tensor) => [w.argmax(t, 1), w.argmin(t, 0)], w.hostTensor([1, 5, 5, 0, 0, -1], [2, 3], "f32"));
    assert.deepEqual([...r[0].data], [1, 0]);
    assert.deepEqual([...r[1].data], [1, 1, 1]);
  });

  test("transpose, strided slice and interior pad move the right elements", () => {
    const arb = arbShapedTensor({ minRank: 1, maxRank: 4, maxDim: 5 }).chain((x) =>
      fc.tuple(
        fc.constant(x),
        fc.shuffledSubarray([...x.shape.keys()], { minLength: x.rank, maxLength: x.rank }),
        fc.tuple(...x.shape.map((d) => fc.tuple(fc.integer({ min: 0, max: d - 1 }), fc.integer({ min: 1, max: 3 })))),
      ),
    );
    fc.assert(
      fc.property(arb, ([x, perm, ranges]) => {
        const [t, s] = w.evaluate(
          (v: Tensor) => [
            w.transpose(v, perm),
            w.slice(
              v,
              ranges.map(([a, st]) => [a, 1e9, st] as const),
            ),
          ],
          x,
        );
        for (let i = 0; i < t.size; i++) {
          const idx = unravel(i, t.shape);
          const src = new Array<number>(x.rank);
          perm.forEach((p, k) => (src[p] = idx[k]));
          assert.equal(t.data[i], x.data[ravel(src, x.shape)]);
        }
        for (let i = 0; i < s.size; i++) {
          const idx = unravel(i, s.shape).map((v, k) => ranges[k][0] + v * ranges[k][1]);
          assert.equal(s.data[i], x.data[ravel(idx, x.shape)]);
        }
        const padded = w.evaluate(
          (v: Tensor) => w.make("pad", { lo: v.shape.map(() => 1), hi: v.shape.map(() => 0), interior: v.shape.map(() => 1), value: 7 }, [v]),
          x,
        );
        for (let i = 0; i < x.size; i++)
          assert.equal(
            padded.data[
              ravel(
                unravel(i, x.shape).map((v) => 1 + 2 * v),
                padded.shape,
              )
            ],
            x.data[i],
          );
        const filled = [...padded.data].filter((v) => v === 7).length;
        assert.ok(filled >= padded.size - x.size);
      }),
      RUNS,
    );
  });

  test("gather and scatterAdd are adjoint: ⟨gather(x), u⟩ = ⟨x, scatterAdd(u)⟩", () => {
    const arb = arbShape({ minRank: 1, maxRank: 3 }).chain((s) =>
      fc
        .integer({ min: 0, max: s.length - 1 })
        .chain((axis) =>
          fc
            .array(fc.integer({ min: 0, max: s[axis] - 1 }), { minLength: 1, maxLength: 7 })
            .chain((idx) => fc.tuple(arbTensor(s), arbTensor([...s.slice(0, axis), idx.length, ...s.slice(axis + 1)]), fc.constant(idx), fc.constant(axis))),
        ),
    );
    fc.assert(
      fc.property(arb, ([x, u, idx, axis]) => {
        const ind = w.hostTensor(idx, [idx.length], "i32");
        const [lhs, rhs] = w.evaluate(
          (xx: Tensor, uu: Tensor, i: Tensor) => [w.sum(w.mul(w.gather(xx, i, axis), uu)), w.sum(w.mul(xx, w.scatterAdd(uu, i, axis, x.shape[axis])))],
          x,
          u,
          ind,
        );
        assert.ok(Math.abs(lhs.item() - rhs.item()) <= 1e-12 * (1 + Math.abs(lhs.item())));
      }),
      RUNS,
    );
  });

  test("concat and iota", () => {
    const [c, io] = w.evaluate(() => [
      w.concat(
        [
          w.constant([[1, 2]]),
          w.constant([
            [3, 4],
            [5, 6],
          ]),
        ],
        0,
      ),
      w.iota([2, 3], 1),
    ]);
    assert.deepEqual(c.toNested(), [
      [1, 2],
      [3, 4],
      [5, 6],
    ]);
    assert.deepEqual(io.toNested(), [
      [0, 1, 2],
      [0, 1, 2],
    ]);
  });

  test("f32 graphs round every op to float32; f64 graphs do not", () => {
    const f = (t: Tensor) => w.sub(w.add(t, 1e-9), t);
    assert.equal(w.evaluate(f, new Float32Array([1])).item(), 0);
    assert.ok(Math.abs(w.evaluate(f, new Float64Array([1])).item() - 1e-9) < 1e-15);
  });

  test("integer arithmetic truncates and comparisons give bool", () => {
    const [q, c] = w.evaluate((a: Tensor, b: Tensor) => [w.div(a, b), w.less(a, b)], new Int32Array([7, -7, 5]), new Int32Array([2, 2, 0]));
    assert.deepEqual([...q.data], [3, -3, 0]);
    assert.equal(c.dtype, "bool");
    assert.deepEqual([...c.data], [0, 1, 0]);
  });

  test("NaN propagates through max, maximum and matmul", () => {
    const r = w.evaluate((t: Tensor) => [w.max(t), w.maximum(t, 0), w.matmul(w.reshape(t, [1, 3]), w.zeros([3, 1], "f64"))], new Float64Array([1, NaN, 2]));
    assert.ok(Number.isNaN(r[0].item()) && Number.isNaN(r[1].data[1]) && Number.isNaN(r[2].item()));
  });
});

describe("random numbers", () => {
  test("threefry2x32 matches the Random123 known-answer vectors", () => {
    const out = new Uint32Array(2);
    const vectors: [number[], number[]][] = [
      [
        [0, 0, 0, 0],
        [0x6b200159, 0x99ba4efe],
      ],
      [
        [0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff],
        [0x1cb996fc, 0xbb002be7],
      ],
      [
        [0x13198a2e, 0x03707344, 0x243f6a88, 0x85a308d3],
        [0xc4923a9c, 0x483df7a0],
      ],
    ];
    for (const [[k0, k1, c0, c1], expected] of vectors) {
      w.threefry2x32(k0, k1, c0, c1, out);
      assert.deepEqual([...out], expected);
    }
  });

  test("the same key gives the same numbers; split keys give different ones", () => {
    const k = w.randomKey(42);
    const [a, b, c] = w.evaluate(() => {
      const [k1, k2] = w.split(k);
      return [w.uniform(k, [5]), w.uniform(k1, [5]), w.uniform(k2, [5])];
    });
    const again = w.evaluate(() => w.uniform(w.randomKey(42), [5]));
    assert.deepEqual([...again.data], [...a.data]);
    assert.notDeepEqual([...b.data], [...c.data]);
    assert.notDeepEqual([...a.data], [...b.data]);
    const folded = w.evaluate(() => [w.uniform(w.foldIn(k, 1), [3]), w.uniform(w.foldIn(k, 2), [3])]);
    assert.notDeepEqual([...folded[0].data], [...folded[1].data]);
  });

  test("distributions have the right moments", () => {
    const n = 20_000;
    const k = w.randomKey(7);
    const [u, z, t, bern] = w.evaluate(() => {
      const [k1, k2, k3, k4] = w.split(k, 4);
      return [w.uniform(k1, [n]), w.normal(k2, [n]), w.truncatedNormal(k3, [n], -2, 2), w.cast(w.bernoulli(k4, 0.3, [n]), "f32")];
    });
    const mean = (x: ArrayLike<number>) => Array.from(x).reduce((a, b) => a + b, 0) / x.length;
    const variance = (x: ArrayLike<number>) => {
      const m = mean(x);
      return mean(Array.from(x, (v) => (v - m) ** 2));
    };
    assert.ok([...u.data].every((v) => v >= 0 && v < 1));
    assert.ok(Math.abs(mean(u.data) - 0.5) < 0.01 && Math.abs(variance(u.data) - 1 / 12) < 0.003);
    assert.ok(Math.abs(mean(z.data)) < 0.03 && Math.abs(variance(z.data) - 1) < 0.04);
    assert.ok([...t.data].every((v) => v >= -2 && v <= 2));
    assert.ok(Math.abs(variance(t.data) - 0.7737) < 0.03); // variance of N(0,1) truncated to ±2
    assert.ok(Math.abs(mean(bern.data) - 0.3) < 0.015);
  });

  test("permutation gives a permutation, and all orders of 3 appear", () => {
    const seen = new Set<string>();
    for (let s = 0; s < 60; s++) {
      const p = w.evaluate(() => w.permutation(w.randomKey(s), 3));
      seen.add([...p.data].join());
    }
    assert.equal(seen.size, 6);
    fc.assert(
      fc.property(fc.integer(), fc.integer({ min: 1, max: 60 }), (seed, n) => {
        const p = w.evaluate(() => w.permutation(w.randomKey(seed), n));
        assert.deepEqual(
          [...p.data].sort((a, b) => a - b),
          [...Array(n).keys()],
        );
      }),
      { numRuns: 30 },
    );
  });

  test("keys can be run-time inputs of a compiled function", () => {
    const exe = w.compile((key: Tensor) => w.uniform(key, [3]), [w.spec([2], "i32")]);
    const a = exe.run(new Int32Array([0, 1]));
    const b = exe.run(new Int32Array([0, 2]));
    const c = w.evaluate(() => w.uniform(w.randomKey(1), [3]));
    assert.deepEqual([...a.data], [...c.data]);
    assert.notDeepEqual([...a.data], [...b.data]);
  });
});
