/**
 * compile(f, specs, { backend }) traces a function of tensor pytrees once and returns an
 * Executable for the CPU reference interpreter or a WebGPU device; evaluate(f, ...args) traces,
 * compiles for the CPU and runs in one call.
 */
import {
  ArgumentError,
  describeValue,
  dtypeOfData,
  flatten,
  isNestedList,
  isTensor,
  leafPaths,
  mapTree,
  nestedList,
  spec,
  trace,
  unflatten,
  type Graph,
  type HostData,
  type MapLeaves,
  type NestedNumbers,
  type Tensor,
  type TensorSpec,
  type Tree,
} from "../dsl/index.js";
import { flattenArgs } from "./args.js";
import { CpuProgram, hostBytes } from "./cpu/executable.js";
import { GpuArray } from "./webgpu/array.js";
import { GpuContext } from "./webgpu/device.js";
import { compileWebGpu, type WebGpuCompileOptions } from "./webgpu/compiler.js";
import type { ExecutableStats, GpuExecutable } from "./webgpu/executable.js";
import { HostTensor, hostTensor, isHostInput, toHostData, type HostInput } from "./host.js";

/** Backends that compile graphs by name. A WebGPU backend is a device: `backend: await webgpu()`. */
export type BackendName = "cpu";

/** What a run returns for each output: a HostTensor on the CPU, a GpuArray on a WebGPU device. Both read back with `await a.toArray()` or `toHost()` and free with `dispose()`. */
export type DeviceArray = HostTensor | GpuArray;

/** The run-time arguments for argument specs `S`: each spec leaf a host value or an array `A` of this backend. */
export type RunArgs<S extends readonly unknown[], A = DeviceArray> = { -readonly [K in keyof S]: MapLeaves<S[K], TensorSpec, HostInput | A> };
/** A run's results for outputs `R`: each tensor leaf an array `A`. */
export type RunResult<R, A = DeviceArray> = MapLeaves<R, Tensor, A>;
/** A CPU run's arguments: a host value (HostTensor, typed array, nested list, number) for each spec leaf. */
export type HostArgs<S extends readonly unknown[]> = RunArgs<S, HostTensor>;
/** A CPU run's results for outputs `R`: a HostTensor for each tensor leaf. */
export type HostResult<R> = RunResult<R, HostTensor>;
/** A WebGPU run's arguments: a host value or a GpuArray already on the device for each spec leaf. */
export type GpuArgs<S extends readonly unknown[]> = RunArgs<S, GpuArray>;
/** A WebGPU run's results for outputs `R`: a GpuArray for each tensor leaf, which stays on the device until read. */
export type GpuResult<R> = RunResult<R, GpuArray>;

/** One kernel's (WebGPU) or one primitive evaluation's (CPU) time in a profiled run. */
export interface KernelTime {
  readonly name: string;
  readonly ms: number;
}

/**
 * A compiled function, the same type on every backend: `run` it with values shaped like the specs
 * it was compiled for; its results are arrays `A` (HostTensor on the CPU, GpuArray on WebGPU).
 */
export interface Executable<S extends readonly unknown[], R, A extends DeviceArray = DeviceArray> {
  run(...args: RunArgs<S, A>): RunResult<R, A>;
  /** "cpu", or the WebGPU device it runs on. */
  readonly backend: BackendName | GpuContext;
  /** The traced graph (inputs, outputs and their tree structures). */
  readonly graph: Graph;
  /** Kernels (primitive evaluations on the CPU) per run, and the bytes they use. */
  stats(): ExecutableStats;
  /** Every kernel's WGSL, named after the ops it fuses; empty on the CPU, which interprets the graph. */
  wgsl(): string;
  /** Runs once and times each kernel (each primitive on the CPU); donated arguments are left alone. */
  profile(...args: RunArgs<S, A>): Promise<KernelTime[]>;
  /** Frees what the executable holds on its device (nothing on the CPU). */
  dispose(): void;
}

/** A compiled function on a WebGPU device, with its kernels open to inspection. */
export type GpuExecutableOf<S extends readonly unknown[], R> = Executable<S, R, GpuArray> &
  Pick<GpuExecutable, "ctx" | "kernelNames" | "kernelInfo" | "memoryPlan">;

/** Compiling for a backend by name: the CPU reference interpreter (the default). */
export interface CompileOptions {
  /** Where to run; "cpu" (the default) is the float32/float64 reference interpreter. */
  readonly backend?: BackendName;
}

/** Compiling for a WebGPU device (from `webgpu()` or `acquireDevice()`). */
export interface GpuCompileOptions extends WebGpuCompileOptions {
  readonly backend: GpuContext;
}

/** Compiling for a backend known only at run time (`gpu ?? "cpu"`); WebGPU's options apply where it is the device. */
export interface AnyCompileOptions extends WebGpuCompileOptions {
  readonly backend?: BackendName | GpuContext;
}

/** The function shape compile and evaluate accept: pytrees of tensors in, a pytree of tensors out. */
export type Traceable<S extends readonly unknown[], R> = (...args: { -readonly [K in keyof S]: MapLeaves<S[K], TensorSpec, Tensor> }) => R;

/**
 * Traces `f` on placeholders shaped by `specs` (one pytree of `spec(shape, dtype)` per argument)
 * and compiles the graph for a backend. Every backend returns an Executable; both refuse a
 * function that closes over tensors of another trace, with the same error.
 */
// Argument and result trees are checked when traced (their leaves must be specs and tensors), not by
// the type system: interfaces of tensors, which users write for their parameters, lack the index
// signature a recursive Tree type demands.
export function compile<const S extends readonly unknown[], R>(f: Traceable<S, R>, specs: S, opts?: CompileOptions): Executable<S, R, HostTensor>;
export function compile<const S extends readonly unknown[], R>(f: Traceable<S, R>, specs: S, opts: GpuCompileOptions): GpuExecutableOf<S, R>;
export function compile<const S extends readonly unknown[], R>(f: Traceable<S, R>, specs: S, opts: AnyCompileOptions): Executable<S, R>;
export function compile(f: (...a: never[]) => Tree<Tensor>, specs: readonly Tree<TensorSpec>[], opts: AnyCompileOptions = {}): unknown {
  const backend = opts.backend ?? "cpu";
  if (backend instanceof GpuContext) {
    const dumpWgsl = resolveDumpDir(opts.dumpWgsl);
    return compileWebGpu(trace(f, specs, "compile"), backend, { ...opts, ...(dumpWgsl ? { dumpWgsl } : {}) });
  }
  if (backend !== "cpu") throw new ArgumentError("compile", `unknown backend "${String(backend)}"; use "cpu" or a WebGPU device from webgpu()`);
  return new CpuExecutable(trace(f, specs, "compile"));
}

const isArrayLeaf = (x: unknown): x is DeviceArray => x instanceof HostTensor || x instanceof GpuArray;
const isShaped = (x: unknown): x is DeviceArray | Tensor => isArrayLeaf(x) || isTensor(x);

/**
 * The specs of a tree of arrays (HostTensors or GpuArrays, as runs return them) or of tensors:
 * what `compile` needs to take values like these, typed so that the compiled function's
 * arguments keep their types (the specs of a parameter tree trace as that tree's type).
 */
export function specsOf<T>(tree: T): MapLeaves<T, DeviceArray | Tensor, TensorSpec> {
  return mapTree(tree as Tree<DeviceArray | Tensor>, isShaped, (t) => spec(t.shape, t.dtype)) as MapLeaves<T, DeviceArray | Tensor, TensorSpec>;
}

/** How many values a tree of arrays holds (a parameter count, for a tree of parameters). */
export const treeSize = (tree: unknown): number => flatten(tree, isArrayLeaf).leaves.reduce((a, t) => a + t.size, 0);

/** Where a WebGPU compile writes each kernel's WGSL: the `dumpWgsl` option, else the WGRAD_DUMP_WGSL environment variable. */
export const resolveDumpDir = (explicit: string | undefined, env: NodeJS.ProcessEnv = process.env): string | undefined => explicit ?? env.WGRAD_DUMP_WGSL;

/** What a CPU run takes for one leaf, as errors name it. */
const HOST_ARRAY = "host array (a typed array, a list of numbers, a number or a HostTensor)";

/** A graph on the CPU reference interpreter, behind the Executable interface. */
class CpuExecutable {
  readonly backend = "cpu";
  private readonly program: CpuProgram;

  constructor(readonly graph: Graph) {
    this.program = new CpuProgram(graph);
  }

  /** Primitive evaluations per run. */
  get nodeCount(): number {
    return this.program.nodeCount;
  }

  run(...args: unknown[]): Tree<HostTensor> {
    return this.results(this.program.run(this.flat(args)));
  }

  async profile(...args: unknown[]): Promise<KernelTime[]> {
    const times: KernelTime[] = [];
    this.program.run(this.flat(args), (n, ms) => times.push({ name: `n${times.length}_${n.prim}`, ms }));
    return times;
  }

  stats(): ExecutableStats {
    const { graph, program } = this;
    const total = (ns: readonly Tensor[]) => ns.reduce((a, n) => a + hostBytes(n), 0);
    const constants = program.evaluated.filter((n) => n.prim === "constant");
    return {
      kernels: program.evaluated.length,
      pipelines: 0,
      plannedBytes: 0,
      peakBytes: program.peakBytes,
      constantBytes: total(constants),
      outputBytes: total(graph.outputs),
    };
  }

  wgsl(): string {
    return "";
  }

  dispose(): void {}

  /** Flattens and checks the arguments: structure, then each leaf's shape and dtype, naming the culprit. */
  private flat(args: readonly unknown[]): HostData[] {
    const { leaves, paths } = flattenArgs(args, this.graph.inputDefs, isCpuLeaf, HOST_ARRAY);
    const inputs = this.graph.inputs;
    return leaves.map((l, k) => {
      if (l instanceof GpuArray)
        throw new ArgumentError(
          "run",
          `${paths[k]} is a GpuArray on a WebGPU device, and this executable runs on the CPU: pass \`await x.toHost()\`, or compile for that device`,
        );
      return toHostData(l, inputs[k].shape, inputs[k].dtype, paths[k]);
    });
  }

  private results(out: readonly HostData[]): Tree<HostTensor> {
    const { outputs, outputDef } = this.graph;
    return unflatten(
      outputDef,
      out.map((d, i) => new HostTensor(d, outputs[i].shape, outputs[i].dtype)),
    );
  }
}

const isCpuLeaf = (x: unknown): x is HostInput | GpuArray => x instanceof GpuArray || isHostInput(x);

/** The spec a host value stands for (plain number arrays are taken as f32 vectors). */
export function specOfHost(x: HostInput) {
  if (x instanceof HostTensor) return spec(x.shape, x.dtype);
  if (typeof x === "number") return spec([], "f32");
  if (ArrayBuffer.isView(x)) return spec([x.length], dtypeOfData(x));
  return spec([x.length], "f32");
}

const isEvaluateLeaf = (x: unknown): x is HostInput | readonly NestedNumbers[] => isHostInput(x) || isNestedList(x);

/** A leaf given to evaluate as a host value: nested number lists become f32 HostTensors of their shape (ragged ones are a ShapeError naming the row). */
function evaluateLeaf(x: HostInput | readonly NestedNumbers[], path: string): HostInput {
  if (!isNestedList(x)) return x;
  const { shape, values } = nestedList("evaluate", x, path);
  return hostTensor(values, shape, "f32");
}

/**
 * evaluate's own mistakes, named before anything is traced: no function (`evaluate()`), a value
 * where the function goes, or a function of arguments called with no values.
 */
function checkEvaluate(f: unknown, args: readonly unknown[]): void {
  if (typeof f !== "function")
    throw new ArgumentError("evaluate", `the first argument must be the function to evaluate, got ${describeValue(f)}: call evaluate(f, ...values)`);
  if (args.length === 0 && f.length > 0)
    throw new ArgumentError(
      "evaluate",
      `the function takes ${f.length} argument${f.length > 1 ? "s" : ""} but no values were given: pass them after it, evaluate(f, x, ...)`,
    );
}

/**
 * Evaluates `f` on host values in one call (traces, compiles for the CPU, runs). Specs come from
 * the values: numbers and number lists are f32 scalars and vectors, nested number lists f32
 * tensors of their shape ([[1, 2], [3, 4]] is [2, 2]), typed arrays vectors of their dtype;
 * give HostTensors for anything else.
 */
export function evaluate<R>(f: (...args: never[]) => R, ...args: readonly Tree<HostInput>[]): HostResult<R> {
  checkEvaluate(f, args);
  const values = args.map((a, i) => {
    const { leaves, def } = flatten(a, isEvaluateLeaf, HOST_ARRAY, { op: "evaluate", root: `argument ${i}` });
    const paths = leafPaths(def, `argument ${i}`);
    return unflatten(
      def,
      leaves.map((l, k) => evaluateLeaf(l, paths[k])),
    );
  });
  const specs = values.map((v) => mapTree(v, isHostInput, specOfHost));
  return new CpuExecutable(trace(f as (...a: never[]) => Tree<Tensor>, specs, "compile")).run(...values) as HostResult<R>;
}
