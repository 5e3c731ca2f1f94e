/**
 * iBOT's masks for masked image modelling, host-side (ibot-spec.md §3): the official
 * `loader.py::ImageFolderMask` with BEiT's block-mask generator inlined.
 *
 * - `predRatio` draws one masking ratio per crop (`get_pred_ratio`).
 * - `blockMask` masks rectangles until about `ratio·H·W` patches are covered (`pred_shape 'block'`).
 * - `randomMask` masks exactly `int(ratio·H·W)` patches chosen by a shuffle (`pred_shape 'rand'`).
 * - `maskBatch` does both steps for every global crop of a batch.
 *
 * Masks are `Uint8Array`s of H·W cells in row-major order (h, then w), 1 = masked, which is the
 * token order of the ViT and wgrad's host layout for `bool` tensors. All randomness comes from a
 * seeded `PyRandom`, so the same seed gives the same masks; the streams are not Python's.
 */

// ------------------------------------------------------------------------------------ random

/** Anything that yields uniform 32-bit unsigned integers (e.g. `src/data/rng.ts`'s streams). */
export interface Uint32Source {
  nextU32(): number;
}

/**
 * A seeded random stream with the semantics of the Python `random` calls the loader makes
 * (not Python's numbers: the bits come from a `Uint32Source`).
 */
export interface PyRandom extends Uint32Source {
  /** A double in [0, 1) with 53 random bits, like Python's `random.random()`. */
  random(): number;
  /** `a + (b − a)·random()`, like Python's `random.uniform`: `a` may exceed `b` (the result lies between them). */
  uniform(a: number, b: number): number;
  /** An integer in [a, b], both ends included, like Python's `random.randint`; unbiased. */
  randint(a: number, b: number): number;
  /** One element picked uniformly, like Python's `random.choice`. */
  choice<T>(items: readonly T[]): T;
  /** Shuffles in place (Fisher–Yates, the order Python's `random.shuffle` uses). */
  shuffle<T>(items: { [index: number]: T; readonly length: number }): void;
}

const TWO_POW_32 = 0x1_0000_0000;

/**
 * A splitmix32 stream (a Weyl sequence with step 0x9e3779b9 hashed by MurmurHash3's finaliser):
 * period 2³², plenty for masks. `seed` is any safe integer; its high bits are mixed in.
 */
export function createPyRandom(seed: number): PyRandom {
  if (!Number.isSafeInteger(seed)) throw new RangeError(`createPyRandom: the seed must be a safe integer, got ${seed}`);
  let state = (seed >>> 0) ^ Math.imul(Math.floor(seed / TWO_POW_32) >>> 0, 0x85ebca6b);
  return pyRandomFrom({
    nextU32: () => {
      state = (state + 0x9e3779b9) | 0;
      let z = state;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
      return (z ^ (z >>> 16)) >>> 0;
    },
  });
}

/** Python-style draws on top of any 32-bit stream (which they advance). */
export function pyRandomFrom(source: Uint32Source): PyRandom {
  const nextU32 = (): number => source.nextU32();

  // Python's genrand_res53: the high 27 and 26 bits of two outputs.
  const random = (): number => ((nextU32() >>> 5) * 67108864 + (nextU32() >>> 6)) / 9007199254740992;

  /** An integer in [0, n) for 1 ≤ n ≤ 2³², by rejection so every value is equally likely. */
  const below = (n: number): number => {
    const limit = Math.floor(TWO_POW_32 / n) * n;
    for (;;) {
      const x = nextU32();
      if (x < limit) return x % n;
    }
  };

  return {
    nextU32,
    random,
    uniform: (a, b) => a + (b - a) * random(),
    randint: (a, b) => {
      if (!Number.isSafeInteger(a) || !Number.isSafeInteger(b) || b < a || b - a + 1 > TWO_POW_32) {
        throw new RangeError(`randint: needs integers a ≤ b with b − a < 2³², got [${a}, ${b}]`);
      }
      return a + below(b - a + 1);
    },
    choice: (items) => {
      if (items.length === 0) throw new RangeError("choice: cannot choose from an empty list");
      return items[below(items.length)];
    },
    shuffle: (items) => {
      for (let i = items.length - 1; i > 0; i--) {
        const j = below(i + 1);
        const t = items[i];
        items[i] = items[j];
        items[j] = t;
      }
    },
  };
}

/** Python 3's `round(x)` for a float: to the nearest integer, ties to even (2.5 → 2, 3.5 → 4). */
export function pythonRound(x: number): number {
  const r = Math.round(x); // ties go up
  return r - x === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

// ------------------------------------------------------------------------------------ ratio

/** The masking-ratio flags of `main_ibot.py` (`--pred_ratio`, `--pred_ratio_var`, `--pred_start_epoch`). */
export interface PredRatioOptions {
  /** One ratio, or several of which each crop picks one uniformly (the recipe uses [0, 0.3]). */
  readonly predRatio: number | readonly number[];
  /** Half-widths of the uniform ranges around the ratios: a scalar applies to every ratio. Default 0. */
  readonly predRatioVar?: number | readonly number[];
  /** The current epoch. Default 0. */
  readonly epoch?: number;
  /** Before this epoch every ratio is 0 (nothing is masked). Default 0. */
  readonly predStartEpoch?: number;
}

/**
 * One crop's masking ratio (`ImageFolderMask.get_pred_ratio`). 0 while `epoch < predStartEpoch`
 * (drawing nothing). Otherwise each pair (r, v) gives `uniform(r − v, r + v)` when v > 0 and r
 * itself when v = 0; with a list, one of those values is then picked uniformly. A one-element
 * list behaves as a scalar, as in the loader. Throws unless 0 ≤ v ≤ r and r + v ≤ 1.
 */
export function predRatio(rng: PyRandom, options: PredRatioOptions): number {
  const { epoch = 0, predStartEpoch = 0 } = options;
  if (epoch < predStartEpoch) return 0;
  const pairs = ratioPairs(options);
  const drawn = pairs.map(([r, v]) => (v > 0 ? rng.uniform(r - v, r + v) : r));
  return drawn.length === 1 ? drawn[0] : rng.choice(drawn);
}

/** The (ratio, variance) pairs of the options, validated; the loader's broadcasting of a scalar variance. */
function ratioPairs({ predRatio: ratios, predRatioVar: vars = 0 }: PredRatioOptions): Array<[number, number]> {
  const rs = typeof ratios === "number" ? [ratios] : [...ratios];
  // A scalar or one-element variance applies to every ratio, as in the loader's __init__.
  const vs = typeof vars === "number" ? rs.map(() => vars) : vars.length === 1 ? rs.map(() => vars[0]) : [...vars];
  if (rs.length === 0) throw new RangeError("predRatio: predRatio is an empty list");
  if (vs.length !== rs.length) {
    throw new RangeError(`predRatio: ${rs.length} ratios but ${vs.length} variances; give one variance per ratio or a scalar`);
  }
  return rs.map((r, i) => {
    const v = vs[i];
    if (!(v >= 0 && r >= v && r + v <= 1)) {
      throw new RangeError(`predRatio: ratio ${r} ± ${v} must satisfy 0 ≤ var ≤ ratio and ratio + var ≤ 1`);
    }
    return [r, v];
  });
}

// ------------------------------------------------------------------------------------ masks

/** Options of the block generator; the defaults are iBOT's. */
export interface BlockMaskOptions {
  /** Smallest aspect ratio h/w to draw (log-uniformly). Default 0.3 (`--pred_aspect_ratio`). */
  readonly minAspect?: number;
  /** Largest aspect ratio h/w to draw. Default 1/0.3. */
  readonly maxAspect?: number;
  /** The `low` end of the area draw. Default `minBlockArea(H, W)` = (min(H, W) // 3)². */
  readonly minNumPatches?: number;
}

/** One accepted rectangle of a block mask, with the bookkeeping of its round. */
export interface MaskBlock {
  readonly top: number;
  readonly left: number;
  readonly height: number;
  readonly width: number;
  /** The budget `high − count` of the round that accepted the block. */
  readonly budget: number;
  /** Cells of the block that were not masked before it (0 < newlyMasked ≤ budget). */
  readonly newlyMasked: number;
}

/** iBOT's `low`, the lower end of the block-area draw: (min(H, W) // 3)², so 16 for 14×14 and 4 for 7×7 or 6×6. */
export const minBlockArea = (height: number, width: number): number => Math.floor(Math.min(height, width) / 3) ** 2;

/** How many attempts one round makes to place a block before the generator gives up. */
const ATTEMPTS_PER_ROUND = 10;

/**
 * A block mask and the blocks that made it, exactly as the official loader (BEiT's generator):
 * the target is `high = ratio·H·W` (a float). Each round has budget `high − count` and makes up
 * to 10 attempts: area ~ U(low, budget) (Python's `uniform`, so when budget < low the area lies in
 * [budget, low]), aspect = exp(U(log minAspect, log maxAspect)), h = round(√(area·aspect)),
 * w = round(√(area/aspect)) (Python's round, ties to even); a block that fits (h < H and w < W,
 * strictly) is placed at randint(0, H − h) × randint(0, W − w) and accepted when the number of
 * cells it newly masks is in (0, budget]. A round that accepts nothing ends the loop, so the mask
 * never covers more than `high` cells and may cover fewer.
 */
export function blockMaskWithBlocks(
  rng: PyRandom,
  height: number,
  width: number,
  ratio: number,
  options: BlockMaskOptions = {},
): { mask: Uint8Array; blocks: MaskBlock[] } {
  checkGrid("blockMask", height, width, ratio);
  const { minAspect = 0.3, maxAspect = 1 / 0.3, minNumPatches = minBlockArea(height, width) } = options;
  if (!(minAspect > 0 && maxAspect >= minAspect)) {
    throw new RangeError(`blockMask: needs 0 < minAspect ≤ maxAspect, got ${minAspect} and ${maxAspect}`);
  }
  const logAspect = [Math.log(minAspect), Math.log(maxAspect)] as const;
  const high = ratio * height * width;
  const mask = new Uint8Array(height * width);
  const blocks: MaskBlock[] = [];
  let count = 0;
  while (count < high) {
    const budget = high - count;
    let delta = 0;
    for (let attempt = 0; attempt < ATTEMPTS_PER_ROUND && delta === 0; attempt++) {
      const area = rng.uniform(minNumPatches, budget);
      const aspect = Math.exp(rng.uniform(logAspect[0], logAspect[1]));
      const h = pythonRound(Math.sqrt(area * aspect));
      const w = pythonRound(Math.sqrt(area / aspect));
      if (w < width && h < height) {
        const top = rng.randint(0, height - h);
        const left = rng.randint(0, width - w);
        const fresh = h * w - countMasked(mask, width, top, left, h, w);
        if (fresh > 0 && fresh <= budget) {
          fillBlock(mask, width, top, left, h, w);
          blocks.push({ top, left, height: h, width: w, budget, newlyMasked: fresh });
          delta = fresh;
        }
      }
    }
    if (delta === 0) break;
    count += delta;
  }
  return { mask, blocks };
}

/** A block mask (see `blockMaskWithBlocks`): H·W cells, row-major, 1 = masked. */
export const blockMask = (rng: PyRandom, height: number, width: number, ratio: number, options: BlockMaskOptions = {}): Uint8Array =>
  blockMaskWithBlocks(rng, height, width, ratio, options).mask;

/** Exactly `int(ratio·H·W)` masked cells at positions chosen by a shuffle (`pred_shape 'rand'`). */
export function randomMask(rng: PyRandom, height: number, width: number, ratio: number): Uint8Array {
  checkGrid("randomMask", height, width, ratio);
  const size = height * width;
  const mask = new Uint8Array(size);
  mask.fill(1, size - Math.trunc(ratio * height * width)); // np.hstack([zeros, ones]), then shuffled
  rng.shuffle(mask);
  return mask;
}

function checkGrid(op: string, height: number, width: number, ratio: number): void {
  if (!Number.isSafeInteger(height) || !Number.isSafeInteger(width) || height < 1 || width < 1) {
    throw new RangeError(`${op}: the grid must be positive integers, got ${height}×${width}`);
  }
  if (!(ratio >= 0 && ratio <= 1)) throw new RangeError(`${op}: the ratio must be in [0, 1], got ${ratio}`);
}

function countMasked(mask: Uint8Array, gridWidth: number, top: number, left: number, h: number, w: number): number {
  let n = 0;
  for (let i = top; i < top + h; i++) for (let j = left; j < left + w; j++) n += mask[i * gridWidth + j];
  return n;
}

function fillBlock(mask: Uint8Array, gridWidth: number, top: number, left: number, h: number, w: number): void {
  for (let i = top; i < top + h; i++) mask.fill(1, i * gridWidth + left, i * gridWidth + left + w);
}

// ------------------------------------------------------------------------------------ batch

/** Which generator `maskBatch` uses (`--pred_shape`). */
export type MaskShape = "block" | "rand";

/** maskBatch's options: the ratio flags, the block generator's, and which generator (iBOT's defaults throughout). */
export interface MaskBatchOptions extends PredRatioOptions, BlockMaskOptions {
  /** Default "block". */
  readonly shape?: MaskShape;
}

/** Masks for a batch of crops, ready for a `bool [batch, height·width]` tensor. */
export interface MaskBatch {
  readonly batch: number;
  readonly height: number;
  readonly width: number;
  /** batch·height·width cells: crop b's row-major mask starts at b·height·width. 1 = masked. */
  readonly masks: Uint8Array;
  /** Masked cells per crop. */
  readonly counts: Int32Array;
  /** The ratio drawn for each crop. */
  readonly ratios: Float64Array;
}

/**
 * Masks for `batch` global crops on a height×width patch grid: for each crop in turn, an
 * independent ratio (`predRatio`) and then its mask, as the loader does per crop. Pass a seed for
 * a fresh stream, or a `PyRandom` to continue one. With the crop-major batch order of the multi-crop
 * wrapper, pass batch = G·B; every crop is independent, so the order only decides which mask
 * each crop gets.
 */
export function maskBatch(seedOrRandom: number | PyRandom, batch: number, height: number, width: number, options: MaskBatchOptions): MaskBatch {
  if (!Number.isSafeInteger(batch) || batch < 0) throw new RangeError(`maskBatch: the batch must be a non-negative integer, got ${batch}`);
  checkGrid("maskBatch", height, width, 0);
  const rng = typeof seedOrRandom === "number" ? createPyRandom(seedOrRandom) : seedOrRandom;
  const { shape = "block" } = options;
  const size = height * width;
  const masks = new Uint8Array(batch * size);
  const counts = new Int32Array(batch);
  const ratios = new Float64Array(batch);
  for (let b = 0; b < batch; b++) {
    const ratio = predRatio(rng, options);
    const mask = shape === "block" ? blockMask(rng, height, width, ratio, options) : randomMask(rng, height, width, ratio);
    masks.set(mask, b * size);
    counts[b] = mask.reduce((n, cell) => n + cell, 0);
    ratios[b] = ratio;
  }
  return { batch, height, width, masks, counts, ratios };
}
