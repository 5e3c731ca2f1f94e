/** `nn`: activations, normalisation, losses and layers, built from the core ops (so every one is differentiable and compiles). */
export {
  relu, sigmoid, gelu, geluTanh, softmax, logSoftmax, logSumExp, oneHot, l2Normalize, layerNorm, crossEntropy, linear,
  scaledDotProductAttention, splitHeads, mergeHeads, multiHeadAttention, type AttentionParams,
} from "../dsl/nn.js";
