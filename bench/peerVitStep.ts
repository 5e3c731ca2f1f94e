/**
 * The ViT training step of bench/vitStep.ts (batch 64 of 28×28×1, patch 4, width 96, depth 4,
 * 3 heads of 32, MLP 384, exact GELU, head on [CLS] to 10 classes, softmax cross-entropy, Adam on
 * all 455 050 parameters) written in the two WebGPU peers, @jax-js/jax (the whole step under jit,
 * Adam by hand) and @tensorflow/tfjs-backend-webgpu (tf.train.adam), on the same Dawn adapter.
 *
 * Run alone: `XDG_RUNTIME_DIR=/tmp node --import tsx bench/peerVitStep.ts`.
 */
/* eslint-disable @typescript-eslint/no-explicit-any -- the peers' APIs are used untyped here */
import { pathToFileURL } from "node:url";
import { installNavigator } from "./peers.js";

const B = 64,
  D = 96,
  T = 50,
  HEADS = 3,
  HD = 32,
  MLP = 384,
  CLASSES = 10,
  DEPTH = 4;
const PARAMS = 455_050;
const LR = 1e-3,
  B1 = 0.9,
  B2 = 0.999,
  EPS = 1e-8;
const TIMED_STEPS = 5;

// ---- The model's parameters, as shaped host data shared by both peers (same init, same batch). ----

class Leaf {
  constructor(
    readonly shape: number[],
    readonly data: Float32Array,
  ) {}
}
type Tree = Leaf | Tree[] | { [k: string]: Tree };

let seed = 1234567;
const rand = (): number => {
  // mulberry32
  seed = (seed + 0x6d2b79f5) | 0;
  let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
  t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
};
const size = (shape: number[]) => shape.reduce((a, b) => a * b, 1);
/** Uniform with standard deviation 0.02 for weights; constant fill for biases and LayerNorm scales. */
const leaf = (shape: number[], fill?: number) =>
  new Leaf(
    shape,
    Float32Array.from({ length: size(shape) }, () => fill ?? (rand() * 2 - 1) * 0.02 * Math.sqrt(3)),
  );
const linear = (i: number, o: number) => ({ w: leaf([i, o]), b: leaf([o], 0) });
const norm = () => ({ g: leaf([D], 1), b: leaf([D], 0) });

function specTree(): Tree {
  seed = 42; // the same initial values for every peer
  return {
    patch: linear(16, D),
    cls: leaf([1, 1, D]),
    pos: leaf([1, T, D]),
    blocks: Array.from({ length: DEPTH }, () => ({
      ln1: norm(),
      qkv: linear(D, 3 * D),
      proj: linear(D, D),
      ln2: norm(),
      fc1: linear(D, MLP),
      fc2: linear(MLP, D),
    })),
    ln: norm(),
    head: linear(D, CLASSES),
  };
}
const mapTree = (t: Tree, f: (l: Leaf) => any): any =>
  t instanceof Leaf ? f(t) : Array.isArray(t) ? t.map((c) => mapTree(c, f)) : Object.fromEntries(Object.entries(t).map(([k, c]) => [k, mapTree(c, f)]));

const images = Float32Array.from({ length: B * 28 * 28 }, rand); // [B, 1, 28, 28], as ours
const labels = Int32Array.from({ length: B }, () => Math.floor(rand() * CLASSES));

function checkCount(n: number): void {
  console.log(`parameters: ${n}`);
  if (n !== PARAMS) throw new Error(`parameter count ${n} != ${PARAMS}`);
}

// ---- @jax-js/jax: ownership rules apply inside jit too: every array argument is consumed once,
// so a value used twice is taken with `.ref` first. ----

async function jaxStep(): Promise<() => Promise<number>> {
  const j: any = await import("@jax-js/jax");
  await j.init("webgpu");
  j.defaultDevice("webgpu");
  const { numpy: np, nn } = j;
  const lin = (x: any, p: any) => np.matmul(x, p.w).add(p.b);
  const ln = (x: any, p: any) => nn.standardize(x, -1, { epsilon: 1e-6 }).mul(p.g).add(p.b);

  const loss = (p: any, x: any, y: any) => {
    // Patchify [B,1,28,28] → [B,49,16] (row-major inside each 4×4 patch), embed, prepend [CLS], add positions.
    let h = lin(x.reshape([B, 7, 4, 7, 4]).transpose([0, 1, 3, 2, 4]).reshape([B, 49, 16]), p.patch);
    h = np.concatenate([np.broadcastTo(p.cls, [B, 1, D]), h], 1).add(p.pos);
    for (const k of p.blocks) {
      // softmax(QKᵀ/√32)V by hand: nn.dotProductAttention goes through einsum, whose parser uses
      // iterator helpers (`matchAll(...).map`) that Node 20 lacks.
      const qkv = lin(ln(h.ref, k.ln1), k.qkv).reshape([B, T, 3, HEADS, HD]).transpose([2, 0, 3, 1, 4]); // [3,B,N,L,H]
      const s = np.matmul(qkv.ref.slice(0), np.matrixTranspose(qkv.ref.slice(1))).mul(1 / Math.sqrt(HD));
      const a = np.matmul(nn.softmax(s, -1), qkv.slice(2)).transpose([0, 2, 1, 3]).reshape([B, T, D]);
      h = h.ref.add(lin(a, k.proj));
      h = h.ref.add(lin(nn.gelu(lin(ln(h, k.ln2), k.fc1), { approximate: false }), k.fc2)); // exact (erfc) GELU
    }
    const logits = lin(ln(h, p.ln).slice([], 0), p.head);
    return nn
      .logSoftmax(logits)
      .mul(nn.oneHot(y, CLASSES))
      .sum()
      .mul(-1 / B);
  };

  // Adam (optax's formulation), the 1-based step count `t` an input so that one trace serves all steps.
  const step = j.jit((p: any, m: any, v: any, t: any, x: any, y: any) => {
    const [l, g] = j.valueAndGrad(loss)(j.tree.ref(p), x, y);
    const bc1 = np
      .exp(t.ref.mul(Math.log(B1)))
      .mul(-1)
      .add(1); // 1 - b1^t
    const bc2 = np
      .exp(t.mul(Math.log(B2)))
      .mul(-1)
      .add(1);
    const [ps, def] = j.tree.flatten(p);
    const [gs, ms, vs] = [g, m, v].map((tr) => j.tree.leaves(tr));
    const out = ps.map((pi: any, i: number) => {
      const gi = gs[i];
      const m2 = ms[i].mul(B1).add(gi.ref.mul(1 - B1));
      const v2 = vs[i].mul(B2).add(gi.ref.mul(gi).mul(1 - B2));
      const upd = m2.ref
        .div(bc1.ref)
        .mul(LR)
        .div(np.sqrt(v2.ref.div(bc2.ref)).add(EPS));
      return [pi.sub(upd), m2, v2];
    });
    bc1.dispose();
    bc2.dispose();
    const col = (c: number) =>
      j.tree.unflatten(
        def,
        out.map((o: any[]) => o[c]),
      );
    return [l, col(0), col(1), col(2)];
  });

  const spec = specTree();
  let p = mapTree(spec, (l) => np.array(l.data, { shape: l.shape }));
  let m = mapTree(spec, (l) => np.zeros(l.shape));
  let v = mapTree(spec, (l) => np.zeros(l.shape));
  checkCount(j.tree.leaves(p).reduce((a: number, x: any) => a + x.size, 0));
  const x = np.array(images, { shape: [B, 1, 28, 28] });
  const y = np.array(labels, { shape: [B], dtype: np.int32 });
  let t = 0;
  return async () => {
    t += 1;
    const [l, p2, m2, v2] = step(p, m, v, np.array(t), x.ref, y.ref);
    [p, m, v] = [p2, m2, v2];
    await j.blockUntilReady([p, m, v]);
    return (await l.data())[0]; // data() consumes l
  };
}

// ---- @tensorflow/tfjs (webgpu backend), functional ops; linears on 2-D [rows, features]. ----

async function tfjsStep(): Promise<() => Promise<number>> {
  const tf: any = await import("@tensorflow/tfjs"); // the full package registers the gradients
  await import("@tensorflow/tfjs-backend-webgpu");
  if (!(await tf.setBackend("webgpu"))) throw new Error("tfjs: webgpu backend did not initialise");
  await tf.ready();
  const lin = (x: any, p: any) => tf.add(tf.matMul(x, p.w), p.b);
  const ln = (x: any, p: any) => {
    const { mean, variance } = tf.moments(x, -1, true);
    return tf.add(tf.mul(tf.mul(tf.sub(x, mean), tf.rsqrt(tf.add(variance, 1e-6))), p.g), p.b);
  };
  const gelu = (x: any) => tf.mul(tf.mul(x, 0.5), tf.add(tf.erf(tf.mul(x, Math.SQRT1_2)), 1)); // tf.erf: A&S 7.1.26 polynomial

  const loss = (p: any, x: any, y: any) => {
    let h = lin(tf.reshape(tf.transpose(tf.reshape(x, [B, 7, 4, 7, 4]), [0, 1, 3, 2, 4]), [B * 49, 16]), p.patch);
    h = tf.add(tf.concat([tf.tile(p.cls, [B, 1, 1]), tf.reshape(h, [B, 49, D])], 1), p.pos);
    h = tf.reshape(h, [B * T, D]);
    for (const k of p.blocks) {
      const qkv = tf.reshape(lin(ln(h, k.ln1), k.qkv), [B, T, 3, HEADS, HD]);
      const [q, kk, v] = tf.unstack(tf.reshape(tf.transpose(qkv, [2, 0, 3, 1, 4]), [3, B * HEADS, T, HD]));
      const att = tf.softmax(tf.mul(tf.matMul(q, kk, false, true), 1 / Math.sqrt(HD)));
      const o = tf.reshape(tf.transpose(tf.reshape(tf.matMul(att, v), [B, HEADS, T, HD]), [0, 2, 1, 3]), [B * T, D]);
      h = tf.add(h, lin(o, k.proj));
      h = tf.add(h, lin(gelu(lin(ln(h, k.ln2), k.fc1)), k.fc2));
    }
    const cls = tf.reshape(tf.slice(tf.reshape(ln(h, p.ln), [B, T, D]), [0, 0, 0], [B, 1, D]), [B, D]);
    return tf.neg(tf.mean(tf.sum(tf.mul(tf.logSoftmax(lin(cls, p.head)), y), -1)));
  };

  const vars: any[] = [];
  const p = mapTree(specTree(), (l) => vars[vars.push(tf.variable(tf.tensor(l.data, l.shape))) - 1]);
  checkCount(vars.reduce((a, w) => a + w.size, 0));
  const x = tf.tensor(images, [B, 1, 28, 28]);
  const y = tf.oneHot(tf.tensor1d(labels, "int32"), CLASSES);
  const opt = tf.train.adam(LR, B1, B2, EPS);
  return async () => {
    const l = opt.minimize(() => loss(p, x, y), true); // variableGrads over all trainable variables + Adam
    const [value] = await l.data();
    l.dispose();
    return value;
  };
}

// ---- Timing ----

/** A peer's ViT step, ready to time: its first step (tracing and compiling) is already done. */
export interface PeerVitRunner {
  name: string;
  firstStepS: number;
  /** One more step, awaited until its loss is read back. */
  step: () => Promise<void>;
  /** The loss of every step run so far. */
  losses: number[];
}

async function prepare(name: string, build: () => Promise<() => Promise<number>>): Promise<PeerVitRunner> {
  const step = await build();
  const t0 = performance.now();
  const losses = [await step()];
  const firstStepS = (performance.now() - t0) / 1000;
  return { name, firstStepS, losses, step: async () => void losses.push(await step()) };
}

/**
 * Each peer's ViT step on the WebGPU device (Dawn standing in for the browser's navigator.gpu),
 * for the caller to time interleaved with its own; a note for each peer that failed to load.
 */
export async function peerVitRunners(): Promise<{ runners: PeerVitRunner[]; notes: string[] }> {
  await installNavigator();
  const runners: PeerVitRunner[] = [];
  const notes: string[] = [];
  for (const [name, build] of [
    ["jax-js webgpu (jit)", jaxStep],
    ["tfjs webgpu", tfjsStep],
  ] as const) {
    try {
      runners.push(await prepare(name, build));
    } catch (e) {
      notes.push(`${name}: ${String(e instanceof Error ? (e.stack ?? e) : e).slice(0, 300)}`);
    }
  }
  return { runners, notes };
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) {
  const { runners, notes } = await peerVitRunners();
  const { interleavedMedians } = await import("../src/internals.js");
  const ms = await interleavedMedians(
    runners.map((r) => r.step),
    TIMED_STEPS,
  );
  runners.forEach((r, i) =>
    console.log(`${r.name}: ${ms[i].toFixed(0)} ms/step, first step ${r.firstStepS.toFixed(1)} s, losses ${r.losses.map((l) => l.toFixed(4)).join(" ")}`),
  );
  notes.forEach((n) => console.log(n));
  process.exit(0);
}
