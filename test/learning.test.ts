/**
 * A learning signal that a silent break of training would stop: in a 20-step run of the default
 * recipe (two blocks, batch 32, on the CPU backend) the student learns to predict the teacher's
 * tokens at masked patches, from chance to many times chance, without the tokens collapsing. A
 * lost stopGradient, a mask that does not reach the student, a wrong loss sign or a dead optimizer
 * keeps the agreement near chance. Over seeds 0-4 the last five steps averaged 0.08-0.23 and the first three at most 0.013.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as E from "fp-ts/lib/Either.js";
import { decodeConfig } from "../src/train/config.js";
import { pretrain, type StepLog } from "../src/train/pretrain.js";

test("the default recipe, 20 steps: masked-patch agreement with the teacher rises from chance, and the tokens do not collapse", async () => {
  const outDir = mkdtempSync(join(tmpdir(), "ibot-signal-"));
  const c = decodeConfig({ backend: "cpu", outDir, depth: 2, trainSubset: 640, batchSize: 32, epochs: 1, knnBank: 200, knnQueries: 100 });
  if (E.isLeft(c)) throw c.left;
  const report = await pretrain(c.right, { log: () => {} });
  const steps = readFileSync(join(outDir, "metrics.jsonl"), "utf8")
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l) as StepLog & { kind: string })
    .filter((m) => m.kind === "step");
  assert.equal(steps.length, 20);
  const mean = (xs: readonly StepLog[]) => xs.reduce((a, s) => a + (s.maskedAgreement ?? NaN), 0) / xs.length;
  const first = mean(steps.slice(0, 3));
  const last = mean(steps.slice(-5));
  const curve = steps.map((s) => s.maskedAgreement?.toFixed(3)).join(" ");
  assert.ok(last >= 0.04 && last >= 5 * first, `agreement ${curve}`);
  // Agreement through collapse would be trivial: the teacher's tokens must stay spread over many prototypes.
  const perplexity = report.tokens[report.tokens.length - 1].perplexity[0];
  assert.ok(perplexity >= 8, `token perplexity ${perplexity.toFixed(1)} of ${c.right.outDim}`);
});
