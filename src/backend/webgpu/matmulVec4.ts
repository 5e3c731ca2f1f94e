/**
 * The fast matmul: register-blocked, vec4 loads, no workgroup memory (on lavapipe, barriers and
 * shared memory cost more than they save). Operands are read in place from their buffers, either
 * as stored or transposed (a permute of the last two axes), so backward-pass matmuls need no
 * transpose kernels. Applies when the vectorised axes are multiples of 4; otherwise the scalar
 * template runs.
 *
 * With `subgroup: S`, a workgroup's threads share their tm rows of A: lane s of each subgroup
 * loads rows s, s + S, ... and every thread takes the others by subgroupBroadcast. lavapipe runs
 * S = 8 threads as the lanes of one SIMD vector and loads storage buffers one lane at a time, so
 * the redundant row loads were most of the loop; sharing them made 1024³ about 3× faster.
 */
import { sizeOf, stridesOf, type Tensor } from "../../dsl/index.js";
import type { KernelGen } from "./gen.js";
import type { KernelBody, MatmulParams } from "./templates.js";
import { assembleKernel, indent, laneWithEpilogue, storeFourLanes, storeRows, storeWithEpilogue } from "./templates.js";

/** Where an operand's values live: a materialised buffer, read as stored or transposed. */
interface Layout {
  readonly buf: Tensor;
  readonly transposed: boolean;
}

/**
 * The buffer behind a matmul operand, if the operand is a stored buffer (or any reshape of one:
 * stored data is contiguous, so a reshape only renames it) seen directly or with its last two
 * axes swapped. The kernels index operands by the operand's own shape, never the buffer's.
 */
export function operandLayout(x: Tensor, isMat: (n: Tensor) => boolean): Layout | null {
  const stored = (n: Tensor) => (isMat(n) ? n : n.prim === "reshape" && isMat(n.inputs[0]) ? n.inputs[0] : null);
  const direct = stored(x);
  if (direct) return { buf: direct, transposed: false };
  if (x.prim === "permute" && swapsLastTwo(x)) {
    const buf = stored(x.inputs[0]);
    if (buf) return { buf, transposed: true };
  }
  return null;
}

/** Whether a permute swaps the last two axes and keeps the others. */
export function swapsLastTwo(x: Tensor): boolean {
  const p = (x.params as { perm: readonly number[] }).perm;
  const r = p.length;
  return r >= 2 && p.every((a, i) => (i < r - 2 ? a === i : i === r - 2 ? a === r - 1 : a === r - 2));
}

/**
 * Whether the vec4 template can run this matmul with these tile parameters, on a device whose
 * subgroups have at least `subgroupSize` lanes (0: no subgroup operations).
 */
export function vec4Applicable(root: Tensor, p: MatmulParams, isMat: (n: Tensor) => boolean, subgroupSize: number): boolean {
  if (root.dtype !== "f32" || p.bk !== undefined) return false;
  const [a, b] = root.inputs;
  const la = operandLayout(a, isMat);
  const lb = operandLayout(b, isMat);
  if (!la || !lb) return false;
  const [M, N] = root.shape.slice(-2);
  const K = a.shape[a.rank - 1];
  if (K % 4 !== 0 || p.tn % 4 !== 0) return false;
  if (la.transposed && (M % 4 !== 0 || p.tm % 4 !== 0)) return false;
  if (!lb.transposed && N % 4 !== 0) return false;
  const S = p.subgroup;
  if (S !== undefined) {
    // Every lane a thread broadcasts from must exist, and all of a workgroup's threads share rows.
    if (S > subgroupSize || p.wy !== 1 || p.wx % S !== 0) return false;
    if (p.tm % (la.transposed ? 4 * S : S) !== 0) return false;
  }
  return true;
}

/**
 * Whether a vec4 matmul reads its sizes at run time (KernelGen.size): a plain product (no fused
 * epilogue, whose index arithmetic would keep its own sizes) whose operands are each batched like
 * the output or not batched, so every size is one of M, N, K and the batch strides. Matmuls of a
 * step that differ only in those then share one pipeline.
 */
export function runtimeSizes(root: Tensor, epilogue: Tensor): boolean {
  const batch = root.shape.slice(0, -2);
  const simple = (x: Tensor) => {
    const xb = x.shape.slice(0, -2);
    return sizeOf(xb) <= 1 || (xb.length === batch.length && xb.every((d, i) => d === batch[i]));
  };
  return epilogue === root && root.inputs.every(simple);
}

export function matmulVec4Kernel(g: KernelGen, root: Tensor, epilogue: Tensor, p: MatmulParams, isMat: (n: Tensor) => boolean): KernelBody {
  const [a, b] = root.inputs;
  const la = operandLayout(a, isMat)!;
  const lb = operandLayout(b, isMat)!;
  const batch = root.shape.slice(0, -2);
  const [M, N] = root.shape.slice(-2);
  const K = a.shape[a.rank - 1];
  const rt = runtimeSizes(root, epilogue);
  const size = (name: string, value: number) => g.size(name, value, rt);
  const A = g.buffer(la.buf, true);
  const B = g.buffer(lb.buf, true);
  // Read at many elements per thread: never a candidate for an in-place update.
  for (const l of [la, lb]) g.readKeys.set(l.buf, new Set([...(g.readKeys.get(l.buf) ?? []), "vec4"]));
  const { tm, tn } = p;
  const nv = tn / 4;
  // Batch offsets (in vec4 units) from the output's batch coordinates, through broadcasting.
  const bC = rt ? [] : g.coords(g.idx(batch, "bz", null));
  const offset = (x: Tensor, rows: number, cols: number, name: string) => {
    const xb = x.shape.slice(0, -2);
    if (sizeOf(xb) <= 1) return "0u";
    if (rt) return g.let(`bz * ${size(name, (rows * cols) / 4)}`, "bo");
    const lead = batch.length - xb.length;
    const s = stridesOf(xb);
    const terms = xb.flatMap((d, i) => (d === 1 ? [] : [`${bC[lead + i]} * ${s[i] * ((rows * cols) / 4)}u`]));
    return terms.length ? g.let(terms.join(" + "), "bo") : "0u";
  };
  const aOff = offset(a, M, K, "a_batch");
  const bOff = offset(b, K, N, "b_batch");
  // Column base of vec4 v: interleaved, neighbouring threads read neighbouring vec4s.
  const colOf = (v: number) => (p.interleave ? g.let(`(wid.x * ${nv * p.wx}u + ${v * p.wx}u + lid.x) * 4u`, "cb") : g.let(`col0 + ${4 * v}u`, "cb"));
  const cols = Array.from({ length: nv }, (_, v) => colOf(v));
  for (let t = 0; t < tm; t++) for (let v = 0; v < nv; v++) g.line(`var acc${t}_${v} = vec4<f32>(0.0);`);
  // The depth never reaches the epilogue: read at run time always, so the products of one layer's
  // forward and backward with other depths (a 64- or 256-wide hidden layer) share a pipeline.
  const K4 = g.size("k4", K / 4, true);
  /** j rows (or columns) of `n4` vec4s further on: 0, or j·n4. */
  const times = (j: number, name: string, n4: number) => (j === 0 ? "0u" : rt ? `${j}u * ${size(name, n4)}` : `${j * n4}u`);
  const loop: string[] = [];
  // Row and column base offsets (vec4 units) are computed once; the loop only adds k.
  let aElem: (t: number, j: number) => string;
  const S = p.subgroup;
  if (!la.transposed) {
    const lastRow = size("m_last", M - 1);
    if (S) {
      const aRow = Array.from({ length: tm / S }, (_, q) => g.let(`${aOff} + min(row0 + sg + ${q * S}u, ${lastRow}) * ${K4}`, "ar"));
      aRow.forEach((base, q) => loop.push(`let al${q} = ${A}[${base} + k4];`));
      for (let t = 0; t < tm; t++) loop.push(`let a${t} = subgroupBroadcast(al${Math.floor(t / S)}, ${t % S}u);`);
    } else {
      const aRow = Array.from({ length: tm }, (_, t) => g.let(`${aOff} + min(row0 + ${t}u, ${lastRow}) * ${K4}`, "ar"));
      aRow.forEach((base, t) => loop.push(`let a${t} = ${A}[${base} + k4];`));
    }
    aElem = (t, j) => `a${t}[${j}]`;
  } else {
    // at{j}_{q}: rows 4q..4q+3 of the block at k = 4·k4 + j.
    const M4 = M / 4;
    const lastRow4 = size("m4_last", M4 - 1);
    loop.push(`let ka = k4 * ${size("m", M)};`);
    if (S) {
      const aCol = Array.from({ length: tm / (4 * S) }, (_, q) => g.let(`${aOff} + min(row0 / 4u + sg + ${q * S}u, ${lastRow4})`, "ac"));
      for (let j = 0; j < 4; j++) aCol.forEach((base, q) => loop.push(`let al${j}_${q} = ${A}[${base} + ka + ${times(j, "m4", M4)}];`));
      for (let j = 0; j < 4; j++) for (let q = 0; q < tm / 4; q++) loop.push(`let at${j}_${q} = subgroupBroadcast(al${j}_${Math.floor(q / S)}, ${q % S}u);`);
    } else {
      const aCol = Array.from({ length: tm / 4 }, (_, q) => g.let(`${aOff} + min(row0 / 4u + ${q}u, ${lastRow4})`, "ac"));
      for (let j = 0; j < 4; j++) aCol.forEach((base, q) => loop.push(`let at${j}_${q} = ${A}[${base} + ka + ${times(j, "m4", M4)}];`));
    }
    aElem = (t, j) => `at${j}_${t >> 2}[${t & 3}]`;
  }
  if (!lb.transposed) {
    const N4 = N / 4;
    const bCol = cols.map((c) => g.let(`${bOff} + min(${c} / 4u, ${size("n4_last", N4 - 1)})`, "bc"));
    loop.push(`let kb = k4 * ${size("n", N)};`);
    for (let j = 0; j < 4; j++) bCol.forEach((base, v) => loop.push(`let b${j}_${v} = ${B}[${base} + kb + ${times(j, "n4", N4)}];`));
  } else {
    const bRow = cols.map((c) => [0, 1, 2, 3].map((q) => g.let(`${bOff} + min(${c} + ${q}u, ${size("n_last", N - 1)}) * ${K4}`, "br")));
    for (let v = 0; v < nv; v++) for (let c = 0; c < 4; c++) loop.push(`let bt${v}_${c} = ${B}[${bRow[v][c]} + k4];`);
    for (let j = 0; j < 4; j++)
      for (let v = 0; v < nv; v++) loop.push(`let b${j}_${v} = vec4<f32>(bt${v}_0[${j}], bt${v}_1[${j}], bt${v}_2[${j}], bt${v}_3[${j}]);`);
  }
  for (let t = 0; t < tm; t++) for (let v = 0; v < nv; v++) loop.push(`acc${t}_${v} += ${[0, 1, 2, 3].map((j) => `${aElem(t, j)} * b${j}_${v}`).join(" + ")};`);
  g.line(`for (var k4 = 0u; k4 < ${K4}; k4++) {\n${indent(loop, 2)}\n  }`);
  storeVec4Tile(g, root, epilogue, tm, cols, rt);
  const gx = Math.ceil(N / (tn * p.wx));
  const gy = Math.ceil(M / (tm * p.wy));
  const main = `@compute @workgroup_size(${p.wx}, ${p.wy}, 1)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u${S ? ", @builtin(subgroup_invocation_id) sg: u32" : ""}) {
  let col0 = gid.x * ${tn}u;
  let row0 = wid.y * ${tm * p.wy}u + lid.y * ${tm}u; // uniform over the workgroup when wy = 1: A loads broadcast
  let bz = gid.z;
${indent(g.body())}
}`;
  return assembleKernel(g, epilogue, main, [gx, gy, sizeOf(batch)]);
}

/**
 * Stores a thread's tile of `tm` rows from row0 by cols.length vec4 columns, held in accumulators
 * acc{t}_{v}, through the epilogue. Shared by the register-blocked and the workgroup-memory
 * kernels, whose threads own the same outputs.
 */
export function storeVec4Tile(g: KernelGen, root: Tensor, epilogue: Tensor, tm: number, cols: readonly string[], runtime = false): void {
  const [M, N] = root.shape.slice(-2);
  const [Ms, Ns, MNs] = [g.size("m", M, runtime), g.size("n", N, runtime), g.size("mn", M * N, runtime)];
  const nv = cols.length;
  g.line(`var res: array<vec4<f32>, ${tm * nv}>;`);
  for (let t = 0; t < tm; t++) for (let v = 0; v < nv; v++) g.line(`res[${t * nv + v}u] = acc${t}_${v};`);
  // Rows of N % 4 == 0 columns are stored a vec4 at a time, with the epilogue's four lanes side by
  // side and its operands loaded as vec4s where they line up.
  const wide = N % 4 === 0 && epilogue.dtype === "f32";
  const store = g.nested(() => {
    g.line("let r = row0 + t;");
    for (let v = 0; v < nv; v++) {
      const res = `res[t * ${nv}u + ${v}u]`;
      if (wide) {
        const body = g.nested(() => {
          const o4 = g.let(`(bz * ${MNs} + r * ${Ns} + ${cols[v]}) / 4u`, "o");
          storeFourLanes(g, o4, (e, j) => laneWithEpilogue(g, root, epilogue, e, `${res}[${j}]`));
        });
        [`if (${cols[v]} < ${Ns}) {`, ...body.map((l) => `  ${l}`), "}"].forEach((l) => g.line(l));
        continue;
      }
      const body = g.nested(() => {
        const o = g.let(`bz * ${MNs} + r * ${Ns} + ${cols[v]} + c`, "o");
        storeWithEpilogue(g, root, epilogue, o, `${res}[c]`);
      });
      [`for (var c = 0u; c < 4u; c++) {`, `  if (${cols[v]} + c < ${Ns}) {`, ...body.map((l) => `    ${l}`), "  }", "}"].forEach((l) => g.line(l));
    }
  });
  storeRows(g, tm, Ms, store);
}
