/**
 * Weighted k-NN classification on L2-normalised features (DINO's eval_knn: k = 20, T = 0.07):
 * each test sample votes with its k most similar training samples, weighted by exp(sim/T).
 * Similarities are one matmul per chunk of queries on the chosen backend; the top-k runs on the
 * host.
 */
import { compile, type GpuContext } from "../backend/index.js";
import { l2Normalize, matmul, spec, transpose, type Tensor } from "../dsl/index.js";

export interface KnnOptions {
  readonly k?: number;
  readonly temperature?: number;
  readonly numClasses: number;
  /** Queries per similarity matmul. */
  readonly chunk?: number;
  /** Run the similarity matmuls on this GPU (default: the CPU backend). */
  readonly gpu?: GpuContext;
}

export interface KnnResult {
  readonly accuracy: number;
  readonly predictions: Int32Array;
}

/** Top-1 accuracy of weighted k-NN: `bank` [M, D] with labels, `queries` [Q, D] with labels. */
export async function knnClassify(
  bank: Float32Array,
  bankLabels: ArrayLike<number>,
  queries: Float32Array,
  queryLabels: ArrayLike<number>,
  dim: number,
  opts: KnnOptions,
): Promise<KnnResult> {
  const { k = 20, temperature = 0.07, numClasses, chunk = 256, gpu } = opts;
  const m = bankLabels.length;
  const q = queryLabels.length;
  const kk = Math.min(k, m);
  const sims = (x: Tensor, b: Tensor) => matmul(l2Normalize(x, -1), transpose(l2Normalize(b, -1)));
  const predictions = new Int32Array(q);
  const top = new Float64Array(kk);
  const topIdx = new Int32Array(kk);
  const votes = new Float64Array(numClasses);
  // One compiled similarity function per chunk size (every chunk but the last shares one).
  const simsFor = new Map<number, (rows: Float32Array) => Promise<Float32Array>>();
  const compileFor = (c: number): ((rows: Float32Array) => Promise<Float32Array>) => {
    const specs = [spec([c, dim]), spec([m, dim])] as const;
    if (!gpu) {
      const exe = compile(sims, specs);
      return async (rows) => exe.run(rows, bank).data as Float32Array;
    }
    const exe = compile(sims, specs, { backend: gpu });
    return async (rows) => {
      const out = exe.run(rows, bank);
      const s = (await out.toArray()) as Float32Array;
      out.dispose();
      return s;
    };
  };
  for (let start = 0; start < q; start += chunk) {
    const c = Math.min(chunk, q - start);
    const run = simsFor.get(c) ?? simsFor.set(c, compileFor(c)).get(c)!;
    const s = await run(queries.subarray(start * dim, (start + c) * dim));
    for (let i = 0; i < c; i++) {
      // Keep the k largest similarities (insertion into a small sorted buffer).
      top.fill(-Infinity);
      const row = s.subarray(i * m, (i + 1) * m);
      for (let j = 0; j < m; j++) {
        const v = row[j];
        if (v <= top[kk - 1]) continue;
        let p = kk - 1;
        while (p > 0 && top[p - 1] < v) {
          top[p] = top[p - 1];
          topIdx[p] = topIdx[p - 1];
          p--;
        }
        top[p] = v;
        topIdx[p] = j;
      }
      votes.fill(0);
      for (let t = 0; t < kk; t++) votes[bankLabels[topIdx[t]]] += Math.exp(top[t] / temperature);
      let best = 0;
      for (let cl = 1; cl < numClasses; cl++) if (votes[cl] > votes[best]) best = cl;
      predictions[start + i] = best;
    }
  }
  let correct = 0;
  for (let i = 0; i < q; i++) if (predictions[i] === queryLabels[i]) correct++;
  return { accuracy: correct / q, predictions };
}
