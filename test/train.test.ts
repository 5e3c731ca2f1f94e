/** Pre-training plumbing: the config codec, safetensors checkpoints, k-NN, and the CLI's errors. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as E from "fp-ts/lib/Either.js";
import * as w from "../src/internals.js";
import { decodeConfig, DEFAULT_CONFIG, PAPER_CONFIG } from "../src/train/config.js";
import { decodeSafetensors, encodeSafetensors, readSafetensors, writeSafetensors } from "../src/io/safetensors.js";
import { knnClassify } from "../src/eval/knn.js";

test("config: defaults decode; a bad field is named with its value and the expected type", () => {
  assert.ok(E.isRight(decodeConfig()));
  const bad = decodeConfig({ epochs: -2 });
  assert.ok(E.isLeft(bad) && /epochs: got -2, expected PositiveInt/.test(bad.left.message), E.isLeft(bad) ? bad.left.message : "");
  const typo = decodeConfig({ epoch: 3 });
  assert.ok(E.isLeft(typo) && /unknown config field "epoch"/.test(typo.left.message));
  const arr = decodeConfig({ predRatio: [0, 1.5] });
  assert.ok(E.isLeft(arr) && /predRatio\.1: got 1.5, expected Fraction/.test(arr.left.message));
  const heads = decodeConfig({ width: 100, heads: 3 });
  assert.ok(E.isLeft(heads) && /divisible by heads/.test(heads.left.message));
  const vq = decodeConfig({ tokenizer: "vq", vqCodebooks: [] });
  assert.ok(E.isLeft(vq) && /vqCodebooks needs at least one vocabulary size/.test(vq.left.message));
  const tok = decodeConfig({ tokenizer: "dvae" });
  assert.ok(E.isLeft(tok) && /tokenizer: got "dvae"/.test(tok.left.message));
  const weight = decodeConfig({ lambda2: -1 });
  assert.ok(E.isLeft(weight) && /lambda2: got -1, expected NonNegativeNumber/.test(weight.left.message));
  const targets = decodeConfig({ teacherTargets: "swav" });
  assert.ok(E.isLeft(targets) && /teacherTargets: got "swav"/.test(targets.left.message));
  assert.equal(
    Object.keys(DEFAULT_CONFIG).length,
    Object.keys(decodeConfig()._tag === "Right" ? (decodeConfig() as E.Right<typeof DEFAULT_CONFIG>).right : {}).length,
  );
});

test("config: --recipe paper is spec §10 with the official epoch schedules; flags still override it; an unknown recipe is named", () => {
  const paper = decodeConfig({ recipe: "paper" });
  assert.ok(E.isRight(paper));
  if (E.isRight(paper)) {
    assert.deepEqual(paper.right, PAPER_CONFIG);
    assert.deepEqual([paper.right.patchSize, paper.right.width, paper.right.heads, paper.right.localSize, paper.right.headHidden], [4, 96, 3, 12, 512]);
    assert.deepEqual([paper.right.momentumTeacher, paper.right.temperatureWarmup, paper.right.freezeLastLayer], [0.996, "epoch", 1]);
  }
  const both = decodeConfig({ recipe: "paper" }, { epochs: 5 });
  assert.ok(E.isRight(both) && both.right.epochs === 5 && both.right.width === 96);
  const def = decodeConfig();
  assert.ok(E.isRight(def) && def.right.patchSize === 7 && def.right.temperatureWarmup === "iteration");
  const bad = decodeConfig({ recipe: "dino" });
  assert.ok(E.isLeft(bad) && /recipe: got "dino", expected one of default, paper/.test(bad.left.message));
});

test("safetensors: round trip with metadata, written atomically; a corrupt header names the problem", async () => {
  const tensors = {
    "backbone.pos_embed": w.hostTensor(
      Float32Array.from({ length: 12 }, (_, i) => i / 3),
      [1, 3, 4],
    ),
    step: w.hostTensor([7], [1], "i32"),
    mask: w.hostTensor([1, 0, 1], [3], "bool"),
  };
  const dir = mkdtempSync(join(tmpdir(), "st-"));
  const path = join(dir, "ckpt.safetensors");
  const wrote = await writeSafetensors(path, tensors, { epoch: "3" })();
  assert.ok(E.isRight(wrote));
  const back = await readSafetensors(path)();
  assert.ok(E.isRight(back));
  if (E.isRight(back)) {
    assert.equal(back.right.metadata.epoch, "3");
    for (const [k, t] of Object.entries(tensors)) {
      assert.deepEqual(back.right.tensors[k].shape, t.shape);
      assert.equal(back.right.tensors[k].dtype, t.dtype);
      assert.deepEqual([...back.right.tensors[k].data], [...t.data]);
    }
  }
  // The header is standard: an 8-byte length, then JSON with dtype/shape/data_offsets.
  const bytes = readFileSync(path);
  const n = Number(bytes.readBigUInt64LE(0));
  const header = JSON.parse(bytes.subarray(8, 8 + n).toString());
  assert.deepEqual(header["backbone.pos_embed"], { dtype: "F32", shape: [1, 3, 4], data_offsets: [0, 48] }); // names sorted
  const broken = encodeSafetensors(tensors);
  broken.set(new TextEncoder().encode('{"x":{"dtype":"F16"'), 8);
  const err = decodeSafetensors(broken);
  assert.ok(E.isLeft(err) && /header is not JSON|bad header/.test(err.left.message));
  const wrongDtype = new TextEncoder().encode(JSON.stringify({ x: { dtype: "U16", shape: [1], data_offsets: [0, 2] } }));
  const file = new Uint8Array(8 + wrongDtype.length + 2);
  new DataView(file.buffer).setBigUint64(0, BigInt(wrongDtype.length), true);
  file.set(wrongDtype, 8);
  const e2 = decodeSafetensors(file);
  assert.ok(E.isLeft(e2) && /tensor "x"/.test(e2.left.message) && /dtype/.test(e2.left.message), E.isLeft(e2) ? e2.left.message : "");
});

test("k-NN: weighted votes of the nearest neighbours by cosine similarity", async () => {
  // Class 0 points near (1, 0), class 1 near (0, 1); one query each, plus a query on the boundary side of class 1.
  const bank = new Float32Array([1, 0.1, 0.9, 0, 1, -0.1, 0.1, 1, 0, 0.9, -0.1, 1]);
  const labels = [0, 0, 0, 1, 1, 1];
  const queries = new Float32Array([2, 0.3, 0.2, 3, 0.4, 0.6]);
  const r = await knnClassify(bank, labels, queries, [0, 1, 1], 2, { k: 3, numClasses: 2 });
  assert.deepEqual([...r.predictions], [0, 1, 1]);
  assert.equal(r.accuracy, 1);
  const wrong = await knnClassify(bank, labels, queries, [1, 1, 1], 2, { k: 3, numClasses: 2 });
  assert.ok(Math.abs(wrong.accuracy - 2 / 3) < 1e-12);
});

test("the CLI rejects bad flags and config files with the field's name, before any work", () => {
  const cli = (...args: string[]) => {
    try {
      const out = execFileSync(process.execPath, ["--import", "tsx", "src/cli/main.ts", ...args], { encoding: "utf8", stdio: "pipe" });
      return { code: 0, err: "", out };
    } catch (e) {
      const x = e as { status: number; stderr: string };
      return { code: x.status, err: x.stderr, out: "" };
    }
  };
  const a = cli("pretrain", "--epochs", "zero");
  assert.equal(a.code, 2);
  assert.match(a.err, /epochs: got "zero", expected PositiveInt/);
  const dir = mkdtempSync(join(tmpdir(), "cfg-"));
  writeFileSync(join(dir, "c.json"), JSON.stringify({ batchSize: 64, dropPath: 2 }));
  const b = cli("pretrain", "--config", join(dir, "c.json"));
  assert.equal(b.code, 2);
  assert.match(b.err, /dropPath: got 2, expected Fraction/);
  const r = cli("regimes", "--held-out-asset", "-1");
  assert.equal(r.code, 2);
  assert.match(r.err, /heldOutAsset: got -1, expected NonNegativeInt/);
  const h = cli("regimes", "--held-out-asset", "9");
  assert.equal(h.code, 2);
  assert.match(h.err, /heldOutAsset 9 must be below assets 6/);
  // One size for a list field is the one-element list (as `32,32` is the two-element one).
  const l = cli("pretrain", "--vq-codebooks", "32", "--epochs", "zero");
  assert.equal(l.code, 2);
  assert.doesNotMatch(l.err, /vqCodebooks/);
  const c = cli("train");
  assert.equal(c.code, 2);
  assert.match(c.err, /unknown command "train"/);
  // --help anywhere prints the usage with the defaults and succeeds, rather than asking for a value.
  for (const args of [["--help"], ["pretrain", "--help"], ["regimes", "-h"]]) {
    const u = cli(...args);
    assert.equal(u.code, 0, args.join(" "));
    assert.match(u.out, /usage: wgrad pretrain/);
    assert.match(u.out, /--teacher-targets "centering"/);
  }
});

test("checkpoints use the official iBOT names and PyTorch layouts", async () => {
  const { checkpointTensors } = await import("../src/train/checkpoint.js");
  const cfg: w.IbotModelConfig = {
    vit: { imageSize: 8, channels: 1, patchSize: 4, width: 8, depth: 1, heads: 2, mlpRatio: 2, qkvBias: true },
    head: { inDim: 8, hiddenDim: 16, bottleneckDim: 4, outDim: 6 },
    globalCrops: 2,
    localCrops: 0,
    dropPath: 0,
    clipGrad: 3,
  };
  const state = w.evaluate(() => {
    const student = w.initStudent(w.randomKey(0), cfg);
    return { student, teacher: w.teacherOf(student), opt: w.adamInit(student), centers: w.initCenters(6) };
  });
  const t = await checkpointTensors(state as never, { channels: 1, size: 4 });
  const shape = (k: string) => t[k]?.shape;
  assert.deepEqual(shape("student.backbone.patch_embed.proj.weight"), [8, 1, 4, 4]);
  assert.deepEqual(shape("student.backbone.blocks.0.attn.qkv.weight"), [24, 8]);
  assert.deepEqual(shape("student.backbone.blocks.0.mlp.fc1.weight"), [16, 8]);
  assert.deepEqual(shape("student.backbone.masked_embed"), [1, 8]);
  assert.equal(shape("teacher.backbone.masked_embed"), undefined);
  assert.deepEqual(shape("teacher.head.mlp.4.weight"), [4, 16]);
  assert.deepEqual(shape("teacher.head.last_layer.weight_v"), [6, 4]);
  assert.deepEqual(shape("teacher.head.last_layer2.weight_g"), [6, 1]);
  assert.deepEqual(shape("student.backbone.norm.weight"), [8]);
  assert.deepEqual(shape("wgrad.centers.center2"), [1, 1, 6]);
  // Transposition: PyTorch's weight[o][i] is our w[i][o].
  const ours = (state.student.backbone.blocks[0].qkv.w as unknown as w.HostTensor).data;
  const torch = t["student.backbone.blocks.0.attn.qkv.weight"].data;
  assert.equal(torch[5 * 8 + 3], ours[3 * 24 + 5]);
  // The conv weight [D, C, p, p] flattens (c, y, x) like patchify does.
  const pe = (state.student.backbone.patchEmbed.w as unknown as w.HostTensor).data;
  assert.equal(t["student.backbone.patch_embed.proj.weight"].data[2 * 16 + 7], pe[7 * 8 + 2]);
});

test("plots: the loss parts over steps and k-NN over epochs with the baselines, as SVG", async () => {
  const { lossPlot, knnPlot } = await import("../src/train/plots.js");
  const steps = [0, 1, 2].map((s) => ({ epoch: 0, step: s, loss: 5 - s, cls: 3 - s, patch: 2, lr: 1e-4, imagesPerSecond: 5 }));
  const loss = await lossPlot(steps);
  assert.match(loss, /^<svg/);
  for (const label of ["iBOT loss", "[CLS]", "patch (MIM)", "total"]) assert.ok(loss.includes(label.replace("[", "[")), label);
  const knn = await knnPlot([{ epoch: 0, knnTeacher: 0.5, knnStudent: 0.6 }], { rawPixels: 0.8, randomInit: 0.4 });
  for (const label of ["iBOT teacher", "iBOT student", "raw pixels", "random-init ViT"]) assert.ok(knn.includes(label), label);
});

test("linear probe: separable features are classified perfectly, shuffled labels are not", async () => {
  const { linearProbe } = await import("../src/eval/linearProbe.js");
  const n = 200;
  const dim = 5;
  const x = new Float32Array(n * dim);
  const y = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    y[i] = i % 3;
    for (let d = 0; d < dim; d++) x[i * dim + d] = Math.sin(i * 7.1 + d) * 0.3 + (d === y[i] ? 2 : 0);
  }
  assert.equal(linearProbe(x.subarray(0, 150 * dim), y.subarray(0, 150), x.subarray(150 * dim), y.subarray(150), dim, { numClasses: 3 }), 1);
  const shuffled = y.map((_, i) => Math.floor(Math.abs(Math.sin(i * 12.9898) * 43758.5453)) % 3); // labels unrelated to the features
  assert.ok(linearProbe(x.subarray(0, 150 * dim), shuffled.subarray(0, 150), x.subarray(150 * dim), shuffled.subarray(150), dim, { numClasses: 3 }) < 0.8);
});
