/**
 * A compiled graph on a WebGPU device: it binds buffers and dispatches the kernels the compiler
 * generated (compiler.ts lists the stages). A run encodes every dispatch into one command encoder
 * and submits once; nothing is read back unless the caller asks (`await out.toArray()`).
 */
import { ArgumentError, flatten, unflatten, type Graph, type Tensor, type Tree } from "../../dsl/index.js";
import { flattenArgs } from "../args.js";
import { isHostInput, toHostData, type HostInput } from "../host.js";
import { GpuArray, toGpuLayout } from "./array.js";
import type { GpuContext } from "./device.js";
import { bytesOf, type BufferPlan, type MemoryPlan } from "./memory.js";
import { PipelineCache } from "./pipelineCache.js";
import { timeKernels } from "./profile.js";
import type { KernelSource } from "./templates.js";

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
  /** Its pipeline's key in the device's PipelineCache (its WGSL body, without the name comment), released when the executable is disposed. */
  readonly key: string;
  readonly pipeline: GPUComputePipeline;
  readonly layout: GPUBindGroupLayout;
  /** Its `sizes` uniform (KernelBody.sizes), written once, where the kernel reads sizes at run time. */
  readonly sizes?: GPUBuffer;
  /**
   * The bind group of the last run and the buffers it binds. A training step that donates its
   * parameters binds the same buffers every run; remaking ~400 bind groups cost 10-30 ms a step.
   */
  last?: { buffers: GPUBuffer[]; group: GPUBindGroup };
}

/**
 * Pipelines are keyed by their WGSL body, so kernels that differ only in name (the same layer
 * repeated, Adam on parameters of one shape) share one. Lavapipe keeps at most 1024 compiled
 * shaders and recompiles what it evicts, so a step that dispatches more distinct ones than that
 * compiles on every run.
 */
/** Unused pipelines a device keeps for later compiles (PipelineCache); about 0.65 MiB each on lavapipe. */
export const IDLE_PIPELINES = 128;
const pipelineCaches = new WeakMap<GpuContext, PipelineCache>();

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

/** A compiled graph on a WebGPU device. */
export class GpuExecutable {
  private readonly kernels: Kernel[];
  private readonly plan: MemoryPlan;
  private readonly pool: GPUBuffer[];
  private readonly constants = new Map<Tensor, GPUBuffer>();
  private readonly uploads = new Map<number, GPUBuffer>();
  private readonly donation: ReadonlyMap<number, number>; // output index -> input index
  private disposedFlag = false;

  constructor(
    readonly ctx: GpuContext,
    readonly graph: Graph,
    private readonly inputs: readonly Tensor[],
    private readonly outputs: readonly Tensor[],
    sources: readonly KernelSource[],
    buffers: BufferPlan,
  ) {
    this.plan = buffers.memory;
    this.donation = buffers.donation;
    this.kernels = sources.map((src) => {
      const pipeline = acquirePipeline(ctx, src.body, src.name);
      return { src, key: src.body, pipeline, layout: pipeline.getBindGroupLayout(0), ...(src.sizes ? { sizes: this.uniformOf(src.sizes) } : {}) };
    });
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

  /** A uniform buffer holding a kernel's run-time sizes (rounded up to the 16 bytes a uniform needs). */
  private uniformOf(sizes: ReadonlyMap<string, number>): GPUBuffer {
    const data = new Uint32Array(4 * Math.ceil(sizes.size / 4));
    data.set([...sizes.values()]);
    const buf = this.ctx.createBuffer(data.byteLength, GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST, "sizes");
    this.ctx.device.queue.writeBuffer(buf, 0, data);
    return buf;
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
    const { leaves, paths } = flattenArgs(args, this.graph.inputDefs, isRunLeaf, "host array or GpuArray");
    const bufOf = new Map<Tensor, GPUBuffer>();
    const gpuArgs: (GpuArray | null)[] = leaves.map((l, i) => {
      const inp = this.inputs[i];
      const where = paths[i];
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
      if (a && gpuArgs.filter((x) => x === a).length > 1) throw new ArgumentError("run", `the donated ${paths[li]} is also passed as another argument`);
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
      const entries = [...bound, k.sizes ?? null].flatMap((buffer, binding) => (buffer ? [{ binding, resource: { buffer } }] : []));
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
   * Runs once like `run` and times each kernel, for finding where a step spends time (see
   * profile.ts: GPU time where the device has timestamp queries, else wall clock per submit).
   * Donated arguments are left alone (the run updates copies), so profiling a training step
   * between two steps does not consume its parameters.
   */
  async profile(...args: unknown[]): Promise<{ name: string; ms: number }[]> {
    const bound = this.bind(args, true);
    const kernels = this.kernels.filter((k) => k.src.output.size > 0);
    const times = await timeKernels(this.ctx, kernels.length, (pass, i) => this.dispatch(pass, kernels[i], bound.bufOf));
    flatten(bound.finish(), (x): x is GpuArray => x instanceof GpuArray).leaves.forEach((o) => o.dispose());
    return kernels.map((k, i) => ({ name: k.src.name, ms: times[i] }));
  }

  /** The device it runs on (the Executable interface's `backend`). */
  get backend(): GpuContext {
    return this.ctx;
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
    return this.kernels.map((k) => ({ name: k.src.name, prim: k.src.core.prim, shapes: k.src.core.inputs.map((i) => [...i.shape]) }));
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
    const sizes = this.kernels.flatMap((k) => (k.sizes ? [k.sizes] : []));
    for (const b of [...this.pool, ...this.constants.values(), ...this.uploads.values(), ...sizes]) this.ctx.destroyBuffer(b);
    for (const k of this.kernels) {
      pipelinesOf(this.ctx).release(k.key);
      k.last = undefined;
    }
  }
}

const isRunLeaf = (x: unknown): x is HostInput | GpuArray => x instanceof GpuArray || isHostInput(x);
