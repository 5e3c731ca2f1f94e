/**
 * The WebGPU compiler, as its stages in order: checks → simplify → plan ⇄ codegen → memory plan
 * (liveness, pool, donation) → in-place aliases → executable. Data types pass between the stages:
 * a Graph, a KernelPlan with its Generated kernels, a BufferPlan, KernelSources; only the last
 * stage touches the device.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ArgumentError, checkClosed, Tensor, topoSort, type Graph } from "../../dsl/index.js";
import { codegen, type Generated } from "./codegen.js";
import type { GpuContext } from "./device.js";
import { leafArguments } from "../args.js";
import { GpuExecutable } from "./executable.js";
import { matmulClass, type MatmulClass } from "./matmulClass.js";
import { checkBufferLimits, graphBuffers, kernelBuffers, planBuffers } from "./memory.js";
import { planAndGenerate, type KernelPlan } from "./plan.js";
import { schedule } from "./schedule.js";
import { simplify } from "./simplify.js";
import { makeTarget, type MatmulTuning, type Target } from "./target.js";
import { named, type KernelSource, type MatmulParams } from "./templates.js";

/** Options of a WebGPU compile: donated arguments, matmul tiles or tuning, a WGSL dump folder, fusion on or off. All optional. */
export interface WebGpuCompileOptions {
  /** Arguments whose GpuArrays this executable may consume: an output of the same size reuses the buffer (in-place updates). */
  readonly donate?: readonly number[];
  /** Matmul tile parameters for every matmul (by default the tuning's choice for the shape class, or the adapter's default). */
  readonly matmul?: MatmulParams;
  /** The autotuner's tile choices by matmul shape class (`tuningOf(await autotune(...))`); none by default. */
  readonly tuning?: MatmulTuning;
  /** A folder to write every kernel's WGSL into, one file a kernel (`WGRAD_DUMP_WGSL` at the public `compile`). */
  readonly dumpWgsl?: string;
  /** false: one kernel per primitive, for measuring what fusion buys. Default true. */
  readonly fusion?: boolean;
  /**
   * Whether a matmul stores an elementwise consumer fused after it (bias + GELU in one kernel).
   * Default true. false makes every matmul a plain one, which on lavapipe share pipelines across
   * sizes: the default iBOT step's cold first step fell by another 1-5 s, its steady step rose by
   * 6-12% (BENCHMARKS.md).
   */
  readonly matmulEpilogues?: boolean;
}

/** Outputs that are inputs, constants or repeated get an identity node, so each output has a kernel writing it. */
function ownOutputs(outputs: readonly Tensor[]): Tensor[] {
  const seen = new Set<Tensor>();
  return outputs.map((o) => {
    const copy = o.prim === "input" || o.prim === "constant" || seen.has(o);
    seen.add(o);
    return copy ? new Tensor("reshape", { shape: o.shape }, [o], o.shape, o.dtype) : o;
  });
}

/** The Target a compile generates for: the device's facts and limits, and the tiles chosen for it. */
export function targetOf(ctx: GpuContext, opts: Pick<WebGpuCompileOptions, "matmul" | "tuning" | "matmulEpilogues"> = {}): Target {
  return makeTarget(ctx, ctx.limits, opts.tuning ?? new Map(), opts.matmul, opts.matmulEpilogues);
}

/** The matmul shape classes a graph compiles to (as scheduled, so layouts are the real ones). */
export function matmulClasses(graph: Graph): MatmulClass[] {
  const s = simplify(graph.inputs, graph.outputs);
  const sched = schedule(s.inputs, ownOutputs(s.outputs), new Set());
  const seen = new Map<string, MatmulClass>();
  for (const n of sched.order)
    if (n.prim === "matmul") {
      const c = matmulClass(n, (x) => sched.materialized.has(x));
      seen.set(c.key, c);
    }
  return [...seen.values()];
}

/** Refused before any device work: a destroyed device, a tensor of another trace (as on the CPU), buffers over the device's limits, f64. */
function check(graph: Graph, ctx: GpuContext): void {
  ctx.checkAlive("compile");
  checkClosed(graph);
  checkBufferLimits(ctx, graphBuffers(graph));
  for (const n of [...graph.inputs, ...graph.outputs])
    if (n.dtype === "f64")
      throw new ArgumentError("compile", `webgpu: ${n} is f64; the GPU runs f32 (f64 exists for CPU gradient checks). Cast or use f32 specs`);
}

/** Refuses f64 computed inside the graph (inputs and outputs were checked before simplifying). */
function checkNoF64(inputs: readonly Tensor[], outputs: readonly Tensor[]): void {
  for (const n of schedule(inputs, outputs, new Set()).order)
    if (n.dtype === "f64") throw new ArgumentError("compile", `webgpu: ${n.prim} computes f64; the GPU runs f32`);
}

/** Each generated kernel named after what it fuses (k12_matmul_add_erf_mul), with its in-place alias where the memory plan made one. */
function nameKernels(p: KernelPlan, generated: readonly Generated[], aliases: ReadonlyMap<number, Tensor>, target: Target): KernelSource[] {
  return generated.map((gen, i) => {
    const alias = aliases.get(i);
    const again = alias ? codegen(p, gen.kernel, target, alias) : gen;
    if (again.refused) throw new Error(`webgpu: internal error: kernel ${i} refused its in-place alias`);
    return named(again.body, `k${i}_${gen.fused.join("_")}`, gen.kernel.core ?? gen.kernel.root);
  });
}

function dumpWgsl(dir: string, kernels: readonly KernelSource[]): void {
  mkdirSync(dir, { recursive: true });
  for (const k of kernels) writeFileSync(join(dir, `${k.name}.wgsl`), k.wgsl);
}

/** Compiles a traced graph for a WebGPU device. */
export function compileWebGpu(graph: Graph, ctx: GpuContext, opts: WebGpuCompileOptions = {}): GpuExecutable {
  check(graph, ctx);
  const target = targetOf(ctx, opts);
  const s = simplify(graph.inputs, graph.outputs);
  const outputs = ownOutputs(s.outputs);
  checkNoF64(s.inputs, outputs);
  const everything = opts.fusion === false ? new Set(topoSort(outputs).filter((n) => !(n.prim === "constant" && n.size === 1))) : new Set<Tensor>();
  const { plan, kernels: generated } = planAndGenerate(s.inputs, outputs, target, everything);
  const donate = opts.donate ?? [];
  const argOfLeaf = leafArguments(graph.inputDefs);
  const buffers = planBuffers(
    generated.map((k) => k.body),
    s.inputs,
    outputs,
    (leaf) => donate.includes(argOfLeaf[leaf]),
  );
  const kernels = nameKernels(plan, generated, buffers.aliases, target);
  checkBufferLimits(ctx, kernelBuffers(kernels)); // intermediates and constants, known once scheduled
  if (opts.dumpWgsl) dumpWgsl(opts.dumpWgsl, kernels);
  return new GpuExecutable(ctx, graph, s.inputs, outputs, kernels, buffers);
}
