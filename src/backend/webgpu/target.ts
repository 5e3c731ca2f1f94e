/**
 * What code generation knows of the device it compiles for: a plain record of facts and choices,
 * with no device handle and nothing mutable. The planner and the kernel templates read only this,
 * so the same graph and Target always give the same kernels.
 */
import type { MatmulClass } from "./matmulClass.js";
import { DEFAULT_MATMUL, fitColumns, type MatmulParams } from "./templates.js";
import type { TileLimits } from "./matmulTiled.js";

/** Matmul tile choices by shape class (MatmulClass.key), as the autotuner measured them. */
export type MatmulTuning = ReadonlyMap<string, MatmulParams>;

export interface Target {
  /** A CPU implementation of WebGPU (lavapipe, SwiftShader): templates sized for SIMD lanes, not SMs. */
  readonly cpu: boolean;
  /** The fewest lanes a subgroup has, or 0 where the device has no subgroup operations. */
  readonly subgroupSize: number;
  /** The device limits kernels must fit: storage bindings per kernel and workgroup-memory tiles. */
  readonly limits: TileLimits & { readonly maxStorageBuffersPerShaderStage: number };
  /** The tiles a matmul of this class is built with: forced by the caller, else tuned, else the adapter's default. */
  readonly matmulFor: (cls: MatmulClass) => MatmulParams;
  /** Tiles forced by the caller (compile's `matmul` option), which also pick the scalar template's tiles. */
  readonly forcedMatmul?: MatmulParams;
  /** Whether matmuls take fused elementwise epilogues (compile's `matmulEpilogues`, default true). */
  readonly matmulEpilogues: boolean;
}

/** Matmul tiles for CPU adapters with subgroups (lavapipe): 32 rows per thread shared by subgroup broadcast. */
export const CPU_SUBGROUP_MATMUL: MatmulParams = { tm: 32, tn: 4, wx: 16, wy: 1, interleave: true, subgroup: 8 };

/** Matmul tiles for adapters that are not CPUs: 64×64 outputs a workgroup from 16-deep tiles in 8 KiB of workgroup memory. */
export const GPU_TILED_MATMUL: MatmulParams = { tm: 4, tn: 4, wx: 16, wy: 16, bk: 16 };

/** The facts of an adapter that choose its default tiles. */
export interface AdapterKind {
  readonly cpu: boolean;
  readonly subgroupSize: number;
}

/**
 * Matmul tiles for shape classes the autotuner has not timed: on a CPU adapter with subgroups
 * of 8 or more lanes the subgroup-broadcast kernel (3–4× the others on lavapipe here,
 * BENCHMARKS.md); on other adapters 64×64 workgroup-memory tiles, which fit every WebGPU
 * device's minimum limits; else 4×4 blocks.
 */
export function defaultMatmul(a: AdapterKind): MatmulParams {
  if (!a.cpu) return GPU_TILED_MATMUL;
  return a.subgroupSize >= 8 ? CPU_SUBGROUP_MATMUL : DEFAULT_MATMUL;
}

/**
 * The default tiles for a matmul with `n` output columns, narrowed by fitColumns (the ViT step:
 * 775 ms against 851, timed interleaved on lavapipe).
 */
export const defaultMatmulFor = (a: AdapterKind, n: number): MatmulParams => fitColumns(defaultMatmul(a), n);

/** The Target of an adapter, with the caller's forced tiles or the autotuner's choices. */
export function makeTarget(a: AdapterKind, limits: Target["limits"], tuning: MatmulTuning, forcedMatmul?: MatmulParams, matmulEpilogues = true): Target {
  const matmulFor = (c: MatmulClass) => forcedMatmul ?? tuning.get(c.key) ?? defaultMatmulFor(a, c.n);
  return { cpu: a.cpu, subgroupSize: a.subgroupSize, limits, matmulFor, matmulEpilogues, ...(forcedMatmul ? { forcedMatmul } : {}) };
}
