/**
 * The compile-time memory plan: every intermediate gets a slot in a pool of buffers that lives as
 * long as the executable; a slot is reused once the value in it has been read for the last time.
 * Outputs get fresh buffers per run (the caller owns them), or a donated input's buffer.
 */
import { formatShape, leafPaths, type Graph, type Tensor } from "../../dsl/index.js";
import { DeviceError, type GpuContext } from "./device.js";
import type { KernelBody, KernelSource } from "./templates.js";

// Every GPU element is 4 bytes (f32, i32, and bool stored as u32).
export const bytesOf = (n: Tensor): number => n.size * 4;

/** A tensor that gets a buffer of its own, with what it is in words ("argument 0.w", "result.loss"). */
export type NamedBuffer = readonly [Tensor, string];

/** A graph's arguments and results, named by their paths: each gets a buffer whatever the compiler does. */
export function graphBuffers(graph: Graph): NamedBuffer[] {
  const args = graph.inputDefs.flatMap((d, i) => leafPaths(d, `argument ${i}`));
  const results = leafPaths(graph.outputDef, "result");
  return [...graph.inputs.map((t, i): NamedBuffer => [t, args[i]]), ...graph.outputs.map((t, i): NamedBuffer => [t, results[i]])];
}

/** The values the kernels read and write: intermediates (named by the kernel writing them) and constants. */
export function kernelBuffers(kernels: readonly KernelSource[]): NamedBuffer[] {
  const constants = kernels.flatMap((k) => k.reads.filter((r) => r.prim === "constant").map((r): NamedBuffer => [r, `a constant read by kernel ${k.name}`]));
  return [...kernels.map((k): NamedBuffer => [k.output, `the intermediate value kernel ${k.name} computes`]), ...constants];
}

/**
 * Refuses, at compile time, any buffer larger than the device can bind (ctx.bufferLimit), naming
 * it with its shape, its bytes and the limit. Shapes are static, so this is known before any
 * upload; the device would otherwise refuse the buffer only when a run creates it.
 */
export function checkBufferLimits(ctx: GpuContext, buffers: readonly NamedBuffer[]): void {
  const limit = ctx.bufferLimit;
  for (const [t, what] of buffers)
    if (bytesOf(t) > limit.bytes)
      throw new DeviceError(
        `webgpu: ${what}, ${t.dtype}${formatShape(t.shape)}, takes ${bytesOf(t)} bytes, more than this device's ${limit.name} of ${limit.bytes} bytes ` +
          `(${ctx.adapterName}); make it smaller (a smaller batch, or split it along an axis) or compile for the CPU backend`,
      );
}

/** One planned value: which pool slot holds it and the kernels between which it lives. */
export interface Placement {
  readonly node: Tensor;
  readonly slot: number;
  /** Index of the kernel that writes it. */
  readonly def: number;
  /** Index of the last kernel that reads it. */
  readonly lastUse: number;
}

export interface MemoryPlan {
  readonly placements: ReadonlyMap<Tensor, Placement>;
  /** Byte size of each pool slot. */
  readonly slots: readonly number[];
  /** Most bytes of intermediates alive at once. */
  readonly peakBytes: number;
}

/**
 * Plans `intermediates` written by kernel `writer.get(n)` and read last by `lastRead.get(n)`.
 * Greedy by size (TFLite's shared-object planner): values from the largest down each take the
 * smallest slot that is free over their whole life (kernels index by their own shapes, so a
 * larger buffer serves), else a new slot of their size. Reusing only slots of the same size, in
 * the order values are written, left the iBOT step at spec §10 with 1.29× the bytes ever alive at
 * once; BENCHMARKS.md has the figure this gives.
 */
export function planMemory(intermediates: readonly Tensor[], writer: ReadonlyMap<Tensor, number>, lastRead: ReadonlyMap<Tensor, number>): MemoryPlan {
  const lives = intermediates.map((node) => {
    const def = writer.get(node)!;
    return { node, def, lastUse: Math.max(def, lastRead.get(node) ?? def), size: bytesOf(node) };
  });
  const slots: number[] = [];
  const busy: { def: number; lastUse: number }[][] = []; // the lives each slot holds
  const placements = new Map<Tensor, Placement>();
  const overlaps = (a: { def: number; lastUse: number }, b: { def: number; lastUse: number }) => a.def <= b.lastUse && b.def <= a.lastUse;
  for (const v of [...lives].sort((a, b) => b.size - a.size || a.def - b.def)) {
    let slot = -1;
    for (let i = 0; i < slots.length; i++) if ((slot < 0 || slots[i] < slots[slot]) && !busy[i].some((u) => overlaps(u, v))) slot = i;
    if (slot < 0) {
      slot = slots.length;
      slots.push(v.size);
      busy.push([]);
    }
    busy[slot].push(v);
    placements.set(v.node, { node: v.node, slot, def: v.def, lastUse: v.lastUse });
  }
  // The most bytes alive at once, at some kernel where a value is written: no plan needs fewer.
  let peak = 0;
  for (const { def } of lives)
    peak = Math.max(
      peak,
      lives.reduce((a, u) => (u.def <= def && u.lastUse >= def ? a + u.size : a), 0),
    );
  return { placements, slots, peakBytes: peak };
}

/** Where a run's values live: the pool of intermediates, and the outputs that take donated inputs' buffers. */
export interface BufferPlan {
  readonly memory: MemoryPlan;
  /** Output index → the input leaf whose buffer it takes. */
  readonly donation: ReadonlyMap<number, number>;
  /** Kernel index → the donated input it updates in place, reading it through its output binding. */
  readonly aliases: ReadonlyMap<number, Tensor>;
}

/**
 * Liveness (who writes each value and who reads it last), the memory plan of the intermediates,
 * and donation: an output takes a donatable input's buffer when nothing reads the input after the
 * output's kernel starts, or that kernel's threads read it only at the elements they write (then
 * the kernel reads it through its output binding: one buffer, bound once).
 */
export function planBuffers(
  kernels: readonly KernelBody[],
  inputs: readonly Tensor[],
  outputs: readonly Tensor[],
  donatable: (leaf: number) => boolean,
): BufferPlan {
  const writer = new Map<Tensor, number>();
  const lastRead = new Map<Tensor, number>();
  kernels.forEach((k, i) => {
    writer.set(k.output, i);
    for (const r of k.reads) lastRead.set(r, i);
  });
  const outSet = new Set(outputs);
  const memory = planMemory(
    [...writer.keys()].filter((n) => !outSet.has(n)),
    writer,
    lastRead,
  );
  const donation = new Map<number, number>();
  const aliases = new Map<number, Tensor>();
  const taken = new Set<number>();
  outputs.forEach((o, oi) => {
    const w = writer.get(o)!;
    const k = kernels[w];
    const last = (inp: Tensor) => lastRead.get(inp) ?? -1;
    const inPlace = (inp: Tensor) => [...(k.readKeys.get(inp) ?? [])].every((key) => k.storeKeys.has(key));
    const li = inputs.findIndex(
      (inp, l) => donatable(l) && !taken.has(l) && inp.dtype === o.dtype && inp.size === o.size && (last(inp) < w || (last(inp) === w && inPlace(inp))),
    );
    if (li < 0) return;
    taken.add(li);
    donation.set(oi, li);
    if (k.reads.includes(inputs[li]) && last(inputs[li]) === w) aliases.set(w, inputs[li]);
  });
  return { memory, donation, aliases };
}
