/**
 * The iBOT training step at spec §10 (`wgrad pretrain --recipe paper`: patch 4, width 96, batch 64)
 * on random inputs, on the CPU backend or on a WebGPU device: a step runner for the caller to time
 * (interleaved with PyTorch's same step, bench/torch/steps.py), or seconds per step after a
 * warm-up step. Spec §10 stays the benchmark's subject, so its figures compare across builds and
 * with PyTorch's (issue 17), whatever the default recipe becomes.
 */
import * as w from "../src/index.js";
import type { GpuContext } from "../src/index.js";
import { PAPER_CONFIG } from "../src/train/config.js";
import { modelConfig } from "../src/train/pretrain.js";
import { specsOf } from "../src/train/features.js";

export interface IbotStepRunner {
  /** One training step on the same batch, awaited until its loss is read back. The first is a warm-up (it compiles the shaders). */
  readonly step: () => Promise<void>;
  /** Images per step (the batch of spec §10). */
  readonly batch: number;
  /** The student's parameter count. */
  readonly params: number;
  /** Kernels per step (WebGPU). */
  readonly kernels?: number;
  /** WebGPU: bytes of the memory plan's pool, the most bytes of intermediates alive at once, and the state's bytes. */
  readonly memory?: { readonly plannedBytes: number; readonly peakBytes: number; readonly stateBytes: number };
  /** The loss of every step run so far. */
  readonly losses: number[];
}

export function ibotStepRunner(gpu: GpuContext | null): IbotStepRunner {
  const c = PAPER_CONFIG;
  const mc = modelConfig(c);
  const B = c.batchSize;
  const n = (28 / c.patchSize) ** 2;
  const init = w.evaluate(() => w.initIbotState(w.randomKey(0), mc));
  const batchSpec = { globals: w.spec([2 * B, 1, 28, 28]), locals: w.spec([c.localCrops * B, 1, c.localSize, c.localSize]), masks: w.spec([2 * B, n]) };
  const f = (st: w.IbotState, b: w.IbotBatch, s: w.IbotSchedule) => w.ibotStep(st, b, s, mc);
  const specs = [specsOf(init), batchSpec, w.scheduleSpec()] as never;
  type Exe = { run: (...a: unknown[]) => { state: unknown; metrics: { loss: w.HostTensor | w.GpuArray } }; stats?: () => { kernels: number; plannedBytes: number; peakBytes: number } };
  const exe = (gpu ? w.compile(f as never, specs, { backend: gpu, donate: [0] }) : w.compile(f as never, specs)) as unknown as Exe;
  const rand = (k: number) => Float32Array.from({ length: k }, () => Math.random() - 0.5);
  const batch = { globals: rand(2 * B * 784), locals: rand(c.localCrops * B * c.localSize ** 2), masks: Float32Array.from({ length: 2 * B * n }, () => (Math.random() < 0.2 ? 1 : 0)) };
  const sched = (i: number) => ({ lr: 1e-4, weightDecay: 0.04, momentum: 0.996, teacherTemp: 0.04, teacherPatchTemp: 0.04, step: i, lastLayerStep: i, key: new Int32Array([0, i]) });
  const isGpu = (x: unknown): x is w.GpuArray => x instanceof w.GpuArray;
  let state: unknown = init;
  let i = 0;
  const losses: number[] = [];
  const step = async () => {
    i += 1;
    const r = exe.run(state, batch, sched(i)); // the state is donated: the next step takes the new one
    state = r.state;
    const loss = r.metrics.loss instanceof w.GpuArray ? await r.metrics.loss.toArray() : r.metrics.loss.data;
    losses.push(Number(loss[0]));
    for (const a of w.flatten(r.metrics as never, isGpu).leaves) (a as w.GpuArray).dispose();
  };
  const elements = (tree: unknown) => w.flatten(tree as never, (x: unknown): x is w.HostTensor => x instanceof w.HostTensor).leaves.reduce((a: number, t) => a + (t as w.HostTensor).size, 0);
  const params = elements(init.student);
  const stateBytes = 4 * elements(init);
  const st = exe.stats?.();
  return { step, batch: B, params, losses, ...(st ? { kernels: st.kernels, memory: { plannedBytes: st.plannedBytes, peakBytes: st.peakBytes, stateBytes } } : {}) };
}

/** Seconds of one step after a warm-up step. */
export async function ibotStepSeconds(gpu: GpuContext | null): Promise<{ seconds: number; batch: number; kernels?: number }> {
  const r = ibotStepRunner(gpu);
  await r.step();
  const t0 = performance.now();
  await r.step();
  return { seconds: (performance.now() - t0) / 1000, batch: r.batch, ...(r.kernels !== undefined ? { kernels: r.kernels } : {}) };
}
