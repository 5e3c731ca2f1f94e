/**
 * What pre-training and evaluation share: seeded samples of a split, normalised images, and the
 * teacher's [CLS] features computed on the chosen backend.
 */
import { acquireDevice, compile, GpuArray, specsOf, type DeviceArray, type GpuContext, type RunResult } from "../backend/index.js";
import { createRng, mixSeeds, type ImageDataset } from "../data/index.js";
import { reshape, sliceAxis, spec, type Tensor } from "../dsl/index.js";
import { backbone, type IbotModelConfig, type ViTParams } from "../models/index.js";

/** A run's output as host values; a device array is read back and freed. */
export async function toHostValues(x: DeviceArray): Promise<ArrayLike<number>> {
  if (!(x instanceof GpuArray)) return x.data;
  const a = await x.toArray();
  x.dispose();
  return a;
}

/** A seeded random sample of `n` images of a split (all of it when n is 0 or too large). The splits are ordered by class, so never take a prefix. */
export const sampleSplit = (d: ImageDataset, n: number, seed: number, salt: number): ImageDataset =>
  n > 0 && n < d.count ? pick(d, shuffled(d.count, mixSeeds(seed, salt)).subarray(0, n)) : d;

/** Images [n, H·W] uint8 → normalised Float32 [n, 1, H, W]. */
export function normalise(d: ImageDataset, start: number, n: number, mean: number, std: number): Float32Array {
  const out = new Float32Array(n * d.height * d.width);
  const src = d.images.subarray(start * d.height * d.width, (start + n) * d.height * d.width);
  for (let i = 0; i < out.length; i++) out[i] = (src[i] / 255 - mean) / std;
  return out;
}

/** [CLS] features of a dataset's first `count` images through a backbone (a teacher's or a student's). */
export async function features(
  net: RunResult<ViTParams>,
  d: ImageDataset,
  count: number,
  mc: IbotModelConfig,
  stats: { mean: number; std: number },
  gpu: GpuContext | null,
): Promise<Float32Array> {
  const chunk = 500;
  const out = new Float32Array(count * mc.vit.width);
  const f = (p: ViTParams, x: Tensor) => reshape(sliceAxis(backbone(x, p, mc.vit), 1, 0, 1), [x.shape[0], mc.vit.width]);
  const compileFor = (n: number) => compile(f, [specsOf(net), spec([n, mc.vit.channels, d.height, d.width])], { backend: gpu ?? "cpu" });
  // One executable per chunk size (every chunk but the last shares one).
  const exes = new Map<number, ReturnType<typeof compileFor>>();
  const exeFor = (n: number) => exes.get(n) ?? exes.set(n, compileFor(n)).get(n)!;
  for (let s = 0; s < count; s += chunk) {
    const n = Math.min(chunk, count - s);
    const x = normalise(d, s, n, stats.mean, stats.std);
    out.set(await toHostValues(exeFor(n).run(net, x)), s * mc.vit.width);
  }
  return out;
}

/** The images at `indices`, copied into a dataset of their own. */
export function pick(d: ImageDataset, indices: Int32Array): ImageDataset {
  const px = d.height * d.width;
  const images = new Uint8Array(indices.length * px);
  const labels = new Uint8Array(indices.length);
  indices.forEach((i, k) => {
    images.set(d.images.subarray(i * px, (i + 1) * px), k * px);
    labels[k] = d.labels[i];
  });
  return { ...d, images, labels, count: indices.length };
}

/** A seeded permutation of 0..n-1 (Fisher–Yates). */
export function shuffled(n: number, seed: number): Int32Array {
  const p = Int32Array.from({ length: n }, (_, i) => i);
  const rng = createRng(seed);
  for (let i = n - 1; i > 0; i--) {
    const j = rng.int(0, i);
    [p[i], p[j]] = [p[j], p[i]];
  }
  return p;
}

/**
 * The backend a run asked for: "webgpu" needs an adapter (its absence is an error saying how to
 * get one), "auto" falls back to the CPU with a logged reason, "cpu" never looks.
 */
export async function chooseBackend(backend: "auto" | "webgpu" | "cpu", log: (line: string) => void): Promise<GpuContext | null> {
  if (backend === "cpu") return null;
  const dev = await acquireDevice()();
  if (dev._tag === "Right") return dev.right;
  if (backend === "webgpu") throw dev.left;
  log(`no WebGPU adapter; running on the CPU backend (${dev.left.message.split(". ")[0]})`);
  return null;
}
