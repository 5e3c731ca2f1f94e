/**
 * The VJP of every primitive, keyed by primitive: a missing rule is a type error. A rule gets the
 * node (which is also the primal output) and the output cotangent and returns one cotangent per
 * input, or null where no gradient flows (integer operands, non-differentiable ops, stopGradient).
 * Rules are built from DSL ops, so the backward pass is a graph like any other and can itself be
 * differentiated.
 */
import {
  add,
  broadcastTo,
  cast,
  div,
  equal,
  exp,
  gather,
  greater,
  log,
  matmul,
  mul,
  neg,
  reshape,
  scatterAdd,
  sign,
  sub,
  sum,
  swapAxes,
  transpose,
  where,
  make,
  type Node,
  type Prim,
  type Shape,
  type Tensor,
  isFloat,
} from "../dsl/index.js";

export type VjpRule<P extends Prim> = (node: Node<P>, ct: Tensor) => readonly (Tensor | null)[];

/** Sums `ct` over the axes that broadcasting added or stretched, giving it `shape`. */
export function unbroadcast(ct: Tensor, shape: Shape): Tensor {
  if (ct.rank === shape.length && ct.shape.every((d, i) => d === shape[i])) return ct;
  const lead = ct.rank - shape.length;
  const axes = ct.shape.flatMap((d, i) => (i < lead || (shape[i - lead] === 1 && d !== 1) ? [i] : []));
  return reshape(axes.length ? sum(ct, axes) : ct, shape);
}

const none = (): readonly null[] => [];
const noGrad = (n: Tensor) => n.inputs.map(() => null);

/** 1 where a wins, 0 where b wins, ½ at ties (so gradients split evenly, as JAX does). */
const winnerWeight = (a: Tensor, b: Tensor, aWins: Tensor): Tensor => add(cast(aWins, a.dtype), mul(cast(equal(a, b), a.dtype), 0.5));

const chooser = (ct: Tensor, n: Node<"maximum" | "minimum">, aWins: Tensor) => {
  const [a, b] = n.inputs;
  const wa = winnerWeight(a, b, aWins);
  return [unbroadcast(mul(ct, wa), a.shape), unbroadcast(mul(ct, sub(1, wa)), b.shape)];
};

/** The reduced output broadcast back over the input's shape. */
const expandReduced = (t: Tensor, x: Tensor, axes: readonly number[]): Tensor =>
  broadcastTo(
    reshape(
      t,
      x.shape.map((d, i) => (axes.includes(i) ? 1 : d)),
    ),
    x.shape,
  );

export const vjpRules: { readonly [P in Prim]: VjpRule<P> } = {
  input: none,
  constant: none,
  iota: none,
  randomBits: noGrad,
  randomUniform: noGrad,
  neg: (_n, ct) => [neg(ct)],
  exp: (n, ct) => [mul(ct, n)],
  log: (n, ct) => [div(ct, n.inputs[0])],
  sqrt: (n, ct) => [div(ct, mul(n, 2))],
  tanh: (n, ct) => [mul(ct, sub(1, mul(n, n)))],
  erf: (n, ct) => {
    const x = n.inputs[0];
    return [mul(ct, mul(exp(neg(mul(x, x))), 2 / Math.sqrt(Math.PI)))];
  },
  abs: (n, ct) => [mul(ct, sign(n.inputs[0]))],
  sign: noGrad,
  reciprocal: (n, ct) => [neg(mul(ct, mul(n, n)))],
  add: (n, ct) => [unbroadcast(ct, n.inputs[0].shape), unbroadcast(ct, n.inputs[1].shape)],
  sub: (n, ct) => [unbroadcast(ct, n.inputs[0].shape), unbroadcast(neg(ct), n.inputs[1].shape)],
  mul: (n, ct) => {
    const [a, b] = n.inputs;
    return [unbroadcast(mul(ct, b), a.shape), unbroadcast(mul(ct, a), b.shape)];
  },
  div: (n, ct) => {
    const [a, b] = n.inputs;
    return [unbroadcast(div(ct, b), a.shape), unbroadcast(neg(div(mul(ct, n), b)), b.shape)];
  },
  pow: (n, ct) => {
    const [a, b] = n.inputs;
    // d/da = b·a^(b−1); d/db = a^b·log a, taken as 0 where a <= 0 (the limit at a = 0 for b > 0).
    const positive = greater(a, 0);
    const logA = where(positive, log(where(positive, a, 1)), 0);
    const dA = mul(b, make("pow", {}, [a, sub(b, 1)]));
    return [unbroadcast(mul(ct, dA), a.shape), unbroadcast(mul(ct, mul(n, logA)), b.shape)];
  },
  maximum: (n, ct) => chooser(ct, n, greater(n.inputs[0], n.inputs[1])),
  minimum: (n, ct) => chooser(ct, n, greater(n.inputs[1], n.inputs[0])),
  atan2: (n, ct) => {
    // d/dy = x/(x²+y²), d/dx = −y/(x²+y²): the angle's gradient is the point's perpendicular over its squared radius.
    const [y, x] = n.inputs;
    const scaled = div(ct, add(mul(x, x), mul(y, y)));
    return [unbroadcast(mul(scaled, x), y.shape), unbroadcast(neg(mul(scaled, y)), x.shape)];
  },
  less: noGrad,
  lessEqual: noGrad,
  greater: noGrad,
  greaterEqual: noGrad,
  equal: noGrad,
  notEqual: noGrad,
  where: (n, ct) => {
    const [c, a, b] = n.inputs;
    return [null, unbroadcast(where(c, ct, 0), a.shape), unbroadcast(where(c, 0, ct), b.shape)];
  },
  cast: (n, ct) => [isFloat(n.dtype) && isFloat(n.inputs[0].dtype) ? cast(ct, n.inputs[0].dtype) : null],
  stopGradient: noGrad,
  sum: (n, ct) => [expandReduced(ct, n.inputs[0], n.params.axes)],
  max: (n, ct) => {
    const x = n.inputs[0];
    const hits = cast(equal(x, expandReduced(n, x, n.params.axes)), x.dtype);
    const count = sum(hits, n.params.axes);
    return [mul(hits, expandReduced(div(ct, count), x, n.params.axes))];
  },
  argmax: noGrad,
  argmin: noGrad,
  reshape: (n, ct) => [reshape(ct, n.inputs[0].shape)],
  permute: (n, ct) => {
    const inverse = new Array<number>(n.params.perm.length);
    n.params.perm.forEach((p, i) => (inverse[p] = i));
    return [transpose(ct, inverse)];
  },
  broadcastTo: (n, ct) => [unbroadcast(ct, n.inputs[0].shape)],
  slice: (n, ct) => {
    const x = n.inputs[0];
    const { starts, steps } = n.params;
    const hi = x.shape.map((d, i) => d - (ct.shape[i] === 0 ? starts[i] : starts[i] + (ct.shape[i] - 1) * steps[i] + 1));
    const lo = ct.shape.map((d, i) => (d === 0 ? x.shape[i] - hi[i] : starts[i]));
    return [make("pad", { lo, hi, interior: steps.map((s) => s - 1), value: 0 }, [ct])];
  },
  pad: (n, ct) => {
    const { lo, interior } = n.params;
    const x = n.inputs[0];
    const stops = x.shape.map((d, i) => lo[i] + (d === 0 ? 0 : (d - 1) * (interior[i] + 1) + 1));
    return [make("slice", { starts: lo, stops, steps: interior.map((s) => s + 1) }, [ct])];
  },
  concat: (n, ct) => {
    let offset = 0;
    return n.inputs.map((x) => {
      const starts = x.shape.map((_, i) => (i === n.params.axis ? offset : 0));
      const stops = x.shape.map((d, i) => (i === n.params.axis ? offset + d : d));
      offset += x.shape[n.params.axis];
      return make("slice", { starts, stops, steps: x.shape.map(() => 1) }, [ct]);
    });
  },
  gather: (n, ct) => {
    const [x, idx] = n.inputs;
    return [scatterAdd(ct, idx, n.params.axis, x.shape[n.params.axis]), null];
  },
  scatterAdd: (n, ct) => [gather(ct, n.inputs[1], n.params.axis), null],
  matmul: (n, ct) => {
    const [a, b] = n.inputs;
    return [unbroadcast(matmul(ct, swapAxes(b)), a.shape), unbroadcast(matmul(swapAxes(a), ct), b.shape)];
  },
  customVjp: (n, ct) => [null, ...n.params.backward(n.inputs.slice(1), n, ct)],
};
