/** The examples the README points to run as written, against the built package ("wgrad" imports). */
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";

const run = (file: string) => execFileSync(process.execPath, ["--import", "tsx", file], { encoding: "utf8", timeout: 120_000 });

test("examples/quickstart.ts trains and prints a falling loss and a Hessian-vector product", () => {
  const out = run("examples/quickstart.ts");
  const losses = [...out.matchAll(/loss (\d+\.\d+)/g)].map((m) => Number(m[1]));
  assert.ok(losses.length >= 2 && losses[losses.length - 1] < losses[0] / 4, out);
  assert.match(out, /H·1 of Σx³ at \[1,2,3\]: \[ 6, 12, 18 \]/);
});

test("examples/gradient-property.ts passes its property", () => {
  assert.match(run("examples/gradient-property.ts"), /50 random shapes passed checkGrads to order 2/);
});

test("examples/optimizers.ts trains an MLP with chain(clipByGlobalNorm, sgd(warmupCosine, momentum)) and its loss falls", () => {
  const out = run("examples/optimizers.ts");
  const losses = [...out.matchAll(/loss (\d+\.\d+)/g)].map((m) => Number(m[1]));
  assert.ok(losses.length >= 5 && losses[losses.length - 1] < losses[0] / 4, out);
  assert.ok(
    losses.every((l, i) => i === 0 || l <= losses[i - 1]),
    `the printed losses fall monotonically: ${out}`,
  );
  const accuracy = Number(/training accuracy (\d+\.\d)%/.exec(out)?.[1]);
  assert.ok(accuracy >= 90, out);
  assert.match(out, /state count 300\)/);
});

test("examples/transforms.ts: vmap per-example gradients sum to the batch gradient, jit caches, jvp equals the gradient's sum, save/load round-trips", () => {
  const out = run("examples/transforms.ts");
  assert.match(out, /per-example gradients: w \[8,3,2\], b \[8,2\]/);
  const gap = Number(/max gap (\S+)/.exec(out)?.[1]);
  assert.ok(gap < 1e-5, out);
  assert.match(out, /jit cache: 1 executable after two calls/);
  const [, jv, gs] = /jvp along ones (-?\d+\.\d+) = sum of the gradient (-?\d+\.\d+)/.exec(out) ?? [];
  assert.ok(jv !== undefined && Math.abs(Number(jv) - Number(gs)) < 1e-4, out);
  assert.match(out, /saved and loaded 8 values; equal: true/);
});
