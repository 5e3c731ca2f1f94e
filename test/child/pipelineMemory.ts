/**
 * Run by webgpu.test.ts in a process of its own, with Mesa's shader cache off (its bookkeeping
 * grows on its own): compiles, runs and disposes N graphs that differ only in a constant, and
 * prints the resident set size and the pipelines held after each quarter, as JSON lines.
 */
import * as w from "../../src/internals.js";
import type { GpuArray, Tensor } from "../../src/internals.js";
import { heldPipelines } from "../../src/backend/webgpu/executable.js";

const n = Number(process.argv[2] ?? 400);
const ctx = await w.webgpu();
for (let i = 0; i < n; i++) {
  const exe = w.compile((x: Tensor) => w.mul(w.add(x, i * 1e-3), 1.5), [w.spec([64])], { backend: ctx });
  const out = exe.run(new Float32Array(64)) as GpuArray;
  await out.toArray();
  out.dispose();
  exe.dispose();
  if ((i + 1) % (n / 4) === 0) {
    (globalThis as { gc?: () => void }).gc?.();
    console.log(JSON.stringify({ graphs: i + 1, rssMiB: process.memoryUsage().rss / 2 ** 20, pipelines: heldPipelines(ctx), liveBuffers: ctx.liveBuffers }));
  }
}
ctx.destroy();
process.exit(0);
