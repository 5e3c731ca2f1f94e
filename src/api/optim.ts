/**
 * `optim`: optimizers as pure functions of parameter trees. `adamw` is AdamW with PyTorch's
 * semantics as one function of parameters, gradients and state; the rest is a kit in optax's
 * spirit: gradient transformations (sgd, adam, clipping, weight decay with mask trees) composed
 * with `chain`, and schedules in steps that run on the host or inside the compiled graph.
 */
export { adamInit, adamw, type AdamState, type AdamHyper } from "../models/optim.js";
export {
  identity,
  scale,
  scaleByLearningRate,
  momentum,
  scaleByAdam,
  addDecayedWeights,
  rankMask,
  globalNorm,
  clipByGlobalNorm,
  chain,
  applyUpdates,
  sgd,
  adam,
  adamwTransform,
  constantSchedule,
  linearSchedule,
  cosineDecay,
  warmupCosine,
  type GradientTransformation,
  type TransformResult,
  type StateKind,
  type StateFor,
  type StateOf,
  type FixedKind,
  type EmptyState,
  type CountState,
  type MomentumState,
  type MomentumKind,
  type ScaleByAdamState,
  type ScaleByAdamKind,
  type ChainKind,
  type Mask,
  type ScheduleLike,
  type Schedule,
  type AdamOptions,
  type AdamWOptions,
  type SgdOptions,
} from "../models/optax.js";
