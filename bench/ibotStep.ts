/**
 * The iBOT training step at spec §10 (`wgrad pretrain --recipe paper`: patch 4, width 96, batch 64)
 * on random inputs: seconds per step after a warm-up step, on the CPU backend or on a WebGPU
 * device. Spec §10 stays the benchmark's subject, so its figures compare across builds and with
 * PyTorch's (issue 17), whatever the default recipe becomes.
 */
import * as w from "../src/index.js";
import type { GpuContext } from "../src/index.js";
import { PAPER_CONFIG } from "../src/train/config.js";
import { modelConfig } from "../src/train/pretrain.js";
import { specsOf } from "../src/train/features.js";

export async function ibotStepSeconds(gpu: GpuContext | null): Promise<{ seconds: number; batch: number; kernels?: number }> {
  const c = PAPER_CONFIG;
  const mc = modelConfig(c);
  const B = c.batchSize;
  const n = (28 / c.patchSize) ** 2;
  const init = w.evaluate(() => w.initIbotState(w.randomKey(0), mc));
  const batchSpec = { globals: w.spec([2 * B, 1, 28, 28]), locals: w.spec([c.localCrops * B, 1, c.localSize, c.localSize]), masks: w.spec([2 * B, n]) };
  const f = (st: w.IbotState, b: w.IbotBatch, s: w.IbotSchedule) => w.ibotStep(st, b, s, mc);
  const specs = [specsOf(init), batchSpec, w.scheduleSpec()] as never;
  type Exe = { run: (...a: unknown[]) => { state: unknown; metrics: { loss: w.HostTensor | w.GpuArray } }; stats?: () => { kernels: number } };
  const exe = (gpu ? w.compile(f as never, specs, { backend: gpu, donate: [0] }) : w.compile(f as never, specs)) as unknown as Exe;
  const rand = (k: number) => Float32Array.from({ length: k }, () => Math.random() - 0.5);
  const batch = { globals: rand(2 * B * 784), locals: rand(c.localCrops * B * c.localSize ** 2), masks: Float32Array.from({ length: 2 * B * n }, () => (Math.random() < 0.2 ? 1 : 0)) };
  const sched = (i: number) => ({ lr: 1e-4, weightDecay: 0.04, momentum: 0.996, teacherTemp: 0.04, teacherPatchTemp: 0.04, step: i, lastLayerStep: i, key: new Int32Array([0, i]) });
  const finish = async (r: ReturnType<Exe["run"]>) => (r.metrics.loss instanceof w.GpuArray ? await r.metrics.loss.toArray() : r.metrics.loss.data);
  let r = exe.run(init, batch, sched(1));
  await finish(r);
  const t0 = performance.now();
  r = exe.run(r.state, batch, sched(2));
  await finish(r);
  return { seconds: (performance.now() - t0) / 1000, batch: B, ...(exe.stats ? { kernels: exe.stats().kernels } : {}) };
}
