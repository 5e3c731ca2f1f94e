/**
 * The iBOT training step at spec §10 (`wgrad pretrain --recipe paper`: patch 4, width 96, batch 64)
 * on random inputs, on the CPU backend or on a WebGPU device: a step runner for the caller to time
 * (interleaved with PyTorch's same step, bench/torch/steps.py), or seconds per step after a
 * warm-up step. Spec §10 stays the benchmark's subject, so its figures compare across builds and
 * with PyTorch's (issue 17), whatever the default recipe becomes.
 */
import * as w from "../src/internals.js";
import type { GpuContext } from "../src/internals.js";
import { PAPER_CONFIG } from "../src/train/config.js";
import { batchSpecOf, geometryOf } from "../src/train/geometry.js";
import { compileIbotStep } from "../src/train/loop.js";
import { modelConfig } from "../src/train/pretrain.js";

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

export function ibotStepRunner(gpu: GpuContext | null, tuning?: w.MatmulTuning): IbotStepRunner {
  const c = PAPER_CONFIG;
  const g = geometryOf(c);
  const mc = modelConfig(c, g);
  const B = c.batchSize;
  const init = w.evaluate(() => w.initIbotState(w.randomKey(0), mc));
  const exe = compileIbotStep(mc, init, batchSpecOf(g, B, c.localCrops), gpu, tuning);
  const rand = (k: number) => Float32Array.from({ length: k }, () => Math.random() - 0.5);
  const masks = Float32Array.from({ length: 2 * B * g.tokens }, () => (Math.random() < 0.2 ? 1 : 0));
  const batch = { globals: rand(2 * B * g.size ** 2), locals: rand(c.localCrops * B * g.localSize ** 2), masks };
  const sched = (i: number) => ({
    lr: 1e-4,
    weightDecay: 0.04,
    momentum: 0.996,
    teacherTemp: 0.04,
    teacherPatchTemp: 0.04,
    step: i,
    lastLayerStep: i,
    key: new Int32Array([0, i]),
  });
  let state: w.RunResult<w.IbotState> = init;
  let i = 0;
  const losses: number[] = [];
  const step = async () => {
    i += 1;
    const r = exe.run(state, batch, sched(i)); // the state is donated: the next step takes the new one
    state = r.state;
    losses.push((await r.metrics.loss.toArray())[0]);
    for (const a of w.flatten(r.metrics, isArray).leaves) a.dispose(); // only the loss is read
  };
  const st = exe.stats();
  const memory = { plannedBytes: st.plannedBytes, peakBytes: st.peakBytes, stateBytes: 4 * w.treeSize(init) };
  return { step, batch: B, params: w.treeSize(init.student), losses, ...(gpu ? { kernels: st.kernels, memory } : {}) };
}

const isArray = (x: unknown): x is w.DeviceArray => x instanceof w.HostTensor || x instanceof w.GpuArray;

/** Seconds of one step after a warm-up step. */
export async function ibotStepSeconds(gpu: GpuContext | null, tuning?: w.MatmulTuning): Promise<{ seconds: number; batch: number; kernels?: number }> {
  const r = ibotStepRunner(gpu, tuning);
  await r.step();
  const t0 = performance.now();
  await r.step();
  return { seconds: (performance.now() - t0) / 1000, batch: r.batch, ...(r.kernels !== undefined ? { kernels: r.kernels } : {}) };
}
