/**
 * Array kernels of the CPU reference backend. Plain loops over typed arrays: index maps are
 * computed once per op (never an allocation per element), float accumulations run in float64.
 */
import { allocate, sizeOf, stridesOf, type DType, type HostData, type Shape } from "../../dsl/index.js";

/**
 * The flat input offset of every element of `shape`, for an input read with per-axis `strides`
 * (0 along broadcast axes) from `offset`.
 */
export function stridedIndex(shape: Shape, strides: readonly number[], offset = 0): Int32Array {
  const n = sizeOf(shape);
  const out = new Int32Array(n);
  const r = shape.length;
  if (n === 0) return out;
  if (r === 0) {
    out[0] = offset;
    return out;
  }
  const last = shape[r - 1];
  const ls = strides[r - 1];
  const idx = new Array<number>(r).fill(0);
  let base = offset;
  for (let i = 0; i < n; i += last) {
    for (let j = 0; j < last; j++) out[i + j] = base + j * ls;
    for (let a = r - 2; a >= 0; a--) {
      idx[a]++;
      base += strides[a];
      if (idx[a] < shape[a]) break;
      base -= strides[a] * shape[a];
      idx[a] = 0;
    }
  }
  return out;
}

/** Strides for reading an `inShape` array broadcast to `outShape` (0 along stretched axes). */
export function broadcastStrides(inShape: Shape, outShape: Shape): number[] {
  const s = stridesOf(inShape);
  const lead = outShape.length - inShape.length;
  return outShape.map((_, i) => (i < lead || inShape[i - lead] === 1 ? 0 : s[i - lead]));
}

const same = (a: Shape, b: Shape) => a.length === b.length && a.every((d, i) => d === b[i]);

/** The index map for reading `inShape` broadcast to `outShape`, or null when no map is needed. */
export const broadcastIndex = (inShape: Shape, outShape: Shape): Int32Array | null =>
  same(inShape, outShape) ? null : stridedIndex(outShape, broadcastStrides(inShape, outShape));

export function mapUnary(x: HostData, dtype: DType, f: (v: number) => number): HostData {
  const out = allocate(dtype, x.length);
  for (let i = 0; i < x.length; i++) out[i] = f(x[i]);
  return out;
}

export function mapBinary(
  a: HostData,
  aShape: Shape,
  b: HostData,
  bShape: Shape,
  outShape: Shape,
  dtype: DType,
  f: (x: number, y: number) => number,
): HostData {
  const n = sizeOf(outShape);
  const out = allocate(dtype, n);
  // A one-element operand needs no index map: read it once.
  if (b.length === 1 && same(aShape, outShape)) {
    const bv = b[0];
    for (let i = 0; i < n; i++) out[i] = f(a[i], bv);
    return out;
  }
  if (a.length === 1 && same(bShape, outShape)) {
    const av = a[0];
    for (let i = 0; i < n; i++) out[i] = f(av, b[i]);
    return out;
  }
  const ia = broadcastIndex(aShape, outShape);
  const ib = broadcastIndex(bShape, outShape);
  if (!ia && !ib) for (let i = 0; i < n; i++) out[i] = f(a[i], b[i]);
  else if (!ia) for (let i = 0; i < n; i++) out[i] = f(a[i], b[ib![i]]);
  else if (!ib) for (let i = 0; i < n; i++) out[i] = f(a[ia[i]], b[i]);
  else for (let i = 0; i < n; i++) out[i] = f(a[ia[i]], b[ib[i]]);
  return out;
}

/** Gathers `x` through an index map into a new array. */
export function take(x: HostData, index: Int32Array, dtype: DType): HostData {
  const out = allocate(dtype, index.length);
  for (let i = 0; i < index.length; i++) out[i] = x[index[i]];
  return out;
}

/** For each input element, the flat index of the output element it reduces into. */
const reduceIndex = (shape: Shape, axes: readonly number[]) => {
  const outStrides = stridesOf(shape.filter((_, i) => !axes.includes(i)));
  let k = outStrides.length;
  const strides = shape.map(() => 0);
  for (let i = shape.length - 1; i >= 0; i--) if (!axes.includes(i)) strides[i] = outStrides[--k];
  return stridedIndex(shape, strides);
};

export function reduceSum(x: HostData, shape: Shape, axes: readonly number[], dtype: DType): HostData {
  const outN = sizeOf(shape.filter((_, i) => !axes.includes(i)));
  const acc = new Float64Array(outN);
  const idx = reduceIndex(shape, axes);
  for (let i = 0; i < x.length; i++) acc[idx[i]] += x[i];
  const out = allocate(dtype, outN);
  out.set(dtype === "i32" ? Int32Array.from(acc, (v) => v | 0) : acc);
  return out;
}

export function reduceMax(x: HostData, shape: Shape, axes: readonly number[], dtype: DType): HostData {
  const outN = sizeOf(shape.filter((_, i) => !axes.includes(i)));
  const acc = new Float64Array(outN).fill(-Infinity);
  const idx = reduceIndex(shape, axes);
  for (let i = 0; i < x.length; i++) {
    const v = x[i];
    const j = idx[i];
    if (v > acc[j] || v !== v) acc[j] = v;
  }
  const out = allocate(dtype, outN);
  for (let i = 0; i < outN; i++) out[i] = acc[i];
  return out;
}

/** Index of the first extreme along `axis` (NaN counts as the extreme, like NumPy). */
export function argReduce(x: HostData, shape: Shape, axis: number, better: (a: number, b: number) => boolean): Int32Array {
  const outer = sizeOf(shape.slice(0, axis));
  const len = shape[axis];
  const inner = sizeOf(shape.slice(axis + 1));
  const out = new Int32Array(outer * inner);
  for (let o = 0; o < outer; o++)
    for (let q = 0; q < inner; q++) {
      let best = x[o * len * inner + q];
      let bi = 0;
      for (let i = 1; i < len && best === best; i++) {
        const v = x[(o * len + i) * inner + q];
        if (better(v, best) || v !== v) {
          best = v;
          bi = i;
        }
      }
      out[o * inner + q] = bi;
    }
  return out;
}

const clampIndex = (i: number, n: number) => (i < 0 ? 0 : i >= n ? n - 1 : i);

export function gatherAxis(x: HostData, shape: Shape, indices: Int32Array, axis: number, dtype: DType): HostData {
  const outer = sizeOf(shape.slice(0, axis));
  const len = shape[axis];
  const inner = sizeOf(shape.slice(axis + 1));
  const m = indices.length;
  const out = allocate(dtype, outer * m * inner);
  for (let o = 0; o < outer; o++)
    for (let i = 0; i < m; i++) {
      const src = (o * len + clampIndex(indices[i], len)) * inner;
      const dst = (o * m + i) * inner;
      for (let q = 0; q < inner; q++) out[dst + q] = x[src + q];
    }
  return out;
}

export function scatterAddAxis(u: HostData, uShape: Shape, indices: Int32Array, axis: number, size: number, idxRank: number, dtype: DType): HostData {
  const outer = sizeOf(uShape.slice(0, axis));
  const inner = sizeOf(uShape.slice(axis + idxRank));
  const m = indices.length;
  const acc = new Float64Array(outer * size * inner);
  for (let o = 0; o < outer; o++)
    for (let i = 0; i < m; i++) {
      const dst = (o * size + clampIndex(indices[i], size)) * inner;
      const src = (o * m + i) * inner;
      for (let q = 0; q < inner; q++) acc[dst + q] += u[src + q];
    }
  const out = allocate(dtype, acc.length);
  for (let i = 0; i < acc.length; i++) out[i] = acc[i];
  return out;
}

/**
 * C[m,n] = A[m,k]·B[k,n] for contiguous operands at the given offsets. B is transposed once into
 * float64 so that every output is a dot product of two contiguous rows; a 2×2 block of outputs
 * shares each pair of loads (four multiply-adds per four loads). Accumulation is in float64.
 */
export function matmulInto(a: HostData, aOff: number, b: HostData, bOff: number, c: HostData, cOff: number, m: number, k: number, n: number): void {
  const bt = new Float64Array(k * n);
  for (let p = 0; p < k; p++) for (let j = 0; j < n; j++) bt[j * k + p] = b[bOff + p * n + j];
  const at = new Float64Array(m * k);
  for (let i = 0; i < m * k; i++) at[i] = a[aOff + i];
  for (let i = 0; i < m; i += 2) {
    const i1 = Math.min(i + 1, m - 1);
    const [r0, r1] = [i * k, i1 * k];
    for (let j = 0; j < n; j += 2) {
      const j1 = Math.min(j + 1, n - 1);
      const [q0, q1] = [j * k, j1 * k];
      let s00 = 0;
      let s01 = 0;
      let s10 = 0;
      let s11 = 0;
      for (let p = 0; p < k; p++) {
        const a0 = at[r0 + p];
        const a1 = at[r1 + p];
        const b0 = bt[q0 + p];
        const b1 = bt[q1 + p];
        s00 += a0 * b0;
        s01 += a0 * b1;
        s10 += a1 * b0;
        s11 += a1 * b1;
      }
      // At an odd edge, i1 = i or j1 = j: the duplicate writes store the same value.
      c[cOff + i1 * n + j1] = s11;
      c[cOff + i1 * n + j] = s10;
      c[cOff + i * n + j1] = s01;
      c[cOff + i * n + j] = s00;
    }
  }
}
