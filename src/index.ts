/**
 * wgrad: pure functional tensor graphs with static shapes, reverse-mode autodiff over pytrees,
 * and backends that compile the graphs (a CPU reference interpreter; WebGPU/WGSL).
 *
 * The public API: tensors and their ops at the top level (as jax.numpy), transformations
 * (grad, valueAndGrad, vjp, hvp), compile and the backends; namespaces for layers (`nn`),
 * random numbers (`random`), pytrees (`tree`), the optimizer (`optim`), models (`models`) and
 * the data pipeline (`data`). Gradient checks are in `wgrad/testing`; everything else, for
 * extending the library, in `wgrad/internals`.
 */

// Tensors, their types and errors.
export { Tensor, isTensor } from "./dsl/tensor.js";
export { DTYPES, isFloat, type DType, type HostData } from "./dsl/dtype.js";
export { sizeOf, broadcastShapes, type Shape } from "./dsl/shape.js";
export { WgradError, ShapeError, DTypeError, ArgumentError, attempt } from "./dsl/errors.js";
export { spec, trace, type TensorSpec, type Graph, type TensorFn, type Traced } from "./dsl/graph.js";
export type { Tree, MapLeaves } from "./dsl/pytree.js";

// The ops: leaves, elementwise, reductions, movement, matmul, and the two autodiff primitives.
export {
  constant,
  scalar,
  full,
  zeros,
  ones,
  zerosLike,
  onesLike,
  iota,
  arange,
  neg,
  exp,
  log,
  sqrt,
  tanh,
  erf,
  abs,
  sign,
  reciprocal,
  add,
  sub,
  mul,
  div,
  pow,
  maximum,
  minimum,
  atan2,
  less,
  lessEqual,
  greater,
  greaterEqual,
  equal,
  notEqual,
  where,
  cast,
  isFloating,
  sum,
  max,
  min,
  argmax,
  argmin,
  reshape,
  transpose,
  permute,
  swapAxes,
  broadcastTo,
  expandDims,
  squeeze,
  slice,
  sliceAxis,
  pad,
  concat,
  stack,
  gather,
  scatterAdd,
  matmul,
  stopGradient,
  customVjp,
  type TensorLike,
  type Axes,
  type SliceRange,
  type NestedNumbers,
  type NestedValues,
} from "./dsl/ops.js";
export { mean, variance, square, rsqrt, clip, erfinv, logicalAnd, logicalOr, logicalNot } from "./dsl/nn.js";

// Transformations.
export { grad, valueAndGrad, vjp, jvp, jacfwd, jacrev, hvp, type GradOptions, type AuxOptions } from "./autodiff/transforms.js";
export { vmap, type VmapOptions } from "./autodiff/vmap.js";

// Compiling and running.
export {
  compile,
  evaluate,
  specsOf,
  treeSize,
  type Executable,
  type GpuExecutableOf,
  type DeviceArray,
  type RunArgs,
  type RunResult,
  type HostArgs,
  type HostResult,
  type GpuArgs,
  type GpuResult,
  type KernelTime,
  type Traceable,
  type BackendName,
  type CompileOptions,
  type GpuCompileOptions,
  type AnyCompileOptions,
} from "./backend/compile.js";
export { jit, type Jitted, type JitArgs } from "./backend/jit.js";
export { HostTensor, hostTensor, type HostInput } from "./backend/host.js";
export { GpuArray } from "./backend/webgpu/array.js";
export { GpuContext, DeviceError, acquireDevice, webgpu, type WebGpuOptions } from "./backend/webgpu/device.js";
export type { WebGpuCompileOptions } from "./backend/webgpu/compiler.js";
export type { ExecutableStats } from "./backend/webgpu/executable.js";
export { autotune, tuningOf, type TuneResult } from "./backend/webgpu/autotune.js";
export type { MatmulParams } from "./backend/webgpu/templates.js";
export type { MatmulTuning } from "./backend/webgpu/target.js";

// Namespaces.
export * as nn from "./api/nn.js";
export * as random from "./api/random.js";
export * as tree from "./api/tree.js";
export * as optim from "./api/optim.js";
export * as models from "./api/models.js";
export * as data from "./api/data.js";
export * as io from "./api/io.js";
