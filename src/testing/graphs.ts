/**
 * Random graphs of primitives for properties that must hold on any graph: shape inference
 * agreeing with evaluation, backends agreeing with the CPU reference, memory plans being sound.
 * A graph is built from a list of random integers, read as "which op, on which values, with which
 * parameters"; every op is chosen to be valid for its operands and to keep values finite.
 */
import fc from "fast-check";
import * as w from "../dsl/index.js";
import type { Tensor } from "../dsl/index.js";
import type { HostTensor } from "../backend/index.js";
import { arbShape, arbTensor } from "./arbitraries.js";

/** A random graph: its inputs, a function that builds it, and a readable trace of the ops used. */
export interface RandomGraph {
  readonly inputs: readonly HostTensor[];
  readonly build: (...xs: Tensor[]) => Tensor[];
  readonly ops: readonly string[];
}

type Pick = (n: number) => number;
type Op = (x: Tensor, pick: Pick, pool: readonly Tensor[]) => Tensor | null;

const positive = (x: Tensor) => w.add(w.abs(x), 0.5);
const axisOf = (x: Tensor, pick: Pick) => pick(x.rank);

/** The ops a random graph draws from; each returns null when it does not apply to its operand. */
export const RANDOM_OPS: Readonly<Record<string, Op>> = {
  neg: (x) => w.neg(x),
  expTanh: (x) => w.exp(w.tanh(x)),
  logPositive: (x) => w.log(positive(x)),
  sqrtPositive: (x) => w.sqrt(positive(x)),
  erf: (x) => w.erf(x),
  abs: (x) => w.abs(x),
  sign: (x) => w.sign(x),
  reciprocal: (x) => w.reciprocal(positive(x)),
  binary: (x, pick, pool) => {
    const partners = pool.filter((p) => broadcasts(p.shape, x.shape));
    const y = partners[pick(partners.length)];
    const ops = [w.add, w.sub, w.mul, w.maximum, w.minimum, (a: Tensor, b: Tensor) => w.div(a, positive(b)), (a: Tensor, b: Tensor) => w.pow(positive(a), w.tanh(b))];
    return ops[pick(ops.length)](x, y);
  },
  where: (x, pick, pool) => {
    const partners = pool.filter((p) => broadcasts(p.shape, x.shape));
    const y = partners[pick(partners.length)];
    const cmp = [w.less, w.lessEqual, w.greater, w.greaterEqual, w.equal, w.notEqual][pick(6)];
    return w.where(cmp(x, y), x, w.mul(y, 2));
  },
  sum: (x, pick) => (x.rank ? w.sum(x, subset(x.rank, pick), pick(2) === 1) : null),
  max: (x, pick) => (x.rank ? w.max(x, subset(x.rank, pick), pick(2) === 1) : null),
  argmax: (x, pick) => (x.rank ? w.cast(w.argmax(x, axisOf(x, pick)), x.dtype) : null),
  argmin: (x, pick) => (x.rank ? w.cast(w.argmin(x, axisOf(x, pick)), x.dtype) : null),
  castRoundTrip: (x) => w.cast(w.cast(w.mul(x, 3), "i32"), x.dtype),
  reshape: (x) => w.reshape(x, [x.size]),
  transpose: (x, pick) => (x.rank > 1 ? w.transpose(x, shuffled(x.rank, pick)) : null),
  broadcastTo: (x, pick) => w.broadcastTo(x, [1 + pick(3), ...x.shape]),
  slice: (x, pick) => {
    if (!x.rank) return null;
    const ranges = x.shape.map((d) => {
      const a = pick(d);
      return [a, a + 1 + pick(d - a), 1 + pick(3)] as const;
    });
    return w.slice(x, ranges);
  },
  pad: (x, pick) => w.make("pad", { lo: x.shape.map(() => pick(3)), hi: x.shape.map(() => pick(3)), interior: x.shape.map(() => pick(2)), value: pick(3) - 1 }, [x]),
  concat: (x, pick) => (x.rank ? w.concat([x, w.exp(w.tanh(x))], axisOf(x, pick)) : null),
  gather: (x, pick) => {
    if (!x.rank) return null;
    const axis = axisOf(x, pick);
    const idx = Array.from({ length: 1 + pick(5) }, () => pick(x.shape[axis] + 2) - 1); // includes out-of-range (clamped)
    return w.gather(x, w.constant(idx, "i32"), axis);
  },
  scatterAdd: (x, pick) => {
    if (!x.rank) return null;
    const axis = axisOf(x, pick);
    const idx = Array.from({ length: x.shape[axis] }, () => pick(3));
    return w.scatterAdd(x, w.constant(idx, "i32"), axis, 3);
  },
  matmul: (x, pick, pool) => {
    if (x.rank < 2) return null;
    const k = x.shape[x.rank - 1];
    const partners = pool.filter((p) => p.rank >= 2 && p.shape[p.rank - 2] === k && broadcasts(p.shape.slice(0, -2), x.shape.slice(0, -2)));
    return w.matmul(x, partners.length ? partners[pick(partners.length)] : w.swapAxes(x));
  },
  softmax: (x) => (x.rank ? w.softmax(x) : null),
  // eps 1e-2, not 1e-5: a row that is constant in f32 (after broadcastTo, say) has an f32 mean one
  // rounding off its value, and 1/√eps would amplify that rounding past any f32 tolerance.
  layerNorm: (x) => (x.rank ? w.layerNorm(x, undefined, undefined, 1e-2) : null),
  iota: (x, pick) => (x.rank ? w.add(x, w.cast(w.iota(x.shape, axisOf(x, pick)), x.dtype)) : null),
};

function broadcasts(a: readonly number[], b: readonly number[]): boolean {
  for (let i = 1; i <= Math.min(a.length, b.length); i++) {
    const [p, q] = [a[a.length - i], b[b.length - i]];
    if (p !== q && p !== 1 && q !== 1) return false;
  }
  return true;
}

function subset(rank: number, pick: Pick): number[] {
  const axes = [...Array(rank).keys()].filter(() => pick(2) === 1);
  return axes.length ? axes : [pick(rank)];
}

function shuffled(n: number, pick: Pick): number[] {
  const p = [...Array(n).keys()];
  for (let i = n - 1; i > 0; i--) {
    const j = pick(i + 1);
    [p[i], p[j]] = [p[j], p[i]];
  }
  return p;
}

export interface GraphOptions {
  readonly maxInputs?: number;
  readonly maxOps?: number;
  readonly maxDim?: number;
  readonly dtype?: "f32" | "f64";
  /** Restrict the op names drawn from RANDOM_OPS. */
  readonly ops?: readonly string[];
  /** Allowed dimension sizes (e.g. [1, 3, 17, 65] to stress tiling edges). Default 1..maxDim. */
  readonly dims?: readonly number[];
}

/** A random graph of up to `maxOps` ops over up to `maxInputs` inputs; every value it makes is an output. */
export function arbGraph(opts: GraphOptions = {}): fc.Arbitrary<RandomGraph> {
  const { maxInputs = 3, maxOps = 8, maxDim = 4, dtype = "f64" } = opts;
  const names = opts.ops ?? Object.keys(RANDOM_OPS);
  const shape = opts.dims
    ? fc.array(fc.constantFrom(...opts.dims), { minLength: 0, maxLength: 2 })
    : arbShape({ maxRank: 3, maxDim });
  return fc
    .tuple(
      fc.array(shape, { minLength: 1, maxLength: maxInputs }).chain((shapes) => fc.tuple(...shapes.map((s) => arbTensor(s, { dtype })))),
      fc.array(fc.nat(), { minLength: 4 * maxOps, maxLength: 4 * maxOps }),
      fc.array(fc.constantFrom(...names), { minLength: Math.ceil(maxOps / 2), maxLength: maxOps }),
    )
    .map(([inputs, choices, chosen]) => {
      const ops: string[] = [];
      const build = (...xs: Tensor[]) => {
        let c = 0;
        const pick: Pick = (n) => (n <= 1 ? 0 : choices[c++ % choices.length] % n);
        const pool: Tensor[] = [...xs];
        ops.length = 0;
        for (const name of chosen) {
          const x = pool[pick(pool.length)];
          const y = RANDOM_OPS[name](x, pick, pool);
          if (y && y.size > 0 && y.size <= 4096) {
            pool.push(y);
            ops.push(`${name}: [${x.shape}] -> [${y.shape}]`);
          }
        }
        return pool.slice(xs.length).concat(pool.length === xs.length ? [w.neg(xs[0])] : []);
      };
      return { inputs, build, ops };
    });
}
