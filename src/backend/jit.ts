/**
 * jit(f): compile on first use, keyed by what the values look like. Each call takes the specs of
 * its arguments from the values themselves (shapes, dtypes, tree structure), compiles `f` for
 * them on the backend the first time those specs are seen, and runs the cached executable after.
 */
import { flatten, spec, unflatten, type MapLeaves, type Tensor, type TensorSpec, type Tree } from "../dsl/index.js";
import { compile, specOfHost, type AnyCompileOptions, type CompileOptions, type DeviceArray, type Executable, type GpuCompileOptions } from "./compile.js";
import { isHostInput, type HostInput, type HostTensor } from "./host.js";
import { GpuArray } from "./webgpu/array.js";

/** The values a jitted function takes for its parameter types `P`: each tensor leaf a host value or an array `A`. */
export type JitArgs<P extends readonly unknown[], A> = { -readonly [K in keyof P]: MapLeaves<P[K], Tensor, HostInput | A> };

/** A jitted function: call it with values; `lower` gives the executable for those values' specs. */
export interface Jitted<P extends readonly unknown[], R, A extends DeviceArray> {
  (...args: JitArgs<P, A>): MapLeaves<R, Tensor, A>;
  /** The executable these values' specs compile to (compiled now if it is not cached yet). */
  lower(...args: JitArgs<P, A>): Executable<readonly TensorSpecTree[], R, A>;
  /** How many executables the cache holds (one per distinct argument specs seen). */
  readonly cacheSize: number;
  /** Frees every cached executable (their device buffers and pipelines); later calls compile again. */
  clear(): void;
}

type TensorSpecTree = Tree<TensorSpec>;

const isJitLeaf = (x: unknown): x is HostInput | GpuArray => x instanceof GpuArray || isHostInput(x);

/** The specs of one argument's values, and a key naming them (structure, shapes and dtypes). */
function specsOfValue(x: unknown, i: number): { specs: TensorSpecTree; key: string } {
  const { leaves, def } = flatten(x, isJitLeaf, "host array or GpuArray", { op: "jit", root: `argument ${i}` });
  const specs = leaves.map((l) => (l instanceof GpuArray ? spec(l.shape, l.dtype) : specOfHost(l)));
  return { specs: unflatten(def, specs), key: JSON.stringify([def, specs.map((s) => [s.shape, s.dtype])]) };
}

/**
 * `jit(f, { backend })` is `f` compiled for each distinct set of argument specs it is called
 * with, on that backend (the CPU by default), cached: the first call with new shapes or dtypes
 * traces and compiles, later ones only run. Numbers are f32 scalars and number lists f32 vectors,
 * as in `evaluate`; pass HostTensors for anything else. Donation (`donate`) applies per call.
 */
export function jit<P extends readonly unknown[], R>(f: (...args: P) => R, opts?: CompileOptions): Jitted<P, R, HostTensor>;
export function jit<P extends readonly unknown[], R>(f: (...args: P) => R, opts: GpuCompileOptions): Jitted<P, R, GpuArray>;
export function jit<P extends readonly unknown[], R>(f: (...args: P) => R, opts: AnyCompileOptions): Jitted<P, R, DeviceArray>;
export function jit(f: (...args: never[]) => unknown, opts: AnyCompileOptions = {}): unknown {
  const cache = new Map<string, Executable<readonly TensorSpecTree[], unknown>>();
  const lower = (...args: readonly unknown[]) => {
    const parts = args.map(specsOfValue);
    const key = parts.map((p) => p.key).join("|");
    let exe = cache.get(key);
    if (!exe) {
      const g = f as unknown as (...a: Tree<Tensor>[]) => Tree<Tensor>;
      exe = compile(g, parts.map((p) => p.specs) as readonly TensorSpecTree[], opts) as unknown as Executable<readonly TensorSpecTree[], unknown>;
      cache.set(key, exe);
    }
    return exe;
  };
  const run = (...args: readonly unknown[]) => (lower(...args).run as (...a: readonly unknown[]) => unknown)(...args);
  const clear = () => {
    for (const e of cache.values()) e.dispose();
    cache.clear();
  };
  // A getter, not a copied value: Object.assign would read cache.size once.
  return Object.defineProperties(run, {
    lower: { value: lower },
    clear: { value: clear },
    cacheSize: { get: () => cache.size },
  });
}
