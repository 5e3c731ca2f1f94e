// Build a function, take its gradient, evaluate both: the README's first example.
import * as w from "wgrad";
import type { Tensor } from "wgrad";

// A pure function of tensors: a tiny logistic-regression loss. Nothing runs while it builds.
const loss = (p: { w: Tensor; b: Tensor }, x: Tensor, y: Tensor) => w.mean(w.nn.crossEntropy(w.nn.linear(x, p.w, p.b), y));

// grad is a function transformation: its result has the parameters' tree structure.
const step = (p: { w: Tensor; b: Tensor }, x: Tensor, y: Tensor) => {
  const [value, g] = w.valueAndGrad(loss)(p, x, y);
  return { loss: value, w: w.sub(p.w, w.mul(g.w, 0.5)), b: w.sub(p.b, w.mul(g.b, 0.5)) };
};

// Compile once for static shapes, then run on host arrays.
const exe = w.compile(step, [{ w: w.spec([2, 2]), b: w.spec([2]) }, w.spec([4, 2]), w.spec([4], "i32")]);
let params = { w: w.hostTensor(new Float32Array(4), [2, 2]), b: w.hostTensor(new Float32Array(2), [2]) };
const x = new Float32Array([0, 0, 0, 1, 1, 0, 1, 1]);
const y = new Int32Array([0, 0, 0, 1]); // AND
for (let i = 0; i < 200; i++) {
  const r = exe.run(params, x, y);
  params = { w: r.w, b: r.b }; // outputs feed the next run as they are
  if (i % 50 === 0 || i === 199) console.log(`step ${i}: loss ${r.loss.item().toFixed(4)}`);
}

// The gradient graph is an ordinary graph: differentiate it again (a Hessian-vector product).
const hv = w.evaluate((t: Tensor) => w.hvp((u: Tensor) => w.sum(w.mul(w.mul(u, u), u)), t, w.onesLike(t)), [1, 2, 3]);
console.log("H·1 of Σx³ at [1,2,3]:", [...hv.data]); // 6x = [6, 12, 18]
