/** Plots of a run (SVG, through Vega-Lite): the loss parts over steps, and k-NN accuracy over epochs against the baselines. */
import * as vega from "vega";
import * as vl from "vega-lite";
import type { EvalLog, StepLog } from "./pretrain.js";

async function render(spec: vl.TopLevelSpec): Promise<string> {
  const view = new vega.View(vega.parse(vl.compile(spec).spec), { renderer: "none" });
  const svg = await view.toSVG();
  view.finalize();
  return svg;
}

/** Loss, [CLS] and patch parts per step. */
export function lossPlot(steps: readonly Pick<StepLog, "step" | "loss" | "cls" | "patch">[]): Promise<string> {
  const values = steps.flatMap((s) => [
    { step: s.step, value: s.loss, part: "total" },
    { step: s.step, value: s.cls, part: "[CLS]" },
    { step: s.step, value: s.patch, part: "patch (MIM)" },
  ]);
  return render({
    title: "iBOT loss",
    data: { values },
    mark: { type: "line", strokeWidth: 1.5 },
    encoding: {
      x: { field: "step", type: "quantitative", title: "step" },
      y: { field: "value", type: "quantitative", title: "loss" },
      color: { field: "part", type: "nominal", title: null },
    },
    width: 560,
    height: 260,
  });
}

/** Teacher and student k-NN accuracy per epoch, with the raw-pixel and random-init baselines as dashed rules. */
export function knnPlot(evals: readonly EvalLog[], baselines: { rawPixels: number; randomInit: number }): Promise<string> {
  const color = {
    field: "series",
    type: "nominal",
    title: null,
    scale: { domain: ["iBOT teacher", "iBOT student", "raw pixels", "random-init ViT"] },
  } as const;
  return render({
    title: "k-NN accuracy on TEST (k = 20)",
    width: 560,
    height: 260,
    layer: [
      {
        data: {
          values: evals.flatMap((e) => [
            { epoch: e.epoch + 1, accuracy: 100 * e.knnTeacher, series: "iBOT teacher" },
            { epoch: e.epoch + 1, accuracy: 100 * e.knnStudent, series: "iBOT student" },
          ]),
        },
        mark: { type: "line", point: true },
        encoding: {
          x: { field: "epoch", type: "quantitative", title: "epoch", axis: { tickMinStep: 1 } },
          y: { field: "accuracy", type: "quantitative", title: "accuracy (%)", scale: { zero: false } },
          color,
        },
      },
      {
        data: {
          values: [
            { series: "raw pixels", accuracy: 100 * baselines.rawPixels },
            { series: "random-init ViT", accuracy: 100 * baselines.randomInit },
          ],
        },
        mark: { type: "rule", strokeDash: [4, 4] },
        encoding: { y: { field: "accuracy", type: "quantitative" }, color },
      },
    ],
  });
}

export interface SeriesPoint {
  readonly step: number;
  readonly logReturn: number;
  readonly token: number;
  readonly regime: string;
  readonly anomaly: boolean;
}

/** A price path (cumulative log return) with each step coloured by its patch token, the true regime as a strip beneath, and injected jumps marked. */
export function regimesPlot(points: readonly SeriesPoint[], title: string): Promise<string> {
  let level = 0;
  const values = points.map((p) => ({ ...p, price: (level += p.logReturn), token: `token ${p.token}` }));
  const x = { field: "step", type: "quantitative" as const, scale: { domain: [points[0]?.step ?? 0, points[points.length - 1]?.step ?? 1], nice: false } };
  return render({
    title: `${title}: patch tokens and the true regimes`,
    data: { values },
    vconcat: [
      {
        width: 720,
        height: 240,
        layer: [
          {
            mark: { type: "line", color: "#bbb", strokeWidth: 1 },
            encoding: { x, y: { field: "price", type: "quantitative", title: "cumulative log return", scale: { zero: false } } },
          },
          {
            mark: { type: "circle", size: 14 },
            encoding: { x, y: { field: "price", type: "quantitative" }, color: { field: "token", type: "nominal", title: "token" } },
          },
          {
            transform: [{ filter: "datum.anomaly" }],
            mark: { type: "point", shape: "triangle-down", size: 80, color: "black" },
            encoding: { x, y: { field: "price", type: "quantitative" } },
          },
        ],
      },
      {
        width: 720,
        height: 30,
        mark: { type: "tick", thickness: 2 },
        encoding: { x: { ...x, title: "step" }, color: { field: "regime", type: "nominal", title: "true regime", scale: { scheme: "set2" } } },
      },
    ],
    resolve: { scale: { color: "independent" } },
  });
}
