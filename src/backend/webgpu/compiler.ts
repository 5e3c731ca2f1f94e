/**
 * graph -> simplify -> schedule (fusion) -> WGSL kernels -> memory plan -> executable. A run
 * encodes every dispatch into one command encoder and submits once; nothing is read back unless
 * the caller asks (`await out.toArray()`).
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ArgumentError, checkClosed, flatten, Tensor, topoSort, unflatten, type Graph, type Tree, type TreeDef } from "../../dsl/index.js";
import { isHostInput, toHostData, type HostInput } from "../host.js";
import { GpuArray, toGpuLayout } from "./array.js";
import type { GpuContext } from "./device.js";
import { KernelGen } from "./gen.js";
import { inlineRule, needsKernel } from "./lower.js";
import { bytesOf, checkBufferLimits, graphBuffers, kernelBuffers, planMemory, type MemoryPlan } from "./memory.js";
import { inlinedTree, leavesOf, schedule, type Schedule } from "./schedule.js";
import { simplify } from "./simplify.js";
import { matmulVec4Kernel, operandLayout, vec4Applicable } from "./matmulVec4.js";
import { matmulTiledKernel, tiledApplicable } from "./matmulTiled.js";
import { PipelineCache } from "./pipelineCache.js";
import { DEFAULT_MATMUL, elementwiseKernel, fitColumns, matmulKernel, reduceKernel, scatterKernel, threadPerOutput, type KernelSource, type MatmulParams } from "./templates.js";

export interface WebGpuCompileOptions {
  /** Arguments whose GpuArrays this executable may consume: an output of the same size reuses the buffer (in-place updates). */
  readonly donate?: readonly number[];
  /** Matmul tile parameters (by default the autotuner's choice for the shape class, or a default). */
  readonly matmul?: MatmulParams;
  /** false: one kernel per primitive, for measuring what fusion buys. Default true. */
  readonly fusion?: boolean;
}

/** What an executable costs: kernels per run and planned memory. */
export interface ExecutableStats {
  /** Kernels dispatched per run. */
  readonly kernels: number;
  /** Distinct compute pipelines among them (kernels that differ only in name share one). */
  readonly pipelines: number;
  /** Bytes of the intermediate pool, allocated once and reused by every run. */
  readonly plannedBytes: number;
  /** Most bytes of intermediates alive at one point of a run. */
  readonly peakBytes: number;
  /** Bytes of constants uploaded at compile time. */
  readonly constantBytes: number;
  /** Bytes of outputs a run allocates (less what donation saves). */
  readonly outputBytes: number;
}

interface Kernel {
  readonly src: KernelSource;
  /** Its pipeline's key in the device's PipelineCache, released when the executable is disposed. */
  readonly key: string;
  readonly pipeline: GPUComputePipeline;
  readonly layout: GPUBindGroupLayout;
  /**
   * The bind group of the last run and the buffers it binds. A training step that donates its
   * parameters binds the same buffers every run; remaking ~400 bind groups cost 10-30 ms a step.
   */
  last?: { buffers: GPUBuffer[]; group: GPUBindGroup };
}

/** Unused pipelines a device keeps for later compiles (PipelineCache); about 0.65 MiB each on lavapipe. */
export const IDLE_PIPELINES = 128;
const pipelineCaches = new WeakMap<GpuContext, PipelineCache>();

/**
 * The pipeline cache key of a kernel: its WGSL without the name comment, so that kernels that
 * differ only in name (the same layer repeated, Adam on parameters of one shape) share a pipeline.
 * Lavapipe keeps at most 1024 compiled shaders and recompiles what it evicts, so a step that
 * dispatches more distinct ones than that compiles on every run.
 */
const pipelineKey = (wgsl: string, name: string) => (wgsl.startsWith(`// ${name}\n`) ? wgsl.slice(name.length + 4) : wgsl);

function pipelinesOf(ctx: GpuContext): PipelineCache {
  let cache = pipelineCaches.get(ctx);
  if (!cache) pipelineCaches.set(ctx, (cache = new PipelineCache(IDLE_PIPELINES)));
  return cache;
}

/** Pipelines the device's cache holds, in use or idle (for tests and leak checks). */
export const heldPipelines = (ctx: GpuContext): number => pipelinesOf(ctx).size;

function acquirePipeline(ctx: GpuContext, key: string, name: string): GPUComputePipeline {
  return pipelinesOf(ctx).acquire(key, () => {
    const module = ctx.device.createShaderModule({ code: key, label: name });
    return ctx.device.createComputePipeline({ layout: "auto", compute: { module, entryPoint: "main" }, label: name });
  });
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

interface Generated {
  sched: Schedule;
  kernels: KernelSource[];
}

/**
 * Generates every kernel, materialising more nodes when a kernel would exceed the binding limit,
 * and giving up an epilogue fusion when the epilogue reads its core at another element.
 */
function generate(
  inputs: readonly Tensor[],
  outputs: readonly Tensor[],
  ctx: GpuContext,
  mm: MatmulParams | undefined,
  materialize: ReadonlySet<Tensor>,
): Generated {
  const maxBindings = ctx.limits.maxStorageBuffersPerShaderStage;
  const extra = new Set<Tensor>(materialize);
  const noFuse = new Set<Tensor>();
  const outSet = new Set(outputs);
  attempt: for (;;) {
    const sched = schedule(inputs, outputs, extra);
    const ids = new Map(sched.order.map((n, i) => [n, i]));
    // Epilogue fusion: an elementwise root absorbs the reduction or matmul it is the only consumer of.
    const coreOf = new Map<Tensor, Tensor>();
    const fusedAway = new Set<Tensor>();
    const readers = new Map<Tensor, Tensor[]>();
    const leaves = new Map(sched.roots.map((r) => [r, leavesOf(r, sched.materialized)]));
    for (const [r, ls] of leaves) for (const l of ls) readers.set(l, [...(readers.get(l) ?? []), r]);
    for (const r of sched.roots) {
      if (needsKernel(r)) continue;
      for (const c of leaves.get(r)!) {
        const kind = c.prim === "matmul" || ((c.prim === "sum" || c.prim === "max") && threadPerOutput(c, ctx.cpu));
        if (kind && !outSet.has(c) && !noFuse.has(c) && !fusedAway.has(c) && c.size === r.size && readers.get(c)!.length === 1) {
          coreOf.set(r, c);
          fusedAway.add(c);
          break;
        }
      }
    }
    const kernels: KernelSource[] = [];
    for (const r of sched.roots) {
      if (fusedAway.has(r)) continue;
      const core = coreOf.get(r);
      const k = core ?? r;
      const g = new KernelGen(ids, (n) => sched.materialized.has(n) && n !== core && n !== r, inlineRule);
      let src: KernelSource;
      try {
        if (k.prim === "matmul") {
          const isMat = (n: Tensor) => sched.materialized.has(n) && n !== core && n !== r;
          // The forced, tuned or default tiles (in workgroup memory where they have a depth bk); 4×4
          // vec4 blocks where those do not fit (a subgroup kernel needs rows in multiples of its
          // lanes); the scalar template where no vec4 kernel does.
          const want = mm ?? ctx.matmulChoices.get(matmulClass(k, isMat).key) ?? ctx.defaultMatmulFor(k.shape[k.rank - 1]);
          const p = [want, DEFAULT_MATMUL].find((q) => vec4Applicable(k, q, isMat, ctx.subgroupSize));
          if (tiledApplicable(k, want, ctx.limits)) src = matmulTiledKernel(g, k, r, "__NAME__", want, isMat);
          else if (p) src = matmulVec4Kernel(g, k, r, "__NAME__", p, isMat);
          else src = matmulKernel(g, k, r, "__NAME__", mm && !mm.subgroup && !mm.bk ? mm : scalarTiles(k, ctx));
        }
        else if (k.prim === "scatterAdd") src = scatterKernel(g, k, "__NAME__");
        else if (needsKernel(k)) src = reduceKernel(g, k, r, "__NAME__", ctx.cpu);
        else src = elementwiseKernel(g, r, "__NAME__");
      } catch (e) {
        if (!core) throw e;
        noFuse.add(core); // the epilogue reads its core at another element: two kernels then
        continue attempt;
      }
      if (src.reads.length + 1 > maxBindings) {
        extra.add(widestInlined(r, sched));
        continue attempt;
      }
      // Named after what it fuses, e.g. k12_matmul_add_erf_mul.
      const name = `k${kernels.length}_${[k.prim, ...g.fused.filter((p) => p !== k.prim)].join("_")}`;
      kernels.push({ ...src, name, wgsl: src.wgsl.replace("__NAME__", name), core: k });
    }
    return { sched, kernels };
  }
}

/** The inlined node whose materialisation removes the most bindings from a kernel. */
function widestInlined(root: Tensor, sched: Schedule): Tensor {
  let best: Tensor | null = null;
  let most = 0;
  for (const n of inlinedTree(root, sched.materialized)) {
    if (n === root) continue;
    const k = leavesOf(n, sched.materialized).size;
    if (k > most) [best, most] = [n, k];
  }
  if (!best) throw new ArgumentError("compile", `a kernel for ${root.prim} needs more storage bindings than the device allows`);
  return best;
}

/** A matmul's shape class: what the autotuner times and caches a tile choice for. */
export interface MatmulClass {
  readonly key: string;
  readonly batch: number;
  readonly m: number;
  readonly n: number;
  readonly k: number;
  readonly transA: boolean;
  readonly transB: boolean;
}

function matmulClass(k: Tensor, isMat: (n: Tensor) => boolean): MatmulClass {
  const [a, b] = k.inputs;
  const [m, n] = k.shape.slice(-2);
  const kk = a.shape[a.rank - 1];
  const batch = k.size / (m * n);
  const transA = operandLayout(a, isMat)?.transposed ?? false;
  const transB = operandLayout(b, isMat)?.transposed ?? false;
  return { key: `${batch}x${m}x${kk}x${n}${transA ? "T" : "N"}${transB ? "T" : "N"}`, batch, m, n, k: kk, transA, transB };
}

/** The matmul shape classes a graph compiles to (as scheduled, so layouts are the real ones). */
export function matmulClasses(graph: Graph): MatmulClass[] {
  const s = simplify(graph.inputs, graph.outputs);
  const sched = schedule(s.inputs, ownOutputs(s.outputs), new Set());
  const seen = new Map<string, MatmulClass>();
  for (const n of sched.order) if (n.prim === "matmul") {
    const c = matmulClass(n, (x) => sched.materialized.has(x));
    seen.set(c.key, c);
  }
  return [...seen.values()];
}

/** Tile parameters for the scalar template: a 4×4 register block where the output is large enough, smaller otherwise. */
function scalarTiles(n: Tensor, ctx: GpuContext): MatmulParams {
  const [M, N] = n.shape.slice(-2);
  // On CPU adapters, rows shared by subgroup broadcast (as in the vec4 kernel): 3-5× faster there.
  if (ctx.cpu && ctx.subgroupSize >= 8) return fitColumns({ tm: M <= 8 ? 8 : 16, tn: Math.min(4, N), wx: 16, wy: 1, subgroup: 8 }, N);
  return { tm: Math.min(4, M), tn: Math.min(4, N), wx: 8, wy: 8 };
}

/** A compiled graph on a WebGPU device. */
export class GpuExecutable {
  private readonly kernels: Kernel[];
  private readonly plan: MemoryPlan;
  private readonly pool: GPUBuffer[];
  private readonly constants = new Map<Tensor, GPUBuffer>();
  private readonly uploads = new Map<number, GPUBuffer>();
  private readonly donation = new Map<number, number>(); // output index -> input index
  private disposedFlag = false;
  private readonly paths: string[];

  constructor(
    readonly ctx: GpuContext,
    readonly graph: Graph,
    private readonly inputs: readonly Tensor[],
    private readonly outputs: readonly Tensor[],
    gen: Generated,
    donate: readonly number[],
  ) {
    this.paths = leafPaths(graph.inputDefs);
    const sources = [...gen.kernels];
    // Liveness: who writes each value and who reads it last.
    const writer = new Map<Tensor, number>();
    const lastRead = new Map<Tensor, number>();
    sources.forEach((k, i) => {
      writer.set(k.output, i);
      for (const r of k.reads) lastRead.set(r, i);
    });
    const outSet = new Set(outputs);
    const intermediates = [...writer.keys()].filter((n) => !outSet.has(n));
    this.plan = planMemory(intermediates, writer, lastRead);
    // Donation: an output takes a donated input's buffer when nothing reads the input after the
    // output's kernel starts, or that kernel's threads read it only at the elements they write
    // (then the kernel reads it through its output binding: one buffer, bound once).
    const donatedLeaves = new Set<number>();
    const argOfLeaf = leafArguments(graph.inputDefs);
    outputs.forEach((o, oi) => {
      const w = writer.get(o)!;
      const k = sources[w];
      const li = inputs.findIndex(
        (inp, l) =>
          donate.includes(argOfLeaf[l]) &&
          !donatedLeaves.has(l) &&
          inp.dtype === o.dtype &&
          inp.size === o.size &&
          ((lastRead.get(inp) ?? -1) < w || ((lastRead.get(inp) ?? -1) === w && [...(k.readKeys.get(inp) ?? [])].every((key) => k.storeKeys.has(key)))),
      );
      if (li < 0) return;
      donatedLeaves.add(li);
      this.donation.set(oi, li);
      const b = k.reads.indexOf(inputs[li]);
      if (b >= 0 && lastRead.get(inputs[li]) === w) {
        const wgsl = k.wgsl
          .split("\n")
          .filter((l) => !l.startsWith(`@group(0) @binding(${b}) `))
          .join("\n")
          .replaceAll(`in${b}[`, "out[");
        sources[w] = { ...k, wgsl, aliased: b };
      }
    });
    this.kernels = sources.map((src) => {
      const key = pipelineKey(src.wgsl, src.name);
      const pipeline = acquirePipeline(ctx, key, src.name);
      return { src, key, pipeline, layout: pipeline.getBindGroupLayout(0) };
    });
    const dump = process.env.WGRAD_DUMP_WGSL;
    if (dump) {
      mkdirSync(dump, { recursive: true });
      for (const k of this.kernels) writeFileSync(join(dump, `${k.src.name}.wgsl`), k.src.wgsl);
    }
    this.pool = this.plan.slots.map((sz, i) => ctx.createBuffer(sz, GPUBufferUsage.STORAGE, `pool${i}`));
    for (const k of this.kernels)
      for (const r of k.src.reads)
        if (r.prim === "constant" && !this.constants.has(r)) {
          const buf = ctx.createBuffer(bytesOf(r), GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST, "constant");
          ctx.device.queue.writeBuffer(buf, 0, toGpuLayout((r.params as { data: Float32Array }).data, r.dtype));
          this.constants.set(r, buf);
        }
    ctx.checkErrors();
  }

  /** Runs on GpuArrays or host values shaped like the specs; returns GpuArrays in the output's structure. */
  run(...args: unknown[]): Tree<GpuArray> {
    const bound = this.bind(args);
    const enc = this.ctx.device.createCommandEncoder();
    const pass = enc.beginComputePass();
    for (const k of this.kernels) this.dispatch(pass, k, bound.bufOf);
    pass.end();
    this.ctx.device.queue.submit([enc.finish()]);
    return bound.finish();
  }

  /**
   * Checks and uploads the arguments and assigns every value of the run a buffer. With
   * `keepDonated` (profile), a donated GpuArray argument is copied first and the run updates the
   * copy, so the caller's array stays alive and unchanged.
   */
  private bind(args: readonly unknown[], keepDonated = false): { bufOf: Map<Tensor, GPUBuffer>; finish: () => Tree<GpuArray> } {
    if (this.disposedFlag) throw new ArgumentError("run", "this executable was disposed");
    this.ctx.checkAlive("run");
    const { ctx } = this;
    const leaves = flattenRunArgs(args, this.graph.inputDefs);
    const bufOf = new Map<Tensor, GPUBuffer>();
    const gpuArgs: (GpuArray | null)[] = leaves.map((l, i) => {
      const inp = this.inputs[i];
      const where = this.paths[i];
      if (l instanceof GpuArray) {
        l.check(where);
        if (l.ctx !== ctx) throw new ArgumentError("run", `${where} lives on another device`);
        if (l.dtype !== inp.dtype || l.shape.length !== inp.shape.length || l.shape.some((d, k) => d !== inp.shape[k]))
          throw new ArgumentError("run", `${where} expects ${inp.dtype}[${inp.shape}], got a GpuArray ${l.dtype}[${l.shape}]`);
        bufOf.set(inp, l.buffer);
        return l;
      }
      const data = toHostData(l, inp.shape, inp.dtype, where);
      // A donated argument given as host data is uploaded into a fresh buffer that its output then owns.
      const donatedHere = [...this.donation.values()].includes(i);
      let up = donatedHere ? undefined : this.uploads.get(i);
      if (!up) {
        up = ctx.createBuffer(bytesOf(inp), GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST, donatedHere ? "output" : `upload${i}`);
        if (!donatedHere) this.uploads.set(i, up);
      }
      ctx.device.queue.writeBuffer(up, 0, toGpuLayout(data, inp.dtype));
      bufOf.set(inp, up);
      return null;
    });
    const donated = new Set<GpuArray>();
    for (const [oi, li] of this.donation) {
      const a = gpuArgs[li];
      if (a && gpuArgs.filter((x) => x === a).length > 1) throw new ArgumentError("run", `the donated ${this.paths[li]} is also passed as another argument`);
      if (a && keepDonated) bufOf.set(this.inputs[li], this.copyOf(a));
      else if (a) donated.add(a);
      bufOf.set(this.outputs[oi], bufOf.get(this.inputs[li])!);
    }
    const results = this.outputs.map((o) => {
      let b = bufOf.get(o);
      if (!b) {
        b = ctx.createBuffer(bytesOf(o), GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST, "output");
        bufOf.set(o, b);
      }
      return b;
    });
    for (const [n, p] of this.plan.placements) bufOf.set(n, this.pool[p.slot]);
    for (const [n, b] of this.constants) bufOf.set(n, b);
    const finish = () => {
      for (const a of donated) a.surrender();
      const outs = this.outputs.map((o, i) => new GpuArray(ctx, results[i], o.shape, o.dtype));
      return unflatten(this.graph.outputDef, outs);
    };
    return { bufOf, finish };
  }

  private dispatch(pass: GPUComputePassEncoder, k: Kernel, bufOf: ReadonlyMap<Tensor, GPUBuffer>): void {
    if (k.src.output.size === 0) return;
    const bound = [...k.src.reads, k.src.output].map((n, i) => {
      if (i === k.src.aliased) return null; // read through the output binding
      const buffer = bufOf.get(n);
      if (!buffer) throw new Error(`webgpu: internal error: kernel ${k.src.name} reads ${n} which has no buffer`);
      return buffer;
    });
    const buffers = bound.filter((b) => b !== null);
    if (!k.last || k.last.buffers.some((b, i) => b !== buffers[i])) {
      const entries = bound.flatMap((buffer, binding) => (buffer ? [{ binding, resource: { buffer } }] : []));
      k.last = { buffers, group: this.ctx.device.createBindGroup({ layout: k.layout, entries }) };
    }
    pass.setPipeline(k.pipeline);
    pass.setBindGroup(0, k.last.group);
    pass.dispatchWorkgroups(...k.src.dispatch);
  }

  /** A fresh device buffer holding `a`'s values (the queue runs the copy before later work). */
  private copyOf(a: GpuArray): GPUBuffer {
    const { ctx } = this;
    const bytes = 4 * a.size;
    const c = ctx.createBuffer(bytes, GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST, "output");
    const enc = ctx.device.createCommandEncoder();
    if (bytes > 0) enc.copyBufferToBuffer(a.buffer, 0, c, 0, bytes);
    ctx.device.queue.submit([enc.finish()]);
    return c;
  }

  /**
   * Runs once like `run` and times each kernel, for finding where a step spends time. Where the
   * device has timestamp queries, every kernel gets a compute pass of its own with timestamps at
   * its start and end, all in one submit: GPU time. Elsewhere each kernel is submitted alone and
   * timed by wall clock to completion (so each time includes the cost of a submit). Donated
   * arguments are left alone (the run updates copies), so profiling a training step between two
   * steps does not consume its parameters.
   */
  async profile(...args: unknown[]): Promise<{ name: string; ms: number }[]> {
    const { device } = this.ctx;
    const bound = this.bind(args, true);
    await device.queue.onSubmittedWorkDone(); // earlier work (the copies too) must not count against the first kernel
    const kernels = this.kernels.filter((k) => k.src.output.size > 0);
    const times = device.features.has("timestamp-query") ? await this.timestamps(kernels, bound.bufOf) : await this.wallClock(kernels, bound.bufOf);
    flatten(bound.finish(), (x): x is GpuArray => x instanceof GpuArray).leaves.forEach((o) => o.dispose());
    return kernels.map((k, i) => ({ name: k.src.name, ms: times[i] }));
  }

  /** Each kernel's milliseconds from its own submit to the device finishing it. */
  private async wallClock(kernels: readonly Kernel[], bufOf: ReadonlyMap<Tensor, GPUBuffer>): Promise<number[]> {
    const { device } = this.ctx;
    const times: number[] = [];
    for (const k of kernels) {
      const t0 = performance.now();
      const enc = device.createCommandEncoder();
      const pass = enc.beginComputePass();
      this.dispatch(pass, k, bufOf);
      pass.end();
      device.queue.submit([enc.finish()]);
      await device.queue.onSubmittedWorkDone();
      times.push(performance.now() - t0);
    }
    return times;
  }

  /** Each kernel's GPU time in milliseconds, from timestamps around a pass of its own. */
  private async timestamps(kernels: readonly Kernel[], bufOf: ReadonlyMap<Tensor, GPUBuffer>): Promise<number[]> {
    const { ctx } = this;
    const perSet = 2048; // a query set holds at most 4096 timestamps
    const enc = ctx.device.createCommandEncoder();
    const sets: GPUQuerySet[] = [];
    for (let i = 0; i < kernels.length; i += perSet) {
      const chunk = kernels.slice(i, i + perSet);
      const querySet = ctx.device.createQuerySet({ type: "timestamp", count: 2 * chunk.length });
      sets.push(querySet);
      chunk.forEach((k, j) => {
        const pass = enc.beginComputePass({ timestampWrites: { querySet, beginningOfPassWriteIndex: 2 * j, endOfPassWriteIndex: 2 * j + 1 } });
        this.dispatch(pass, k, bufOf);
        pass.end();
      });
    }
    const bytes = 16 * kernels.length;
    const resolved = ctx.createBuffer(bytes, GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC, "timestamps");
    sets.forEach((q, i) => enc.resolveQuerySet(q, 0, q.count, resolved, i * perSet * 16));
    const t = new BigInt64Array(await ctx.readBack(enc, resolved, bytes));
    ctx.destroyBuffer(resolved);
    sets.forEach((q) => q.destroy());
    return kernels.map((_, i) => Number(t[2 * i + 1] - t[2 * i]) / 1e6);
  }

  /** Every kernel's WGSL, named after the ops it fuses. */
  wgsl(): string {
    return this.kernels.map((k) => k.src.wgsl).join("\n\n");
  }

  /** Kernel names in execution order. */
  kernelNames(): string[] {
    return this.kernels.map((k) => k.src.name);
  }

  /** For each kernel: its name, the primitive it is built around, and that node's operand shapes. */
  kernelInfo(): { name: string; prim: string; shapes: number[][] }[] {
    return this.kernels.map((k) => ({ name: k.src.name, prim: k.src.core?.prim ?? k.src.output.prim, shapes: (k.src.core ?? k.src.output).inputs.map((i) => [...i.shape]) }));
  }

  stats(): ExecutableStats {
    const donatedOut = new Set(this.donation.keys());
    const dispatched = this.kernels.filter((k) => k.src.output.size > 0);
    return {
      kernels: dispatched.length,
      pipelines: new Set(dispatched.map((k) => k.pipeline)).size,
      plannedBytes: this.plan.slots.reduce((a, b) => a + b, 0),
      peakBytes: this.plan.peakBytes,
      constantBytes: [...this.constants.keys()].reduce((a, n) => a + bytesOf(n), 0),
      outputBytes: this.outputs.reduce((a, o, i) => a + (donatedOut.has(i) ? 0 : bytesOf(o)), 0),
    };
  }

  /** @internal The memory plan, for tests. */
  memoryPlan(): MemoryPlan {
    return this.plan;
  }

  /** Frees the executable's own buffers (pool, constants, upload buffers) and releases its pipelines. */
  dispose(): void {
    if (this.disposedFlag) return;
    this.disposedFlag = true;
    for (const b of [...this.pool, ...this.constants.values(), ...this.uploads.values()]) this.ctx.destroyBuffer(b);
    for (const k of this.kernels) {
      pipelinesOf(this.ctx).release(k.key);
      k.last = undefined;
    }
  }
}

const isRunLeaf = (x: unknown): x is HostInput | GpuArray => x instanceof GpuArray || isHostInput(x);

function flattenRunArgs(args: readonly unknown[], defs: readonly TreeDef[]): (HostInput | GpuArray)[] {
  if (args.length !== defs.length) throw new ArgumentError("run", `expected ${defs.length} arguments, got ${args.length}`);
  return args.flatMap((a, i) => {
    const { leaves, def } = flatten(a, isRunLeaf, "host array or GpuArray", { op: "run", root: `argument ${i}` });
    if (JSON.stringify(def) !== JSON.stringify(defs[i])) throw new ArgumentError("run", `argument ${i} does not have the structure it was compiled with`);
    return leaves;
  });
}

/** For each flat input leaf, the argument it belongs to. */
function leafArguments(defs: readonly TreeDef[]): number[] {
  const count = (d: TreeDef): number => (d.kind === "leaf" ? 1 : d.children.reduce((a, c) => a + count(c), 0));
  return defs.flatMap((d, i) => Array(count(d)).fill(i));
}

/** "argument 0.blocks[2].w" for every flat input leaf. */
function leafPaths(defs: readonly TreeDef[]): string[] {
  const paths: string[] = [];
  const go = (d: TreeDef, p: string) => (d.kind === "leaf" ? paths.push(p) : d.children.forEach((c, i) => go(c, d.kind === "object" ? `${p}.${d.keys[i]}` : `${p}[${i}]`)));
  defs.forEach((d, i) => go(d, `argument ${i}`));
  return paths;
}

/** Compiles a traced graph for a WebGPU device. */
export function compileWebGpu(graph: Graph, ctx: GpuContext, opts: WebGpuCompileOptions = {}): GpuExecutable {
  // Refused before any device work: a destroyed device, a tensor of another trace (as on the CPU), buffers over the device's limits.
  ctx.checkAlive("compile");
  checkClosed(graph);
  checkBufferLimits(ctx, graphBuffers(graph));
  for (const n of [...graph.inputs, ...graph.outputs])
    if (n.dtype === "f64") throw new ArgumentError("compile", `webgpu: ${n} is f64; the GPU runs f32 (f64 exists for CPU gradient checks). Cast or use f32 specs`);
  const s = simplify(graph.inputs, graph.outputs);
  const outputs = ownOutputs(s.outputs);
  for (const n of schedule(s.inputs, outputs, new Set()).order)
    if (n.dtype === "f64") throw new ArgumentError("compile", `webgpu: ${n.prim} computes f64; the GPU runs f32`);
  const everything = opts.fusion === false ? new Set(topoSort(outputs).filter((n) => !(n.prim === "constant" && n.size === 1))) : new Set<Tensor>();
  const gen = generate(s.inputs, outputs, ctx, opts.matmul, everything);
  checkBufferLimits(ctx, kernelBuffers(gen.kernels)); // intermediates and constants, known once scheduled
  return new GpuExecutable(ctx, graph, s.inputs, outputs, gen, opts.donate ?? []);
}
