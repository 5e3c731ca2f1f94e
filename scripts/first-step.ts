/**
 * Times the default pre-training step's first runs on WebGPU: its compile, the first step (on
 * lavapipe mostly shader compilation, since lavapipe compiles a pipeline at its first dispatch)
 * and two later steps, with its kernel and pipeline counts. Run it with the shader cache off to
 * see what a new user waits through:
 *   MESA_SHADER_CACHE_DISABLE=true node --import tsx scripts/first-step.ts
 * BENCHMARKS.md (2026-12-07, later session) compares two trees with it, run alternately.
 */
import { evaluate, initIbotState, randomKey, webgpu, type IbotState, type RunResult } from "../src/internals.js";
import { DEFAULT_CONFIG } from "../src/train/config.js";
import { batchSpecOf, geometryOf } from "../src/train/geometry.js";
import { compileIbotStep } from "../src/train/loop.js";
import { modelConfig } from "../src/train/pretrain.js";

const seconds = (t0: number) => ((performance.now() - t0) / 1000).toFixed(2);

const gpu = await webgpu();
const c = DEFAULT_CONFIG;
const g = geometryOf(c);
const mc = modelConfig(c, g);
const B = c.batchSize;
const init = evaluate(() => initIbotState(randomKey(c.seed), mc));
const tc = performance.now();
const exe = compileIbotStep(mc, init, batchSpecOf(g, B, c.localCrops), gpu);
const { kernels, pipelines } = exe.stats();
console.log(`adapter ${gpu.adapterName}: compiled in ${seconds(tc)} s, ${kernels} kernels, ${pipelines} pipelines`);
// A fixed batch: the timings do not depend on the values.
const wave = (n: number, f: number) => Float32Array.from({ length: n }, (_, i) => Math.sin(i * f));
const batch = {
  globals: wave(2 * B * g.size ** 2, 0.7),
  locals: wave(c.localCrops * B * g.localSize ** 2, 0.3),
  masks: wave(2 * B * g.tokens, 1.3).map((v) => (v > 0.6 ? 1 : 0)),
};
const sched = {
  lr: 1e-4,
  weightDecay: 0.04,
  momentum: 0.98,
  teacherTemp: 0.04,
  teacherPatchTemp: 0.04,
  step: 1,
  lastLayerStep: 1,
  key: new Int32Array([0, 1]),
};
let state: RunResult<IbotState> = init;
for (const which of ["first step", "second step", "third step"]) {
  const t = performance.now();
  const r = exe.run(state, batch, sched); // the state is donated: the next step takes the new one
  state = r.state;
  await r.metrics.loss.toArray();
  console.log(`${which}: ${seconds(t)} s`);
}
process.exit(0);
