// The optimizer kit: a small MLP learns a disc (points inside radius 0.8 against outside) with
// chain(clipByGlobalNorm(1), sgd(warmupCosine(...), { momentum: 0.9 })), all on the CPU backend.
import * as w from "wgrad";
import type { Tensor } from "wgrad";

const { optim, nn, random } = w;

type Params = { hidden: { w: Tensor; b: Tensor }; out: { w: Tensor; b: Tensor } };
const n = 256; // training points
const width = 16;
const steps = 300;

// The model and its loss are plain functions of tensors.
const logits = (p: Params, x: Tensor) => nn.linear(w.tanh(nn.linear(x, p.hidden.w, p.hidden.b)), p.out.w, p.out.b);
const loss = (p: Params, x: Tensor, y: Tensor) => w.mean(nn.crossEntropy(logits(p, x), y));

// The optimizer is a value: clip the whole gradient to norm 1, then SGD with momentum 0.9 and a
// learning rate that warms up over 20 steps to 0.5 and decays along a cosine to 0.005 at the end.
const lr = optim.warmupCosine(0.5, 20, steps, 0.005);
const tx = optim.chain(optim.clipByGlobalNorm(1), optim.sgd(lr, { momentum: 0.9 }));
type OptState = w.optim.StateOf<typeof tx, Params>;

// Initial parameters, optimizer state and data, drawn from one key in one graph.
const init = w
  .compile(
    (key: Tensor) => {
      const [k1, k2, kx] = random.split(key, 3);
      const params: Params = {
        hidden: { w: w.mul(random.normal(k1, [2, width]), 1), b: w.zeros([width]) },
        out: { w: w.mul(random.normal(k2, [width, 2]), 1 / Math.sqrt(width)), b: w.zeros([2]) },
      };
      const x = random.uniform(kx, [n, 2], -1, 1);
      const y = w.cast(w.less(w.sum(w.mul(x, x), -1), 0.64), "i32"); // 1 inside the disc
      return { params, opt: tx.init(params), x, y };
    },
    [w.spec([2], "i32")],
  )
  .run(new Int32Array([0, 2026]));

// One training step, compiled once: loss and gradients, the optimizer, the new parameters.
const step = w.compile(
  (params: Params, opt: OptState, x: Tensor, y: Tensor) => {
    const [value, grads] = w.valueAndGrad(loss)(params, x, y);
    const { updates, state } = tx.update(grads, opt, params);
    return { loss: value, gradNorm: optim.globalNorm(grads), params: optim.applyUpdates(params, updates), opt: state };
  },
  [w.specsOf(init.params), w.specsOf(init.opt), w.spec([n, 2]), w.spec([n], "i32")],
);

let params = init.params;
let opt = init.opt;
for (let i = 0; i < steps; i++) {
  const r = step.run(params, opt, init.x, init.y);
  params = r.params; // outputs feed the next run as they are
  opt = r.opt;
  if (i % 50 === 0 || i === steps - 1) {
    console.log(`step ${i}: loss ${r.loss.item().toFixed(4)}, ‖g‖ ${r.gradNorm.item().toFixed(3)}, lr ${lr(i).toFixed(4)}`);
  }
}

// Training accuracy: the share of points on the right side of the learnt boundary.
const predicted = w.compile((p: Params, x: Tensor) => w.argmax(logits(p, x), -1), [w.specsOf(params), w.spec([n, 2])]).run(params, init.x);
const labels = init.y.data;
let correct = 0;
for (let i = 0; i < n; i++) if (predicted.data[i] === labels[i]) correct++;
console.log(`training accuracy ${((100 * correct) / n).toFixed(1)}% after ${steps} steps (state count ${opt[1][1].count.item()})`);
