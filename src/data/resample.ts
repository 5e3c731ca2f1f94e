/**
 * Crop-and-resize of a byte image into floats in [0, 1], by separable convolution with PIL's
 * resampling filters (what torchvision's `resized_crop` runs on PIL images): the filter support
 * widens by the scale factor when shrinking (antialiasing), and weights are renormalised at the
 * crop's edges. With a crop equal to the image and the same output size, it is the identity.
 * A horizontal flip is folded in by reversing the column taps.
 */
import type { CropBox } from "./cropBox.js";

/** The resampling filter: PIL's BILINEAR (triangle, support 1) or BICUBIC (Keys a = −0.5, support 2). */
export type Interpolation = "bilinear" | "bicubic";

const FILTERS: Record<Interpolation, { readonly support: number; readonly f: (x: number) => number }> = {
  bilinear: { support: 1, f: (x) => Math.max(0, 1 - Math.abs(x)) },
  bicubic: {
    support: 2,
    f: (x) => {
      const a = -0.5;
      const t = Math.abs(x);
      if (t < 1) return ((a + 2) * t - (a + 3)) * t * t + 1;
      if (t < 2) return (((t - 5) * t + 8) * t - 4) * a;
      return 0;
    },
  },
};

/** For each output index, the first input index and `taps` weights (zero-padded); inputs are absolute indices. */
export interface Taps {
  readonly start: Int32Array;
  readonly weights: Float32Array;
  readonly taps: number;
}

/** PIL's `precompute_coeffs` for resizing the input range [inStart, inStart+inLength) to `outSize` samples. */
export function resampleTaps(inStart: number, inLength: number, outSize: number, interpolation: Interpolation): Taps {
  const { support: base, f } = FILTERS[interpolation];
  const scale = inLength / outSize;
  const filterScale = Math.max(scale, 1);
  const support = base * filterScale;
  const taps = Math.ceil(support) * 2 + 1;
  const start = new Int32Array(outSize);
  const weights = new Float32Array(outSize * taps);
  for (let o = 0; o < outSize; o++) {
    const center = (o + 0.5) * scale;
    const lo = Math.max(0, Math.trunc(center - support + 0.5));
    const hi = Math.min(inLength, Math.trunc(center + support + 0.5));
    let total = 0;
    for (let x = lo; x < hi; x++) total += f((x - center + 0.5) / filterScale);
    for (let x = lo; x < hi; x++) weights[o * taps + x - lo] = total !== 0 ? f((x - center + 0.5) / filterScale) / total : 0;
    start[o] = inStart + lo;
  }
  return { start, weights, taps };
}

/** Reverses the output order of taps (a horizontal flip of the result). */
function reversed(t: Taps): Taps {
  const n = t.start.length;
  const start = new Int32Array(n);
  const weights = new Float32Array(t.weights.length);
  for (let o = 0; o < n; o++) {
    start[o] = t.start[n - 1 - o];
    weights.set(t.weights.subarray((n - 1 - o) * t.taps, (n - o) * t.taps), o * t.taps);
  }
  return { start, weights, taps: t.taps };
}

/**
 * Writes the crop `box` of the height×width byte image at `src[srcOffset...]`, resized to
 * outSize×outSize (flipped left-right if `flip`), as floats pixel/255 clamped to [0, 1], into
 * `out[outOffset...]`. `scratch` must hold at least box.height·outSize floats.
 */
export function resizedCrop(
  src: Uint8Array,
  srcOffset: number,
  width: number,
  box: CropBox,
  outSize: number,
  flip: boolean,
  interpolation: Interpolation,
  out: Float32Array,
  outOffset: number,
  scratch: Float32Array,
): void {
  const colTaps = resampleTaps(box.left, box.width, outSize, interpolation);
  const cols = flip ? reversed(colTaps) : colTaps;
  const rows = resampleTaps(box.top, box.height, outSize, interpolation);
  // Horizontal pass over the crop's rows: scratch[r - top][x].
  for (let r = 0; r < box.height; r++) {
    const rowBase = srcOffset + (box.top + r) * width;
    for (let x = 0; x < outSize; x++) {
      const s = rowBase + cols.start[x];
      const wb = x * cols.taps;
      let acc = 0;
      for (let k = 0; k < cols.taps; k++) {
        const wk = cols.weights[wb + k];
        if (wk !== 0) acc += wk * src[s + k];
      }
      scratch[r * outSize + x] = acc;
    }
  }
  // Vertical pass.
  for (let y = 0; y < outSize; y++) {
    const r0 = rows.start[y] - box.top;
    const wb = y * rows.taps;
    const o = outOffset + y * outSize;
    for (let x = 0; x < outSize; x++) out[o + x] = 0;
    for (let k = 0; k < rows.taps; k++) {
      const wk = rows.weights[wb + k];
      if (wk === 0) continue;
      const srow = (r0 + k) * outSize;
      for (let x = 0; x < outSize; x++) out[o + x] += wk * scratch[srow + x];
    }
    for (let x = 0; x < outSize; x++) out[o + x] = Math.min(1, Math.max(0, out[o + x] / 255));
  }
}
