/**
 * The matmul for discrete GPUs: a workgroup stages bk-deep tiles of A and B in workgroup memory,
 * then every thread multiplies its tm×tn register block out of them with vec4 reads, so each
 * operand element is loaded from global memory once per workgroup instead of once per thread.
 * This is the kernel tfjs-webgpu and the public WebGPU matmul write-ups use; on lavapipe the
 * barriers cost more than the reuse saves (BENCHMARKS.md), so the autotuner offers it only to
 * adapters that are not CPUs. It runs any f32 operands: global loads go through the kernel
 * generator's index arithmetic, so transposed, broadcast and fused operands need no copies, and
 * sizes need not be multiples of a tile (rows and columns outside are clamped, depth outside is 0).
 */
import { sizeOf, type Tensor } from "../../dsl/index.js";
import type { KernelGen } from "./gen.js";
import { operandLayout, storeVec4Tile } from "./matmulVec4.js";
import { assembleKernel, indent, type KernelBody, type MatmulParams } from "./templates.js";

/** The device limits a workgroup-memory tile configuration must fit. */
export interface TileLimits {
  readonly maxComputeWorkgroupStorageSize: number;
  readonly maxComputeInvocationsPerWorkgroup: number;
  readonly maxComputeWorkgroupSizeX: number;
  readonly maxComputeWorkgroupSizeY: number;
}

/** Bytes of workgroup memory a configuration stages: a bk×BM tile of A and a bk×BN tile of B. */
export const tileBytes = (p: MatmulParams) => 4 * (p.bk ?? 0) * (p.tm * p.wy + p.tn * p.wx);

/**
 * Whether the workgroup-memory template runs this configuration on a device with these limits:
 * vec4 reads of both tiles (tm and tn multiples of 4), loads spread evenly over the threads, and
 * the workgroup within the device's size and memory.
 */
export function tiledFits(p: MatmulParams, limits: TileLimits): boolean {
  const bk = p.bk;
  if (bk === undefined || p.subgroup !== undefined || p.tm % 4 !== 0 || p.tn % 4 !== 0) return false;
  const threads = p.wx * p.wy;
  const [bm, bn] = [p.tm * p.wy, p.tn * p.wx];
  return (
    (bm * bk) % threads === 0 &&
    (bn * bk) % threads === 0 &&
    threads <= limits.maxComputeInvocationsPerWorkgroup &&
    p.wx <= limits.maxComputeWorkgroupSizeX &&
    p.wy <= limits.maxComputeWorkgroupSizeY &&
    tileBytes(p) <= limits.maxComputeWorkgroupStorageSize
  );
}

/** Whether this matmul node can take the workgroup-memory template with these tiles. */
export function tiledApplicable(root: Tensor, p: MatmulParams, limits: TileLimits): boolean {
  return root.dtype === "f32" && tiledFits(p, limits);
}

export function matmulTiledKernel(g: KernelGen, root: Tensor, epilogue: Tensor, p: MatmulParams, isMat: (n: Tensor) => boolean): KernelBody {
  const [a, b] = root.inputs;
  const batch = root.shape.slice(0, -2);
  const [M, N] = root.shape.slice(-2);
  const K = a.shape[a.rank - 1];
  const bk = p.bk!;
  const { tm, tn, wx, wy } = p;
  const [bm, bn, threads] = [tm * wy, tn * wx, wx * wy];
  const [bm4, bn4, nv] = [bm / 4, bn / 4, tn / 4];
  const bC = g.coords(g.idx(batch, "bz", null));
  const aBC = batch.length ? g.coords(g.broadcastIdx(g.idx(batch, null, bC), a.shape.slice(0, -2))) : [];
  const bBC = batch.length ? g.coords(g.broadcastIdx(g.idx(batch, null, bC), b.shape.slice(0, -2))) : [];
  for (let t = 0; t < tm; t++) for (let v = 0; v < nv; v++) g.line(`var acc${t}_${v} = vec4<f32>(0.0);`);
  // Consecutive threads load consecutive elements of the operand's buffer (coalesced): along k
  // where it is stored row-major, along rows or columns where it is read transposed.
  const kFastA = !(operandLayout(a, isMat)?.transposed ?? false);
  const kFastB = operandLayout(b, isMat)?.transposed ?? false;
  const pad = K % bk !== 0; // the last tile reaches past K: its missing depth must read as 0
  /** Loads the tile of `x` (rows×bk, `rows` along m for A or n for B) into `tile`, stored [k][row]. */
  const loadTile = (x: Tensor, xBC: readonly string[], tile: string, rows: number, rowBase: string, rowMax: number, kFast: boolean, isA: boolean) =>
    g.nested(() => {
      for (let i = 0; i < (rows * bk) / threads; i++) {
        const e = g.let(`tid + ${i * threads}u`, "e");
        const [kk, rr] = kFast ? [`${e} % ${bk}u`, `${e} / ${bk}u`] : [`${e} / ${rows}u`, `${e} % ${rows}u`];
        const kl = g.let(kk, "kl");
        const rl = g.let(rr, "rl");
        const kg = g.let(`k0 + ${kl}`, "kg");
        const row = `min(${rowBase} + ${rl}, ${rowMax - 1}u)`;
        const kc = pad ? `min(${kg}, ${K - 1}u)` : kg;
        const v = g.val(x, g.idx(x.shape, null, isA ? [...xBC, row, kc] : [...xBC, kc, row]));
        const slot = g.let(`${kl} * ${rows}u + ${rl}`, "s");
        g.line(`${tile}[${slot} / 4u][${slot} % 4u] = ${pad ? `select(0.0, ${v}, ${kg} < ${K}u)` : v};`);
      }
    });
  const loadA = loadTile(a, aBC, "tileA", bm, "wrow", M, kFastA, true);
  const loadB = loadTile(b, bBC, "tileB", bn, "wcol", N, kFastB, false);
  // Each thread's rows are adjacent (its A reads broadcast across the threads of a row); its
  // vec4 columns are interleaved with its neighbours' so that their B reads are adjacent.
  const inner: string[] = [];
  for (let q = 0; q < tm / 4; q++) inner.push(`let a${q} = tileA[kk * ${bm4}u + lid.y * ${tm / 4}u + ${q}u];`);
  for (let v = 0; v < nv; v++) inner.push(`let b${v} = tileB[kk * ${bn4}u + ${v * wx}u + lid.x];`);
  for (let t = 0; t < tm; t++) for (let v = 0; v < nv; v++) inner.push(`acc${t}_${v} += a${t >> 2}[${t & 3}] * b${v};`);
  g.line(`for (var k0 = 0u; k0 < ${K}u; k0 += ${bk}u) {
${indent(loadA, 2)}
${indent(loadB, 2)}
    workgroupBarrier();
    for (var kk = 0u; kk < ${bk}u; kk++) {
${indent(inner, 3)}
    }
    workgroupBarrier();
  }`);
  const cols = Array.from({ length: nv }, (_, v) => g.let(`wcol + (${v * wx}u + lid.x) * 4u`, "cb"));
  storeVec4Tile(g, root, epilogue, tm, cols);
  const shared = `var<workgroup> tileA: array<vec4<f32>, ${bk * bm4}>;\nvar<workgroup> tileB: array<vec4<f32>, ${bk * bn4}>;`;
  // Barriers need every thread: no early return; loads are clamped and stores guarded.
  const main = `@compute @workgroup_size(${wx}, ${wy}, 1)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u, @builtin(local_invocation_index) tid: u32) {
  let wrow = wid.y * ${bm}u;
  let wcol = wid.x * ${bn}u;
  let row0 = wrow + lid.y * ${tm}u;
  let bz = wid.z;
${indent(g.body())}
}`;
  return assembleKernel(g, epilogue, main, [Math.ceil(N / bn), Math.ceil(M / bm), sizeOf(batch)], shared);
}
