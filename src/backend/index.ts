export { HostTensor, hostTensor, toHostData, isHostInput, type HostInput } from "./host.js";
export { compile, evaluate, type BackendName, type CompileOptions, type Executable, type HostArgs, type HostResult, type Traceable } from "./compile.js";
export { CpuProgram } from "./cpu/executable.js";
export { threefry2x32 } from "./cpu/threefry.js";
