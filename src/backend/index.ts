export { HostTensor, hostTensor, toHostData, isHostInput, type HostInput } from "./host.js";
export { compile, evaluate, type BackendName, type CompileOptions, type Executable, type HostArgs, type HostResult, type Traceable } from "./compile.js";
export { CpuProgram } from "./cpu/executable.js";
export { threefry2x32 } from "./cpu/threefry.js";
export { type GpuCompileOptions, type GpuArgs, type GpuResult, type TypedGpuExecutable } from "./compile.js";
export { GpuArray } from "./webgpu/array.js";
export { GpuContext, DeviceError, acquireDevice, webgpu, NO_ADAPTER_HELP, type WebGpuOptions } from "./webgpu/device.js";
export { GpuExecutable, compileWebGpu, type ExecutableStats, type WebGpuCompileOptions } from "./webgpu/compiler.js";
export type { MatmulParams } from "./webgpu/templates.js";
