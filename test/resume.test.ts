/**
 * Resuming restores every output: a tiny CPU run killed with SIGKILL at several moments (mid-epoch,
 * while writing a checkpoint, between the last evaluation and the last checkpoint) and resumed each
 * time ends with the metrics.jsonl, report.json, plots and checkpoint of an uninterrupted run
 * (timing fields aside), and no temp files. Also: a torn or damaged log, lengthening a run, a batch
 * larger than the subset, a NaN loss before and after the first checkpoint.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { appendFileSync, existsSync, mkdtempSync, readdirSync, readFileSync, watch, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as E from "fp-ts/lib/Either.js";
import { ConfigError, decodeConfig, type PretrainConfig } from "../src/train/config.js";
import { pretrain, REPORT_TIMING_FIELDS } from "../src/train/pretrain.js";
import { MetricsLogError, parseMetricsLog, ROW_TIMING_FIELDS, rowsUpTo } from "../src/train/metricsLog.js";
import { readSafetensors } from "../src/io/safetensors.js";
import { TINY_RUN, tinyConfig } from "./tinyRun.js";

/** 6 steps an epoch, 3 epochs; evaluated after epochs 2 and 3 (evalEvery 2, and the last): 23 rows. */
const FIELDS = {
  ...TINY_RUN,
  epochs: 3,
  lr: 0.02,
  momentumTeacher: 0.9,
  warmupEpochs: 0,
  evalEvery: 2,
  freezeLastLayer: 0,
  warmupTeacherTempEpochs: 0,
};
const config = (extra: Record<string, unknown>): PretrainConfig => tinyConfig({ ...FIELDS, ...extra });
const fresh = (name: string) => mkdtempSync(join(tmpdir(), `resume-${name}-`));
const lines = (dir: string) =>
  existsSync(join(dir, "metrics.jsonl"))
    ? readFileSync(join(dir, "metrics.jsonl"), "utf8")
        .split("\n")
        .filter((l) => l)
    : [];
const without = (o: Record<string, unknown>, fields: readonly string[]) => Object.fromEntries(Object.entries(o).filter(([k]) => !fields.includes(k)));
/** metrics.jsonl's rows, timings removed. */
const rows = (dir: string) => lines(dir).map((l) => without(JSON.parse(l) as Record<string, unknown>, ROW_TIMING_FIELDS));
const report = (dir: string) => without(JSON.parse(readFileSync(join(dir, "report.json"), "utf8")) as Record<string, unknown>, REPORT_TIMING_FIELDS);
const temps = (dir: string) => readdirSync(dir).filter((f) => f.endsWith(".tmp"));

/** Every output of `dir` equals `ref`'s, timings aside; the checkpoints' tensors bit for bit. */
async function assertSameOutputs(dir: string, ref: string) {
  assert.deepEqual(rows(dir), rows(ref), "metrics.jsonl");
  assert.deepEqual(report(dir), report(ref), "report.json");
  for (const svg of ["loss.svg", "knn.svg"]) assert.equal(readFileSync(join(dir, svg), "utf8"), readFileSync(join(ref, svg), "utf8"), svg);
  const [a, b] = [await readSafetensors(join(ref, "checkpoint.safetensors"))(), await readSafetensors(join(dir, "checkpoint.safetensors"))()];
  assert.ok(E.isRight(a) && E.isRight(b));
  assert.equal(b.right.metadata.step, a.right.metadata.step);
  assert.deepEqual(Object.keys(b.right.tensors).sort(), Object.keys(a.right.tensors).sort());
  for (const [n, t] of Object.entries(a.right.tensors)) {
    const u = b.right.tensors[n];
    assert.ok(
      Buffer.from(u.data.buffer, u.data.byteOffset, u.data.byteLength).equals(Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength)),
      `tensor ${n} differs`,
    );
  }
  assert.deepEqual(temps(dir), [], "temp files left");
}

/**
 * `wgrad pretrain` in a child process with `fields`, killed with SIGKILL as soon as `killWhen`
 * (checked on every change in the folder, and every 2 ms) holds; without it, run to the end.
 */
function cli(
  dir: string,
  fields: Record<string, unknown>,
  killWhen?: (dir: string, pid: number, changed?: string) => boolean,
): Promise<{ killed: boolean; code: number | null; output: string }> {
  const file = join(dir, "..", `${dir.split("/").pop()}.json`);
  writeFileSync(file, JSON.stringify({ ...FIELDS, outDir: dir, ...fields }));
  const child = spawn(process.execPath, ["--import", "tsx", "src/cli/main.ts", "pretrain", "--config", file], { stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  child.stdout.on("data", (d: Buffer) => (output += d.toString()));
  child.stderr.on("data", (d: Buffer) => (output += d.toString()));
  let killed = false;
  const check = (_event?: string, changed?: string | null) => {
    if (!killed && killWhen && child.pid && killWhen(dir, child.pid, changed ?? undefined)) {
      killed = true;
      child.kill("SIGKILL");
    }
  };
  const watcher = killWhen ? watch(dir, check) : undefined;
  const timer = killWhen ? setInterval(check, 2) : undefined;
  return new Promise((resolve) =>
    child.on("exit", (code) => {
      watcher?.close();
      clearInterval(timer);
      resolve({ killed, code, output });
    }),
  );
}

const checkpointEpoch = async (dir: string) => {
  const ck = await readSafetensors(join(dir, "checkpoint.safetensors"))();
  return E.isRight(ck) ? Number(ck.right.metadata.epoch) : 0;
};
const maxSeconds = (dir: string) =>
  Math.max(
    ...lines(dir).flatMap((l) => {
      try {
        return [(JSON.parse(l) as { seconds: number }).seconds];
      } catch {
        return [];
      }
    }),
  );

test("killed (SIGKILL) mid-epoch, during a checkpoint write and before the last checkpoint, and resumed each time: every output equals an uninterrupted run's", async (t) => {
  const ref = fresh("ref");
  await pretrain(config({ outDir: ref }), { log: () => {} });
  assert.equal(lines(ref).length, 23);

  const dir = fresh("killed");
  const resume = { resume: join(dir, "checkpoint.safetensors") };
  // 1. Mid-epoch 2: the checkpoint holds epoch 1, the log already has steps after it.
  const r1 = await cli(dir, {}, (d) => lines(d).length >= 10);
  assert.ok(r1.killed, r1.output);
  assert.equal(await checkpointEpoch(dir), 1);
  assert.ok(lines(dir).length >= 10);
  // As if killed while appending a row, and once while writing a checkpoint.
  appendFileSync(join(dir, "metrics.jsonl"), '{"kind":"step","epoch":1,"st');
  writeFileSync(join(dir, ".checkpoint.safetensors.4194303.tmp"), "partial");
  const before = maxSeconds(dir);

  // 2. Resumed, killed as soon as it starts writing epoch 2's checkpoint (or, had that gone unseen, early in epoch 3).
  const tmp = (pid: number) => `.checkpoint.safetensors.${pid}.tmp`;
  let pid2 = 0;
  const r2 = await cli(
    dir,
    resume,
    (d, pid, changed) => ((pid2 = pid), changed === tmp(pid) || existsSync(join(d, tmp(pid))) || lines(d).some((l) => l.includes('"kind":"step","epoch":2'))),
  );
  assert.ok(r2.killed, r2.output);
  t.diagnostic(
    existsSync(join(dir, tmp(pid2)))
      ? "killed while writing the checkpoint (its temp file is left)"
      : `killed after the checkpoint's temp file was renamed (checkpoint epoch ${await checkpointEpoch(dir)})`,
  );
  assert.match(r2.output, /metrics\.jsonl line \d+ was cut off by the interrupted run .*: dropped/);
  assert.match(r2.output, /dropping \d+ rows written after the checkpoint/);
  assert.match(r2.output, /removed a temp file left by an interrupted run \(\.checkpoint\.safetensors\.4194303\.tmp\)/);
  assert.ok(!existsSync(join(dir, ".checkpoint.safetensors.4194303.tmp")));
  // The rows after the checkpoint are rewritten, from the time the first process had spent on.
  const step6 = JSON.parse(lines(dir)[7]) as { step: number; seconds: number };
  assert.equal(step6.step, 6);
  assert.ok(step6.seconds > before, `step 6 at ${step6.seconds} s, the killed process ran to ${before} s`);

  // 3. Resumed, killed once the last evaluation is logged (before or while the last checkpoint is written).
  const r3 = await cli(dir, resume, (d) => lines(d).some((l) => l.includes('"kind":"eval","epoch":2')));
  assert.ok(r3.killed, r3.output);
  assert.ok(!existsSync(join(dir, "report.json")) || (await checkpointEpoch(dir)) === 3);

  // 4. Resumed to the end.
  const r4 = await cli(dir, resume);
  assert.equal(r4.code, 0, r4.output);
  await assertSameOutputs(dir, ref);
  const seconds = lines(dir).map((l) => (JSON.parse(l) as { seconds: number }).seconds);
  assert.ok(
    seconds.every((s, i) => i === 0 || s >= seconds[i - 1]),
    `row seconds ${seconds.join(" ")}`,
  );
  const total = (JSON.parse(readFileSync(join(dir, "report.json"), "utf8")) as { seconds: number }).seconds;
  assert.ok(total >= seconds[seconds.length - 1] && total > before, `report seconds ${total}`);
  assert.ok(!existsSync(join(dir, ".lock")));

  // The finished run cannot be lengthened: its lr, weight decay and momentum are cosines over its length.
  const text = readFileSync(join(dir, "metrics.jsonl"), "utf8");
  await assert.rejects(pretrain(config({ outDir: dir, ...resume, epochs: 4 }), { log: () => {} }), (e: unknown) => {
    assert.ok(e instanceof ConfigError, String(e));
    for (const p of [
      "--epochs 4",
      "the learning rate (from step",
      "minLr 0.00125 holds it",
      "the weight decay",
      "the teacher momentum",
      "Resume with --epochs 3",
    ])
      assert.ok(e.message.includes(p), `"${p}" not in: ${e.message}`);
    assert.ok(!e.message.includes("temperatures"), e.message);
    return true;
  });
  await assert.rejects(pretrain(config({ outDir: dir, ...resume, epochs: 2 }), { log: () => {} }), /holds 3 epochs, more than --epochs 2/);
  assert.equal(readFileSync(join(dir, "metrics.jsonl"), "utf8"), text);
});

test("a run whose schedules do not depend on its length can be resumed for more epochs, and equals a run of that length", async () => {
  // lr held after warm-up (minLr = lr·batch/256), weight decay and teacher momentum held, no temperature warm-up.
  const flat = { minLr: (0.02 * 16) / 256, weightDecayEnd: 0.04, momentumTeacherEnd: 0.9, evalEvery: 1 };
  const ref = fresh("long");
  await pretrain(config({ ...flat, outDir: ref }), { log: () => {} });
  const dir = fresh("lengthened");
  await pretrain(config({ ...flat, outDir: dir, epochs: 2 }), { log: () => {} });
  assert.equal(report(dir).steps, 12);

  // A damaged line stops the resume, naming the file and the line, and changes nothing.
  const path = join(dir, "metrics.jsonl");
  const text = readFileSync(path, "utf8");
  const broken = text.split("\n");
  broken[2] = broken[2].slice(0, 20);
  writeFileSync(path, broken.join("\n"));
  const resume = { ...flat, outDir: dir, epochs: 3, resume: join(dir, "checkpoint.safetensors") };
  await assert.rejects(
    pretrain(config(resume), { log: () => {} }),
    (e: unknown) => e instanceof MetricsLogError && e.line === 3 && e.message.startsWith(`${path} line 3: is not JSON`),
  );
  assert.equal(readFileSync(path, "utf8"), broken.join("\n"));
  writeFileSync(path, text);

  const notices: string[] = [];
  await pretrain(config(resume), { log: (l) => notices.push(l) });
  assert.ok(
    notices.some((l) => l.startsWith("resuming from") && l.includes("after epoch 2 (step 12)")),
    notices.join("\n"),
  );
  await assertSameOutputs(dir, ref);
});

test("metrics.jsonl read back: a torn last line is dropped, a complete one without its newline kept, any other bad line named", () => {
  const step = (s: number, e = 0) =>
    JSON.stringify({ kind: "step", epoch: e, step: s, loss: 1, cls: 1, patch: 0, lr: 0, imagesPerSecond: 1, tokenPerplexity: 1, seconds: s + 1 });
  const tokens = JSON.stringify({ kind: "tokens", epoch: 0, used: [3], vocabulary: [8], perplexity: [2.5], seconds: 2.5 });
  const good = `${step(0)}\n${step(1)}\n${tokens}\n${step(2, 1)}\n`;
  const torn = parseMetricsLog(`${good}{"kind":"st`, "m.jsonl");
  assert.equal(torn.rows.length, 4);
  assert.deepEqual(torn.torn, { line: 5, text: '{"kind":"st' });
  const kept = rowsUpTo(torn, { epoch: 1, step: 2 });
  assert.deepEqual(kept.lines, [step(0), step(1), tokens]);
  assert.equal(kept.dropped, 1);
  assert.equal(kept.seconds, 3, "the time of the dropped row counts");
  assert.ok(kept.changed);
  assert.ok(!rowsUpTo(parseMetricsLog(good, "m.jsonl"), { epoch: 2, step: 3 }).changed);
  assert.equal(parseMetricsLog(good.slice(0, -1), "m.jsonl").rows.length, 4);
  // A log resumed without truncation by an older version: a repeated row keeps its later copy.
  const twice = rowsUpTo(parseMetricsLog(`${step(0)}\n${step(1)}\n${step(1)}\n${tokens}\n`, "m.jsonl"), { epoch: 1, step: 2 });
  assert.deepEqual([twice.lines.length, twice.duplicates], [3, 1]);
  const bad = (text: string, line: number, what: RegExp) =>
    assert.throws(
      () => parseMetricsLog(text, "runs/x/metrics.jsonl"),
      (e: unknown) => e instanceof MetricsLogError && e.line === line && what.test(e.message) && e.message.startsWith(`runs/x/metrics.jsonl line ${line}:`),
    );
  bad(`${step(0)}\n{"kind":"st\n${step(1)}\n`, 2, /is not JSON/);
  bad(`${step(0)}\n{"kind":"st\n`, 2, /is not JSON/); // it has its newline: not a torn append
  bad(`${step(0)}\n[1, 2]\n`, 2, /not a JSON object/);
  bad(`${step(0)}\n{"kind":"loss","epoch":0}\n`, 2, /kind "loss"/);
  bad(`${JSON.stringify({ kind: "step", epoch: 0, loss: 1, cls: 1, patch: 1 })}\n`, 1, /step is missing/);
  bad(`${JSON.stringify({ kind: "eval", epoch: -1 })}`, 1, /epoch is -1/);
});

test("a batch larger than the training images is refused with the numbers, at config validation or once the data is loaded", async () => {
  const c = decodeConfig({ ...FIELDS, batchSize: 128 });
  assert.ok(E.isLeft(c) && c.left instanceof ConfigError);
  if (E.isLeft(c)) assert.match(c.left.message, /batchSize 128 is larger than trainSubset 96: an epoch is floor\(96 \/ 128\) = 0 steps/);
  const dir = fresh("batch");
  await assert.rejects(
    pretrain(config({ outDir: dir, trainSubset: 0, batchSize: 60001 }), { log: () => {} }),
    (e: unknown) =>
      e instanceof ConfigError && /batchSize 60001 is larger than the \d+ training images: an epoch is floor\(\d+ \/ 60001\) = 0 steps/.test(e.message),
  );
  assert.deepEqual(readdirSync(dir), []);
});

test("a NaN loss stops the run, saying whether a checkpoint was written", async () => {
  const early = fresh("nan-early");
  const r = await pretrain(config({ outDir: early, lr: 1e30 }), { log: () => {} });
  assert.match(r.stoppedEarly ?? "", /^the loss became NaN at step \d+ \(epoch 0\); this was before the first checkpoint, so no checkpoint was written$/);
  assert.ok(!existsSync(join(early, "checkpoint.safetensors")));
  // lr 3000 diverges in the second epoch, after the first checkpoint.
  const late = fresh("nan-late");
  const s = await pretrain(config({ outDir: late, lr: 3000 }), { log: () => {} });
  const ck = join(late, "checkpoint.safetensors");
  assert.match(
    s.stoppedEarly ?? "",
    existsSync(ck) ? /the last good checkpoint is kept: .*checkpoint\.safetensors \(after epoch \d, step \d+\)$/ : /no checkpoint was written/,
  );
});
