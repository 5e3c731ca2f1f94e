/**
 * A VQ codebook tokenizer as composable functions (spec §11, the seed's variant): nearest-code
 * quantisation with a straight-through estimator, the VQ-VAE codebook and commitment losses with
 * stopGradient (β on the commitment term by default; the seed's placement as an option), EMA
 * codebook updates with Laplace smoothing, and code-usage statistics.
 */
import {
  add,
  argmin,
  div,
  exp,
  gather,
  log,
  matmul,
  maximum,
  mean,
  mul,
  neg,
  oneHot,
  reshape,
  stopGradient,
  sub,
  sum,
  swapAxes,
  type Tensor,
} from "../dsl/index.js";

/** quantize's result: each row's nearest code index, the codes, and their straight-through values. */
export interface Quantized {
  /** Index of the nearest code per row: i32 [N]. */
  readonly indices: Tensor;
  /** The nearest codes e_q [N, D] (gradients reach the codebook). */
  readonly codes: Tensor;
  /** z + sg(e_q − z): the codes' values with the identity gradient to z (straight-through). */
  readonly straightThrough: Tensor;
}

/** Squared distances ‖z_n − e_k‖² [N, K] = ‖z‖² − 2 z·e + ‖e‖². */
export const squaredDistances = (z: Tensor, codebook: Tensor): Tensor =>
  add(sub(sum(mul(z, z), -1, true), mul(matmul(z, swapAxes(codebook)), 2)), reshape(sum(mul(codebook, codebook), -1), [1, codebook.shape[0]]));

/** q = argmin_k ‖z − e_k‖ for rows z [N, D] against a codebook [K, D]. No gradient flows through the argmin. */
export function quantize(z: Tensor, codebook: Tensor): Quantized {
  const indices = argmin(squaredDistances(z, codebook), -1);
  const codes = gather(codebook, indices, 0);
  return { indices, codes, straightThrough: add(z, stopGradient(sub(codes, z))) };
}

/** vqLoss's weighting: β (default 0.25) and on which term it goes (default "standard", VQ-VAE's). */
export interface VqLossOptions {
  /** Commitment weight β (VQ-VAE: 0.25). */
  readonly beta?: number;
  /**
   * "standard": ‖sg(z) − e‖² + β‖z − sg(e)‖² (VQ-VAE, Sonnet). "seed": the seed's placement,
   * ‖z − sg(e)‖² + β‖sg(z) − e‖², i.e. β on the codebook term.
   */
  readonly placement?: "standard" | "seed";
}

/**
 * The codebook and commitment terms (means over rows and features, or weighted means over rows
 * when `weights` [N] is given), and their weighted sum.
 */
export function vqLoss(z: Tensor, codes: Tensor, o: VqLossOptions = {}, weights?: Tensor): { loss: Tensor; codebook: Tensor; commitment: Tensor } {
  const { beta = 0.25, placement = "standard" } = o;
  const rowMean = (v: Tensor) => (weights ? div(sum(mul(mean(v, -1), weights)), maximum(sum(weights), 1e-12)) : mean(v));
  const sq = (a: Tensor, b: Tensor) => rowMean(mul(sub(a, b), sub(a, b)));
  const codebook = sq(stopGradient(z), codes); // moves the codes towards the encoder outputs
  const commitment = sq(z, stopGradient(codes)); // keeps the encoder close to its codes
  const loss = placement === "standard" ? add(codebook, mul(commitment, beta)) : add(mul(codebook, beta), commitment);
  return { loss, codebook, commitment };
}

/** The running statistics of one EMA codebook (the codebook is sums / counts). */
export interface EmaCodebook {
  /** Smoothed code counts N_k [K]. */
  readonly counts: Tensor;
  /** Smoothed sums of the vectors assigned to each code m_k [K, D]. */
  readonly sums: Tensor;
}

/**
 * One EMA codebook update (Sonnet's VectorQuantizerEMA): N ← γN + (1−γ)n, m ← γm + (1−γ)Σz,
 * Laplace smoothing N ← (N + ε)/(n_total + Kε)·n_total, e = m/N. Everything through stopGradient.
 * Optional `weights` [N] count rows fractionally (0 leaves a row out).
 */
export function emaCodebookUpdate(
  state: EmaCodebook,
  z: Tensor,
  indices: Tensor,
  decay = 0.99,
  eps = 1e-5,
  weights?: Tensor,
): { state: EmaCodebook; codebook: Tensor } {
  const k = state.counts.shape[0];
  const hard = oneHot(indices, k, z.dtype); // [N, K]
  const assign = weights ? mul(hard, reshape(weights, [weights.shape[0], 1])) : hard;
  const n = sum(assign, 0);
  const zs = stopGradient(z);
  const counts = add(mul(state.counts, decay), mul(n, 1 - decay));
  const sums = add(mul(state.sums, decay), mul(matmul(swapAxes(assign), zs), 1 - decay));
  const total = sum(counts);
  const smoothed = mul(div(add(counts, eps), add(total, k * eps)), total);
  return { state: { counts, sums }, codebook: div(sums, reshape(smoothed, [k, 1])) };
}

/** Code usage of a batch: perplexity exp(H(p)) of the code histogram (K when uniform, 1 when collapsed) and the share of codes used. */
export function codeUsage(indices: Tensor, k: number): { perplexity: Tensor; usedFraction: Tensor } {
  return usageOfCounts(sum(oneHot(indices, k), 0));
}

/** Perplexity and used share of a code histogram [K]. */
export function usageOfCounts(counts: Tensor): { perplexity: Tensor; usedFraction: Tensor } {
  const k = counts.shape[0];
  const p = div(counts, maximum(sum(counts), 1e-12));
  const entropy = neg(sum(mul(p, log(add(p, 1e-10)))));
  const used = sum(div(p, add(p, 1e-12))); // ~1 per used code, 0 per unused
  return { perplexity: exp(entropy), usedFraction: div(used, k) };
}
