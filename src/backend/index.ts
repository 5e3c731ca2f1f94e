export { HostTensor, hostTensor, toHostData, isHostInput, type HostInput } from "./host.js";
export {
  compile,
  evaluate,
  resolveDumpDir,
  specsOf,
  treeSize,
  type AnyCompileOptions,
  type BackendName,
  type CompileOptions,
  type DeviceArray,
  type Executable,
  type HostArgs,
  type HostResult,
  type KernelTime,
  type RunArgs,
  type RunResult,
  type Traceable,
} from "./compile.js";
export { CpuProgram } from "./cpu/executable.js";
export { threefry2x32 } from "./cpu/threefry.js";
export { type GpuCompileOptions, type GpuArgs, type GpuResult, type GpuExecutableOf } from "./compile.js";
export { jit, type Jitted, type JitArgs } from "./jit.js";
export { GpuArray } from "./webgpu/array.js";
export { GpuContext, DeviceError, acquireDevice, webgpu, lavapipeThreadCount, NO_ADAPTER_HELP, type WebGpuOptions } from "./webgpu/device.js";
export { compileWebGpu, type WebGpuCompileOptions } from "./webgpu/compiler.js";
export { GpuExecutable, type ExecutableStats } from "./webgpu/executable.js";
export { defaultMatmul, defaultMatmulFor, type MatmulTuning, type Target } from "./webgpu/target.js";
export type { MatmulParams } from "./webgpu/templates.js";
export {
  autotune,
  tuningOf,
  interleavedMedians,
  MATMUL_CANDIDATES,
  matmulCandidates,
  SUBGROUP_MATMUL_CANDIDATES,
  TILED_MATMUL_CANDIDATES,
  type TuneResult,
} from "./webgpu/autotune.js";
