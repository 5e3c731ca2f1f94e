/**
 * The iBOT loss (spec §4) as a pure function: the DINO [CLS] loss across views plus the
 * same-view masked-patch loss, with the teacher's targets entering only through stopGradient.
 * Returns the new centres too, computed from the same teacher outputs after the loss (the loss
 * uses the old centres).
 */
import { add, div, logSoftmax, maximum, mean, mul, softmax, stopGradient, sub, sum, sliceAxis, type Tensor } from "../../dsl/index.js";

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

export interface IbotLossOptions {
  readonly globalCrops: number;
  readonly studentTemp?: number;
  readonly centerMomentum?: number;
  readonly centerMomentum2?: number;
  readonly lambda1?: number;
  readonly lambda2?: number;
}

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

export function ibotLoss(x: IbotLossInputs, opts: IbotLossOptions): IbotLoss {
  const { globalCrops: G, studentTemp = 0.1, centerMomentum = 0.9, centerMomentum2 = 0.9, lambda1 = 1, lambda2 = 1 } = opts;
  const B = x.teacherCls.shape[0] / G;
  const V = x.studentCls.shape[0] / B;
  // Teacher targets: centred, sharpened, and cut from the graph.
  const tCls = chunks(stopGradient(softmax(div(sub(x.teacherCls, x.center), x.teacherTemp), -1)), G);
  const tPatch = chunks(stopGradient(softmax(div(sub(x.teacherPatch, x.center2), x.teacherPatchTemp), -1)), G);
  const sCls = chunks(logSoftmax(div(x.studentCls, studentTemp), -1), V);
  const sPatch = chunks(logSoftmax(div(x.studentPatch, studentTemp), -1), G);
  const masks = chunks(x.masks, G);
  let clsTotal: Tensor | null = null;
  let patchTotal: Tensor | null = null;
  let terms = 0;
  for (let q = 0; q < G; q++)
    for (let v = 0; v < V; v++) {
      if (v === q) {
        // Same view: masked-patch loss, averaged over each image's masked patches, then over all images.
        const ce = sum(mul(tPatch[q], sPatch[v]), -1); // [B, N], the negative cross-entropy
        const perImage = div(sum(mul(ce, masks[q]), -1), maximum(sum(masks[q], -1), 1));
        const l = mean(perImage);
        patchTotal = patchTotal ? add(patchTotal, l) : l;
      } else {
        const l = mean(sum(mul(tCls[q], sCls[v]), -1));
        clsTotal = clsTotal ? add(clsTotal, l) : l;
        terms++;
      }
    }
  const cls = mul(clsTotal!, -1 / terms);
  const patch = mul(patchTotal!, -1 / G);
  const loss = add(mul(cls, lambda1), mul(patch, lambda2));
  // Centres move after the loss: EMA of the raw teacher logits' batch means.
  const t = stopGradient(x.teacherCls);
  const center = add(mul(x.center, centerMomentum), mul(mean(t, 0, true), 1 - centerMomentum));
  const patchMean = mean(mean(stopGradient(x.teacherPatch), 1, true), 0, true); // [1, 1, K]
  const center2 = add(mul(x.center2, centerMomentum2), mul(patchMean, 1 - centerMomentum2));
  return { loss, cls, patch, center, center2 };
}
