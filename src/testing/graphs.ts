/**
 * Random graphs of primitives for properties that must hold on any graph: shape inference
 * agreeing with evaluation, backends agreeing with the CPU reference, memory plans being sound.
 * A graph is built from a list of random integers, read as "which op, on which values, with which
 * parameters"; every op is chosen to be valid for its operands and to keep values finite. Every
 * primitive has an entry in GENERATORS (the type checker insists), so a new primitive is drawn too.
 */
import fc from "fast-check";
import * as w from "../dsl/index.js";
import type { Prim, Tensor } from "../dsl/index.js";
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

/**
 * How random graphs draw one op: `op` builds it on a pooled value `x` (null where it does not
 * apply), and `continuous` says its output is a continuous function of its inputs, so f32 WebGPU
 * results can be compared to an f64 CPU reference within a tolerance. Sign, comparisons, argmax
 * and cast round-trips are not: an f32 rounding can flip their decision.
 */
export interface OpGenerator {
  readonly op: Op;
  readonly continuous: boolean;
}

/** Where a primitive that random graphs cannot draw (leaves, random keys) is tested instead. */
export interface CoveredElsewhere {
  readonly covered: string;
}

const positive = (x: Tensor) => w.add(w.abs(x), 0.5);
const axisOf = (x: Tensor, pick: Pick) => pick(x.rank);

const continuous = (op: Op): OpGenerator => ({ op, continuous: true });
const discontinuous = (op: Op): OpGenerator => ({ op, continuous: false });

/** A pooled value that broadcasts against x (x itself is one, so there always is). */
function partner(x: Tensor, pick: Pick, pool: readonly Tensor[]): Tensor {
  const partners = pool.filter((p) => broadcasts(p.shape, x.shape));
  return partners[pick(partners.length)];
}

/** f(x, y) for a broadcasting partner y. */
const binary =
  (f: (a: Tensor, b: Tensor) => Tensor): Op =>
  (x, pick, pool) =>
    f(x, partner(x, pick, pool));
/** where(cmp(x, y), x, 2y): a comparison decides, so it cannot be compared across precisions. */
const compare = (cmp: (a: Tensor, b: Tensor) => Tensor): OpGenerator => discontinuous(binary((x, y) => w.where(cmp(x, y), x, w.mul(y, 2))));

/** A custom VJP whose backward is exact (d(2x) = 2 dx), so gradient properties hold through it. */
const double = w.customVjp(
  "double",
  (a) => w.mul(a, 2),
  (_xs, _out, ct) => [w.mul(ct, 2)],
);

const THREEFRY =
  'test/cpu.test.ts "random numbers" (threefry2x32 known answers, moments) and test/webgpu.test.ts "random numbers are bit-identical to the CPU\'s"';

/**
 * One entry per primitive: how random graphs draw it, or where it is tested instead. Keyed by
 * primitive, so a new primitive without an entry here is a type error, like in every rule table.
 * Each op is chosen to be valid for its operands and to keep values finite.
 */
export const GENERATORS: { readonly [P in Prim]: OpGenerator | CoveredElsewhere } = {
  input: { covered: "every random graph's inputs (1 to maxInputs of them)" },
  constant: { covered: "the scalars the ops here lift from numbers (positive's 0.5, where's 2y) and gather's and scatterAdd's index tensors" },
  iota: continuous((x, pick) => (x.rank ? w.add(x, w.cast(w.iota(x.shape, axisOf(x, pick)), x.dtype)) : null)),
  randomBits: { covered: THREEFRY },
  randomUniform: { covered: THREEFRY },
  neg: continuous((x) => w.neg(x)),
  exp: continuous((x) => w.exp(w.tanh(x))),
  log: continuous((x) => w.log(positive(x))),
  sqrt: continuous((x) => w.sqrt(positive(x))),
  tanh: continuous((x) => w.tanh(x)),
  erf: continuous((x) => w.erf(x)),
  abs: continuous((x) => w.abs(x)),
  sign: discontinuous((x) => w.sign(x)),
  reciprocal: continuous((x) => w.reciprocal(positive(x))),
  add: continuous(binary(w.add)),
  sub: continuous(binary(w.sub)),
  mul: continuous(binary(w.mul)),
  div: continuous(binary((a, b) => w.div(a, positive(b)))),
  pow: continuous(binary((a, b) => w.pow(positive(a), w.tanh(b)))),
  maximum: continuous(binary(w.maximum)),
  minimum: continuous(binary(w.minimum)),
  // y at least 0.5 from 0, of either sign: off the branch cut (y = 0, x < 0) where atan2 jumps by 2π.
  atan2: continuous((x, pick, pool) => {
    const y = positive(partner(x, pick, pool));
    return w.atan2(pick(2) ? y : w.neg(y), x);
  }),
  less: compare(w.less),
  lessEqual: compare(w.lessEqual),
  greater: compare(w.greater),
  greaterEqual: compare(w.greaterEqual),
  equal: compare(w.equal),
  notEqual: compare(w.notEqual),
  // A leaky ReLU: both branches meet at 0, so it is continuous although a comparison decides.
  where: continuous((x) => w.where(w.greater(x, 0), x, w.mul(x, 0.1))),
  cast: discontinuous((x) => w.cast(w.cast(w.mul(x, 3), "i32"), x.dtype)),
  stopGradient: continuous((x) => w.stopGradient(x)),
  sum: continuous((x, pick) => (x.rank ? w.sum(x, subset(x.rank, pick), pick(2) === 1) : null)),
  max: continuous((x, pick) => (x.rank ? w.max(x, subset(x.rank, pick), pick(2) === 1) : null)),
  argmax: discontinuous((x, pick) => (x.rank ? w.cast(w.argmax(x, axisOf(x, pick)), x.dtype) : null)),
  argmin: discontinuous((x, pick) => (x.rank ? w.cast(w.argmin(x, axisOf(x, pick)), x.dtype) : null)),
  reshape: continuous((x) => w.reshape(x, [x.size])),
  permute: continuous((x, pick) => (x.rank > 1 ? w.transpose(x, shuffled(x.rank, pick)) : null)),
  broadcastTo: continuous((x, pick) => w.broadcastTo(x, [1 + pick(3), ...x.shape])),
  slice: continuous((x, pick) => {
    if (!x.rank) return null;
    const ranges = x.shape.map((d) => {
      const a = pick(d);
      return [a, a + 1 + pick(d - a), 1 + pick(3)] as const;
    });
    return w.slice(x, ranges);
  }),
  pad: continuous((x, pick) =>
    w.make("pad", { lo: x.shape.map(() => pick(3)), hi: x.shape.map(() => pick(3)), interior: x.shape.map(() => pick(2)), value: pick(3) - 1 }, [x]),
  ),
  concat: continuous((x, pick) => (x.rank ? w.concat([x, w.exp(w.tanh(x))], axisOf(x, pick)) : null)),
  gather: continuous((x, pick) => {
    if (!x.rank) return null;
    const axis = axisOf(x, pick);
    const idx = Array.from({ length: 1 + pick(5) }, () => pick(x.shape[axis] + 2) - 1); // includes out-of-range (clamped)
    return w.gather(x, w.constant(idx, "i32"), axis);
  }),
  scatterAdd: continuous((x, pick) => {
    if (!x.rank) return null;
    const axis = axisOf(x, pick);
    const idx = Array.from({ length: x.shape[axis] }, () => pick(3));
    return w.scatterAdd(x, w.constant(idx, "i32"), axis, 3);
  }),
  matmul: continuous((x, pick, pool) => {
    if (x.rank < 2) return null;
    const k = x.shape[x.rank - 1];
    const partners = pool.filter((p) => p.rank >= 2 && p.shape[p.rank - 2] === k && broadcasts(p.shape.slice(0, -2), x.shape.slice(0, -2)));
    return w.matmul(x, partners.length ? partners[pick(partners.length)] : w.swapAxes(x));
  }),
  customVjp: continuous((x) => double(x)),
};

/** Composites worth drawing as a whole: their numerics (max-subtraction, variance) are where backends differ. */
export const COMPOSITES: Readonly<Record<string, OpGenerator>> = {
  softmax: continuous((x) => (x.rank ? w.softmax(x) : null)),
  // eps 1e-2, not 1e-5: a row that is constant in f32 (after broadcastTo, say) has an f32 mean one
  // rounding off its value, and 1/√eps would amplify that rounding past any f32 tolerance.
  layerNorm: continuous((x) => (x.rank ? w.layerNorm(x, undefined, undefined, 1e-2) : null)),
};

/** Every drawable generator by name: the primitives' (named by primitive) and the composites. */
const DRAWABLE: Readonly<Record<string, OpGenerator>> = {
  ...Object.fromEntries(Object.entries(GENERATORS).flatMap(([name, g]) => ("op" in g ? [[name, g]] : []))),
  ...COMPOSITES,
};

/** The ops a random graph draws from, by name; each returns null when it does not apply to its operand. */
export const RANDOM_OPS: Readonly<Record<string, Op>> = Object.fromEntries(Object.entries(DRAWABLE).map(([name, g]) => [name, g.op]));

/** The names of the continuous ops: the ones whose f32 results may be compared to an f64 reference within a tolerance. */
export const CONTINUOUS_OPS: readonly string[] = Object.entries(DRAWABLE).flatMap(([name, g]) => (g.continuous ? [name] : []));

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

/** Bounds on the graphs arbGraph draws: inputs (default 3), ops (default 8), sizes (default 1..4), dtype (default f64) and the ops allowed. */
export interface GraphOptions {
  readonly maxInputs?: number;
  readonly maxOps?: number;
  readonly maxDim?: number;
  readonly dtype?: "f32" | "f64";
  /** Restrict the op names drawn from RANDOM_OPS (primitive and composite names; CONTINUOUS_OPS for f32-vs-f64 comparisons). */
  readonly ops?: readonly string[];
  /** Allowed dimension sizes (e.g. [1, 3, 17, 65] to stress tiling edges). Default 1..maxDim. */
  readonly dims?: readonly number[];
}

/** A random graph of up to `maxOps` ops over up to `maxInputs` inputs; every value it makes is an output. */
export function arbGraph(opts: GraphOptions = {}): fc.Arbitrary<RandomGraph> {
  const { maxInputs = 3, maxOps = 8, maxDim = 4, dtype = "f64" } = opts;
  const names = opts.ops ?? Object.keys(RANDOM_OPS);
  const unknown = names.filter((n) => !Object.hasOwn(RANDOM_OPS, n));
  if (unknown.length || !names.length)
    throw new w.ArgumentError(
      "arbGraph",
      `${unknown.length ? `unknown ops ${unknown.map((n) => JSON.stringify(n)).join(", ")}` : "no ops"}; the ops are ${Object.keys(RANDOM_OPS).join(", ")}`,
    );
  const shape = opts.dims ? fc.array(fc.constantFrom(...opts.dims), { minLength: 0, maxLength: 2 }) : arbShape({ maxRank: 3, maxDim });
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
