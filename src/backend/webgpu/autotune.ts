/**
 * A small matmul autotuner: for each matmul shape class of a function (sizes, batch and which
 * operands are transposed), times a few tile configurations once on the device and caches the
 * fastest on the GpuContext, where every later compile for that device finds it.
 */
import { input, matmul, spec, swapAxes, trace, type Tensor, type TensorSpec, type Tree } from "../../dsl/index.js";
import type { GpuArray } from "./array.js";
import type { GpuContext } from "./device.js";
import { compileWebGpu, matmulClasses } from "./compiler.js";
import type { MatmulParams } from "./templates.js";

/** Tile configurations tried on every device: 4×4 and 8×4 register blocks, square or row-uniform workgroups. */
export const MATMUL_CANDIDATES: readonly MatmulParams[] = [
  { tm: 4, tn: 4, wx: 8, wy: 8 },
  { tm: 4, tn: 4, wx: 8, wy: 8, interleave: true },
  { tm: 8, tn: 4, wx: 8, wy: 8, interleave: true },
  { tm: 4, tn: 4, wx: 64, wy: 1, interleave: true },
  { tm: 2, tn: 4, wx: 8, wy: 8 },
];

/** Also tried where subgroups have 8 or more lanes: 16 or 32 rows per thread, shared by broadcast. */
export const SUBGROUP_MATMUL_CANDIDATES: readonly MatmulParams[] = [
  { tm: 16, tn: 4, wx: 16, wy: 1, interleave: true, subgroup: 8 },
  { tm: 32, tn: 4, wx: 16, wy: 1, interleave: true, subgroup: 8 },
  { tm: 32, tn: 4, wx: 64, wy: 1, interleave: true, subgroup: 8 },
];

/** The tile configurations the autotuner times on this device. */
export function matmulCandidates(ctx: GpuContext): readonly MatmulParams[] {
  return ctx.subgroupSize >= 8 ? [...MATMUL_CANDIDATES, ...SUBGROUP_MATMUL_CANDIDATES] : MATMUL_CANDIDATES;
}

export interface TuneResult {
  readonly key: string;
  readonly params: MatmulParams;
  /** The configurations timed (matmulCandidates), and the median milliseconds per run (upload included) of each. */
  readonly candidates: readonly MatmulParams[];
  readonly timesMs: readonly number[];
}

/**
 * Times the candidates for every matmul class in `f` not yet tuned on `ctx` and records the
 * winners. Classes under `minFlops` keep the default (timing them costs more than it saves).
 */
export async function autotune(
  f: (...args: never[]) => unknown,
  specs: readonly unknown[],
  ctx: GpuContext,
  opts: { minFlops?: number; reps?: number } = {},
): Promise<TuneResult[]> {
  const { minFlops = 2e6, reps = 5 } = opts;
  const results: TuneResult[] = [];
  for (const c of matmulClasses(trace(f as (...a: never[]) => Tree<Tensor>, specs as readonly Tree<TensorSpec>[]))) {
    if (ctx.matmulChoices.has(c.key) || 2 * c.m * c.n * c.k * c.batch < minFlops) continue;
    const a = input(c.transA ? [c.batch, c.k, c.m] : [c.batch, c.m, c.k]);
    const b = input(c.transB ? [c.batch, c.n, c.k] : [c.batch, c.k, c.n]);
    const graph = trace((x: Tensor, y: Tensor) => matmul(c.transA ? swapAxes(x) : x, c.transB ? swapAxes(y) : y), [spec(a.shape), spec(b.shape)]);
    const candidates = matmulCandidates(ctx);
    const exes = candidates.map((params) => compileWebGpu(graph, ctx, { matmul: params }));
    const x = new Float32Array(a.size).fill(0.5);
    const y = new Float32Array(b.size).fill(0.5);
    const times = await interleavedMedians(
      exes.map((exe) => async () => {
        (exe.run(x, y) as GpuArray).dispose();
        await ctx.device.queue.onSubmittedWorkDone();
      }),
      reps,
    );
    exes.forEach((e) => e.dispose());
    const best = candidates[times.indexOf(Math.min(...times))];
    ctx.matmulChoices.set(c.key, best);
    results.push({ key: c.key, params: best, candidates, timesMs: times });
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
