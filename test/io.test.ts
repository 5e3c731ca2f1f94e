/**
 * `wgrad/io` (issue 19): pytrees saved and loaded as safetensors (structure, `like` checks, atomic
 * writes), F16/BF16 read as F32, and a tiny ViT built in real PyTorch
 * (scripts/torch-vit-fixture.py → test/fixtures/torch-vit-tiny.safetensors) loaded with
 * loadTorchViT and run through our `vit`, which must reproduce PyTorch's output.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { ArgumentError, evaluate, hostTensor, io, models, random, spec, type HostTensor, type Tensor } from "../src/index.js";
import { encodeSafetensors } from "../src/io/safetensors.js";
import type { HostViTParams } from "../src/io/torch.js";

const FIXTURE = fileURLToPath(new URL("./fixtures/torch-vit-tiny.safetensors", import.meta.url));
const tmp = () => mkdtempSync(join(tmpdir(), "wgrad-io-"));

/** Asserts that `p` rejects with a CheckpointError whose message matches every pattern; returns it. */
async function rejectsWith(p: Promise<unknown>, ...patterns: RegExp[]): Promise<io.CheckpointError> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof io.CheckpointError, `threw ${String(e)}`);
    for (const re of patterns) assert.match(e.message, re);
    return e;
  }
  assert.fail("it did not throw");
}

/** Asserts that `f` throws a CheckpointError whose message matches every pattern; returns it. */
function throwsWith(f: () => unknown, ...patterns: RegExp[]): io.CheckpointError {
  try {
    f();
  } catch (e) {
    assert.ok(e instanceof io.CheckpointError, `threw ${String(e)}`);
    for (const re of patterns) assert.match(e.message, re);
    return e;
  }
  assert.fail("it did not throw");
}

/** A tree of every shape of node: nested arrays, objects with integer-like keys (JS orders them first), all four dtypes, empty nodes. */
const sampleTree = () => ({
  blocks: [
    { attn: { w: hostTensor([1, 2, 3, 4, 5, 6], [2, 3]), b: hostTensor([0.5, -0.5, 7], [3]) } },
    { attn: { w: hostTensor([6, 5, 4, 3, 2, 1], [2, 3]), b: hostTensor([1, 1, 1], [3]) } },
  ],
  zeta: hostTensor(Float64Array.of(Math.PI, 1e-300), [2], "f64"),
  steps: hostTensor(Int32Array.of(-3, 2 ** 31 - 1), [2], "i32"),
  mask: hostTensor(Uint8Array.of(1, 0, 1), [3], "bool"),
  "10": [[hostTensor([9], [])], []],
  "2": {},
  alpha: hostTensor([4], [1, 1]),
});

/** The tree's structure and values, comparable with deepEqual (key order included). */
const describeTree = (t: unknown): unknown =>
  t instanceof Object && "data" in t && "shape" in t
    ? { dtype: (t as HostTensor).dtype, shape: [...(t as HostTensor).shape], data: [...(t as HostTensor).data] }
    : Array.isArray(t)
      ? t.map(describeTree)
      : Object.entries(t as object).map(([k, v]) => [k, describeTree(v)]);

describe("io.save and io.load", () => {
  test("load(path) rebuilds the saved tree: arrays, objects and their key order, dtypes, values; names are the dotted paths", async () => {
    const path = join(tmp(), "tree.safetensors");
    const tree = sampleTree();
    await io.save(path, tree, { epoch: "3" });
    const back = await io.load(path);
    assert.deepEqual(describeTree(back), describeTree(tree));
    const { tensors, metadata } = await io.readTensors(path);
    assert.deepEqual(Object.keys(tensors).sort(), [
      "10.0.0",
      "alpha",
      "blocks.0.attn.b",
      "blocks.0.attn.w",
      "blocks.1.attn.b",
      "blocks.1.attn.w",
      "mask",
      "steps",
      "zeta",
    ]);
    assert.equal(metadata.epoch, "3");
    assert.ok(Object.hasOwn(metadata, io.TREE_METADATA_KEY));
  });

  test("load(path, like) checks each tensor's presence, dtype and shape and returns like's structure; extra tensors are refused unless strict is false", async () => {
    const dir = tmp();
    const path = join(dir, "tree.safetensors");
    const tree = sampleTree();
    await io.save(path, tree);
    // A like of specs, of values: the structure of like, the values of the file.
    const specs = { alpha: spec([1, 1]), blocks: [{ attn: { w: spec([2, 3]), b: spec([3]) } }, { attn: { b: spec([3]), w: spec([2, 3]) } }] };
    const part = await io.load(path, specs, { strict: false });
    assert.deepEqual(Object.keys(part), ["alpha", "blocks"]);
    assert.deepEqual(Object.keys(part.blocks[1].attn), ["b", "w"]);
    assert.deepEqual([...part.blocks[1].attn.w.data], [6, 5, 4, 3, 2, 1]);
    assert.deepEqual(describeTree(await io.load(path, tree)), describeTree(tree));

    const extra = await rejectsWith(io.load(path, specs), /holds 4 tensors the tree has no leaf for: "10\.0\.0", "mask", "steps", "zeta"/, /strict: false/);
    assert.equal(extra.tensor, undefined);
    const missing = await rejectsWith(io.load(path, { ...specs, gamma: spec([3]) }, { strict: false }), /tensor "gamma": is missing from the file/);
    assert.equal(missing.tensor, "gamma");
    await rejectsWith(io.load(path, { zeta: spec([2]) }, { strict: false }), /tensor "zeta": is F64\[2\], the tree expects F32\[2\]/);
    await rejectsWith(
      io.load(path, { blocks: [{ attn: { w: spec([3, 2]) } }] }, { strict: false }),
      /tensor "blocks\.0\.attn\.w": has shape \[2,3\], the tree expects \[3,2\]/,
    );
  });

  test("a file without wgrad's tree record (PyTorch's) loads as a flat record name → tensor", async () => {
    const path = join(tmp(), "flat.safetensors");
    writeFileSync(path, encodeSafetensors({ "a.b": hostTensor([1], [1]), c: hostTensor([2, 3], [2]) }, { format: "pt" }));
    const flat = (await io.load(path)) as Record<string, HostTensor>;
    assert.deepEqual(Object.keys(flat), ["a.b", "c"]);
    assert.deepEqual([...flat.c.data], [2, 3]);
  });

  test("save is atomic (no temp file left behind, an existing file replaced whole) and refuses trees it cannot name", async () => {
    const dir = tmp();
    const path = join(dir, "w.safetensors");
    await io.save(path, { w: hostTensor([1, 2], [2]) });
    await io.save(path, [hostTensor([3], [1])]);
    assert.deepEqual(readdirSync(dir), ["w.safetensors"]);
    assert.deepEqual(describeTree(await io.load(path)), [{ dtype: "f32", shape: [1], data: [3] }]);

    await assert.rejects(
      io.save(path, { "a.b": hostTensor([1], [1]), a: { b: hostTensor([2], [1]) } }),
      (e: unknown) => e instanceof ArgumentError && /two leaves have the path "a\.b"/.test(e.message),
    );
    await assert.rejects(
      io.save(path, { w: hostTensor([1], [1]) }, { [io.TREE_METADATA_KEY]: "x" }),
      (e: unknown) => e instanceof ArgumentError && /reserved/.test(e.message),
    );
    await assert.rejects(io.save(path, { w: "weights" } as never), (e: unknown) => e instanceof ArgumentError && /at tree\.w, got the string/.test(e.message));
    // The refused saves left the last file alone.
    assert.deepEqual(describeTree(await io.load(path)), [{ dtype: "f32", shape: [1], data: [3] }]);
    await rejectsWith(io.load(join(dir, "nope.safetensors")), /nope\.safetensors: could not be read/);
  });

  test("a damaged tree record is a CheckpointError, not a crash", async () => {
    const path = join(tmp(), "bad.safetensors");
    writeFileSync(
      path,
      encodeSafetensors(
        { w: hostTensor([1], [1]) },
        { [io.TREE_METADATA_KEY]: JSON.stringify({ format: "wgrad-tree-1", def: { kind: "object", keys: ["w", "v"], children: [{ kind: "leaf" }] } }) },
      ),
    );
    await rejectsWith(io.load(path), /"wgrad\.tree" metadata holds a node that is neither/);
    writeFileSync(path, encodeSafetensors({ w: hostTensor([1], [1]) }, { [io.TREE_METADATA_KEY]: "{" }));
    await rejectsWith(io.load(path), /"wgrad\.tree" metadata is not JSON/);
  });
});

/** A safetensors file of one tensor with raw bytes and a dtype of our choosing. */
function rawFile(dtype: string, shape: number[], raw: Uint8Array): string {
  const text = new TextEncoder().encode(JSON.stringify({ t: { dtype, shape, data_offsets: [0, raw.length] } }));
  const out = new Uint8Array(8 + text.length + raw.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(text.length), true);
  out.set(text, 8);
  out.set(raw, 8 + text.length);
  const path = join(tmp(), `${dtype}.safetensors`);
  writeFileSync(path, out);
  return path;
}

describe("16-bit floats and other dtypes", () => {
  test("F16 and BF16 are read as F32, exactly: normals, subnormals, ±0, ±∞, NaN", async () => {
    const half = Uint16Array.of(0x3c00, 0xc000, 0x7bff, 0x0001, 0x03ff, 0x0400, 0x8000, 0x7c00, 0xfc00, 0x7e00, 0x3555);
    const want = [1, -2, 65504, 2 ** -24, 1023 * 2 ** -24, 2 ** -14, -0, Infinity, -Infinity, NaN, 0.333251953125];
    const f16 = (await io.readTensors(rawFile("F16", [half.length], new Uint8Array(half.buffer)))).tensors.t;
    assert.equal(f16.dtype, "f32");
    want.forEach((v, i) => assert.ok(Object.is(f16.data[i], v), `F16 0x${half[i].toString(16)}: ${f16.data[i]}, want ${v}`));

    const bf = Uint16Array.of(0x3f80, 0xc0a0, 0x8000, 0x7f80, 0x0001, 0x4049);
    const bwant = [1, -5, -0, Infinity, 2 ** -133, 3.140625];
    const b16 = (await io.readTensors(rawFile("BF16", [2, 3], new Uint8Array(bf.buffer)))).tensors.t;
    assert.deepEqual([b16.dtype, [...b16.shape]], ["f32", [2, 3]]);
    bwant.forEach((v, i) => assert.ok(Object.is(b16.data[i], v), `BF16 0x${bf[i].toString(16)}: ${b16.data[i]}, want ${v}`));
  });

  test("F64 stays F64; integer dtypes wgrad has no storage for are refused naming the dtype", async () => {
    const f64 = (await io.readTensors(rawFile("F64", [1], new Uint8Array(Float64Array.of(Math.E).buffer)))).tensors.t;
    assert.deepEqual([f64.dtype, f64.data[0]], ["f64", Math.E]);
    for (const [dtype, bytes] of [
      ["I8", 1],
      ["U8", 1],
      ["I16", 2],
      ["U32", 4],
      ["I64", 8],
    ] as const)
      await rejectsWith(
        io.readTensors(rawFile(dtype, [2], new Uint8Array(2 * bytes))),
        new RegExp(`tensor "t": dtype ${dtype} is a safetensors dtype wgrad does not load`),
        /tensor\.float\(\)/,
      );
  });
});

// ---------- a ViT made in PyTorch ----------

/** The fixture's architecture (scripts/torch-vit-fixture.py). */
const CFG: models.ViTConfig = { imageSize: 8, channels: 1, patchSize: 4, width: 16, depth: 2, heads: 2, mlpRatio: 2, qkvBias: true };

const fixture = async () => (await io.readTensors(FIXTURE)).tensors;
const maxAbsDiff = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
};
const rekey = (ts: Record<string, HostTensor>, from: string, to: string) =>
  Object.fromEntries(Object.entries(ts).map(([k, v]) => [k.startsWith(from) ? to + k.slice(from.length) : k, v]));

describe("loadTorchViT", () => {
  test("a timm-style ViT made in PyTorch: loaded, our vit reproduces PyTorch's tokens and [CLS] output to 1e-5", async () => {
    const ts = await fixture();
    assert.deepEqual(
      ["backbone.blocks.0.attn.qkv.weight", "backbone.blocks.1.mlp.fc1.weight"].map((n) => ts[n].dtype),
      ["f32", "f32"],
    ); // stored F16 and BF16, read as F32
    assert.match(readFileSync(FIXTURE).subarray(0, 2000).toString("latin1"), /"backbone\.blocks\.0\.attn\.qkv\.weight":\{"dtype":"F16"/);
    const { params, prefix, ignored } = io.loadTorchViT(ts, CFG, { file: FIXTURE });
    assert.equal(prefix, "backbone.");
    assert.deepEqual([...ignored].sort(), ["fixture.expected", "fixture.expected_cls", "fixture.input", "head.bias", "head.weight"]);
    assert.deepEqual([...params.patchEmbed.w.shape], [16, 16]);
    assert.deepEqual([...params.blocks[0].qkv.w.shape], [16, 48]);

    const tokens = evaluate((x: Tensor, p: models.ViTParams) => models.vit(x, p, CFG), ts["fixture.input"], params);
    assert.deepEqual([...tokens.shape], [2, 5, 16]);
    const diff = maxAbsDiff(tokens.data, ts["fixture.expected"].data);
    const cls = Array.from({ length: 2 }, (_, b) => [...tokens.data.subarray(b * 80, b * 80 + 16)]).flat();
    const clsDiff = maxAbsDiff(cls, ts["fixture.expected_cls"].data);
    console.log(`# our vit (CPU, f32) vs PyTorch (f64): max |diff| ${diff.toExponential(2)} over all tokens, ${clsDiff.toExponential(2)} on [CLS]`);
    assert.ok(diff < 1e-5 && clsDiff < 1e-5, `max |diff| ${diff}, [CLS] ${clsDiff}`);
    // The comparison can fail: a weight left in PyTorch's layout changes the output far beyond the tolerance.
    const wrong: HostViTParams = {
      ...params,
      blocks: [{ ...params.blocks[0], proj: { ...params.blocks[0].proj, w: transpose(params.blocks[0].proj.w) } }, params.blocks[1]],
    };
    const off = evaluate((x: Tensor, p: models.ViTParams) => models.vit(x, p, CFG), ts["fixture.input"], wrong);
    assert.ok(maxAbsDiff(off.data, ts["fixture.expected"].data) > 1e-2);
  });

  test("prefixes: detected where cls_token lives (module., teacher.backbone., none), or given; several backbones need a choice", async () => {
    const ts = await fixture();
    for (const p of ["module.backbone.", "teacher.backbone.", ""]) {
      const r = io.loadTorchViT(rekey(ts, "backbone.", p), CFG);
      assert.equal(r.prefix, p);
      assert.deepEqual([...r.params.norm.g.data], [...ts["backbone.norm.weight"].data]);
    }
    const both = { ...rekey(ts, "backbone.", "student.backbone."), ...rekey(ts, "backbone.", "teacher.backbone.") };
    throwsWith(
      () => io.loadTorchViT(both, CFG),
      /"cls_token" under 2 prefixes \("student\.backbone\.", "teacher\.backbone\."\)/,
      /prefix: "teacher\.backbone\."/,
    );
    const chosen = io.loadTorchViT(both, CFG, { prefix: "student.backbone." });
    assert.ok(chosen.ignored.every((n) => !n.startsWith("student.backbone.")) && chosen.ignored.includes("teacher.backbone.cls_token"));
    throwsWith(() => io.loadTorchViT({ "head.weight": ts["head.weight"] }, CFG), /holds no "cls_token"/);
  });

  test("missing, misshaped and unplaceable backbone tensors are refused naming the tensor (and both shapes)", async () => {
    const ts = await fixture();
    const { ["backbone.blocks.1.mlp.fc2.bias"]: _gone, ...without } = ts;
    const e1 = throwsWith(
      () => io.loadTorchViT(without, CFG, { file: "vit.safetensors" }),
      /^vit\.safetensors: tensor "backbone\.blocks\.1\.mlp\.fc2\.bias": is missing \(a ViT of this config needs it, of shape \[16\]\)/,
    );
    assert.equal(e1.tensor, "backbone.blocks.1.mlp.fc2.bias");
    // The other image size: pos_embed [1, 5, 16] against [1, 17, 16], with the way out.
    throwsWith(
      () => io.loadTorchViT(ts, { ...CFG, imageSize: 16 }),
      /tensor "backbone\.pos_embed": has shape \[1,5,16\], a ViT of this config needs \[1,17,16\]/,
      /interpolatePosEmbed/,
    );
    // Linear weights are checked in PyTorch's layout: [out, in], not ours transposed.
    const flipped = { ...ts, "backbone.blocks.0.mlp.fc1.weight": hostTensor(new Float32Array(512), [16, 32]) };
    throwsWith(
      () => io.loadTorchViT(flipped, CFG),
      /tensor "backbone\.blocks\.0\.mlp\.fc1\.weight": has shape \[16,32\], a ViT of this config needs \[32,16\]/,
    );
    throwsWith(
      () => io.loadTorchViT(ts, { ...CFG, width: 32, heads: 2 }),
      /tensor "backbone\.patch_embed\.proj\.weight": has shape \[16,1,4,4\], a ViT of this config needs \[32,1,4,4\]/,
    );
    // Dropping these would change the outputs: a block beyond cfg.depth, a qkv bias the config lacks, a LayerScale.
    throwsWith(
      () => io.loadTorchViT(ts, { ...CFG, depth: 1 }),
      /tensor "backbone\.blocks\.1\.attn\.proj\.bias": is part of the backbone but has no place/,
      /cfg\.depth \(1\)/,
    );
    throwsWith(() => io.loadTorchViT(ts, { ...CFG, qkvBias: false }), /tensor "backbone\.blocks\.0\.attn\.qkv\.bias": is part of the backbone/);
    throwsWith(
      () => io.loadTorchViT({ ...ts, "backbone.blocks.0.ls1.gamma": hostTensor(new Float32Array(16), [16]) }, CFG),
      /"backbone\.blocks\.0\.ls1\.gamma": is part of the backbone/,
    );
    // Integer and non-finite weights.
    throwsWith(
      () => io.loadTorchViT({ ...ts, "backbone.cls_token": hostTensor(new Int32Array(16), [1, 1, 16], "i32") }, CFG),
      /"backbone\.cls_token": is I32\[1,1,16\], a ViT weight is floating point/,
    );
    throwsWith(
      () => io.loadTorchViT({ ...ts, "backbone.norm.bias": hostTensor(new Float32Array(16).fill(NaN), [16]) }, CFG),
      /"backbone\.norm\.bias": holds 16 non-finite values/,
    );
  });

  test("a loaded ViT saves and loads back through io.save/io.load, checked against the loaded tree or a fresh init's", async () => {
    const ts = await fixture();
    const { params } = io.loadTorchViT(ts, CFG);
    const path = join(tmp(), "vit.safetensors");
    await io.save(path, params, { source: "torch-vit-tiny" });
    const back = await io.load(path, params);
    assert.deepEqual(describeTree(back), describeTree(params));
    // The like may be a fresh initialiser's tree of tensors (graph nodes, never run).
    assert.deepEqual(describeTree(await io.load(path, models.initViT(random.key(0), CFG))), describeTree(params));
  });
});

/** A [r, c] HostTensor transposed (a weight put back in the other layout). */
function transpose(t: HostTensor): HostTensor {
  const [r, c] = t.shape;
  const out = new Float32Array(r * c);
  for (let i = 0; i < r; i++) for (let j = 0; j < c; j++) out[j * r + i] = t.data[i * c + j];
  return hostTensor(out, [c, r]);
}

test("wgrad/io is a subpath export pointing at the built src/api/io module", () => {
  const pkg = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")) as { exports: Record<string, { types: string; import: string }> };
  assert.deepEqual(pkg.exports["./io"], { types: "./dist/src/api/io.d.ts", import: "./dist/src/api/io.js" });
  for (const n of ["save", "load", "readTensors", "writeTensors", "loadTorchViT"])
    assert.equal(typeof (io as unknown as Record<string, unknown>)[n], "function", `io.${n}`);
});
