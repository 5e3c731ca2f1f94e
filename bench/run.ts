/**
 * Benchmarks (npm run bench). Prints a Markdown table to paste into BENCHMARKS.md; pass
 * `--json` for machine-readable lines. Timings are medians of repeated runs after a warm-up.
 */
import os from "node:os";
import * as w from "../src/index.js";
import type { Tensor } from "../src/index.js";

interface Row {
  name: string;
  value: number;
  unit: string;
  note: string;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

/** Median wall time (ms) of `fn` over `reps` runs after one warm-up run. */
function time(fn: () => void, reps: number): number {
  fn();
  const ts: number[] = [];
  for (let i = 0; i < reps; i++) {
    const t0 = performance.now();
    fn();
    ts.push(performance.now() - t0);
  }
  return median(ts);
}

function cpuMatmul(n: number, dtype: "f32" | "f64"): Row {
  const exe = w.compile(w.matmul, [w.spec([n, n], dtype), w.spec([n, n], dtype)]);
  const make = () => (dtype === "f32" ? new Float32Array(n * n) : new Float64Array(n * n)).map(() => Math.random() - 0.5);
  const [a, b] = [make(), make()];
  const ms = time(() => exe.run(a, b), n <= 256 ? 7 : 3);
  return { name: `CPU matmul ${n}³ ${dtype}`, value: (2 * n ** 3) / (ms * 1e6), unit: "GFLOP/s", note: `${ms.toFixed(1)} ms` };
}

function cpuElementwise(n: number): Row {
  const chain = (x: Tensor) => {
    let y = x;
    for (let i = 0; i < 5; i++) y = w.tanh(w.add(w.mul(y, 1.01), 0.1));
    return y;
  };
  const exe = w.compile(chain, [w.spec([n])]);
  const x = new Float32Array(n).map(() => Math.random());
  const ms = time(() => exe.run(x), 5);
  return { name: `CPU 15-op elementwise chain, 2^${Math.log2(n)} f32`, value: (15 * n) / (ms * 1e6), unit: "Gop/s", note: `${ms.toFixed(1)} ms` };
}

const rows: Row[] = [cpuMatmul(256, "f32"), cpuMatmul(512, "f32"), cpuMatmul(256, "f64"), cpuElementwise(1 << 20)];
const cpu = `${os.cpus()[0]?.model ?? "unknown CPU"} (${os.cpus().length} cores), Node ${process.version}`;
if (process.argv.includes("--json")) for (const r of rows) console.log(JSON.stringify({ ...r, device: cpu }));
else {
  console.log(`Device: ${cpu}; load average ${os.loadavg().map((l) => l.toFixed(2)).join(" ")}\n`);
  console.log("| benchmark | result | note |\n|---|---|---|");
  for (const r of rows) console.log(`| ${r.name} | ${r.value.toFixed(2)} ${r.unit} | ${r.note} |`);
}
