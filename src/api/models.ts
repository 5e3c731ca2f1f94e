/**
 * `models`: the ViT, iBOT (student, EMA teacher, heads, losses, masks, schedules, the whole
 * training step) and the VQ tokenizer variant, as pure functions of parameter trees.
 */
export {
  vit,
  block,
  patchify,
  patchify1d,
  embedPatches,
  addClsAndPositions,
  gridSize,
  patchCount,
  patchDim,
  LN_EPS,
  type ViTConfig,
  type ViTParams,
  type BlockParams,
  type LinearParams,
  type NormParams,
} from "../models/vit.js";
export { initViT, initBlock, initLinear, initNorm, initTorchDefault, truncNormal } from "../models/init.js";
export { initHead, head, bottleneck, prototypeLogits, type HeadConfig, type HeadParams } from "../models/ibot/head.js";
export {
  clsLoss,
  maskedPatchLoss,
  ibotLoss,
  koleoLoss,
  sinkhornKnopp,
  maskedMean,
  chunks,
  type IbotLoss,
  type IbotLossInputs,
  type IbotLossOptions,
  type TeacherTargets,
} from "../models/ibot/loss.js";
export { interpolatePosEmbed } from "../models/ibot/posembed.js";
export {
  ibotStep,
  studentLoss,
  initIbotState,
  initStudent,
  initCenters,
  teacherOf,
  teacherTokens,
  tokenLogProb,
  tokenPrediction,
  backbone,
  headOutputs,
  scheduleSpec,
  type IbotModelConfig,
  type IbotState,
  type IbotBatch,
  type IbotSchedule,
  type StudentParams,
  type TeacherParams,
  type Centers,
  type BackboneOptions,
  type StudentLossAux,
} from "../models/ibot/model.js";
export {
  maskBatch,
  blockMask,
  randomMask,
  predRatio,
  type MaskBatch,
  type MaskBatchOptions,
  type BlockMaskOptions,
  type MaskShape,
  type PredRatioOptions,
} from "../models/ibot/masking.js";
export {
  cosineScheduler,
  learningRateSchedule,
  weightDecaySchedule,
  teacherMomentumSchedule,
  teacherTempSchedule,
  teacherTempPerIteration,
  type LearningRateOptions,
  type RunLength,
} from "../models/ibot/schedules.js";
export {
  initVq,
  initVqState,
  vqPatchLoss,
  updateCodebooks,
  type VqTokenizerConfig,
  type VqParams,
  type VqState,
  type VqPatchInputs,
  type VqPatchLoss,
} from "../models/ibot/vqTokens.js";
export {
  quantize,
  vqLoss,
  squaredDistances,
  emaCodebookUpdate,
  codeUsage,
  usageOfCounts,
  type Quantized,
  type VqLossOptions,
  type EmaCodebook,
} from "../models/vq.js";
