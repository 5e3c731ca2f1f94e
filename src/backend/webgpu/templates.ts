/**
 * Kernel templates: elementwise, reduction (a thread or a workgroup per output), scatterAdd and
 * register-blocked batched matmul. Each takes the kernel's root node and, for reductions and
 * matmul, an optional elementwise epilogue evaluated on the result before it is stored (bias +
 * GELU after a linear layer is one kernel).
 */
import { dispatch, sizeOf, type Node, type RuleTable, type Shape, type Tensor } from "../../dsl/index.js";
import { bindingDecl, KernelGen, regType, toStore, type Idx } from "./gen.js";
import { F32_BITS, F32_BITS_SOURCE, literal } from "./wgslLib.js";

/** A generated kernel before it is named and bound: its WGSL and what it reads and writes. */
export interface KernelBody {
  /** The WGSL module (without the name comment of KernelSource.wgsl): the pipeline cache's key. */
  readonly body: string;
  /** Materialised nodes read, in binding order (the output binds after them). */
  readonly reads: readonly Tensor[];
  /** For each read, the index keys it was read at (to prove in-place updates safe). */
  readonly readKeys: ReadonlyMap<Tensor, ReadonlySet<string>>;
  /** Index keys of the elements each thread writes: reading a donated buffer only there is safe in place. */
  readonly storeKeys: ReadonlySet<string>;
  readonly output: Tensor;
  readonly dispatch: readonly [number, number, number];
  /** A read binding served by the output binding instead (an in-place update of a donated input). */
  readonly aliased?: number;
  /** The fields of the kernel's `sizes` uniform (bound after the output) and their values, in order, where it reads sizes at run time. */
  readonly sizes?: ReadonlyMap<string, number>;
}

/** A kernel of an executable: its body, named after what it fuses, and the node it is built around. */
export interface KernelSource extends KernelBody {
  readonly name: string;
  /** The WGSL as dispatched and shown: the body under a `// name` comment. */
  readonly wgsl: string;
  /** The node the kernel is built around (a matmul or reduction with a fused epilogue, or the root). */
  readonly core: Tensor;
}

/** Names a kernel body. */
export const named = (k: KernelBody, name: string, core: Tensor): KernelSource => ({ ...k, name, wgsl: `// ${name}${sizesComment(k)}\n${k.body}`, core });

/** The run-time sizes a kernel is dispatched with, for the reader of its WGSL. */
const sizesComment = (k: KernelBody): string => (k.sizes ? `\n// sizes: ${[...k.sizes].map(([n, v]) => `${n} = ${v}`).join(", ")}` : "");

export const WG = 64;
/** Elementwise kernels this large or larger take four elements per thread. */
const VEC4_MIN = 1024;

/** Splits `groups` workgroups over x and y (each at most 65535). */
function grid(groups: number): [number, number] {
  const x = Math.max(1, Math.min(groups, 65535));
  return [x, Math.max(1, Math.ceil(groups / x))];
}

export function assembleKernel(g: KernelGen, output: Tensor, main: string, dispatch: readonly [number, number, number], extraDecls = ""): KernelBody {
  const reads = g.bindings.map((b) => b.node);
  const aliased = g.alias ? reads.indexOf(g.alias) : -1;
  const decls = g.bindings.flatMap((b, i) =>
    i === aliased ? [] : [b.vec4 ? `@group(0) @binding(${i}) var<storage, read> in${i}: array<vec4<f32>>;` : bindingDecl(i, `in${i}`, b.node.dtype, "read")],
  );
  decls.push(
    g.vec4Lanes.size
      ? `@group(0) @binding(${reads.length}) var<storage, read_write> out: array<vec4<f32>>;`
      : bindingDecl(reads.length, "out", output.dtype, "read_write"),
  );
  const names = [...g.sizes.keys()];
  if (names.length)
    decls.push(`struct Sizes { ${names.map((n) => `${n}: u32`).join(", ")} }`, `@group(0) @binding(${reads.length + 1}) var<uniform> sizes: Sizes;`);
  const helpers = g.helperSource();
  const usesBits = (helpers + main).includes(`${F32_BITS}(`);
  const enables = /\bsubgroup[A-Z]/.test(main) ? "enable subgroups;" : "";
  const body = [enables, ...decls, extraDecls, usesBits ? F32_BITS_SOURCE : "", helpers, main].filter((s) => s).join("\n");
  const sizes = names.length ? { sizes: new Map(g.sizes) } : {};
  return { body, reads, readKeys: g.readKeys, storeKeys: g.storeKeys, output, dispatch, ...(aliased >= 0 ? { aliased } : {}), ...sizes };
}

export const indent = (lines: readonly string[], n = 1) => lines.map((l) => "  ".repeat(n) + l).join("\n");

/** A kernel with one thread per item `index` < n over a 2-D grid of workgroups, and its dispatch. */
function threadPerItem(g: KernelGen, index: string, n: number): { main: string; dispatch: [number, number, number] } {
  const [x, y] = grid(Math.ceil(n / WG));
  const main = `@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let ${index} = gid.x + gid.y * ${g.size("pitch", x * WG, true)};
  if (${index} >= ${g.size("count", n, true)}) { return; }
${indent(g.body())}
}`;
  return { main, dispatch: [x, y, 1] };
}

/**
 * out[i] = root at i: one thread per element, or per four elements for f32 outputs whose size is
 * a multiple of 4. Those store a vec4 and load a vec4 of every f32 buffer they read at the same
 * elements: lavapipe loads storage one lane at a time, so a vec4 costs about what a scalar does,
 * and such kernels ran about 2× faster.
 */
export function elementwiseKernel(g: KernelGen, root: Tensor): KernelBody {
  if (root.dtype === "f32" && root.size % 4 === 0 && root.size >= VEC4_MIN) {
    storeFourLanes(g, "t", (e) => {
      const idx = g.idx(root.shape, e, null);
      g.storeKeys.add(idx.key);
      return g.val(root, idx);
    });
    const k = threadPerItem(g, "t", root.size / 4);
    return assembleKernel(g, root, k.main, k.dispatch);
  }
  const idx = g.idx(root.shape, "i", null);
  const v = g.val(root, idx);
  g.line(`out[i] = ${toStore(v, root.dtype)};`);
  g.storeKeys.add(idx.key);
  const k = threadPerItem(g, "i", root.size);
  return assembleKernel(g, root, k.main, k.dispatch);
}

/**
 * Emits `out[vec] = vec4(...)` of four lanes computed side by side (KernelGen.interleaved): lane j
 * is the element at flat index vec·4 + j, and f32 buffers read at those elements load as vec4s.
 */
export function storeFourLanes(g: KernelGen, vec: string, lane: (e: string, j: number) => string): void {
  const values = g.interleaved(4, (j) => {
    const e = g.let(`${vec} * 4u + ${j}u`, "e");
    g.vec4Lanes.set(e, { vec, lane: j });
    return lane(e, j);
  });
  g.line(`out[${vec}] = vec4<f32>(${values.join(", ")});`);
}

/** The (possibly epilogue-transformed) value at flat output index `o`, where `core` is `value`. */
export function laneWithEpilogue(g: KernelGen, core: Tensor, epilogue: Tensor, o: string, value: string): string {
  const idx = g.idx(epilogue.shape, o, null);
  g.overrides.set(`${g.id(core)}|f:${o}`, value);
  g.storeKeys.add(idx.key);
  return g.val(epilogue, idx);
}

/** Writes the (possibly epilogue-transformed) value of `core` at flat output index `o`. */
export function storeWithEpilogue(g: KernelGen, core: Tensor, epilogue: Tensor, o: string, value: string): void {
  g.line(`out[${o}] = ${toStore(laneWithEpilogue(g, core, epilogue, o, value), epilogue.dtype)};`);
}

/**
 * Emits `store` (the statements for row `t` of a tile of `tm` rows from `row0`) once, in a loop
 * over the tile's rows that exist. Unrolled, a fused epilogue's loads and index arithmetic came
 * once per output element and lavapipe took seconds to compile such a kernel; the trip count
 * depends on row0 so that the shader compiler cannot unroll it either.
 */
export function storeRows(g: KernelGen, tm: number, M: string, store: readonly string[]): void {
  g.line(`let rows = select(0u, min(${tm}u, ${M} - row0), row0 < ${M});`);
  g.line(`for (var t = 0u; t < rows; t++) {\n${indent(store, 2)}\n  }`);
}

/** The primitives the reduction template computes. */
export type ReducePrim = "sum" | "max" | "argmax" | "argmin";

interface Reducer {
  readonly init: string[];
  /** Statements folding value `v` at reduction position `pos` into the accumulator. */
  readonly step: (v: string, pos: string) => string[];
  readonly result: string;
}

function reducer(kind: ReducePrim, t: string): Reducer {
  const lowest = t === "f32" ? literal(-Infinity, "f32") : "i32(-2147483647 - 1)";
  const highest = t === "f32" ? literal(Infinity, "f32") : "2147483647i";
  switch (kind) {
    case "sum":
      // Kahan-compensated for floats.
      return t === "f32"
        ? {
            init: ["var acc = 0.0;", "var comp = 0.0;"],
            step: (v) => [`let y_ = ${v} - comp;`, "let t_ = acc + y_;", "comp = (t_ - acc) - y_;", "acc = t_;"],
            result: "acc",
          }
        : { init: ["var acc = 0i;"], step: (v) => [`acc += ${v};`], result: "acc" };
    case "max":
      return { init: [`var acc = ${lowest};`], step: (v) => [`acc = max(acc, ${v});`], result: "acc" };
    case "argmax":
      return {
        init: [`var best = ${lowest};`, "var acc = 0i;"],
        step: (v, p) => [`if (${v} > best || (acc == 0i && ${p} == 0u)) { best = ${v}; acc = i32(${p}); }`],
        result: "acc",
      };
    case "argmin":
      return {
        init: [`var best = ${highest};`, "var acc = 0i;"],
        step: (v, p) => [`if (${v} < best || (acc == 0i && ${p} == 0u)) { best = ${v}; acc = i32(${p}); }`],
        result: "acc",
      };
    default:
      return kind satisfies never;
  }
}

/** Reduced axes, and the input index built from output coordinates and reduction coordinates. */
const reducedAxes: RuleTable<readonly number[], [], ReducePrim> = {
  sum: (n) => n.params.axes,
  max: (n) => n.params.axes,
  argmax: (n) => [n.params.axis],
  argmin: (n) => [n.params.axis],
};

function reductionGeometry(root: Node<ReducePrim>): { x: Tensor; axes: number[]; rShape: number[] } {
  const x = root.inputs[0];
  const axes = [...dispatch(reducedAxes, root)];
  return { x, axes, rShape: axes.map((a) => x.shape[a]) };
}

function inputIdx(g: KernelGen, x: Tensor, axes: readonly number[], oCoords: readonly string[], rCoords: readonly string[]): Idx {
  let ko = 0;
  let kr = 0;
  return g.idx(
    x.shape,
    null,
    x.shape.map((_, i) => (axes.includes(i) ? rCoords[kr++] : oCoords[ko++])),
  );
}

/**
 * The loop body of a reduction over x's trailing axes (input element (o, r) at o·R + r) or its
 * leading ones (at r·nOut + o), reading x at that flat index, and the loop's trip count: R, read
 * at run time where the kept axes lead, where it is all that differs between the teacher's and
 * the student's crops. Such a body names no extent of the axes kept, so the same reduction over
 * 2176 or 1280 rows is one pipeline (lavapipe compiles each at its first dispatch). Undefined,
 * with nothing emitted, where the axes are neither, or a fused operand would derive coordinates
 * from the flat index inside the loop (a division per axis and element): the caller then makes
 * the output coordinates once, outside it.
 */
function flatReduction(
  g: KernelGen,
  x: Tensor,
  axes: readonly number[],
  R: number,
  nOut: number,
  fold: (idx: Idx) => void,
): { loop: string[]; R: string } | undefined {
  const k = axes.length;
  const sorted = [...axes].sort((a, b) => a - b);
  const trailing = sorted.every((a, i) => a === x.rank - k + i);
  if (!trailing && !sorted.every((a, i) => a === i)) return undefined;
  const Rs = trailing ? `${R}u` : g.size("r", R, true);
  const derived = g.coordsDerived;
  const loop = g.nested(() => fold(g.idx(x.shape, g.let(trailing ? `o * ${Rs} + r` : `r * ${nOut}u + o`, "ix"), null)));
  if (g.coordsDerived !== derived) {
    if (!trailing) g.sizes.delete("r");
    return undefined;
  }
  return { loop, R: Rs };
}

function reductionCoords(g: KernelGen, r: string, rShape: Shape): string[] {
  return g.coords(g.idx(rShape, r, null)) as string[];
}

/**
 * Whether a reduction runs a thread per output (many outputs or short rows) or a workgroup per
 * output. On CPU adapters a workgroup's threads are the lanes of SIMD loops on one CPU thread, and
 * its tree of barriers costs more than it spreads: there a workgroup's worth of outputs (64) is
 * enough, up to rows of 65 536. (ViT step, qkv bias gradients: 20 → 10 ms on lavapipe.)
 */
export const threadPerOutput = (root: Node<ReducePrim>, cpu: boolean): boolean => {
  const { rShape } = reductionGeometry(root);
  const r = sizeOf(rShape);
  return r <= 256 || root.size >= 2048 || (cpu && root.size >= WG && r <= 65536);
};

export function reduceKernel(g: KernelGen, root: Node<ReducePrim>, epilogue: Tensor, cpu: boolean): KernelBody {
  const kind = root.prim;
  const { x, axes, rShape } = reductionGeometry(root);
  const t = regType(x.dtype);
  const R = sizeOf(rShape);
  const nOut = root.size;
  const red = reducer(kind, t);
  const fold = (idx: Idx) => {
    const v = g.val(x, idx);
    for (const s of red.step(v, "r")) g.line(s);
  };
  // The loop body folding input element (o, r) into the accumulator: at a flat index where it
  // can, else from output coordinates made outside it.
  const flat = flatReduction(g, x, axes, R, nOut, fold);
  const coordLoop = () => {
    const oCoords = g.coords(g.idx(root.shape, "o", null));
    return g.nested(() => fold(inputIdx(g, x, axes, oCoords, reductionCoords(g, "r", rShape))));
  };
  const loop = flat?.loop ?? coordLoop();
  const Rs = flat?.R ?? `${R}u`;
  if (threadPerOutput(root, cpu)) {
    for (const s of red.init) g.line(s);
    g.line(`for (var r = 0u; r < ${Rs}; r++) {\n${indent(loop, 2)}\n  }`);
    storeWithEpilogue(g, root, epilogue, "o", red.result);
    const k = threadPerItem(g, "o", nOut);
    return assembleKernel(g, epilogue, k.main, k.dispatch);
  }
  // A workgroup per output: strided partial results, then a tree in workgroup memory.
  const [gx, gy] = grid(nOut);
  const isArg = kind === "argmax" || kind === "argmin";
  const better = kind === "argmin" ? "<" : ">";
  const combine =
    kind === "sum"
      ? "shv[lid] = shv[lid] + shv[lid + s];"
      : kind === "max"
        ? "shv[lid] = max(shv[lid], shv[lid + s]);"
        : `if (shv[lid + s] ${better} shv[lid] || (shv[lid + s] == shv[lid] && shi[lid + s] < shi[lid])) { shv[lid] = shv[lid + s]; shi[lid] = shi[lid + s]; }`;
  // The epilogue is generated after the loop, in its own scope.
  const epi = g.nested(() => storeWithEpilogue(g, root, epilogue, "o", "res"));
  const main = `@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let o = wid.x + wid.y * ${gx}u;
  if (o >= ${nOut}u) { return; }
${indent(g.body())}
${indent(red.init)}
  for (var r = lid; r < ${Rs}; r += ${WG}u) {
${indent(loop, 2)}
  }
  shv[lid] = ${isArg ? "best" : "acc"};
${isArg ? "  shi[lid] = acc;\n" : ""}  workgroupBarrier();
  for (var s = ${WG / 2}u; s > 0u; s >>= 1u) {
    if (lid < s) { ${combine} }
    workgroupBarrier();
  }
  if (lid == 0u) {
    let res = ${isArg ? "shi[0]" : "shv[0]"};
${indent(epi, 2)}
  }
}`;
  const shared = `var<workgroup> shv: array<${t}, ${WG}>;${isArg ? `\nvar<workgroup> shi: array<i32, ${WG}>;` : ""}`;
  return assembleKernel(g, epilogue, main, [gx, gy, 1], shared);
}

/** scatterAdd as a gather-side reduction: each output sums the updates whose (clamped) index hits it. */
export function scatterKernel(g: KernelGen, root: Node<"scatterAdd">): KernelBody {
  const [u, ind] = root.inputs;
  const { axis, size } = root.params;
  const m = ind.size;
  const nOut = root.size;
  const oC = g.coords(g.idx(root.shape, "o", null));
  const t = regType(root.dtype);
  const loop = g.nested(() => {
    const iC = g.coords(g.idx(ind.shape, "j", null));
    const target = g.val(ind, g.idx(ind.shape, "j", iC));
    const uC = [...oC.slice(0, axis), ...iC, ...oC.slice(axis + 1)];
    g.line(`if (u32(clamp(${target}, 0i, ${size - 1}i)) == ${oC[axis]}) {`);
    const v = g.val(u, g.idx(u.shape, null, uC));
    g.line(`  acc += ${v};`);
    g.line("}");
  });
  g.line(`var acc = ${t}(0);`);
  g.line(`for (var j = 0u; j < ${m}u; j++) {\n${indent(loop, 2)}\n  }`);
  g.line(`out[o] = acc;`);
  const k = threadPerItem(g, "o", nOut);
  return assembleKernel(g, root, k.main, k.dispatch);
}

/** Tile parameters of the register-blocked matmul: each thread computes tm×tn outputs. */
export interface MatmulParams {
  readonly tm: number;
  readonly tn: number;
  readonly wx: number;
  readonly wy: number;
  /** vec4 template: neighbouring threads take neighbouring vec4 columns (else each takes tn adjacent columns). */
  readonly interleave?: boolean;
  /**
   * Threads share their rows of A through subgroupBroadcast, in groups of this many lanes (needs
   * wy = 1, tm a multiple of it and subgroups of at least this size).
   */
  readonly subgroup?: number;
  /**
   * Stage bk-deep tiles of A and B in workgroup memory (matmulTiled.ts, for discrete GPUs): each
   * workgroup computes (tm·wy)×(tn·wx) outputs from them (needs tm and tn multiples of 4).
   */
  readonly bk?: number;
}

/**
 * Subgroup tiles narrowed to one subgroup per workgroup where the n/tn columns of a matmul with
 * `n` output columns would leave the last, wider workgroup partly idle: n = 96 makes 24 columns,
 * three full groups of 8 lanes but two groups of 16 a quarter empty.
 */
export function fitColumns(p: MatmulParams, n: number): MatmulParams {
  return p.subgroup === undefined || Math.ceil(n / p.tn) % p.wx === 0 ? p : { ...p, wx: p.subgroup };
}

/** Used until the autotuner has timed a shape class (the best average on lavapipe here). */
export const DEFAULT_MATMUL: MatmulParams = { tm: 4, tn: 4, wx: 8, wy: 8 };

/**
 * The general matmul: any dtype, sizes and operand expressions (fused prologues), tm×tn scalar
 * accumulators per thread. With `subgroup: S` (wy = 1, tm a multiple of S) the workgroup's
 * threads share their rows of A as the vec4 template does: lane s loads rows s, s + S, ...
 */
export function matmulKernel(g: KernelGen, root: Tensor, epilogue: Tensor, p: MatmulParams): KernelBody {
  const [a, b] = root.inputs;
  const batch = root.shape.slice(0, -2);
  const [M, N] = root.shape.slice(-2);
  const K = a.shape[a.rank - 1];
  const nb = sizeOf(batch);
  const S = p.subgroup;
  const bC = g.coords(g.idx(batch, "bz", null));
  const aBatch = g.broadcastIdx(g.idx(batch, null, bC), a.shape.slice(0, -2));
  const bBatch = g.broadcastIdx(g.idx(batch, null, bC), b.shape.slice(0, -2));
  const aBC = batch.length ? g.coords(aBatch) : [];
  const bBC = batch.length ? g.coords(bBatch) : [];
  const aRows = S ? p.tm / S : p.tm;
  const rows = Array.from({ length: aRows }, (_, t) => g.let(`min(row0 + ${S ? `sg + ${t * S}u` : `${t}u`}, ${M - 1}u)`, "r"));
  const cols = Array.from({ length: p.tn }, (_, u) => g.let(`min(col0 + ${u}u, ${N - 1}u)`, "c"));
  const acc = (t: number, u: number) => `acc${t}_${u}`;
  const T = regType(root.dtype);
  for (let t = 0; t < p.tm; t++) for (let u = 0; u < p.tn; u++) g.line(`var ${acc(t, u)} = ${T}(0);`);
  const loop = g.nested(() => {
    let av = rows.map((r) => g.val(a, g.idx(a.shape, null, [...aBC, r, "k"])));
    if (S) av = Array.from({ length: p.tm }, (_, t) => g.let(`subgroupBroadcast(${av[Math.floor(t / S)]}, ${t % S}u)`, "a"));
    const bv = cols.map((c) => g.val(b, g.idx(b.shape, null, [...bBC, "k", c])));
    for (let t = 0; t < p.tm; t++) for (let u = 0; u < p.tn; u++) g.line(`${acc(t, u)} += ${av[t]} * ${bv[u]};`);
  });
  g.line(`for (var k = 0u; k < ${K}u; k++) {\n${indent(loop, 2)}\n  }`);
  g.line(`var res: array<array<${T}, ${p.tn}>, ${p.tm}>;`);
  for (let t = 0; t < p.tm; t++) g.line(`res[${t}u] = array<${T}, ${p.tn}>(${Array.from({ length: p.tn }, (_, u) => acc(t, u)).join(", ")});`);
  const store = g.nested(() => {
    for (let u = 0; u < p.tn; u++) {
      const body = g.nested(() => {
        const o = g.let(`bz * ${M * N}u + (row0 + t) * ${N}u + col0 + ${u}u`, "o");
        storeWithEpilogue(g, root, epilogue, o, `res[t][${u}u]`);
      });
      g.line(`if (col0 + ${u}u < ${N}u) {\n${indent(body)}\n}`);
    }
  });
  storeRows(g, p.tm, `${M}u`, store);
  const gx = Math.ceil(N / (p.tn * p.wx));
  const gy = Math.ceil(M / (p.tm * p.wy));
  // Subgroup operations need every lane: no early return, the loads are clamped and the stores guarded.
  const main = `@compute @workgroup_size(${p.wx}, ${p.wy}, 1)
fn main(@builtin(global_invocation_id) gid: vec3u${S ? ", @builtin(subgroup_invocation_id) sg: u32" : ""}) {
  let col0 = gid.x * ${p.tn}u;
  let row0 = gid.y * ${p.tm}u;
  let bz = gid.z;
${S ? "" : `  if (row0 >= ${M}u || col0 >= ${N}u) { return; }\n`}${indent(g.body())}
}`;
  return assembleKernel(g, epilogue, main, [gx, gy, nb]);
}
