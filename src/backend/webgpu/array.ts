import { allocate, ArgumentError, type DType, type HostData, type Shape } from "../../dsl/index.js";
import { HostTensor } from "../host.js";
import type { GpuContext } from "./device.js";

/**
 * A tensor's values in GPU memory. Runs return these and accept them back without a copy;
 * `toArray()` reads the values to the host, `dispose()` frees the buffer.
 */
export class GpuArray {
  private alive = true;

  /** @internal Made by executables. */
  constructor(
    readonly ctx: GpuContext,
    /** @internal */ readonly buffer: GPUBuffer,
    readonly shape: Shape,
    readonly dtype: DType,
  ) {}

  get size(): number {
    return this.shape.reduce((a, b) => a * b, 1);
  }

  get disposed(): boolean {
    return !this.alive;
  }

  /** @internal Checks the array can still be used. */
  check(where: string): void {
    if (!this.alive) throw new ArgumentError("run", `${where} is a GpuArray that was disposed or donated to an earlier run; keep the run's outputs instead`);
  }

  /** Reads the values back to the host. */
  async toArray(): Promise<HostData> {
    this.check("toArray");
    this.ctx.checkAlive("toArray");
    const raw = await this.ctx.readBack(this.ctx.device.createCommandEncoder(), this.buffer, this.size * 4);
    this.ctx.checkErrors();
    if (this.dtype === "bool") return Uint8Array.from(new Uint32Array(raw));
    const out = allocate(this.dtype, this.size);
    out.set(this.dtype === "i32" ? new Int32Array(raw) : new Float32Array(raw));
    return out;
  }

  /** Reads the values back as a HostTensor. */
  async toHost(): Promise<HostTensor> {
    return new HostTensor(await this.toArray(), this.shape, this.dtype);
  }

  /** Frees the GPU buffer. Using the array afterwards is an error. */
  dispose(): void {
    if (!this.alive) return;
    this.alive = false;
    this.ctx.destroyBuffer(this.buffer);
  }

  /** @internal Hands the buffer to a run's output (donation): the array becomes unusable, the buffer lives on. */
  surrender(): GPUBuffer {
    this.alive = false;
    return this.buffer;
  }
}

/** Host data in the layout the GPU stores (bool as u32). */
export function toGpuLayout(data: HostData, dtype: DType): ArrayBufferView<ArrayBuffer> {
  if (dtype === "bool") return Uint32Array.from(data);
  if (dtype === "f64") throw new ArgumentError("webgpu", "f64 data cannot go to the GPU; use f32");
  return data as ArrayBufferView<ArrayBuffer>;
}
