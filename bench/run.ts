/**
 * Benchmarks (npm run bench): CPU reference kernels; on WebGPU, matmul against the peers in the
 * same run, fused against unfused elementwise chains, and the ViT training step. Prints a
 * Markdown table for BENCHMARKS.md (and JSON lines with --json). Each figure is a median of
 * repeated runs after a warm-up.
 */
import os from "node:os";
import * as w from "../src/internals.js";
import type { GpuContext, Tensor } from "../src/internals.js";
import { peerMatmulRunners, type MatmulRunner } from "./peers.js";
import { BATCH, initModel, stepSpecs, trainStep, type Model } from "./vitStep.js";
import { ibotStepRunner, ibotStepSeconds } from "./ibotStep.js";
import { peerVitRunners } from "./peerVitStep.js";
import { describeTorch, torchPeer, type TorchDevice, type TorchPeer } from "./torchPeer.js";

interface Row {
  name: string;
  value: string;
  note: string;
}
const rows: Row[] = [];
const record = (name: string, value: string, note = "") => {
  rows.push({ name, value, note });
  console.error(`  ${name}: ${value} ${note}`);
};

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
function timeSync(fn: () => void, reps: number): number {
  fn();
  const ts: number[] = [];
  for (let i = 0; i < reps; i++) {
    const t0 = performance.now();
    fn();
    ts.push(performance.now() - t0);
  }
  return median(ts);
}
/** A timing job: runs `fn` and waits until the device has finished its work. */
const gpuJob = (ctx: GpuContext, fn: () => void) => async () => {
  fn();
  await ctx.device.queue.onSubmittedWorkDone();
};
const loadAverage = () =>
  os
    .loadavg()
    .map((l) => l.toFixed(2))
    .join(" ");
const gflops = (n: number, ms: number) => (2 * n ** 3) / (ms * 1e6);

const rand = (n: number) => Float32Array.from({ length: n }, () => Math.random() - 0.5);
const chain = (x: Tensor) => {
  let y = x;
  for (let i = 0; i < 5; i++) y = w.tanh(w.add(w.mul(y, 1.01), 0.1)); // 15 primitives, 10 of them binary/unary arithmetic
  return y;
};

// ---- PyTorch as a peer (issue 17): one worker (bench/torch/steps.py) for the ViT and iBOT steps,
// started on first use. `--torch-device cuda` picks its device (default cpu); WGRAD_PYTHON its
// Python (default python3 on PATH). Without PyTorch its rows say why and the rest runs.
const torchFlag = process.argv.indexOf("--torch-device");
const torchDevice = (torchFlag >= 0 ? process.argv[torchFlag + 1] : "cpu") as TorchDevice;
if (torchDevice !== "cpu" && torchDevice !== "cuda") throw new Error(`--torch-device: expected cpu or cuda, got ${String(torchDevice)}`);
let torchWorker: Promise<TorchPeer | { missing: string }> | undefined;
const pytorch = () =>
  (torchWorker ??= torchPeer(torchDevice, { python: process.env.WGRAD_PYTHON || undefined, threads: torchDevice === "cpu" ? os.cpus().length : undefined }));
// ---- end of PyTorch peer setup ----

function cpuBenchmarks() {
  for (const n of [256, 512]) {
    const exe = w.compile(w.matmul, [w.spec([n, n]), w.spec([n, n])]);
    const [a, b] = [rand(n * n), rand(n * n)];
    const ms = timeSync(() => exe.run(a, b), n <= 256 ? 7 : 3);
    record(`CPU backend: matmul ${n}³ f32`, `${gflops(n, ms).toFixed(2)} GFLOP/s`, `${ms.toFixed(1)} ms`);
  }
}

/** Matmul tiles the autotuner chose in this run, passed to every later compile. */
let tuning: w.MatmulTuning = new Map();

async function gpuBenchmarks(ctx: GpuContext) {
  // Matmul, ours (autotuned) and the peers, same adapter, back to back; on a GPU also the sizes
  // where it nears its peak, with every tile candidate's time.
  for (const n of ctx.cpu ? [256, 512, 1024] : [256, 512, 1024, 2048, 4096]) {
    const f = (a: Tensor, b: Tensor) => w.matmul(a, b);
    const specs = [w.spec([n, n]), w.spec([n, n])] as const;
    const tuned = await w.autotune(f, specs, ctx, { known: tuning });
    tuning = w.tuningOf(tuned, tuning);
    const exe = w.compile(f, specs, { backend: ctx, tuning });
    const up = w.compile((t: Tensor) => w.add(t, 0), [w.spec([n, n])], { backend: ctx });
    const [a, b] = [up.run(rand(n * n)), up.run(rand(n * n))];
    const ours = gpuJob(ctx, () => exe.run(a, b).dispose());
    // Ours and the peers that loaded, interleaved so that they run under the same load.
    const peers = await peerMatmulRunners(n);
    const runners = [ours, peers.jax, peers.tfjs];
    const loaded = runners.filter((r): r is MatmulRunner => r !== null);
    const medians = await w.interleavedMedians(loaded, n >= 1024 ? 5 : 9);
    const [ms, jaxMs, tfMs] = runners.map((r) => (r ? medians[loaded.indexOf(r)] : null));
    const p = (v: number | null) => (v === null ? "n/a" : `${gflops(n, v).toFixed(2)}`);
    record(
      `WebGPU: matmul ${n}³ f32`,
      `${gflops(n, ms!).toFixed(2)} GFLOP/s`,
      `jax-js webgpu ${p(jaxMs)}, tfjs-webgpu ${p(tfMs)} GFLOP/s (interleaved, median of ${n >= 1024 ? 5 : 9}); tiles ${JSON.stringify(tuned[0]?.params ?? "cached")}${peers.notes.length ? "; " + peers.notes.join("; ") : ""}`,
    );
    if (!ctx.cpu && tuned[0])
      console.error(
        `    autotuner at ${n}³: ${tuned[0].candidates.map((c, k) => `${JSON.stringify(c)} ${gflops(n, tuned[0].timesMs[k]).toFixed(0)}`).join("; ")} GFLOP/s`,
      );
  }
  // A 15-primitive elementwise chain over 2^20 elements, fused and unfused.
  const n = 1 << 20;
  const x = w.compile((t: Tensor) => w.add(t, 0), [w.spec([n])], { backend: ctx }).run(rand(n));
  const exes = [true, false].map((fusion) => w.compile(chain, [w.spec([n])], { backend: ctx, fusion }));
  const chainMs = await w.interleavedMedians(
    exes.map((exe) => gpuJob(ctx, () => exe.run(x).dispose())),
    9,
  );
  exes.forEach((exe, k) =>
    record(
      `WebGPU: 15-op elementwise chain, 2^20 f32, ${k === 0 ? "fused" : "unfused"}`,
      `${((8 * n) / (chainMs[k] * 1e6)).toFixed(2)} GB/s`,
      `${chainMs[k].toFixed(1)} ms, ${exe.stats().kernels} kernels (GB/s counts one read and one write per element)${k === 1 ? `; fused is ${(chainMs[1] / chainMs[0]).toFixed(1)}× faster (interleaved, median of 9)` : ""}`,
    ),
  );
  // The ViT training step.
  const model = initModel(w.randomKey(0));
  const specs = stepSpecs(model);
  const p0 = w.compile(() => initModel(w.randomKey(0)), [], { backend: ctx }).run();
  const s0 = w.compile((p: Model) => w.adamInit(p), [specs[0]], { backend: ctx }).run(p0);
  const t0 = performance.now();
  tuning = w.tuningOf(await w.autotune(trainStep, specs, ctx, { known: tuning }), tuning);
  const tTune = performance.now() - t0;
  const t1 = performance.now();
  const exe = w.compile(trainStep, specs, { backend: ctx, donate: [0, 1], tuning });
  const tCompile = performance.now() - t1;
  const images = rand(BATCH * 784);
  const labels = Int32Array.from({ length: BATCH }, (_, i) => i % 10);
  let state = { params: p0, state: s0 };
  const step = (i: number) => {
    const r = exe.run(state.params, state.state, [i], images, labels);
    r.loss.dispose();
    state = r;
  };
  const t2 = performance.now();
  step(1);
  await ctx.device.queue.onSubmittedWorkDone();
  const tFirst = performance.now() - t2;
  let i = 2;
  // The same step written in each peer (same model, batch and Adam), its steps interleaved with
  // ours so that all run under the same load.
  const peers = await peerVitRunners();
  const torch = await pytorch(); // PyTorch's step (issue 17), interleaved with the others
  const ours = gpuJob(ctx, () => step(i++));
  const [ms, ...peerMs] = await w.interleavedMedians([ours, ...peers.runners.map((r) => r.step), ...("missing" in torch ? [] : [torch.runners.vit])], 5);
  const stats = exe.stats();
  record(
    "WebGPU: ViT training step (batch 64, 455 050 params, Adam)",
    `${ms.toFixed(0)} ms/step`,
    `${stats.kernels} kernels/step (${stats.pipelines} pipelines); first step ${(tFirst / 1000).toFixed(1)} s after a ${(tCompile / 1000).toFixed(1)} s compile (+${(tTune / 1000).toFixed(1)} s autotuning); median of 5, interleaved with the peers' steps`,
  );
  peers.runners.forEach((r, k) =>
    record(
      `WebGPU: ViT training step in ${r.name}`,
      `${peerMs[k].toFixed(0)} ms/step`,
      `${(peerMs[k] / ms).toFixed(1)}× ours; first step ${r.firstStepS.toFixed(1)} s (tracing and compiling included); losses ${r.losses.map((l) => l.toFixed(4)).join(", ")}`,
    ),
  );
  peers.notes.forEach((n) => record("WebGPU: ViT training step, peer failed", "n/a", n));
  const torchRow = `ViT training step in PyTorch (${torchDevice})`;
  if ("missing" in torch || torch.error) record(torchRow, "n/a", "missing" in torch ? torch.missing : torch.error!);
  else {
    const torchMs = peerMs[peers.runners.length];
    record(
      torchRow,
      `${torchMs.toFixed(0)} ms/step`,
      `ours/PyTorch speed ${(torchMs / ms).toFixed(2)}× (ours ${ms.toFixed(0)} ms/step); ${describeTorch(torch, torchDevice)}; ${torch.info.params.vit} params; median of 5, interleaved with ours (warm-up step excluded); losses ${torch.losses.vit.map((l) => l.toFixed(4)).join(", ")}`,
    );
  }
  const prof = await exe.profile(state.params, state.state, [i], images, labels);
  const byClass = new Map<string, number>();
  for (const { name, ms: t } of prof) {
    const cls = name.replace(/^k\d+_/, "").split("_")[0];
    byClass.set(cls, (byClass.get(cls) ?? 0) + t);
  }
  const total = prof.reduce((a, p) => a + p.ms, 0);
  record(
    "WebGPU: ViT step time by kernel class (exe.profile: GPU timestamps around each kernel)",
    [...byClass]
      .sort((a, b) => b[1] - a[1])
      .slice(0, 5)
      .map(([c, t]) => `${c} ${((100 * t) / total).toFixed(0)}%`)
      .join(", "),
    `${total.toFixed(0)} ms profiled`,
  );
}

function cpuVitStep() {
  const model = initModel(w.randomKey(0));
  const specs = stepSpecs(model);
  const p0 = w.compile(() => initModel(w.randomKey(0)), []).run();
  const s0 = w.compile((p: Model) => w.adamInit(p), [specs[0]]).run(p0);
  const exe = w.compile(trainStep, specs);
  const images = rand(BATCH * 784);
  const labels = Int32Array.from({ length: BATCH }, (_, i) => i % 10);
  const t0 = performance.now();
  exe.run(p0, s0, [1], images, labels);
  record("CPU backend: ViT training step (same step, one run)", `${(performance.now() - t0).toFixed(0)} ms/step`);
}

const device = `${os.cpus()[0]?.model ?? "unknown CPU"} (${os.cpus().length} cores), Node ${process.version}`;
console.error(`wgrad benchmarks on ${device}; load average ${loadAverage()}`);
cpuBenchmarks();
const gpu = await w.acquireDevice()();
let adapter = "no WebGPU adapter";
if (gpu._tag === "Right") {
  adapter = gpu.right.adapterName;
  await gpuBenchmarks(gpu.right);
} else console.error(gpu.left.message);
if (!process.argv.includes("--skip-cpu-step")) cpuVitStep();
// --ibot: the iBOT pre-training step at spec §10 (issues 4 and 17), on WebGPU interleaved with
// PyTorch's same step, and (unless --skip-cpu-step) on the CPU backend.
if (process.argv.includes("--ibot")) {
  const targets: (GpuContext | null)[] = [];
  if (gpu._tag === "Right") targets.push(gpu.right);
  if (!process.argv.includes("--skip-cpu-step")) targets.push(null);
  for (const ctx of targets) {
    if (!ctx) {
      const r = await ibotStepSeconds(ctx);
      record(
        `CPU backend: iBOT pre-training step (spec §10, batch ${r.batch})`,
        `${(r.batch / r.seconds).toFixed(2)} images/s`,
        `${r.seconds.toFixed(1)} s/step`,
      );
      continue;
    }
    const rounds = 3;
    const ours = ibotStepRunner(ctx, tuning);
    const torch = await pytorch();
    const [s, torchS] = (await w.interleavedMedians([ours.step, ...("missing" in torch ? [] : [torch.runners.ibot])], rounds)).map((ms) => ms / 1000);
    const how = `median of ${rounds} after a warm-up step${"missing" in torch ? "" : ", interleaved with PyTorch's"}`;
    record(
      `WebGPU: iBOT pre-training step (spec §10, batch ${ours.batch})`,
      `${(ours.batch / s).toFixed(2)} images/s`,
      `${s.toFixed(2)} s/step, ${ours.kernels} kernels; ${how}`,
    );
    const m = ours.memory!;
    const mib = (b: number) => `${(b / 2 ** 20).toFixed(1)} MiB`;
    record(
      "WebGPU: iBOT step's device memory (spec §10, batch 64)",
      `${mib(m.plannedBytes)} planned`,
      `intermediates alive at once at most ${mib(m.peakBytes)} (planned/peak ${(m.plannedBytes / m.peakBytes).toFixed(2)}); state (student, teacher, Adam, centres) ${mib(m.stateBytes)}, plus each run's batch and outputs`,
    );
    const torchRow = `iBOT pre-training step in PyTorch (${torchDevice}; spec §10, batch ${ours.batch})`;
    if ("missing" in torch || torch.error) record(torchRow, "n/a", "missing" in torch ? torch.missing : torch.error!);
    else
      record(
        torchRow,
        `${(ours.batch / torchS).toFixed(2)} images/s`,
        `${torchS.toFixed(2)} s/step; ours/PyTorch speed ${(torchS / s).toFixed(2)}×; ${describeTorch(torch, torchDevice)}; student params ${torch.info.params.ibot} (ours ${ours.params}); ${how.replace("PyTorch's", "ours")}; losses ${torch.losses.ibot.map((l) => l.toFixed(3)).join(", ")} (ours ${ours.losses.map((l) => l.toFixed(3)).join(", ")})`,
      );
  }
}
if (torchWorker) {
  const t = await torchWorker;
  if (!("missing" in t)) t.close();
}
if (process.argv.includes("--json")) for (const r of rows) console.log(JSON.stringify({ ...r, device, adapter }));
else {
  console.log(`Device: ${device}; WebGPU adapter: ${adapter}; load average at the end ${loadAverage()}\n`);
  console.log("| benchmark | result | notes |\n|---|---|---|");
  for (const r of rows) console.log(`| ${r.name} | ${r.value} | ${r.note} |`);
}
process.exit(0);
