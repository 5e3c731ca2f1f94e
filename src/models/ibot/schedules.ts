/**
 * iBOT's schedules, host-side (ibot-spec.md §2, §4, §5), value for value like the official code:
 * `utils.cosine_scheduler` for the learning rate, the weight decay and the teacher momentum (one
 * value per iteration), and the teacher temperatures of `iBOTLoss` (one value per epoch).
 * Arithmetic follows NumPy's order of operations, so values match it up to `Math.cos`'s last bit.
 */

/**
 * `np.linspace(start, stop, num)` (endpoint included): value i is `i·step + start` with
 * step = (stop − start)/(num − 1), the last value is `stop` exactly, and num = 1 gives [start].
 */
export function linspace(start: number, stop: number, num: number): Float64Array {
  if (!Number.isSafeInteger(num) || num < 0) throw new RangeError(`linspace: num must be a non-negative integer, got ${num}`);
  const out = new Float64Array(num);
  const div = num - 1;
  const delta = stop - start;
  const step = delta / div;
  for (let i = 0; i < num; i++) {
    // NumPy's three cases: no step (num = 1), a step that underflows to 0, an ordinary step.
    const offset = div <= 0 ? i * delta : step === 0 ? (i / div) * delta : i * step;
    out[i] = offset + start;
  }
  if (num > 1) out[num - 1] = stop;
  return out;
}

/**
 * `utils.cosine_scheduler`: one value per iteration, epochs·itersPerEpoch in all. The first
 * warmupEpochs·itersPerEpoch values are `linspace(startWarmupValue, base, warmupIters)` (so the
 * last warmup iteration already has `base`); the remaining n iterations i = 0..n−1 follow
 * `final + 0.5·(base − final)·(1 + cos(π·i/n))`, which starts at base and stops one step short
 * of final.
 *
 * `warmupEpochs` may be fractional (for short runs) as long as warmupEpochs·itersPerEpoch is a
 * whole number of iterations; the official code takes whole epochs only.
 */
export function cosineScheduler(base: number, final: number, epochs: number, itersPerEpoch: number, warmupEpochs = 0, startWarmupValue = 0): Float64Array {
  if (!Number.isSafeInteger(epochs) || epochs < 0 || !Number.isSafeInteger(itersPerEpoch) || itersPerEpoch < 0) {
    throw new RangeError(`cosineScheduler: epochs and itersPerEpoch must be non-negative integers, got ${epochs} and ${itersPerEpoch}`);
  }
  const total = epochs * itersPerEpoch;
  const warmupIters = wholeIterations(warmupEpochs * itersPerEpoch);
  if (!(warmupEpochs >= 0) || warmupIters === undefined || warmupIters > total) {
    throw new RangeError(
      `cosineScheduler: warmup of ${warmupEpochs} epochs × ${itersPerEpoch} iterations must be a whole number of iterations within the ${total} of the run`,
    );
  }
  const out = new Float64Array(total);
  if (warmupEpochs > 0) out.set(linspace(startWarmupValue, base, warmupIters));
  const n = total - warmupIters;
  const half = 0.5 * (base - final);
  for (let i = 0; i < n; i++) out[warmupIters + i] = final + half * (1 + Math.cos((Math.PI * i) / n));
  return out;
}

/** x rounded when it is a whole number up to float noise (0.1·30 = 3.0000000000000004), else undefined. */
function wholeIterations(x: number): number | undefined {
  const r = Math.round(x);
  return Math.abs(x - r) <= 1e-9 * Math.max(1, Math.abs(x)) ? r : undefined;
}

/** The length of a run: epochs × iterations per epoch. */
export interface RunLength {
  readonly epochs: number;
  readonly itersPerEpoch: number;
}

/**
 * The teacher's EMA momentum per iteration (`--momentum_teacher`, default 0.996), cosine to `end`
 * (1 in the official code) with no warmup: m_i = end + 0.5·(m − end)·(1 + cos(π·i/T)),
 * T = epochs·itersPerEpoch. A short run may hold it (end = m), so the teacher keeps following the
 * student instead of freezing while the student still improves.
 */
export const teacherMomentumSchedule = ({
  epochs,
  itersPerEpoch,
  momentum = 0.996,
  end = 1,
}: RunLength & { readonly momentum?: number; readonly end?: number }): Float64Array => cosineScheduler(momentum, end, epochs, itersPerEpoch);

/** The learning-rate flags of `main_ibot.py`. */
export interface LearningRateOptions extends RunLength {
  /** The images in one optimizer step over all workers (`batch_size_per_gpu × world`). */
  readonly batchSize: number;
  /** `--lr`, the rate for a batch of 256. Default 5e-4. */
  readonly lr?: number;
  /** `--min_lr`, where the cosine ends. Default 1e-6. */
  readonly minLr?: number;
  /** `--warmup_epochs` of linear warmup from 0. Default 10. */
  readonly warmupEpochs?: number;
}

/** The learning rate per iteration: linear warmup from 0 to lr·batchSize/256, then cosine to minLr. */
export const learningRateSchedule = ({ epochs, itersPerEpoch, batchSize, lr = 5e-4, minLr = 1e-6, warmupEpochs = 10 }: LearningRateOptions): Float64Array =>
  cosineScheduler((lr * batchSize) / 256, minLr, epochs, itersPerEpoch, warmupEpochs);

/** The weight decay per iteration (`--weight_decay` → `--weight_decay_end`, default 0.04 → 0.4), cosine, no warmup. */
export const weightDecaySchedule = ({
  epochs,
  itersPerEpoch,
  weightDecay = 0.04,
  weightDecayEnd = 0.4,
}: RunLength & {
  readonly weightDecay?: number;
  readonly weightDecayEnd?: number;
}): Float64Array => cosineScheduler(weightDecay, weightDecayEnd, epochs, itersPerEpoch);

/**
 * A teacher temperature per epoch (`iBOTLoss.teacher_temp_schedule` and `teacher_temp2_schedule`):
 * `linspace(warmupTemp, temp, warmupEpochs)` then `temp`, so epoch warmupEpochs − 1 already has
 * `temp` (and a one-epoch warmup keeps `warmupTemp` for epoch 0). With predStartEpoch P > 0 (the
 * patch temperature under `--pred_start_epoch`), the first P epochs hold `warmupTemp` and the
 * warmup starts at epoch P. Throws when P + warmupEpochs exceeds `epochs`, as NumPy would.
 */
export function teacherTempSchedule(warmupTemp: number, temp: number, warmupEpochs: number, epochs: number, predStartEpoch = 0): Float64Array {
  for (const [name, value] of [
    ["warmupEpochs", warmupEpochs],
    ["epochs", epochs],
    ["predStartEpoch", predStartEpoch],
  ] as const) {
    if (!Number.isSafeInteger(value) || value < 0) throw new RangeError(`teacherTempSchedule: ${name} must be a non-negative integer, got ${value}`);
  }
  if (predStartEpoch + warmupEpochs > epochs) {
    throw new RangeError(`teacherTempSchedule: ${predStartEpoch} epochs before the warmup plus ${warmupEpochs} of warmup exceed the ${epochs} epochs`);
  }
  const out = new Float64Array(epochs).fill(temp);
  out.fill(warmupTemp, 0, predStartEpoch);
  out.set(linspace(warmupTemp, temp, warmupEpochs), predStartEpoch);
  return out;
}

/**
 * The teacher temperature per iteration. `"epoch"` is the official schedule (`teacherTempSchedule`,
 * whole epochs, one value an epoch); `"iteration"` warms up linearly over
 * warmupEpochs·itersPerEpoch iterations (`linspace`, endpoint included) and then holds `temp`: for
 * short runs, where a jump from 0.04 to 0.07 after one epoch collapsed the [CLS] outputs (RESULTS.md).
 */
export function teacherTempPerIteration(
  warmupTemp: number,
  temp: number,
  warmupEpochs: number,
  { epochs, itersPerEpoch }: RunLength,
  by: "epoch" | "iteration",
): Float64Array {
  const total = epochs * itersPerEpoch;
  if (by === "epoch") {
    const perEpoch = teacherTempSchedule(warmupTemp, temp, warmupEpochs, epochs);
    return Float64Array.from({ length: total }, (_, i) => perEpoch[Math.floor(i / itersPerEpoch)]);
  }
  const warm = wholeIterations(warmupEpochs * itersPerEpoch);
  if (!(warmupEpochs >= 0) || warm === undefined || warm > total) {
    throw new RangeError(
      `teacherTempPerIteration: a warm-up of ${warmupEpochs} epochs × ${itersPerEpoch} iterations must be a whole number of iterations within the ${total} of the run`,
    );
  }
  const out = new Float64Array(total).fill(temp);
  out.set(linspace(warmupTemp, temp, warm));
  return out;
}
