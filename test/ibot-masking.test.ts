/**
 * iBOT's host-side masking and schedules (ibot-spec.md §2–§5): the Python-style random stream,
 * the per-crop ratio, block and random masks, batches of masks, and the cosine / temperature
 * schedules against values computed with NumPy from the official formulas.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import {
  blockMask,
  blockMaskWithBlocks,
  createPyRandom,
  maskBatch,
  minBlockArea,
  predRatio,
  pyRandomFrom,
  pythonRound,
  randomMask,
  type MaskBlock,
} from "../src/models/ibot/masking.js";
import {
  cosineScheduler,
  learningRateSchedule,
  linspace,
  teacherMomentumSchedule,
  teacherTempPerIteration,
  teacherTempSchedule,
  weightDecaySchedule,
} from "../src/models/ibot/schedules.js";

// ---------------------------------------------------------------- helpers

const arbSeed = fc.integer({ min: 0, max: 2 ** 32 - 1 });
const arbSide = fc.integer({ min: 1, max: 16 });
const arbRatio = fc.double({ min: 0, max: 1, noNaN: true });
/** Values in [lo, hi] on a grid of 1/1000, so no subnormal or wildly mismatched magnitudes. */
const arbValue = (lo: number, hi: number) => fc.integer({ min: Math.round(lo * 1000), max: Math.round(hi * 1000) }).map((k) => k / 1000);
const arbAspects = fc
  .tuple(fc.double({ min: 0.1, max: 1, noNaN: true }), fc.double({ min: 1, max: 10, noNaN: true }))
  .map(([minAspect, maxAspect]) => ({ minAspect, maxAspect }));

const countOnes = (mask: Uint8Array): number => mask.reduce((n, cell) => n + cell, 0);

/** The recipe of the README and §10: half the crops unmasked, the other half r ~ U(0.1, 0.5). */
const RECIPE = { predRatio: [0, 0.3], predRatioVar: [0, 0.2] } as const;

/** Asserts |actual − expected| ≤ tol·max(1, |expected|) for every element. */
function assertClose(actual: ArrayLike<number>, expected: readonly number[], tol = 1e-15): void {
  assert.equal(actual.length, expected.length, "length");
  for (let i = 0; i < expected.length; i++) {
    const err = Math.abs(actual[i] - expected[i]);
    assert.ok(err <= tol * Math.max(1, Math.abs(expected[i])), `index ${i}: ${actual[i]} vs ${expected[i]}`);
  }
}

/** True when each value is ≥ (or ≤, for "down") the one before it. */
const isMonotone = (xs: ArrayLike<number>, direction: "up" | "down"): boolean =>
  Array.from(xs).every((x, i, all) => i === 0 || (direction === "up" ? x >= all[i - 1] : x <= all[i - 1]));

/** The mask the blocks paint. */
function paint(blocks: readonly MaskBlock[], height: number, width: number): Uint8Array {
  const mask = new Uint8Array(height * width);
  for (const b of blocks) for (let i = b.top; i < b.top + b.height; i++) mask.fill(1, i * width + b.left, i * width + b.left + b.width);
  return mask;
}

// ---------------------------------------------------------------- random stream

test("PyRandom: the same seed gives the same stream, different seeds different ones", () => {
  fc.assert(
    fc.property(arbSeed, arbSeed, (s, t) => {
      const a = createPyRandom(s);
      const b = createPyRandom(s);
      const xs = Array.from({ length: 16 }, () => a.nextU32());
      assert.deepEqual(
        xs,
        Array.from({ length: 16 }, () => b.nextU32()),
      );
      if (s !== t) {
        const c = createPyRandom(t);
        assert.notDeepEqual(
          xs,
          Array.from({ length: 16 }, () => c.nextU32()),
        );
      }
    }),
  );
  assert.throws(() => createPyRandom(0.5), RangeError);
  assert.notDeepEqual(
    [createPyRandom(1).nextU32(), createPyRandom(1).nextU32()],
    [createPyRandom(1 + 2 ** 32).nextU32(), createPyRandom(1 + 2 ** 32).nextU32()],
    "the seed's high bits matter",
  );
});

test("PyRandom: random, uniform (a may exceed b), randint (inclusive), choice and shuffle", () => {
  fc.assert(
    fc.property(arbSeed, arbValue(-10, 10), arbValue(-10, 10), (seed, a, b) => {
      const r = createPyRandom(seed);
      for (let k = 0; k < 50; k++) {
        const u = r.random();
        assert.ok(u >= 0 && u < 1);
        const x = r.uniform(a, b);
        // Like Python's, the far end may be reached through rounding, so allow an ulp or so.
        const slack = 1e-15 * Math.max(Math.abs(a), Math.abs(b));
        assert.ok(x >= Math.min(a, b) - slack && x <= Math.max(a, b) + slack, `uniform(${a}, ${b}) gave ${x}`);
      }
    }),
  );
  const r = createPyRandom(3);
  const seen = new Set<number>();
  for (let k = 0; k < 2000; k++) {
    const n = r.randint(-2, 3);
    assert.ok(Number.isInteger(n) && n >= -2 && n <= 3);
    seen.add(n);
  }
  assert.deepEqual(
    [...seen].sort((x, y) => x - y),
    [-2, -1, 0, 1, 2, 3],
    "both ends are reachable",
  );
  assert.equal(r.randint(5, 5), 5);
  assert.throws(() => r.randint(3, 2), RangeError);
  assert.throws(() => r.choice([]), RangeError);
  const picks = new Map<string, number>();
  for (let k = 0; k < 3000; k++) {
    const pick = r.choice(["a", "b", "c"]);
    picks.set(pick, (picks.get(pick) ?? 0) + 1);
  }
  assert.deepEqual([...picks.keys()].sort(), ["a", "b", "c"]);
  assert.ok(
    [...picks.values()].every((n) => Math.abs(n - 1000) < 100),
    "choice is uniform",
  );
  const items = Array.from({ length: 20 }, (_, i) => i);
  r.shuffle(items);
  assert.deepEqual(
    [...items].sort((x, y) => x - y),
    Array.from({ length: 20 }, (_, i) => i),
    "a shuffle is a permutation",
  );
  const mean = Array.from({ length: 20000 }, () => r.random()).reduce((s, u) => s + u, 0) / 20000;
  assert.ok(Math.abs(mean - 0.5) < 0.01, `mean of random() ${mean}`);
});

test("pyRandomFrom: Python-style draws over any 32-bit source", () => {
  let k = 0;
  const counter = pyRandomFrom({ nextU32: () => (k++ * 0x9e3779b9) >>> 0 });
  assert.equal(counter.randint(0, 0), 0);
  assert.ok(counter.random() < 1);
  const zero = pyRandomFrom({ nextU32: () => 0 });
  assert.equal(zero.random(), 0);
  assert.equal(zero.uniform(2, 1), 2, "uniform(a, b) is a + (b − a)·u, so u = 0 gives a even when a > b");
});

test("pythonRound rounds half to even, like Python 3's round", () => {
  assert.deepEqual([0.5, 1.5, 2.5, 3.5, 2.4, 2.6, 0, 7].map(pythonRound), [0, 2, 2, 4, 2, 3, 0, 7]);
  assert.equal(pythonRound(2.5000000000000004), 3);
});

// ---------------------------------------------------------------- ratio

test("predRatio: the recipe [0, 0.3] ± [0, 0.2] leaves half the crops unmasked, the rest U(0.1, 0.5)", () => {
  for (const seed of [0, 1, 2]) {
    const r = createPyRandom(seed);
    const ratios = Array.from({ length: 20000 }, () => predRatio(r, RECIPE));
    const masked = ratios.filter((x) => x !== 0);
    const unmaskedShare = 1 - masked.length / ratios.length;
    assert.ok(Math.abs(unmaskedShare - 0.5) < 0.02, `unmasked share ${unmaskedShare}`);
    assert.ok(
      masked.every((x) => x >= 0.1 - 1e-12 && x <= 0.5),
      "masked ratios lie in [0.1, 0.5]",
    );
    const maskedMean = masked.reduce((s, x) => s + x, 0) / masked.length;
    assert.ok(Math.abs(maskedMean - 0.3) < 0.01, `mean masked ratio ${maskedMean}`);
    const lowerHalf = masked.filter((x) => x < 0.3).length / masked.length;
    assert.ok(Math.abs(lowerHalf - 0.5) < 0.03, `share below 0.3: ${lowerHalf}`);
    const mean = ratios.reduce((s, x) => s + x, 0) / ratios.length;
    assert.ok(Math.abs(mean - 0.15) < 0.01, `overall mean ratio ${mean}`);
  }
});

test("predRatio: scalars, zero variance, broadcasting, the start epoch and invalid flags", () => {
  const r = createPyRandom(11);
  assert.equal(predRatio(r, { predRatio: 0.3 }), 0.3, "the CLI default: 0.3 with variance 0");
  assert.equal(predRatio(r, { predRatio: [0.3], predRatioVar: [0] }), 0.3);
  for (let k = 0; k < 200; k++) {
    const x = predRatio(r, { predRatio: 0.3, predRatioVar: 0.1 });
    assert.ok(x >= 0.2 - 1e-12 && x <= 0.4 + 1e-12);
    const y = predRatio(r, { predRatio: [0.2, 0.4], predRatioVar: 0 });
    assert.ok(y === 0.2 || y === 0.4);
    const z = predRatio(r, { predRatio: [0.2, 0.6], predRatioVar: [0.1] }); // one variance for both
    assert.ok((z >= 0.1 - 1e-12 && z <= 0.3) || (z >= 0.5 && z <= 0.7 + 1e-12));
  }
  assert.equal(predRatio(r, { ...RECIPE, predRatio: 0.3, predRatioVar: 0.2, epoch: 4, predStartEpoch: 5 }), 0);
  const before = createPyRandom(5);
  const untouched = createPyRandom(5);
  predRatio(before, { predRatio: 0.3, predRatioVar: 0.2, epoch: 0, predStartEpoch: 1 });
  assert.equal(before.nextU32(), untouched.nextU32(), "no draw before the start epoch");
  assert.throws(() => predRatio(r, { predRatio: 0.1, predRatioVar: 0.2 }), RangeError, "var > ratio");
  assert.throws(() => predRatio(r, { predRatio: [0.1, 0.3], predRatioVar: [0, 0.1, 0.2] }), RangeError, "length mismatch");
  assert.throws(() => predRatio(r, { predRatio: [] }), RangeError);
  assert.throws(() => predRatio(r, { predRatio: 0.8, predRatioVar: 0.3 }), RangeError, "ratio + var > 1");
});

// ---------------------------------------------------------------- block masks

test("minBlockArea is (min(H, W) // 3)²: 4 for 7×7 and 6×6, 16 for 14×14", () => {
  assert.equal(minBlockArea(7, 7), 4);
  assert.equal(minBlockArea(6, 6), 4);
  assert.equal(minBlockArea(14, 14), 16);
  assert.equal(minBlockArea(14, 5), 1);
  assert.equal(minBlockArea(2, 9), 0);
});

test("blockMask: the masked count never exceeds ratio·H·W, and ratio 0 masks nothing", () => {
  fc.assert(
    fc.property(arbSeed, arbSide, arbSide, arbRatio, (seed, h, w, ratio) => {
      const mask = blockMask(createPyRandom(seed), h, w, ratio);
      assert.equal(mask.length, h * w);
      assert.ok(mask.every((cell) => cell === 0 || cell === 1));
      assert.ok(countOnes(mask) <= ratio * h * w, `${countOnes(mask)} > ${ratio * h * w}`);
      assert.equal(countOnes(blockMask(createPyRandom(seed), h, w, 0)), 0);
    }),
    { numRuns: 300 },
  );
});

test("blockMask: the mask is the union of its accepted blocks, each an axis-aligned rectangle the generator could draw", () => {
  fc.assert(
    fc.property(arbSeed, arbSide, arbSide, arbRatio, arbAspects, (seed, height, width, ratio, aspects) => {
      const { mask, blocks } = blockMaskWithBlocks(createPyRandom(seed), height, width, ratio, aspects);
      assert.deepEqual(mask, paint(blocks, height, width));
      const high = ratio * height * width;
      const low = minBlockArea(height, width);
      let count = 0;
      for (const b of blocks) {
        // Placement: inside the grid, and strictly smaller than it (the loader's `w < W and h < H`).
        assert.ok(b.height >= 1 && b.width >= 1 && b.height < height && b.width < width);
        assert.ok(b.top >= 0 && b.left >= 0 && b.top + b.height <= height && b.left + b.width <= width);
        // Budget: each round's budget is what is left of high, and a block never overspends it.
        assert.equal(b.budget, high - count);
        assert.ok(b.newlyMasked > 0 && b.newlyMasked <= b.budget);
        count += b.newlyMasked;
        // Shape: h = round(√(area·a)), w = round(√(area/a)) for some a in the aspect bounds and some
        // area between low and the budget, so h/w and h·w are within the bounds up to rounding by ½.
        const eps = 1e-9;
        assert.ok((b.height - 0.5) / (b.width + 0.5) <= aspects.maxAspect + eps, `block ${b.height}×${b.width} too tall`);
        assert.ok((b.height + 0.5) / (b.width - 0.5) >= aspects.minAspect - eps, `block ${b.height}×${b.width} too wide`);
        assert.ok((b.height - 0.5) * (b.width - 0.5) <= Math.max(low, b.budget) + eps, "block area above the draw");
        assert.ok((b.height + 0.5) * (b.width + 0.5) >= Math.min(low, b.budget) - eps, "block area below the draw");
      }
      assert.equal(count, countOnes(mask));
    }),
    { numRuns: 300 },
  );
});

test("blockMask: the 7×7 recipe (ratio 0.3, low 4) and the 14×14 one place rectangles of the right size", () => {
  const areas: number[] = [];
  for (let seed = 0; seed < 500; seed++) {
    const { mask, blocks } = blockMaskWithBlocks(createPyRandom(seed), 7, 7, 0.3);
    assert.ok(countOnes(mask) <= 14.7 && countOnes(mask) >= 1);
    assert.ok(blocks.length >= 1);
    areas.push(...blocks.map((b) => b.height * b.width));
  }
  // The first block's area is drawn from U(4, 14.7), so blocks of one or two cells are rare leftovers.
  assert.ok(areas.filter((a) => a >= 4).length / areas.length > 0.5);
  const fill = Array.from({ length: 200 }, (_, seed) => countOnes(blockMask(createPyRandom(seed), 14, 14, 0.4))).reduce((s, n) => s + n, 0) / 200;
  assert.ok(fill > 0.8 * 78.4 && fill <= 78.4, `mean masked count ${fill} for a target of 78.4`);
});

test("blockMask: a grid one patch high can hold no block; 1×1 grids stay empty; bad arguments throw", () => {
  assert.equal(countOnes(blockMask(createPyRandom(1), 1, 9, 0.5)), 0);
  assert.equal(countOnes(blockMask(createPyRandom(1), 1, 1, 1)), 0);
  assert.throws(() => blockMask(createPyRandom(1), 7, 7, 1.5), RangeError);
  assert.throws(() => blockMask(createPyRandom(1), 0, 7, 0.3), RangeError);
  assert.throws(() => blockMask(createPyRandom(1), 7, 7, 0.3, { minAspect: 2, maxAspect: 1 }), RangeError);
});

// ---------------------------------------------------------------- random masks

test("randomMask: exactly floor(ratio·H·W) cells, and ratio 0 masks nothing", () => {
  fc.assert(
    fc.property(arbSeed, arbSide, arbSide, arbRatio, (seed, h, w, ratio) => {
      const mask = randomMask(createPyRandom(seed), h, w, ratio);
      assert.equal(mask.length, h * w);
      assert.equal(countOnes(mask), Math.floor(ratio * h * w));
      assert.equal(countOnes(randomMask(createPyRandom(seed), h, w, 0)), 0);
    }),
  );
  // Every position is equally likely: over many masks each cell is masked about ratio of the time.
  const r = createPyRandom(9);
  const hits = new Float64Array(49);
  for (let k = 0; k < 4000; k++) randomMask(r, 7, 7, 0.3).forEach((cell, i) => (hits[i] += cell / 4000));
  assert.ok(
    hits.every((p) => Math.abs(p - 14 / 49) < 0.05),
    "uniform positions",
  );
});

// ---------------------------------------------------------------- batches

test("maskBatch: layout, counts and ratios, for both shapes", () => {
  fc.assert(
    fc.property(arbSeed, fc.integer({ min: 0, max: 6 }), arbSide, arbSide, fc.constantFrom("block" as const, "rand" as const), (seed, batch, h, w, shape) => {
      const out = maskBatch(seed, batch, h, w, { ...RECIPE, shape });
      assert.deepEqual([out.batch, out.height, out.width], [batch, h, w]);
      assert.equal(out.masks.length, batch * h * w);
      for (let b = 0; b < batch; b++) {
        const mask = out.masks.subarray(b * h * w, (b + 1) * h * w);
        assert.equal(out.counts[b], countOnes(mask));
        const high = out.ratios[b] * h * w;
        if (shape === "rand") assert.equal(out.counts[b], Math.floor(high));
        else assert.ok(out.counts[b] <= high);
        if (out.ratios[b] === 0) assert.equal(out.counts[b], 0);
      }
    }),
  );
});

test("maskBatch: deterministic per seed, different across seeds, independent ratios per crop", () => {
  fc.assert(
    fc.property(arbSeed, arbSeed, (s, t) => {
      const a = maskBatch(s, 8, 14, 14, { predRatio: 0.3 });
      assert.deepEqual(a, maskBatch(s, 8, 14, 14, { predRatio: 0.3 }));
      if (s !== t) assert.notDeepEqual(a.masks, maskBatch(t, 8, 14, 14, { predRatio: 0.3 }).masks);
    }),
    { numRuns: 50 },
  );
  const rng = createPyRandom(4);
  const first = maskBatch(rng, 4, 7, 7, RECIPE);
  const second = maskBatch(rng, 4, 7, 7, RECIPE);
  assert.deepEqual(first, maskBatch(4, 4, 7, 7, RECIPE), "a seed and a fresh stream with that seed agree");
  assert.notDeepEqual(second.masks, first.masks, "a stream carries on");
  const big = maskBatch(1, 4000, 7, 7, RECIPE);
  const unmasked = big.ratios.filter((x) => x === 0).length / big.batch;
  assert.ok(Math.abs(unmasked - 0.5) < 0.03, `unmasked share ${unmasked}`);
  const emptyMasks = Array.from(big.counts).filter((n) => n === 0).length / big.batch;
  assert.ok(emptyMasks >= unmasked && emptyMasks < unmasked + 0.02, "crops with a ratio almost always get a mask");
});

test("maskBatch: nothing is masked before predStartEpoch", () => {
  const out = maskBatch(3, 16, 7, 7, { ...RECIPE, epoch: 2, predStartEpoch: 3 });
  assert.equal(countOnes(out.masks), 0);
  assert.ok(out.ratios.every((r) => r === 0));
  assert.ok(countOnes(maskBatch(3, 16, 7, 7, { ...RECIPE, epoch: 3, predStartEpoch: 3 }).masks) > 0);
});

// ---------------------------------------------------------------- schedules

test("linspace: NumPy's endpoints, steps and one-element case", () => {
  const t = linspace(0.04, 0.07, 30);
  assert.equal(t.length, 30);
  assert.equal(t[0], 0.04);
  assert.equal(t[29], 0.07, "the endpoint is exact");
  assertClose([t[1], t[14], t[28]], [0.04103448275862069, 0.05448275862068966, 0.06896551724137931], 0);
  assert.deepEqual([...linspace(2, 5, 1)], [2]);
  assert.deepEqual([...linspace(1, 1, 1)], [1]);
  assert.deepEqual([...linspace(0.3, 0.3, 4)], [0.3, 0.3, 0.3, 0.3]);
  assert.equal(linspace(0, 1, 0).length, 0);
});

test("cosineScheduler: NumPy's values for the momentum, a warmed-up lr and the weight decay", () => {
  // utils.cosine_scheduler(0.996, 1, 3, 5) in NumPy.
  assertClose(
    cosineScheduler(0.996, 1, 3, 5),
    [
      0.996, 0.9960437047985324, 0.9961729090847148, 0.9963819660112501, 0.9966617387872823, 0.997, 0.9973819660112501, 0.9977909430734647, 0.9982090569265353,
      0.9986180339887499, 0.999, 0.9993382612127177, 0.9996180339887499, 0.9998270909152852, 0.9999562952014676,
    ],
  );
  // cosine_scheduler(5e-4·1024/256, 1e-6, 4, 3, warmup_epochs=2).
  const lr = learningRateSchedule({ epochs: 4, itersPerEpoch: 3, batchSize: 1024, warmupEpochs: 2 });
  assertClose(
    lr,
    [
      0, 0.0004, 0.0008, 0.0012000000000000001, 0.0016, 0.002, 0.002, 0.0018660923910825465, 0.0015002499999999998, 0.0010004999999999999,
      0.0005007500000000002, 0.00013490760891745352,
    ],
  );
  assert.equal(lr[5], 0.002, "the last warmup iteration holds the peak exactly (linspace's endpoint)");
  // cosine_scheduler(0.04, 0.4, 2, 3).
  assertClose(
    weightDecaySchedule({ epochs: 2, itersPerEpoch: 3 }),
    [0.03999999999999998, 0.06411542731880099, 0.13, 0.22, 0.30999999999999994, 0.375884572681199],
  );
});

test("cosineScheduler: lengths, endpoints and monotonicity", () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 20 }),
      fc.integer({ min: 1, max: 30 }),
      fc.integer({ min: 0, max: 20 }),
      arbValue(0, 1),
      arbValue(0, 1),
      arbValue(0, 1),
      (epochs, iters, warmupWanted, base, final, start) => {
        const warmup = Math.min(warmupWanted, epochs);
        const s = cosineScheduler(base, final, epochs, iters, warmup, start);
        const w = warmup * iters;
        assert.equal(s.length, epochs * iters);
        if (w > 0) {
          assert.equal(s[0], start, "the warmup starts at its start value");
          assert.equal(s[w - 1], w === 1 ? start : base, "the last warmup iteration is base (or start when it is the only one)");
          assert.ok(isMonotone(s.subarray(0, w), start <= base ? "up" : "down"));
        }
        const rest = s.subarray(w);
        if (rest.length > 0) {
          assert.ok(Math.abs(rest[0] - base) <= 1e-15, "the cosine starts at base");
          const last = rest[rest.length - 1];
          const lastExpected = final + 0.5 * (base - final) * (1 + Math.cos(Math.PI * (1 - 1 / rest.length)));
          assert.ok(Math.abs(last - lastExpected) <= 1e-15, "and stops one step short of final");
          const tol = 1e-15;
          const monotone = Array.from(rest).every((x, i, all) => i === 0 || (base >= final ? x <= all[i - 1] + tol : x >= all[i - 1] - tol));
          assert.ok(monotone, "the cosine is monotone");
          assert.ok(rest.every((x) => x >= Math.min(base, final) - tol && x <= Math.max(base, final) + tol));
        }
      },
    ),
  );
  assert.throws(() => cosineScheduler(1, 0, 2, 3, 3), RangeError, "warmup longer than the run");
  assert.throws(() => cosineScheduler(1, 0, 2, 3, 0.5), RangeError, "1.5 warmup iterations");
  assert.equal(cosineScheduler(1, 0, 10, 10, 0.3).subarray(0, 3).join(), linspace(0, 1, 3).join(), "0.3 epochs × 10 = 3 iterations");
  assert.equal(cosineScheduler(1, 0, 0, 5).length, 0);
  assert.deepEqual([...cosineScheduler(2, 1, 1, 3, 1, 0.5)], [...linspace(0.5, 2, 3)], "warmup over the whole run");
});

test("teacherMomentumSchedule: 0.996 at the first iteration, rising to 1 at the last", () => {
  const epochs = 100;
  const itersPerEpoch = 50;
  const m = teacherMomentumSchedule({ epochs, itersPerEpoch });
  const T = epochs * itersPerEpoch;
  assert.equal(m.length, T);
  assert.ok(Math.abs(m[0] - 0.996) < 1e-15);
  assert.ok(isMonotone(m, "up"));
  assert.ok(m.every((x) => x < 1 || x === 1));
  // 1 − m_{T−1} = 0.002·(1 − cos(π/T)) ≈ 0.001·(π/T)².
  assert.ok(1 - m[T - 1] > 0 && 1 - m[T - 1] <= 0.001 * (Math.PI / T) ** 2 + 1e-16, `last ${m[T - 1]}`);
  assert.ok(Math.abs(m[T / 2] - 0.998) < 1e-15, "the midpoint is halfway");
  assert.ok(Math.abs(teacherMomentumSchedule({ epochs: 2, itersPerEpoch: 2, momentum: 0.9995 })[0] - 0.9995) < 1e-15);
  // end = momentum holds it (short runs); another end is where the cosine heads.
  assert.deepEqual([...teacherMomentumSchedule({ epochs: 2, itersPerEpoch: 3, momentum: 0.98, end: 0.98 })], Array(6).fill(0.98));
  const toward = teacherMomentumSchedule({ epochs: 1, itersPerEpoch: 4, momentum: 0.9, end: 0.99 });
  assert.ok(toward[0] === 0.9 && isMonotone(toward, "up") && toward[3] < 0.99);
});

test("learningRateSchedule: warmup from 0 to lr·batch/256, then cosine down to minLr", () => {
  const s = learningRateSchedule({ epochs: 100, itersPerEpoch: 20, batchSize: 1024 }); // README ViT-S: peak 2e-3
  assert.equal(s.length, 2000);
  assert.equal(s[0], 0);
  assert.equal(s[199], 0.002, "warmup (10 epochs · 20 iterations) ends at the peak");
  assert.ok(isMonotone(s.subarray(0, 200), "up"));
  assert.ok(isMonotone(s.subarray(200), "down"));
  assert.ok(s[1999] > 1e-6 && s[1999] < 1e-6 + 1e-8);
  const small = learningRateSchedule({ epochs: 3, itersPerEpoch: 4, batchSize: 128, lr: 1e-3, minLr: 0, warmupEpochs: 1 });
  assert.equal(small[3], 0.0005);
  assert.equal(small[4], 0.0005);
});

test("weightDecaySchedule: cosine from 0.04 up to 0.4, no warmup", () => {
  const s = weightDecaySchedule({ epochs: 30, itersPerEpoch: 10 });
  assert.equal(s.length, 300);
  assert.ok(Math.abs(s[0] - 0.04) < 1e-15);
  assert.ok(isMonotone(s, "up"));
  assert.ok(s[299] < 0.4 && s[299] > 0.4 - 1e-4);
  assert.ok(Math.abs(s[150] - 0.22) < 1e-15);
});

test("teacherTempSchedule: linspace over the warmup epochs, then constant; the patch variant waits for predStartEpoch", () => {
  const cls = teacherTempSchedule(0.04, 0.07, 30, 100);
  assert.equal(cls.length, 100);
  assert.equal(cls[0], 0.04);
  assert.equal(cls[1], 0.04103448275862069);
  assert.equal(cls[29], 0.07, "linspace includes its endpoint: the last warmup epoch is already at temp");
  assert.ok(cls.subarray(29).every((t) => t === 0.07));
  assert.ok(isMonotone(cls, "up"));
  // np.concatenate((ones(5)·0.04, linspace(0.04, 0.07, 3), ones(2)·0.07)).
  assert.deepEqual([...teacherTempSchedule(0.04, 0.07, 3, 10, 5)], [0.04, 0.04, 0.04, 0.04, 0.04, 0.04, 0.05500000000000001, 0.07, 0.07, 0.07]);
  assert.deepEqual([...teacherTempSchedule(0.04, 0.07, 0, 3)], [0.07, 0.07, 0.07], "no warmup");
  assert.deepEqual([...teacherTempSchedule(0.04, 0.07, 1, 3)], [0.04, 0.07, 0.07], "a one-epoch linspace is its start");
  assert.deepEqual([...teacherTempSchedule(0.04, 0.07, 0, 3, 2)], [0.04, 0.04, 0.07]);
  assert.throws(() => teacherTempSchedule(0.04, 0.07, 30, 20), RangeError);
  assert.throws(() => teacherTempSchedule(0.04, 0.07, 3, 10, 8), RangeError);
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 40 }), fc.integer({ min: 0, max: 40 }), fc.integer({ min: 0, max: 40 }), (w, p, extra) => {
      const s = teacherTempSchedule(0.04, 0.07, w, p + w + extra, p);
      assert.equal(s.length, p + w + extra);
      assert.ok(isMonotone(s, "up"));
      assert.ok(s.subarray(0, p).every((t) => t === 0.04));
      assert.ok(s.subarray(p + w).every((t) => t === 0.07));
      if (w > 1) assert.equal(s[p + w - 1], 0.07);
    }),
  );
});

test("teacherTempPerIteration: the official per-epoch steps, or a linear warm-up over whole iterations", () => {
  // "epoch": the official per-epoch values, held for every iteration of their epoch.
  const byEpoch = teacherTempPerIteration(0.04, 0.07, 3, { epochs: 4, itersPerEpoch: 2 }, "epoch");
  assert.deepEqual(
    [...byEpoch],
    [...teacherTempSchedule(0.04, 0.07, 3, 4)].flatMap((t) => [t, t]),
  );
  // "iteration": linspace over 1.5 epochs × 4 = 6 iterations, then the final temperature.
  const byIter = teacherTempPerIteration(0.04, 0.07, 1.5, { epochs: 3, itersPerEpoch: 4 }, "iteration");
  assertClose(byIter, [...linspace(0.04, 0.07, 6), 0.07, 0.07, 0.07, 0.07, 0.07, 0.07]);
  assert.equal(byIter[5], 0.07, "the last warm-up iteration already holds the final temperature");
  assert.deepEqual([...teacherTempPerIteration(0.04, 0.07, 0, { epochs: 1, itersPerEpoch: 3 }, "iteration")], [0.07, 0.07, 0.07]);
  assert.throws(() => teacherTempPerIteration(0.04, 0.07, 0.3, { epochs: 2, itersPerEpoch: 4 }, "iteration"), /whole number of iterations/);
  assert.throws(() => teacherTempPerIteration(0.04, 0.07, 3, { epochs: 2, itersPerEpoch: 4 }, "iteration"), /within the 8/);
});
