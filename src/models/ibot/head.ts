/**
 * The iBOT head (spec §1.3): a token-wise 3-layer MLP with GELU, an L2-normalised bottleneck and a
 * weight-normalised prototype layer. With norm_last_layer the prototype norms are frozen at 1, so
 * logits are cosines between the bottleneck and each prototype. One prototype matrix serves
 * [CLS] and patch tokens (the shared head of the README recipes).
 */
import { gelu, l2Normalize, linear, matmul, reshape, split, type Tensor } from "../../dsl/index.js";
import { initLinear, initTorchDefault } from "../init.js";
import type { LinearParams } from "../vit.js";

/** The head's sizes: input D, MLP hidden width, bottleneck width and K prototypes (iBOT's in_dim, hidden_dim, bottleneck_dim, out_dim). */
export interface HeadConfig {
  readonly inDim: number;
  readonly hiddenDim: number;
  readonly bottleneckDim: number;
  readonly outDim: number;
}

/** The head's weights: three MLP linears ([in, out]) and the prototype directions. */
export interface HeadParams {
  readonly mlp1: LinearParams;
  readonly mlp2: LinearParams;
  readonly mlp3: LinearParams;
  /** Prototype directions v, laid out [bottleneck, K] (PyTorch's weight_v transposed). */
  readonly lastLayer: { readonly v: Tensor };
}

/** Fresh head parameters as iBOT initialises them: trunc_normal(0.02) MLP, PyTorch's Linear default for the prototypes. */
export function initHead(key: Tensor, cfg: HeadConfig): HeadParams {
  const [k1, k2, k3, k4] = split(key, 4);
  return {
    mlp1: initLinear(k1, cfg.inDim, cfg.hiddenDim),
    mlp2: initLinear(k2, cfg.hiddenDim, cfg.hiddenDim),
    mlp3: initLinear(k3, cfg.hiddenDim, cfg.bottleneckDim),
    // weight_v keeps PyTorch's default Linear init (created after _init_weights ran).
    lastLayer: { v: initTorchDefault(k4, cfg.bottleneckDim, cfg.outDim).w },
  };
}

/** The head's MLP and L2-normalised bottleneck: [..., D] → z [..., bottleneck], ‖z‖ = 1. */
export function bottleneck(x: Tensor, p: HeadParams): Tensor {
  return l2Normalize(linear(gelu(linear(gelu(linear(x, p.mlp1.w, p.mlp1.b)), p.mlp2.w, p.mlp2.b)), p.mlp3.w, p.mlp3.b), -1);
}

/** Cosines between bottleneck vectors z [..., bottleneck] and the unit-norm prototypes: logits [..., K]. */
export function prototypeLogits(z: Tensor, p: HeadParams): Tensor {
  const prototypes = l2Normalize(p.lastLayer.v, 0); // g ≡ 1: unit-norm columns
  const flat = reshape(z, [-1, z.shape[z.rank - 1]]);
  return reshape(matmul(flat, prototypes), [...z.shape.slice(0, -1), prototypes.shape[1]]);
}

/** Token-wise head: [..., D] → logits [..., K]. */
export const head = (x: Tensor, p: HeadParams): Tensor => prototypeLogits(bottleneck(x, p), p);
