/**
 * iBOT multi-crop augmentation for a batch of grayscale images (spec §6, scaled to 28-px images
 * by §10): G global views and L local views per image, normalised with the dataset's statistics
 * and laid out crop-major, the order the official MultiCropWrapper concatenates them in.
 */
import { ArgumentError } from "../dsl/errors.js";
import type { Interpolation } from "./resample.js";
import { createRng, mixSeeds } from "./rng.js";
import type { PixelStats } from "./stats.js";
import type { ImageDataset } from "./types.js";
import { renderView, sampleViewParams, viewScratch, type ViewSpec } from "./view.js";

/** Knobs for `multiCropConfig`; every one has the spec's default. */
export interface MultiCropOptions {
  /** Number of global views G (2). */
  readonly globalCrops?: number;
  /** Number of local views L (4). */
  readonly localCrops?: number;
  readonly globalSize?: number;
  readonly localSize?: number;
  /** Crop area fractions: global (0.4, 1), local (0.1, 0.4). */
  readonly globalScale?: readonly [number, number];
  readonly localScale?: readonly [number, number];
  /** Crop aspect ratio range (3/4, 4/3). */
  readonly ratio?: readonly [number, number];
  /** "bilinear" (default); the official pipeline uses "bicubic" at 224 px. */
  readonly interpolation?: Interpolation;
  readonly flipP?: number;
  readonly jitterP?: number;
  readonly brightness?: number;
  readonly contrast?: number;
  /**
   * Blur σ range in pixels of the view. Default: the official PIL radius range (0.1, 2.0), which
   * applies to 224-px global and 96-px local views, scaled to this view's size, i.e.
   * (0.0125, 0.25) px for 28-px globals and 12-px locals: the same blur relative to the content.
   */
  readonly blurSigma?: readonly [number, number];
  /** Odd blur kernel size (5); see DEFAULT_BLUR_KERNEL. */
  readonly blurKernelSize?: number;
  readonly solarizeThreshold?: number;
}

/**
 * The blur kernel: 5 taps (radius 2 px), which covers the scaled default σ ≤ 0.25 many times over
 * and explicit σ up to 1 to ±2σ (larger σ saturate towards a 5×5 box blur).
 */
export const DEFAULT_BLUR_KERNEL = 5;

/** The full description of the augmentation; build it with `multiCropConfig`. */
export interface MultiCropConfig {
  /** One spec per global view (they share a size; blur and solarize probabilities differ). */
  readonly globalViews: readonly ViewSpec[];
  readonly localView: ViewSpec;
  readonly localCrops: number;
  /** Normalisation on the [0, 1] scale: x ← (x − mean)/std. */
  readonly mean: number;
  readonly std: number;
}

/**
 * The spec's augmentation with the dataset's statistics (`pixelStats(train)`): global view 1
 * blurred with p = 1.0, views 2..G blurred with p = 0.1 and solarized with p = 0.2, local views
 * blurred with p = 0.5; all flipped with p = 0.5 and jittered with p = 0.8 (brightness 0.4,
 * contrast 0.4). Pass `{ mean: 0, std: 1 }` to get un-normalised views in [0, 1].
 */
export function multiCropConfig(stats: PixelStats, o: MultiCropOptions = {}): MultiCropConfig {
  const common = {
    ratio: o.ratio ?? ([3 / 4, 4 / 3] as const),
    interpolation: o.interpolation ?? "bilinear",
    flipP: o.flipP ?? 0.5,
    jitterP: o.jitterP ?? 0.8,
    brightness: o.brightness ?? 0.4,
    contrast: o.contrast ?? 0.4,
    blurKernelSize: o.blurKernelSize ?? DEFAULT_BLUR_KERNEL,
    solarizeThreshold: o.solarizeThreshold ?? 128 / 255,
  };
  // The official blur radii hold for 224-px global and 96-px local views: scale them with the view.
  const blur = (size: number, official: number) => o.blurSigma ?? ([(0.1 * size) / official, (2.0 * size) / official] as const);
  const globalSize = o.globalSize ?? 28;
  const localSize = o.localSize ?? 12;
  const global = { ...common, size: globalSize, blurSigma: blur(globalSize, 224), scale: o.globalScale ?? ([0.4, 1] as const) };
  const globalViews = Array.from({ length: o.globalCrops ?? 2 }, (_, g): ViewSpec => ({ ...global, blurP: g === 0 ? 1.0 : 0.1, solarizeP: g === 0 ? 0 : 0.2 }));
  const localView: ViewSpec = {
    ...common,
    size: localSize,
    blurSigma: blur(localSize, 96),
    scale: o.localScale ?? ([0.1, 0.4] as const),
    blurP: 0.5,
    solarizeP: 0,
  };
  const config = { globalViews, localView, localCrops: o.localCrops ?? 4, mean: stats.mean, std: stats.std };
  validateConfig(config);
  return config;
}

function validateConfig(c: MultiCropConfig): void {
  const bad = (detail: string) => new ArgumentError("multiCropConfig", detail);
  if (c.globalViews.length < 1) throw bad("at least one global view is needed");
  if (!(c.std > 0)) throw bad(`std must be positive, got ${c.std}`);
  if (!Number.isInteger(c.localCrops) || c.localCrops < 0) throw bad(`localCrops must be a non-negative integer, got ${c.localCrops}`);
  for (const v of [...c.globalViews, c.localView]) {
    if (!Number.isInteger(v.size) || v.size < 1) throw bad(`a view size must be a positive integer, got ${v.size}`);
    if (!(v.scale[0] > 0 && v.scale[0] <= v.scale[1])) throw bad(`scale must satisfy 0 < lo ≤ hi, got [${v.scale}]`);
    if (!(v.ratio[0] > 0 && v.ratio[0] <= v.ratio[1])) throw bad(`ratio must satisfy 0 < lo ≤ hi, got [${v.ratio}]`);
    if (!(v.blurSigma[0] > 0 && v.blurSigma[0] <= v.blurSigma[1])) throw bad(`blurSigma must satisfy 0 < lo ≤ hi, got [${v.blurSigma}]`);
    if (!Number.isInteger(v.blurKernelSize) || v.blurKernelSize < 1 || v.blurKernelSize % 2 === 0)
      throw bad(`blurKernelSize must be a positive odd integer, got ${v.blurKernelSize}`);
  }
  if (c.globalViews.some((v) => v.size !== c.globalViews[0].size)) throw bad("all global views must have the same size");
}

/** A batch of views. Shapes: globals [G, B, 1, S, S], locals [L, B, 1, s, s], crop-major, normalised. */
export interface MultiCropBatch {
  readonly globals: Float32Array;
  readonly locals: Float32Array;
  readonly globalShape: readonly [number, number, 1, number, number];
  readonly localShape: readonly [number, number, 1, number, number];
}

/**
 * The views of the images `indices` of `data`. Deterministic in `seed`: view v of batch position
 * b draws from its own stream `mixSeeds(seed, b, v)` (globals v = 0..G−1, locals v = G..G+L−1),
 * so changing L leaves the global views unchanged. Use a fresh seed per step, e.g.
 * `mixSeeds(runSeed, step)`.
 */
export function multiCropBatch(data: ImageDataset, indices: ArrayLike<number>, seed: number, config: MultiCropConfig): MultiCropBatch {
  const B = indices.length;
  const G = config.globalViews.length;
  const L = config.localCrops;
  const S = config.globalViews[0].size;
  const s = config.localView.size;
  const imageSize = data.height * data.width;
  for (let b = 0; b < B; b++) {
    const i = indices[b];
    if (!Number.isInteger(i) || i < 0 || i >= data.count)
      throw new ArgumentError("multiCropBatch", `indices[${b}] = ${i} is not an image index (the dataset holds ${data.count} images)`);
  }
  const globals = new Float32Array(G * B * S * S);
  const locals = new Float32Array(L * B * s * s);
  const scratch = viewScratch(Math.max(data.height, data.width), Math.max(S, s));
  const one = (spec: ViewSpec, b: number, view: number, out: Float32Array, offset: number) => {
    const params = sampleViewParams(data.height, data.width, spec, createRng(mixSeeds(seed, b, view)));
    renderView(data.images, indices[b] * imageSize, data.width, spec, params, out, offset, scratch);
  };
  for (let b = 0; b < B; b++) {
    for (let g = 0; g < G; g++) one(config.globalViews[g], b, g, globals, (g * B + b) * S * S);
    for (let l = 0; l < L; l++) one(config.localView, b, G + l, locals, (l * B + b) * s * s);
  }
  const inv = 1 / config.std;
  for (const a of [globals, locals]) for (let k = 0; k < a.length; k++) a[k] = (a[k] - config.mean) * inv;
  return { globals, locals, globalShape: [G, B, 1, S, S], localShape: [L, B, 1, s, s] };
}
