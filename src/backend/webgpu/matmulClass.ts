/** A matmul's shape class: what the autotuner times and caches a tile choice for. */
import type { Tensor } from "../../dsl/index.js";
import { operandLayout } from "./matmulVec4.js";

export interface MatmulClass {
  readonly key: string;
  readonly batch: number;
  readonly m: number;
  readonly n: number;
  readonly k: number;
  readonly transA: boolean;
  readonly transB: boolean;
}

/** The class of matmul node `k`, whose operands are read as stored where `isMat` says so. */
export function matmulClass(k: Tensor, isMat: (n: Tensor) => boolean): MatmulClass {
  const [a, b] = k.inputs;
  const [m, n] = k.shape.slice(-2);
  const kk = a.shape[a.rank - 1];
  const batch = k.size / (m * n);
  const transA = operandLayout(a, isMat)?.transposed ?? false;
  const transB = operandLayout(b, isMat)?.transposed ?? false;
  return { key: `${batch}x${m}x${kk}x${n}${transA ? "T" : "N"}${transB ? "T" : "N"}`, batch, m, n, k: kk, transA, transB };
}
