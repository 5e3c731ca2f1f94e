/**
 * Per-kernel timing for `exe.profile()`: GPU time from timestamp queries where the device has
 * them (each kernel in a compute pass of its own, timestamps at its start and end, all in one
 * submit), else wall clock per kernel submitted alone (so each time includes a submit's cost).
 */
import type { GpuContext } from "./device.js";

/** Encodes kernel `i`'s dispatch into a pass. */
export type EncodeKernel = (pass: GPUComputePassEncoder, i: number) => void;

/** Milliseconds of each of `count` kernels, after the work already submitted has finished. */
export async function timeKernels(ctx: GpuContext, count: number, encode: EncodeKernel): Promise<number[]> {
  await ctx.device.queue.onSubmittedWorkDone(); // earlier work (argument copies too) must not count against the first kernel
  return ctx.device.features.has("timestamp-query") ? timestamps(ctx, count, encode) : wallClock(ctx, count, encode);
}

/** Each kernel's milliseconds from its own submit to the device finishing it. */
async function wallClock(ctx: GpuContext, count: number, encode: EncodeKernel): Promise<number[]> {
  const { device } = ctx;
  const times: number[] = [];
  for (let i = 0; i < count; i++) {
    const t0 = performance.now();
    const enc = device.createCommandEncoder();
    const pass = enc.beginComputePass();
    encode(pass, i);
    pass.end();
    device.queue.submit([enc.finish()]);
    await device.queue.onSubmittedWorkDone();
    times.push(performance.now() - t0);
  }
  return times;
}

/** Each kernel's GPU time in milliseconds, from timestamps around a pass of its own. */
async function timestamps(ctx: GpuContext, count: number, encode: EncodeKernel): Promise<number[]> {
  const perSet = 2048; // a query set holds at most 4096 timestamps
  const enc = ctx.device.createCommandEncoder();
  const sets: GPUQuerySet[] = [];
  for (let i = 0; i < count; i += perSet) {
    const n = Math.min(perSet, count - i);
    const querySet = ctx.device.createQuerySet({ type: "timestamp", count: 2 * n });
    sets.push(querySet);
    for (let j = 0; j < n; j++) {
      const pass = enc.beginComputePass({ timestampWrites: { querySet, beginningOfPassWriteIndex: 2 * j, endOfPassWriteIndex: 2 * j + 1 } });
      encode(pass, i + j);
      pass.end();
    }
  }
  const bytes = 16 * count;
  const resolved = ctx.createBuffer(bytes, GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC, "timestamps");
  sets.forEach((q, i) => enc.resolveQuerySet(q, 0, q.count, resolved, i * perSet * 16));
  const t = new BigInt64Array(await ctx.readBack(enc, resolved, bytes));
  ctx.destroyBuffer(resolved);
  sets.forEach((q) => q.destroy());
  return Array.from({ length: count }, (_, i) => Number(t[2 * i + 1] - t[2 * i]) / 1e6);
}
