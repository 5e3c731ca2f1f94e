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

// ---------------------------------------------------------------- the optimizer kit (gradient transformations, schedules)

type Host = w.HostTensor;
const f64 = (xs: readonly number[]) => w.hostTensor(Float64Array.from(xs), [xs.length]);
const values = (t: Host) => Array.from(t.data);
/** The raw bytes of a host tensor, for bitwise comparisons. */
const bytes = (t: Host) => new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);

/**
 * Runs `steps` updates of `tx` on params p (a tree of f64 vectors), with gradients from `gradAt(k, p)`
 * (k = 1, 2, ...), compiled as one step: gradient in, updated params and state out.
 */
function runTransformation<K extends w.StateKind>(
  tx: w.GradientTransformation<K>,
  p0: Record<string, number[]>,
  steps: number,
  gradAt: (k: number, p: Record<string, number[]>) => Record<string, number[]>,
) {
  const host = (t: Record<string, number[]>) => Object.fromEntries(Object.entries(t).map(([k, v]) => [k, f64(v)]));
  const back = (t: Record<string, Host>) => Object.fromEntries(Object.entries(t).map(([k, v]) => [k, values(v)]));
  const specs = w.specsOf(host(p0));
  // The state's type is the transformation's business: opaque (never) here, a tree of tensors at run time.
  const state0: never = w.compile((p: Record<string, w.Tensor>) => tx.init(p) as never, [specs]).run(host(p0));
  const exe = w.compile(
    (p: Record<string, w.Tensor>, g: Record<string, w.Tensor>, s: never) => {
      const r = tx.update(g, s as w.StateFor<K, typeof p>, p);
      return { p: w.applyUpdates(p, r.updates), s: r.state as never };
    },
    [specs, specs, w.specsOf(state0)],
  );
  let p = p0;
  let s = state0;
  const trajectory: Record<string, number[]>[] = [];
  for (let k = 1; k <= steps; k++) {
    const r = exe.run(host(p), host(gradAt(k, p)), s);
    p = back(r.p as Record<string, Host>);
    s = r.s;
    trajectory.push(p);
  }
  return { trajectory, state: s };
}

/** torch.optim.SGD's _single_tensor_sgd for one parameter: coupled weight decay, the momentum buffer (a copy of g on the first step), Nesterov. */
function torchSgd(p: number[], buf: number[] | undefined, g0: readonly number[], lr: number, o: { momentum: number; nesterov: boolean; wd: number }) {
  let g = g0.map((x, i) => (o.wd !== 0 ? x + p[i] * o.wd : x));
  let b = buf;
  if (o.momentum !== 0) {
    b = buf === undefined ? [...g] : buf.map((x, i) => x * o.momentum + g[i]);
    const bb = b;
    g = o.nesterov ? g.map((x, i) => x + bb[i] * o.momentum) : bb;
  }
  return { p: p.map((x, i) => x + g[i] * -lr), buf: b };
}

describe("sgd", () => {
  // ½‖p‖² has gradient p: the hand-computed sequences below start at p = 1 with lr 0.1, momentum 0.9.
  const quadratic = (_k: number, p: Record<string, number[]>) => p;
  const close = (got: number[], want: number[]) => got.forEach((x, i) => assert.ok(Math.abs(x - want[i]) <= 1e-12, `${got} vs ${want}`));

  test("heavy ball by hand: buf = 0.9·buf + g, p −= 0.1·buf", () => {
    // buf 1 → p 0.9; buf 0.9 + 0.9 = 1.8 → p 0.72; buf 1.62 + 0.72 = 2.34 → p 0.486.
    const { trajectory } = runTransformation(w.sgd(0.1, { momentum: 0.9 }), { x: [1, -2] }, 3, quadratic);
    close(
      trajectory.map((p) => p.x[0]),
      [0.9, 0.72, 0.486],
    );
    close(
      trajectory.map((p) => p.x[1]),
      [-1.8, -1.44, -0.972],
    );
  });

  test("Nesterov by hand: p −= 0.1·(g + 0.9·buf)", () => {
    // buf 1, step 1.9 → p 0.81; buf 0.9 + 0.81 = 1.71, step 0.81 + 1.539 = 2.349 → p 0.5751.
    const { trajectory } = runTransformation(w.sgd(0.1, { momentum: 0.9, nesterov: true }), { x: [1] }, 2, quadratic);
    close(
      trajectory.map((p) => p.x[0]),
      [0.81, 0.5751],
    );
  });

  test("matches torch.optim.SGD exactly (momentum, Nesterov, coupled weight decay, a scheduled lr)", () => {
    const n = 3;
    const steps = 5;
    fc.assert(
      fc.property(
        fc.array(fc.double({ min: -2, max: 2, noNaN: true }), { minLength: n * (steps + 1), maxLength: n * (steps + 1) }),
        fc.constantFrom(0, 0.5, 0.9),
        fc.boolean(),
        fc.constantFrom(0, 0.01),
        (xs, m, nesterovWanted, wd) => {
          const nesterov = nesterovWanted && m > 0;
          const lr = w.linearSchedule(0.2, 0.05, 4); // exact in f64 on both sides: no cosine
          const tx = w.chain(w.addDecayedWeights(wd), w.sgd(lr, { momentum: m, nesterov }));
          const grads = (k: number) => xs.slice(n * k, n * (k + 1));
          const { trajectory } = runTransformation(tx, { x: xs.slice(0, n) }, steps, (k) => ({ x: grads(k) }));
          let ref = { p: xs.slice(0, n), buf: undefined as number[] | undefined };
          for (let k = 1; k <= steps; k++) {
            ref = torchSgd(ref.p, ref.buf, grads(k), lr(k - 1), { momentum: m, nesterov, wd });
            trajectory[k - 1].x.forEach((x, i) => assert.ok(x === ref.p[i], `step ${k}, x[${i}]: ${x} vs PyTorch ${ref.p[i]}`));
          }
        },
      ),
      { numRuns: 25, seed: 20261204 },
    );
  });

  test("refuses Nesterov without momentum and a negative momentum", () => {
    assert.throws(() => w.sgd(0.1, { nesterov: true }), /Nesterov momentum needs a momentum above 0/);
    assert.throws(() => w.sgd(0.1, { momentum: -1 }), /momentum must be a non-negative number/);
  });
});

describe("clipByGlobalNorm", () => {
  const clipRun = (tree: { a: number[]; b: number[] }, maxNorm: number) => {
    const r = w.evaluate(
      (t: { a: w.Tensor; b: w.Tensor }) => {
        const tx = w.clipByGlobalNorm(maxNorm);
        return { u: tx.update(t, tx.init(t)).updates, before: w.globalNorm(t) };
      },
      { a: f64(tree.a), b: f64(tree.b) },
    );
    return { a: values(r.u.a), b: values(r.u.b), before: r.before.item() };
  };
  const norm = (...xs: number[][]) => Math.sqrt(xs.flat().reduce((s, x) => s + x * x, 0));

  test("the norm after is at most maxNorm, the direction is kept, and below maxNorm it is a no-op", () => {
    const vec = (n: number) => fc.array(fc.double({ min: -10, max: 10, noNaN: true }), { minLength: n, maxLength: n });
    fc.assert(
      fc.property(vec(3), vec(2), fc.double({ min: 0.01, max: 20, noNaN: true }), (a, b, maxNorm) => {
        const r = clipRun({ a, b }, maxNorm);
        const before = norm(a, b);
        assert.ok(Math.abs(r.before - before) <= 1e-12 * (1 + before), `globalNorm ${r.before} vs ${before}`);
        const after = norm(r.a, r.b);
        assert.ok(after <= maxNorm * (1 + 1e-12), `norm after ${after} > ${maxNorm}`);
        if (before <= maxNorm) {
          assert.deepEqual([...r.a, ...r.b], [...a, ...b], "below maxNorm the updates are untouched");
        } else {
          // One factor for every leaf: maxNorm/‖g‖.
          const factor = maxNorm / before;
          [...a, ...b].forEach((x, i) => assert.ok(Math.abs([...r.a, ...r.b][i] - x * factor) <= 1e-12 * (1 + Math.abs(x)), `element ${i}`));
          assert.ok(Math.abs(after - maxNorm) <= 1e-9 * maxNorm);
        }
      }),
      { numRuns: 50, seed: 20261205 },
    );
  });

  test("a zero gradient stays zero (no 0/0)", () => {
    const r = clipRun({ a: [0, 0, 0], b: [0, 0] }, 1);
    assert.deepEqual([...r.a, ...r.b], [0, 0, 0, 0, 0]);
  });

  test("refuses a maxNorm that is not positive", () => {
    assert.throws(() => w.clipByGlobalNorm(0), /maxNorm must be a positive number, got the number 0/);
  });
});

describe("weight-decay masks", () => {
  const params = { w: f64([1, 2, 3, 4]), b: f64([5, 6]), block: { scale: f64([7]), kernel: w.hostTensor(Float64Array.from([8, 9, 10, 11]), [2, 2]) } };
  type P = { w: w.Tensor; b: w.Tensor; block: { scale: w.Tensor; kernel: w.Tensor } };
  /** addDecayedWeights(0.5, mask) on zero updates: 0.5·p where the mask holds, 0 elsewhere. */
  const decayed = (mask?: w.Mask<P>) =>
    w.evaluate((p: P) => {
      const tx = w.addDecayedWeights(0.5, mask);
      const zero = w.mapTrees((t: w.Tensor) => w.zerosLike(t), p) as P;
      return tx.update(zero, tx.init(p), p).updates;
    }, params);
  const flat = (t: { w: Host; b: Host; block: { scale: Host; kernel: Host } }) => [values(t.w), values(t.b), values(t.block.scale), values(t.block.kernel)];

  test("a mask tree (with a boolean standing for a subtree) leaves the unmasked leaves without decay", () => {
    assert.deepEqual(flat(decayed({ w: true, b: false, block: true })), [[0.5, 1, 1.5, 2], [0, 0], [3.5], [4, 4.5, 5, 5.5]]);
    assert.deepEqual(flat(decayed({ w: false, b: false, block: { scale: false, kernel: true } })), [[0, 0, 0, 0], [0, 0], [0], [4, 4.5, 5, 5.5]]);
    assert.deepEqual(flat(decayed()), [[0.5, 1, 1.5, 2], [2.5, 3], [3.5], [4, 4.5, 5, 5.5]], "no mask: every leaf decays");
  });

  test("a mask function of the parameters: rankMask(2) decays matrices only", () => {
    assert.deepEqual(flat(decayed(w.rankMask(2))), [[0, 0, 0, 0], [0, 0], [0], [4, 4.5, 5, 5.5]]);
    assert.deepEqual(flat(decayed((p: P) => ({ w: true, b: p.b.rank > 1, block: false }))), [[0.5, 1, 1.5, 2], [0, 0], [0], [0, 0, 0, 0]]);
  });

  test("a mask of another structure is an ArgumentError naming where it departs", () => {
    assert.throws(
      () => decayed({ w: true, b: false } as never),
      (e: unknown) => e instanceof w.ArgumentError && /at the root.*keys \{w, b, block\}/.test(e.message),
    );
    assert.throws(
      () => decayed({ w: true, b: false, block: { scale: true } } as never),
      /at \.block, where the parameters have an object with keys \{scale, kernel\}/,
    );
    assert.throws(() => decayed({ w: [true], b: false, block: true } as never), /the mask has a list of 1 at \.w, where the parameters have a tensor/);
  });

  test("addDecayedWeights without the parameters says so", () => {
    assert.throws(
      () =>
        w.evaluate(
          (g: w.Tensor) => {
            const tx = w.addDecayedWeights(0.1);
            return tx.update(g, tx.init(g)).updates;
          },
          f64([1]),
        ),
      /addDecayedWeights: needs the parameters/,
    );
  });
});

describe("chain", () => {
  test("applies its transformations in order, and its state is the list of theirs", () => {
    const g = { a: f64([30, 40]) }; // ‖g‖ = 50
    const r = w.evaluate((t: { a: w.Tensor }) => {
      const clipThenScale = w.chain(w.clipByGlobalNorm(1), w.scale(10));
      const scaleThenClip = w.chain(w.scale(10), w.clipByGlobalNorm(1));
      const s = clipThenScale.init(t);
      return { first: clipThenScale.update(t, s).updates, second: scaleThenClip.update(t, scaleThenClip.init(t)).updates, state: s };
    }, g);
    assert.deepEqual(values(r.first.a), [6, 8], "clipped to norm 1, then scaled by 10");
    assert.deepEqual(values(r.second.a), [0.6, 0.8], "scaled, then clipped to norm 1");
    assert.deepEqual(r.state, [{}, {}]);
  });

  test("counts advance once per update; `step` overrides them for schedules", () => {
    const lr = w.linearSchedule(1, 0, 10); // 1 − step/10
    const r = w.evaluate(
      (g: w.Tensor) => {
        const tx = w.chain(w.identity(), w.scaleByLearningRate(lr));
        const s0 = tx.init(g);
        const one = tx.update(g, s0);
        const two = tx.update(g, one.state);
        const override = tx.update(g, s0, undefined, w.scalar(5, "i32"));
        return { one: one.updates, two: two.updates, count: two.state[1].count, override: override.updates };
      },
      f64([1]),
    );
    assert.deepEqual([values(r.one), values(r.two), values(r.override)], [[-1], [-0.9], [-0.5]]);
    assert.equal(r.count.item(), 2);
  });

  test("refuses an empty chain and a state of another length", () => {
    assert.throws(() => w.chain(), /chain: give at least one transformation/);
    assert.throws(() => w.evaluate((g: w.Tensor) => w.chain(w.identity()).update(g, [] as never).updates, f64([1])), /expected a list of 1 states/);
  });
});

describe("chain-based AdamW", () => {
  test("adamwTransform (a chain) gives adamw's bits, with a decay mask tree for adamw's leaf predicate", () => {
    const sp = w.spec([3, 2]);
    const sb = w.spec([2]);
    type P = { a: w.Tensor; b: w.Tensor };
    const specs = { a: sp, b: sb };
    const wd = 0.05;
    const mask = { a: true, b: false };
    const legacy = w.compile(
      (p: P, g: P, m: P, v: P, lr: w.Tensor, step: w.Tensor) => {
        const r = w.adamw(p, g, { m, v }, { lr, weightDecay: wd, step }, (i) => i === 0);
        return { p: r.params, m: r.state.m, v: r.state.v };
      },
      [specs, specs, specs, specs, w.spec([]), w.spec([])],
    );
    // The state's structure does not depend on the learning rate, so any lr builds the initial state.
    const init = w.compile((p: P) => w.adamwTransform(0, { weightDecay: wd, mask }).init(p), [specs]);
    type S = w.StateOf<ReturnType<typeof w.adamwTransform>, P>;
    const chained = w.compile(
      (p: P, g: P, s: S, lr: w.Tensor) => {
        const r = w.adamwTransform(lr, { weightDecay: wd, mask }).update(g, s, p); // lr is a traced input: build the chain inside
        return { p: w.applyUpdates(p, r.updates), s: r.state };
      },
      [specs, specs, w.specsOf(init.run({ a: new Float32Array(6), b: new Float32Array(2) })), w.spec([])],
    );
    const f32 = (xs: number[]) => Float32Array.from(xs);
    fc.assert(
      fc.property(fc.array(fc.double({ min: -2, max: 2, noNaN: true }), { minLength: 8 * 6, maxLength: 8 * 6 }), (xs) => {
        const tree = (k: number) => ({ a: w.hostTensor(f32(xs.slice(8 * k, 8 * k + 6)), [3, 2]), b: w.hostTensor(f32(xs.slice(8 * k + 6, 8 * k + 8)), [2]) });
        const p0 = tree(0);
        let old = { p: p0, m: w.evaluate((p: P) => w.adamInit(p).m, p0), v: w.evaluate((p: P) => w.adamInit(p).v, p0) };
        let cur = { p: p0, s: init.run(p0) };
        for (let k = 1; k <= 5; k++) {
          const lr = 0.01 * k;
          old = legacy.run(old.p, tree(k), old.m, old.v, lr, k);
          cur = chained.run(cur.p, tree(k), cur.s, lr);
          for (const leaf of ["a", "b"] as const) {
            assert.deepEqual(bytes(cur.p[leaf]), bytes(old.p[leaf]), `step ${k}, params.${leaf}`);
            assert.deepEqual(bytes(cur.s[0].m[leaf]), bytes(old.m[leaf]), `step ${k}, m.${leaf}`);
            assert.deepEqual(bytes(cur.s[0].v[leaf]), bytes(old.v[leaf]), `step ${k}, v.${leaf}`);
          }
          assert.equal(cur.s[0].count.item(), k);
        }
      }),
      { numRuns: 10, seed: 20261206 },
    );
  });
});

describe("schedules in steps", () => {
  /** warmupCosine's closed form: linear from 0 to peak over w steps, then a half cosine to `end` at T. */
  const closedForm = (peak: number, wu: number, total: number, end: number, s: number) =>
    s < wu ? (peak * s) / wu : end + 0.5 * (peak - end) * (1 + Math.cos((Math.PI * Math.min(s - wu, total - wu)) / (total - wu)));
  /** A schedule evaluated in the graph, at every step of `steps` at once, in `dtype`. */
  const inGraph = (f: w.Schedule, steps: number[], dtype: "f32" | "f64") =>
    values(w.evaluate((t: w.Tensor) => f(t), w.hostTensor(dtype === "f32" ? Float32Array.from(steps) : Float64Array.from(steps), [steps.length])));

  test("warmupCosine: the host and the graph agree with the closed form, fractional warm-ups included", () => {
    fc.assert(
      fc.property(
        fc.double({ min: 0.01, max: 10, noNaN: true }),
        fc.oneof(fc.constant(0), fc.double({ min: 0.1, max: 40, noNaN: true })),
        fc.double({ min: 1, max: 200, noNaN: true }),
        fc.double({ min: 0, max: 1, noNaN: true }),
        (peak, wu, extra, endFraction) => {
          const total = wu + extra;
          const end = peak * endFraction;
          const f = w.warmupCosine(peak, wu, total, end);
          const steps = Array.from({ length: 24 }, (_, i) => Math.round((i / 20) * total * 4) / 4); // quarter steps, past the end too
          const host = steps.map((s) => f(s));
          const g64 = inGraph(f, steps, "f64");
          const g32 = inGraph(f, steps, "f32");
          steps.forEach((s, i) => {
            const want = closedForm(peak, wu, total, end, s);
            assert.ok(Math.abs(host[i] - want) <= 1e-12 * peak, `host at ${s}: ${host[i]} vs ${want}`);
            assert.ok(Math.abs(g64[i] - host[i]) <= 1e-14 * peak, `f64 graph at ${s}: ${g64[i]} vs host ${host[i]}`);
            assert.ok(Math.abs(g32[i] - host[i]) <= 1e-6 * peak, `f32 graph at ${s}: ${g32[i]} vs host ${host[i]}`);
          });
        },
      ),
      { numRuns: 40, seed: 20261207 },
    );
  });

  test("warmupCosine's shape: 0 at step 0, peak at the end of the warm-up, end at totalSteps and after, exactly, in f32 too", () => {
    const f = w.warmupCosine(0.5, 0.4, 10, 0.1); // a warm-up of 0.2 epochs × 2 iterations: 0.4 steps is fine here
    assert.deepEqual([f(0), f(0.4), f(10), f(12)], [0, 0.5, 0.1, 0.1]);
    assert.deepEqual(inGraph(f, [0, 0.4, 10, 12], "f32"), [0, 0.5, 0.1, 0.1].map(Math.fround));
    assert.throws(() => w.warmupCosine(1, 10, 10), /totalSteps must be a number of steps above warmupSteps \(10\)/);
  });

  test("constantSchedule, linearSchedule and cosineDecay match their closed forms on the host and in the graph", () => {
    const steps = [0, 1, 2.5, 5, 7, 10, 13];
    const cases: [string, w.Schedule, (s: number) => number][] = [
      ["constant", w.constantSchedule(0.3), () => 0.3],
      ["linear", w.linearSchedule(1, 0.2, 10), (s) => 1 + (0.2 - 1) * Math.min(s / 10, 1)],
      ["cosine", w.cosineDecay(2, 10, 0.1), (s) => 2 * (0.9 * 0.5 * (1 + Math.cos((Math.PI * Math.min(s, 10)) / 10)) + 0.1)],
    ];
    for (const [name, f, want] of cases) {
      const g64 = inGraph(f, steps, "f64");
      const g32 = inGraph(f, steps, "f32");
      steps.forEach((s, i) => {
        assert.ok(Math.abs(f(s) - want(s)) <= 1e-14, `${name} host at ${s}: ${f(s)} vs ${want(s)}`);
        assert.ok(Math.abs(g64[i] - want(s)) <= 1e-14, `${name} f64 graph at ${s}: ${g64[i]} vs ${want(s)}`);
        assert.ok(Math.abs(g32[i] - want(s)) <= 1e-6, `${name} f32 graph at ${s}: ${g32[i]} vs ${want(s)}`);
      });
    }
    // An integer step tensor (an optimizer's count) is taken as f32.
    assert.deepEqual(values(w.evaluate((t: w.Tensor) => w.linearSchedule(0, 1, 4)(t), w.hostTensor(Int32Array.from([0, 1, 2, 8]), [4]))), [0, 0.25, 0.5, 1]);
  });

  test("a schedule as sgd's learning rate follows the update count", () => {
    const lr = w.warmupCosine(1, 2, 6);
    const { trajectory } = runTransformation(w.sgd(lr), { x: [0] }, 7, () => ({ x: [-1] })); // each step adds lr(count)
    const increments = trajectory.map((p, i) => p.x[0] - (i ? trajectory[i - 1].x[0] : 0));
    increments.forEach((d, k) => assert.ok(Math.abs(d - lr(k)) <= 1e-14, `step ${k}: ${d} vs ${lr(k)}`));
  });
});
