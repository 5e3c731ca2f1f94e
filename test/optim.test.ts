/** AdamW against PyTorch's formulation, written out on the host, including per-parameter step counts. */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import * as w from "../src/internals.js";

interface Leaf {
  p: number[];
  m: number[];
  v: number[];
  t: number;
}

/** torch.optim.AdamW.step for one parameter (decoupled decay first, then the bias-corrected Adam step). */
function torchAdamW(s: Leaf, g: readonly number[], lr: number, wd: number): Leaf {
  const t = s.t + 1;
  const m = s.m.map((x, i) => 0.9 * x + 0.1 * g[i]);
  const v = s.v.map((x, i) => 0.999 * x + 0.001 * g[i] * g[i]);
  const p = s.p.map((x, i) => x * (1 - lr * wd) - (lr * (m[i] / (1 - 0.9 ** t))) / (Math.sqrt(v[i] / (1 - 0.999 ** t)) + 1e-8));
  return { p, m, v, t };
}

describe("AdamW", () => {
  test("matches PyTorch's AdamW step for step; a parameter that sat out steps restarts its bias correction", () => {
    const n = 3;
    const steps = 6;
    const joinsAt = 3; // leaf b takes no step before this global step, as frozen prototypes
    fc.assert(
      fc.property(fc.array(fc.double({ min: -2, max: 2, noNaN: true }), { minLength: 2 * n * (steps + 1), maxLength: 2 * n * (steps + 1) }), (xs) => {
        const init = { a: xs.slice(0, n), b: xs.slice(n, 2 * n) };
        const grads = (k: number) => ({ a: xs.slice(2 * n * k, 2 * n * k + n), b: xs.slice(2 * n * k + n, 2 * n * (k + 1)) });
        let ref = { a: { p: init.a, m: [0, 0, 0], v: [0, 0, 0], t: 0 }, b: { p: init.b, m: [0, 0, 0], v: [0, 0, 0], t: 0 } };
        const sp = w.spec([n], "f64");
        const one = w.spec([], "f64");
        type P = { a: w.Tensor; b: w.Tensor };
        // One AdamW step with lr, the global step and leaf b's own step as inputs; leaf a decays, b does not.
        const exe = w.compile(
          (p: P, g: P, m: P, v: P, lr: w.Tensor, step: w.Tensor, own: w.Tensor) => {
            const r = w.adamw(p, g, { m, v }, { lr, weightDecay: 0.1, step, leafStep: (i) => (i === 1 ? own : undefined) }, (i) => i === 0);
            return { p: r.params, m: r.state.m, v: r.state.v };
          },
          [{ a: sp, b: sp }, { a: sp, b: sp }, { a: sp, b: sp }, { a: sp, b: sp }, one, one, one],
        );
        const zeros = () => ({ a: new Float64Array(n), b: new Float64Array(n) });
        let cur = { p: { a: Float64Array.from(init.a), b: Float64Array.from(init.b) }, m: zeros(), v: zeros() };
        for (let k = 1; k <= steps; k++) {
          const g = grads(k);
          const lr = 0.01 * k;
          ref = { a: torchAdamW(ref.a, g.a, lr, 0.1), b: k >= joinsAt ? torchAdamW(ref.b, g.b, lr, 0) : ref.b };
          const r = exe.run(cur.p, { a: Float64Array.from(g.a), b: Float64Array.from(g.b) }, cur.m, cur.v, lr, k, Math.max(1, k - joinsAt + 1));
          const d = (t: w.HostTensor) => Float64Array.from(t.data as ArrayLike<number>);
          // Leaf b keeps its values and moments until it joins (the caller discards its update, as ibotStep does for frozen prototypes).
          const keepB = k < joinsAt;
          cur = {
            p: { a: d(r.p.a), b: keepB ? cur.p.b : d(r.p.b) },
            m: { a: d(r.m.a), b: keepB ? cur.m.b : d(r.m.b) },
            v: { a: d(r.v.a), b: keepB ? cur.v.b : d(r.v.b) },
          };
        }
        const params = cur.p;
        for (const [name, got, want] of [
          ["a", params.a, ref.a.p],
          ["b", params.b, ref.b.p],
        ] as const) {
          [...got].forEach((x, i) => assert.ok(Math.abs(x - want[i]) <= 1e-12 * (1 + Math.abs(want[i])), `leaf ${name}[${i}]: ${x} vs PyTorch ${want[i]}`));
        }
      }),
      { numRuns: 30, seed: 20261203 },
    );
  });
});
