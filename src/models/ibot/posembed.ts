/**
 * Resizing the positional embedding for another patch grid (spec §1.1): PyTorch's bicubic
 * interpolation (a = −0.75, align_corners = False) with the official scale factor (g + 0.1)/g₀,
 * written as two interpolation matmuls so it differentiates and runs on every backend.
 */
import { concat, constant, matmul, reshape, sliceAxis, transpose, type Tensor } from "../../dsl/index.js";

const A = -0.75;
const cubic = (x: number): number => {
  const t = Math.abs(x);
  if (t <= 1) return ((A + 2) * t - (A + 3)) * t * t + 1;
  if (t < 2) return ((A * t - 5 * A) * t + 8 * A) * t - 4 * A;
  return 0;
};

/**
 * The [out, in] matrix of PyTorch's 1-D bicubic resize from `inSize` to `outSize` samples when
 * called with `scale` (source = (dst + 0.5)/scale − 0.5, taps clamped at the borders).
 */
export function bicubicMatrix(inSize: number, outSize: number, scale: number): number[][] {
  return Array.from({ length: outSize }, (_, o) => {
    const row = new Array<number>(inSize).fill(0);
    const src = (o + 0.5) / scale - 0.5;
    const f = Math.floor(src);
    const t = src - f;
    const ws = [cubic(1 + t), cubic(t), cubic(1 - t), cubic(2 - t)];
    ws.forEach((wt, k) => {
      const i = Math.min(inSize - 1, Math.max(0, f - 1 + k));
      row[i] += wt;
    });
    return row;
  });
}

/**
 * posEmbed [1, 1 + g₀², D] → [1, 1 + g², D] for a g×g grid; the [CLS] position is unchanged.
 * Identity when g = g₀.
 */
export function interpolatePosEmbed(posEmbed: Tensor, grid: number): Tensor {
  const d = posEmbed.shape[2];
  const g0 = Math.round(Math.sqrt(posEmbed.shape[1] - 1));
  if (grid === g0) return posEmbed;
  const r = constant(bicubicMatrix(g0, grid, (grid + 0.1) / g0), posEmbed.dtype); // [g, g0]
  const cls = sliceAxis(posEmbed, 1, 0, 1);
  const patches = reshape(sliceAxis(posEmbed, 1, 1, 1 + g0 * g0), [g0, g0 * d]); // rows y, then (x, d)
  const rowsDone = reshape(matmul(r, patches), [grid, g0, d]); // [g, g0, D]
  const cols = reshape(transpose(rowsDone, [1, 0, 2]), [g0, grid * d]); // [g0(x), g(y)·D]
  const both = transpose(reshape(matmul(r, cols), [grid, grid, d]), [1, 0, 2]); // [y, x, D]
  return concat([cls, reshape(both, [1, grid * grid, d])], 1);
}
