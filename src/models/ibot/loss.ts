/**
 * The iBOT loss (spec §4) as a pure function: the DINO [CLS] loss across views plus the
 * same-view masked-patch loss, with the teacher's targets entering only through stopGradient.
 * Returns the new centres too, computed from the same teacher outputs after the loss (the loss
 * uses the old centres).
 */
import {
  add,
  ArgumentError,
  cast,
  div,
  equal,
  exp,
  iota,
  l2Normalize,
  log,
  logSoftmax,
  matmul,
  max,
  maximum,
  mean,
  mul,
  softmax,
  sqrt,
  stopGradient,
  sub,
  sum,
  sliceAxis,
  swapAxes,
  type Tensor,
} from "../../dsl/index.js";

/** What ibotLoss takes: teacher and student logits, the patch masks, the centres and the teacher temperatures. */
export interface IbotLossInputs {
  /** Teacher logits for the G global crops, crop-major: [G·B, K] and [G·B, N, K]. */
  readonly teacherCls: Tensor;
  readonly teacherPatch: Tensor;
  /** Student logits: [CLS] of all G + L crops [(G + L)·B, K]; patches of the masked global crops [G·B, N, K]. */
  readonly studentCls: Tensor;
  readonly studentPatch: Tensor;
  /** 1 where a global crop's patch was masked: [G·B, N] (float). */
  readonly masks: Tensor;
  /** Centres [1, K] and [1, 1, K]. */
  readonly center: Tensor;
  readonly center2: Tensor;
  /** Teacher temperatures for this epoch (scalars). */
  readonly teacherTemp: Tensor | number;
  readonly teacherPatchTemp: Tensor | number;
}

/** How the teacher's [CLS] logits become targets: iBOT's centring and sharpening, or Sinkhorn-Knopp (DINOv2). */
export type TeacherTargets = "centering" | "sinkhorn";

/**
 * ibotLoss's settings, iBOT's defaults: student temperature 0.1, centre momenta 0.9, loss weights
 * lambda1 ([CLS]) and lambda2 (patches) 1. `globalCrops` (G) is required.
 */
export interface IbotLossOptions {
  readonly globalCrops: number;
  /** Default "centering" (iBOT). */
  readonly teacherTargets?: TeacherTargets;
  readonly studentTemp?: number;
  readonly centerMomentum?: number;
  readonly centerMomentum2?: number;
  readonly lambda1?: number;
  readonly lambda2?: number;
}

/** ibotLoss's result: the total lambda1·cls + lambda2·patch, both parts (scalars), and the updated centres. */
export interface IbotLoss {
  readonly loss: Tensor;
  readonly cls: Tensor;
  readonly patch: Tensor;
  readonly center: Tensor;
  readonly center2: Tensor;
}

/** Splits a crop-major batch [n·B, ...] into n chunks [B, ...] (PyTorch's chunk). */
export const chunks = (x: Tensor, n: number): Tensor[] => {
  const b = x.shape[0] / n;
  return Array.from({ length: n }, (_, i) => sliceAxis(x, 0, i * b, (i + 1) * b));
};

/** The DINO [CLS] loss across views (spec §4) and the centre that follows it. */
export function clsLoss(
  x: Pick<IbotLossInputs, "teacherCls" | "studentCls" | "center" | "teacherTemp">,
  o: Pick<IbotLossOptions, "globalCrops" | "studentTemp" | "centerMomentum" | "teacherTargets">,
): { cls: Tensor; center: Tensor } {
  const { globalCrops: G, studentTemp = 0.1, centerMomentum = 0.9, teacherTargets = "centering" } = o;
  const B = x.teacherCls.shape[0] / G;
  const V = x.studentCls.shape[0] / B;
  // Teacher targets: centred and sharpened (or balanced by Sinkhorn-Knopp), and cut from the graph.
  const targets = teacherTargets === "sinkhorn" ? sinkhornKnopp(x.teacherCls, x.teacherTemp) : softmax(div(sub(x.teacherCls, x.center), x.teacherTemp), -1);
  const t = chunks(stopGradient(targets), G);
  const s = chunks(logSoftmax(div(x.studentCls, studentTemp), -1), V);
  let total: Tensor | null = null;
  let terms = 0;
  for (let q = 0; q < G; q++)
    for (let v = 0; v < V; v++) {
      if (v === q) continue; // the same view is the patch loss's
      const l = mean(sum(mul(t[q], s[v]), -1));
      total = total ? add(total, l) : l;
      terms++;
    }
  // The centre moves after the loss: EMA of the raw teacher logits' batch mean.
  const center = add(mul(x.center, centerMomentum), mul(mean(stopGradient(x.teacherCls), 0, true), 1 - centerMomentum));
  return { cls: mul(total!, -1 / terms), center };
}

/**
 * Sinkhorn-Knopp targets for logits [B, K] (SwAV; DINOv2's `sinkhorn_knopp_teacher`, 3
 * iterations): exp(logits/T) scaled in turn so that every prototype holds 1/K of the batch and
 * every row sums to 1. Like centring it removes what all rows share, and T alone sets how sharp
 * the targets are; unlike centring it cannot hand most of the batch to a few prototypes, so a low
 * T does not collapse the targets.
 */
export function sinkhornKnopp(logits: Tensor, temp: Tensor | number, iterations = 3): Tensor {
  if (logits.rank !== 2) throw new ArgumentError("sinkhornKnopp", `logits must be [batch, prototypes], got [${logits.shape.join(",")}]`);
  const [b, k] = logits.shape;
  // One constant shift keeps exp finite and cancels in the first normalisation.
  let q = exp(div(sub(logits, max(logits)), temp));
  q = div(q, sum(q));
  for (let i = 0; i < iterations; i++) {
    q = div(q, mul(sum(q, 0, true), k));
    q = div(q, mul(sum(q, -1, true), b));
  }
  return mul(q, b);
}

/**
 * The same-view masked-patch loss (spec §4): the cross-entropy at masked positions, averaged over
 * each image's masked patches, then over all images (unmasked images count as zero).
 */
export function maskedPatchLoss(
  x: Pick<IbotLossInputs, "teacherPatch" | "studentPatch" | "masks" | "center2" | "teacherPatchTemp">,
  o: Pick<IbotLossOptions, "studentTemp" | "centerMomentum2"> = {},
): { patch: Tensor; center2: Tensor } {
  const { studentTemp = 0.1, centerMomentum2 = 0.9 } = o;
  const t = stopGradient(softmax(div(sub(x.teacherPatch, x.center2), x.teacherPatchTemp), -1));
  const ce = sum(mul(t, logSoftmax(div(x.studentPatch, studentTemp), -1)), -1); // [G·B, N], the negative cross-entropy
  // The mean over all G·B images equals the official mean over crops of per-crop means.
  const patch = mul(maskedMean(ce, x.masks), -1);
  const patchMean = mean(mean(stopGradient(x.teacherPatch), 1, true), 0, true); // [1, 1, K]
  const center2 = add(mul(x.center2, centerMomentum2), mul(patchMean, 1 - centerMomentum2));
  return { patch, center2 };
}

/** Per-image mean of v [B, N] over positions where masks [B, N] is 1 (0 for an image without any), then the mean over images. */
export const maskedMean = (v: Tensor, masks: Tensor): Tensor => mean(div(sum(mul(v, masks), -1), maximum(sum(masks, -1), 1)));

/** iBOT's loss: λ1·[CLS] + λ2·patch, and both centres, updated after the loss (the loss uses the old ones). */
export function ibotLoss(x: IbotLossInputs, opts: IbotLossOptions): IbotLoss {
  const { lambda1 = 1, lambda2 = 1 } = opts;
  const { cls, center } = clsLoss(x, opts);
  const { patch, center2 } = maskedPatchLoss(x, opts);
  return { loss: add(mul(cls, lambda1), mul(patch, lambda2)), cls, patch, center, center2 };
}

/**
 * The KoLeo regulariser of DINOv2 (Sablayrolles et al., "Spreading vectors for similarity
 * search"): −mean_i log ‖x_i − x_nn(i)‖ over L2-normalised rows x [B, D], nn(i) being i's nearest
 * other row. It pushes a batch's features apart, against the collapse to one output. Not part of
 * iBOT; an option of this library.
 */
export function koleoLoss(x: Tensor, eps = 1e-8): Tensor {
  const n = l2Normalize(x, -1);
  const b = x.shape[0];
  const self = cast(equal(iota([b, b], 0), iota([b, b], 1)), x.dtype);
  const similarity = sub(matmul(n, swapAxes(n)), mul(self, 4)); // a row never picks itself
  const nearest = max(similarity, -1); // the nearest other row's cosine
  const distance = sqrt(maximum(sub(2, mul(nearest, 2)), eps)); // ‖a − b‖ for unit vectors
  return mul(mean(log(add(distance, eps))), -1);
}
