// A user's own gradient property, written with wgrad/testing (which runs fast-check).
import * as w from "wgrad";
import { arbShapedTensor, assertGradProperty } from "wgrad/testing";
import type { Tensor } from "wgrad";

// A custom composite: a smooth absolute value.
const softAbs = (x: Tensor) => w.sqrt(w.add(w.mul(x, x), 1e-2));

// Its gradients, to second order, agree with float64 finite differences on random shapes and values.
// On a failure assertGradProperty throws one message: fast-check's shrunk counterexample (the
// tensors' values) and checkGrads's report (the argument at fault, both directional derivatives,
// the tolerances). The seed is fixed so the example (and CI, which runs it) is reproducible.
assertGradProperty(softAbs, [arbShapedTensor({ maxRank: 3 })], { order: 2 }, { numRuns: 50, seed: 20261202 });
console.log("softAbs: 50 random shapes passed checkGrads to order 2");
