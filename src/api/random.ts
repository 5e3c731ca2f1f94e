/**
 * `random`: counter-based random numbers (threefry2x32, as JAX's): a key is an i32[2] tensor,
 * split or folded into new keys; the same key gives the same numbers on every backend.
 */
export { randomKey as key, split, splitKeys, foldIn, randomBits as bits, uniform, normal, truncatedNormal, bernoulli, permutation } from "../dsl/random.js";
