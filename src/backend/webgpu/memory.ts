/**
 * The compile-time memory plan: every intermediate gets a slot in a pool of buffers that lives as
 * long as the executable; a slot is reused once the value in it has been read for the last time.
 * Outputs get fresh buffers per run (the caller owns them), or a donated input's buffer.
 */
import type { Tensor } from "../../dsl/index.js";


// Every GPU element is 4 bytes (f32, i32, and bool stored as u32).
export const bytesOf = (n: Tensor): number => n.size * 4;

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
 * A slot is reused by a value of the same byte size whose life starts after the slot's last read.
 */
export function planMemory(intermediates: readonly Tensor[], writer: ReadonlyMap<Tensor, number>, lastRead: ReadonlyMap<Tensor, number>): MemoryPlan {
  const slots: number[] = [];
  const freeAt: number[] = []; // kernel index after which each slot is free again
  const placements = new Map<Tensor, Placement>();
  const sorted = [...intermediates].sort((a, b) => writer.get(a)! - writer.get(b)!);
  let peak = 0;
  const live: Placement[] = [];
  for (const n of sorted) {
    const def = writer.get(n)!;
    const lastUse = Math.max(def, lastRead.get(n) ?? def);
    const size = bytesOf(n);
    let slot = slots.findIndex((s, i) => s === size && freeAt[i] < def);
    if (slot < 0) {
      slot = slots.length;
      slots.push(size);
      freeAt.push(-1);
    }
    freeAt[slot] = lastUse;
    const p = { node: n, slot, def, lastUse };
    placements.set(n, p);
    live.push(p);
    peak = Math.max(peak, live.filter((q) => q.def <= def && q.lastUse >= def).reduce((a, q) => a + bytesOf(q.node), 0));
  }
  return { placements, slots, peakBytes: peak };
}
