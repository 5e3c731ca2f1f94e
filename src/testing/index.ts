/** wgrad/testing: gradient checks and fast-check arbitraries for users' own properties. */
export { checkGrads, GradientCheckError, hostRng, type CheckGradsOptions } from "./checkGrads.js";
export { arbShape, arbBroadcastShapes, arbTensor, arbShapedTensor, type ShapeOptions, type TensorOptions } from "./arbitraries.js";
export { arbGraph, RANDOM_OPS, type RandomGraph, type GraphOptions } from "./graphs.js";
