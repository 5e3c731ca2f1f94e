/**
 * Photometric augmentations of one grayscale image held as floats in [0, 1], in place, with
 * torchvision's tensor semantics (results clamped to [0, 1], no rounding to bytes between steps).
 */

/** ColorJitter's brightness: v ← clamp(f·v). */
export function adjustBrightness(buf: Float32Array, offset: number, n: number, factor: number): void {
  for (let i = offset; i < offset + n; i++) buf[i] = Math.min(1, Math.max(0, buf[i] * factor));
}

/** ColorJitter's contrast for a grayscale image: blend with the image mean, v ← clamp(f·v + (1 − f)·mean). */
export function adjustContrast(buf: Float32Array, offset: number, n: number, factor: number): void {
  let s = 0;
  for (let i = offset; i < offset + n; i++) s += buf[i];
  const m = (1 - factor) * (s / n);
  for (let i = offset; i < offset + n; i++) buf[i] = Math.min(1, Math.max(0, factor * buf[i] + m));
}

/** PIL's `ImageOps.solarize` on the [0, 1] scale: values ≥ threshold (128/255 by default) become 1 − v. */
export function solarize(buf: Float32Array, offset: number, n: number, threshold = 128 / 255): void {
  const t = Math.fround(threshold); // compare in float32, where the pixels live: byte 128 stays ≥ 128/255
  for (let i = offset; i < offset + n; i++) if (buf[i] >= t) buf[i] = 1 - buf[i];
}

/** A normalised, odd-sized 1-D Gaussian kernel exp(−x²/2σ²) for x = −r..r, r = (size − 1)/2. */
export function gaussianKernel(sigma: number, size: number): Float32Array {
  if (size < 1 || size % 2 === 0) throw new RangeError(`gaussianKernel: size must be a positive odd integer, got ${size}`);
  const r = (size - 1) / 2;
  const k = new Float32Array(size);
  let total = 0;
  for (let x = -r; x <= r; x++) total += Math.exp(-(x * x) / (2 * sigma * sigma));
  for (let x = -r; x <= r; x++) k[x + r] = Math.exp(-(x * x) / (2 * sigma * sigma)) / total;
  return k;
}

/**
 * Separable Gaussian blur of the size×size image at `buf[offset...]` with `kernel`, replicating
 * edge pixels (as PIL's blur does). `scratch` must hold size·size floats.
 */
export function gaussianBlur(buf: Float32Array, offset: number, size: number, kernel: Float32Array, scratch: Float32Array): void {
  const r = (kernel.length - 1) / 2;
  const clampIdx = (i: number) => (i < 0 ? 0 : i >= size ? size - 1 : i);
  for (let y = 0; y < size; y++) {
    const row = offset + y * size;
    for (let x = 0; x < size; x++) {
      let acc = 0;
      for (let k = -r; k <= r; k++) acc += kernel[k + r] * buf[row + clampIdx(x + k)];
      scratch[y * size + x] = acc;
    }
  }
  for (let y = 0; y < size; y++)
    for (let x = 0; x < size; x++) {
      let acc = 0;
      for (let k = -r; k <= r; k++) acc += kernel[k + r] * scratch[clampIdx(y + k) * size + x];
      buf[offset + y * size + x] = acc;
    }
}
