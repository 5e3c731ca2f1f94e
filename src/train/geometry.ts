/**
 * The geometry of a pre-training run: image side and channels from the data, the patch grid and
 * the crop sizes from the config, derived here once; the model, the batch specs, the masks, the
 * features and the token pictures read it instead of restating 28 and 12.
 */
import { spec } from "../dsl/index.js";
import type { BatchSpec } from "./loop.js";

export interface Geometry {
  /** Side of the images and of the global crops, in pixels. */
  readonly size: number;
  readonly channels: number;
  readonly patch: number;
  /** Patches along a side: size / patch. */
  readonly grid: number;
  /** Patch tokens of a global crop: grid². */
  readonly tokens: number;
  /** Side of the local crops. */
  readonly localSize: number;
}

/** The images of every dataset wgrad loads (MNIST, Fashion-MNIST): 28×28 pixels, one channel. */
export const DATASET_IMAGE = { height: 28, width: 28 } as const;

/** The geometry of square images of `image`'s side cut into `patchSize` patches, with local crops of `localSize`. */
export function geometryOf(
  c: { readonly patchSize: number; readonly localSize: number },
  image: { readonly height: number; readonly width: number } = DATASET_IMAGE,
): Geometry {
  if (image.height !== image.width) throw new Error(`pretrain: the images are ${image.height}×${image.width}; the ViT takes square images`);
  const grid = image.height / c.patchSize;
  return { size: image.height, channels: 1, patch: c.patchSize, grid, tokens: grid * grid, localSize: c.localSize };
}

/** The specs of a batch of `batch` images: two global crops and `localCrops` local crops of each, and a mask per global crop. */
export function batchSpecOf(g: Geometry, batch: number, localCrops: number): BatchSpec {
  const globals = spec([2 * batch, g.channels, g.size, g.size]);
  const masks = spec([2 * batch, g.tokens]);
  return { globals, locals: spec([localCrops * batch, g.channels, g.localSize, g.localSize]), masks };
}
