/**
 * What a training run logs: one row a step, token usage and k-NN evaluations by epoch, and where
 * its time went. The metrics log (metricsLog.ts), the plots and the reports read these types.
 */

export interface StepLog {
  readonly epoch: number;
  readonly step: number;
  readonly loss: number;
  readonly cls: number;
  readonly patch: number;
  readonly lr: number;
  readonly imagesPerSecond: number;
  /** Perplexity of this batch's patch tokens (first head): the vocabulary's effective size. */
  readonly tokenPerplexity: number;
  /** VQ mode: the tokenizer terms and the codes restarted this step. */
  readonly tokenizer?: number;
  readonly restarts?: number;
  /** The weighted KoLeo term, when enabled. */
  readonly koleo?: number;
  /** iBOT mode: the fraction of masked patches where the student's top prototype is the teacher's token. */
  readonly maskedAgreement?: number;
}

/** Token usage over an epoch, per head: distinct tokens used and the perplexity of their histogram. */
export interface TokenLog {
  readonly epoch: number;
  readonly used: readonly number[];
  readonly vocabulary: readonly number[];
  readonly perplexity: readonly number[];
}

export interface EvalLog {
  readonly epoch: number;
  /** Training images seen when it was measured (steps × batch). */
  readonly images?: number;
  readonly knnTeacher: number;
  readonly knnStudent: number;
}

/** Where a run's time went: the step's compile, the first step (on lavapipe mostly shader compilation), the median later step. */
export interface RunTimings {
  readonly compileSeconds: number;
  readonly firstStepSeconds: number;
  readonly steadyStepSeconds: number;
}

/** Distinct tokens in a histogram and its perplexity exp(H). */
export function histogramUsage(counts: ArrayLike<number>): { used: number; perplexity: number } {
  let total = 0;
  let used = 0;
  for (let k = 0; k < counts.length; k++) {
    total += counts[k];
    if (counts[k] > 0) used++;
  }
  let h = 0;
  for (let k = 0; k < counts.length; k++) if (counts[k] > 0) h -= (counts[k] / total) * Math.log(counts[k] / total);
  return { used, perplexity: Math.exp(h) };
}
