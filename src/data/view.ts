/**
 * One augmented view (crop) of a grayscale image, as in the official `DataAugmentationiBOT`
 * (spec §6) with one channel: RandomResizedCrop → HorizontalFlip → RandomApply(brightness/contrast
 * jitter) → GaussianBlur(p) → Solarize(p). (RandomGrayscale is the identity on one channel and
 * is left out.) Randomness is drawn once into `ViewParams` (`sampleViewParams`); rendering is
 * a deterministic function of the image and the parameters (`renderView`).
 */
import { sampleCropBox, type CropBox } from "./cropBox.js";
import { adjustBrightness, adjustContrast, gaussianBlur, gaussianKernel, solarize } from "./photometric.js";
import { resizedCrop, type Interpolation } from "./resample.js";
import type { Rng } from "./rng.js";

/** How one kind of view is made. Probabilities are per view. */
export interface ViewSpec {
  /** Output side in pixels (the view is size×size). */
  readonly size: number;
  /** Area fraction of the crop, drawn uniformly. */
  readonly scale: readonly [number, number];
  /** Aspect ratio w/h of the crop, drawn log-uniformly. */
  readonly ratio: readonly [number, number];
  readonly interpolation: Interpolation;
  readonly flipP: number;
  /** Probability of applying the jitter (RandomApply). */
  readonly jitterP: number;
  /** Brightness factor ~ U(1 − brightness, 1 + brightness), multiplies. */
  readonly brightness: number;
  /** Contrast factor ~ U(1 − contrast, 1 + contrast), blends with the image mean. */
  readonly contrast: number;
  readonly blurP: number;
  /** σ of the Gaussian blur in output pixels, drawn uniformly. */
  readonly blurSigma: readonly [number, number];
  /** Odd kernel size of the blur. */
  readonly blurKernelSize: number;
  readonly solarizeP: number;
  /** Solarize threshold on the [0, 1] scale (PIL's 128 is 128/255). */
  readonly solarizeThreshold: number;
}

/** Everything random about one view. `jitter: null` and `blurSigma: null` mean "not applied". */
export interface ViewParams {
  readonly box: CropBox;
  readonly flip: boolean;
  readonly jitter: { readonly brightness: number; readonly contrast: number; readonly brightnessFirst: boolean } | null;
  readonly blurSigma: number | null;
  readonly solarize: boolean;
}

/** Draws a view's parameters for a height×width image, in the order the official pipeline applies them. */
export function sampleViewParams(height: number, width: number, spec: ViewSpec, rng: Rng): ViewParams {
  const box = sampleCropBox(height, width, spec.scale, spec.ratio, rng);
  const flip = rng.bernoulli(spec.flipP);
  // ColorJitter applies its transforms in a random order; with only brightness and contrast, one coin.
  const jitter = rng.bernoulli(spec.jitterP)
    ? {
        brightnessFirst: rng.bernoulli(0.5),
        brightness: rng.uniform(Math.max(0, 1 - spec.brightness), 1 + spec.brightness),
        contrast: rng.uniform(Math.max(0, 1 - spec.contrast), 1 + spec.contrast),
      }
    : null;
  const blurSigma = rng.bernoulli(spec.blurP) ? rng.uniform(spec.blurSigma[0], spec.blurSigma[1]) : null;
  const solarizeIt = rng.bernoulli(spec.solarizeP);
  return { box, flip, jitter, blurSigma, solarize: solarizeIt };
}

/** Floats a renderer needs besides its output; reuse one across views to avoid allocation. */
export const viewScratch = (maxImageSide: number, maxViewSize: number): Float32Array => new Float32Array(Math.max(maxImageSide, maxViewSize) * maxViewSize);

/**
 * Renders the view with `params` of the height×width byte image at `image[imageOffset...]` into
 * `out[outOffset ... + size²]` as floats in [0, 1] (not normalised). `scratch`: see `viewScratch`.
 */
export function renderView(
  image: Uint8Array,
  imageOffset: number,
  width: number,
  spec: ViewSpec,
  params: ViewParams,
  out: Float32Array,
  outOffset: number,
  scratch: Float32Array,
): void {
  const n = spec.size * spec.size;
  resizedCrop(image, imageOffset, width, params.box, spec.size, params.flip, spec.interpolation, out, outOffset, scratch);
  const j = params.jitter;
  if (j) {
    if (j.brightnessFirst) adjustBrightness(out, outOffset, n, j.brightness);
    adjustContrast(out, outOffset, n, j.contrast);
    if (!j.brightnessFirst) adjustBrightness(out, outOffset, n, j.brightness);
  }
  if (params.blurSigma !== null) gaussianBlur(out, outOffset, spec.size, gaussianKernel(params.blurSigma, spec.blurKernelSize), scratch);
  if (params.solarize) solarize(out, outOffset, n, spec.solarizeThreshold);
}
