/**
 * A linear probe: softmax regression on frozen features, trained with AdamW (full-batch steps on
 * the CPU backend: the features are small), and its top-1 accuracy on held-out features.
 */
import { compile, HostTensor } from "../backend/index.js";
import { adamInit, adamw } from "../models/optim.js";
import { valueAndGrad } from "../autodiff/index.js";
import { crossEntropy, linear, mean, spec, zeros, type Tensor } from "../dsl/index.js";

export interface LinearProbeOptions {
  readonly numClasses: number;
  readonly steps?: number;
  readonly lr?: number;
  readonly weightDecay?: number;
}

/** Trains on (trainX [N, D], trainY) and returns the accuracy on (testX, testY). */
export function linearProbe(
  trainX: Float32Array,
  trainY: ArrayLike<number>,
  testX: Float32Array,
  testY: ArrayLike<number>,
  dim: number,
  o: LinearProbeOptions,
): number {
  const { numClasses: k, steps = 300, lr = 0.01, weightDecay = 1e-4 } = o;
  const n = trainY.length;
  // Standardise with the training statistics (features of different scales train alike).
  const mu = new Float32Array(dim);
  const sd = new Float32Array(dim);
  for (let i = 0; i < n; i++) for (let d = 0; d < dim; d++) mu[d] += trainX[i * dim + d] / n;
  for (let i = 0; i < n; i++) for (let d = 0; d < dim; d++) sd[d] += (trainX[i * dim + d] - mu[d]) ** 2 / n;
  const norm = (x: Float32Array) => x.map((v, j) => (v - mu[j % dim]) / Math.sqrt(sd[j % dim] + 1e-6));
  type P = { w: Tensor; b: Tensor };
  const loss = (p: P, x: Tensor, y: Tensor) => mean(crossEntropy(linear(x, p.w, p.b), y));
  const step = compile(
    (p: P, s: { m: P; v: P }, t: Tensor, x: Tensor, y: Tensor) => {
      const [l, g] = valueAndGrad(loss)(p, x, y);
      const next = adamw(p, g, s, { lr, weightDecay, step: t });
      return { p: next.params, s: next.state, l };
    },
    [
      { w: spec([dim, k]), b: spec([k]) },
      { m: { w: spec([dim, k]), b: spec([k]) }, v: { w: spec([dim, k]), b: spec([k]) } },
      spec([]),
      spec([n, dim]),
      spec([n], "i32"),
    ],
  );
  const init = compile(() => {
    const p = { w: zeros([dim, k]), b: zeros([k]) };
    return { p, s: adamInit(p) };
  }, []).run();
  let p = init.p;
  let s = init.s;
  const x = norm(trainX);
  const y = Int32Array.from(trainY);
  for (let t = 1; t <= steps; t++) {
    const r = step.run(p, s, t, x, y);
    p = r.p;
    s = r.s;
  }
  const m = testY.length;
  const logits = compile((w: Tensor, b: Tensor, q: Tensor) => linear(q, w, b), [spec([dim, k]), spec([k]), spec([m, dim])]).run(
    p.w,
    p.b,
    norm(testX),
  ) as HostTensor;
  let correct = 0;
  for (let i = 0; i < m; i++) {
    let best = 0;
    for (let c = 1; c < k; c++) if (logits.data[i * k + c] > logits.data[i * k + best]) best = c;
    if (best === testY[i]) correct++;
  }
  return correct / m;
}
