/**
 * A picture of the teacher's patch tokens: each image of a sample, enlarged, with every patch
 * tinted by the prototype (token) the teacher assigns it, so one sees which parts of garments
 * share a token. Also the number of distinct tokens used (a quick collapse check).
 */
import { writeFileSync } from "node:fs";
import { PNG } from "pngjs";
import * as E from "fp-ts/lib/Either.js";
import { compile, evaluate, specsOf } from "../backend/index.js";
import { loadDataset, pixelStats } from "../data/index.js";
import { randomKey, spec, type Tensor } from "../dsl/index.js";
import { initIbotState, teacherTokens, type TeacherParams } from "../models/index.js";
import { loadCheckpoint } from "./evaluate.js";
import { normalise, sampleSplit } from "./features.js";
import { geometryOf } from "./geometry.js";
import { modelConfig } from "./pretrain.js";

/** A colour per token: golden-angle hues, so neighbouring ids differ. */
function tokenColour(id: number): [number, number, number] {
  const h = (id * 137.508) % 360;
  const f = (n: number) => {
    const k = (n + h / 30) % 12;
    return Math.round(255 * (0.5 - 0.45 * Math.max(-1, Math.min(k - 3, 9 - k, 1))));
  };
  return [f(0), f(8), f(4)];
}

export interface TokensReport {
  readonly images: number;
  readonly distinctTokens: number;
  readonly path: string;
}

/** Writes a PNG of `count` TEST images with their patch tokens; returns how many distinct tokens appear. */
export async function tokensPicture(checkpoint: string, out: string, count = 16, scale = 8): Promise<TokensReport> {
  const { config: c, teacher } = await loadCheckpoint(checkpoint);
  const mc = modelConfig(c);
  const like = evaluate(() => initIbotState(randomKey(0), mc).teacher);
  const data = await loadDataset(c.dataset)();
  if (E.isLeft(data)) throw data.left;
  const stats = pixelStats(data.right.train);
  const sample = sampleSplit(data.right.test, count, c.seed, 104);
  const n = sample.count;
  const g = geometryOf(c, sample);
  const exe = compile((t: TeacherParams, x: Tensor) => teacherTokens(x, t, mc), [specsOf(like), spec([n, g.channels, g.size, g.size])]);
  const ids = exe.run(teacher, normalise(sample, 0, n, stats.mean, stats.std));
  // Lay the images out in a row-major grid of tiles, each size·scale pixels with a 4-pixel gap.
  const cols = Math.ceil(Math.sqrt(n));
  const rows = Math.ceil(n / cols);
  const tile = g.size * scale;
  const png = new PNG({ width: cols * (tile + 4) + 4, height: rows * (tile + 4) + 4 });
  png.data.fill(255);
  const used = new Set<number>();
  for (let i = 0; i < n; i++) {
    const [ox, oy] = [4 + (i % cols) * (tile + 4), 4 + Math.floor(i / cols) * (tile + 4)];
    for (let y = 0; y < tile; y++)
      for (let x = 0; x < tile; x++) {
        const [py, px] = [Math.floor(y / scale), Math.floor(x / scale)];
        const v = sample.images[(i * g.size + py) * g.size + px] / 255;
        const token = ids.data[i * g.tokens + Math.floor(py / g.patch) * g.grid + Math.floor(px / g.patch)];
        used.add(token);
        const col = tokenColour(token);
        const o = ((oy + y) * png.width + ox + x) * 4;
        for (let ch = 0; ch < 3; ch++) png.data[o + ch] = Math.round(0.45 * col[ch] + 0.55 * 255 * v);
        png.data[o + 3] = 255;
      }
  }
  writeFileSync(out, PNG.sync.write(png));
  return { images: n, distinctTokens: used.size, path: out };
}
