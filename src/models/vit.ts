/**
 * A Vision Transformer as pure functions: parameters are a pytree of tensors, the forward pass a
 * function of them. Pre-norm blocks, exact GELU, LayerNorm eps 1e-6, a [CLS] token and learned
 * positional embeddings, as in the iBOT/DINO ViT (see ../shared/ibot-spec.md §1.1).
 */
import { add, broadcastTo, concat, layerNorm, linear, multiHeadAttention, reshape, transpose, gelu, mul, type Tensor } from "../dsl/index.js";

/** A ViT's architecture: input layout and size, patch size, width D, depth, heads, MLP ratio and qkv bias. */
export interface ViTConfig {
  /** 2 for images [B, C, H, W] (the default); 1 for series [B, C, L], patches being windows of L. */
  readonly dims?: 1 | 2;
  /** Image side, or series length when dims is 1. */
  readonly imageSize: number;
  readonly channels: number;
  readonly patchSize: number;
  readonly width: number;
  readonly depth: number;
  readonly heads: number;
  readonly mlpRatio: number;
  readonly qkvBias: boolean;
}

/** A linear layer's weights, laid out [in, out] (PyTorch's transposed), and optional bias. */
export interface LinearParams {
  readonly w: Tensor; // [in, out]
  readonly b?: Tensor; // [out]
}
/** A LayerNorm's scale `g` and shift `b`, each [D]. */
export interface NormParams {
  readonly g: Tensor;
  readonly b: Tensor;
}
/** One pre-norm transformer block: norm → attention (fused qkv, output proj) → norm → MLP (fc1, GELU, fc2), both residual. */
export interface BlockParams {
  readonly norm1: NormParams;
  readonly qkv: LinearParams;
  readonly proj: LinearParams;
  readonly norm2: NormParams;
  readonly fc1: LinearParams;
  readonly fc2: LinearParams;
}
/** A whole ViT's parameters: patch embedding, [CLS] token, positional embeddings, blocks and the final norm. */
export interface ViTParams {
  readonly patchEmbed: LinearParams; // [C·p·p, D]: a stride-p convolution as a matmul
  readonly clsToken: Tensor; // [1, 1, D]
  readonly posEmbed: Tensor; // [1, 1 + N, D]
  readonly blocks: readonly BlockParams[];
  readonly norm: NormParams;
}

/** The LayerNorm epsilon of every norm in the ViT: 1e-6, as iBOT/DINO (PyTorch's default is 1e-5). */
export const LN_EPS = 1e-6;

/** Patches along one side of an image (or along a series): imageSize / patchSize; `imageSize` overrides the config's for other crops. */
export const gridSize = (cfg: ViTConfig, imageSize = cfg.imageSize): number => imageSize / cfg.patchSize;

/** Patches of one input: grid² for images, L/p for series. */
export const patchCount = (cfg: ViTConfig): number => (cfg.dims === 1 ? gridSize(cfg) : gridSize(cfg) ** 2);

/** Values in one patch: C·p² for images, C·p for series. */
export const patchDim = (cfg: ViTConfig): number => cfg.channels * cfg.patchSize ** (cfg.dims ?? 2);

/**
 * [B, C, H, W] → [B, N, C·p·p], patches row-major over the grid, each flattened (c, y, x) like a
 * PyTorch Conv2d weight [D, C, p, p].
 */
export function patchify(images: Tensor, p: number): Tensor {
  const [b, c, h, w] = images.shape;
  const x = reshape(images, [b, c, h / p, p, w / p, p]);
  return reshape(transpose(x, [0, 2, 4, 1, 3, 5]), [b, (h / p) * (w / p), c * p * p]);
}

/** [B, C, L] → [B, L/p, C·p], each window flattened (c, t) like a PyTorch Conv1d weight [D, C, p]. */
export function patchify1d(series: Tensor, p: number): Tensor {
  const [b, c, l] = series.shape;
  return reshape(transpose(reshape(series, [b, c, l / p, p]), [0, 2, 1, 3]), [b, l / p, c * p]);
}

const norm = (x: Tensor, p: NormParams) => layerNorm(x, p.g, p.b, LN_EPS);

/** One pre-norm block: x + Attn(LN(x)), then + MLP(LN(x)). `keep` scales each branch per sample (stochastic depth). */
export function block(x: Tensor, p: BlockParams, heads: number, keep?: readonly [Tensor, Tensor]): Tensor {
  const attn = multiHeadAttention(norm(x, p.norm1), { wQkv: p.qkv.w, bQkv: p.qkv.b, wOut: p.proj.w, bOut: p.proj.b }, heads);
  const h = add(x, keep ? mul(attn, keep[0]) : attn);
  const mlp = linear(gelu(linear(norm(h, p.norm2), p.fc1.w, p.fc1.b)), p.fc2.w, p.fc2.b);
  return add(h, keep ? mul(mlp, keep[1]) : mlp);
}

/** Patch tokens [B, N, D] (before the [CLS] token and positions). */
export const embedPatches = (images: Tensor, p: ViTParams, cfg: ViTConfig): Tensor =>
  linear(cfg.dims === 1 ? patchify1d(images, cfg.patchSize) : patchify(images, cfg.patchSize), p.patchEmbed.w, p.patchEmbed.b);

/** Prepends [CLS] and adds positional embeddings: [B, N, D] → [B, 1 + N, D]. */
export function addClsAndPositions(tokens: Tensor, p: ViTParams, posEmbed: Tensor = p.posEmbed): Tensor {
  const [b, , d] = tokens.shape;
  return add(concat([broadcastTo(p.clsToken, [b, 1, d]), tokens], 1), posEmbed);
}

/** The backbone: images [B, C, H, W] → normed tokens [B, 1 + N, D], [CLS] first. */
export function vit(images: Tensor, p: ViTParams, cfg: ViTConfig): Tensor {
  let x = addClsAndPositions(embedPatches(images, p, cfg), p);
  for (const blk of p.blocks) x = block(x, blk, cfg.heads);
  return norm(x, p.norm);
}
