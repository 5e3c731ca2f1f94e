/**
 * A small seeded random number generator for host-side work (augmentation), so that nothing
 * depends on `Math.random`. splitmix32: a Weyl sequence (step 0x9e3779b9) passed through
 * murmur3's 32-bit finaliser; fast, with a 2³² period per stream, which is plenty for drawing a
 * few dozen numbers per crop. Streams for different (seed, image, crop) come from `mixSeeds`.
 */

/** A stream of random numbers. It is mutable: each call advances it. */
export interface Rng {
  /** A uniform 32-bit unsigned integer. */
  nextU32(): number;
  /** A uniform float in [0, 1) (32 random bits). */
  next(): number;
  /** A uniform float in [lo, hi) (Python's `random.uniform`: `lo + (hi − lo)·u`, so lo > hi works too). */
  uniform(lo: number, hi: number): number;
  /** A uniform integer in [lo, hi], both ends included (like Python's `random.randint`). */
  int(lo: number, hi: number): number;
  /** True with probability p (`u < p`: p = 1 always, p = 0 never). */
  bernoulli(p: number): boolean;
}

const GOLDEN = 0x9e3779b9;

/** murmur3's fmix32: a bijection on 32-bit words with full avalanche. */
export function fmix32(x: number): number {
  let z = x >>> 0;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
  return (z ^ (z >>> 16)) >>> 0;
}

/** The low and high 32-bit words of a non-negative safe integer (a negative one is taken as a signed word). */
const words = (n: number): [number, number] => [n >>> 0, n >= 0 ? Math.floor(n / 2 ** 32) >>> 0 : 0xffffffff];

/**
 * Hashes integers (a run seed, a step, an image position, a crop number...) into one 32-bit
 * seed. Different tuples give unrelated seeds; the order matters.
 */
export function mixSeeds(...parts: readonly number[]): number {
  let h = 0x6a09e667;
  for (const p of parts) {
    if (!Number.isSafeInteger(p)) throw new RangeError(`mixSeeds: seeds must be safe integers, got ${p}`);
    for (const w of words(p)) h = fmix32((h ^ w) + GOLDEN);
  }
  return h;
}

/** A splitmix32 stream from an integer seed (any safe integer; seeds are hashed first). */
export function createRng(seed: number): Rng {
  let state = mixSeeds(seed);
  const nextU32 = (): number => {
    state = (state + GOLDEN) >>> 0;
    return fmix32(state);
  };
  const next = (): number => nextU32() / 2 ** 32;
  return {
    nextU32,
    next,
    uniform: (lo, hi) => lo + (hi - lo) * next(),
    int: (lo, hi) => lo + Math.floor(next() * (hi - lo + 1)),
    bernoulli: (p) => next() < p,
  };
}
