/** The pre-training loop on real Fashion-MNIST with a tiny model on the CPU backend: it learns, checkpoints, and resumes exactly. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as E from "fp-ts/lib/Either.js";
import { pretrain } from "../src/train/pretrain.js";
import { readSafetensors } from "../src/io/safetensors.js";
import { evaluateCheckpoint } from "../src/train/evaluate.js";
import { tinyConfig } from "./tinyRun.js";

const tiny = (outDir: string, extra: Record<string, unknown> = {}) =>
  tinyConfig({
    outDir,
    epochs: 2,
    lr: 0.02,
    momentumTeacher: 0.9,
    warmupEpochs: 0,
    evalEvery: 1,
    freezeLastLayer: 0,
    warmupTeacherTempEpochs: 0,
    ...extra,
  });
const quiet = { log: () => {} };

test("a short run on a tiny subset: the loss falls in the first epoch, a checkpoint follows every epoch, and a resumed run equals an uninterrupted one", async () => {
  const full = mkdtempSync(join(tmpdir(), "ibot-full-"));
  const report = await pretrain(tiny(full, { epochs: 4 }), quiet);
  assert.equal(report.steps, 24);
  assert.equal(report.evals.length, 4);
  const losses = readFileSync(join(full, "metrics.jsonl"), "utf8")
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l))
    .filter((m) => m.kind === "step")
    .map((m) => m.loss as number);
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  // Later the loss climbs again as the teacher sharpens and the centres move (see the issue notes).
  assert.ok(mean(losses.slice(1, 6)) < 0.75 * losses[0], `loss ${losses.map((l) => l.toFixed(2)).join(" ")}`);

  // Evaluating the checkpoint reproduces the run's last k-NN figure (same bank and queries) and adds a linear probe.
  const ev = await evaluateCheckpoint(join(full, "checkpoint.safetensors"));
  assert.equal(ev.epoch, 4);
  assert.equal(ev.knn, report.evals[3].knnTeacher);
  assert.ok(ev.linearProbe > 0.3 && ev.linearProbe <= 1, `linear probe ${ev.linearProbe}`);

  // The token picture: a PNG of TEST images tinted by their teacher patch tokens.
  const { tokensPicture } = await import("../src/train/tokens.js");
  const pic = await tokensPicture(join(full, "checkpoint.safetensors"), join(full, "tokens.png"), 4, 2);
  const png = readFileSync(pic.path);
  assert.deepEqual([...png.subarray(1, 4)].map((b) => String.fromCharCode(b)).join(""), "PNG");
  assert.equal(png.readUInt32BE(16), 2 * (28 * 2 + 4) + 4); // width: 2 columns of 56-px tiles
  assert.ok(pic.distinctTokens >= 1 && pic.distinctTokens <= 64);

  const part = mkdtempSync(join(tmpdir(), "ibot-part-"));
  await pretrain(tiny(part, { epochs: 4 }), { ...quiet, stopAfterEpoch: (e) => e === 1 }); // interrupted after 2 epochs
  await pretrain(tiny(part, { epochs: 4, resume: join(part, "checkpoint.safetensors") }), quiet);
  const a = await readSafetensors(join(full, "checkpoint.safetensors"))();
  const b = await readSafetensors(join(part, "checkpoint.safetensors"))();
  assert.ok(E.isRight(a) && E.isRight(b));
  if (E.isRight(a) && E.isRight(b)) {
    assert.equal(b.right.metadata.step, "24");
    const names = Object.keys(a.right.tensors);
    assert.ok(names.includes("teacher.backbone.blocks.0.attn.qkv.weight"));
    for (const n of names) assert.deepEqual([...b.right.tensors[n].data], [...a.right.tensors[n].data], `tensor ${n} differs after resuming`);
  }
});

test("resuming with other model settings is refused, naming the setting", async () => {
  const dir = mkdtempSync(join(tmpdir(), "ibot-cfg-"));
  await pretrain(tiny(dir, { epochs: 2 }), { ...quiet, stopAfterEpoch: () => true });
  await assert.rejects(pretrain(tiny(dir, { epochs: 2, width: 32, resume: join(dir, "checkpoint.safetensors") }), quiet), /width \(16 there, 32 here\)/);
});

test("VQ mode through the same loop: two prediction heads, token usage per epoch, restarts, a checkpoint that resumes exactly and draws its tokens", async () => {
  const vq = { tokenizer: "vq", vqCodebooks: [8, 16], vqDeadThreshold: 2, vqMomentum: 0.9 };
  const full = mkdtempSync(join(tmpdir(), "vq-full-"));
  const report = await pretrain(tiny(full, { ...vq, epochs: 2 }), quiet);
  assert.equal(report.tokens.length, 2);
  for (const t of report.tokens) {
    assert.deepEqual(t.vocabulary, [8, 16]);
    t.used.forEach((u, h) => assert.ok(u >= 1 && u <= t.vocabulary[h]));
    t.perplexity.forEach((p, h) => assert.ok(p >= 1 && p <= t.vocabulary[h] + 1e-9));
  }
  const steps = readFileSync(join(full, "metrics.jsonl"), "utf8")
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l))
    .filter((m) => m.kind === "step");
  assert.ok(steps.every((s) => Number.isFinite(s.tokenizer) && Number.isInteger(s.restarts)));
  const part = mkdtempSync(join(tmpdir(), "vq-part-"));
  await pretrain(tiny(part, { ...vq, epochs: 2 }), { ...quiet, stopAfterEpoch: (e) => e === 0 });
  await pretrain(tiny(part, { ...vq, epochs: 2, resume: join(part, "checkpoint.safetensors") }), quiet);
  const a = await readSafetensors(join(full, "checkpoint.safetensors"))();
  const b = await readSafetensors(join(part, "checkpoint.safetensors"))();
  assert.ok(E.isRight(a) && E.isRight(b));
  if (E.isRight(a) && E.isRight(b)) {
    assert.ok(a.right.tensors["teacher.vq.codebooks.1"] && a.right.tensors["wgrad.vq.usage.0"]);
    for (const n of Object.keys(a.right.tensors))
      assert.deepEqual([...b.right.tensors[n].data], [...a.right.tensors[n].data], `tensor ${n} differs after resuming`);
  }
  const { tokensPicture } = await import("../src/train/tokens.js");
  const pic = await tokensPicture(join(full, "checkpoint.safetensors"), join(full, "tokens.png"), 4, 2);
  assert.ok(pic.distinctTokens >= 1 && pic.distinctTokens <= 8);
});

test("a warm-up that is no whole number of steps is a ConfigError before the out-dir, the data or the compile", async () => {
  const dir = join(mkdtempSync(join(tmpdir(), "ibot-warm-")), "run");
  const t0 = performance.now();
  // 96 images in batches of 16: 6 steps an epoch, and 0.25 of it is 1.5 steps.
  await assert.rejects(
    pretrain(tiny(dir, { warmupEpochs: 0.25 }), quiet),
    (e: Error) => e.name === "ConfigError" && /whole number/.test(e.message) && /6 steps/.test(e.message),
  );
  assert.ok(performance.now() - t0 < 1000, "refused at once");
  assert.ok(!existsSync(dir), "the out-dir was not even created");
});
