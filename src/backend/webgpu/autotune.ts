/**
 * A small matmul autotuner: for each matmul shape class of a function (sizes, batch and which
 * operands are transposed), times a few tile configurations once on the device and caches the
 * fastest on the GpuContext, where every later compile for that device finds it.
 */
import { add, matmul, sizeOf, spec, swapAxes, trace, type Tensor, type TensorSpec, type Tree } from "../../dsl/index.js";
import type { GpuArray } from "./array.js";
import type { GpuContext } from "./device.js";
import { compileWebGpu, matmulClasses } from "./compiler.js";
import { tiledFits } from "./matmulTiled.js";
import { defaultMatmulFor, type MatmulTuning } from "./target.js";
import type { MatmulParams } from "./templates.js";

/** Tile configurations tried on every device: 4×4 and 8×4 register blocks, square or row-uniform workgroups. */
export const MATMUL_CANDIDATES: readonly MatmulParams[] = [
  { tm: 4, tn: 4, wx: 8, wy: 8 },
  { tm: 4, tn: 4, wx: 8, wy: 8, interleave: true },
  { tm: 8, tn: 4, wx: 8, wy: 8, interleave: true },
  { tm: 4, tn: 4, wx: 64, wy: 1, interleave: true },
  { tm: 2, tn: 4, wx: 8, wy: 8 },
];

/** Also tried where subgroups have 8 or more lanes: 16 or 32 rows per thread, shared by broadcast, in workgroups of 8 to 64 lanes. */
export const SUBGROUP_MATMUL_CANDIDATES: readonly MatmulParams[] = [
  { tm: 16, tn: 4, wx: 16, wy: 1, interleave: true, subgroup: 8 },
  { tm: 32, tn: 4, wx: 16, wy: 1, interleave: true, subgroup: 8 },
  { tm: 32, tn: 4, wx: 64, wy: 1, interleave: true, subgroup: 8 },
  { tm: 32, tn: 4, wx: 8, wy: 1, interleave: true, subgroup: 8 },
  { tm: 16, tn: 4, wx: 8, wy: 1, interleave: true, subgroup: 8 },
];

/**
 * Also tried on adapters that are not CPUs: workgroup-memory tiles (matmulTiled.ts) from 32×32 to
 * 128×128 outputs a workgroup, 64 or 256 threads with 4×4 to 8×8 blocks, 8 to 32 deep: the
 * shapes of the public WebGPU and CUDA SGEMM kernels, small tiles for small matrices. Those the
 * device's limits do not allow are dropped.
 */
export const TILED_MATMUL_CANDIDATES: readonly MatmulParams[] = [
  { tm: 4, tn: 4, wx: 8, wy: 8, bk: 32 },
  { tm: 4, tn: 4, wx: 16, wy: 16, bk: 16 },
  { tm: 8, tn: 8, wx: 8, wy: 8, bk: 16 },
  { tm: 8, tn: 4, wx: 16, wy: 16, bk: 8 },
  { tm: 4, tn: 8, wx: 16, wy: 16, bk: 8 },
  { tm: 8, tn: 8, wx: 16, wy: 16, bk: 8 },
  { tm: 8, tn: 8, wx: 16, wy: 16, bk: 16 },
];

/**
 * The tile configurations the autotuner times on this device: on a CPU adapter with subgroups
 * (lavapipe) only the subgroup kernels, which beat the others there at every ViT and square shape
 * measured (BENCHMARKS.md); elsewhere every configuration that can run, workgroup-memory tiles
 * included where the adapter is not a CPU.
 */
export function matmulCandidates(ctx: GpuContext): readonly MatmulParams[] {
  if (ctx.cpu) return ctx.subgroupSize >= 8 ? SUBGROUP_MATMUL_CANDIDATES : MATMUL_CANDIDATES;
  const tiled = TILED_MATMUL_CANDIDATES.filter((p) => tiledFits(p, ctx.limits));
  return [...MATMUL_CANDIDATES, ...(ctx.subgroupSize >= 8 ? SUBGROUP_MATMUL_CANDIDATES : []), ...tiled];
}

/** A candidate must beat the default by this factor to replace it: timing noise alone should not. */
const MARGIN = 0.9;

/** The tile choices of tuning results, by shape class: what `compile(..., { tuning })` takes. */
export const tuningOf = (results: readonly TuneResult[], known: MatmulTuning = new Map()): MatmulTuning =>
  new Map([...known, ...results.map((r) => [r.key, r.params] as const)]);

/** The autotuner's choice for one matmul shape class (`key`): the winning tiles, and every candidate timed with its median time. */
export interface TuneResult {
  readonly key: string;
  readonly params: MatmulParams;
  /** The configurations timed (the class's default first, then matmulCandidates), and the median milliseconds per run of each. */
  readonly candidates: readonly MatmulParams[];
  readonly timesMs: readonly number[];
}

/**
 * Times the candidates for every matmul class in `f` not in `known` and returns the winners
 * (pass them to compile as `tuning: tuningOf(results)`). The class's default tiles are timed too
 * and kept unless a candidate is clearly faster (by MARGIN). Classes under `minFlops` keep the
 * default (timing them costs more than it saves).
 */
export async function autotune(
  f: (...args: never[]) => unknown,
  specs: readonly unknown[],
  ctx: GpuContext,
  opts: { minFlops?: number; reps?: number; known?: MatmulTuning } = {},
): Promise<TuneResult[]> {
  const { minFlops = 2e6, reps = 7, known = new Map() } = opts;
  const results: TuneResult[] = [];
  // Operands live on the device, so that uploads do not dilute the kernels' differences.
  const onDevice = (shape: readonly number[]) => {
    const upload = compileWebGpu(
      trace((t: Tensor) => add(t, 0), [spec(shape)]),
      ctx,
    );
    const x = upload.run(new Float32Array(sizeOf(shape)).fill(0.5)) as GpuArray;
    upload.dispose(); // its staging buffer; x is the caller's
    return x;
  };
  for (const c of matmulClasses(trace(f as (...a: never[]) => Tree<Tensor>, specs as readonly Tree<TensorSpec>[]))) {
    if (known.has(c.key) || 2 * c.m * c.n * c.k * c.batch < minFlops) continue;
    const aShape = c.transA ? [c.batch, c.k, c.m] : [c.batch, c.m, c.k];
    const bShape = c.transB ? [c.batch, c.n, c.k] : [c.batch, c.k, c.n];
    const graph = trace((x: Tensor, y: Tensor) => matmul(c.transA ? swapAxes(x) : x, c.transB ? swapAxes(y) : y), [spec(aShape), spec(bShape)]);
    const fallback = defaultMatmulFor(ctx, c.n);
    const others = matmulCandidates(ctx).filter((p) => JSON.stringify(p) !== JSON.stringify(fallback));
    const candidates = [fallback, ...others];
    const exes = candidates.map((params) => compileWebGpu(graph, ctx, { matmul: params }));
    const [x, y] = [onDevice(aShape), onDevice(bShape)];
    const times = await interleavedMedians(
      exes.map((exe) => async () => {
        (exe.run(x, y) as GpuArray).dispose();
        await ctx.device.queue.onSubmittedWorkDone();
      }),
      reps,
    );
    exes.forEach((e) => e.dispose());
    [x, y].forEach((t) => t.dispose());
    const fastest = times.indexOf(Math.min(...times));
    const params = times[fastest] < MARGIN * times[0] ? candidates[fastest] : fallback;
    results.push({ key: c.key, params, candidates, timesMs: times });
  }
  return results;
}

/**
 * Median milliseconds of each async job over `rounds` rounds that run every job once, in turn,
 * after one warm-up each. Load on a shared CPU drifts; timing one job after another would let
 * that drift pick the winner.
 */
export async function interleavedMedians(jobs: readonly (() => Promise<void>)[], rounds: number): Promise<number[]> {
  for (const job of jobs) await job();
  const samples = jobs.map(() => [] as number[]);
  for (let i = 0; i < rounds; i++)
    for (const [k, job] of jobs.entries()) {
      const t0 = performance.now();
      await job();
      samples[k].push(performance.now() - t0);
    }
  return samples.map((ts) => [...ts].sort((p, q) => p - q)[Math.floor(ts.length / 2)]);
}
