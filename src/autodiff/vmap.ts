/**
 * vmap: a function of one example, mapped over a batch axis of its arguments (JAX's `vmap`).
 * `f` is traced once on placeholders of one example's shapes; the graph is then rebuilt with
 * every node that depends on a batched argument carrying the batch as its leading axis, through a
 * batching rule per primitive. The result is an ordinary graph: it compiles as one program and
 * differentiates again, so `vmap(grad(loss))` gives per-example gradients.
 */
import {
  add,
  ArgumentError,
  broadcastTo,
  concat,
  dispatch,
  flatten,
  input,
  iota,
  isTensor,
  make,
  maximum,
  minimum,
  mul,
  reshape,
  sliceAxis,
  stack,
  topoSort,
  transpose,
  unflatten,
  type Node,
  type Prim,
  type PrimParams,
  type RuleTable,
  type Tensor,
  type Tree,
} from "../dsl/index.js";

/** A value of the batched graph: the tensor, and whether its leading axis is the batch. */
interface Val {
  readonly t: Tensor;
  readonly batched: boolean;
}

/** Moves axis `from` of `x` to position `to`. */
function moveAxis(x: Tensor, from: number, to: number): Tensor {
  if (from === to) return x;
  const perm = [...Array(x.rank).keys()].filter((a) => a !== from);
  perm.splice(to, 0, from);
  return transpose(x, perm);
}

/** A batched value with unit axes after the batch axis, up to `rank` + 1 axes: it then broadcasts against unbatched operands of rank `rank`. */
function padBatched(x: Tensor, rank: number): Tensor {
  const missing = rank + 1 - x.rank;
  return missing > 0 ? reshape(x, [x.shape[0], ...Array<number>(missing).fill(1), ...x.shape.slice(1)]) : x;
}

/** An unbatched value given the batch axis by broadcasting (for rules whose operands must all carry it). */
const withBatch = (v: Val, size: number): Tensor => (v.batched ? v.t : broadcastTo(reshape(v.t, [1, ...v.t.shape]), [size, ...v.t.shape]));

/** The rebuilt node from new inputs, same primitive and parameters (shapes checked again). */
const remake = <P extends Prim>(n: Node<P>, inputs: readonly Tensor[], params: PrimParams[P] = n.params): Tensor => make(n.prim, params, inputs);

/** Elementwise primitives (operands broadcast NumPy-style): batched operands padded so the batch axis leads the result. */
const elementwise = <P extends Prim>(n: Node<P>, ins: readonly Val[]): Tensor =>
  remake(
    n,
    ins.map((v) => (v.batched ? padBatched(v.t, n.rank) : v.t)),
  );

/** Axes of the unbatched node, one further on in the batched one. */
const shifted = (axes: readonly number[]) => axes.map((a) => a + 1);

/**
 * Any primitive, one example at a time: slices of the batch, the node on each, stacked. Exact for
 * every primitive (random words with batched keys, custom VJPs, gathers with batched indices);
 * its graph grows with the batch, so the common primitives have rules of their own.
 */
function perExample<P extends Prim>(n: Node<P>, ins: readonly Val[], size: number): Tensor {
  const examples = Array.from({ length: size }, (_, b) =>
    remake(
      n,
      ins.map((v) => (v.batched ? reshape(sliceAxis(v.t, 0, b, b + 1), v.t.shape.slice(1)) : v.t)),
    ),
  );
  return stack(examples, 0);
}

/** gather with the batch on `x` only, on the indices only, or on both (then as one gather over the flattened batch). */
function gatherRule(n: Node<"gather">, [x, ind]: readonly Val[], size: number): Tensor {
  const axis = n.params.axis;
  if (!ind.batched) return remake(n, [x.t, ind.t], { axis: axis + 1 });
  if (!x.batched) return moveAxis(remake(n, [x.t, ind.t], { axis }), axis, 0);
  // Both batched: example b's rows are rows b·len … b·len + len − 1 of x with its gathered axis moved after the batch and merged into it.
  const len = x.t.shape[axis + 1];
  const xm = moveAxis(x.t, axis + 1, 1);
  const flat = reshape(xm, [size * len, ...xm.shape.slice(2)]);
  const clamped = minimum(maximum(ind.t, 0), len - 1); // gather clamps per example, before the offset
  const offset = mul(iota([size, ...ind.t.shape.slice(1)], 0, "i32"), len);
  const out = remake(n, [flat, add(clamped, offset)], { axis: 0 }); // [B, idx..., pre..., post...]
  const idxRank = ind.t.rank - 1;
  const pre = axis;
  // To [B, pre..., idx..., post...].
  const perm = [0, ...Array.from({ length: pre }, (_, i) => 1 + idxRank + i), ...Array.from({ length: idxRank }, (_, i) => 1 + i)];
  for (let a = 1 + idxRank + pre; a < out.rank; a++) perm.push(a);
  return transpose(out, perm);
}

/** The batching rule of every primitive. */
const batchRules: RuleTable<Tensor, [readonly Val[], number]> = {
  input: () => {
    throw new Error("vmap: internal error: placeholders are mapped, not batched");
  },
  constant: (n) => n,
  iota: (n) => n,
  randomBits: perExample,
  randomUniform: perExample,
  neg: elementwise,
  exp: elementwise,
  log: elementwise,
  sqrt: elementwise,
  tanh: elementwise,
  erf: elementwise,
  abs: elementwise,
  sign: elementwise,
  reciprocal: elementwise,
  add: elementwise,
  sub: elementwise,
  mul: elementwise,
  div: elementwise,
  pow: elementwise,
  maximum: elementwise,
  minimum: elementwise,
  atan2: elementwise,
  less: elementwise,
  lessEqual: elementwise,
  greater: elementwise,
  greaterEqual: elementwise,
  equal: elementwise,
  notEqual: elementwise,
  where: elementwise,
  cast: elementwise,
  stopGradient: elementwise,
  sum: (n, [x]) => remake(n, [x.t], { axes: shifted(n.params.axes) }),
  max: (n, [x]) => remake(n, [x.t], { axes: shifted(n.params.axes) }),
  argmax: (n, [x]) => remake(n, [x.t], { axis: n.params.axis + 1 }),
  argmin: (n, [x]) => remake(n, [x.t], { axis: n.params.axis + 1 }),
  reshape: (n, [x]) => reshape(x.t, [x.t.shape[0], ...n.params.shape]),
  permute: (n, [x]) => transpose(x.t, [0, ...shifted(n.params.perm)]),
  broadcastTo: (n, [x]) => broadcastTo(padBatched(x.t, n.rank), [x.t.shape[0], ...n.params.shape]),
  slice: (n, [x]) => remake(n, [x.t], { starts: [0, ...n.params.starts], stops: [x.t.shape[0], ...n.params.stops], steps: [1, ...n.params.steps] }),
  pad: (n, [x]) => remake(n, [x.t], { ...n.params, lo: [0, ...n.params.lo], hi: [0, ...n.params.hi], interior: [0, ...n.params.interior] }),
  concat: (n, ins, size) =>
    concat(
      ins.map((v) => withBatch(v, size)),
      n.params.axis + 1,
    ),
  gather: gatherRule,
  scatterAdd: (n, ins, size) => (ins[1].batched ? perExample(n, ins, size) : remake(n, [ins[0].t, ins[1].t], { ...n.params, axis: n.params.axis + 1 })),
  matmul: (n, ins) => {
    // Both operands are at least matrices; the batch axis leads the broadcast batch axes of the result.
    const [a, b] = ins;
    return remake(n, [a.batched ? padBatched(a.t, n.rank) : a.t, b.batched ? padBatched(b.t, n.rank) : b.t]);
  },
  customVjp: perExample,
};

/** `inAxes`/`outAxes` of vmap: one entry per argument (or output leaf), a number for all, null for "not mapped". */
export interface VmapOptions {
  /** For each argument: the axis its every leaf is batched along, or null (the same for every example). Default 0 for all. */
  readonly inAxes?: number | null | readonly (number | null)[];
  /** Where the batch axis goes in every output leaf (negative counts from the end). Default 0. */
  readonly outAxes?: number;
}

/** The argument's batch axis as a non-negative axis of each leaf (null: not batched). */
function axesOf(opts: VmapOptions, n: number): (number | null)[] {
  const a = opts.inAxes ?? 0;
  if (Array.isArray(a)) {
    if (a.length !== n) throw new ArgumentError("vmap", `inAxes has ${a.length} entries for ${n} arguments`);
    return [...a];
  }
  return Array<number | null>(n).fill(a as number | null);
}

/**
 * `vmap(f, { inAxes, outAxes })` maps `f`, written for one example, over a batch axis of its
 * arguments (pytrees of tensors): `vmap(f)(xs)` equals stacking `f(x_i)` for every i, computed
 * as one batched graph. Arguments with `inAxes` null are shared by every example; outputs that
 * depend on no batched argument are broadcast along the batch. Composes with grad and jvp both
 * ways (`vmap(grad(loss), { inAxes: [null, 0, 0] })` gives per-example gradients).
 */
export function vmap<A extends readonly unknown[], R>(f: (...args: A) => R, opts: VmapOptions = {}): (...args: A) => R {
  if (typeof f !== "function") throw new ArgumentError("vmap", "the first argument must be the function to map");
  return (...args) => {
    const axes = axesOf(opts, args.length);
    const flat = args.map((a, i) => flatten(a, isTensor, "Tensor", { op: "vmap", root: `argument ${i}` }));
    let size = -1;
    const values = new Map<Tensor, Val>();
    const placeholders = flat.map((fl, i) =>
      fl.leaves.map((x) => {
        const ax = axes[i];
        if (ax === null) {
          const p = input(x.shape, x.dtype, "vmap");
          values.set(p, { t: x, batched: false });
          return p;
        }
        const a = ax < 0 ? ax + x.rank : ax;
        if (!Number.isInteger(a) || a < 0 || a >= x.rank)
          throw new ArgumentError("vmap", `inAxes ${ax} is out of range for argument ${i}'s leaf of shape [${x.shape}]`);
        if (size >= 0 && x.shape[a] !== size)
          throw new ArgumentError(
            "vmap",
            `argument ${i} has ${x.shape[a]} examples along axis ${a}, another argument ${size}: every mapped leaf needs the same batch size`,
          );
        size = x.shape[a];
        const p = input([...x.shape.slice(0, a), ...x.shape.slice(a + 1)], x.dtype, "vmap");
        values.set(p, { t: moveAxis(x, a, 0), batched: true });
        return p;
      }),
    );
    if (size < 0) throw new ArgumentError("vmap", "no argument is mapped: give at least one inAxes that is not null");
    const out = f(...(flat.map((fl, i) => unflatten(fl.def, placeholders[i])) as unknown as A));
    const { leaves: outs, def } = flatten(out, isTensor, "Tensor", { op: "vmap", root: "the function's result" });
    for (const n of topoSort(outs)) {
      if (values.has(n)) continue;
      const ins = n.inputs.map((i) => values.get(i) ?? { t: i, batched: false });
      const same = ins.every((v, k) => v.t === n.inputs[k]);
      if (!ins.some((v) => v.batched))
        values.set(n, {
          t: same
            ? n
            : remake(
                n,
                ins.map((v) => v.t),
              ),
          batched: false,
        });
      else values.set(n, { t: dispatch(batchRules, n, ins, size), batched: true });
    }
    const outAxis = opts.outAxes ?? 0;
    const results = outs.map((o) => {
      const t = withBatch(values.get(o)!, size);
      const to = outAxis < 0 ? outAxis + t.rank : outAxis;
      if (!Number.isInteger(to) || to < 0 || to >= t.rank)
        throw new ArgumentError("vmap", `outAxes ${outAxis} is out of range for an output of rank ${t.rank}`);
      return moveAxis(t, 0, to);
    });
    return unflatten(def, results) as unknown as R & Tree<Tensor>;
  };
}
