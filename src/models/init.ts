/** Parameter initialisation as in the official ViT: trunc_normal(0.02) linears, unit LayerNorms, PyTorch's conv default for the patch embedding. */
import { full, mul, split, truncatedNormal, uniform, zeros, type Shape, type Tensor } from "../dsl/index.js";
import type { BlockParams, LinearParams, NormParams, ViTConfig, ViTParams } from "./vit.js";
import { patchCount, patchDim } from "./vit.js";

/** trunc_normal_(std) with PyTorch's absolute bounds ±2 (i.e. ±2/std standard deviations). */
export const truncNormal = (key: Tensor, shape: Shape, std = 0.02): Tensor => mul(truncatedNormal(key, shape, -2 / std, 2 / std), std);

/** A linear layer [fanIn, fanOut] with truncNormal(0.02) weights and a zero bias (none when `bias` is false). */
export const initLinear = (key: Tensor, fanIn: number, fanOut: number, bias = true): LinearParams =>
  bias ? { w: truncNormal(key, [fanIn, fanOut]), b: zeros([fanOut]) } : { w: truncNormal(key, [fanIn, fanOut]) };

/** A LayerNorm of width `d`: scale 1, shift 0. */
export const initNorm = (d: number): NormParams => ({ g: full([d], 1), b: zeros([d]) });

/** PyTorch's default Linear/Conv init (kaiming_uniform, a = √5): U(±1/√fan_in) for weight and bias. */
export function initTorchDefault(key: Tensor, fanIn: number, fanOut: number): LinearParams {
  const [kw, kb] = split(key);
  const bound = 1 / Math.sqrt(fanIn);
  return { w: uniform(kw, [fanIn, fanOut], -bound, bound), b: uniform(kb, [fanOut], -bound, bound) };
}

/** Fresh parameters of one transformer block (linears from initLinear, unit norms), from one key. */
export function initBlock(key: Tensor, cfg: ViTConfig): BlockParams {
  const d = cfg.width;
  const hidden = d * cfg.mlpRatio;
  const [k1, k2, k3, k4] = split(key, 4);
  return {
    norm1: initNorm(d),
    qkv: initLinear(k1, d, 3 * d, cfg.qkvBias),
    proj: initLinear(k2, d, d),
    norm2: initNorm(d),
    fc1: initLinear(k3, d, hidden),
    fc2: initLinear(k4, hidden, d),
  };
}

/** Fresh ViT parameters as a graph of the key (evaluate it on any backend). */
export function initViT(key: Tensor, cfg: ViTConfig): ViTParams {
  const ks = split(key, 3 + cfg.depth);
  const n = patchCount(cfg);
  return {
    patchEmbed: initTorchDefault(ks[0], patchDim(cfg), cfg.width),
    clsToken: truncNormal(ks[1], [1, 1, cfg.width]),
    posEmbed: truncNormal(ks[2], [1, 1 + n, cfg.width]),
    blocks: Array.from({ length: cfg.depth }, (_, i) => initBlock(ks[3 + i], cfg)),
    norm: initNorm(cfg.width),
  };
}
