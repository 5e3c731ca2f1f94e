/**
 * The CPU reference interpreter: one evaluation rule per primitive, keyed by primitive so a
 * missing rule is a type error. f32 values are rounded to float32 after every op (a true f32
 * reference); f64 graphs run in float64 throughout.
 */
import {
  allocate,
  hostErf,
  sizeOf,
  stridesOf,
  type BinaryPrim,
  type ComparePrim,
  type HostData,
  type Node,
  type Prim,
  type UnaryPrim,
} from "../../dsl/index.js";
import {
  argReduce,
  broadcastIndex,
  broadcastStrides,
  gatherAxis,
  mapBinary,
  mapUnary,
  matmulInto,
  reduceMax,
  reduceSum,
  scatterAddAxis,
  stridedIndex,
  take,
} from "./kernels.js";
import { threefry2x32 } from "./threefry.js";

type EvalRule<P extends Prim> = (node: Node<P>, args: readonly HostData[]) => HostData;

export const unaryFns: { readonly [P in UnaryPrim]: (x: number) => number } = {
  neg: (x) => -x,
  exp: Math.exp,
  log: Math.log,
  sqrt: Math.sqrt,
  tanh: Math.tanh,
  erf: hostErf,
  abs: Math.abs,
  sign: (x) => (x > 0 ? 1 : x < 0 ? -1 : x === 0 ? 0 : x), // sign(-0) is +0, as in WGSL
  reciprocal: (x) => 1 / x,
};

export const binaryFns: { readonly [P in BinaryPrim]: (a: number, b: number) => number } = {
  add: (a, b) => a + b,
  sub: (a, b) => a - b,
  mul: (a, b) => a * b,
  div: (a, b) => a / b,
  pow: Math.pow,
  maximum: (a, b) => (a > b || a !== a ? a : b),
  minimum: (a, b) => (a < b || a !== a ? a : b),
  atan2: Math.atan2,
};

export const compareFns: { readonly [P in ComparePrim]: (a: number, b: number) => boolean } = {
  less: (a, b) => a < b,
  lessEqual: (a, b) => a <= b,
  greater: (a, b) => a > b,
  greaterEqual: (a, b) => a >= b,
  equal: (a, b) => a === b,
  notEqual: (a, b) => a !== b,
};

const unary =
  <P extends UnaryPrim>(p: P): EvalRule<P> =>
  (n, [x]) =>
    mapUnary(x, n.dtype, unaryFns[p]);

const binary =
  <P extends BinaryPrim>(p: P): EvalRule<P> =>
  (n, [a, b]) => {
    const f = binaryFns[p];
    // Integer division truncates toward zero (and i32 storage wraps like WGSL).
    const g = n.dtype === "i32" && p === "div" ? (x: number, y: number) => (y === 0 ? 0 : Math.trunc(x / y)) : f;
    return mapBinary(a, n.inputs[0].shape, b, n.inputs[1].shape, n.shape, n.dtype, g);
  };

const compare =
  <P extends ComparePrim>(p: P): EvalRule<P> =>
  (n, [a, b]) => {
    const f = compareFns[p];
    return mapBinary(a, n.inputs[0].shape, b, n.inputs[1].shape, n.shape, "bool", (x, y) => (f(x, y) ? 1 : 0));
  };

/** Fills an array with threefry words for counters (hi, 0..n-1). */
function threefryWords(key: HostData, hi: number, n: number, each: (i: number, word: number) => void): void {
  const w = new Uint32Array(2);
  for (let i = 0; i < n; i++) {
    threefry2x32(key[0], key[1], hi, i, w);
    each(i, w[0]);
  }
}

export const evalRules: { readonly [P in Prim]: EvalRule<P> } = {
  input: () => {
    throw new Error("cpu: an input has no value; the executable binds inputs before evaluation");
  },
  constant: (n) => n.params.data,
  iota: (n) => {
    const out = allocate(n.dtype, n.size);
    const strides = stridesOf(n.shape);
    const { axis } = n.params;
    const len = n.shape[axis];
    for (let i = 0; i < out.length; i++) out[i] = Math.floor(i / strides[axis]) % len;
    return out;
  },
  randomBits: (n, [key]) => {
    const out = new Int32Array(n.size);
    threefryWords(key, n.params.counterHi, n.size, (i, w) => (out[i] = w | 0));
    return out;
  },
  randomUniform: (n, [key]) => {
    const out = allocate(n.dtype, n.size);
    threefryWords(key, 0, n.size, (i, w) => (out[i] = (w >>> 8) * 2 ** -24));
    return out;
  },
  neg: unary("neg"),
  exp: unary("exp"),
  log: unary("log"),
  sqrt: unary("sqrt"),
  tanh: unary("tanh"),
  erf: unary("erf"),
  abs: unary("abs"),
  sign: unary("sign"),
  reciprocal: unary("reciprocal"),
  add: binary("add"),
  sub: binary("sub"),
  mul: binary("mul"),
  div: binary("div"),
  pow: binary("pow"),
  maximum: binary("maximum"),
  minimum: binary("minimum"),
  atan2: binary("atan2"),
  less: compare("less"),
  lessEqual: compare("lessEqual"),
  greater: compare("greater"),
  greaterEqual: compare("greaterEqual"),
  equal: compare("equal"),
  notEqual: compare("notEqual"),
  where: (n, [c, a, b]) => {
    const [cs, as, bs] = n.inputs.map((x) => x.shape);
    const ic = broadcastIndex(cs, n.shape);
    const ia = broadcastIndex(as, n.shape);
    const ib = broadcastIndex(bs, n.shape);
    const out = allocate(n.dtype, n.size);
    for (let i = 0; i < out.length; i++) out[i] = c[ic ? ic[i] : i] ? a[ia ? ia[i] : i] : b[ib ? ib[i] : i];
    return out;
  },
  cast: (n, [x]) => (n.dtype === "bool" ? mapUnary(x, "bool", (v) => (v !== 0 ? 1 : 0)) : mapUnary(x, n.dtype, n.dtype === "i32" ? Math.trunc : (v) => v)),
  stopGradient: (_n, [x]) => x,
  sum: (n, [x]) => reduceSum(x, n.inputs[0].shape, n.params.axes, n.dtype),
  max: (n, [x]) => reduceMax(x, n.inputs[0].shape, n.params.axes, n.dtype),
  argmax: (n, [x]) => argReduce(x, n.inputs[0].shape, n.params.axis, (a, b) => a > b),
  argmin: (n, [x]) => argReduce(x, n.inputs[0].shape, n.params.axis, (a, b) => a < b),
  reshape: (_n, [x]) => x,
  permute: (n, [x]) => {
    const s = stridesOf(n.inputs[0].shape);
    return take(
      x,
      stridedIndex(
        n.shape,
        n.params.perm.map((a) => s[a]),
      ),
      n.dtype,
    );
  },
  broadcastTo: (n, [x]) => take(x, stridedIndex(n.shape, broadcastStrides(n.inputs[0].shape, n.shape)), n.dtype),
  slice: (n, [x]) => {
    const s = stridesOf(n.inputs[0].shape);
    const offset = n.params.starts.reduce((acc, st, i) => acc + st * s[i], 0);
    return take(
      x,
      stridedIndex(
        n.shape,
        s.map((v, i) => v * n.params.steps[i]),
        offset,
      ),
      n.dtype,
    );
  },
  pad: (n, [x]) => {
    const out = allocate(n.dtype, n.size).fill(n.params.value);
    const s = stridesOf(n.shape);
    const { lo, interior } = n.params;
    const where = stridedIndex(
      n.inputs[0].shape,
      s.map((v, i) => v * (interior[i] + 1)),
      lo.reduce((acc, l, i) => acc + l * s[i], 0),
    );
    for (let i = 0; i < where.length; i++) out[where[i]] = x[i];
    return out;
  },
  concat: (n, xs) => {
    const out = allocate(n.dtype, n.size);
    const s = stridesOf(n.shape);
    let offset = 0;
    n.inputs.forEach((inp, k) => {
      const where = stridedIndex(inp.shape, s, offset * s[n.params.axis]);
      const x = xs[k];
      for (let i = 0; i < where.length; i++) out[where[i]] = x[i];
      offset += inp.shape[n.params.axis];
    });
    return out;
  },
  gather: (n, [x, idx]) => gatherAxis(x, n.inputs[0].shape, idx as Int32Array, n.params.axis, n.dtype),
  scatterAdd: (n, [u, idx]) => scatterAddAxis(u, n.inputs[0].shape, idx as Int32Array, n.params.axis, n.params.size, n.inputs[1].rank, n.dtype),
  matmul: (n, [a, b]) => {
    const [as, bs] = n.inputs.map((x) => x.shape);
    const [m, k] = as.slice(-2);
    const nn = bs[bs.length - 1];
    const batch = n.shape.slice(0, -2);
    const out = allocate(n.dtype, n.size);
    const aBatch = stridedIndex(batch, broadcastStrides(as.slice(0, -2), batch));
    const bBatch = stridedIndex(batch, broadcastStrides(bs.slice(0, -2), batch));
    for (let i = 0; i < sizeOf(batch); i++) matmulInto(a, aBatch[i] * m * k, b, bBatch[i] * k * nn, out, i * m * nn, m, k, nn);
    return out;
  },
  customVjp: (_n, [body]) => body,
};
