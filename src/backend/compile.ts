/**
 * compile(f, specs) traces a function of tensor pytrees once and returns an executable that runs
 * it on host values; evaluate(f, ...args) does both in one call.
 */
import {
  ArgumentError, describeValue, dtypeOfData, flatten, isNestedList, leafPaths, mapTree, nestedList, spec, trace, unflatten, type MapLeaves,
  type NestedNumbers, type Tensor, type TensorSpec, type Tree, type TreeDef,
} from "../dsl/index.js";
import { CpuProgram } from "./cpu/executable.js";
import type { GpuArray } from "./webgpu/array.js";
import { GpuContext } from "./webgpu/device.js";
import { compileWebGpu, type GpuExecutable, type WebGpuCompileOptions } from "./webgpu/compiler.js";
import { HostTensor, hostTensor, isHostInput, toHostData, type HostInput } from "./host.js";

/** Backends that compile graphs by name. A WebGPU backend is a device: `backend: await webgpu()`. */
export type BackendName = "cpu";

export interface CompileOptions {
  /** Where to run; "cpu" is the float32/float64 reference interpreter. */
  readonly backend?: BackendName;
}

/** Compiling for a WebGPU device (from `webgpu()` or `acquireDevice()`). */
export interface GpuCompileOptions extends WebGpuCompileOptions {
  readonly backend: GpuContext;
}

/** The run-time arguments of a GPU executable: host values or GpuArrays already on the device. */
export type GpuArgs<S extends readonly unknown[]> = { -readonly [K in keyof S]: MapLeaves<S[K], TensorSpec, HostInput | GpuArray> };
/** A GPU run's results: GpuArrays that stay on the device until read. */
export type GpuResult<R> = MapLeaves<R, Tensor, GpuArray>;

/** A compiled function on a WebGPU device; see GpuExecutable for inspection (wgsl, stats). */
export type TypedGpuExecutable<S extends readonly unknown[], R> = Omit<GpuExecutable, "run"> & {
  run(...args: GpuArgs<S>): GpuResult<R>;
};

/** The run-time arguments for argument specs `S`: each spec leaf becomes a host value. */
export type HostArgs<S extends readonly unknown[]> = { -readonly [K in keyof S]: MapLeaves<S[K], TensorSpec, HostInput> };
/** The results for outputs `R`: each tensor leaf becomes a HostTensor. */
export type HostResult<R> = MapLeaves<R, Tensor, HostTensor>;

/** A compiled function: call `run` with host values shaped like the specs it was compiled for. */
export interface Executable<S extends readonly unknown[], R> {
  run(...args: HostArgs<S>): HostResult<R>;
  /** The traced graph (inputs, outputs and their tree structures). */
  readonly graph: ReturnType<typeof trace>;
  /** Primitive evaluations per run. */
  readonly nodeCount: number;
}

/** The function shape compile and evaluate accept: pytrees of tensors in, a pytree of tensors out. */
export type Traceable<S extends readonly unknown[], R> = (...args: { -readonly [K in keyof S]: MapLeaves<S[K], TensorSpec, Tensor> }) => R;

/**
 * Traces `f` on placeholders shaped by `specs` (one pytree of `spec(shape, dtype)` per argument)
 * and compiles the graph for a backend.
 */
// Argument and result trees are checked when traced (their leaves must be specs and tensors), not by
// the type system: interfaces of tensors, which users write for their parameters, lack the index
// signature a recursive Tree type demands.
export function compile<const S extends readonly unknown[], R>(f: Traceable<S, R>, specs: S, opts?: CompileOptions): Executable<S, R>;
export function compile<const S extends readonly unknown[], R>(f: Traceable<S, R>, specs: S, opts: GpuCompileOptions): TypedGpuExecutable<S, R>;
export function compile(f: (...a: never[]) => Tree<Tensor>, specs: readonly Tree<TensorSpec>[], opts: CompileOptions | GpuCompileOptions = {}): unknown {
  if (opts.backend instanceof GpuContext) return compileWebGpu(trace(f, specs, "compile"), opts.backend, opts as GpuCompileOptions);
  return compileUntyped(f, specs, opts as CompileOptions);
}

function compileUntyped(f: (...a: never[]) => Tree<Tensor>, specs: readonly Tree<TensorSpec>[], opts: CompileOptions) {
  const backend = opts.backend ?? "cpu";
  if (backend !== "cpu") throw new ArgumentError("compile", `unknown backend "${String(backend)}"; use "cpu" or a WebGPU device from webgpu()`);
  const graph = trace(f, specs, "compile");
  const program = new CpuProgram(graph);
  const run = (...args: unknown[]): Tree<HostTensor> => {
    const flat = flattenArgs(args, graph.inputDefs, graph.inputs);
    const out = program.run(flat).map((d, i) => new HostTensor(d, graph.outputs[i].shape, graph.outputs[i].dtype));
    return unflatten(graph.outputDef, out);
  };
  return { graph, nodeCount: program.nodeCount, run };
}

/** Flattens run-time arguments, checking structure, shapes and dtypes, and naming the culprit. */
function flattenArgs(args: readonly unknown[], defs: readonly TreeDef[], inputs: readonly Tensor[]) {
  if (args.length !== defs.length) throw new ArgumentError("run", `expected ${defs.length} arguments, got ${args.length}`);
  const flat = [];
  let k = 0;
  for (let a = 0; a < args.length; a++) {
    const { leaves, def } = flatten(args[a], isHostInput, HOST_ARRAY, { op: "run", root: `argument ${a}` });
    const differs = structureDifference(def, defs[a], `argument ${a}`);
    if (differs) throw new ArgumentError("run", `${differs}: pass the structure it was compiled with`);
    const paths = leafPaths(defs[a], `argument ${a}`);
    for (let i = 0; i < leaves.length; i++, k++) flat.push(toHostData(leaves[i], inputs[k].shape, inputs[k].dtype, paths[i]));
  }
  return flat;
}

/** Where a run-time tree (a) departs from the compiled one (b), in words; undefined where they agree. */
function structureDifference(a: TreeDef, b: TreeDef, path: string): string | undefined {
  const what = (d: TreeDef) => (d.kind === "leaf" ? "an array" : d.kind === "array" ? `a list of ${d.children.length}` : `an object with keys {${d.keys.join(", ")}}`);
  if (a.kind === "leaf" && b.kind === "leaf") return undefined;
  if (a.kind === "leaf" || b.kind === "leaf" || a.kind !== b.kind || a.children.length !== b.children.length) return `${path} is ${what(a)}, compiled with ${what(b)}`;
  if (a.kind === "object" && b.kind === "object" && a.keys.some((k, i) => k !== b.keys[i])) return `${path} is ${what(a)}, compiled with ${what(b)}`;
  for (let i = 0; i < a.children.length; i++) {
    const d = structureDifference(a.children[i], b.children[i], b.kind === "object" ? `${path}.${b.keys[i]}` : `${path}[${i}]`);
    if (d) return d;
  }
  return undefined;
}

/** The spec a host value stands for (plain number arrays are taken as f32 vectors). */
function specOfHost(x: HostInput) {
  if (x instanceof HostTensor) return spec(x.shape, x.dtype);
  if (typeof x === "number") return spec([], "f32");
  if (ArrayBuffer.isView(x)) return spec([x.length], dtypeOfData(x));
  return spec([x.length], "f32");
}

/** What a run takes for one leaf, as errors name it. */
const HOST_ARRAY = "host array (a typed array, a list of numbers, a number or a HostTensor)";

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
  if (typeof f !== "function") throw new ArgumentError("evaluate", `the first argument must be the function to evaluate, got ${describeValue(f)}: call evaluate(f, ...values)`);
  if (args.length === 0 && f.length > 0)
    throw new ArgumentError("evaluate", `the function takes ${f.length} argument${f.length > 1 ? "s" : ""} but no values were given: pass them after it, evaluate(f, x, ...)`);
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
    return unflatten(def, leaves.map((l, k) => evaluateLeaf(l, paths[k])));
  });
  const specs = values.map((v) => mapTree(v, isHostInput, specOfHost));
  return compileUntyped(f as (...a: never[]) => Tree<Tensor>, specs, {}).run(...values) as HostResult<R>;
}

