/**
 * iBOT's networks and one training step as pure functions (spec §1–§5): a student (backbone with
 * a mask token, and head) trained by AdamW against an EMA teacher that sees only unmasked global
 * crops. The whole step — both forwards, the loss, the backward pass, clipping, the optimizer,
 * the centres and the EMA — is one function, so it compiles into one executable.
 */
import { valueAndGrad } from "../../autodiff/index.js";
import {
  add, bernoulli, cast, concat, div, flatten, foldIn, greater, isTensor, layerNorm, minimum, mul, reshape, sliceAxis, split, sqrt, sub, sum,
  unflatten, where, zeros, type Tensor,
} from "../../dsl/index.js";
import { adamw, type AdamState } from "../optim.js";
import { initViT } from "../init.js";
import { addClsAndPositions, block, embedPatches, LN_EPS, type ViTConfig, type ViTParams } from "../vit.js";
import { head, initHead, type HeadConfig, type HeadParams } from "./head.js";
import { ibotLoss } from "./loss.js";
import { interpolatePosEmbed } from "./posembed.js";

export interface IbotModelConfig {
  readonly vit: ViTConfig;
  readonly head: HeadConfig;
  readonly globalCrops: number;
  readonly localCrops: number;
  /** Student stochastic-depth rate (block i drops with linspace(0, rate, depth)[i]). */
  readonly dropPath: number;
  readonly clipGrad: number;
}

export interface StudentParams {
  readonly backbone: ViTParams;
  /** The learned mask token [1, D] (zeros at init). */
  readonly maskedEmbed: Tensor;
  readonly head: HeadParams;
}

export interface TeacherParams {
  readonly backbone: ViTParams;
  readonly head: HeadParams;
}

export interface Centers {
  readonly center: Tensor; // [1, K]
  readonly center2: Tensor; // [1, 1, K]
}

export function initStudent(key: Tensor, cfg: IbotModelConfig): StudentParams {
  const [kb, kh] = split(key);
  return { backbone: initViT(kb, cfg.vit), maskedEmbed: zeros([1, cfg.vit.width]), head: initHead(kh, cfg.head) };
}

/** The teacher starts as a copy of the student (without the mask token). */
export const teacherOf = (s: StudentParams): TeacherParams => ({ backbone: s.backbone, head: s.head });

export const initCenters = (k: number): Centers => ({ center: zeros([1, k]), center2: zeros([1, 1, k]) });

export interface BackboneOptions {
  /** [B, N] float: 1 where the patch is replaced by the mask token. */
  readonly mask?: Tensor;
  readonly maskedEmbed?: Tensor;
  /** Stochastic depth: a key and the rate (0 for the teacher). */
  readonly dropKey?: Tensor;
  readonly dropPath?: number;
}

/** The ViT backbone with iBOT's options: images [B, C, H, W] → normed tokens [B, 1 + N, D]. */
export function backbone(images: Tensor, p: ViTParams, cfg: ViTConfig, o: BackboneOptions = {}): Tensor {
  let patches = embedPatches(images, p, cfg);
  if (o.mask && o.maskedEmbed) {
    // Masked positions take the mask token before [CLS] and positions are added (spec §1.1).
    const m = reshape(o.mask, [...o.mask.shape, 1]);
    patches = add(mul(patches, sub(1, m)), mul(o.maskedEmbed, m));
  }
  const grid = Math.round(Math.sqrt(patches.shape[1]));
  let x = addClsAndPositions(patches, p, interpolatePosEmbed(p.posEmbed, grid));
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
  readonly globals: Tensor; // [G·B, C, H, W]
  readonly locals: Tensor; // [L·B, C, h, w]
  readonly masks: Tensor; // [G·B, N] float
}

export interface IbotSchedule {
  readonly lr: Tensor;
  readonly weightDecay: Tensor;
  readonly momentum: Tensor;
  readonly teacherTemp: Tensor;
  readonly teacherPatchTemp: Tensor;
  /** 1-based optimizer step (Adam bias correction). */
  readonly step: Tensor;
  /** 1 while the prototype layer is frozen (epoch < freeze_last_layer). */
  readonly freezeLastLayer: Tensor;
  /** i32[2]: the step's randomness (stochastic depth). */
  readonly key: Tensor;
}

export interface IbotState {
  readonly student: StudentParams;
  readonly teacher: TeacherParams;
  readonly opt: AdamState<StudentParams>;
  readonly centers: Centers;
}

/** The loss given student parameters (everything else fixed); aux carries what the step needs back. */
export function studentLoss(student: StudentParams, teacher: TeacherParams, centers: Centers, batch: IbotBatch, s: IbotSchedule, cfg: IbotModelConfig) {
  const [kg, kl] = split(s.key);
  const t = headOutputs(backbone(batch.globals, teacher.backbone, cfg.vit), teacher.head);
  const sg = headOutputs(
    backbone(batch.globals, student.backbone, cfg.vit, { mask: batch.masks, maskedEmbed: student.maskedEmbed, dropKey: kg, dropPath: cfg.dropPath }),
    student.head,
  );
  const parts = [sg.cls];
  if (cfg.localCrops > 0) {
    const localTokens = backbone(batch.locals, student.backbone, cfg.vit, { dropKey: kl, dropPath: cfg.dropPath });
    const [b, , d] = localTokens.shape;
    parts.push(head(reshape(sliceAxis(localTokens, 1, 0, 1), [b, d]), student.head));
  }
  const studentCls = concat(parts, 0);
  const l = ibotLoss(
    { teacherCls: t.cls, teacherPatch: t.patch, studentCls, studentPatch: sg.patch, masks: batch.masks, center: centers.center, center2: centers.center2, teacherTemp: s.teacherTemp, teacherPatchTemp: s.teacherPatchTemp },
    { globalCrops: cfg.globalCrops },
  );
  return [l.loss, { cls: l.cls, patch: l.patch, center: l.center, center2: l.center2, teacherCls: t.cls, studentCls: sg.cls }] as const;
}

/** Leaves that get weight decay: everything but biases and other 1-D tensors (spec §5). */
const decays = (t: Tensor) => t.rank > 1;

/** Per-tensor gradient clipping (the official utils.clip_gradients): g·min(1, c/(‖g‖ + 1e-6)). */
const clip = (g: Tensor, c: number) => mul(g, minimum(div(c, add(sqrt(sum(mul(g, g))), 1e-6)), 1));

/** One full iBOT training step. */
export function ibotStep(state: IbotState, batch: IbotBatch, s: IbotSchedule, cfg: IbotModelConfig) {
  const [[loss, aux], grads] = valueAndGrad(
    (st: StudentParams) => studentLoss(st, state.teacher, state.centers, batch, s, cfg),
    { hasAux: true },
  )(state.student);
  const { leaves: gLeaves, def } = flatten(grads, isTensor);
  const clipped = unflatten(def, gLeaves.map((g) => clip(g, cfg.clipGrad))) as unknown as StudentParams;
  const { leaves: pLeaves } = flatten(state.student, isTensor);
  const next = adamw(state.student, clipped, state.opt, { lr: s.lr, weightDecay: s.weightDecay, step: s.step }, (i) => decays(pLeaves[i]));
  // freeze_last_layer: the prototypes get no update at all (no gradient, no decay, moments kept).
  const frozen = greater(s.freezeLastLayer, 0);
  const keepIfFrozen = <T>(updated: T, old: T): T => {
    const u = updated as unknown as { head: HeadParams };
    const o = old as unknown as { head: HeadParams };
    const v = where(frozen, o.head.lastLayer.v, u.head.lastLayer.v);
    return { ...(updated as object), head: { ...u.head, lastLayer: { v } } } as T;
  };
  const student = keepIfFrozen(next.params, state.student);
  const opt = { m: keepIfFrozen(next.state.m, state.opt.m), v: keepIfFrozen(next.state.v, state.opt.v) };
  // EMA of the teacher over the parameters both networks have.
  const ema = (t: Tensor, st: Tensor) => add(mul(t, s.momentum), mul(st, sub(1, s.momentum)));
  const teacher: TeacherParams = {
    backbone: zipTrees(state.teacher.backbone, student.backbone, ema),
    head: zipTrees(state.teacher.head, student.head, ema),
  };
  return {
    state: { student, teacher, opt, centers: { center: aux.center, center2: aux.center2 } },
    metrics: { loss, cls: aux.cls, patch: aux.patch },
  };
}

function zipTrees<T>(a: T, b: T, f: (x: Tensor, y: Tensor) => Tensor): T {
  const { leaves: as, def } = flatten(a, isTensor);
  const bs = flatten(b, isTensor).leaves;
  return unflatten(def, as.map((x, i) => f(x, bs[i]))) as unknown as T;
}
