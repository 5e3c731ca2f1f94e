/**
 * How each primitive is computed on the GPU: an inline WGSL expression at a symbolic index, or a
 * kernel template of its own (kernels.ts: reductions, matmul, scatterAdd). Keyed by primitive, so
 * a primitive without a lowering is a type error.
 */
import { type BinaryPrim, type ComparePrim, type Node, type Prim, type Tensor, type UnaryPrim } from "../../dsl/index.js";
import { Idx, regType, type InlineRule, type KernelGen } from "./gen.js";
import { OWN_KERNELS, type OwnKernel } from "./kernels.js";
import { literal } from "./wgslLib.js";

type Lowering<P extends Prim> = ((node: Node<P>, idx: Idx, g: KernelGen) => string) | OwnKernel<P>;

const unaryExpr: { readonly [P in UnaryPrim]: (x: string, g: KernelGen, n: Tensor) => string } = {
  neg: (x) => `-(${x})`,
  exp: (x) => `exp(${x})`,
  log: (x) => `log(${x})`,
  sqrt: (x) => `sqrt(${x})`,
  tanh: (x, g) => (g.useHelper("tanh"), `tanh_(${x})`),
  erf: (x, g) => (g.useHelper("erf"), `erf_(${x})`),
  abs: (x) => `abs(${x})`,
  sign: (x) => `sign(${x})`,
  reciprocal: (x) => `(1.0 / ${x})`,
};

const binaryExpr: { readonly [P in BinaryPrim]: (a: string, b: string, g: KernelGen, n: Tensor) => string } = {
  add: (a, b) => `(${a} + ${b})`,
  sub: (a, b) => `(${a} - ${b})`,
  mul: (a, b) => `(${a} * ${b})`,
  div: (a, b, g, n) => (n.dtype === "i32" ? (g.useHelper("idiv"), `idiv_(${a}, ${b})`) : `(${a} / ${b})`),
  pow: (a, b, g) => (g.useHelper("pow"), `pow_(${a}, ${b})`),
  maximum: (a, b) => `max(${a}, ${b})`,
  minimum: (a, b) => `min(${a}, ${b})`,
  // WGSL leaves atan2(0, 0) undefined (lavapipe gives 3π/4): 0 there, as Math.atan2, so the backends agree on a zero vector.
  atan2: (a, b) => `select(atan2(${a}, ${b}), 0.0, ${a} == 0.0 && ${b} == 0.0)`,
};

const compareOp: { readonly [P in ComparePrim]: string } = {
  less: "<",
  lessEqual: "<=",
  greater: ">",
  greaterEqual: ">=",
  equal: "==",
  notEqual: "!=",
};

const unary =
  <P extends UnaryPrim>(p: P): Lowering<P> =>
  (n, idx, g) =>
    unaryExpr[p](g.val(n.inputs[0], idx), g, n);

const binary =
  <P extends BinaryPrim>(p: P): Lowering<P> =>
  (n, idx, g) =>
    binaryExpr[p](g.val(n.inputs[0], g.broadcastIdx(idx, n.inputs[0].shape)), g.val(n.inputs[1], g.broadcastIdx(idx, n.inputs[1].shape)), g, n);

const compare =
  <P extends ComparePrim>(p: P): Lowering<P> =>
  (n, idx, g) =>
    `(${g.val(n.inputs[0], g.broadcastIdx(idx, n.inputs[0].shape))} ${compareOp[p]} ${g.val(n.inputs[1], g.broadcastIdx(idx, n.inputs[1].shape))})`;

/** threefry2x32(key, (hi, flat index)) as the first word, with the key read from its node. */
function randomWord(n: Tensor, idx: Idx, g: KernelGen, hi: number): string {
  g.useHelper("threefry");
  const key = n.inputs[0];
  const k0 = g.val(key, g.idx([2], "0u", ["0u"]));
  const k1 = g.val(key, g.idx([2], "1u", ["1u"]));
  return `threefry_(bitcast<u32>(${k0}), bitcast<u32>(${k1}), ${hi >>> 0}u, ${g.flat(idx)})`;
}

/**
 * The index into a reshape's input. A flat index passes through; per-axis coordinates map group by
 * group, where a group is a run of output axes and a run of input axes with equal products
 * ([64, 50, 96] → [64, 50, 3, 32] splits only the last axis), so a head split costs one division
 * and one remainder, not a full flatten and re-decomposition.
 */
function reshapeIdx(n: Tensor, idx: Idx, g: KernelGen): Idx {
  const from = n.inputs[0].shape;
  if (idx.coordExprs === null || n.size === 0) return g.idx(from, idx.flatExpr ?? g.flat(idx), null);
  const to = n.shape;
  const c = idx.coordExprs;
  const inC: string[] = [];
  let [i, j] = [0, 0];
  while (i < to.length || j < from.length) {
    // One group: the shortest runs to[i0..i) and from[j0..j) with equal products.
    const [i0, j0] = [i, j];
    let po = i < to.length ? to[i++] : 1;
    let pi = j < from.length ? from[j++] : 1;
    while (po !== pi) {
      if (po < pi) po *= to[i++];
      else pi *= from[j++];
    }
    const outAxes = to
      .slice(i0, i)
      .map((d, k) => ({ d, e: c[i0 + k] }))
      .filter((a) => a.d !== 1);
    const inAxes = from.slice(j0, j);
    if (inAxes.filter((d) => d !== 1).length <= 1 && outAxes.length <= 1) {
      for (const d of inAxes) inC.push(d === 1 ? "0u" : (outAxes[0]?.e ?? "0u"));
      continue;
    }
    // Row-major offset within the group, then split over the input axes.
    let flat = "";
    let stride = 1;
    for (let k = outAxes.length - 1; k >= 0; k--) {
      flat = (stride === 1 ? outAxes[k].e : `${outAxes[k].e} * ${stride}u`) + (flat ? ` + ${flat}` : "");
      stride *= outAxes[k].d;
    }
    const f = outAxes.length > 1 ? g.let(flat, "ix") : flat;
    let below = inAxes.reduce((a, d) => a * d, 1);
    inAxes.forEach((d, k) => {
      below /= d;
      if (d === 1) return void inC.push("0u");
      const q = below === 1 ? f : `(${f} / ${below}u)`;
      inC.push(g.let(k === 0 ? q : `${q} % ${d}u`, "c"));
    });
  }
  return g.idx(from, idx.flatExpr, inC);
}

export const lowerings: { readonly [P in Prim]: Lowering<P> } = {
  input: () => {
    throw new Error("webgpu: inputs are always materialised");
  },
  constant: () => {
    throw new Error("webgpu: non-scalar constants are always materialised");
  },
  iota: (n, idx, g) => {
    const c = g.coords(idx)[n.params.axis];
    return n.dtype === "i32" ? `i32(${c})` : `${regType(n.dtype)}(${c})`;
  },
  randomBits: (n, idx, g) => `bitcast<i32>(${randomWord(n, idx, g, n.params.counterHi)})`,
  randomUniform: (n, idx, g) => `f32(${randomWord(n, idx, g, 0)} >> 8u) * ${literal(2 ** -24, "f32")}`,
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
  where: (n, idx, g) => {
    const [c, a, b] = n.inputs.map((x) => g.val(x, g.broadcastIdx(idx, x.shape)));
    return `select(${b}, ${a}, ${c})`;
  },
  cast: (n, idx, g) => {
    const x = g.val(n.inputs[0], idx);
    const from = n.inputs[0].dtype;
    if (n.dtype === "bool") return from === "bool" ? x : `(${x} != ${from === "f32" ? "0.0" : "0"})`;
    if (from === "bool") return `select(${regType(n.dtype)}(0), ${regType(n.dtype)}(1), ${x})`;
    return `${regType(n.dtype)}(${x})`;
  },
  stopGradient: (n, idx, g) => g.val(n.inputs[0], idx),
  customVjp: (n, idx, g) => g.val(n.inputs[0], idx),
  sum: OWN_KERNELS.sum,
  max: OWN_KERNELS.max,
  argmax: OWN_KERNELS.argmax,
  argmin: OWN_KERNELS.argmin,
  matmul: OWN_KERNELS.matmul,
  scatterAdd: OWN_KERNELS.scatterAdd,
  reshape: (n, idx, g) => g.val(n.inputs[0], reshapeIdx(n, idx, g)),
  permute: (n, idx, g) => {
    const c = g.coords(idx);
    const inC = new Array<string>(n.params.perm.length);
    n.params.perm.forEach((p, k) => (inC[p] = c[k]));
    return g.val(n.inputs[0], g.idx(n.inputs[0].shape, null, inC));
  },
  broadcastTo: (n, idx, g) => g.val(n.inputs[0], g.broadcastIdx(idx, n.inputs[0].shape)),
  slice: (n, idx, g) => {
    const c = g.coords(idx);
    const { starts, steps } = n.params;
    const inC = c.map((e, k) =>
      e === "0u" ? `${starts[k]}u` : steps[k] === 1 ? (starts[k] ? `(${e} + ${starts[k]}u)` : e) : `(${e} * ${steps[k]}u + ${starts[k]}u)`,
    );
    return g.val(n.inputs[0], g.idx(n.inputs[0].shape, null, inC));
  },
  pad: (n, idx, g) => {
    const x = n.inputs[0];
    const { lo, interior, value } = n.params;
    const c = g.coords(idx);
    const conds: string[] = [];
    const inC = c.map((e, k) => {
      const step = interior[k] + 1;
      const d = x.shape[k];
      if (lo[k] === 0 && step === 1 && n.shape[k] === d) return e;
      const off = g.let(`i32(${e}) - ${lo[k]}i`, "p");
      conds.push(`${off} >= 0i`, `${off} < ${(d - 1) * step + 1}i`);
      if (step > 1) conds.push(`${off} % ${step}i == 0i`);
      return step > 1 ? `u32(max(${off}, 0i) / ${step}i)` : `u32(clamp(${off}, 0i, ${d - 1}i))`;
    });
    const inside = g.val(x, g.idx(x.shape, null, inC));
    return conds.length ? `select(${literal(value, x.dtype as "f32")}, ${inside}, ${conds.join(" && ")})` : inside;
  },
  concat: (n, idx, g) => {
    const axis = n.params.axis;
    const c = g.coords(idx);
    let offset = 0;
    const parts = n.inputs.map((x) => {
      const start = offset;
      offset += x.shape[axis];
      const inC = c.map((e, k) => (k === axis ? `u32(clamp(i32(${e}) - ${start}i, 0i, ${x.shape[axis] - 1}i))` : e));
      return { end: offset, v: g.val(x, g.idx(x.shape, null, inC)) };
    });
    return parts.slice(0, -1).reduceRight((acc, p) => `select(${acc}, ${p.v}, ${c[axis]} < ${p.end}u)`, parts[parts.length - 1].v);
  },
  gather: (n, idx, g) => {
    const [x, ind] = n.inputs;
    const axis = n.params.axis;
    const c = g.coords(idx);
    const ir = ind.rank;
    const i = g.val(ind, g.idx(ind.shape, null, c.slice(axis, axis + ir)));
    const inC = [...c.slice(0, axis), `u32(clamp(${i}, 0i, ${x.shape[axis] - 1}i))`, ...c.slice(axis + ir)];
    return g.val(x, g.idx(x.shape, null, inC));
  },
};

/**
 * Thrown when a kernel would inline a node that has a kernel of its own: an epilogue that reads
 * its matmul or reduction at another element than the one it stores. The planner catches it and
 * gives that fusion up (two kernels then); nothing else does.
 */
export class InlineRefused extends Error {
  constructor(readonly node: Tensor) {
    super(`webgpu: internal error: ${node.prim} must be materialised in a kernel of its own`);
  }
}

/** The inline rule for a node (a node with a kernel of its own is refused: see InlineRefused). */
export function inlineRule(n: Tensor): InlineRule {
  const r = lowerings[n.prim];
  if (typeof r !== "function") throw new InlineRefused(n);
  return r as InlineRule;
}

/** The kernel template of a node whose primitive has one, else null (the node is inlined). */
export function ownKernel<P extends Prim>(n: Node<P>): OwnKernel<P> | null {
  const r: Lowering<P> = lowerings[n.prim];
  return typeof r === "function" ? null : r;
}

export const needsKernel = (n: Tensor): boolean => ownKernel(n) !== null;
