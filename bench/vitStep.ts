/**
 * The benchmark ViT training step of the WebGPU issue: batch 64 of 28×28×1 images, patch 4,
 * width 96, depth 4, 3 heads, MLP 384, a linear head on [CLS] to 10 classes, softmax
 * cross-entropy, forward + backward + Adam on all 455 050 parameters.
 */
import * as w from "../src/internals.js";
import type { Tensor, ViTConfig, ViTParams } from "../src/internals.js";

export const BENCH_VIT: ViTConfig = { imageSize: 28, channels: 1, patchSize: 4, width: 96, depth: 4, heads: 3, mlpRatio: 4, qkvBias: true };
export const BATCH = 64;

export interface Model {
  readonly vit: ViTParams;
  readonly head: { readonly w: Tensor; readonly b: Tensor };
}

export const initModel = (key: Tensor): Model => {
  const [k1, k2] = w.split(key);
  return { vit: w.initViT(k1, BENCH_VIT), head: w.initLinear(k2, BENCH_VIT.width, 10) as { w: Tensor; b: Tensor } };
};

export function loss(p: Model, images: Tensor, labels: Tensor): Tensor {
  const tokens = w.vit(images, p.vit, BENCH_VIT);
  const cls = w.reshape(w.sliceAxis(tokens, 1, 0, 1), [images.shape[0], BENCH_VIT.width]);
  return w.mean(w.crossEntropy(w.linear(cls, p.head.w, p.head.b), labels));
}

/** One Adam step: (params, state, step, images, labels) → new params, state and the loss. */
export function trainStep(p: Model, s: w.AdamState<Model>, step: Tensor, images: Tensor, labels: Tensor) {
  const [l, g] = w.valueAndGrad(loss)(p, images, labels);
  const next = w.adamw(p, g, s, { lr: 1e-3, step });
  return { params: next.params, state: next.state, loss: l };
}

/** Specs of the step's arguments, from a parameter tree's shapes. */
export function stepSpecs(p: Model) {
  const ps = w.specsOf(p);
  return [ps, { m: ps, v: ps }, w.spec([]), w.spec([BATCH, 1, BENCH_VIT.imageSize, BENCH_VIT.imageSize]), w.spec([BATCH], "i32")] as const;
}

export const paramCount = (p: Model): number => w.flatten(p, w.isTensor).leaves.reduce((a, t) => a + t.size, 0);
