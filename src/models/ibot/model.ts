/**
 * iBOT's networks and one training step as pure functions (spec §1–§5): a student (backbone with
 * a mask token, and head) trained by AdamW against an EMA teacher that sees only unmasked global
 * crops. The whole step — both forwards, the loss, the backward pass, clipping, the optimizer,
 * the centres and the EMA — is one function, so it compiles into one executable.
 */
import { valueAndGrad } from "../../autodiff/index.js";
import {
  add,
  argmax,
  argmin,
  bernoulli,
  cast,
  concat,
  div,
  equal,
  flatten,
  foldIn,
  isTensor,
  layerNorm,
  less,
  maximum,
  minimum,
  mul,
  oneHot,
  reshape,
  sliceAxis,
  split,
  sqrt,
  sub,
  sum,
  unflatten,
  where,
  zeros,
  linear,
  logSoftmax,
  spec,
  ArgumentError,
  ShapeError,
  type Tensor,
  type TensorSpec,
} from "../../dsl/index.js";
import { adamInit, adamw, type AdamState } from "../optim.js";
import { squaredDistances } from "../vq.js";
import { initViT } from "../init.js";
import { addClsAndPositions, block, embedPatches, LN_EPS, type ViTConfig, type ViTParams } from "../vit.js";
import { bottleneck, head, initHead, prototypeLogits, type HeadConfig, type HeadParams } from "./head.js";
import { chunks, clsLoss, koleoLoss, maskedPatchLoss, type TeacherTargets } from "./loss.js";
import { initVq, initVqState, updateCodebooks, vqPatchLoss, type VqParams, type VqPatchLoss, type VqState, type VqTokenizerConfig } from "./vqTokens.js";
import { interpolatePosEmbed } from "./posembed.js";

/**
 * An iBOT model and its loss: the ViT and head, G global and L local crops, stochastic depth, the
 * per-tensor gradient-clipping norm, and the optional DINOv2/VQ variations (absent: plain iBOT).
 */
export interface IbotModelConfig {
  readonly vit: ViTConfig;
  readonly head: HeadConfig;
  readonly globalCrops: number;
  readonly localCrops: number;
  /** Student stochastic-depth rate (block i drops with linspace(0, rate, depth)[i]). */
  readonly dropPath: number;
  readonly clipGrad: number;
  /** Weight of DINOv2's KoLeo regulariser on the student's [CLS] tokens of each global crop (0 or absent: off, as in iBOT). */
  readonly koleo?: number;
  /** Weights of the [CLS] and patch losses (official `--lambda1`, `--lambda2`; absent: 1). */
  readonly lambda1?: number;
  readonly lambda2?: number;
  /** How the teacher's [CLS] logits become targets (absent: iBOT's centring). */
  readonly teacherTargets?: TeacherTargets;
  /** The seed's VQ tokenizer for the patch targets (absent: iBOT's soft prototype targets). */
  readonly vq?: VqTokenizerConfig;
}

/** The student's trained parameters: backbone, mask token and head (and the VQ tokenizer's in VQ mode). */
export interface StudentParams {
  readonly backbone: ViTParams;
  /** The learned mask token [1, D] (zeros at init). */
  readonly maskedEmbed: Tensor;
  readonly head: HeadParams;
  /** VQ mode: codebooks and prediction heads. */
  readonly vq?: VqParams;
}

/** The EMA teacher's parameters: the student's without the mask token, never trained by gradients. */
export interface TeacherParams {
  readonly backbone: ViTParams;
  readonly head: HeadParams;
  /** VQ mode: the momentum tokenizer's codebooks (and an EMA copy of the prediction heads). */
  readonly vq?: VqParams;
}

/** The teacher's running centres of [CLS] and patch logits, subtracted before sharpening (DINO's centring). */
export interface Centers {
  readonly center: Tensor; // [1, K]
  readonly center2: Tensor; // [1, 1, K]
}

/** Fresh student parameters: an initialised ViT and head, a zero mask token, and VQ codebooks when `cfg.vq` is set. */
export function initStudent(key: Tensor, cfg: IbotModelConfig): StudentParams {
  const [kb, kh, kv] = split(key, 3);
  const p = { backbone: initViT(kb, cfg.vit), maskedEmbed: zeros([1, cfg.vit.width]), head: initHead(kh, cfg.head) };
  return cfg.vq ? { ...p, vq: initVq(kv, cfg.head.bottleneckDim, cfg.vq) } : p;
}

/** The teacher starts as a copy of the student (without the mask token). */
export const teacherOf = (s: StudentParams): TeacherParams => ({ backbone: s.backbone, head: s.head, ...(s.vq ? { vq: s.vq } : {}) });

/** A fresh training state: the student, its copy as teacher, zero moments and centres, and VQ statistics in VQ mode. */
export function initIbotState(key: Tensor, cfg: IbotModelConfig): IbotState {
  const student = initStudent(key, cfg);
  const base = { student, teacher: teacherOf(student), opt: adamInit(student), centers: initCenters(cfg.head.outDim) };
  return cfg.vq && student.vq ? { ...base, vq: initVqState(student.vq, cfg.vq) } : base;
}

/**
 * The teacher's token for every patch of `images`, i32 [B, N]: its most probable prototype (iBOT)
 * or the nearest code of its first codebook (VQ).
 */
export function teacherTokens(images: Tensor, teacher: TeacherParams, cfg: IbotModelConfig): Tensor {
  const z = patchTokens(bottleneck(backbone(images, teacher.backbone, cfg.vit), teacher.head));
  if (!teacher.vq) return argmax(prototypeLogits(z, teacher.head), -1);
  const [b, n, d] = z.shape;
  return reshape(argmin(squaredDistances(reshape(z, [b * n, d]), teacher.vq.codebooks[0]), -1), [b, n]);
}

/** Zero centres for K prototypes: [1, K] and [1, 1, K]. */
export const initCenters = (k: number): Centers => ({ center: zeros([1, k]), center2: zeros([1, 1, k]) });

/** backbone's optional inputs: a patch mask with the mask token, and stochastic depth (off when absent). */
export interface BackboneOptions {
  /** [B, N] float: 1 where the patch is replaced by the mask token. */
  readonly mask?: Tensor;
  readonly maskedEmbed?: Tensor;
  /** Stochastic depth: a key and the rate (0 for the teacher). */
  readonly dropKey?: Tensor;
  readonly dropPath?: number;
}

/** Positional embeddings for n patches: images resize theirs bicubically to other grids; series take windows of the trained length. */
function positions(posEmbed: Tensor, n: number, cfg: ViTConfig): Tensor {
  if (cfg.dims !== 1) return interpolatePosEmbed(posEmbed, Math.round(Math.sqrt(n)));
  if (n + 1 !== posEmbed.shape[1])
    throw new ShapeError(
      "backbone",
      [posEmbed.shape],
      `a series of ${n} patches, but the positional embedding was made for ${posEmbed.shape[1] - 1}`,
      "Use windows of the trained length",
    );
  return posEmbed;
}

/** The ViT backbone with iBOT's options: images [B, C, H, W] (or series [B, C, L]) → normed tokens [B, 1 + N, D]. */
export function backbone(images: Tensor, p: ViTParams, cfg: ViTConfig, o: BackboneOptions = {}): Tensor {
  let patches = embedPatches(images, p, cfg);
  if (o.mask && o.maskedEmbed) {
    // Masked positions take the mask token before [CLS] and positions are added (spec §1.1).
    const m = reshape(o.mask, [...o.mask.shape, 1]);
    patches = add(mul(patches, sub(1, m)), mul(o.maskedEmbed, m));
  }
  let x = addClsAndPositions(patches, p, positions(p.posEmbed, patches.shape[1], cfg));
  const b = images.shape[0];
  p.blocks.forEach((blk, i) => {
    const rate = o.dropKey && o.dropPath ? (o.dropPath * i) / Math.max(1, p.blocks.length - 1) : 0;
    if (rate === 0) x = block(x, blk, cfg.heads);
    else {
      // Per-sample stochastic depth: kept samples are scaled by 1/keep.
      const keep = (k: number) => mul(cast(bernoulli(foldIn(o.dropKey!, 2 * i + k), 1 - rate, [b, 1, 1]), "f32"), 1 / (1 - rate));
      x = block(x, blk, cfg.heads, [keep(0), keep(1)]);
    }
  });
  return layerNorm(x, p.norm.g, p.norm.b, LN_EPS);
}

/** Head logits for every token: [B, 1 + N, D] → [CLS] [B, K] and patches [B, N, K]. */
export function headOutputs(tokens: Tensor, h: HeadParams): { cls: Tensor; patch: Tensor } {
  const logits = head(tokens, h);
  const [b, t, k] = logits.shape;
  return { cls: reshape(sliceAxis(logits, 1, 0, 1), [b, k]), patch: sliceAxis(logits, 1, 1, t) };
}

/** The per-step inputs: crops (crop-major), masks of the global crops, and the schedules' values. */
export interface IbotBatch {
  readonly globals: Tensor; // [G·B, C, H, W], or [G·B, C, L] for series
  /** Absent when the model has no local crops. */
  readonly locals?: Tensor; // [L·B, C, h, w]
  readonly masks: Tensor; // [G·B, N] float
}

/** One step's scheduled values as scalar tensors (so they change without recompiling): see scheduleSpec. */
export interface IbotSchedule {
  readonly lr: Tensor;
  readonly weightDecay: Tensor;
  readonly momentum: Tensor;
  readonly teacherTemp: Tensor;
  readonly teacherPatchTemp: Tensor;
  /** 1-based optimizer step (Adam bias correction). */
  readonly step: Tensor;
  /**
   * The prototypes' own 1-based optimizer step, 0 while they are frozen (epoch < freeze_last_layer).
   * Frozen prototypes get no gradient, so PyTorch's AdamW takes no step for them and their bias
   * correction starts when they thaw; with the run's step it would start near 1 − β₂^t ≫ 1 − β₂
   * and make their first updates several times too large.
   */
  readonly lastLayerStep: Tensor;
  /** i32[2]: the step's randomness (stochastic depth). */
  readonly key: Tensor;
}

/** Specs of the per-step schedule values (scalars, and the step's i32[2] key): what a compiled `ibotStep` takes as its third argument. */
export const scheduleSpec = (): { readonly [K in keyof IbotSchedule]: TensorSpec } => ({
  lr: spec([]),
  weightDecay: spec([]),
  momentum: spec([]),
  teacherTemp: spec([]),
  teacherPatchTemp: spec([]),
  step: spec([]),
  lastLayerStep: spec([]),
  key: spec([2], "i32"),
});

/** Everything a training step carries to the next: student, teacher, AdamW moments, centres (and VQ statistics). */
export interface IbotState {
  readonly student: StudentParams;
  readonly teacher: TeacherParams;
  readonly opt: AdamState<StudentParams>;
  readonly centers: Centers;
  /** VQ mode: usage counts and EMA codebook statistics. */
  readonly vq?: VqState;
}

/** studentLoss's auxiliary outputs (not differentiated): the loss terms, new centres, teacher tokens and diagnostics. */
export interface StudentLossAux {
  readonly cls: Tensor;
  /** iBOT: the masked-patch loss; VQ: the reconstruction loss. */
  readonly patch: Tensor;
  readonly center: Tensor;
  readonly center2: Tensor;
  /** The patch tokens of the teacher's view (the targets), i32 [G·B, N], one per head. */
  readonly tokens: readonly Tensor[];
  /** VQ mode: the tokenizer terms and what the codebook update needs. */
  readonly tokenizer?: Tensor;
  readonly online?: VqPatchLoss["online"];
  /** The weighted KoLeo term, when enabled. */
  readonly koleo?: Tensor;
  /** iBOT mode: the fraction of masked patches whose student top prototype is the teacher's token. */
  readonly maskedAgreement?: Tensor;
}

/** The fraction of masked positions (masks [B, N] float) where two token maps [B, N] agree. */
const agreement = (a: Tensor, b: Tensor, masks: Tensor): Tensor => div(sum(mul(cast(equal(a, b), "f32"), masks)), maximum(sum(masks), 1));

const firstToken = (z: Tensor) => reshape(sliceAxis(z, 1, 0, 1), [z.shape[0], z.shape[2]]);
const patchTokens = (z: Tensor) => sliceAxis(z, 1, 1, z.shape[1]);

/**
 * The loss given student parameters (everything else fixed): the [CLS] loss across views plus,
 * in iBOT mode, the masked-patch loss against the teacher's soft tokens, or, in VQ mode, the
 * reconstruction of the momentum tokenizer's hard tokens and the tokenizer terms. Aux carries what
 * the step needs back: loss parts, new centres, each step's patch tokens, and the VQ features.
 */
export function studentLoss(
  student: StudentParams,
  teacher: TeacherParams,
  centers: Centers,
  batch: IbotBatch,
  s: IbotSchedule,
  cfg: IbotModelConfig,
): readonly [Tensor, StudentLossAux] {
  const [kg, kl] = split(s.key);
  const tz = bottleneck(backbone(batch.globals, teacher.backbone, cfg.vit), teacher.head);
  const studentTokens = backbone(batch.globals, student.backbone, cfg.vit, {
    mask: batch.masks,
    maskedEmbed: student.maskedEmbed,
    dropKey: kg,
    dropPath: cfg.dropPath,
  });
  const sz = bottleneck(studentTokens, student.head);
  // KoLeo (an option, off in iBOT): spread each global crop's [CLS] tokens over the batch.
  const spread = cfg.koleo
    ? mul(
        chunks(firstToken(studentTokens), cfg.globalCrops)
          .map((c) => koleoLoss(c))
          .reduce((a, b) => add(a, b)),
        cfg.koleo / cfg.globalCrops,
      )
    : undefined;
  // λ1·L_cls + λ2·(patch part) + KoLeo; the logged parts stay unweighted, as the official ones.
  const total = (cls: Tensor, patch: Tensor) => {
    const l = add(mul(cls, cfg.lambda1 ?? 1), mul(patch, cfg.lambda2 ?? 1));
    return spread ? add(l, spread) : l;
  };
  const parts = [prototypeLogits(firstToken(sz), student.head)];
  if (cfg.localCrops > 0) {
    if (!batch.locals) throw new ArgumentError("studentLoss", `the model has ${cfg.localCrops} local crops but the batch has no locals`);
    const localTokens = backbone(batch.locals, student.backbone, cfg.vit, { dropKey: kl, dropPath: cfg.dropPath });
    parts.push(head(firstToken(localTokens), student.head));
  }
  const { cls, center } = clsLoss(
    { teacherCls: prototypeLogits(firstToken(tz), teacher.head), studentCls: concat(parts, 0), center: centers.center, teacherTemp: s.teacherTemp },
    { globalCrops: cfg.globalCrops, ...(cfg.teacherTargets ? { teacherTargets: cfg.teacherTargets } : {}) },
  );
  if (!cfg.vq || !student.vq || !teacher.vq) {
    const teacherPatch = prototypeLogits(patchTokens(tz), teacher.head);
    const studentPatch = prototypeLogits(patchTokens(sz), student.head);
    const { patch, center2 } = maskedPatchLoss({
      teacherPatch,
      studentPatch,
      masks: batch.masks,
      center2: centers.center2,
      teacherPatchTemp: s.teacherPatchTemp,
    });
    // The patch token of a patch is the teacher's most probable prototype.
    const tokens = [argmax(sub(teacherPatch, centers.center2), -1)];
    const maskedAgreement = agreement(argmax(studentPatch, -1), tokens[0], batch.masks);
    return [total(cls, patch), { cls, patch, center, center2, tokens, maskedAgreement, ...(spread ? { koleo: spread } : {}) }];
  }
  const v = vqPatchLoss({ studentZ: patchTokens(sz), teacherZ: patchTokens(tz), masks: batch.masks, student: student.vq, teacher: teacher.vq }, cfg.vq);
  return [
    total(cls, v.loss),
    {
      cls,
      patch: v.recon,
      tokenizer: v.tokenizer,
      center,
      center2: centers.center2,
      tokens: v.targets,
      online: v.online,
      ...(spread ? { koleo: spread } : {}),
    },
  ];
}

/** Leaves that get weight decay: everything but biases and other 1-D tensors (spec §5), and codebooks. */
const decays = (t: Tensor, codebooks: ReadonlySet<Tensor>) => t.rank > 1 && !codebooks.has(t);

/** Per-tensor gradient clipping (the official utils.clip_gradients): g·min(1, c/(‖g‖ + 1e-6)). */
const clip = (g: Tensor, c: number) => mul(g, minimum(div(c, add(sqrt(sum(mul(g, g))), 1e-6)), 1));

/** One full iBOT training step. */
export function ibotStep(state: IbotState, batch: IbotBatch, s: IbotSchedule, cfg: IbotModelConfig) {
  const [[loss, aux], grads] = valueAndGrad((st: StudentParams) => studentLoss(st, state.teacher, state.centers, batch, s, cfg), { hasAux: true })(
    state.student,
  );
  const { leaves: gLeaves, def } = flatten(grads, isTensor);
  const clipped = unflatten(
    def,
    gLeaves.map((g) => clip(g, cfg.clipGrad)),
  ) as unknown as StudentParams;
  const { leaves: pLeaves } = flatten(state.student, isTensor);
  const codebooks = new Set(state.student.vq?.codebooks ?? []);
  const prototypes = pLeaves.indexOf(state.student.head.lastLayer.v);
  const leafStep = (i: number) => (i === prototypes ? maximum(s.lastLayerStep, 1) : undefined);
  const next = adamw(state.student, clipped, state.opt, { lr: s.lr, weightDecay: s.weightDecay, step: s.step, leafStep }, (i) => decays(pLeaves[i], codebooks));
  // freeze_last_layer: the prototypes get no update at all (no gradient, no decay, moments kept).
  const frozen = less(s.lastLayerStep, 1);
  const keepIfFrozen = <T>(updated: T, old: T): T => {
    const u = updated as unknown as { head: HeadParams };
    const o = old as unknown as { head: HeadParams };
    const v = where(frozen, o.head.lastLayer.v, u.head.lastLayer.v);
    return { ...(updated as object), head: { ...u.head, lastLayer: { v } } } as T;
  };
  const updated = keepIfFrozen(next.params, state.student);
  const opt = { m: keepIfFrozen(next.state.m, state.opt.m), v: keepIfFrozen(next.state.v, state.opt.v) };
  // VQ mode: EMA codebook updates and dead-code restarts act on the optimizer's result.
  const vq = cfg.vq && updated.vq && state.vq && aux.online ? updateCodebooks(updated.vq.codebooks, state.vq, aux.online, foldIn(s.key, 7), cfg.vq) : undefined;
  const student: StudentParams = vq && updated.vq ? { ...updated, vq: { ...updated.vq, codebooks: vq.codebooks } } : updated;
  // EMA of the teacher over the parameters both networks have.
  const ema = (t: Tensor, st: Tensor) => add(mul(t, s.momentum), mul(st, sub(1, s.momentum)));
  const teacher: TeacherParams = {
    backbone: zipTrees(state.teacher.backbone, student.backbone, ema),
    head: zipTrees(state.teacher.head, student.head, ema),
    ...(state.teacher.vq && student.vq ? { vq: zipTrees(state.teacher.vq, student.vq, ema) } : {}),
  };
  // Per-step histograms of the patch tokens (the teacher's, i.e. the targets), one per head.
  const vocabulary = (h: number) => (cfg.vq ? cfg.vq.codebooks[h] : cfg.head.outDim);
  const tokenCounts = aux.tokens.map((t, h) => sum(oneHot(reshape(t, [t.size]), vocabulary(h)), 0));
  return {
    state: { student, teacher, opt, centers: { center: aux.center, center2: aux.center2 }, ...(vq ? { vq: vq.state } : {}) },
    metrics: {
      loss,
      cls: aux.cls,
      patch: aux.patch,
      tokenCounts,
      ...(aux.tokenizer ? { tokenizer: aux.tokenizer } : {}),
      ...(aux.koleo ? { koleo: aux.koleo } : {}),
      ...(aux.maskedAgreement ? { maskedAgreement: aux.maskedAgreement } : {}),
      ...(vq ? { restarts: vq.restarts } : {}),
    },
  };
}

function zipTrees<T>(a: T, b: T, f: (x: Tensor, y: Tensor) => Tensor): T {
  const { leaves: as, def } = flatten(a, isTensor);
  const bs = flatten(b, isTensor).leaves;
  return unflatten(
    def,
    as.map((x, i) => f(x, bs[i])),
  ) as unknown as T;
}

/**
 * The student's prediction of every patch's token from its context: with `masks` [B, N] hiding
 * patches, log p(k | visible patches) [B, N, K] over the K tokens (meaningful where masked). iBOT
 * mode reads the prototypes at the student temperature 0.1, VQ mode the first prediction head.
 */
export function tokenPrediction(inputs: Tensor, masks: Tensor, student: StudentParams, cfg: IbotModelConfig): Tensor {
  const z = patchTokens(bottleneck(backbone(inputs, student.backbone, cfg.vit, { mask: masks, maskedEmbed: student.maskedEmbed }), student.head));
  const logits = student.vq ? linear(z, student.vq.predictors[0].w, student.vq.predictors[0].b) : div(prototypeLogits(z, student.head), 0.1);
  return logSoftmax(logits, -1);
}

/**
 * How expected each patch's token is from its context: log p(teacher's token | visible patches)
 * [B, N] under tokenPrediction (meaningful where masked).
 */
export function tokenLogProb(inputs: Tensor, masks: Tensor, student: StudentParams, teacher: TeacherParams, cfg: IbotModelConfig): Tensor {
  const target = teacherTokens(inputs, teacher, cfg);
  const logp = tokenPrediction(inputs, masks, student, cfg);
  return sum(mul(logp, oneHot(target, logp.shape[2], logp.dtype)), -1);
}
