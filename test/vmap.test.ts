/**
 * vmap: a batched graph equals the function applied example by example, on random graphs of
 * every primitive the generators draw, and composes with grad (per-example gradients) and jvp.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import * as w from "../src/internals.js";
import type { Tensor } from "../src/internals.js";
import { arbGraph, arbShapedTensor, arbTensor } from "../src/testing/index.js";

const close = (a: ArrayLike<number>, b: ArrayLike<number>, what: string, tol = 1e-9) => {
  assert.equal(a.length, b.length, `${what}: lengths`);
  for (let i = 0; i < a.length; i++) {
    const ok = Object.is(a[i], b[i]) || Math.abs(a[i] - b[i]) <= tol * (1 + Math.abs(b[i]));
    assert.ok(ok, `${what}: element ${i}: ${a[i]} vs ${b[i]}`);
  }
};

/** Three examples from one: x, a scaled and shifted copy, and its tanh. */
const examplesOf = (x: w.HostTensor): w.HostTensor[] => [x, w.evaluate((t: Tensor) => w.sub(w.mul(t, 1.5), 0.25), x), w.evaluate((t: Tensor) => w.tanh(t), x)];

describe("vmap", () => {
  test("on random graphs (every generated primitive), the batched graph equals the graph per example, stacked", () => {
    fc.assert(
      fc.property(arbGraph({ maxOps: 6 }), fc.nat(), (g, pick) => {
        const inAxes = g.inputs.map((x, i) => ((pick >> i) & 1 && i > 0 ? null : x.rank ? (pick >> (i + 3)) % (x.rank + 1) : 0));
        const examples = g.inputs.map((x) => examplesOf(x));
        // Batched arguments: the three examples stacked at the argument's axis; unmapped ones, the first example.
        const args = g.inputs.map((x, i) =>
          inAxes[i] === null ? examples[i][0] : w.evaluate((a: Tensor, b: Tensor, c: Tensor) => w.stack([a, b, c], inAxes[i] as number), ...examples[i]),
        );
        const batched = w.evaluate((...xs: Tensor[]) => w.vmap((...ys: Tensor[]) => g.build(...ys), { inAxes })(...xs), ...args) as w.HostTensor[];
        for (let b = 0; b < 3; b++) {
          const one = w.evaluate(
            (...xs: Tensor[]) => g.build(...xs),
            ...g.inputs.map((_, i) => (inAxes[i] === null ? examples[i][0] : examples[i][b])),
          ) as w.HostTensor[];
          one.forEach((o, k) => {
            const row = w.evaluate((t: Tensor) => w.reshape(w.sliceAxis(t, 0, b, b + 1), t.shape.slice(1)), batched[k]);
            assert.deepEqual(row.shape, o.shape, `output ${k} (${g.ops.join("; ")})`);
            close(row.data, o.data, `example ${b}, output ${k} (${g.ops.join("; ")})`);
          });
        }
      }),
      { numRuns: 60 },
    );
  });

  test("per-example gradients: vmap(grad(loss)) with shared parameters equals the gradient of each example's loss", () => {
    const loss = (p: { w: Tensor; b: Tensor }, x: Tensor, y: Tensor) => w.sum(w.square(w.sub(w.tanh(w.add(w.matmul(x, p.w), p.b)), y)));
    fc.assert(
      fc.property(arbTensor([3, 2]), arbTensor([2]), arbTensor([4, 1, 3]), arbTensor([4, 1, 2]), (pw, pb, xs, ys) => {
        const per = w.evaluate(
          (a: Tensor, b: Tensor, x: Tensor, y: Tensor) => w.vmap((xx: Tensor, yy: Tensor) => w.grad(loss)({ w: a, b }, xx, yy), { inAxes: [0, 0] })(x, y),
          pw,
          pb,
          xs,
          ys,
        );
        assert.deepEqual(per.w.shape, [4, 3, 2]);
        for (let i = 0; i < 4; i++) {
          const gi = w.evaluate(
            (a: Tensor, b: Tensor, x: Tensor, y: Tensor) =>
              w.grad(loss)({ w: a, b }, w.reshape(w.sliceAxis(x, 0, i, i + 1), [1, 3]), w.reshape(w.sliceAxis(y, 0, i, i + 1), [1, 2])),
            pw,
            pb,
            xs,
            ys,
          );
          close(per.w.data.subarray(6 * i, 6 * i + 6), gi.w.data, `example ${i}, w`);
          close(per.b.data.subarray(2 * i, 2 * i + 2), gi.b.data, `example ${i}, b`);
        }
      }),
      { numRuns: 15 },
    );
  });

  test("grad of a vmapped function and jvp through vmap agree with their unbatched forms; outAxes moves the batch", () => {
    fc.assert(
      fc.property(arbShapedTensor({ minRank: 1, maxRank: 2, maxDim: 3 }), (x) => {
        const f = (t: Tensor) => w.mul(w.exp(w.tanh(t)), w.sum(t));
        const r = w.evaluate(
          (t: Tensor) => ({
            g: w.grad((u: Tensor) => w.sum(w.vmap(f)(u)))(t),
            gRef: w.grad((u: Tensor) =>
              w.sum(w.stack(Array.from({ length: u.shape[0] }, (_, i) => f(w.reshape(w.sliceAxis(u, 0, i, i + 1), u.shape.slice(1)))))),
            )(t),
            jv: w.jvp(w.vmap(f), [t], [w.onesLike(t)])[1],
            vj: w.vmap((u: Tensor) => w.jvp(f, [u], [w.onesLike(u)])[1])(t),
            moved: w.vmap(f, { outAxes: -1 })(t),
            plain: w.vmap(f)(t),
          }),
          x,
        );
        close(r.g.data, r.gRef.data, "grad of vmap");
        close(r.jv.data, r.vj.data, "jvp of vmap = vmap of jvp");
        const moved = w.evaluate((t: Tensor) => w.transpose(t, [t.rank - 1, ...Array.from({ length: t.rank - 1 }, (_, i) => i)]), r.moved);
        close(moved.data, r.plain.data, "outAxes -1");
      }),
      { numRuns: 20 },
    );
  });

  test("gather and scatterAdd with batched indices (clamped per example), custom VJPs and random keys per example", () => {
    const x = w.hostTensor(
      Float64Array.from({ length: 2 * 3 * 4 }, (_, i) => i * 0.5 - 3),
      [2, 3, 4],
    );
    const ind = w.hostTensor([2, -1, 5, 0, 1, 1], [2, 3], "i32"); // out-of-range indices clamp within each example
    const perExample = <T>(f: (b: number) => T) => [0, 1].map(f);
    for (const axis of [0, 1]) {
      const both = w.evaluate((a: Tensor, i: Tensor) => w.vmap((aa: Tensor, ii: Tensor) => w.gather(aa, ii, axis))(a, i), x, ind);
      const onlyIdx = w.evaluate((a: Tensor, i: Tensor) => w.vmap((ii: Tensor) => w.gather(a, ii, axis))(i), w.hostTensor(x.data.subarray(0, 12), [3, 4]), ind);
      perExample((b) => {
        const ref = w.evaluate(
          (a: Tensor, i: Tensor) => w.gather(w.reshape(w.sliceAxis(a, 0, b, b + 1), [3, 4]), w.reshape(w.sliceAxis(i, 0, b, b + 1), [3]), axis),
          x,
          ind,
        );
        close(both.data.subarray(b * ref.size, (b + 1) * ref.size), ref.data, `gather axis ${axis}, example ${b}`);
        const ref0 = w.evaluate(
          (a: Tensor, i: Tensor) => w.gather(a, w.reshape(w.sliceAxis(i, 0, b, b + 1), [3]), axis),
          w.hostTensor(x.data.subarray(0, 12), [3, 4]),
          ind,
        );
        close(onlyIdx.data.subarray(b * ref0.size, (b + 1) * ref0.size), ref0.data, `gather of shared x, axis ${axis}, example ${b}`);
      });
    }
    const sc = w.evaluate(
      (u: Tensor, i: Tensor) => w.vmap((uu: Tensor, ii: Tensor) => w.scatterAdd(uu, ii, 0, 4))(u, i),
      w.hostTensor([1, 2, 3, 4, 5, 6], [2, 3], "f64"),
      ind,
    );
    assert.deepEqual([...sc.data], [2, 0, 1, 3, 4, 11, 0, 0]); // example 0: indices clamp to [2, 0, 3]
    // A custom VJP keeps its backward under vmap (here a deliberately scaled one, so it is visibly used).
    const twice = w.customVjp(
      "twice",
      (t) => w.mul(t, 2),
      (_x, _y, ct) => [w.mul(ct, 3)],
    );
    const g = w.evaluate((t: Tensor) => w.grad((u: Tensor) => w.sum(w.vmap(twice)(u)))(t), w.hostTensor([1, 2, 3, 4], [2, 2], "f64"));
    assert.deepEqual([...g.data], [3, 3, 3, 3]);
    // Random numbers with a batched key: each example draws with its own key, as without vmap.
    const keys = w.evaluate(() => w.stack([w.randomKey(1), w.randomKey(2)], 0));
    const u = w.evaluate((k: Tensor) => w.vmap((kk: Tensor) => w.uniform(kk, [3]))(k), keys);
    const u1 = w.evaluate(() => w.uniform(w.randomKey(2), [3]));
    close(u.data.subarray(3, 6), u1.data, "uniform with example 1's key");
  });

  test("clear errors: mismatched batch sizes, an axis out of range, nothing mapped", () => {
    const f = (a: Tensor, b: Tensor) => w.add(a, b);
    assert.throws(
      () => w.evaluate((a: Tensor, b: Tensor) => w.vmap(f)(a, b), [1, 2, 3], [1, 2]),
      /vmap: argument 1 has 2 examples along axis 0, another argument 3/,
    );
    assert.throws(() => w.evaluate((a: Tensor) => w.vmap((x: Tensor) => x, { inAxes: 2 })(a), [1, 2]), /vmap: inAxes 2 is out of range/);
    assert.throws(() => w.evaluate((a: Tensor) => w.vmap((x: Tensor) => x, { inAxes: [null] })(a), [1, 2]), /vmap: no argument is mapped/);
  });
});

test("per-example gradients compile for WebGPU as one program and agree with the CPU", async () => {
  const gpu = await w.webgpu();
  try {
    const loss = (p: { w: Tensor }, x: Tensor) => w.sum(w.square(w.tanh(w.matmul(x, p.w))));
    const f = (pw: Tensor, xs: Tensor) => w.vmap((x: Tensor) => w.grad(loss)({ w: pw }, w.reshape(x, [1, 8])).w)(xs);
    const specs = [w.spec([8, 4]), w.spec([16, 8])] as const;
    const pw = Float32Array.from({ length: 32 }, (_, i) => Math.sin(i));
    const xs = Float32Array.from({ length: 128 }, (_, i) => Math.cos(i));
    const onGpu = w.compile(f, specs, { backend: gpu });
    const out = onGpu.run(pw, xs);
    const ref = w.compile(f, specs).run(pw, xs);
    assert.deepEqual(out.shape, [16, 8, 4]);
    close(await out.toArray(), ref.data, "per-example gradients, WebGPU against CPU", 1e-4);
    out.dispose();
    onGpu.dispose();
  } finally {
    gpu.destroy();
  }
});
