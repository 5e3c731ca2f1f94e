/**
 * The safetensors reader against the format's rules: valid files written by our writer, mutated at
 * random (header length, header JSON, truncation, appended and flipped bytes), are either read
 * exactly as an independent re-parse says or refused with a CheckpointError, and never make the
 * reader allocate more than the file; plus the cases of issue 15 through the checkpoint loader.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import * as E from "fp-ts/lib/Either.js";
import { allocate, evaluate, hostTensor, initIbotState, randomKey, type DType, type HostTensor } from "../src/internals.js";
import { CheckpointError, decodeSafetensors, encodeSafetensors, MAX_HEADER_BYTES } from "../src/io/safetensors.js";
import { checkpointTensors, stateFromCheckpoint } from "../src/train/checkpoint.js";
import { decodeConfig } from "../src/train/config.js";
import { loadCheckpoint } from "../src/train/evaluate.js";
import { modelConfig } from "../src/train/pretrain.js";

const FILE = "mutant.safetensors";
const SIZE: Record<string, number> = { F32: 4, F64: 8, I32: 4, BOOL: 1, F16: 2, BF16: 2 };
const DT: Record<DType, string> = { f32: "F32", f64: "F64", i32: "I32", bool: "BOOL" };
/** The 16-bit float dtypes, which the reader widens to F32. */
const WIDENED = new Set(["F16", "BF16"]);

/** An IEEE half's value by the formula (not the reader's bit shuffling): (−1)^s · 2^(e−15) · (1 + m/1024), subnormals 2^−14 · m/1024. */
function halfValue(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 31;
  const m = h & 1023;
  if (e === 31) return m ? NaN : s * Infinity;
  return s * (e ? 2 ** (e - 15) * (1 + m / 1024) : 2 ** -14 * (m / 1024));
}
/** A bfloat16's value: the top half of a float32. */
const bfloat16Value = (h: number): number => new Float32Array(Uint32Array.of(h << 16).buffer)[0];
const isObj = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);
const isNat = (v: unknown): v is number => typeof v === "number" && Number.isSafeInteger(v) && v >= 0;

// ---------- files: build, split, rewrite ----------

/** A file from header text and a data section (the length field set to the text's length). */
function assemble(headerText: string, data: Uint8Array, pad = 0): Uint8Array {
  const head = new TextEncoder().encode(headerText + " ".repeat(pad));
  const out = new Uint8Array(8 + head.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(head.length), true);
  out.set(head, 8);
  out.set(data, 8 + head.length);
  return out;
}

/** The header text and data section when the length field is usable, else undefined. */
function split(bytes: Uint8Array): { text: string; data: Uint8Array } | undefined {
  if (bytes.length < 8) return undefined;
  const n = Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));
  if (n > bytes.length - 8) return undefined;
  return { text: new TextDecoder().decode(bytes.subarray(8, 8 + n)), data: bytes.subarray(8 + n) };
}

/** The file with its header JSON replaced by `f(header)` (data section kept). */
function rewrite(bytes: Uint8Array, f: (h: Record<string, unknown>) => unknown, pad = 0): Uint8Array {
  const s = split(bytes);
  if (!s) return bytes;
  let h: unknown;
  try {
    h = JSON.parse(s.text);
  } catch {
    return bytes;
  }
  return isObj(h) ? assemble(JSON.stringify(f(h)), s.data, pad) : bytes;
}

// ---------- an independent re-parse under the rules (a second implementation, the oracle) ----------

interface Parsed {
  readonly tensors: Map<string, { dtype: string; shape: number[]; begin: number; end: number }>;
  readonly metadata: Record<string, string>;
  readonly base: number;
}

/**
 * What the format says a file holds, or undefined when it must be refused. Coverage is checked
 * with a byte map (every data byte claimed exactly once) rather than by sorting, and zero-length
 * tensors must sit at a boundary, so this is not the reader's algorithm restated.
 */
function oracle(bytes: Uint8Array): Parsed | undefined {
  if (bytes.length < 8) return undefined;
  const n64 = new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true);
  if (n64 > 100_000_000n || n64 + 8n > BigInt(bytes.length)) return undefined;
  const n = Number(n64);
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(bytes.subarray(8, 8 + n));
  } catch {
    return undefined;
  }
  let end = text.length;
  while (end > 0 && text[end - 1] === " ") end--;
  const body = text.slice(0, end);
  if (body[0] !== "{" || body[body.length - 1] !== "}") return undefined;
  let h: unknown;
  try {
    h = JSON.parse(body);
  } catch {
    return undefined;
  }
  if (!isObj(h)) return undefined;
  const metadata: Record<string, string> = {};
  if (Object.hasOwn(h, "__metadata__")) {
    const m = h.__metadata__;
    if (!isObj(m)) return undefined;
    for (const [k, v] of Object.entries(m)) {
      if (typeof v !== "string") return undefined;
      metadata[k] = v;
    }
  }
  const data = bytes.length - 8 - n;
  const tensors: Parsed["tensors"] = new Map();
  for (const [name, e] of Object.entries(h)) {
    if (name === "__metadata__") continue;
    if (!isObj(e) || typeof e.dtype !== "string" || !Object.hasOwn(SIZE, e.dtype)) return undefined;
    const shape = e.shape;
    const off = e.data_offsets;
    if (!Array.isArray(shape) || !shape.every(isNat) || !Array.isArray(off) || off.length !== 2 || !isNat(off[0]) || !isNat(off[1])) return undefined;
    const elements = shape.reduce((a, d) => a * BigInt(d), 1n);
    if (off[0] > off[1] || BigInt(off[1] - off[0]) !== elements * BigInt(SIZE[e.dtype])) return undefined;
    tensors.set(name, { dtype: e.dtype, shape, begin: off[0], end: off[1] });
  }
  const claimed = new Uint8Array(data);
  const boundaries = new Set([0, data]);
  for (const t of tensors.values()) {
    if (t.end > data) return undefined;
    if (t.end > t.begin) boundaries.add(t.begin).add(t.end);
    for (let i = t.begin; i < t.end; i++) if (claimed[i]++) return undefined;
  }
  if (claimed.some((c) => c !== 1)) return undefined;
  for (const t of tensors.values()) if (t.begin === t.end && !boundaries.has(t.begin)) return undefined;
  for (const t of tensors.values()) if (t.dtype === "BOOL" && bytes.subarray(8 + n + t.begin, 8 + n + t.end).some((b) => b > 1)) return undefined;
  return { tensors, metadata, base: 8 + n };
}

/** Decodes with a counting allocator: the result, and every allocation's size in bytes. */
function decodeCounting(bytes: Uint8Array) {
  const sizes: number[] = [];
  const alloc = (d: DType, count: number) => {
    const a = allocate(d, count);
    sizes.push(a.byteLength);
    return a;
  };
  return { r: decodeSafetensors(bytes, FILE, alloc), sizes };
}

/** The property: no exception; a refusal is a CheckpointError naming the file; an accepted file is what the oracle reads, byte for byte; allocation within the file's size. */
function checkFile(bytes: Uint8Array): "accepted" | "refused" {
  let out: ReturnType<typeof decodeCounting>;
  try {
    out = decodeCounting(bytes);
  } catch (e) {
    assert.fail(`the reader threw ${String(e)} instead of returning a CheckpointError`);
  }
  const { r, sizes } = out;
  // F16/BF16 tensors widen to F32 (twice their bytes); everything else is allocated exactly as stored.
  assert.ok(sizes.reduce((a, b) => a + b, 0) <= 2 * bytes.length, `allocated ${sizes.join("+")} bytes for a ${bytes.length}-byte file`);
  const want = oracle(bytes);
  if (E.isLeft(r)) {
    assert.ok(r.left instanceof CheckpointError, `refused with ${r.left.constructor.name}`);
    assert.ok(r.left.message.startsWith(`${FILE}: `), r.left.message);
    assert.ok(r.left.message.length < 600, "messages stay short");
    assert.equal(want, undefined, `refused a file the rules accept: ${r.left.message}`);
    return "refused";
  }
  assert.ok(want, "accepted a file the rules refuse");
  assert.deepEqual(r.right.metadata, want.metadata);
  assert.deepEqual(Object.keys(r.right.tensors).sort(), [...want.tensors.keys()].sort());
  for (const [name, t] of want.tensors) {
    const got: HostTensor = r.right.tensors[name];
    assert.equal(DT[got.dtype], WIDENED.has(t.dtype) ? "F32" : t.dtype, name);
    assert.deepEqual([...got.shape], t.shape, name);
    if (WIDENED.has(t.dtype)) {
      const stored = bytes.slice(want.base + t.begin, want.base + t.end);
      for (let k = 0; k < got.size; k++) {
        const h = stored[2 * k] | (stored[2 * k + 1] << 8);
        const v = t.dtype === "F16" ? halfValue(h) : bfloat16Value(h);
        assert.ok(
          Object.is(got.data[k], v) || (Number.isNaN(v) && Number.isNaN(got.data[k])),
          `${name}[${k}]: ${t.dtype} 0x${h.toString(16)} read as ${got.data[k]}, is ${v}`,
        );
      }
      continue;
    }
    const raw = new Uint8Array(got.data.buffer, got.data.byteOffset, got.data.byteLength);
    assert.deepEqual(raw, bytes.slice(want.base + t.begin, want.base + t.end), `${name}: bytes come from exactly [${t.begin}, ${t.end})`);
  }
  return "accepted";
}

// ---------- generators ----------

/** Deterministic bytes for a tensor (xorshift from a seed): cheap to generate, any bit pattern (NaNs included). */
function fill(dtype: DType, count: number, seed: number): HostTensor["data"] {
  const a = allocate(dtype, count);
  const raw = new Uint8Array(a.buffer);
  let x = seed | 1;
  for (let i = 0; i < raw.length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    raw[i] = dtype === "bool" ? x & 1 : x & 255;
  }
  return a;
}

const arbName = fc.oneof(
  fc.constantFrom("w", "b", "teacher.backbone.pos_embed", "__proto__", "constructor", "", "ä ü", 'a"b'),
  fc.string({ maxLength: 6 }).filter((s) => s !== "__metadata__"),
);
const arbTensorSpec = fc.record({
  dtype: fc.constantFrom<DType>("f32", "f64", "i32", "bool"),
  shape: fc.array(fc.integer({ min: 0, max: 4 }), { maxLength: 3 }),
  seed: fc.integer(),
});
const arbFile = fc
  .record({
    tensors: fc.uniqueArray(fc.tuple(arbName, arbTensorSpec), { maxLength: 5, selector: ([n]) => n }),
    metadata: fc.dictionary(
      fc.string({ maxLength: 4 }).filter((k) => k !== "__proto__"),
      fc.string({ maxLength: 6 }),
      { maxKeys: 2 },
    ),
  })
  .map(({ tensors, metadata }) => {
    const ts = Object.fromEntries(
      tensors.map(([n, s]) => [
        n,
        hostTensor(
          fill(
            s.dtype,
            s.shape.reduce((a, d) => a * d, 1),
            s.seed,
          ),
          s.shape,
          s.dtype,
        ),
      ]),
    );
    return encodeSafetensors(ts, metadata);
  });

const arbNumber = fc.oneof(
  fc.integer({ min: -8, max: 300 }),
  fc.constantFrom(-64, -1, -0, 0.5, 63.5, 4.000001, 2 ** 32, 2 ** 53, 2 ** 53 + 2, 1e300, Number.MAX_SAFE_INTEGER, Infinity),
  fc.double(),
  fc.constantFrom("4", null, true, [4], {}),
);
const arbDtype = fc.constantFrom("F32", "F64", "I32", "BOOL", "F16", "BF16", "U8", "I64", "f32", "", 4, null, ["F32"]);
const arbByte = fc.oneof(
  fc.integer({ min: 0, max: 255 }),
  fc.constantFrom(...'{}[]",:-.0123456789 \neE'.split("").map((c) => c.charCodeAt(0)), 0xc3, 0xff, 0x80),
);

type Mutation = (b: Uint8Array) => Uint8Array;
const pick = <T>(xs: readonly T[], i: number): T | undefined => (xs.length ? xs[i % xs.length] : undefined);
const tensorNames = (h: Record<string, unknown>) => Object.keys(h).filter((k) => k !== "__metadata__");
/** A mutation of one tensor's entry, when the header has one and it is an object. */
const onEntry =
  (i: number, f: (e: Record<string, unknown>, h: Record<string, unknown>) => void, pad = 0): Mutation =>
  (b) =>
    rewrite(
      b,
      (h) => {
        const name = pick(tensorNames(h), i);
        const e = name === undefined ? undefined : h[name];
        if (isObj(e)) f(e, h);
        return h;
      },
      pad,
    );
const setIn = (e: Record<string, unknown>, key: string, j: number, v: unknown) => {
  const x = e[key];
  if (Array.isArray(x) && x.length) x[j % x.length] = v;
  else e[key] = v;
};

const i = fc.nat();
const arbMutation: fc.Arbitrary<Mutation> = fc.oneof(
  // the length field
  fc.tuple(fc.integer({ min: 0, max: 7 }), arbByte).map(([k, v]): Mutation => (b) => {
    const c = b.slice();
    if (c.length > k) c[k] = v;
    return c;
  }),
  fc.integer({ min: -16, max: 16 }).map((d): Mutation => (b) => {
    const c = b.slice();
    if (c.length < 8) return c;
    const dv = new DataView(c.buffer);
    const n = dv.getBigUint64(0, true) + BigInt(d);
    dv.setBigUint64(0, n < 0n ? 0n : n, true);
    return c;
  }),
  fc.constantFrom(BigInt(MAX_HEADER_BYTES) + 1n, 2n ** 64n - 1n, 2n ** 53n).map((n): Mutation => (b) => {
    const c = b.slice();
    if (c.length >= 8) new DataView(c.buffer).setBigUint64(0, n, true);
    return c;
  }),
  // header text, byte by byte
  fc.tuple(i, arbByte).map(([p, v]): Mutation => (b) => {
    const s = split(b);
    const n = s ? b.length - 8 - s.data.length : 0;
    const c = b.slice();
    if (n > 0) c[8 + (p % n)] = v;
    return c;
  }),
  // header JSON, structurally
  fc.tuple(i, fc.constantFrom("shape", "data_offsets"), i, arbNumber).map(([t, k, j, v]) => onEntry(t, (e) => setIn(e, k, j, v))),
  fc.tuple(i, arbDtype).map(([t, v]) =>
    onEntry(t, (e) => {
      e.dtype = v;
    }),
  ),
  fc.tuple(i, fc.constantFrom("dtype", "shape", "data_offsets")).map(([t, k]) =>
    onEntry(t, (e) => {
      delete e[k];
    }),
  ),
  i.map(
    (t): Mutation =>
      (b) =>
        rewrite(b, (h) => {
          const n = pick(tensorNames(h), t);
          if (n !== undefined) delete h[n];
          return h;
        }),
  ),
  fc.tuple(i, i).map(([t, u]) =>
    onEntry(t, (e, h) => {
      const o = pick(tensorNames(h), u);
      const f = o === undefined ? undefined : h[o];
      if (isObj(f)) [e.data_offsets, f.data_offsets] = [f.data_offsets, e.data_offsets];
    }),
  ),
  i.map((t) =>
    onEntry(t, (e) => {
      if (Array.isArray(e.data_offsets)) e.data_offsets = [...e.data_offsets].reverse();
    }),
  ),
  // a 4-byte tensor relabelled as twice as many 16-bit floats: still valid, its bytes read as F16/BF16
  fc.tuple(i, fc.constantFrom("F16", "BF16")).map(([t, d]) =>
    onEntry(t, (e) => {
      if ((e.dtype === "F32" || e.dtype === "I32") && Array.isArray(e.shape)) [e.dtype, e.shape] = [d, [...e.shape, 2]];
    }),
  ),
  fc.tuple(i, fc.integer({ min: -8, max: 8 })).map(([t, d]) =>
    onEntry(t, (e) => {
      const o = e.data_offsets;
      if (Array.isArray(o)) e.data_offsets = o.map((x) => (typeof x === "number" ? x + d : x));
    }),
  ),
  fc.tuple(i, fc.integer({ min: 0, max: 3 })).map(([t, d]) =>
    onEntry(t, (e) => {
      const s = e.shape;
      if (Array.isArray(s)) e.shape = d ? [...s, d] : s.slice(1);
    }),
  ),
  fc.tuple(i, fc.string({ maxLength: 4 }), arbNumber).map(([t, k, v]) =>
    onEntry(t, (e) => {
      if (!["dtype", "shape", "data_offsets"].includes(k)) e[k] = v;
    }),
  ), // extra keys are ignored
  fc.tuple(arbName, arbDtype, fc.array(arbNumber, { maxLength: 2 }), fc.array(arbNumber, { maxLength: 3 })).map(
    ([n, d, s, o]): Mutation =>
      (b) =>
        rewrite(b, (h) => Object.fromEntries([...Object.entries(h), [n, { dtype: d, shape: s, data_offsets: o }]])),
  ),
  fc
    .oneof(
      fc.constant(undefined),
      fc.dictionary(fc.string({ maxLength: 3 }), fc.oneof(fc.string({ maxLength: 3 }), arbNumber), { maxKeys: 2 }),
      arbNumber,
      fc.constant("x"),
    )
    .map(
      (m): Mutation =>
        (b) =>
          rewrite(b, (h) =>
            Object.fromEntries([...Object.entries(h).filter(([k]) => k !== "__metadata__"), ...(m === undefined ? [] : [["__metadata__", m]])]),
          ),
    ),
  fc.constantFrom<unknown>([], [{ dtype: "F32", shape: [1], data_offsets: [0, 4] }], 7, "x", null, true).map(
    (v): Mutation =>
      (b) =>
        rewrite(b, () => v),
  ),
  fc.integer({ min: 0, max: 9 }).map(
    (pad): Mutation =>
      (b) =>
        rewrite(b, (h) => h, pad),
  ), // trailing spaces are allowed
  fc.constantFrom("\n", "\t", "\r", " ", "\uFEFF").chain((ws) =>
    fc.boolean().map((lead): Mutation => (b) => {
      const s = split(b);
      return s ? assemble(lead ? ws + s.text : s.text + ws, s.data) : b;
    }),
  ),
  // the file's end, and its data
  i.map(
    (p): Mutation =>
      (b) =>
        b.slice(0, p % (b.length + 1)),
  ),
  fc.uint8Array({ minLength: 1, maxLength: 16 }).map((x): Mutation => (b) => {
    const c = new Uint8Array(b.length + x.length);
    c.set(b);
    c.set(x, b.length);
    return c;
  }),
  fc.tuple(i, fc.integer({ min: 0, max: 255 })).map(([p, v]): Mutation => (b) => {
    const s = split(b);
    const c = b.slice();
    if (s && s.data.length) c[b.length - s.data.length + (p % s.data.length)] = v;
    return c;
  }),
);

// ---------- properties (10 000 cases in all) ----------

test("fuzz: mutated files are read exactly as the rules say, or refused with a CheckpointError; no allocation beyond the file", () => {
  const seen = { accepted: 0, refused: 0 };
  fc.assert(
    fc.property(arbFile, fc.array(arbMutation, { minLength: 1, maxLength: 3 }), (file, ms) => {
      seen[checkFile(ms.reduce((b, m) => m(b), file))]++;
    }),
    { numRuns: 8000 },
  );
  // Both outcomes are exercised in earnest (the mutations keep some files valid: data bytes, padding, extra keys, swaps of equal sizes).
  assert.ok(seen.accepted > 400 && seen.refused > 4000, JSON.stringify(seen));
});

test("fuzz: every file our writer makes is accepted and reads back to the same tensors and metadata", () => {
  fc.assert(
    fc.property(arbFile, (file) => {
      assert.equal(checkFile(file), "accepted");
      const r = decodeSafetensors(file);
      assert.ok(E.isRight(r));
      assert.deepEqual(encodeSafetensors(r.right.tensors, r.right.metadata), file);
    }),
    { numRuns: 1000 },
  );
});

test("fuzz: arbitrary bytes and arbitrary JSON headers over arbitrary data never throw or over-allocate", () => {
  const arbJson = fc.jsonValue({ maxDepth: 3 }).map((v) => JSON.stringify(v) ?? "null");
  fc.assert(
    fc.property(
      fc.oneof(
        fc.uint8Array({ maxLength: 64 }),
        fc.tuple(arbJson, fc.uint8Array({ maxLength: 32 }), fc.integer({ min: 0, max: 3 })).map(([j, d, p]) => assemble(j, d, p)),
      ),
      (b) => void checkFile(b),
    ),
    { numRuns: 1000 },
  );
});

// ---------- the cases of issue 15, one by one ----------

/** A small valid file: one F32 tensor "w" of 16 values, then "x" of 2. */
const small = () =>
  encodeSafetensors({
    w: hostTensor(
      Float32Array.from({ length: 16 }, (_, k) => k),
      [16],
    ),
    x: hostTensor([1, 2], [2]),
  });

/** The refusal of `bytes`: a CheckpointError (asserted), with its message. */
function refusal(bytes: Uint8Array): string {
  const r = decodeSafetensors(bytes, FILE);
  assert.ok(E.isLeft(r), "the file was accepted");
  assert.ok(r.left instanceof CheckpointError);
  assert.ok(r.left.message.startsWith(`${FILE}: `), r.left.message);
  return r.left.message;
}

test("negative data_offsets ([-64, 0]) are refused naming the tensor (they used to read the header as weights)", () => {
  const m = refusal(rewrite(small(), (h) => ({ ...h, w: { dtype: "F32", shape: [16], data_offsets: [-64, 0] } })));
  assert.match(m, /tensor "w": data_offsets \[-64,0\] are not two non-negative integers/);
});

test("fractional data_offsets are refused naming the tensor", () => {
  const m = refusal(rewrite(small(), (h) => ({ ...h, w: { dtype: "F32", shape: [16], data_offsets: [0.5, 64.5] } })));
  assert.match(m, /tensor "w": data_offsets \[0\.5,64\.5\] are not two non-negative integers/);
  assert.match(
    refusal(rewrite(small(), (h) => ({ ...h, w: { dtype: "F32", shape: [15.5, 1], data_offsets: [0, 64] } }))),
    /tensor "w": shape \[15\.5,1\] is not a list of non-negative integers/,
  );
});

test("a header that is a JSON array is refused as such (not with an io-ts report)", () => {
  const m = refusal(assemble(JSON.stringify([{ w: { dtype: "F32", shape: [1], data_offsets: [0, 4] } }]), new Uint8Array(4)));
  assert.match(m, /the header is a JSON array, not an object \{name: \{dtype, shape, data_offsets\}\}/);
  assert.doesNotMatch(m, /Invalid value|io-ts|supplied to/);
});

test("the other rules, each refused with the tensor or field at fault", () => {
  const cases: [Uint8Array, RegExp][] = [
    [new Uint8Array(5), /5 bytes, fewer than the 8/],
    [
      (() => {
        const b = small();
        new DataView(b.buffer).setBigUint64(0, BigInt(MAX_HEADER_BYTES) + 1n, true);
        return b;
      })(),
      /over the format's limit of 100000000 bytes/,
    ],
    [
      (() => {
        const b = small();
        new DataView(b.buffer).setBigUint64(0, BigInt(b.length - 7), true);
        return b;
      })(),
      /runs past the end of the file/,
    ],
    [
      rewrite(small(), (h) => ({ ...h, w: { dtype: "F32", shape: [16], data_offsets: [0, 60] } })),
      /tensor "w": data_offsets \[0, 60\] hold 60 bytes, but F32\[16\] takes 64/,
    ],
    [rewrite(small(), (h) => ({ ...h, w: { dtype: "F32", shape: [16], data_offsets: [64, 0] } })), /tensor "w": data_offsets \[64, 0\] begin after they end/],
    [
      rewrite(small(), (h) => ({ ...h, x: { dtype: "F32", shape: [2], data_offsets: [60, 68] } })),
      /tensor "x": .* previous tensor "w" ends at byte 64 \(an overlap\)/,
    ],
    [rewrite(small(), (h) => ({ ...h, w: { dtype: "F32", shape: [15], data_offsets: [4, 64] } })), /tensor "w": .*data section starts at byte 0 \(a gap\)/],
    [
      rewrite(small(), (h) => ({ ...h, x: { dtype: "F32", shape: [1], data_offsets: [64, 68] } })),
      /tensor "x": is the last, ending at byte 68, but the data section holds 72 bytes/,
    ],
    [
      (() => {
        const b = small();
        return b.slice(0, b.length - 1);
      })(),
      /tensor "x": runs past the end of the file/,
    ],
    [
      (() => {
        const b = small();
        const c = new Uint8Array(b.length + 3);
        c.set(b);
        return c;
      })(),
      /tensor "x": is the last, ending at byte 72, but the data section holds 75 bytes/,
    ],
    [
      rewrite(small(), (h) => ({ ...h, w: { dtype: "I64", shape: [8], data_offsets: [0, 64] } })),
      /tensor "w": dtype I64 is a safetensors dtype wgrad does not load/,
    ],
    [rewrite(small(), (h) => ({ ...h, w: { dtype: "f32", shape: [16], data_offsets: [0, 64] } })), /tensor "w": dtype "f32" is not a safetensors dtype/],
    [rewrite(small(), (h) => ({ ...h, w: { shape: [16], data_offsets: [0, 64] } })), /tensor "w": dtype missing is not a safetensors dtype/],
    [rewrite(small(), (h) => ({ ...h, w: 3 })), /tensor "w": the header entry is 3, not an object/],
    [rewrite(small(), (h) => ({ ...h, __metadata__: { epoch: 3 } })), /__metadata__ "epoch" is 3, not a string/],
    [rewrite(small(), (h) => ({ ...h, __metadata__: ["a"] })), /__metadata__ is \["a"\], not an object of strings/],
    [
      (() => {
        const s = split(small());
        assert.ok(s);
        return assemble(`\n${s.text}`, s.data);
      })(),
      /white space around its JSON object/,
    ],
    [
      (() => {
        const s = split(small());
        assert.ok(s);
        return assemble(`${s.text}\n`, s.data);
      })(),
      /white space around its JSON object/,
    ],
    [
      (() => {
        const s = split(small());
        assert.ok(s);
        return assemble(`\uFEFF${s.text}`, s.data);
      })(),
      /not JSON/,
    ],
    [
      (() => {
        const b = small();
        b[9] = 0xff;
        return b;
      })(),
      /not valid UTF-8/,
    ],
    [assemble(JSON.stringify({}), new Uint8Array(4)), /lists no tensors but 4 bytes of data follow/],
    [assemble(JSON.stringify({ m: { dtype: "BOOL", shape: [2], data_offsets: [0, 2] } }), Uint8Array.of(1, 2)), /tensor "m": BOOL element 1 is the byte 2/],
  ];
  for (const [bytes, want] of cases) assert.match(refusal(bytes), want);
  // Allowed by the format: trailing-space padding, zero-sized tensors at a boundary, unknown keys in an entry, an empty file of no tensors.
  const ok = [
    rewrite(small(), (h) => h, 13),
    rewrite(small(), (h) => ({ ...h, z: { dtype: "F32", shape: [0, 3], data_offsets: [64, 64] }, x: { ...(isObj(h.x) ? h.x : {}), note: 1 } })),
    assemble("{}", new Uint8Array(0)),
    encodeSafetensors({ ["__proto__"]: hostTensor([5], [1]) }),
  ];
  for (const b of ok) {
    const r = decodeSafetensors(b);
    assert.ok(E.isRight(r), E.isLeft(r) ? r.left.message : "");
  }
  const proto = decodeSafetensors(ok[3]);
  assert.ok(E.isRight(proto) && Object.hasOwn(proto.right.tensors, "__proto__") && proto.right.tensors["__proto__"].data[0] === 5);
});

// ---------- through the checkpoint loader (what `wgrad eval` and `--resume` run) ----------

const tinyConfig = () => {
  const c = decodeConfig({ backend: "cpu", width: 16, depth: 1, heads: 2, mlpRatio: 2, headHidden: 32, headBottleneck: 16, outDim: 64, localCrops: 2 });
  if (E.isLeft(c)) throw c.left;
  return c.right;
};

/** A tiny model's checkpoint, its tensors, its initial state, and a folder to write variants into. */
async function tinyCheckpoint() {
  const c = tinyConfig();
  const like = evaluate(() => initIbotState(randomKey(0), modelConfig(c)));
  const tensors = await checkpointTensors(like as never, { channels: 1, size: c.patchSize });
  const metadata = { format: "wgrad-ibot-1", epoch: "1", step: "1", config: JSON.stringify(c) };
  return { like, tensors, metadata, bytes: encodeSafetensors(tensors, metadata), dir: mkdtempSync(join(tmpdir(), "st-ck-")) };
}

/** `loadCheckpoint` of `bytes` written to `name`: the CheckpointError it must throw. */
async function loadRefusal(dir: string, name: string, bytes: Uint8Array): Promise<CheckpointError> {
  const path = join(dir, name);
  writeFileSync(path, bytes);
  try {
    await loadCheckpoint(path);
  } catch (e) {
    assert.ok(e instanceof CheckpointError, `threw ${String(e)}`);
    assert.ok(e.message.startsWith(`${path}: `), e.message);
    return e;
  }
  assert.fail("the checkpoint was loaded");
}

test("the checkpoint loader: I32 where the model needs F32, NaN weights and negative offsets are refused naming the tensor; `wgrad eval` exits non-zero", async () => {
  const { like, tensors, metadata, bytes, dir } = await tinyCheckpoint();
  // A valid checkpoint loads.
  writeFileSync(join(dir, "ok.safetensors"), bytes);
  await loadCheckpoint(join(dir, "ok.safetensors"));

  // I32 for F32: the same byte length, so the format is fine; the loader knows the model's dtype.
  const asI32 = rewrite(bytes, (h) => ({
    ...h,
    "teacher.backbone.pos_embed": { ...(isObj(h["teacher.backbone.pos_embed"]) ? h["teacher.backbone.pos_embed"] : {}), dtype: "I32" },
  }));
  assert.ok(E.isRight(decodeSafetensors(asI32)), "format-valid");
  const e1 = await loadRefusal(dir, "i32.safetensors", asI32);
  assert.equal(e1.tensor, "teacher.backbone.pos_embed");
  assert.match(e1.message, /tensor "teacher\.backbone\.pos_embed": is I32\[1,\d+,16\], the model expects F32/);

  // Every tensor NaN: refused at the first tensor read, with its count of non-finite values.
  const nan = Object.fromEntries(Object.entries(tensors).map(([k, t]) => [k, t.dtype === "f32" ? hostTensor(new Float32Array(t.size).fill(NaN), t.shape) : t]));
  const e2 = await loadRefusal(dir, "nan.safetensors", encodeSafetensors(nan, metadata));
  assert.ok(e2.tensor && Object.hasOwn(tensors, e2.tensor), String(e2.tensor));
  assert.ok(
    e2.message.includes(`tensor "${e2.tensor}": holds ${tensors[e2.tensor].size} non-finite values (NaN or ±Infinity) among ${tensors[e2.tensor].size}`),
    e2.message,
  );
  // One Infinity in one teacher weight is enough, and named.
  const name = "teacher.backbone.blocks.0.attn.qkv.weight";
  const one = hostTensor(Float32Array.from(tensors[name].data), tensors[name].shape);
  one.data[3] = -Infinity;
  assert.throws(
    () => stateFromCheckpoint(like, { ...tensors, [name]: one }, "ck.safetensors"),
    (e: unknown) => e instanceof CheckpointError && e.message.includes(`ck.safetensors: tensor "${name}": holds 1 non-finite values`),
  );
  assert.doesNotThrow(() => stateFromCheckpoint(like, tensors));

  // Negative offsets: through `wgrad eval`, which used to read header text as weights and exit 0.
  const neg = rewrite(bytes, (h) => {
    const e = h["teacher.backbone.cls_token"];
    return { ...h, "teacher.backbone.cls_token": { ...(isObj(e) ? e : {}), data_offsets: [-64, 0] } };
  });
  const e3 = await loadRefusal(dir, "neg.safetensors", neg);
  assert.match(e3.message, /tensor "teacher\.backbone\.cls_token": data_offsets \[-64,0\]/);
  let code = 0;
  let stderr = "";
  try {
    execFileSync(process.execPath, ["--import", "tsx", "src/cli/main.ts", "eval", "--checkpoint", join(dir, "neg.safetensors")], {
      stdio: "pipe",
      encoding: "utf8",
    });
  } catch (e) {
    const x = e as { status: number; stderr: string };
    [code, stderr] = [x.status, x.stderr];
  }
  assert.notEqual(code, 0);
  assert.match(stderr, /CheckpointError: .*neg\.safetensors: tensor "teacher\.backbone\.cls_token": data_offsets \[-64,0\] are not two non-negative integers/);
});
