/** The host-side dataset types shared by the loaders, the cache and the augmentation. */

/** The datasets `loadDataset` knows. */
export type DatasetName = "fashion-mnist" | "mnist";

/**
 * Grayscale images stored as bytes: image `k` occupies `images[k·h·w, (k+1)·h·w)` row-major,
 * with values 0..255, and `labels[k]` is its class (0..9 for the bundled datasets).
 */
export interface ImageDataset {
  readonly images: Uint8Array;
  readonly labels: Uint8Array;
  readonly count: number;
  readonly height: number;
  readonly width: number;
}

/** A dataset's two splits. */
export interface DatasetSplits {
  readonly train: ImageDataset;
  readonly test: ImageDataset;
}
