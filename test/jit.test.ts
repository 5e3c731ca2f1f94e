/**
 * jit: compiled on first use per distinct argument specs, cached after; and the typing of
 * compiled functions whose specs a helper builds (these tests are also type tests: `npm run
 * typecheck` checks them, and the `@ts-expect-error` lines must stay errors).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import * as w from "../src/index.js";
import type { Tensor } from "../src/index.js";

interface Params {
  readonly w: Tensor;
  readonly b: Tensor;
}

const loss = (p: Params, x: Tensor) => w.sum(w.square(w.add(w.matmul(x, p.w), p.b)));

test("jit compiles once per argument specs and reuses the executable; its results are evaluate's", () => {
  const step = w.jit((p: Params, x: Tensor) => ({ loss: loss(p, x), grad: w.grad(loss)(p, x) }));
  const p = { w: w.hostTensor([1, 2], [2, 1]), b: w.hostTensor([0.5], [1]) };
  const a = step(p, w.hostTensor([1, 1], [1, 2]));
  const b = step(p, w.hostTensor([2, 0], [1, 2]));
  assert.equal(step.cacheSize, 1, "same shapes and dtypes: one executable");
  assert.equal(a.loss.item(), 12.25);
  assert.deepEqual([...a.grad.w.data], [7, 7]);
  assert.equal(b.loss.item(), 6.25);
  step(p, w.hostTensor([1, 1, 2, 0], [2, 2]));
  assert.equal(step.cacheSize, 2, "a new batch size compiles again");
  const p64 = { w: w.hostTensor(new Float64Array([1, 2]), [2, 1]), b: w.hostTensor(new Float64Array([0.5]), [1]) };
  assert.equal(step(p64, w.hostTensor(new Float64Array([1, 1]), [1, 2])).loss.dtype, "f64");
  assert.equal(step.cacheSize, 3, "so does a new dtype");
  const ref = w.evaluate((pp: Params, x: Tensor) => loss(pp, x), p, w.hostTensor([2, 0], [1, 2]));
  assert.equal(b.loss.item(), ref.item());
  step.clear();
  assert.equal(step.cacheSize, 0);
});

test("jit on WebGPU: GpuArrays in and out, donation per call", async () => {
  const gpu = await w.webgpu();
  try {
    const update = w.jit((x: Tensor, g: Tensor) => w.sub(x, w.mul(g, 0.5)), { backend: gpu, donate: [0] });
    let x = update([1, 2, 3], [2, 2, 2]);
    x = update(x, [2, 2, 2]);
    assert.deepEqual([...(await x.toArray())], [-1, 0, 1]);
    assert.equal(update.cacheSize, 1, "a GpuArray argument has the specs of the host values before it");
    assert.ok(update.lower(x, [0, 0, 0]).wgsl().includes("fn main"), "lower gives the executable, with its WGSL");
    x.dispose();
    update.clear();
  } finally {
    gpu.destroy();
  }
});

test("types: specs built by a helper keep the parameters' type through compile and run, on either backend", async () => {
  // A helper that builds the specs of a parameter tree: the case that used to type as Tree<TensorSpec>.
  const specsFor = <T>(tree: T) => w.specsOf(tree);
  const p = { w: w.hostTensor([1, 2], [2, 1]), b: w.hostTensor([0.5], [1]) };
  const exe = w.compile(loss, [specsFor(p), w.spec([1, 2])]);
  const l: w.HostTensor = exe.run(p, [1, 1]);
  assert.equal(l.item(), 12.25);
  assert.equal(exe.stats().kernels > 0, true, "stats exists on every backend's Executable");
  // @ts-expect-error: a run takes the compiled structure (here a number where a tree goes)
  assert.throws(() => exe.run(3, [1, 1]));
  const gpu = await w.webgpu();
  try {
    const backend: w.GpuContext | "cpu" = Math.random() < 2 ? gpu : "cpu";
    const any = w.compile(loss, [specsFor(p), w.spec([1, 2])], { backend });
    const out: w.DeviceArray = any.run(p, [1, 1]);
    assert.equal((await out.toArray())[0], 12.25);
    out.dispose();
    any.dispose();
  } finally {
    gpu.destroy();
  }
});

test("tree.map maps several trees of one structure leaf by leaf, and names a tree of another structure", () => {
  const r = w.evaluate(
    (a: Tensor, b: Tensor, c: Tensor) =>
      w.tree.map((x: Tensor, y: Tensor) => w.add(x, w.mul(y, 10)), { p: a, q: [b, c] }, { p: c, q: [a, b] }) as { p: Tensor; q: Tensor[] },
    [1],
    [2],
    [3],
  );
  assert.deepEqual([r.p.item(), r.q[0].item(), r.q[1].item()], [31, 12, 23]);
  assert.throws(() => w.tree.map((x: number, y: number) => x + y, { p: 1, q: [2] }, { p: 1, q: 2 }), /tree\.map: tree 1 does not have tree 0's structure/);
  assert.deepEqual(
    w.tree.map((x: number, y: number) => x * y, [1, { a: 2 }], [3, { a: 4 }]),
    [3, { a: 8 }],
  );
});
