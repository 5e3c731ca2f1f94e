/** wgrad/testing: gradient checks and fast-check arbitraries for users' own properties. */
export {
  assertGradProperty,
  checkGrads,
  CHECK_GRADS_DEFAULTS,
  GradientCheckError,
  gradProperty,
  hostRng,
  type CheckGradsOptions,
  type GradientCheckDetails,
} from "./checkGrads.js";
export { arbShape, arbBroadcastShapes, arbTensor, arbShapedTensor, type ShapeOptions, type TensorOptions } from "./arbitraries.js";
export {
  arbGraph,
  COMPOSITES,
  CONTINUOUS_OPS,
  GENERATORS,
  RANDOM_OPS,
  type CoveredElsewhere,
  type GraphOptions,
  type OpGenerator,
  type RandomGraph,
} from "./graphs.js";
