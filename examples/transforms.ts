// Per-example gradients with vmap, forward mode with jvp, a cached jit, and a save/load round trip:
// the README's transformations, run as written (the tests run this file).
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as w from "wgrad";
import type { Tensor } from "wgrad";

type Params = { w: Tensor; b: Tensor };
const loss = (p: Params, x: Tensor, y: Tensor) => w.sum(w.square(w.sub(w.tanh(w.add(w.matmul(x, p.w), p.b)), y)));

const params = w.evaluate(() => ({ w: w.random.normal(w.random.key(0), [3, 2]), b: w.zeros([2]) }));
const xs = w.evaluate(() => w.random.normal(w.random.key(1), [8, 1, 3]));
const ys = w.evaluate(() => w.random.normal(w.random.key(2), [8, 1, 2]));

// vmap over the examples (x and y batched, the parameters shared): one gradient per example, as one graph.
const perExample = w.jit((p: Params, x: Tensor, y: Tensor) => w.vmap((xi: Tensor, yi: Tensor) => w.grad(loss)(p, xi, yi))(x, y));
const g = perExample(params, xs, ys);
console.log(`per-example gradients: w ${JSON.stringify(g.w.shape)}, b ${JSON.stringify(g.b.shape)}`);

// Their mean is the batch gradient (the loss is a sum over examples).
const batch = w.evaluate((p: Params, x: Tensor, y: Tensor) => w.grad(loss)(p, w.reshape(x, [8, 3]), w.reshape(y, [8, 2])), params, xs, ys);
const summed = w.evaluate((t: Tensor) => w.sum(t, 0), g.w);
const gap = Math.max(...summed.data.map((v, i) => Math.abs(v - batch.w.data[i])));
console.log(`sum of per-example gradients vs batch gradient: max gap ${gap.toExponential(1)}`);

// jit compiled once for these shapes; another call with the same shapes reuses it.
perExample(params, xs, ys);
console.log(`jit cache: ${perExample.cacheSize} executable after two calls`);

// Forward mode: the directional derivative of the loss along the weights' tangent.
const [value, dir] = w.evaluate(
  (p: Params, x: Tensor, y: Tensor) =>
    w.jvp((q: Params) => loss(q, w.reshape(x, [8, 3]), w.reshape(y, [8, 2])), [p], [{ w: w.onesLike(p.w), b: w.zerosLike(p.b) }]),
  params,
  xs,
  ys,
);
const fromGrad = Array.from(batch.w.data).reduce((a, v) => a + v, 0);
console.log(`loss ${value.item().toFixed(4)}; jvp along ones ${dir.item().toFixed(6)} = sum of the gradient ${fromGrad.toFixed(6)}`);

// Save and load the parameters (safetensors, names from the tree's paths).
const dir0 = mkdtempSync(join(tmpdir(), "wgrad-example-"));
const file = join(dir0, "params.safetensors");
await w.io.save(file, params);
const back = await w.io.load(file, params);
console.log(`saved and loaded ${w.treeSize(back)} values; equal: ${back.w.data.every((v, i) => v === params.w.data[i])}`);
rmSync(dir0, { recursive: true });
