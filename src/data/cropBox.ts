/**
 * Random resized crop boxes, as torchvision's `RandomResizedCrop.get_params`: up to 10 attempts
 * at a box with area fraction ~ U(scale) and log aspect ratio ~ U(log ratio), each side rounded
 * half-to-even (Python's `round`), accepted if it fits; otherwise a center crop whose aspect
 * ratio is clamped into `ratio`.
 */
import type { Rng } from "./rng.js";

/** A crop box in pixels: rows [top, top+height), columns [left, left+width). */
export interface CropBox {
  readonly top: number;
  readonly left: number;
  readonly height: number;
  readonly width: number;
}

/** Python 3's `round`: halves go to the even neighbour. */
export function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** torchvision's fallback: the largest centred box with aspect ratio (w/h) clamped into `ratio`. */
export function centerCropBox(height: number, width: number, ratio: readonly [number, number]): CropBox {
  const inRatio = width / height;
  const [lo, hi] = [Math.min(...ratio), Math.max(...ratio)];
  let w = width;
  let h = height;
  // At least one pixel per side: torchvision would produce an empty crop (and fail) on tiny images with extreme ratios.
  if (inRatio < lo) h = Math.max(1, Math.min(height, roundHalfEven(w / lo)));
  else if (inRatio > hi) w = Math.max(1, Math.min(width, roundHalfEven(h * hi)));
  return { top: Math.floor((height - h) / 2), left: Math.floor((width - w) / 2), height: h, width: w };
}

/** A random crop box of a height×width image (torchvision semantics, `attempts` tries then the center crop). */
export function sampleCropBox(
  height: number,
  width: number,
  scale: readonly [number, number],
  ratio: readonly [number, number],
  rng: Rng,
  attempts = 10,
): CropBox {
  const area = height * width;
  const [logLo, logHi] = [Math.log(ratio[0]), Math.log(ratio[1])];
  for (let k = 0; k < attempts; k++) {
    const target = area * rng.uniform(scale[0], scale[1]);
    const aspect = Math.exp(rng.uniform(logLo, logHi));
    const w = roundHalfEven(Math.sqrt(target * aspect));
    const h = roundHalfEven(Math.sqrt(target / aspect));
    if (w > 0 && w <= width && h > 0 && h <= height) return { top: rng.int(0, height - h), left: rng.int(0, width - w), height: h, width: w };
  }
  return centerCropBox(height, width, ratio);
}
