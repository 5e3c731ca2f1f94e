/**
 * The one iBOT training loop, shared by `pretrain`, `regimes` and the bench: the step compiled once
 * for the chosen backend with its state donated (updated in place on a device), each step's
 * schedule values from per-iteration schedules, and the step's metrics read back to the host.
 */
import { compile, specsOf, type DeviceArray, type GpuContext, type HostArgs, type MatmulTuning, type RunResult } from "../backend/index.js";
import type { TensorSpec } from "../dsl/index.js";
import { ibotStep, scheduleSpec, type IbotBatch, type IbotModelConfig, type IbotSchedule, type IbotState } from "../models/index.js";
import { toHostValues } from "./features.js";

/** A run's per-iteration schedules (one value per step of the whole run), and the steps the prototypes stay frozen. */
export interface Schedules {
  readonly lr: Float64Array;
  readonly weightDecay: Float64Array;
  readonly momentum: Float64Array;
  readonly teacherTemp: Float64Array;
  readonly teacherPatchTemp: Float64Array;
  readonly frozenSteps: number;
}

/** The specs of a batch: globals and masks, and local crops where the model has them. */
export type BatchSpec = { readonly globals: TensorSpec; readonly masks: TensorSpec; readonly locals?: TensorSpec };

type ScheduleSpecs = ReturnType<typeof scheduleSpec>;

/** Host values of one step's schedule, as the compiled step takes them. */
export type ScheduleValues = HostArgs<[ScheduleSpecs]>[0];

/**
 * Step `step`'s (0-based) schedule values: Adam's 1-based step, the prototypes' own step (0 while
 * frozen), and the step's randomness from the run's seed.
 */
export function scheduleValues(s: Schedules, step: number, seed: number): ScheduleValues {
  return {
    lr: s.lr[step],
    weightDecay: s.weightDecay[step],
    momentum: s.momentum[step],
    teacherTemp: s.teacherTemp[step],
    teacherPatchTemp: s.teacherPatchTemp[step],
    step: step + 1,
    lastLayerStep: Math.max(0, step + 1 - s.frozenSteps),
    key: new Int32Array([seed, step]),
  };
}

/** One step's metrics on the host. */
export interface StepMetrics {
  readonly loss: number;
  readonly cls: number;
  readonly patch: number;
  /** Per head: how often each token was the teacher's target this step. */
  readonly tokenCounts: readonly ArrayLike<number>[];
  readonly tokenizer?: number;
  readonly restarts?: number;
  readonly koleo?: number;
  readonly maskedAgreement?: number;
}

type DeviceMetrics = RunResult<ReturnType<typeof ibotStep>>["metrics"];

/** Reads a step's metrics back (freeing them on the device). */
async function readMetrics(m: DeviceMetrics): Promise<StepMetrics> {
  const one = async (x: DeviceArray) => (await toHostValues(x))[0];
  const optional = async <K extends string>(k: K, x: DeviceArray | undefined) => (x ? { [k]: await one(x) } : {}) as Partial<Record<K, number>>;
  return {
    loss: await one(m.loss),
    cls: await one(m.cls),
    patch: await one(m.patch),
    tokenCounts: await Promise.all(m.tokenCounts.map(toHostValues)),
    ...(await optional("tokenizer", m.tokenizer)),
    ...(await optional("restarts", m.restarts)),
    ...(await optional("koleo", m.koleo)),
    ...(await optional("maskedAgreement", m.maskedAgreement)),
  };
}

/** The iBOT step compiled for a backend ("cpu" without a device), taking batches shaped by `batchSpec`; the state is donated. */
export function compileIbotStep(mc: IbotModelConfig, init: RunResult<IbotState>, batchSpec: BatchSpec, gpu: GpuContext | null, tuning?: MatmulTuning) {
  const step = (st: IbotState, b: IbotBatch, s: IbotSchedule) => ibotStep(st, b, s, mc);
  return compile(step, [specsOf(init), batchSpec, scheduleSpec()], { backend: gpu ?? "cpu", donate: [0], ...(tuning ? { tuning } : {}) });
}

/** A host batch for a compiled step. */
export type HostBatch = HostArgs<[BatchSpec]>[0];

/**
 * A training run's compiled step and the state it carries. `step` runs one step and reads its
 * metrics; the state moves on only when the loss is finite (on a device the old state was
 * donated to the step, so a non-finite loss ends the run: its last checkpoint is what is left).
 */
export class IbotTrainer {
  private readonly exe: ReturnType<typeof compileIbotStep>;
  private current: RunResult<IbotState>;

  constructor(mc: IbotModelConfig, init: RunResult<IbotState>, batchSpec: BatchSpec, gpu: GpuContext | null) {
    this.exe = compileIbotStep(mc, init, batchSpec, gpu);
    this.current = init;
  }

  get state(): RunResult<IbotState> {
    return this.current;
  }

  /** Kernels per step and the bytes they plan (see Executable.stats). */
  stats() {
    return this.exe.stats();
  }

  async step(batch: HostBatch, sched: ScheduleValues): Promise<StepMetrics> {
    const r = this.exe.run(this.current, batch, sched);
    const m = await readMetrics(r.metrics);
    if (Number.isFinite(m.loss)) this.current = r.state;
    return m;
  }
}
