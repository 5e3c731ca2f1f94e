/**
 * Acquiring a WebGPU device through Dawn's Node bindings (npm `webgpu`). The device is injected
 * everywhere (no global navigator); a missing adapter is an error that says how to get one.
 */
import { availableParallelism } from "node:os";
import * as TE from "fp-ts/lib/TaskEither.js";
import { pipe } from "fp-ts/lib/function.js";
import { WgradError } from "../../dsl/index.js";

/** No usable GPU adapter or device. */
export class DeviceError extends WgradError {
  override readonly name = "DeviceError";
}

export const NO_ADAPTER_HELP =
  "webgpu: no GPU adapter found. On a machine with a GPU, install its Vulkan driver (NVIDIA's driver ships a Vulkan ICD; " +
  "AMD and Intel use Mesa's mesa-vulkan-drivers). On a CPU-only machine install Mesa's lavapipe, a Vulkan driver that runs on the CPU: " +
  "on Debian bookworm `apt-get install -t bookworm-backports mesa-vulkan-drivers libvulkan1` (bookworm's own Mesa 22 is too old for Dawn; " +
  "scripts/install-lavapipe.sh does this). `vulkaninfo --summary` (package vulkan-tools) lists what Vulkan sees.";

/** How `webgpu()` and `acquireDevice()` get a device: Dawn's flags, the adapter preference, lavapipe threads, buffer reuse. */
export interface WebGpuOptions {
  /** Flags for Dawn's `create`, e.g. ["backend=vulkan", "adapter=llvmpipe"] or toggles ("enable-dawn-features=..."). */
  readonly dawnFlags?: readonly string[];
  readonly powerPreference?: GPUPowerPreference;
  /** An existing device to use instead of creating one (its adapter info is then unknown). */
  readonly device?: GPUDevice;
  /**
   * Worker threads for Mesa's lavapipe (the LP_NUM_THREADS it reads when the driver starts; other
   * drivers ignore it). Default: 4 per CPU core, at most 32, unless LP_NUM_THREADS is already set;
   * 0 leaves lavapipe's own default of one per core. Measured on a 2-core machine: with 8
   * threads the iBOT step ran 1.36× and the ViT bench step 1.26× faster than with 2 (BENCHMARKS.md).
   * It is read once per process, so the first acquisition decides.
   */
  readonly lavapipeThreads?: number;
  /**
   * The most bytes of released buffers (disposed arrays, freed executables) the context keeps to
   * reuse for later allocations of the same size. Default 256 MiB; 0 destroys every released buffer.
   */
  readonly bufferPoolBytes?: number;
}

/** The LP_NUM_THREADS to set (see `lavapipeThreads`), or undefined to leave the environment as it is. */
export function lavapipeThreadCount(current: string | undefined, requested: number | undefined, cores: number): string | undefined {
  const n = requested ?? Math.min(32, 4 * cores);
  return current === undefined && n > 0 ? String(n) : undefined;
}

/**
 * The user's Dawn flags, plus the timestamp_quantization toggle turned off: browsers round GPU
 * timestamps to 65 µs against timing attacks, which made `profile()` unable to time small
 * kernels. A user's own `disable-dawn-features=` list is extended, not replaced.
 */
export function dawnFlagsWith(flags: readonly string[]): string[] {
  const key = "disable-dawn-features=";
  const i = flags.findIndex((f) => f.startsWith(key));
  if (i < 0) return [...flags, `${key}timestamp_quantization`];
  return flags.map((f, j) => (j === i ? `${f},timestamp_quantization` : f));
}

/** What the compiler needs to know of the adapter behind a device. */
export interface AdapterFacts {
  /**
   * Dawn's instance. It must stay reachable as long as the device is used: if it is garbage
   * collected, Dawn frees it while its event loop still runs, and the process crashes.
   */
  readonly instance?: GPU;
  /** The fewest lanes a subgroup has, or 0 where the device has no subgroup operations. */
  readonly subgroupSize?: number;
  /** A CPU implementation of WebGPU (lavapipe, SwiftShader): Dawn's "fallback adapter". */
  readonly cpu?: boolean;
  /** See WebGpuOptions.bufferPoolBytes. */
  readonly bufferPoolBytes?: number;
}

/** The default for WebGpuOptions.bufferPoolBytes. */
export const DEFAULT_POOL_BYTES = 256 * 2 ** 20;

/** A device with the facts the compiler needs, and a count of the buffers it holds (for leak checks). */
export class GpuContext {
  private live = 0;
  private destroyedFlag = false;
  /** Released buffers by size and usage, for reuse (see createBuffer). */
  private readonly free = new Map<string, GPUBuffer[]>();
  private pooled = 0;
  /** The most bytes of released buffers kept for reuse (WebGpuOptions.bufferPoolBytes). */
  readonly poolLimitBytes: number;
  private readonly errors: string[] = [];
  /** The fewest lanes a subgroup has, or 0 where the device has no subgroup operations. */
  readonly subgroupSize: number;
  /** Whether the adapter runs on the CPU (lavapipe here). */
  readonly cpu: boolean;
  private readonly instance?: GPU;

  constructor(
    readonly device: GPUDevice,
    /** The adapter's description, e.g. "llvmpipe (LLVM 15.0.6, 256 bits)". */
    readonly adapterName: string,
    facts: AdapterFacts = {},
  ) {
    this.instance = facts.instance;
    this.subgroupSize = device.features.has("subgroups") ? (facts.subgroupSize ?? 0) : 0;
    this.cpu = facts.cpu ?? false;
    this.poolLimitBytes = facts.bufferPoolBytes ?? DEFAULT_POOL_BYTES;
    device.addEventListener("uncapturederror", (e) => this.errors.push((e as GPUUncapturedErrorEvent).error.message));
  }

  /** Whether `destroy()` was called: the device then refuses every use (checkAlive). */
  get destroyed(): boolean {
    return this.destroyedFlag;
  }

  /**
   * Refuses `what` (compile, run, toArray...) on a destroyed device with a DeviceError: Dawn
   * itself accepts most calls on a destroyed device silently and fails later with an empty DOMException.
   */
  checkAlive(what: string): void {
    if (this.destroyedFlag)
      throw new DeviceError(`webgpu: ${what}: this device was destroyed (GpuContext.destroy()); acquire a new one with webgpu() and compile again on it`);
  }

  /**
   * The most bytes one buffer may hold here: every buffer is bound whole as a storage buffer, so
   * the smaller of maxStorageBufferBindingSize and maxBufferSize, with the limit's name.
   */
  get bufferLimit(): { readonly bytes: number; readonly name: string } {
    const { maxStorageBufferBindingSize: binding, maxBufferSize: buffer } = this.limits;
    return binding <= buffer ? { bytes: binding, name: "maxStorageBufferBindingSize" } : { bytes: buffer, name: "maxBufferSize" };
  }

  get limits(): GPUSupportedLimits {
    return this.device.limits;
  }

  /** Buffers handed out by this context and not yet released (pooled ones are not counted). */
  get liveBuffers(): number {
    return this.live;
  }

  /** Bytes of released buffers kept for reuse. */
  get pooledBytes(): number {
    return this.pooled;
  }

  /**
   * A buffer of at least `size` bytes: a released one of the same size and usage if the pool has
   * one, else a new one. Reuse matters beyond allocation: Dawn zero-fills every new buffer before
   * its first use, which cost a 3200×96 by 96×384 matmul run 5 ms on top of its 9 ms (lavapipe).
   * Reuse is safe because every use goes through the one queue, in order.
   */
  createBuffer(size: number, usage: number, label?: string): GPUBuffer {
    this.checkAlive("createBuffer");
    this.live++;
    const bytes = Math.max(16, Math.ceil(size / 4) * 4);
    const reused = this.free.get(`${bytes}|${usage}`)?.pop();
    if (reused) {
      this.pooled -= bytes;
      return reused;
    }
    return this.device.createBuffer({ size: bytes, usage, label });
  }

  /** Releases a buffer: pooled for reuse while the pool holds at most `poolLimitBytes`, else destroyed. */
  destroyBuffer(b: GPUBuffer): void {
    this.live--;
    if (this.destroyedFlag || b.mapState !== "unmapped" || this.pooled + b.size > this.poolLimitBytes) return b.destroy();
    const key = `${b.size}|${b.usage}`;
    const list = this.free.get(key) ?? [];
    list.push(b);
    this.free.set(key, list);
    this.pooled += b.size;
  }

  /**
   * Submits `enc` with a copy of `src`'s first `bytes` appended, and resolves to those bytes once
   * the device has run it.
   */
  async readBack(enc: GPUCommandEncoder, src: GPUBuffer, bytes: number): Promise<ArrayBuffer> {
    this.checkAlive("reading back");
    const staging = this.createBuffer(bytes, GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST, "readback");
    if (bytes > 0) enc.copyBufferToBuffer(src, 0, staging, 0, bytes);
    this.device.queue.submit([enc.finish()]);
    await staging.mapAsync(GPUMapMode.READ);
    const raw = staging.getMappedRange(0, Math.max(4, bytes)).slice(0, bytes);
    staging.unmap();
    this.destroyBuffer(staging);
    return raw;
  }

  /** Destroys every pooled buffer (their memory goes back to the driver). */
  emptyPool(): void {
    for (const list of this.free.values()) for (const b of list) b.destroy();
    this.free.clear();
    this.pooled = 0;
  }

  /** Throws the first validation error the device reported since the last call, if any. */
  checkErrors(): void {
    const e = this.errors.splice(0);
    if (e.length) throw new DeviceError(`webgpu: the device reported: ${e[0]}`);
  }

  /** Frees the device. Any later use (compile, run, toArray, createBuffer) is a DeviceError; disposing arrays stays allowed. */
  destroy(): void {
    this.destroyedFlag = true;
    this.emptyPool();
    this.device.destroy();
  }
}

/** Finds an adapter and creates a device with the limits the compiler uses, as a TaskEither. */
export function acquireDevice(opts: WebGpuOptions = {}): TE.TaskEither<DeviceError, GpuContext> {
  const pool = opts.bufferPoolBytes;
  if (pool !== undefined && !(Number.isFinite(pool) && pool >= 0)) {
    return TE.left(new DeviceError(`webgpu: bufferPoolBytes must be a non-negative number of bytes (0 turns buffer reuse off), got ${pool}`));
  }
  if (opts.device) {
    // GPUDevice.adapterInfo is newer than some implementations.
    const info = (opts.device as GPUDevice & { adapterInfo?: GPUAdapterInfo }).adapterInfo;
    return TE.right(
      new GpuContext(opts.device, "injected device", {
        subgroupSize: info?.subgroupMinSize,
        cpu: info?.isFallbackAdapter,
        bufferPoolBytes: opts.bufferPoolBytes,
      }),
    );
  }
  const t = opts.lavapipeThreads;
  if (t !== undefined && !(Number.isInteger(t) && t >= 0)) {
    return TE.left(new DeviceError(`webgpu: lavapipeThreads must be a non-negative integer (0 keeps lavapipe's default of one per core), got ${t}`));
  }
  return pipe(
    TE.tryCatch(
      async () => {
        // Before Dawn loads the Vulkan driver, which reads it once.
        const threads = lavapipeThreadCount(process.env.LP_NUM_THREADS, opts.lavapipeThreads, availableParallelism());
        if (threads) process.env.LP_NUM_THREADS = threads;
        const { create, globals } = await import("webgpu");
        // The GPUBufferUsage/GPUMapMode constants live on Dawn's globals.
        for (const [k, v] of Object.entries(globals)) if (!(k in globalThis)) (globalThis as Record<string, unknown>)[k] = v;
        return create(dawnFlagsWith(opts.dawnFlags ?? []));
      },
      (e) => new DeviceError(`webgpu: could not load Dawn's Node bindings (npm "webgpu"): ${String(e)}`),
    ),
    TE.chain((gpu) =>
      TE.tryCatch(
        async () => ({ gpu, adapter: await gpu.requestAdapter(opts.powerPreference ? { powerPreference: opts.powerPreference } : undefined) }),
        (e) => new DeviceError(`${NO_ADAPTER_HELP} (requestAdapter failed: ${String(e)})`),
      ),
    ),
    TE.chain(({ gpu, adapter }) => (adapter ? TE.right({ gpu, adapter }) : TE.left(new DeviceError(NO_ADAPTER_HELP)))),
    TE.chain(({ gpu, adapter }) =>
      TE.tryCatch(
        async () => {
          const l = adapter.limits;
          const want = [
            "maxStorageBuffersPerShaderStage",
            "maxStorageBufferBindingSize",
            "maxBufferSize",
            "maxComputeWorkgroupStorageSize",
            "maxComputeInvocationsPerWorkgroup",
            "maxComputeWorkgroupSizeX",
            "maxComputeWorkgroupSizeY",
            "maxComputeWorkgroupsPerDimension",
          ] as const;
          const requiredLimits = Object.fromEntries(want.map((k) => [k, l[k]]));
          const requiredFeatures = (["timestamp-query", "subgroups"] as const).filter((f) => adapter.features.has(f));
          const device = await adapter.requestDevice({ requiredLimits, requiredFeatures });
          const info = adapter.info;
          const name = [info.description || info.device, info.vendor].filter((s) => s).join(" / ") || "unknown adapter";
          return new GpuContext(device, name, {
            instance: gpu,
            subgroupSize: info.subgroupMinSize,
            cpu: info.isFallbackAdapter,
            bufferPoolBytes: opts.bufferPoolBytes,
          });
        },
        (e) => new DeviceError(`webgpu: the adapter refused a device: ${String(e)}`),
      ),
    ),
  );
}

/** Like acquireDevice, as a promise that rejects with a DeviceError. */
export async function webgpu(opts: WebGpuOptions = {}): Promise<GpuContext> {
  const r = await acquireDevice(opts)();
  if (r._tag === "Left") throw r.left;
  return r.right;
}
