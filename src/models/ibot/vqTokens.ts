/**
 * The seed's variant of iBOT's patch targets (spec §11): instead of the teacher's soft prototype
 * distribution, each masked patch must predict a hard token, the nearest entry of a VQ codebook
 * to the momentum tokenizer's feature. The momentum tokenizer is the teacher (an EMA of the
 * student, codebooks included); the online codebook learns from the student's features of the
 * patches it sees, by the VQ-VAE codebook/commitment losses or by EMA updates, and unused codes
 * are restarted. Several codebooks give several prediction heads over the same encoder output.
 */
import {
  add,
  argmin,
  cast,
  div,
  gather,
  l2Normalize,
  less,
  linear,
  logSoftmax,
  mul,
  normal,
  oneHot,
  reshape,
  split,
  stopGradient,
  sub,
  sum,
  uniform,
  where,
  zeros,
  type Tensor,
} from "../../dsl/index.js";
import { initLinear } from "../init.js";
import { emaCodebookUpdate, quantize, squaredDistances, vqLoss, type EmaCodebook } from "../vq.js";
import type { LinearParams } from "../vit.js";
import { maskedMean } from "./loss.js";

/** The VQ tokenizer variant's settings (spec §11): vocabulary per head, loss weights and placement, EMA mode, restarts. */
export interface VqTokenizerConfig {
  /** Vocabulary size of each prediction head (one codebook each). */
  readonly codebooks: readonly number[];
  /** Commitment weight β. */
  readonly beta: number;
  /** "standard" (VQ-VAE: β on the commitment term) or "seed" (β on the codebook term). */
  readonly placement: "standard" | "seed";
  /** Weight α of the tokenizer terms in L = L_cls + L_recon + α·L_vq. */
  readonly alpha: number;
  /** EMA codebook updates (Sonnet's VectorQuantizerEMA) instead of the codebook loss. */
  readonly ema: boolean;
  /** Decay γ of the EMA codebook and of the usage counts that decide restarts. */
  readonly decay: number;
  /** A code whose EMA assignment count per step falls below this is restarted (0: never). */
  readonly deadThreshold: number;
}

/** Learned by the student and averaged into the teacher (the momentum tokenizer). */
export interface VqParams {
  /** One codebook [K_h, bottleneck] per head, rows are codes. */
  readonly codebooks: readonly Tensor[];
  /** One prediction layer bottleneck → K_h per head. */
  readonly predictors: readonly LinearParams[];
}

/** Step-to-step statistics: EMA assignment counts per code (for restarts), and in EMA mode the EMA codebook statistics. */
export interface VqState {
  readonly usage: readonly Tensor[];
  readonly ema?: readonly EmaCodebook[];
}

/** Fresh tokenizer parameters for `dim`-wide features: random unit-vector codebooks and initLinear prediction heads. */
export function initVq(key: Tensor, dim: number, cfg: VqTokenizerConfig): VqParams {
  const keys = split(key, 2 * cfg.codebooks.length);
  return {
    // Codes start as random unit vectors, like the L2-normalised features they quantise.
    codebooks: cfg.codebooks.map((k, h) => l2Normalize(normal(keys[2 * h], [k, dim]), -1)),
    predictors: cfg.codebooks.map((k, h) => initLinear(keys[2 * h + 1], dim, k)),
  };
}

/**
 * Usage starts at the restart threshold, so a code that no feature picks in the first step is
 * restarted at once on a feature of the batch (a data-dependent initialisation).
 */
export function initVqState(params: VqParams, cfg: VqTokenizerConfig): VqState {
  return {
    usage: params.codebooks.map((e) => add(zeros([e.shape[0]]), cfg.deadThreshold)),
    ...(cfg.ema ? { ema: params.codebooks.map((e) => ({ counts: add(zeros([e.shape[0]]), 1), sums: e })) } : {}),
  };
}

/** What vqPatchLoss takes: student and teacher bottleneck features, the patch masks, and both tokenizers. */
export interface VqPatchInputs {
  /** Student bottleneck features of the masked global crops' patches [G·B, N, d]. */
  readonly studentZ: Tensor;
  /** Teacher (momentum tokenizer) features of the unmasked crops [G·B, N, d]. */
  readonly teacherZ: Tensor;
  readonly masks: Tensor; // [G·B, N], 1 where masked
  readonly student: VqParams;
  readonly teacher: VqParams;
}

/** vqPatchLoss's result: the total, its reconstruction and tokenizer terms, the target tokens, and the codebook update's inputs. */
export interface VqPatchLoss {
  /** L_recon + α·L_vq, averaged over heads. */
  readonly loss: Tensor;
  /** −log p(q_i | h_i) averaged over each image's masked patches, then over images and heads. */
  readonly recon: Tensor;
  readonly tokenizer: Tensor;
  /** The target tokens of each head, i32 [G·B, N]. */
  readonly targets: readonly Tensor[];
  /** What the codebook update needs, cut from the graph: the visible student features and their codes. */
  readonly online: { readonly z: Tensor; readonly weights: Tensor; readonly indices: readonly Tensor[]; readonly teacherZ: Tensor };
}

/** The reconstruction loss against the momentum tokenizer's hard tokens and the tokenizer terms. */
export function vqPatchLoss(x: VqPatchInputs, cfg: VqTokenizerConfig): VqPatchLoss {
  const [gb, n, d] = x.studentZ.shape;
  const zs = reshape(x.studentZ, [gb * n, d]);
  const zt = stopGradient(reshape(x.teacherZ, [gb * n, d]));
  const visible = reshape(sub(1, x.masks), [gb * n]);
  const heads = cfg.codebooks.map((k, h) => {
    const target = argmin(squaredDistances(zt, stopGradient(x.teacher.codebooks[h])), -1);
    const logp = logSoftmax(linear(zs, x.student.predictors[h].w, x.student.predictors[h].b), -1);
    const picked = reshape(sum(mul(logp, oneHot(target, k, logp.dtype)), -1), [gb, n]);
    const recon = mul(maskedMean(picked, x.masks), -1);
    // The online tokenizer: the student's features of the patches it sees, against its own codebook.
    const q = quantize(zs, x.student.codebooks[h]);
    const terms = vqLoss(zs, q.codes, { beta: cfg.beta, placement: cfg.placement }, visible);
    const tokenizer = cfg.ema ? mul(terms.commitment, cfg.beta) : terms.loss; // EMA mode moves codes without gradients
    return { recon, tokenizer, target: reshape(target, [gb, n]), indices: q.indices };
  });
  const avg = (f: (h: (typeof heads)[number]) => Tensor) =>
    div(
      heads.map(f).reduce((a, b) => add(a, b)),
      heads.length,
    );
  const recon = avg((h) => h.recon);
  const tokenizer = avg((h) => h.tokenizer);
  return {
    loss: add(recon, mul(tokenizer, cfg.alpha)),
    recon,
    tokenizer,
    targets: heads.map((h) => h.target),
    online: { z: stopGradient(zs), weights: visible, indices: heads.map((h) => stopGradient(h.indices)), teacherZ: zt },
  };
}

/**
 * After the optimizer step: EMA codebook updates (when configured), usage counts, and restarts of
 * dead codes, each reset to a random teacher feature of this batch (Jukebox's random restarts).
 */
export function updateCodebooks(
  codebooks: readonly Tensor[],
  state: VqState,
  online: VqPatchLoss["online"],
  key: Tensor,
  cfg: VqTokenizerConfig,
): { codebooks: Tensor[]; state: VqState; restarts: Tensor } {
  const keys = split(key, cfg.codebooks.length);
  const rows = online.teacherZ.shape[0];
  const out = codebooks.map((e, h) => {
    const k = e.shape[0];
    const counts = sum(mul(oneHot(online.indices[h], k, online.z.dtype), reshape(online.weights, [rows, 1])), 0);
    const usage = add(mul(state.usage[h], cfg.decay), mul(counts, 1 - cfg.decay));
    const ema = cfg.ema && state.ema ? emaCodebookUpdate(state.ema[h], online.z, online.indices[h], cfg.decay, 1e-5, online.weights) : null;
    const updated = ema ? ema.codebook : e;
    if (cfg.deadThreshold <= 0) return { codebook: updated, usage, ema: ema?.state, restarted: zeros([]) };
    const dead = less(usage, cfg.deadThreshold); // [K]
    const pickRows = cast(mul(uniform(keys[h], [k]), rows - 1e-3), "i32"); // truncation: uniform in 0..rows−1
    const fresh = gather(online.teacherZ, pickRows, 0); // [K, d]
    const deadCol = reshape(dead, [k, 1]);
    const grace = 2 * cfg.deadThreshold; // a restarted code has ~ln 2/(1 − γ) steps to win features
    return {
      restarted: sum(cast(dead, "f32")),
      codebook: where(deadCol, fresh, updated),
      usage: where(dead, grace, usage),
      ema: ema ? { counts: where(dead, grace, ema.state.counts), sums: where(deadCol, mul(fresh, grace), ema.state.sums) } : undefined,
    };
  });
  return {
    codebooks: out.map((o) => o.codebook),
    state: { usage: out.map((o) => o.usage), ...(cfg.ema ? { ema: out.map((o) => o.ema!) } : {}) },
    restarts: out.map((o) => o.restarted).reduce((a, b) => add(a, b)),
  };
}
